//! SDK devices and the real hub process on a real chain (anvil with Raiden's TokenNetwork
//! 0.50): the device reaches the chain with its own key and RPC URL, never through the hub.
//!
//! - payments both ways (a few hundred), then a cooperative settle on the chain: exact token
//!   balances;
//! - the hub closes on the chain without the hub's latest proof: the device's own watcher
//!   updates with it inside the window, and the settlement pays the device what the hub paid.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use channel_core::channel::CloseTransaction;
use channel_core::ledger::LedgerOp;
use channel_core::primitives::U256;
use channel_core::{LocalSigner, SignedBalanceProof};
use futures::future::join_all;
use integration_tests::chain::{eventually, ChainHub};
use integration_tests::{within, Operator};
use voltlane_client::{ChainAccess, Client, ConnectOptions, DeviceStore};

const WINDOW: u64 = 100;
/// The hub's deposit into every device channel (`--auto-deposit`), and the device's own.
const DEPOSIT: u64 = 100_000;

fn u(n: u64) -> U256 {
    U256::from(n)
}

async fn device(net: &ChainHub, key: LocalSigner) -> Client {
    let mut access = ChainAccess::new(net.chain.url.clone());
    access.poll_interval = Duration::from_millis(100);
    Client::connect_with(
        &net.hub.url(),
        key,
        DeviceStore::in_memory(),
        &ConnectOptions::new().chain_access(access),
    )
    .await
    .unwrap()
}

/// Starts the chain and the hub (matching deposits), connects the device (dev key 2), opens
/// its channel with `DEPOSIT` and waits for the hub's matching deposit.
async fn set_up() -> (ChainHub, Client, Operator) {
    let net = ChainHub::start(WINDOW, 3, &["--auto-deposit", &DEPOSIT.to_string()])
        .await
        .unwrap();
    let client = device(&net, net.key(2).unwrap()).await;
    assert_eq!(client.ledger_kind(), "ethereum");
    assert_eq!(client.domain(), net.chain.domain());
    client.open_channel(u(DEPOSIT)).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the hub's matching deposit",
        || async { Ok((client.balances().unwrap().hub_deposit == u(DEPOSIT)).then_some(())) },
    )
    .await
    .unwrap();
    let operator = Operator::login(net.hub.connect().await.unwrap(), net.operator.clone())
        .await
        .unwrap();
    (net, client, operator)
}

