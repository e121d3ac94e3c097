//! `kill -9` the real hub in the middle of a pipelined payment stream: every acknowledged
//! payment survives the restart, and the device continues from there by re-sending its
//! unacknowledged proofs in order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use channel_core::primitives::U256;
use integration_tests::device::{device_key, device_nonce, payment_message};
use integration_tests::{within, HubOptions, HubProcess, PayAck, TestDevice};
use tonic::Code;

const WINDOW: usize = 64;
/// Acks to collect before the kill.
const KILL_AFTER: u64 = 150;
/// Payments signed in the first run (far more than get acknowledged before the kill).
const SIGNED: u64 = 2_000;
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_payments_survive_kill9_and_the_device_resumes() {
    within(
        Duration::from_secs(45),
        "acknowledged_payments_survive_kill9_and_the_device_resumes",
        run(),
    )
    .await
    .unwrap();
}

async fn run() {
    let mut hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let mut device = TestDevice::login(hub.connect().await.unwrap(), device_key(11, 0).unwrap())
        .await
        .unwrap();
    device.open_channel(U256::from(1_000_000u64)).await.unwrap();
    let one = U256::from(1u64);

    // Pipelined stream; kill -9 once KILL_AFTER acks are in, with a full window in flight.
    let mut signed = Vec::new();
    let mut session = device.pay_session(WINDOW).await.unwrap();
    let mut highest_acked = 0u64;
    let mut killed = false;
    loop {
        while !killed
            && signed.len() < SIGNED as usize
            && signed.len() as u64 - highest_acked < WINDOW as u64
        {
            let proof = device.sign_payment(one).unwrap();
            session.send(payment_message(&proof, one)).await.unwrap();
            signed.push(proof);
        }
        let ack = match tokio::time::timeout(ACK_TIMEOUT, session.next_ack()).await {
            Ok(Ok(Some(ack))) => ack,
            // After the kill the stream ends with an error (or EOF): we are done.
            Ok(Ok(None)) | Ok(Err(_)) if killed => break,
            other => panic!("pay stream failed before the kill: {other:?}"),
        };
        match ack {
            PayAck::Accepted {
                nonce,
                transferred,
                request_id,
                ..
            } => {
                assert_eq!(nonce, request_id);
                assert_eq!(nonce, highest_acked + 1, "acks arrive in nonce order");
                assert_eq!(transferred, U256::from(nonce));
                highest_acked = nonce;
            }
            rejected => panic!("payment refused: {rejected:?}"),
        }
        if !killed && highest_acked >= KILL_AFTER {
            hub.kill9().unwrap();
            killed = true;
        }
    }
    assert!(highest_acked >= KILL_AFTER);
    assert!(
        (signed.len() as u64) > highest_acked,
        "some payments were still unacknowledged at the kill"
    );

    hub.restart().await.unwrap();
    device.relogin(hub.connect().await.unwrap()).await.unwrap();
    let view = device.hub_view().await.unwrap();
    let held = device_nonce(&view);
    assert!(
        held >= highest_acked,
        "hub lost acknowledged payments: holds nonce {held}, acknowledged {highest_acked}"
    );
    assert!(held <= signed.len() as u64);
    assert_eq!(
        U256::from_be_slice(&view.hub_balance),
        U256::from(held),
        "the hub's balance matches its latest proof"
    );

    // Re-send every proof the device never saw acknowledged, in order, then pay more.
    let mut session = device.pay_session(WINDOW).await.unwrap();
    let unacked = &signed[highest_acked as usize..];
    for proof in unacked {
        session.send(payment_message(proof, one)).await.unwrap();
    }
    let extra = 20u64;
    for _ in 0..extra {
        let proof = device.sign_payment(one).unwrap();
        session.send(payment_message(&proof, one)).await.unwrap();
    }
    session.finish();
    let total = signed.len() as u64 + extra;
    for nonce in highest_acked + 1..=total {
        let ack = tokio::time::timeout(ACK_TIMEOUT, session.next_ack())
            .await
            .expect("ack in time")
            .unwrap()
            .expect("an ack per payment");
        match ack {
            PayAck::Accepted {
                nonce: n,
                request_id,
                ..
            } => {
                assert_eq!(request_id, nonce);
                assert_eq!(n, nonce);
                assert!(
                    n >= held,
                    "the hub accepts the latest it holds and everything newer"
                );
            }
            PayAck::Rejected {
                request_id,
                code,
                reason,
            } => {
                assert_eq!(request_id, nonce);
                assert!(
                    nonce < held && code == Code::AlreadyExists,
                    "nonce {nonce} (hub held {held}) refused: {code:?} {reason}"
                );
            }
        }
    }
    let view = device.hub_view().await.unwrap();
    assert_eq!(device_nonce(&view), total);
    assert_eq!(U256::from_be_slice(&view.hub_balance), U256::from(total));
}
