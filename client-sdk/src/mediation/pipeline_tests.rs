//! The mediated-payment steps through the real pipeline (`Shared::enqueue`, the Pay stream's
//! ack handling, the janitor's expiry, the payee's unlock), without a hub: the test plays the
//! hub's part by handing acks and hub-signed proofs to the same functions the background tasks
//! call. Nothing here reaches the network (the RPC connection is never made).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use channel_core::channel::Channel;
use channel_core::mediation::{FeePolicy, PaymentRequest, SignedPaymentRequest};
use channel_core::primitives::{Address, H256, U256};
use channel_core::{Domain, HashTimeLock, LocalSigner, Secret, Signer};
use tokio::sync::mpsc;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;
use voltlane_proto::v1::payment_accepted::Forward;
use voltlane_proto::v1::payment_ack::Outcome;

use super::{janitor, payee, payer, MediationInfo};
use crate::error::ClientError;
use crate::ledger::{DeviceLedger, HubLedger};
use crate::payments::{acked_through, handle_ack};
use crate::rpc::Rpc;
use crate::shared::{Queued, Shared};
use crate::store::{
    DeviceBatch, DeviceStore, ForwardRecord, HubRecord, IncomingState, IncomingTransfer,
    PaymentRequestRecord, QueuedKind,
};

/// Bound of every wait on the pipeline.
const WAIT: Duration = Duration::from_secs(5);

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn key(b: u8) -> LocalSigner {
    LocalSigner::from_bytes(&[b; 32]).unwrap()
}

fn domain() -> Domain {
    Domain {
        chain_id: u(337),
        token_network_address: Address([0x44; 20]),
    }
}

fn secret() -> Secret {
    Secret(H256([7; 32]))
}

fn request() -> SignedPaymentRequest {
    PaymentRequest {
        domain: domain(),
        payee: key(3).address(),
        amount: u(100),
        secrethash: secret().hash(),
        payment_id: 9,
        expires_at: 1_000,
        memo_hash: H256::ZERO,
    }
    .sign(&key(3))
    .unwrap()
}

fn lock(expiration: u64) -> HashTimeLock {
    HashTimeLock {
        expiration,
        amount: u(102),
        secrethash: secret().hash(),
    }
}

fn channel(us: &LocalSigner, them: &LocalSigner) -> Channel {
    let mut ch = Channel::new(domain(), u(5), us.address(), them.address());
    ch.handle_ledger_deposit(us.address(), u(1_000)).unwrap();
    ch.handle_ledger_deposit(them.address(), u(1_000)).unwrap();
    ch
}

/// The client state of `us` with a funded channel with the hub `hub`, and its Pay queue.
fn client(us: &LocalSigner, hub: &LocalSigner) -> (Arc<Shared>, mpsc::UnboundedReceiver<Queued>) {
    let record = HubRecord {
        hub_address: hub.address(),
        domain: domain(),
        settlement_timeout: 100,
    };
    let mediation = MediationInfo {
        fees: FeePolicy {
            flat: u(2),
            proportional_ppm: 0,
        },
        reveal_timeout: 10,
    };
    let rpc = Rpc::unconnected(us.clone());
    Shared::new(
        rpc.clone(),
        DeviceLedger::Hub(HubLedger::new(rpc)),
        DeviceStore::in_memory(),
        record,
        mediation,
        Some(channel(us, hub)),
    )
}

fn accepted(nonce: u64, transferred: u64, forward: Option<Forward>) -> v1::PaymentAck {
    v1::PaymentAck {
        request_id: nonce,
        outcome: Some(Outcome::Accepted(v1::PaymentAccepted {
            nonce,
            transferred_amount: u256_bytes(&u(transferred)),
            forward,
        })),
    }
}

fn forwarded() -> Forward {
    Forward::Forwarded(v1::LockedTransferResponse {
        payee_channel_id: u256_bytes(&u(6)),
        fee: u256_bytes(&u(2)),
        outgoing_lock: Some(
            (&HashTimeLock {
                amount: u(100),
                ..lock(490)
            })
                .into(),
        ),
    })
}

fn queued(queue: &mut mpsc::UnboundedReceiver<Queued>) -> Vec<u64> {
    std::iter::from_fn(|| queue.try_recv().ok().map(|(nonce, _)| nonce)).collect()
}

