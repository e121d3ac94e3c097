//! The device SDK (`voltlane-client`) against a real hub process: a long stream of payments
//! closed cooperatively, a `kill -9` of the hub in the middle of a stream, a device reboot
//! with unacknowledged payments, and a stale close by the hub that the SDK's monitor contests
//! (also after a device crash right after it recorded the close). Every test ends by checking
//! the ledger's token balances to the unit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use channel_core::crypto::Signer;
use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::LocalSigner;
use futures::future::join_all;
use integration_tests::{HubOptions, HubProcess, TestDevice};
use voltlane_client::{Client, DeviceStore, U256};
use voltlane_proto::convert::{address_bytes, signature_bytes, u256_bytes};
use voltlane_proto::v1;

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn device_key(n: u8) -> LocalSigner {
    let mut b = [0x11u8; 32];
    b[31] = n;
    LocalSigner::from_bytes(&b).unwrap()
}

fn operator_key(hub: &HubProcess) -> LocalSigner {
    hub.operator_key().unwrap()
}

/// Polls `check` every 50 ms until it holds or `limit` passes (then fails with `what`).
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn thousand_payments_then_cooperative_close_pay_out_exactly() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let client = Client::connect(&hub.url(), device_key(1), DeviceStore::in_memory())
        .await
        .unwrap();
    let hub_address = client.hub_address();
    client.mint(u(1_000_000)).await.unwrap();
    client.open_channel(u(100_000)).await.unwrap();
    // 1,000 payments, up to 100 in flight at a time on the one stream.
    for _ in 0..10 {
        let receipts = join_all((0..100).map(|_| client.pay(u(7)))).await;
        for r in receipts {
            r.unwrap();
        }
    }
    let balances = client.balances().unwrap();
    assert_eq!(balances.our_nonce, 1_000);
    assert_eq!(balances.our_transferred, u(7_000));
    assert_eq!(balances.ours, u(93_000));

    let hub_before = client.token_balance(hub_address).await.unwrap();
    let settlement = client.cooperative_close().await.unwrap();
    assert_eq!(settlement.device_amount, u(93_000));
    assert_eq!(settlement.hub_amount, u(7_000));
    assert_eq!(
        client.token_balance(client.address()).await.unwrap(),
        u(1_000_000 - 7_000)
    );
    assert_eq!(
        client.token_balance(hub_address).await.unwrap(),
        hub_before + u(7_000)
    );
}

