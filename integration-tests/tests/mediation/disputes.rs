//! Mediated payments settled on the ledger when one side withholds its unlock, against the
//! real hub binary with raw protobuf devices, checked with the `Ledger` RPCs (the channel's
//! record, the secret registry, what settlement kept back, token balances):
//!
//! - the payer withholds its unlock after the payee was paid: the hub registers the secret
//!   before the payer's lock expires, refuses the payer's lock expiry, closes, settles and
//!   unlocks, and ends with amount + fee; the payer gets exactly the rest;
//! - the hub withholds its unlock (fail point `hub_withholds_unlock`: it learns the secret
//!   and never pays the payee): the payee, running channel-core's ledger monitor itself,
//!   registers the secret before its lock expires, closes, settles and unlocks, and ends with
//!   the amount. The secret is public on the ledger from then on, so the payer, honest, still
//!   pays the hub.

use std::time::{Duration, Instant};

use crate::checks::{
    payee_paid, payer_events, payer_paid, receive_one, reveal, setup, u, TEST_LIMIT, WAIT,
};
use channel_core::{Address, Secret};
use futures::StreamExt;
use integration_tests::device::ledger_monitor::LedgerWatch;
use integration_tests::mediation::{
    next_ack, next_item, test_secret, wait_ledger_time, ChannelSnapshot, MediationSetup,
};
use integration_tests::{within, Forward, HubProcess, PayAck, PaySession, TestDevice};
use tonic::Code;
use voltlane_proto::convert::h256_bytes;
use voltlane_proto::convert::mediation::HubMessageKind;
use voltlane_proto::v1;

const SEED: u8 = 0xd1;
const DEPOSIT: u64 = 1_000;
const AMOUNT: u64 = 100;
/// Pause between the devices' ledger checks.
const TICK: Duration = Duration::from_millis(200);

async fn device(hub: &HubProcess, n: u8) -> TestDevice {
    crate::checks::device(hub, SEED, n, DEPOSIT, DEPOSIT).await
}

/// `Ledger.GetSecretRegistration`: when the registry recorded the secret, if it did.
async fn registered_at(d: &TestDevice, secret: Secret) -> Option<u64> {
    let r = d
        .ledger()
        .get_secret_registration(v1::GetSecretRegistrationRequest {
            secrethash: h256_bytes(&secret.hash()),
        })
        .await
        .unwrap()
        .into_inner();
    r.registered.then_some(r.registered_at)
}

/// Whether `d`'s channel is settled on the ledger with nothing kept back for unlock.
async fn settled_and_unlocked(d: &TestDevice) -> bool {
    let ch = d.ledger_view().await.unwrap();
    ch.phase == v1::ChannelPhase::Settled as i32 && d.pending_unlocks().await.unwrap().is_empty()
}

/// The payer locks amount + fee toward the hub to pay `payee` `AMOUNT` against `secret`;
/// returns the lock's expiration and the forwarded lock's.
async fn lock_and_forward(
    s: &MediationSetup,
    payer: &mut TestDevice,
    payee: &TestDevice,
    pay: &mut PaySession,
    secret: Secret,
    margin: u64,
) -> (u64, u64) {
    let now = payer.ledger_now().await.unwrap();
    let expiration = s.lock_expiration(now, margin);
    let request = payee
        .payment_request(u(AMOUNT), secret, 1, now + 600)
        .unwrap();
    let msg = payer
        .sign_locked_transfer(&request, u(s.lock_amount(AMOUNT)), expiration, now)
        .unwrap();
    pay.send(msg).await.unwrap();
    match next_ack(pay, WAIT).await.unwrap() {
        PayAck::Accepted {
            forward: Some(Forward::Forwarded { outgoing_lock, .. }),
            ..
        } => {
            assert_eq!(outgoing_lock.expiration, expiration - s.reveal_timeout);
            (expiration, outgoing_lock.expiration)
        }
        other => panic!("expected the lock forwarded, got {other:?}"),
    }
}

