//! Mediated payments the hub must refuse, against the real hub binary with raw protobuf
//! devices: a payee offline, no capacity toward the payee, a payee without a channel, a
//! lock beyond the payer's balance, short of amount + fee or expiring too soon, a forged
//! lock, a payment request the payee did not sign. Each refusal carries its precise status
//! and reason, and nothing changes that should not (the hub's view of both channels:
//! nonces, balances and capacities, compared before and after, and with the devices' own
//! records). The hub takes a payer's lock only together with its forward: a refused lock is
//! not held at all (the refusal answers the Pay message, the payer takes it back and reuses
//! the nonce), so a payee who knows the secret and registers it on the ledger gains the hub
//! nothing to claim, and the payer loses nothing.

use std::time::{Duration, Instant};

use crate::checks::{
    assert_channel, assert_rejected, assert_status, device, lock_refused, quote, send, setup, u,
    TEST_LIMIT, WAIT,
};
use channel_core::crypto::Signer;
use channel_core::mediation::{PaymentRequest, SignedPaymentRequest};
use channel_core::{Address, LocalSigner, Secret, SignedBalanceProof, U256};
use integration_tests::mediation::{
    test_key, test_secret, wait_ledger_time, ChannelSnapshot, MediationSetup,
};
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
async fn payee_offline_is_refused_and_the_hub_holds_nothing_it_could_claim() {
    within(TEST_LIMIT, "payee offline", async {
        let s = setup();
        let hub = s.start().await.unwrap();
        let mut payer = device(&hub, SEED, 1, 5_000, 5_000).await;
        let payee = device(&hub, SEED, 2, 2_000, 2_000).await;
        let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
        let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
        let lock = s.lock_amount(300);

        // Never online: the quote and the forward both say so, and the hub holds nothing.
        let refused = quote(&payer, payee.address(), 300).await.unwrap_err();
        assert_status(&refused, Code::FailedPrecondition, "payee offline");
        let mut pay = payer.pay_session(8).await.unwrap();
        let now = payer.ledger_now().await.unwrap();
        let first_expiration = s.lock_expiration(now, 1);
        let s1 = test_secret(SEED, 1);
        let request = payee.payment_request(u(300), s1, 1, now + 600).unwrap();
        lock_refused(
            &mut payer,
            &mut pay,
            |p| {
                p.sign_locked_transfer(&request, u(lock), first_expiration, now)
                    .unwrap()
            },
            Code::FailedPrecondition,
            "payee offline",
            &payer_before,
        )
        .await;
        assert_channel(&payee, &payee_before, "payee untouched").await;

        // The payee made the request, so it knows the secret: it registers it on the ledger.
        // The lock was never taken, so the hub has nothing to claim: once it would have
        // expired the payer's balance is whole, at the same nonce.
        let registered = payee
            .ledger()
            .register_secret(v1::RegisterSecretRequest {
                secret: s1.0 .0.to_vec(),
            })
            .await;
        assert!(registered.is_ok(), "{registered:?}");
        wait_ledger_time(&payer, first_expiration + 1, WAIT)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1_200)).await; // a few monitor passes
        assert_channel(&payer, &payer_before, "nothing claimed from the payer").await;
        let record = payer.ledger_view().await.unwrap();
        assert_eq!(
            record.phase,
            v1::ChannelPhase::Opened as i32,
            "the hub did not close to claim: {record:?}"
        );

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
        lock_refused(
            &mut payer,
            &mut pay,
            |p| {
                p.sign_locked_transfer(&request, u(lock), second_expiration, now)
                    .unwrap()
            },
            Code::FailedPrecondition,
            "payee offline",
            &payer_before,
        )
        .await;
        assert_channel(&payee, &payee_before, "payee untouched").await;

        // The nonce the refusals did not use goes to a payment the hub takes.
        let paid = payer.next_payment(u(7)).unwrap();
        match send(&mut pay, paid).await {
            integration_tests::PayAck::Accepted { nonce: 1, .. } => {}
            other => panic!("the payment after the refusals was not taken at nonce 1: {other:?}"),
        }
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

        // The same refusals for real locks: not taken, the payee untouched.
        let mut pay = payer.pay_session(8).await.unwrap();
        let now = payer.ledger_now().await.unwrap();
        let expiration = s.lock_expiration(now, 1);
        let s1 = test_secret(SEED, 11);
        let request = payee.payment_request(u(500), s1, 1, now + 600).unwrap();
        lock_refused(
            &mut payer,
            &mut pay,
            |p| {
                p.sign_locked_transfer(&request, u(s.lock_amount(500)), expiration, now)
                    .unwrap()
            },
            Code::ResourceExhausted,
            "hub has no capacity toward the payee",
            &payer_before,
        )
        .await;
        let s2 = test_secret(SEED, 12);
        let request = request_signed_by(
            stranger.key(),
            stranger.address(),
            &payer,
            10,
            s2,
            now + 600,
        );
        lock_refused(
            &mut payer,
            &mut pay,
            |p| {
                p.sign_locked_transfer(&request, u(s.lock_amount(10)), expiration, now)
                    .unwrap()
            },
            Code::NotFound,
            "has no open channel",
            &payer_before,
        )
        .await;
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

        // The genuine one, one unit short of amount + fee: refused, not held.
        lock_refused(
            &mut payer,
            &mut pay,
            |p| {
                let msg = p
                    .sign_locked_transfer(&request, u(s.lock_amount(100) - 1), expiration, now)
                    .unwrap();
                assert_eq!(msg, genuine);
                msg
            },
            Code::FailedPrecondition,
            "does not cover",
            &payer_before,
        )
        .await;

        // A lock expiring too soon for the hub's reveal timeout.
        let now = payer.ledger_now().await.unwrap();
        let s2 = test_secret(SEED, 23);
        let request = payee.payment_request(u(100), s2, 3, now + 600).unwrap();
        let soon = now + s.reveal_timeout + 1;
        lock_refused(
            &mut payer,
            &mut pay,
            |p| {
                p.sign_locked_transfer(&request, u(s.lock_amount(100)), soon, now)
                    .unwrap()
            },
            Code::FailedPrecondition,
            "must be later than",
            &payer_before,
        )
        .await;

        // A lock beyond the settlement window (it would still be alive when a close made
        // now could settle, and hold the hub's capacity toward the payee that long), up to
        // the largest expiration there is: INVALID_ARGUMENT naming the bound.
        for late in [
            now + s.settlement_window + 5,
            now + 10 * 365 * 86_400,
            u64::MAX,
        ] {
            lock_refused(
                &mut payer,
                &mut pay,
                |p| {
                    p.sign_locked_transfer(&request, u(s.lock_amount(100)), late, now)
                        .unwrap()
                },
                Code::InvalidArgument,
                "the latest expiration the hub takes",
                &payer_before,
            )
            .await;
        }

        // A request the payee did not sign.
        let s3 = test_secret(SEED, 24);
        let request = request_signed_by(payer.key(), payee.address(), &payee, 100, s3, now + 600);
        lock_refused(
            &mut payer,
            &mut pay,
            |p| {
                p.sign_locked_transfer(&request, u(s.lock_amount(100)), expiration, now)
                    .unwrap()
            },
            Code::InvalidArgument,
            "payment request refused",
            &payer_before,
        )
        .await;
        assert_channel(&payee, &payee_before, "payee untouched").await;
    })
    .await
    .unwrap();
}
