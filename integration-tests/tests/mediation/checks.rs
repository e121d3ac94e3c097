//! Checks shared by the mediated-payment fault tests (`faults`,
//! `replays`, `expiry`, `disputes`): the hub settings they run
//! with, sending one payer message and reading its answer, asserting a refusal's status and
//! reason, and comparing the hub's view of a channel (and the device's own record) with what
//! it must be. Each file uses some of them.

#![allow(dead_code)]

use std::time::Duration;

use channel_core::{Address, Secret, H256, U256};
use integration_tests::mediation::{
    matched_device, next_ack, next_item, test_key, wait_ledger_time, ChannelSnapshot,
    MediationSetup,
};
use integration_tests::{Forward, HubProcess, PayAck, PaySession, TestDevice};
use tonic::Code;
use voltlane_proto::convert::mediation::HubMessage;
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

/// Bound of every single wait for the hub.
pub const WAIT: Duration = Duration::from_secs(20);
/// Bound of a whole test.
pub const TEST_LIMIT: Duration = Duration::from_secs(90);

/// Fee 2 + 1 %, a 2 s reveal timeout in a 10 s settlement window (every lock the tests make,
/// up to `lock_expiration(now, 3)`, fits in it with room for the hub's clock to be ahead),
/// the hub matching deposits.
pub fn setup() -> MediationSetup {
    MediationSetup {
        fee_flat: 2,
        fee_ppm: 10_000,
        reveal_timeout: 2,
        settlement_window: 10,
        auto_deposit: 1_000_000,
        env: Vec::new(),
    }
}

pub fn u(n: u64) -> U256 {
    U256::from(n)
}

/// A device with key (`seed`, `n`), a channel of `deposit`, matched by the hub with
/// `hub_deposit`.
pub async fn device(
    hub: &HubProcess,
    seed: u8,
    n: u8,
    deposit: u64,
    hub_deposit: u64,
) -> TestDevice {
    matched_device(hub, test_key(seed, n).unwrap(), deposit, hub_deposit, WAIT)
        .await
        .unwrap()
}

