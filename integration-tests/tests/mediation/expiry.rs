//! A forwarded mediated payment whose payee never reveals the secret, against the real hub
//! binary with raw protobuf devices: the payer cannot take its lock back early; at the
//! outgoing lock's expiration the hub takes back its lock toward the payee
//! (`HubPayment.lock_expired`, which the payee applies: no lock left) and tells the payer the
//! payment failed (`PayerEvent.failed`); a reveal after that is refused and pays nothing; after
//! the incoming expiration the hub accepts the payer's lock expiry. Every balance ends
//! exactly where it started, on all four sides.

use crate::checks::{
    assert_channel, assert_rejected, assert_status, device, forwarded, holding, payer_events,
    receive_one, reveal, send, setup, take_back, u, TEST_LIMIT, WAIT,
};
use integration_tests::mediation::{next_item, test_secret, ChannelSnapshot};
use integration_tests::{within, Forward};
use tonic::Code;
use voltlane_proto::convert::mediation::HubMessageKind;
use voltlane_proto::v1;

const SEED: u8 = 0x7a;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payee_never_reveals_both_locks_expire_and_every_balance_is_back() {
    within(TEST_LIMIT, "expiry", async {
        let s = setup();
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, SEED, 51, 5_000, 5_000).await;
        let mut payee = device(&hub, SEED, 52, 2_000, 2_000).await;
        let payee_channel = payee.channel_id().unwrap();
        let mut incoming = payee.receive(0).await.unwrap();
        let mut events = payer_events(&payer).await;
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
        let (amount, lock) = (400, s.lock_amount(400));
        let mut pay = payer.pay_session(8).await.unwrap();

        let now = payer.ledger_now().await.unwrap();
        let expiration = s.lock_expiration(now, 1);
        let secret = test_secret(SEED, 51);
        let request = payee
            .payment_request(u(amount), secret, 1, now + 600)
            .unwrap();
        let msg = payer
            .sign_locked_transfer(&request, u(lock), expiration, now)
            .unwrap();
        let outgoing_expiration = match forwarded(&send(&mut pay, msg).await) {
            Forward::Forwarded { outgoing_lock, .. } => outgoing_lock.expiration,
            Forward::NotForwarded { .. } => unreachable!(),
        };
        assert_eq!(outgoing_expiration, expiration - s.reveal_timeout);
        let m = receive_one(&mut payee, &mut incoming).await;
        assert!(matches!(m.kind, HubMessageKind::LockedTransfer { .. }));
        let payer_locked = holding(&payer_before, 1, lock);
        assert_channel(&payer, &payer_locked, "lock forwarded").await;

        // The payer cannot take its lock back early.
        let saved = payer.save_channel().unwrap();
        let early = payer.sign_lock_expired(secret.hash(), expiration).unwrap();
        payer.restore_channel(saved);
        assert_rejected(
            &send(&mut pay, early).await,
            Code::FailedPrecondition,
            "has not expired",
        );
        assert_channel(&payer, &payer_locked, "early expiry refused").await;

        // The payee stays silent. At the outgoing expiration the hub takes its lock back...
        let m = receive_one(&mut payee, &mut incoming).await;
        assert_eq!(
            m.kind,
            HubMessageKind::LockExpired {
                secrethash: secret.hash()
            }
        );
        assert_eq!(m.balance_proof.proof.nonce, 2);
        assert!(payee.channel().unwrap().partner().locks.is_empty());
        let payee_back = ChannelSnapshot {
            hub_nonce: 2,
            ..payee_before.clone()
        };
        assert_channel(&payee, &payee_back, "outgoing lock taken back").await;
        // ...and tells the payer. A reveal now is too late and pays nothing.
        let event = next_item(&mut events, "the payer's event", WAIT)
            .await
            .unwrap();
        assert_eq!(event.secrethash, secret.hash().0.to_vec());
        match &event.outcome {
            Some(v1::payer_event::Outcome::Failed(reason)) => {
                assert!(reason.contains("did not claim"), "{reason:?}")
            }
            other => panic!("expected the payment failed, got {other:?}"),
        }
        assert_channel(&payer, &payer_locked, "incoming lock still held").await;
        let late = reveal(&payee, payee_channel, secret).await.unwrap_err();
        assert_status(&late, Code::FailedPrecondition, "expired");
        assert_channel(&payee, &payee_back, "late reveal refused").await;

        // After the incoming expiration the payer takes its lock back: all whole.
        take_back(&mut payer, &mut pay, &[secret.hash()], expiration).await;
        let payer_back = ChannelSnapshot {
            device_nonce: 2,
            ..payer_before
        };
        assert_channel(&payer, &payer_back, "incoming lock taken back").await;
        assert_channel(&payee, &payee_back, "payee whole").await;
    })
    .await
    .unwrap();
}
