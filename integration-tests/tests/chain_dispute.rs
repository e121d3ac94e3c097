//! The hub on a real chain: anvil running Raiden's TokenNetwork 0.50, the real hub process
//! with `--ledger ethereum`, a device that opens its channel on the chain with its own key,
//! pays the hub off-chain, then closes on the chain without any proof of the hub's (so its
//! payments would go unrecorded). The hub's follower sees the close, its watcher contests with
//! the device's latest proof (a real `updateNonClosingBalanceProof` transaction), and once the
//! chain's clock passes the settlement window it settles: the token balances on the chain are
//! exactly the off-chain balances.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use channel_core::channel::CloseTransaction;
use channel_core::ledger::LedgerOp;
use channel_core::primitives::U256;
use channel_core::{SignedBalanceProof, Signer};
use integration_tests::chain::{eventually, ChainHub};
use integration_tests::device::device_nonce;
use integration_tests::{within, PayAck, TestDevice};
use voltlane_proto::v1;

const SETTLE_TIMEOUT: u64 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_chain_the_hub_contests_a_device_close_and_settles_exactly() {
    within(Duration::from_secs(240), "chain dispute", run(false))
        .await
        .unwrap();
}

/// The same, but right after the device's close the hub loses its node, is killed with
/// SIGKILL while the node is away, and restarts once the node is back: the close is still
/// contested, and the hub sent exactly two transactions (the update and the settle), none
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outage_and_a_hub_kill_do_not_lose_or_double_the_contest() {
    within(
        Duration::from_secs(240),
        "chain dispute with an outage",
        run(true),
    )
    .await
    .unwrap();
}

async fn run(outage: bool) {
    let mut net = ChainHub::start_with(SETTLE_TIMEOUT, 3, &[], outage)
        .await
        .unwrap();
    let conn = net.hub.connect().await.unwrap();

    // The hub tells devices where it settles.
    let info = integration_tests::device::hub_info(conn.clone())
        .await
        .unwrap();
    assert_eq!(info.ledger_kind(), v1::LedgerKind::Ethereum);
    assert_eq!(
        info.token_network_address,
        net.chain.deployment.token_network.as_bytes().to_vec()
    );
    assert_eq!(
        info.token_address,
        net.chain.deployment.token.as_bytes().to_vec()
    );
    assert_eq!(info.settlement_timeout, SETTLE_TIMEOUT);
    assert!(!info.dev_faucet, "a chain has no faucet");

    let key = net.key(2).unwrap();
    let me = key.address();
    let hub = net.hub_address();
    let chain = net.ledger(&key).await.unwrap();
    let mut device = TestDevice::login(conn, key).await.unwrap();

    // The device opens and funds its channel on the chain itself.
    let deposit = U256::from(100u64);
    chain
        .execute(&LedgerOp::OpenChannel {
            partner: hub,
            total_deposit: deposit,
        })
        .await
        .unwrap();
    let id = chain.channel_identifier(me, hub).await.unwrap();
    device.track_channel(id, deposit).unwrap();
    // The hub sees it once its follower read the block.
    eventually(
        Duration::from_secs(20),
        "the hub to see the deposit",
        || async {
            Ok(device
                .hub_view()
                .await
                .ok()
                .filter(|v| U256::from_be_slice(&v.device_deposit) == deposit))
        },
    )
    .await
    .unwrap();

    // Ten payments of 3: the hub is owed 30.
    let three = U256::from(3u64);
    let mut session = device.pay_session(16).await.unwrap();
    for _ in 0..10 {
        session
            .send(device.next_payment(three).unwrap())
            .await
            .unwrap();
    }
    session.finish();
    for _ in 0..10 {
        let ack = session.next_ack().await.unwrap().unwrap();
        assert!(matches!(ack, PayAck::Accepted { .. }), "{ack:?}");
    }
    assert_eq!(device_nonce(&device.hub_view().await.unwrap()), 10);
    let device_before = chain.token_balance(me).await.unwrap();
    let hub_before = chain.token_balance(hub).await.unwrap();

    // The device closes on the chain with "no proof" of the hub, counter-signed.
    let none = SignedBalanceProof::none(*device.channel().unwrap().domain(), id);
    let closing_signature = none.counter_sign_close(device.key()).unwrap();
    chain
        .execute(&LedgerOp::Close(CloseTransaction {
            channel_id: id,
            partner_proof: none,
            closing_signature,
        }))
        .await
        .unwrap();

    if outage {
        let proxy = net.proxy.as_ref().expect("started with a proxy");
        proxy.set_down(true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        net.hub.kill9().unwrap();
        proxy.set_down(false);
        net.hub.restart().await.unwrap();
    }

    // The hub contests with the device's latest proof (nonce 10) inside the window.
    eventually(
        Duration::from_secs(30),
        "the hub's update on the chain",
        || async {
            let info = chain.participant_info(id, me, hub).await?;
            Ok((info.nonce == 10).then_some(()))
        },
    )
    .await
    .unwrap();

    // Past the window on the chain's clock, the hub settles: exact balances.
    net.advance(SETTLE_TIMEOUT + 1).await.unwrap();
    let hub_after = eventually(Duration::from_secs(30), "the hub's settle", || async {
        let now = chain.token_balance(hub).await?;
        Ok((now != hub_before).then_some(now))
    })
    .await
    .unwrap();
    assert_eq!(hub_after, hub_before + U256::from(30u64));
    assert_eq!(
        chain.token_balance(me).await.unwrap(),
        device_before + U256::from(70u64)
    );
    // The hub's transactions: the update and the settle, each once.
    assert_eq!(chain.node().transaction_count(hub).await.unwrap(), 2);
}
