#![allow(clippy::unwrap_used, clippy::expect_used)]

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::mediation::{PaymentRequest, SignedPaymentRequest};
use channel_core::primitives::{Address, H256, U256};
use channel_core::{Domain, HashTimeLock, LocalSigner, Secret, Signer};

use super::decide::*;
use super::{MediatedReceipt, MediationOptions, ReceiptError};
use crate::error::{ClientError, HubReason};
use crate::store::{
    ForwardRecord, OutgoingTransfer, PaymentRequestRecord, QueuedKind, Refusal, UnackedPayment,
};
use crate::watcher::needs_watch;
use voltlane_proto::v1::{self, ErrorReason};

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn key(b: u8) -> LocalSigner {
    LocalSigner::from_bytes(&[b; 32]).unwrap()
}

fn payer() -> LocalSigner {
    key(1)
}

fn hub() -> LocalSigner {
    key(2)
}

fn payee() -> LocalSigner {
    key(3)
}

fn domain() -> Domain {
    Domain {
        chain_id: u(337),
        token_network_address: Address([0x44; 20]),
    }
}

fn secret(b: u8) -> Secret {
    Secret(H256([b; 32]))
}

fn request(amount: u64, s: &Secret) -> SignedPaymentRequest {
    PaymentRequest {
        domain: domain(),
        payee: payee().address(),
        amount: u(amount),
        secrethash: s.hash(),
        payment_id: 9,
        expires_at: 1_000,
        memo_hash: H256::ZERO,
    }
    .sign(&payee())
    .unwrap()
}

/// `us`'s channel with `them`, both sides funded with 1,000.
fn channel(us: &LocalSigner, them: &LocalSigner) -> Channel {
    let mut ch = Channel::new(domain(), u(5), us.address(), them.address());
    ch.handle_ledger_deposit(us.address(), u(1_000)).unwrap();
    ch.handle_ledger_deposit(them.address(), u(1_000)).unwrap();
    ch
}

fn lock(amount: u64, expiration: u64, s: &Secret) -> HashTimeLock {
    HashTimeLock {
        expiration,
        amount: u(amount),
        secrethash: s.hash(),
    }
}

/// A transfer record of 100 + fee 2, locked with nonce 1.
fn transfer(s: &Secret) -> OutgoingTransfer {
    OutgoingTransfer {
        channel_id: u(5),
        request: request(100, s),
        lock: lock(102, 500, s),
        fee: u(2),
        lock_nonce: 1,
        forward: None,
        rejected: None,
        failure: None,
        secret: None,
        unlock_nonce: None,
        unlock_acked: false,
        expired_nonce: None,
        previous_proof: None,
    }
}

/// Our channel with one locked transfer of `t` in it, and the queued entry.
fn locked(t: &OutgoingTransfer) -> (Channel, UnackedPayment) {
    let mut ch = channel(&payer(), &hub());
    ch.send_locked_transfer(t.lock, 10, H256::ZERO, &payer())
        .unwrap();
    let entry = UnackedPayment {
        proof: *ch.our_latest_proof().unwrap(),
        amount: t.lock.amount,
        kind: QueuedKind::LockedTransfer {
            lock: t.lock,
            payment_request: t.request,
        },
    };
    (ch, entry)
}

fn refusal(code: tonic::Code, reason: &str) -> Refusal {
    Refusal {
        code: code as i32,
        reason: reason.into(),
    }
}

/// The record of a Pay rejection with a typed reason, as the SDK writes it.
fn refusal_with(code: tonic::Code, why: ErrorReason, message: &str) -> Refusal {
    refusal_record(&v1::PaymentRejected {
        code: code as i32,
        reason: message.into(),
        error_reason: why as i32,
    })
}

/// A status as the hub sends it: `code`, `message` and `why` in its ErrorInfo.
fn hub_status(code: tonic::Code, why: ErrorReason, message: &str) -> tonic::Status {
    voltlane_proto::errors::status(code, why, message)
}

// ----- payer -----

