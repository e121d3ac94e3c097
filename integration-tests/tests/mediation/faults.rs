//! Mediated payments the hub must refuse, against the real hub binary with raw protobuf
//! devices: a payee offline, no capacity toward the payee, a payee without a channel, a
//! lock beyond the payer's balance, short of amount + fee or expiring too soon, a forged
//! lock, a payment request the payee did not sign. Each refusal carries its precise status
//! and reason, and nothing changes that should not (the hub's view of both channels:
//! nonces, balances and capacities, compared before and after, and with the devices' own
//! records). A lock the hub took but did not forward stays the payer's: once it expires the
//! payer takes it back and its capacity is whole again.

use std::time::{Duration, Instant};

use crate::checks::{
    assert_channel, assert_not_forwarded, assert_rejected, assert_status, device, holding, quote,
    send, setup, take_back, u, TEST_LIMIT, WAIT,
};
use channel_core::crypto::Signer;
use channel_core::mediation::{PaymentRequest, SignedPaymentRequest};
use channel_core::{Address, LocalSigner, Secret, SignedBalanceProof, U256};
use integration_tests::mediation::{test_key, test_secret, ChannelSnapshot, MediationSetup};
use integration_tests::{within, TestDevice};
use tonic::Code;
use voltlane_proto::v1;

const SEED: u8 = 0x5e;

/// The same message with its balance proof signed by `key` instead of the device.
fn resigned(msg: &v1::PaymentMessage, key: &LocalSigner) -> v1::PaymentMessage {
    let mut m = msg.clone();
    let proof = SignedBalanceProof::try_from(m.balance_proof.clone().unwrap()).unwrap();
    let forged = proof.proof.sign(key).unwrap();
    assert_ne!(forged.signature, proof.signature);
    m.balance_proof = Some((&forged).into());
    m
}

/// The same message with the recovery byte of its signature flipped (27 <-> 28).
fn flipped_v(msg: &v1::PaymentMessage) -> v1::PaymentMessage {
    let mut m = msg.clone();
    let sig = &mut m.balance_proof.as_mut().unwrap().signature;
    sig[64] = if sig[64] == 27 { 28 } else { 27 };
    m
}