#[tokio::test]
async fn a_forwarded_transfer_completes_once_the_secret_is_back_and_the_unlock_acknowledged() {
    let (payer_key, hub) = (key(1), key(2));
    let (shared, mut queue) = client(&payer_key, &hub);
    let h = secret().hash();

    let reply = payer::send_lock(&shared, &request(), lock(500), u(2), 10)
        .await
        .unwrap();
    assert_eq!(queued(&mut queue), [1]);
    let entry = shared.store.unacked(1).unwrap().unwrap();
    assert!(matches!(entry.kind, QueuedKind::LockedTransfer { lock: l, .. } if l == lock(500)));
    assert_eq!(shared.store.outgoing(&h).unwrap().unwrap().lock_nonce, 1);

    // The same request again, while the first is under way: refused, nothing signed.
    let again = payer::send_lock(&shared, &request(), lock(600), u(2), 10).await;
    assert!(matches!(again, Err(ClientError::PaymentInProgress { .. })));
    assert!(queued(&mut queue).is_empty());
    assert_eq!(shared.require_channel().unwrap().our().nonce(), 1);

    handle_ack(&shared, accepted(1, 0, Some(forwarded())))
        .await
        .unwrap();
    let acked = reply.await.unwrap().unwrap();
    assert!(matches!(acked.forward, Some(ForwardRecord::Forwarded { fee, .. }) if fee == u(2)));
    let t = shared.store.outgoing(&h).unwrap().unwrap();
    assert_eq!(t.forward, acked.forward);
    assert_eq!(shared.store.unacked(1).unwrap(), None);

    let waiter = {
        let shared = Arc::clone(&shared);
        let mut changes = shared.subscribe_transfers();
        tokio::spawn(async move { payer::wait_outcome(&shared, &h, &mut changes).await })
    };

    // The payee's secret comes back: our unlock goes out once, and only its ack completes.
    payer::unlock_with(&shared, secret()).await.unwrap();
    payer::unlock_with(&shared, secret()).await.unwrap();
    assert_eq!(queued(&mut queue), [2]);
    let ch = shared.require_channel().unwrap();
    assert!(ch.our().locks.is_empty());
    assert_eq!(ch.our().transferred(), u(102));
    let t = shared.store.outgoing(&h).unwrap().unwrap();
    assert_eq!((t.secret, t.unlock_nonce), (Some(secret()), Some(2)));
    assert!(!waiter.is_finished());

    handle_ack(&shared, accepted(2, 102, None)).await.unwrap();
    let receipt = tokio::time::timeout(WAIT, waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(receipt.verify(&domain()), Ok(()));
    assert_eq!(
        (receipt.fee, receipt.lock_amount, receipt.unlock_nonce),
        (u(2), u(102), 2)
    );
    assert_eq!(receipt.request, request());

    let paid_twice = payer::send_lock(&shared, &request(), lock(900), u(2), 20).await;
    assert!(matches!(paid_twice, Err(ClientError::AlreadyPaid { .. })));
    assert!(queued(&mut queue).is_empty());
}

#[tokio::test]
async fn a_refused_forward_fails_at_once_and_its_lock_comes_back_after_expiry() {
    let (shared, mut queue) = client(&key(1), &key(2));
    let h = secret().hash();
    let reply = payer::send_lock(&shared, &request(), lock(500), u(2), 10)
        .await
        .unwrap();
    let offline = Forward::NotForwarded(v1::PaymentRejected {
        code: tonic::Code::FailedPrecondition as i32,
        reason: "payee offline: no payment stream".into(),
        error_reason: v1::ErrorReason::PayeeOffline as i32,
    });
    handle_ack(&shared, accepted(1, 0, Some(offline)))
        .await
        .unwrap();
    reply.await.unwrap().unwrap();
    let mut changes = shared.subscribe_transfers();
    let outcome = payer::wait_outcome(&shared, &h, &mut changes).await;
    assert!(
        matches!(outcome, Err(ClientError::PayeeOffline { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        shared
            .require_channel()
            .unwrap()
            .our_distributable()
            .unwrap(),
        u(898),
        "the lock is held until it expires"
    );

    janitor::expire(&shared, h, 499).await.unwrap();
    assert_eq!(queued(&mut queue), [1], "not expired yet: nothing signed");
    janitor::expire(&shared, h, 500).await.unwrap();
    assert_eq!(queued(&mut queue), [2]);
    let entry = shared.store.unacked(2).unwrap().unwrap();
    assert_eq!(entry.kind, QueuedKind::LockExpired { secrethash: h });
    let ch = shared.require_channel().unwrap();
    assert!(ch.our().locks.is_empty());
    assert_eq!(ch.our_distributable().unwrap(), u(1_000));
    assert_eq!(
        shared.store.outgoing(&h).unwrap().unwrap().expired_nonce,
        Some(2)
    );
    janitor::expire(&shared, h, 600).await.unwrap();
    assert!(queued(&mut queue).is_empty(), "taken back once");

    // Failed and taken back: the request may be paid again.
    payer::send_lock(&shared, &request(), lock(900), u(2), 600)
        .await
        .unwrap();
    assert_eq!(queued(&mut queue), [3]);
    let t = shared.store.outgoing(&h).unwrap().unwrap();
    assert_eq!((t.lock_nonce, t.forward, t.expired_nonce), (3, None, None));
}

#[tokio::test]
async fn a_lock_the_hub_holds_after_a_reconnect_waits_for_its_outcome() {
    let (shared, _queue) = client(&key(1), &key(2));
    let h = secret().hash();
    let reply = payer::send_lock(&shared, &request(), lock(500), u(2), 10)
        .await
        .unwrap();
    // The ack was lost; the hub's channel state says it holds nonce 1.
    let known = shared.store.unacked_all().unwrap();
    acked_through(&shared, 1, &known, None).await.unwrap();
    let acked = reply.await.unwrap().unwrap();
    assert_eq!(acked.forward, Some(ForwardRecord::Unknown));
    let mut changes = shared.subscribe_transfers();
    assert!(tokio::time::timeout(
        Duration::from_millis(50),
        payer::wait_outcome(&shared, &h, &mut changes)
    )
    .await
    .is_err());

    payer::record_failure(&shared, &h, "payee did not claim in time".into())
        .await
        .unwrap();
    let outcome = payer::wait_outcome(&shared, &h, &mut changes).await;
    assert!(
        matches!(&outcome, Err(ClientError::TransferFailed(r)) if r == "payee did not claim in time"),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn a_refused_lock_is_taken_back_and_is_the_payments_outcome() {
    let (shared, _queue) = client(&key(1), &key(2));
    let h = secret().hash();
    let reply = payer::send_lock(&shared, &request(), lock(500), u(2), 10)
        .await
        .unwrap();
    let rejected = v1::PaymentAck {
        request_id: 1,
        outcome: Some(Outcome::Rejected(v1::PaymentRejected {
            code: tonic::Code::FailedPrecondition as i32,
            reason: "payee offline: 0x.. has no receive stream open".into(),
            error_reason: v1::ErrorReason::PayeeOffline as i32,
        })),
    };
    handle_ack(&shared, rejected).await.unwrap();
    assert!(matches!(
        reply.await.unwrap(),
        Err(ClientError::PayeeOffline { .. })
    ));
    let mut changes = shared.subscribe_transfers();
    assert!(matches!(
        payer::wait_outcome(&shared, &h, &mut changes).await,
        Err(ClientError::PayeeOffline { .. })
    ));
    // The hub holds nothing of it: the lock is gone from our channel, the proof from the
    // log, and the next proof takes its nonce again.
    let ch = shared.require_channel().unwrap();
    assert_eq!(ch.our().nonce(), 0);
    assert!(ch.our().locks.is_empty());
    assert_eq!(shared.store.unacked(1).unwrap(), None);
    let next = shared.enqueue_payment(u(3)).await.unwrap();
    drop(next);
    assert_eq!(shared.require_channel().unwrap().our().nonce(), 1);
    // The request may be paid again.
    payer::send_lock(&shared, &request(), lock(500), u(2), 10)
        .await
        .unwrap();
}

#[tokio::test]
async fn nothing_is_signed_on_top_of_an_unanswered_lock() {
    let (shared, _queue) = client(&key(1), &key(2));
    let _reply = payer::send_lock(&shared, &request(), lock(500), u(2), 10)
        .await
        .unwrap();
    let shared2 = shared.clone();
    let payment = tokio::spawn(async move { shared2.enqueue_payment(u(3)).await.map(drop) });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !payment.is_finished(),
        "a payment was signed on top of the lock"
    );
    assert_eq!(shared.require_channel().unwrap().our().nonce(), 1);
    let accepted = v1::PaymentAck {
        request_id: 1,
        outcome: Some(Outcome::Accepted(v1::PaymentAccepted {
            nonce: 1,
            transferred_amount: u256_bytes(&U256::ZERO),
            forward: None,
        })),
    };
    handle_ack(&shared, accepted).await.unwrap();
    payment.await.unwrap().unwrap();
    assert_eq!(shared.require_channel().unwrap().our().nonce(), 2);
}

#[tokio::test]
async fn the_hubs_unlock_is_applied_once_and_published_once() {
    let (payee_key, hub) = (key(3), key(2));
    let (shared, _queue) = client(&payee_key, &hub);
    let mut hub_side = channel(&hub, &payee_key);
    let s = secret();
    let incoming_lock = HashTimeLock {
        amount: u(100),
        ..lock(490)
    };
    let mut batch = DeviceBatch::new();
    batch
        .payment_request(&PaymentRequestRecord {
            request: request(),
            secret: s,
            paid_nonce: None,
        })
        .unwrap();
    shared.store.commit(batch).await.unwrap();
    hub_side
        .send_locked_transfer(incoming_lock, 10, H256::ZERO, &hub)
        .unwrap();
    let lock_proof = *hub_side.our_latest_proof().unwrap();
    let apply_lock = |ch: &mut Channel, _: &mut DeviceBatch| {
        Ok(ch.handle_locked_transfer(&lock_proof, &incoming_lock, 10)?)
    };
    assert!(payee::once(&shared, &lock_proof, apply_lock)
        .await
        .unwrap()
        .is_some());
    // Delivered again (a stream replay): a no-op, not a duplicate-lock error.
    assert_eq!(
        payee::once(&shared, &lock_proof, apply_lock).await.unwrap(),
        None
    );
    let mut batch = DeviceBatch::new();
    batch
        .incoming(&IncomingTransfer {
            channel_id: u(5),
            lock: incoming_lock,
            payer: key(1).address(),
            payment_request: request(),
            lock_nonce: 1,
            state: IncomingState::Revealing,
        })
        .unwrap();
    shared.store.commit(batch).await.unwrap();
    assert_eq!(shared.require_channel().unwrap().partner().locked(), u(100));

    let mut payments = shared.mediated_payments.subscribe();
    // A secret that opens no lock of the hub's is refused and changes nothing.
    hub_side.send_unlock(s, H256::ZERO, &hub).unwrap();
    let unlock_proof = *hub_side.our_latest_proof().unwrap();
    let wrong = payee::apply_unlock(&shared, &unlock_proof, Secret(H256([8; 32]))).await;
    assert!(wrong.is_err());
    assert_eq!(shared.require_channel().unwrap().partner().nonce(), 1);

    let paid = payee::apply_unlock(&shared, &unlock_proof, s)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (paid.payer, paid.payment_id, paid.amount, paid.nonce),
        (key(1).address(), 9, u(100), 2)
    );
    assert_eq!(paid.secrethash, s.hash());
    assert_eq!(payments.try_recv().unwrap(), paid);
    let ch = shared.require_channel().unwrap();
    assert_eq!(ch.partner().transferred(), u(100));
    assert_eq!(ch.our_balance().unwrap(), u(1_100));
    assert_eq!(
        shared
            .store
            .payment_request(&s.hash())
            .unwrap()
            .unwrap()
            .paid_nonce,
        Some(2)
    );
    assert_eq!(
        shared.store.incoming(&s.hash()).unwrap().unwrap().state,
        IncomingState::Paid { unlock_nonce: 2 }
    );

    // The same unlock again (the stream after the reveal's answer): nothing more.
    assert_eq!(
        payee::apply_unlock(&shared, &unlock_proof, s)
            .await
            .unwrap(),
        None
    );
    assert!(payments.try_recv().is_err());
}