fn closer(ch: &v1::LedgerChannel) -> Option<Address> {
    (!ch.closer.is_empty()).then(|| Address::from_slice(&ch.closer).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payer_withholds_its_unlock_and_the_hub_claims_on_the_ledger() {
    within(TEST_LIMIT, "payer withholds", async {
        let s = setup();
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, 1).await;
        let mut payee = device(&hub, 2).await;
        let hub_address = payer.hub_address();
        let mut incoming = payee.receive(0).await.unwrap();
        let mut events = payer_events(&payer).await;
        let mut pay = payer.pay_session(8).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
        let lock = s.lock_amount(AMOUNT);
        let secret = test_secret(SEED, 1);

        // The payee is paid off-chain; the payer learns the secret and keeps its lock.
        let (expiration, _) = lock_and_forward(&s, &mut payer, &payee, &mut pay, secret, 1).await;
        assert!(matches!(
            receive_one(&mut payee, &mut incoming).await.kind,
            HubMessageKind::LockedTransfer { .. }
        ));
        reveal(&payee, payee.channel_id().unwrap(), secret)
            .await
            .unwrap();
        assert_eq!(
            receive_one(&mut payee, &mut incoming).await.kind,
            HubMessageKind::Unlock { secret }
        );
        let event = next_item(&mut events, "the payer's event", WAIT)
            .await
            .unwrap();
        assert_eq!(
            event.outcome,
            Some(v1::payer_event::Outcome::SecretRevealed(
                secret.0 .0.to_vec()
            ))
        );
        let hub_tokens = payer.token_balance(hub_address).await.unwrap();
        let payer_tokens = payer.token_balance(payer.address()).await.unwrap();

        // Once the lock expired, the payer tries to take it back: refused, the secret is on
        // the ledger in time (or the hub has already closed to claim it).
        let now = wait_ledger_time(&payer, expiration, WAIT).await.unwrap();
        let msg = payer.sign_lock_expired(secret.hash(), now).unwrap();
        pay.send(msg).await.unwrap();
        match next_ack(&mut pay, WAIT).await.unwrap() {
            PayAck::Rejected { code, reason, .. } => {
                assert_eq!(code, Code::FailedPrecondition, "{reason}")
            }
            other => panic!("the hub let the payer take back a lock it had paid out: {other:?}"),
        }

        // The hub registered the secret within its reveal timeout before the expiration,
        // closed, settled after the window and unlocked.
        let started = Instant::now();
        while !settled_and_unlocked(&payer).await {
            assert!(
                started.elapsed() < Duration::from_secs(s.settlement_window) + WAIT,
                "the payer's channel was not settled and unlocked: {:?}, registered at {:?}",
                payer.ledger_view().await.unwrap(),
                registered_at(&payer, secret).await
            );
            tokio::time::sleep(TICK).await;
        }
        let at = registered_at(&payer, secret)
            .await
            .expect("the secret is registered");
        assert!(
            at < expiration && at >= expiration - s.reveal_timeout,
            "registered at {at}, the lock expires at {expiration}"
        );
        assert_eq!(
            closer(&payer.ledger_view().await.unwrap()),
            Some(hub_address)
        );
        assert_eq!(
            payer.token_balance(hub_address).await.unwrap(),
            hub_tokens + u(DEPOSIT + lock),
            "the hub gets its deposit back plus amount + fee"
        );
        assert_eq!(
            payer.token_balance(payer.address()).await.unwrap(),
            payer_tokens + u(DEPOSIT - lock),
            "the payer gets exactly the rest"
        );
        // The payee keeps what it was paid off-chain.
        assert_eq!(
            ChannelSnapshot::of(&payee).await.unwrap(),
            payee_paid(&payee_before, 2, AMOUNT)
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_withholds_its_unlock_and_the_payee_claims_on_the_ledger() {
    within(TEST_LIMIT, "hub withholds", async {
        let s = MediationSetup {
            env: vec![("VOLTLANE_FAILPOINTS".into(), "hub_withholds_unlock".into())],
            ..setup()
        };
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, 11).await;
        let mut payee = device(&hub, 12).await;
        let mut incoming = payee.receive(0).await.unwrap();
        let mut events = payer_events(&payer).await;
        let mut pay = payer.pay_session(8).await.unwrap();
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let lock = s.lock_amount(AMOUNT);
        let secret = test_secret(SEED, 11);

        let (expiration, outgoing_expiration) =
            lock_and_forward(&s, &mut payer, &payee, &mut pay, secret, 2).await;
        assert!(matches!(
            receive_one(&mut payee, &mut incoming).await.kind,
            HubMessageKind::LockedTransfer { .. }
        ));
        // The hub takes the secret and does not pay.
        let refused = reveal(&payee, payee.channel_id().unwrap(), secret)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Internal, "{refused:?}");
        assert!(
            refused.message().contains("hub_withholds_unlock"),
            "{refused:?}"
        );
        payee.learn_secret(secret).unwrap();
        let payee_tokens = payee.token_balance(payee.address()).await.unwrap();

        // The payee runs its own ledger monitor. The payer is honest: it unlocks once it
        // learns the secret, and takes its lock back only once it expired without it.
        let mut watch = LedgerWatch::new(s.reveal_timeout);
        let mut submitted = Vec::new();
        let mut refused_expiries = 0;
        let (mut unlock_nonce, mut expiry_nonce) = (None, None);
        let (mut payer_done, mut told_failed) = (false, false);
        let started = Instant::now();
        while !(payer_done && settled_and_unlocked(&payee).await) {
            assert!(
                started.elapsed() < Duration::from_secs(s.settlement_window) + 2 * WAIT,
                "not settled in time: payee channel {:?}, submitted {submitted:?}, \
                 payer done {payer_done}",
                payee.ledger_view().await.unwrap()
            );
            tokio::select! {
                m = incoming.next() => {
                    let m = m.expect("receive stream open").unwrap();
                    let now = payee.ledger_now().await.unwrap();
                    // The only message the hub may still send is a lock expiry, and the
                    // payee must refuse it: the lock is claimed on the ledger.
                    let refused = payee.apply_hub_message(m, now).unwrap_err();
                    let refused = refused.to_string();
                    assert!(refused.contains("claimed on the ledger"), "{refused}");
                    refused_expiries += 1;
                }
                e = events.next() => match e.expect("payer events open").unwrap().outcome {
                    Some(v1::payer_event::Outcome::SecretRevealed(_))
                        if unlock_nonce.is_none() && expiry_nonce.is_none() =>
                    {
                        let msg = payer.sign_unlock(secret).unwrap();
                        unlock_nonce = Some(msg.request_id);
                        pay.send(msg).await.unwrap();
                    }
                    Some(v1::payer_event::Outcome::Failed(_)) => told_failed = true,
                    _ => {}
                },
                ack = pay.next_ack() => match ack.unwrap().expect("pay stream open") {
                    PayAck::Accepted { nonce, .. }
                        if Some(nonce) == unlock_nonce || Some(nonce) == expiry_nonce =>
                    {
                        payer_done = true;
                    }
                    other => panic!("unexpected answer to the payer: {other:?}"),
                },
                _ = tokio::time::sleep(TICK) => {}
            }
            submitted.extend(payee.monitor_ledger_once(&mut watch).await.unwrap());
            if expiry_nonce.is_none() && unlock_nonce.is_none() {
                let now = payer.ledger_now().await.unwrap();
                if now >= expiration {
                    let msg = payer.sign_lock_expired(secret.hash(), now).unwrap();
                    expiry_nonce = Some(msg.request_id);
                    pay.send(msg).await.unwrap();
                }
            }
        }

        // The payee registered the secret itself, in time, and closed to claim its lock.
        let done = |action: &str| {
            submitted
                .iter()
                .any(|x| x.action == action && x.outcome.is_ok())
        };
        assert!(done("register_secret"), "{submitted:?}");
        assert!(done("close"), "{submitted:?}");
        let at = registered_at(&payee, secret).await.expect("registered");
        assert!(
            at < outgoing_expiration,
            "registered at {at}, the payee's lock expires at {outgoing_expiration}"
        );
        assert_eq!(
            closer(&payee.ledger_view().await.unwrap()),
            Some(payee.address())
        );
        assert_eq!(
            payee.token_balance(payee.address()).await.unwrap(),
            payee_tokens + u(DEPOSIT + AMOUNT),
            "the payee gets its deposit and the amount on the ledger"
        );
        // The secret is public on the ledger before the payer's lock expires: the hub tells
        // the payer, which pays the hub amount + fee as in any payment; the hub never lets it
        // take the lock back.
        assert_eq!(
            expiry_nonce, None,
            "the hub took back a lock the payer could unlock (told failed: {told_failed}, \
             lock expiries the payee refused: {refused_expiries})"
        );
        assert_eq!(
            ChannelSnapshot::of(&payer).await.unwrap(),
            payer_paid(&payer_before, 2, lock)
        );

        // The ledger decided both locks: the hub retires the transfer instead of retrying
        // its unlock toward the payee on the closed channel every pass, forever.
        let failed_steps = || {
            std::fs::read_to_string(hub.log_path())
                .unwrap_or_default()
                .matches("mediation step failed")
                .count()
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = failed_steps();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            failed_steps(),
            before,
            "the hub keeps retrying a transfer the ledger decided:\n{}",
            hub.log_tail()
        );
    })
    .await
    .unwrap();
}

/// The adversarial run's first fund-loss bug: a payer and a payee collude against the hub.
/// The payer locks for its accomplice's request, the hub forwards, the payer closes its
/// channel at once; the hub contests and settles, the payer unlocks its lock back to itself
/// on the ledger (the secret is not registered), and only then does the payee reveal the
/// secret to the hub. The hub must not pay: the lock it could have claimed is gone.
///
/// With the expiry bound a lock beyond the settlement window is refused outright (the
/// attack's 40 s lock), and every lock the hub takes has expired by the time the payer's
/// channel can settle, so the late reveal comes after the payee's own lock expired too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payer_and_payee_colluding_across_the_ledger_take_nothing_from_the_hub() {
    within(TEST_LIMIT, "colluding payer and payee", async {
        let s = setup();
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, 21).await;
        let mut payee = device(&hub, 22).await;
        let hub_address = payer.hub_address();
        let mut incoming = payee.receive(0).await.unwrap();
        let mut pay = payer.pay_session(8).await.unwrap();
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
        let hub_tokens = payer.token_balance(hub_address).await.unwrap();
        let payer_tokens = payer.token_balance(payer.address()).await.unwrap();
        let payee_tokens = payee.token_balance(payee.address()).await.unwrap();
        let secret = test_secret(SEED, 21);

        // The attack's lock, 40 s out: beyond the settlement window, refused with the bound.
        let now = payer.ledger_now().await.unwrap();
        let request = payee
            .payment_request(u(AMOUNT), secret, 1, now + 600)
            .unwrap();
        crate::checks::lock_refused(
            &mut payer,
            &mut pay,
            |p| {
                p.sign_locked_transfer(&request, u(s.lock_amount(AMOUNT)), now + 40, now)
                    .unwrap()
            },
            Code::InvalidArgument,
            "plus the settlement window",
            &payer_before,
        )
        .await;

        // The longest lock the hub takes: forwarded.
        let margin = s.settlement_window - (2 * s.reveal_timeout + 1);
        let (expiration, outgoing_expiration) =
            lock_and_forward(&s, &mut payer, &payee, &mut pay, secret, margin).await;
        assert!(matches!(
            receive_one(&mut payee, &mut incoming).await.kind,
            HubMessageKind::LockedTransfer { .. }
        ));

        // The payer closes at once; the hub contests and settles after the window.
        payer.close_on_ledger(None).await.unwrap();
        let started = Instant::now();
        loop {
            let ch = payer.ledger_view().await.unwrap();
            if ch.phase == v1::ChannelPhase::Settled as i32 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(s.settlement_window) + WAIT,
                "the hub did not settle the payer's channel: {ch:?}"
            );
            tokio::time::sleep(TICK).await;
        }
        let settled_at = payer.ledger_now().await.unwrap();
        assert!(
            settled_at >= expiration,
            "settled at {settled_at}, before the lock's expiration {expiration}"
        );
        // The payer unlocks its lock back to itself (or the hub already did: the lock
        // expired unclaimed either way).
        let lock = channel_core::HashTimeLock {
            expiration,
            amount: u(s.lock_amount(AMOUNT)),
            secrethash: secret.hash(),
        };
        let unlocked = payer
            .ledger()
            .unlock(v1::UnlockRequest {
                channel_id: voltlane_proto::convert::u256_bytes(&payer.channel_id().unwrap()),
                receiver: voltlane_proto::convert::address_bytes(&hub_address),
                sender: voltlane_proto::convert::address_bytes(&payer.address()),
                packed_locks: channel_core::locks::pack_locks(&[lock]),
            })
            .await;
        if let Err(status) = &unlocked {
            assert_eq!(status.code(), Code::NotFound, "{status:?}");
        }
        while !settled_and_unlocked(&payer).await {
            assert!(started.elapsed() < Duration::from_secs(s.settlement_window) + 2 * WAIT);
            tokio::time::sleep(TICK).await;
        }

        // Only now the payee reveals: refused, the hub pays nothing.
        let refused = reveal(&payee, payee.channel_id().unwrap(), secret)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(
            refused.message().contains("expired"),
            "the refusal names the expiry: {refused:?}"
        );
        assert_eq!(registered_at(&payer, secret).await, None);
        // The hub takes its lock toward the payee back.
        let now = wait_ledger_time(&payee, outgoing_expiration, WAIT)
            .await
            .unwrap();
        assert!(now >= outgoing_expiration);
        assert!(matches!(
            receive_one(&mut payee, &mut incoming).await.kind,
            HubMessageKind::LockExpired { .. }
        ));

        // Nobody gained anything: the payer has its deposit back, the hub its own.
        assert_eq!(
            payer.token_balance(payer.address()).await.unwrap(),
            payer_tokens + u(DEPOSIT)
        );
        assert_eq!(
            payer.token_balance(hub_address).await.unwrap(),
            hub_tokens + u(DEPOSIT),
            "the hub gets its deposit in the payer's channel back, and pays nothing"
        );
        assert_eq!(
            payee.token_balance(payee.address()).await.unwrap(),
            payee_tokens
        );
        assert_eq!(
            ChannelSnapshot::of(&payee).await.unwrap(),
            ChannelSnapshot {
                hub_nonce: payee_before.hub_nonce + 2,
                ..payee_before
            },
            "the payee's channel is as before but for the lock and its expiry"
        );
    })
    .await
    .unwrap();
}
