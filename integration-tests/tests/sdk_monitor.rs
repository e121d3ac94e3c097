//! The SDK's channel monitor is level-triggered: a device that applied the hub's stale close
//! and recorded it (so the event will never be delivered again) and then crashed before
//! contesting still contests after it restarts, because the monitor decides from the ledger's
//! record, not from having seen the event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use channel_core::crypto::Signer;
use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::primitives::decode_hex;
use channel_core::LocalSigner;
use integration_tests::{HubOptions, HubProcess, TestDevice};
use voltlane_client::{Client, DeviceStore, U256};
use voltlane_proto::convert::{address_bytes, signature_bytes, u256_bytes};
use voltlane_proto::v1;

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn operator_key(hub: &HubProcess) -> LocalSigner {
    let text = std::fs::read_to_string(hub.data_dir().join("operator.key")).unwrap();
    LocalSigner::from_bytes(&decode_hex(text.trim()).unwrap()).unwrap()
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
async fn a_close_recorded_just_before_a_device_crash_is_contested_after_restart() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let store_dir = tempfile::tempdir().unwrap();
    let path = store_dir.path().join("device");
    let mut b = [0x33u8; 32];
    b[31] = 7;
    let device_key = LocalSigner::from_bytes(&b).unwrap();
    let client = Client::connect(
        &hub.url(),
        device_key.clone(),
        DeviceStore::open(&path).unwrap(),
    )
    .await
    .unwrap();
    client.mint(u(1_000)).await.unwrap();
    let id = client.open_channel(u(500)).await.unwrap();

    let op_key = operator_key(&hub);
    let op = TestDevice::login(hub.connect().await.unwrap(), op_key.clone())
        .await
        .unwrap();
    op.ledger()
        .mint(v1::MintRequest {
            to: address_bytes(&op_key.address()),
            amount: u256_bytes(&u(300)),
        })
        .await
        .unwrap();
    op.ledger()
        .set_total_deposit(v1::SetTotalDepositRequest {
            channel_id: u256_bytes(&id),
            participant: address_bytes(&op_key.address()),
            total_deposit: u256_bytes(&u(300)),
        })
        .await
        .unwrap();
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
    let start = Instant::now();
    while client.balances().unwrap().hub_transferred != u(200) {
        assert!(start.elapsed() < Duration::from_secs(10), "hub payments");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(client);

    // The hub closes with the device's older proof while the device is down.
    let closing_signature = stale.counter_sign_close(&op_key).unwrap();
    let resp = op
        .ledger()
        .close_channel(v1::CloseChannelRequest {
            channel_id: u256_bytes(&id),
            partner_proof: Some((&stale).into()),
            closing_signature: signature_bytes(&closing_signature),
        })
        .await
        .unwrap()
        .into_inner();
    let close = resp
        .events
        .into_iter()
        .map(|e| LedgerEvent::try_from(e).unwrap())
        .find(|e| matches!(e.kind, LedgerEventKind::ChannelClosed { .. }))
        .unwrap();

    // The device had applied that close and recorded its seq, then crashed before contesting:
    // the subscription will never deliver the event again.
    {
        let store = reopen_store(&path).await;
        let mut channel = store.channel().unwrap().unwrap();
        channel
            .handle_ledger_closed(op_key.address(), close.time)
            .unwrap();
        store.put_channel(&channel).unwrap();
        store.put_ledger_seq(close.seq).unwrap();
        store.flush().await.unwrap();
    }

    let client = Client::connect(&hub.url(), device_key, reopen_store(&path).await)
        .await
        .unwrap();
    let start = Instant::now();
    let settled = loop {
        let rec = op
            .ledger()
            .get_channel(v1::GetLedgerChannelRequest {
                channel_id: u256_bytes(&id),
            })
            .await
            .unwrap()
            .into_inner();
        if rec.phase == v1::ChannelPhase::Settled as i32 {
            break rec;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the channel never settled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let hub_side = settled
        .participants
        .iter()
        .find(|p| p.address == address_bytes(&op_key.address()))
        .unwrap();
    assert_eq!(
        hub_side.balance.as_ref().map(|b| b.nonce),
        Some(2),
        "the restarted device contested with the hub's latest proof"
    );
    // Device: 500 outside + (500 - 50 + 200) from the channel; hub: 300 - 200 + 50.
    assert_eq!(
        client.token_balance(client.address()).await.unwrap(),
        u(500 + 650)
    );
    assert_eq!(
        client.token_balance(op_key.address()).await.unwrap(),
        u(300 - 200 + 50)
    );
}