#[test]
fn lock_expiration_takes_the_lifetime_but_never_less_than_the_hubs_floor() {
    assert_eq!(lock_expiration(1_000, 30, 1_010, None).unwrap(), 1_030);
    // The hub wants later: one second after its minimum.
    assert_eq!(lock_expiration(1_000, 30, 1_050, None).unwrap(), 1_051);
    // A zero lifetime still leaves the lock alive at `now`.
    assert_eq!(lock_expiration(1_000, 0, 0, None).unwrap(), 1_001);
    assert!(matches!(
        lock_expiration(u64::MAX - 5, 30, 0, None),
        Err(ClientError::LedgerTimeOverflow { .. })
    ));
    assert!(matches!(
        lock_expiration(1, 1, u64::MAX, None),
        Err(ClientError::LedgerTimeOverflow { .. })
    ));
}

#[test]
fn lock_expiration_never_exceeds_the_hubs_bound() {
    // The lifetime asks for more than the settlement window allows: the bound wins.
    assert_eq!(
        lock_expiration(1_000, 600, 1_010, Some(1_120)).unwrap(),
        1_120
    );
    // Within the bound the lifetime stands.
    assert_eq!(
        lock_expiration(1_000, 30, 1_010, Some(1_120)).unwrap(),
        1_030
    );
    // The floor is at the bound's edge: exactly the bound.
    assert_eq!(
        lock_expiration(1_000, 30, 1_119, Some(1_120)).unwrap(),
        1_120
    );
    // No expiration fits both: the hub's quote is wrong.
    assert!(matches!(
        lock_expiration(1_000, 30, 1_120, Some(1_120)),
        Err(ClientError::HubMisbehaved(_))
    ));
}

#[test]
fn options_default_from_the_hubs_reveal_timeout() {
    let o = MediationOptions::new();
    assert_eq!(o.lock_lifetime_for(20), 60);
    assert_eq!(o.reveal_margin_for(20), 10);
    assert_eq!(o.reveal_margin_for(1), 1, "at least one second");
    assert_eq!(o.register_lead_for(40), 10);
    assert_eq!(o.register_lead_for(1), 2, "at least two monitor ticks");
    let o = o.lock_lifetime(7).payee_reveal_margin(3);
    assert_eq!(o.lock_lifetime_for(20), 7);
    assert_eq!(o.reveal_margin_for(20), 3);
}

#[test]
fn refusals_read_as_precise_errors() {
    let e = refusal_error(
        tonic::Code::FailedPrecondition,
        Some(HubReason::Known(ErrorReason::PayeeOffline)),
        "payee offline: no payment stream".into(),
    );
    assert!(matches!(e, ClientError::PayeeOffline { ref reason } if reason.contains("offline")));
    let e = refusal_error(
        tonic::Code::ResourceExhausted,
        Some(HubReason::Known(ErrorReason::NoCapacity)),
        "hub has no capacity toward the payee: 5 available, 100 needed".into(),
    );
    assert!(matches!(e, ClientError::NoCapacity { .. }), "{e}");
    assert_eq!(e.code(), Some(tonic::Code::ResourceExhausted));
    assert!(e
        .hub_reason()
        .is_some_and(|r| r.is(ErrorReason::NoCapacity)));
    for (code, why, reason) in [
        (
            tonic::Code::FailedPrecondition,
            Some(HubReason::Known(ErrorReason::ExpiryTooSoon)),
            "incoming lock expires too soon",
        ),
        (
            tonic::Code::NotFound,
            Some(HubReason::Known(ErrorReason::NoPayeeChannel)),
            "payee has no open channel",
        ),
        (
            tonic::Code::AlreadyExists,
            Some(HubReason::Known(ErrorReason::SecrethashUsed)),
            "secrethash already used",
        ),
        (tonic::Code::ResourceExhausted, None, "too many streams"),
        // A reason newer than this SDK is kept as it is, and decides nothing.
        (
            tonic::Code::FailedPrecondition,
            Some(HubReason::Other("SOMETHING_NEWER".into())),
            "payee offline, no capacity",
        ),
    ] {
        let e = refusal_error(code, why.clone(), reason.into());
        assert!(
            matches!(&e, ClientError::MediationRefused { code: c, hub_reason: w, reason: r } if *c == code && *w == why && r == reason),
            "{e}"
        );
    }
}