/// The hub pays the device `count` payments of `amount` and the device has applied them all.
async fn hub_pays(operator: &Operator, client: &Client, count: u64, amount: u64) {
    let id = client.channel_id().unwrap();
    let before = client.balances().unwrap().ours;
    for _ in 0..count {
        operator.pay(id, u(amount)).await.unwrap();
    }
    let expected = before + u(count * amount);
    eventually(
        Duration::from_secs(30),
        "the device to apply the hub's payments",
        || async { Ok((client.balances().unwrap().ours == expected).then_some(())) },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_both_ways_then_a_cooperative_settle_on_the_chain_pay_out_exactly() {
    within(
        Duration::from_secs(240),
        "cooperative settle on a chain",
        async {
            let (net, client, operator) = set_up().await;
            let (me, hub) = (client.address(), client.hub_address());
            // 300 payments of 7 to the hub, up to 50 in flight on the one stream...
            for _ in 0..6 {
                for r in join_all((0..50).map(|_| client.pay(u(7)))).await {
                    r.unwrap();
                }
            }
            // ...and 100 payments of 11 from the hub.
            hub_pays(&operator, &client, 100, 11).await;
            let balances = client.balances().unwrap();
            assert_eq!(balances.our_nonce, 300);
            let device_owns = u(DEPOSIT - 2_100 + 1_100);
            let hub_owns = u(DEPOSIT + 2_100 - 1_100);
            assert_eq!((balances.ours, balances.hubs), (device_owns, hub_owns));

            let device_before = client.token_balance(me).await.unwrap();
            let hub_before = client.token_balance(hub).await.unwrap();
            let settlement = client.cooperative_close().await.unwrap();
            assert_eq!(
                (settlement.device_amount, settlement.hub_amount),
                (device_owns, hub_owns)
            );
            // Read from the chain itself, not from either party.
            let eth = net.ledger(&net.key(2).unwrap()).await.unwrap();
            assert_eq!(
                eth.token_balance(me).await.unwrap(),
                device_before + device_owns
            );
            assert_eq!(eth.token_balance(hub).await.unwrap(), hub_before + hub_owns);
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_contests_a_hub_close_on_the_chain_by_itself() {
    within(
        Duration::from_secs(240),
        "device contests on a chain",
        async {
            let (net, client, operator) = set_up().await;
            let (me, hub) = (client.address(), client.hub_address());
            let id = client.channel_id().unwrap();
            hub_pays(&operator, &client, 5, 1_000).await;
            let eth = net.ledger(&net.operator).await.unwrap();
            let device_before = eth.token_balance(me).await.unwrap();
            let hub_before = eth.token_balance(hub).await.unwrap();

            // The operator closes on the chain without any proof of the device's, so its own
            // payments to the device would go unrecorded unless the device submits them.
            let none = SignedBalanceProof::none(client.domain(), id);
            let closing_signature = none.counter_sign_close(&net.operator).unwrap();
            eth.execute(&LedgerOp::Close(CloseTransaction {
                channel_id: id,
                partner_proof: none,
                closing_signature,
            }))
            .await
            .unwrap();

            // The device's watcher puts the hub's latest proof (nonce 5) on the chain.
            eventually(Duration::from_secs(30), "the device's update", || async {
                let info = eth.participant_info(id, hub, me).await?;
                Ok((info.nonce == 5).then_some(()))
            })
            .await
            .unwrap();

            // After the window, the settlement pays the device the 5,000 the hub paid.
            net.advance(WINDOW + 1).await.unwrap();
            let device_after = eventually(Duration::from_secs(30), "the settlement", || async {
                let now = eth.token_balance(me).await?;
                Ok((now != device_before).then_some(now))
            })
            .await
            .unwrap();
            assert_eq!(device_after, device_before + u(DEPOSIT + 5_000));
            assert_eq!(
                eth.token_balance(hub).await.unwrap(),
                hub_before + u(DEPOSIT - 5_000)
            );
        },
    )
    .await
    .unwrap();
}

/// A hub that learns the payee's secret and never pays it (fail point
/// `hub_withholds_unlock`), on a chain: the payee's SDK registers the secret in the chain's
/// SecretRegistry before its lock expires, closes, settles after the window and unlocks; the
/// chain pays it its deposit plus the amount. The chain's clock runs at five times wall-clock
/// speed (a block per 200 ms, one second apart), and the reveal timeout (40 s) leaves the
/// payee's monitor (one look per wall-clock second) several looks inside its registration
/// lead: on a chain, time moves in blocks, and the lead must span a few of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_chain_the_payee_claims_a_withheld_mediated_payment_by_itself() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    within(
        Duration::from_secs(240),
        "mediated claim on a chain",
        async {
            let net = ChainHub::start_full(
                WINDOW,
                4,
                &["--auto-deposit", "10000", "--reveal-timeout-secs", "40"],
                false,
                vec![("VOLTLANE_FAILPOINTS".into(), "hub_withholds_unlock".into())],
            )
            .await
            .unwrap();
            let _clock = net.run_clock(Duration::from_millis(200), 1);
            let car = std::sync::Arc::new(device(&net, net.key(2).unwrap()).await);
            let charger = device(&net, net.key(3).unwrap()).await;
            for client in [&*car, &charger] {
                client.open_channel(u(5_000)).await.unwrap();
                eventually(
                    Duration::from_secs(30),
                    "the hub's matching deposit",
                    || async {
                        Ok((client.balances().unwrap().hub_deposit == u(5_000)).then_some(()))
                    },
                )
                .await
                .unwrap();
            }
            let request = charger
                .create_payment_request(u(1_000), 1, 600)
                .await
                .unwrap();
            eventually(Duration::from_secs(30), "the charger online", || async {
                Ok(car.quote(&request).await.ok())
            })
            .await
            .unwrap();
            let eth = net.ledger(&net.key(3).unwrap()).await.unwrap();
            let before = eth.token_balance(charger.address()).await.unwrap();
            let paying = {
                let car = car.clone();
                tokio::spawn(async move { car.pay_request(&request).await })
            };
            let claimed = eventually(Duration::from_secs(120), "the charger's claim", || async {
                let now = eth.token_balance(charger.address()).await?;
                Ok((now == before + u(5_000 + 1_000)).then_some(now))
            })
            .await;
            paying.abort();
            claimed.unwrap();
            // The charger's own view follows: settled once its follower read the settle.
            eventually(
                Duration::from_secs(30),
                "the charger's view settled",
                || async { Ok((charger.balances().unwrap().phase == "settled").then_some(())) },
            )
            .await
            .unwrap();
        },
    )
    .await
    .unwrap();
}
