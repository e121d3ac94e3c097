//! Mediated payments with replayed, foreign and reused inputs, against the real hub binary
//! with raw protobuf devices: the payer's locked transfer re-sent after acceptance (the same
//! answer, no second lock), an older proof re-sent (ALREADY_EXISTS), reveals of a secret that
//! matches nothing or by a device that is not the payee, an unlock with a wrong secret, a
//! secrethash used again (by another payer while the first payment is in flight, by the same
//! payer after it completed, or as the very same lock again). Every refusal changes nothing
//! that should not change, and a lock the hub took but did not forward expires back to the
//! payer.

use crate::checks::{
    assert_channel, assert_rejected, assert_status, device, forwarded, holding, payee_paid,
    payer_events, payer_paid, receive_one, reveal, send, setup, u, TEST_LIMIT, WAIT,
};
use channel_core::{SignedBalanceProof, U256};
use integration_tests::device::mediated::mediated_message;
use integration_tests::mediation::{next_item, test_secret, ChannelSnapshot};
use integration_tests::{within, PayAck};
use tonic::Code;
use voltlane_proto::convert::mediation::{HubMessageKind, PaymentKind};
use voltlane_proto::v1;

const SEED: u8 = 0x6f;

/// A secrethash that is already used was refused outright: the hub takes a lock only with
/// its forward, so it holds nothing of it (the payer takes it back and reuses the nonce).
fn refused_as_used(ack: &PayAck) {
    assert_rejected(ack, Code::AlreadyExists, "already used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_foreign_reveals_wrong_secrets_and_reused_secrethashes() {
    within(TEST_LIMIT, "replays and reuse", async {
        let s = setup();
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, SEED, 31, 5_000, 5_000).await;
        let mut other_payer = device(&hub, SEED, 32, 5_000, 5_000).await;
        let mut payee = device(&hub, SEED, 33, 2_000, 2_000).await;
        let stranger = device(&hub, SEED, 34, 1_000, 1_000).await;
        let payee_channel = payee.channel_id().unwrap();
        let mut incoming = payee.receive(0).await.unwrap();
        let mut events = payer_events(&payer).await;
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let other_before = ChannelSnapshot::of(&other_payer).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
        let (amount, lock) = (300, s.lock_amount(300));
        let mut pay = payer.pay_session(8).await.unwrap();
        let mut other_pay = other_payer.pay_session(8).await.unwrap();

        let now = payer.ledger_now().await.unwrap();
        let expiration = s.lock_expiration(now, 3);
        let s1 = test_secret(SEED, 31);
        let request = payee.payment_request(u(amount), s1, 1, now + 600).unwrap();
        let lock_msg = payer
            .sign_locked_transfer(&request, u(lock), expiration, now)
            .unwrap();
        let first = send(&mut pay, lock_msg.clone()).await;
        let forward = forwarded(&first);
        let m = receive_one(&mut payee, &mut incoming).await;
        assert_eq!(m.balance_proof.proof.nonce, 1);
        assert!(matches!(m.kind, HubMessageKind::LockedTransfer { .. }));
        let payer_locked = holding(&payer_before, 1, lock);
        let payee_locked = ChannelSnapshot {
            hub_nonce: 1,
            hub_capacity: payee_before.hub_capacity - u(amount),
            ..payee_before.clone()
        };

        // The same proof again (a lost ack): the same answer, no second lock anywhere.
        let again = send(&mut pay, lock_msg.clone()).await;
        assert_eq!(again, first);
        assert_eq!(forwarded(&again), forward);
        assert_channel(&payer, &payer_locked, "replayed lock").await;
        assert_channel(&payee, &payee_locked, "replayed lock").await;

        // Another payer locks toward the same secrethash: refused, the payee untouched.
        let now = other_payer.ledger_now().await.unwrap();
        let other_expiration = s.lock_expiration(now, 1);
        let saved = other_payer.save_channel().unwrap();
        let msg = other_payer
            .sign_locked_transfer(&request, u(lock), other_expiration, now)
            .unwrap();
        refused_as_used(&send(&mut other_pay, msg).await);
        other_payer.restore_channel(saved);
        assert_channel(&other_payer, &other_before, "second payer holds nothing").await;
        assert_channel(&payee, &payee_locked, "second payer refused").await;

        // Reveals that match nothing, or come from someone who is not the payee.
        let refused = reveal(&payee, payee_channel, test_secret(SEED, 99))
            .await
            .unwrap_err();
        assert_status(&refused, Code::NotFound, "no mediated transfer");
        let refused = reveal(&stranger, payee_channel, s1).await.unwrap_err();
        assert_status(&refused, Code::PermissionDenied, "not a participant");
        let refused = reveal(&stranger, stranger.channel_id().unwrap(), s1)
            .await
            .unwrap_err();
        assert_status(&refused, Code::NotFound, "no mediated transfer");
        assert_channel(&payee, &payee_locked, "foreign reveals refused").await;
        assert_channel(&payer, &payer_locked, "foreign reveals refused").await;

        // The payee's reveal: its unlock is the hub's very next proof (nonce 2), so no
        // second locked transfer went out in between.
        let answer = reveal(&payee, payee_channel, s1).await.unwrap();
        assert_eq!(U256::from_be_slice(&answer.amount), u(amount));
        let m = receive_one(&mut payee, &mut incoming).await;
        assert_eq!(m.balance_proof.proof.nonce, 2);
        assert_eq!(m.kind, HubMessageKind::Unlock { secret: s1 });
        let event = next_item(&mut events, "the payer's event", WAIT)
            .await
            .unwrap();
        assert_eq!(
            event.outcome,
            Some(v1::payer_event::Outcome::SecretRevealed(s1.0 .0.to_vec()))
        );

        // An unlock carrying a secret that opens none of the payer's locks: refused.
        let saved = payer.save_channel().unwrap();
        let unlock = payer.sign_unlock(s1).unwrap();
        payer.restore_channel(saved);
        let wrong = mediated_message(
            &SignedBalanceProof::try_from(unlock.balance_proof.clone().unwrap()).unwrap(),
            U256::ZERO,
            PaymentKind::Unlock {
                secret: test_secret(SEED, 98),
            },
        );
        let ack = send(&mut pay, wrong).await;
        assert_rejected(&ack, Code::InvalidArgument, "secret");
        assert_channel(&payer, &payer_locked, "wrong secret refused").await;

        // The genuine unlock, then the same again (a lost ack): accepted once, acked twice.
        let unlock = payer.sign_unlock(s1).unwrap();
        let ack = send(&mut pay, unlock.clone()).await;
        assert!(
            matches!(
                ack,
                PayAck::Accepted {
                    nonce: 2,
                    forward: None,
                    ..
                }
            ),
            "{ack:?}"
        );
        assert_eq!(send(&mut pay, unlock).await, ack);
        let payer_after = payer_paid(&payer_before, 2, lock);
        let payee_after = payee_paid(&payee_before, 2, amount);
        assert_channel(&payer, &payer_after, "payment completed").await;
        assert_channel(&payee, &payee_after, "payment completed").await;

        // An older proof of the payer's (its locked transfer): ALREADY_EXISTS, nothing moves.
        match send(&mut pay, lock_msg).await {
            PayAck::Rejected { code, reason, .. } => {
                assert_eq!(code, Code::AlreadyExists, "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("an older proof was not refused: {other:?}"),
        }
        assert_channel(&payer, &payer_after, "older proof refused").await;

        // The payer pays the same secrethash a second time (another amount, so another
        // lock): refused as used; if the hub took the lock, it is the payer's again once it
        // expires, although the hub has learned its secret in this very channel.
        let now = payer.ledger_now().await.unwrap();
        let reuse_expiration = s.lock_expiration(now, 1);
        let reuse_lock = s.lock_amount(amount + 1);
        let request = payee
            .payment_request(u(amount + 1), s1, 2, now + 600)
            .unwrap();
        let saved = payer.save_channel().unwrap();
        let msg = payer
            .sign_locked_transfer(&request, u(reuse_lock), reuse_expiration, now)
            .unwrap();
        refused_as_used(&send(&mut pay, msg).await);
        payer.restore_channel(saved);
        assert_channel(&payer, &payer_after, "reused secrethash refused").await;
        assert_channel(&other_payer, &other_before, "second payer untouched").await;
        assert_channel(&payee, &payee_after, "payee paid once").await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_payment_sent_again_as_a_new_lock_is_not_forwarded() {
    within(TEST_LIMIT, "completed payment sent again", async {
        let s = setup();
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, SEED, 41, 5_000, 5_000).await;
        let mut payee = device(&hub, SEED, 42, 2_000, 2_000).await;
        let payee_channel = payee.channel_id().unwrap();
        let mut incoming = payee.receive(0).await.unwrap();
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
        let (amount, lock) = (200, s.lock_amount(200));
        let mut pay = payer.pay_session(8).await.unwrap();

        // One payment, completed.
        let now = payer.ledger_now().await.unwrap();
        let expiration = s.lock_expiration(now, 2);
        let secret = test_secret(SEED, 41);
        let request = payee
            .payment_request(u(amount), secret, 1, now + 600)
            .unwrap();
        let msg = payer
            .sign_locked_transfer(&request, u(lock), expiration, now)
            .unwrap();
        forwarded(&send(&mut pay, msg).await);
        receive_one(&mut payee, &mut incoming).await;
        reveal(&payee, payee_channel, secret).await.unwrap();
        let m = receive_one(&mut payee, &mut incoming).await;
        assert_eq!(m.kind, HubMessageKind::Unlock { secret });
        let unlock = payer.sign_unlock(secret).unwrap();
        assert!(matches!(
            send(&mut pay, unlock).await,
            PayAck::Accepted { nonce: 2, .. }
        ));
        let payer_after = payer_paid(&payer_before, 2, lock);
        let payee_after = payee_paid(&payee_before, 2, amount);

        // At once, the very same lock again under a new nonce (a confused payer retrying):
        // the transfer is over, so it is refused as used, never reported forwarded.
        let now = payer.ledger_now().await.unwrap();
        let saved = payer.save_channel().unwrap();
        let msg = payer
            .sign_locked_transfer(&request, u(lock), expiration, now)
            .unwrap();
        refused_as_used(&send(&mut pay, msg).await);
        payer.restore_channel(saved);
        assert_channel(&payer, &payer_after, "second lock refused").await;
        assert_channel(&payee, &payee_after, "payee paid once").await;
    })
    .await
    .unwrap();
}