#[test]
fn the_decision_follows_the_typed_reason_not_the_message() {
    // PAYEE_OFFLINE with a message that says nothing of the kind: offline.
    let status = hub_status(
        tonic::Code::FailedPrecondition,
        ErrorReason::PayeeOffline,
        "la destinataria no tiene flujo de recepcion abierto",
    );
    let ClientError::Rpc {
        code,
        hub_reason,
        message,
        ..
    } = ClientError::rpc("Mediation.Quote", status)
    else {
        panic!("not an Rpc error");
    };
    assert_eq!(
        hub_reason,
        Some(HubReason::Known(ErrorReason::PayeeOffline))
    );
    assert!(matches!(
        refusal_error(code, hub_reason, message),
        ClientError::PayeeOffline { .. }
    ));
    // The old English words without the reason decide nothing any more.
    let status = tonic::Status::failed_precondition("payee offline: no receive stream");
    let e = ClientError::rpc("Mediation.Quote", status);
    assert_eq!(e.hub_reason(), None);
    let ClientError::Rpc { code, message, .. } = e else {
        panic!("not an Rpc error");
    };
    assert!(matches!(
        refusal_error(code, None, message),
        ClientError::MediationRefused { .. }
    ));
    // NO_CAPACITY in a Pay rejection's record, whatever its message: no capacity.
    let mut t = transfer(&secret(7));
    t.forward = Some(ForwardRecord::NotForwarded(refusal_with(
        tonic::Code::ResourceExhausted,
        ErrorReason::NoCapacity,
        "quota de canal agotada",
    )));
    assert!(
        matches!(t.outcome(), Some(Err(ClientError::NoCapacity { ref reason })) if reason == "quota de canal agotada")
    );
}

#[test]
fn refusal_records_keep_the_typed_reason() {
    let r = refusal_with(
        tonic::Code::FailedPrecondition,
        ErrorReason::PayeeOffline,
        "[x] payee offline",
    );
    assert_eq!(r.reason, "[PAYEE_OFFLINE] [x] payee offline");
    assert_eq!(
        refusal_parts(&r),
        (
            tonic::Code::FailedPrecondition,
            Some(HubReason::Known(ErrorReason::PayeeOffline)),
            "[x] payee offline".to_string()
        )
    );
    // A record without a reason (an older SDK's, or a hub before reasons).
    for text in ["payee offline", "[x] payee offline", "[] payee offline"] {
        let r = refusal(tonic::Code::FailedPrecondition, text);
        assert_eq!(refusal_parts(&r).1, None, "{text}");
        assert_eq!(refusal_parts(&r).2, text);
    }
    let unspecified = refusal_record(&v1::PaymentRejected {
        code: tonic::Code::InvalidArgument as i32,
        reason: "bad".into(),
        error_reason: 0,
    });
    assert_eq!(unspecified.reason, "bad");
    let newer = refusal_record(&v1::PaymentRejected {
        code: tonic::Code::InvalidArgument as i32,
        reason: "bad".into(),
        error_reason: 9_999,
    });
    assert_eq!(
        refusal_parts(&newer).1,
        Some(HubReason::Other("9999".into()))
    );
}

#[test]
fn a_transfer_outcome_follows_its_record() {
    let s = secret(7);
    let mut t = transfer(&s);
    assert!(t.outcome().is_none(), "just sent");
    t.forward = Some(ForwardRecord::Forwarded {
        fee: u(2),
        outgoing_lock: lock(100, 480, &s),
    });
    assert!(t.outcome().is_none(), "forwarded, waiting for the payee");

    // The secret alone is not enough: the receipt comes with the hub's ack of our unlock.
    t.secret = Some(s);
    t.unlock_nonce = Some(2);
    assert!(t.outcome().is_none());
    t.unlock_acked = true;
    let receipt = t.outcome().unwrap().unwrap();
    assert_eq!(
        receipt,
        MediatedReceipt {
            request: t.request,
            secret: s,
            fee: u(2),
            lock_amount: u(102),
            unlock_nonce: 2,
        }
    );

    let mut t = transfer(&s);
    t.forward = Some(ForwardRecord::NotForwarded(refusal_with(
        tonic::Code::FailedPrecondition,
        ErrorReason::PayeeOffline,
        "payee offline",
    )));
    assert!(matches!(
        t.outcome(),
        Some(Err(ClientError::PayeeOffline { .. }))
    ));

    let mut t = transfer(&s);
    t.forward = Some(ForwardRecord::Unknown);
    t.failure = Some("payee did not claim".into());
    assert!(
        matches!(t.outcome(), Some(Err(ClientError::TransferFailed(r))) if r == "payee did not claim")
    );

    let mut t = transfer(&s);
    t.forward = Some(ForwardRecord::Unknown);
    t.expired_nonce = Some(3);
    assert!(matches!(t.outcome(), Some(Err(ClientError::Expired))));

    // The lock's own proof refused (the hub holds nothing of it): read as a refused forward.
    let mut t = transfer(&s);
    t.rejected = Some((
        t.lock_nonce,
        refusal(tonic::Code::InvalidArgument, "bad signature"),
    ));
    assert!(matches!(
        t.outcome(),
        Some(Err(ClientError::MediationRefused {
            code: tonic::Code::InvalidArgument,
            ..
        }))
    ));
    // A later proof of the transfer refused (an unlock, a lock-expired).
    let mut t = transfer(&s);
    t.unlock_nonce = Some(t.lock_nonce + 1);
    t.rejected = Some((
        t.lock_nonce + 1,
        refusal(tonic::Code::InvalidArgument, "bad signature"),
    ));
    assert!(matches!(
        t.outcome(),
        Some(Err(ClientError::PaymentRejected {
            code: tonic::Code::InvalidArgument,
            ..
        }))
    ));
}