#[tokio::test]
async fn kill_9_mid_stream_loses_nothing_and_the_client_resumes() {
    let mut hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let client = Arc::new(
        Client::connect(
            &hub.url(),
            device_key(2),
            DeviceStore::open(store_dir.path().join("device")).unwrap(),
        )
        .await
        .unwrap(),
    );
    let hub_address = client.hub_address();
    client.mint(u(10_000)).await.unwrap();
    client.open_channel(u(5_000)).await.unwrap();

    const PAYMENTS: u64 = 400;
    let acked = Arc::new(AtomicU64::new(0));
    let payer = {
        let (client, acked) = (client.clone(), acked.clone());
        tokio::spawn(async move {
            for _ in 0..PAYMENTS / 20 {
                for r in join_all((0..20).map(|_| client.pay(u(5)))).await {
                    r.unwrap();
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    eventually(Duration::from_secs(30), "100 acknowledged payments", || {
        let n = acked.load(Ordering::SeqCst);
        async move { n >= 100 }
    })
    .await;
    hub.kill9().unwrap();
    let acked_before_kill = acked.load(Ordering::SeqCst);
    hub.restart().await.unwrap();

    // The client reconnects, learns which nonce the restarted hub holds, re-sends the rest
    // and every outstanding `pay` resolves.
    tokio::time::timeout(Duration::from_secs(60), payer)
        .await
        .expect("payments finish after the restart")
        .unwrap();
    assert!(acked_before_kill >= 100);
    assert_eq!(acked.load(Ordering::SeqCst), PAYMENTS);
    let balances = client.balances().unwrap();
    assert_eq!(balances.our_nonce, PAYMENTS);

    let hub_before = client.token_balance(hub_address).await.unwrap();
    let settlement = client.cooperative_close().await.unwrap();
    assert_eq!(settlement.hub_amount, u(5 * PAYMENTS));
    assert_eq!(
        client.token_balance(hub_address).await.unwrap(),
        hub_before + u(5 * PAYMENTS),
        "the hub is paid for every payment, none twice"
    );
    assert_eq!(
        client.token_balance(client.address()).await.unwrap(),
        u(10_000 - 5 * PAYMENTS)
    );
}

/// The set-up of a stale close by the hub: the device deposits 500, the operator 300; the
/// device pays 50 then 30, the operator pays the device 100 twice. Returns the channel id, the
/// operator's session and key, and the device's older proof (transferred 50).
async fn channel_with_a_stale_device_proof(
    hub: &HubProcess,
    client: &Client,
) -> (
    U256,
    TestDevice,
    LocalSigner,
    channel_core::SignedBalanceProof,
) {
    client.mint(u(1_000)).await.unwrap();
    let id = client.open_channel(u(500)).await.unwrap();

    // The operator funds its side so that it can pay the device.
    let (op, op_key) = operator_deposits(hub, id, u(300)).await;

    client.pay(u(50)).await.unwrap();
    let stale = *client
        .channel()
        .unwrap()
        .unwrap()
        .our_latest_proof()
        .unwrap();
    client.pay(u(30)).await.unwrap();
    for _ in 0..2 {
        op.payments()
            .operator_pay(v1::OperatorPayRequest {
                channel_id: u256_bytes(&id),
                amount: u256_bytes(&u(100)),
            })
            .await
            .unwrap();
    }
    eventually(
        Duration::from_secs(10),
        "the device holds both hub payments",
        || {
            let got = client.balances().unwrap().hub_transferred;
            async move { got == u(200) }
        },
    )
    .await;
    (id, op, op_key, stale)
}

/// The operator logs in, mints `amount` test tokens and deposits them into channel `id` as
/// the hub's side; returns its session and key.
async fn operator_deposits(hub: &HubProcess, id: U256, amount: U256) -> (TestDevice, LocalSigner) {
    let op_key = operator_key(hub);
    let op = TestDevice::login(hub.connect().await.unwrap(), op_key.clone())
        .await
        .unwrap();
    op.ledger()
        .mint(v1::MintRequest {
            to: address_bytes(&op_key.address()),
            amount: u256_bytes(&amount),
        })
        .await
        .unwrap();
    op.ledger()
        .set_total_deposit(v1::SetTotalDepositRequest {
            channel_id: u256_bytes(&id),
            participant: address_bytes(&op_key.address()),
            total_deposit: u256_bytes(&amount),
        })
        .await
        .unwrap();
    (op, op_key)
}

/// The hub closes with `stale`; returns the `ChannelClosed` event.
async fn hub_closes_with(
    op: &TestDevice,
    op_key: &LocalSigner,
    id: U256,
    stale: &channel_core::SignedBalanceProof,
) -> LedgerEvent {
    let closing_signature = stale.counter_sign_close(op_key).unwrap();
    let resp = op
        .ledger()
        .close_channel(v1::CloseChannelRequest {
            channel_id: u256_bytes(&id),
            partner_proof: Some(stale.into()),
            closing_signature: signature_bytes(&closing_signature),
        })
        .await
        .unwrap()
        .into_inner();
    resp.events
        .into_iter()
        .map(|e| LedgerEvent::try_from(e).unwrap())
        .find(|e| matches!(e.kind, LedgerEventKind::ChannelClosed { .. }))
        .unwrap()
}

/// Waits until the channel settled, then checks that the device contested with the hub's
/// latest proof (nonce 2) and that both sides got exactly what they are owed.
async fn settled_with_the_hubs_latest_proof(
    client: &Client,
    op: &TestDevice,
    op_key: &LocalSigner,
    id: U256,
) {
    let ledger_channel = |op: &TestDevice| {
        let mut ledger = op.ledger();
        async move {
            ledger
                .get_channel(v1::GetLedgerChannelRequest {
                    channel_id: u256_bytes(&id),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    eventually(Duration::from_secs(20), "the channel to settle", || {
        let f = ledger_channel(op);
        async move { f.await.phase == v1::ChannelPhase::Settled as i32 }
    })
    .await;
    let settled = ledger_channel(op).await;
    let hub_side = settled
        .participants
        .iter()
        .find(|p| p.address == address_bytes(&op_key.address()))
        .unwrap();
    assert_eq!(
        hub_side.balance.as_ref().map(|b| b.nonce),
        Some(2),
        "the device submitted the hub's latest proof"
    );
    // Device: 500 left outside + (500 - 50 + 200) from the channel.
    assert_eq!(
        client.token_balance(client.address()).await.unwrap(),
        u(500 + 650)
    );
    assert_eq!(
        client.token_balance(op_key.address()).await.unwrap(),
        u(300 - 200 + 50)
    );
}

#[tokio::test]
async fn a_stale_close_by_the_hub_is_contested_by_the_sdk() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let client = Client::connect(&hub.url(), device_key(4), DeviceStore::in_memory())
        .await
        .unwrap();
    let (id, op, op_key, stale) = channel_with_a_stale_device_proof(&hub, &client).await;

    // The hub closes with the device's older proof (80 was paid, the proof says 50); the
    // SDK's monitor puts the hub's latest proof on the ledger, then the channel settles.
    hub_closes_with(&op, &op_key, id, &stale).await;
    settled_with_the_hubs_latest_proof(&client, &op, &op_key, id).await;
}

/// The SDK's monitor is level-triggered: a device that applied the hub's stale close and
/// recorded it (so the subscription never delivers it again), then crashed before contesting,
/// still contests after it restarts, because the monitor decides from the ledger's record.
#[tokio::test]
async fn a_close_recorded_just_before_a_device_crash_is_contested_after_restart() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let path = store_dir.path().join("device");
    let client = Client::connect(&hub.url(), device_key(7), DeviceStore::open(&path).unwrap())
        .await
        .unwrap();
    let (id, op, op_key, stale) = channel_with_a_stale_device_proof(&hub, &client).await;
    drop(client);

    let close = hub_closes_with(&op, &op_key, id, &stale).await;
    {
        let store = reopen_store(&path).await;
        let mut channel = store.channel().unwrap().unwrap();
        channel
            .handle_ledger_closed(op_key.address(), close.time)
            .unwrap();
        let mut batch = voltlane_client::store::DeviceBatch::new();
        batch
            .channel(&channel)
            .unwrap()
            .ledger_seq(close.seq)
            .unwrap();
        store.commit(batch).await.unwrap();
    }

    let client = Client::connect(&hub.url(), device_key(7), reopen_store(&path).await)
        .await
        .unwrap();
    settled_with_the_hubs_latest_proof(&client, &op, &op_key, id).await;
}
/// Opens the device store at `path`, retrying while a dropped client still releases it.
async fn reopen_store(path: &std::path::Path) -> DeviceStore {
    let start = Instant::now();
    loop {
        match DeviceStore::open(path) {
            Ok(store) => return store,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "store not released: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn a_rebooted_device_resends_what_the_hub_never_acknowledged() {
    let mut hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let path = store_dir.path().join("device");
    let client = Arc::new(
        Client::connect(&hub.url(), device_key(5), DeviceStore::open(&path).unwrap())
            .await
            .unwrap(),
    );
    let hub_address = client.hub_address();
    client.mint(u(1_000)).await.unwrap();
    client.open_channel(u(1_000)).await.unwrap();
    client.pay(u(5)).await.unwrap();

    // The hub goes away; the device signs three more payments that cannot be acknowledged,
    // then reboots (its tasks die with the client).
    hub.kill9().unwrap();
    let pending: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.pay(u(5)).await })
        })
        .collect();
    eventually(Duration::from_secs(5), "three payments signed", || {
        let nonce = client.balances().unwrap().our_nonce;
        async move { nonce == 4 }
    })
    .await;
    for p in pending {
        p.abort();
    }
    drop(client);
    hub.restart().await.unwrap();

    // After the reboot the device resumes from its store: the unacknowledged proofs reach the
    // hub in order and the next payment carries nonce 5.
    let client = Client::connect(&hub.url(), device_key(5), reopen_store(&path).await)
        .await
        .unwrap();
    let receipt = client.pay(u(5)).await.unwrap();
    assert_eq!(receipt.nonce, 5);
    assert_eq!(receipt.transferred_amount, u(25));
    let hub_before = client.token_balance(hub_address).await.unwrap();
    let settlement = client.cooperative_close().await.unwrap();
    assert_eq!(
        settlement.hub_amount,
        u(25),
        "all five payments reached the hub"
    );
    assert_eq!(
        client.token_balance(hub_address).await.unwrap(),
        hub_before + u(25)
    );
}

/// The operator deposits into a device's channel while the device's ledger subscription is
/// down (the hub restarted; the device's watcher is waiting to reconnect), and the device at
/// once closes cooperatively. The SDK brings the channel up to the ledger's record first, so
/// the split it proposes counts the hub's deposit and both sides get exactly what they own.
#[tokio::test]
async fn a_cooperative_close_counts_a_deposit_the_watcher_has_not_seen() {
    let mut hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let client = Client::connect(&hub.url(), device_key(7), DeviceStore::in_memory())
        .await
        .unwrap();
    let hub_address = client.hub_address();
    client.mint(u(1_000)).await.unwrap();
    let id = client.open_channel(u(500)).await.unwrap();
    client.pay(u(120)).await.unwrap();
    // The operator's mint and deposit leave its token balance where it is now.
    let hub_before = client.token_balance(hub_address).await.unwrap();

    hub.kill9().unwrap();
    hub.restart().await.unwrap();
    // The watcher's subscription died with the hub and it is backing off before it
    // reconnects, so it has (almost always) not applied this deposit when the close begins.
    operator_deposits(&hub, id, u(300)).await;

    let settlement = client.cooperative_close().await.unwrap();
    assert_eq!(settlement.device_amount, u(500 - 120));
    assert_eq!(settlement.hub_amount, u(300 + 120));
    assert_eq!(
        client.token_balance(client.address()).await.unwrap(),
        u(1_000 - 500 + 380)
    );
    assert_eq!(
        client.token_balance(hub_address).await.unwrap(),
        hub_before + u(420)
    );
}