/// `Mediation.PayerEvents` of the payer's channel.
pub async fn payer_events(payer: &TestDevice) -> tonic::Streaming<v1::PayerEvent> {
    payer
        .mediation()
        .payer_events(v1::PayerEventsRequest {
            channel_id: u256_bytes(&payer.channel_id().unwrap()),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Sends one message on the Pay stream and returns its answer.
pub async fn send(pay: &mut PaySession, msg: v1::PaymentMessage) -> PayAck {
    pay.send(msg).await.unwrap();
    next_ack(pay, WAIT).await.unwrap()
}

pub async fn quote(
    payer: &TestDevice,
    payee: Address,
    amount: u64,
) -> Result<v1::TransferQuote, tonic::Status> {
    payer
        .mediation()
        .quote(v1::QuoteRequest {
            payee: address_bytes(&payee),
            amount: u256_bytes(&u(amount)),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// `Mediation.RevealSecret` of `secret` for channel `channel`, as `payee`.
pub async fn reveal(
    payee: &TestDevice,
    channel: U256,
    secret: Secret,
) -> Result<v1::RevealSecretResponse, tonic::Status> {
    payee
        .mediation()
        .reveal_secret(v1::RevealSecretRequest {
            channel_id: u256_bytes(&channel),
            secret: secret.0 .0.to_vec(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Applies the next hub message to `payee` and returns it.
pub async fn receive_one(
    payee: &mut TestDevice,
    incoming: &mut tonic::Streaming<v1::HubPayment>,
) -> HubMessage {
    let m = next_item(incoming, "a hub message", WAIT).await.unwrap();
    let now = payee.ledger_now().await.unwrap();
    payee.apply_hub_message(m, now).unwrap()
}

pub fn assert_status(status: &tonic::Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(reason),
        "the reason {:?} does not say {reason:?}",
        status.message()
    );
}

/// Signs the payer's locked transfer with `sign` and sends it; the hub must refuse it with
/// `code` and `reason` and hold nothing of it: the payer takes it back (its channel as
/// before the signing, so the next proof reuses the nonce) and the hub's view of the payer's
/// channel is still `hub_view`.
pub async fn lock_refused(
    payer: &mut TestDevice,
    pay: &mut PaySession,
    sign: impl FnOnce(&mut TestDevice) -> v1::PaymentMessage,
    code: Code,
    reason: &str,
    hub_view: &ChannelSnapshot,
) {
    let saved = payer.save_channel().unwrap();
    let msg = sign(payer);
    let ack = send(pay, msg).await;
    assert_rejected(&ack, code, reason);
    payer.restore_channel(saved);
    assert_channel(payer, hub_view, reason).await;
}

pub fn assert_rejected(ack: &PayAck, code: Code, reason: &str) {
    match ack {
        PayAck::Rejected {
            code: c, reason: r, ..
        } => {
            assert_eq!(*c, code, "{ack:?}");
            assert!(
                r.contains(reason),
                "the reason {r:?} does not say {reason:?}"
            );
        }
        other => panic!("expected a rejection ({code:?}), got {other:?}"),
    }
}

/// The forward of a lock the hub accepted and forwarded.
pub fn forwarded(ack: &PayAck) -> Forward {
    match ack {
        PayAck::Accepted {
            forward: Some(f @ Forward::Forwarded { .. }),
            ..
        } => f.clone(),
        other => panic!("expected a forwarded lock, got {other:?}"),
    }
}

/// Waits until every lock of `secrethashes` (all expiring by `expiration`) has expired and
/// takes each back with a lock-expired message, which the hub must accept.
pub async fn take_back(
    payer: &mut TestDevice,
    pay: &mut PaySession,
    secrethashes: &[H256],
    expiration: u64,
) {
    let now = wait_ledger_time(payer, expiration, WAIT).await.unwrap();
    for h in secrethashes {
        let msg = payer.sign_lock_expired(*h, now).unwrap();
        let nonce = msg.request_id;
        match send(pay, msg).await {
            PayAck::Accepted {
                nonce: n,
                forward: None,
                ..
            } if n == nonce => {}
            other => panic!("the expired lock {h} was not taken back: {other:?}"),
        }
    }
}

/// `before` with the device's nonce at `nonce` and its capacity down by `held` (the locks
/// the hub holds from it).
pub fn holding(before: &ChannelSnapshot, nonce: u64, held: u64) -> ChannelSnapshot {
    ChannelSnapshot {
        device_nonce: nonce,
        device_capacity: before.device_capacity - u(held),
        ..before.clone()
    }
}

/// `before` with the device's nonce at `nonce` after it paid the hub `paid` (a lock of
/// amount + fee, unlocked).
pub fn payer_paid(before: &ChannelSnapshot, nonce: u64, paid: u64) -> ChannelSnapshot {
    ChannelSnapshot {
        device_nonce: nonce,
        device_balance: before.device_balance - u(paid),
        hub_balance: before.hub_balance + u(paid),
        device_capacity: before.device_capacity - u(paid),
        hub_capacity: before.hub_capacity + u(paid),
        ..before.clone()
    }
}

/// `before` with the hub's nonce at `hub_nonce` after the hub paid the device `amount`.
pub fn payee_paid(before: &ChannelSnapshot, hub_nonce: u64, amount: u64) -> ChannelSnapshot {
    ChannelSnapshot {
        hub_nonce,
        device_balance: before.device_balance + u(amount),
        hub_balance: before.hub_balance - u(amount),
        device_capacity: before.device_capacity + u(amount),
        hub_capacity: before.hub_capacity - u(amount),
        ..before.clone()
    }
}

/// The hub's view and the device's own record agree, and the hub's view is `expected`.
pub async fn assert_channel(d: &TestDevice, expected: &ChannelSnapshot, what: &str) {
    let hub_view = ChannelSnapshot::of(d).await.unwrap();
    assert_eq!(&hub_view, expected, "{what}: the hub's view");
    assert_eq!(
        ChannelSnapshot::of_device_record(d).unwrap(),
        hub_view,
        "{what}: the device's own record"
    );
}