#[test]
fn a_request_is_paid_at_most_once() {
    let s = secret(7);
    assert!(check_payable(None, false).is_ok());

    let mut t = transfer(&s);
    assert!(matches!(
        check_payable(Some(&t), true),
        Err(ClientError::PaymentInProgress { secrethash }) if secrethash == s.hash()
    ));

    // Failed: may be paid again once the lock is taken back, not before.
    t.forward = Some(ForwardRecord::NotForwarded(refusal(
        tonic::Code::FailedPrecondition,
        "payee offline",
    )));
    assert!(matches!(
        check_payable(Some(&t), true),
        Err(ClientError::PaymentInProgress { .. })
    ));
    assert!(check_payable(Some(&t), false).is_ok());

    // The secret came back: paid, even while the unlock waits for its ack.
    let mut t = transfer(&s);
    t.secret = Some(s);
    t.unlock_nonce = Some(2);
    for pending in [true, false] {
        assert!(matches!(
            check_payable(Some(&t), pending),
            Err(ClientError::AlreadyPaid { .. })
        ));
    }
    t.unlock_acked = true;
    assert!(matches!(
        check_payable(Some(&t), false),
        Err(ClientError::AlreadyPaid { .. })
    ));

    // No outcome yet, lock gone (e.g. a record from an older channel): still refused.
    let t = transfer(&s);
    assert!(matches!(
        check_payable(Some(&t), false),
        Err(ClientError::PaymentInProgress { .. })
    ));
}

#[test]
fn acks_and_rejections_update_only_the_records_own_proofs() {
    let s = secret(7);
    let mut t = transfer(&s);
    let (mut ch, entry) = locked(&t);
    let forwarded = ForwardRecord::Forwarded {
        fee: u(2),
        outgoing_lock: lock(100, 480, &s),
    };
    record_ack(&mut t, &entry, Some(&forwarded));
    assert_eq!(t.forward, Some(forwarded.clone()));
    // A later (resync) ack without the answer does not overwrite it.
    record_ack(&mut t, &entry, None);
    assert_eq!(t.forward, Some(forwarded));

    // Resync-only knowledge: the hub holds the lock, its answer is lost.
    let mut lost = transfer(&s);
    record_ack(&mut lost, &entry, None);
    assert_eq!(lost.forward, Some(ForwardRecord::Unknown));

    // An ack of a proof with another nonce (an older attempt) is not this record's.
    let mut retried = transfer(&s);
    retried.lock_nonce = 4;
    record_ack(&mut retried, &entry, None);
    assert_eq!(retried.forward, None);

    // Our unlock, acknowledged.
    ch.send_unlock(s, H256::ZERO, &payer()).unwrap();
    let unlock = UnackedPayment {
        proof: *ch.our_latest_proof().unwrap(),
        amount: u(102),
        kind: QueuedKind::Unlock { secret: s },
    };
    t.secret = Some(s);
    t.unlock_nonce = Some(2);
    record_ack(&mut t, &unlock, None);
    assert!(t.unlock_acked);
    assert!(t.outcome().unwrap().is_ok());

    let mut t = transfer(&s);
    record_rejection(
        &mut t,
        &unlock,
        refusal(tonic::Code::InvalidArgument, "not ours"),
    );
    assert_eq!(t.rejected, None, "nonce 2 is not a proof of this record");
    record_rejection(
        &mut t,
        &entry,
        refusal(tonic::Code::InvalidArgument, "bad signature"),
    );
    assert_eq!(
        t.rejected,
        Some((1, refusal(tonic::Code::InvalidArgument, "bad signature")))
    );
}