/// A request naming `payee` on the ledger of `on`, signed by `signer`.
fn request_signed_by(
    signer: &LocalSigner,
    payee: Address,
    on: &TestDevice,
    amount: u64,
    secret: Secret,
    expires_at: u64,
) -> SignedPaymentRequest {
    let request = PaymentRequest {
        domain: *on.channel().unwrap().domain(),
        payee,
        amount: u(amount),
        secrethash: secret.hash(),
        payment_id: 99,
        expires_at,
        memo_hash: channel_core::H256::ZERO,
    };
    SignedPaymentRequest {
        request,
        signature: signer.sign_hash(&request.signing_hash()).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payee_offline_keeps_the_payers_lock_until_it_expires() {
    within(TEST_LIMIT, "payee offline", async {
        let s = setup();
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, SEED, 1, 5_000, 5_000).await;
        let payee = device(&hub, SEED, 2, 2_000, 2_000).await;
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
        let lock = s.lock_amount(300);

        // Never online: the quote and the forward both say so.
        let refused = quote(&payer, payee.address(), 300).await.unwrap_err();
        assert_status(&refused, Code::FailedPrecondition, "payee offline");
        let mut pay = payer.pay_session(8).await.unwrap();
        let now = payer.ledger_now().await.unwrap();
        let first_expiration = s.lock_expiration(now, 1);
        let s1 = test_secret(SEED, 1);
        let request = payee.payment_request(u(300), s1, 1, now + 600).unwrap();
        let msg = payer
            .sign_locked_transfer(&request, u(lock), first_expiration, now)
            .unwrap();
        let ack = send(&mut pay, msg).await;
        assert_not_forwarded(&ack, 1, Code::FailedPrecondition, "payee offline");
        assert_channel(&payer, &holding(&payer_before, 1, lock), "lock held").await;
        assert_channel(&payee, &payee_before, "payee untouched").await;

        // Online, then gone again: the quote follows the payee's receive stream.
        let incoming = payee.receive(0).await.unwrap();
        let q = quote(&payer, payee.address(), 300).await.unwrap();
        assert_eq!(U256::from_be_slice(&q.lock_amount), u(lock));
        drop(incoming);
        let started = Instant::now();
        loop {
            match quote(&payer, payee.address(), 300).await {
                Err(status) => {
                    assert_status(&status, Code::FailedPrecondition, "payee offline");
                    break;
                }
                Ok(_) => assert!(
                    started.elapsed() < WAIT,
                    "the payee still counts online after closing its receive stream"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let now = payer.ledger_now().await.unwrap();
        let second_expiration = s.lock_expiration(now, 1);
        let s2 = test_secret(SEED, 2);
        let request = payee.payment_request(u(300), s2, 2, now + 600).unwrap();
        let msg = payer
            .sign_locked_transfer(&request, u(lock), second_expiration, now)
            .unwrap();
        let ack = send(&mut pay, msg).await;
        assert_not_forwarded(&ack, 2, Code::FailedPrecondition, "payee offline");
        let held = holding(&payer_before, 2, 2 * lock);
        assert_channel(&payer, &held, "two locks held").await;
        assert_channel(&payee, &payee_before, "payee untouched").await;

        // Taking a lock back before it expired is refused and changes nothing.
        let saved = payer.save_channel().unwrap();
        let early = payer
            .sign_lock_expired(s2.hash(), second_expiration)
            .unwrap();
        payer.restore_channel(saved);
        let ack = send(&mut pay, early).await;
        assert_rejected(&ack, Code::FailedPrecondition, "has not expired");
        assert_channel(&payer, &held, "early lock expiry refused").await;

        // After expiry the payer takes both back and is whole again.
        take_back(
            &mut payer,
            &mut pay,
            &[s1.hash(), s2.hash()],
            second_expiration,
        )
        .await;
        let whole = ChannelSnapshot {
            device_nonce: 4,
            ..payer_before.clone()
        };
        assert_channel(&payer, &whole, "both locks taken back").await;
        assert_channel(&payee, &payee_before, "payee untouched").await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_capacity_and_no_payee_channel_are_refused_with_their_status() {
    within(TEST_LIMIT, "no capacity, no payee channel", async {
        // The hub matches deposits only up to 100: its capacity toward the payee is 100.
        let s = MediationSetup {
            auto_deposit: 100,
            ..setup()
        };
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, SEED, 11, 5_000, 100).await;
        let payee = device(&hub, SEED, 12, 2_000, 100).await;
        let stranger = TestDevice::login(hub.connect().await.unwrap(), test_key(SEED, 13).unwrap())
            .await
            .unwrap();
        let _online = payee.receive(0).await.unwrap();
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();

        // Quotes: within capacity fine, beyond it RESOURCE_EXHAUSTED, no channel NOT_FOUND.
        let q = quote(&payer, payee.address(), 100).await.unwrap();
        assert_eq!(U256::from_be_slice(&q.fee), u(s.fee(100)));
        let refused = quote(&payer, payee.address(), 500).await.unwrap_err();
        assert_status(
            &refused,
            Code::ResourceExhausted,
            "hub has no capacity toward the payee",
        );
        let refused = quote(&payer, stranger.address(), 10).await.unwrap_err();
        assert_status(&refused, Code::NotFound, "has no open channel");

        // The same refusals for real locks: taken, not forwarded, the payee untouched.
        let mut pay = payer.pay_session(8).await.unwrap();
        let now = payer.ledger_now().await.unwrap();
        let expiration = s.lock_expiration(now, 1);
        let s1 = test_secret(SEED, 11);
        let request = payee.payment_request(u(500), s1, 1, now + 600).unwrap();
        let msg = payer
            .sign_locked_transfer(&request, u(s.lock_amount(500)), expiration, now)
            .unwrap();
        let ack = send(&mut pay, msg).await;
        assert_not_forwarded(
            &ack,
            1,
            Code::ResourceExhausted,
            "hub has no capacity toward the payee",
        );
        let s2 = test_secret(SEED, 12);
        let request = request_signed_by(
            stranger.key(),
            stranger.address(),
            &payer,
            10,
            s2,
            now + 600,
        );
        let msg = payer
            .sign_locked_transfer(&request, u(s.lock_amount(10)), expiration, now)
            .unwrap();
        let ack = send(&mut pay, msg).await;
        assert_not_forwarded(&ack, 2, Code::NotFound, "has no open channel");
        let held = s.lock_amount(500) + s.lock_amount(10);
        assert_channel(&payer, &holding(&payer_before, 2, held), "locks held").await;
        assert_channel(&payee, &payee_before, "payee untouched").await;

        take_back(&mut payer, &mut pay, &[s1.hash(), s2.hash()], expiration).await;
        let whole = ChannelSnapshot {
            device_nonce: 4,
            ..payer_before
        };
        assert_channel(&payer, &whole, "locks taken back").await;
        assert_channel(&payee, &payee_before, "payee untouched").await;
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_beyond_the_rules_are_refused_and_change_nothing() {
    within(TEST_LIMIT, "locks beyond the rules", async {
        let s = setup();
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, SEED, 21, 1_000, 1_000).await;
        let payee = device(&hub, SEED, 22, 2_000, 2_000).await;
        let forger = test_key(SEED, 23).unwrap();
        let _online = payee.receive(0).await.unwrap();
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
        let mut pay = payer.pay_session(8).await.unwrap();
        let now = payer.ledger_now().await.unwrap();
        let expiration = s.lock_expiration(now, 1);

        // Amount + fee beyond the payer's balance: rejected, not even held.
        let big = test_secret(SEED, 21);
        let request = payee.payment_request(u(3_000), big, 1, now + 600).unwrap();
        let saved = payer.save_channel().unwrap();
        payer.pretend_own_deposit(u(100_000)).unwrap();
        let msg = payer
            .sign_locked_transfer(&request, u(s.lock_amount(3_000)), expiration, now)
            .unwrap();
        payer.restore_channel(saved);
        let ack = send(&mut pay, msg).await;
        assert_rejected(&ack, Code::FailedPrecondition, "insufficient balance");
        assert_channel(&payer, &payer_before, "oversized lock refused").await;

        // A forged lock: signed by another key, or with the recovery byte flipped.
        let s1 = test_secret(SEED, 22);
        let request = payee.payment_request(u(100), s1, 2, now + 600).unwrap();
        let saved = payer.save_channel().unwrap();
        let genuine = payer
            .sign_locked_transfer(&request, u(s.lock_amount(100) - 1), expiration, now)
            .unwrap();
        payer.restore_channel(saved);
        let ack = send(&mut pay, resigned(&genuine, &forger)).await;
        assert_rejected(&ack, Code::InvalidArgument, "signature");
        let ack = send(&mut pay, flipped_v(&genuine)).await;
        assert_rejected(&ack, Code::InvalidArgument, "signature");
        assert_channel(&payer, &payer_before, "forged locks refused").await;
        assert_channel(&payee, &payee_before, "payee untouched").await;

        // The genuine one is held, but one unit short of amount + fee: not forwarded.
        let msg = payer
            .sign_locked_transfer(&request, u(s.lock_amount(100) - 1), expiration, now)
            .unwrap();
        assert_eq!(msg, genuine);
        let ack = send(&mut pay, msg).await;
        assert_not_forwarded(&ack, 1, Code::FailedPrecondition, "does not cover");

        // A lock expiring too soon for the hub's reveal timeout: not forwarded.
        let now = payer.ledger_now().await.unwrap();
        let s2 = test_secret(SEED, 23);
        let request = payee.payment_request(u(100), s2, 3, now + 600).unwrap();
        let soon = now + s.reveal_timeout + 1;
        let msg = payer
            .sign_locked_transfer(&request, u(s.lock_amount(100)), soon, now)
            .unwrap();
        let ack = send(&mut pay, msg).await;
        assert_not_forwarded(&ack, 2, Code::FailedPrecondition, "must be later than");

        // A request the payee did not sign: not forwarded.
        let s3 = test_secret(SEED, 24);
        let request = request_signed_by(payer.key(), payee.address(), &payee, 100, s3, now + 600);
        let msg = payer
            .sign_locked_transfer(&request, u(s.lock_amount(100)), expiration, now)
            .unwrap();
        let ack = send(&mut pay, msg).await;
        assert_not_forwarded(&ack, 3, Code::InvalidArgument, "payment request refused");

        let held = 3 * s.lock_amount(100) - 1;
        assert_channel(&payer, &holding(&payer_before, 3, held), "locks held").await;
        assert_channel(&payee, &payee_before, "payee untouched").await;
        take_back(
            &mut payer,
            &mut pay,
            &[s1.hash(), s2.hash(), s3.hash()],
            expiration,
        )
        .await;
        let whole = ChannelSnapshot {
            device_nonce: 6,
            ..payer_before
        };
        assert_channel(&payer, &whole, "locks taken back").await;
        assert_channel(&payee, &payee_before, "payee untouched").await;
    })
    .await
    .unwrap();
}