// ----- payee -----

fn request_record(amount: u64, s: &Secret) -> PaymentRequestRecord {
    PaymentRequestRecord {
        request: request(amount, s),
        secret: *s,
        paid_nonce: None,
    }
}

#[test]
fn the_payee_reveals_only_for_a_lock_that_pays_its_request_in_time() {
    let s = secret(7);
    let rec = request_record(100, &s);
    let margin = 10;
    assert_eq!(
        reveal_decision(Some(&rec), &lock(100, 200, &s), 100, margin),
        Ok(s)
    );
    assert_eq!(
        reveal_decision(Some(&rec), &lock(150, 200, &s), 100, margin),
        Ok(s),
        "more than asked is fine"
    );
    assert_eq!(
        reveal_decision(None, &lock(100, 200, &s), 100, margin),
        Err(NoReveal::UnknownRequest)
    );
    // A record under the lock's hash whose secret does not open it is not ours.
    let other = request_record(100, &secret(8));
    assert_eq!(
        reveal_decision(Some(&other), &lock(100, 200, &s), 100, margin),
        Err(NoReveal::UnknownRequest)
    );
    assert_eq!(
        reveal_decision(Some(&rec), &lock(99, 200, &s), 100, margin),
        Err(NoReveal::AmountTooLow {
            locked: u(99),
            wanted: u(100)
        })
    );
    assert_eq!(
        reveal_decision(Some(&rec), &lock(100, 110, &s), 100, margin),
        Err(NoReveal::TooCloseToExpiry {
            expiration: 110,
            now: 100,
            margin
        })
    );
    assert_eq!(
        reveal_decision(Some(&rec), &lock(100, 111, &s), 100, margin),
        Ok(s)
    );
    assert_eq!(
        reveal_decision(Some(&rec), &lock(100, 2_000, &s), 1_000, margin),
        Err(NoReveal::RequestExpired {
            expires_at: 1_000,
            now: 1_000
        })
    );
    let mut paid = rec.clone();
    paid.paid_nonce = Some(4);
    assert_eq!(
        reveal_decision(Some(&paid), &lock(100, 200, &s), 100, margin),
        Err(NoReveal::AlreadyPaid { paid_nonce: 4 })
    );
}

// ----- janitor -----

#[test]
fn the_janitor_takes_back_expired_locks_whose_secret_is_unknown() {
    let (a, b, c) = (secret(1), secret(2), secret(3));
    let mut ch = channel(&payer(), &hub());
    for (s, exp) in [(&a, 100), (&b, 100), (&c, 300)] {
        ch.send_locked_transfer(lock(10, exp, s), 10, H256::ZERO, &payer())
            .unwrap();
    }
    let none = |_: &H256| None;
    assert_eq!(janitor_plan(&ch, 99, none), JanitorPlan::default());
    assert_eq!(
        janitor_plan(&ch, 100, none),
        JanitorPlan {
            unlock: vec![],
            expire: vec![a.hash(), b.hash()],
        }
    );
    // The secret of `b` came back: unlock it, expired or not.
    let known = |h: &H256| (*h == b.hash()).then_some(b);
    assert_eq!(
        janitor_plan(&ch, 100, known),
        JanitorPlan {
            unlock: vec![b],
            expire: vec![a.hash()],
        }
    );
    // A secret that does not open the lock is not used.
    let wrong = |h: &H256| (*h == b.hash()).then_some(c);
    assert_eq!(janitor_plan(&ch, 100, wrong).unlock, vec![]);

    // `a`'s secret was registered on the ledger before it expired: it is claimed, never
    // expired, and (the payee was paid) we unlock it.
    ch.handle_ledger_event(&LedgerEvent {
        seq: 1,
        time: 50,
        kind: LedgerEventKind::SecretRegistered {
            secrethash: a.hash(),
            secret: a,
        },
    })
    .unwrap();
    assert_eq!(
        janitor_plan(&ch, 100, none),
        JanitorPlan {
            unlock: vec![a],
            expire: vec![b.hash()],
        }
    );
}

#[test]
fn the_janitor_leaves_a_channel_that_is_not_open_to_the_ledger() {
    let a = secret(1);
    let mut ch = channel(&payer(), &hub());
    ch.send_locked_transfer(lock(10, 100, &a), 10, H256::ZERO, &payer())
        .unwrap();
    ch.handle_ledger_event(&LedgerEvent {
        seq: 1,
        time: 150,
        kind: LedgerEventKind::ChannelClosed {
            channel_id: u(5),
            closing_participant: hub().address(),
            nonce: 0,
            balance_hash: H256::ZERO,
        },
    })
    .unwrap();
    assert!(matches!(ch.phase(), ChannelPhase::Closed { .. }));
    assert_eq!(janitor_plan(&ch, 200, |_| None), JanitorPlan::default());
}

// ----- monitor -----

#[test]
fn the_monitor_watches_an_open_channel_only_for_owed_locks_whose_secret_we_know() {
    let s = secret(7);
    let mut payee_side = channel(&payee(), &hub());
    let mut hub_side = channel(&hub(), &payee());
    assert!(!needs_watch(&payee_side, false));
    let l = lock(100, 200, &s);
    hub_side
        .send_locked_transfer(l, 10, H256::ZERO, &hub())
        .unwrap();
    payee_side
        .handle_locked_transfer(hub_side.our_latest_proof().unwrap(), &l, 10)
        .unwrap();
    assert!(
        !needs_watch(&payee_side, false),
        "secret unknown: nothing to claim"
    );
    payee_side.learn_secret(s).unwrap();
    assert!(needs_watch(&payee_side, false));
    hub_side.send_unlock(s, H256::ZERO, &hub()).unwrap();
    payee_side
        .handle_unlock(hub_side.our_latest_proof().unwrap(), &s)
        .unwrap();
    assert!(!needs_watch(&payee_side, false), "unlocked off-chain");

    // Our own locks toward the hub need no watching while open.
    let mut payer_side = channel(&payer(), &hub());
    payer_side
        .send_locked_transfer(l, 10, H256::ZERO, &payer())
        .unwrap();
    assert!(!needs_watch(&payer_side, false));

    // Closing or closed: always; settled: until a pass found nothing kept back.
    payer_side
        .handle_ledger_event(&LedgerEvent {
            seq: 1,
            time: 20,
            kind: LedgerEventKind::ChannelClosed {
                channel_id: u(5),
                closing_participant: hub().address(),
                nonce: 0,
                balance_hash: H256::ZERO,
            },
        })
        .unwrap();
    assert!(needs_watch(&payer_side, true));
    payer_side.handle_ledger_settled();
    assert!(needs_watch(&payer_side, false));
    assert!(!needs_watch(&payer_side, true));
    // Even without locks in the channel: an old proof of ours may have carried some.
    let mut empty = channel(&payer(), &hub());
    empty.handle_ledger_settled();
    assert!(needs_watch(&empty, false));
    assert!(!needs_watch(&empty, true));
}

// ----- receipt -----

#[test]
fn a_receipt_proves_payment_to_a_third_party() {
    let s = secret(7);
    let receipt = MediatedReceipt {
        request: request(100, &s),
        secret: s,
        fee: u(2),
        lock_amount: u(102),
        unlock_nonce: 2,
    };
    assert_eq!(receipt.verify(&domain()), Ok(()));
    assert_eq!(receipt.payee(), payee().address());

    let wrong_secret = MediatedReceipt {
        secret: secret(8),
        ..receipt
    };
    assert_eq!(
        wrong_secret.verify(&domain()),
        Err(ReceiptError::WrongSecret)
    );

    let mut inflated = receipt;
    inflated.request.request.amount = u(1_000);
    assert!(matches!(
        inflated.verify(&domain()),
        Err(ReceiptError::BadSignature { .. })
    ));

    // Signed by someone else than the payee it names.
    let mut forged = receipt;
    forged.request.signature = PaymentRequest {
        payee: payer().address(),
        ..receipt.request.request
    }
    .sign(&payer())
    .unwrap()
    .signature;
    assert!(matches!(
        forged.verify(&domain()),
        Err(ReceiptError::BadSignature { .. })
    ));

    let mut other = domain();
    other.chain_id = u(1);
    assert_eq!(receipt.verify(&other), Err(ReceiptError::WrongDomain));
}
