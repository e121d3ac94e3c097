//! Unit tests of the channel state machine: each participant's `Channel` fed the other's
//! messages through the [`Pair`](crate::testing::Pair) harness, plus a negative test for every
//! rejection, each checking that the refused input left the channel unchanged.

use super::*;
use crate::crypto::Signer;
use crate::locks::{HashTimeLock, Secret};
use crate::proofs::BalanceProof;
use crate::testing::{sends, test_domain, test_signer, Pair, Side};

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn secret(n: u8) -> Secret {
    Secret(H256([n; 32]))
}

/// A payment message from A that B has not seen yet.
fn next_payment_from_a(pair: &mut Pair, amount: u64) -> SignedBalanceProof {
    let mut a = pair.a.clone();
    let events = a.send_payment(u(amount), H256::ZERO, &pair.key_a).unwrap();
    match sends(&events).pop() {
        Some(ChannelMessage::Payment { proof, .. }) => proof,
        other => panic!("expected a payment, got {other:?}"),
    }
}

/// A payment proof of A with the given nonce and transferred amount, whatever A's state.
fn signed_by_a(pair: &Pair, nonce: u64, transferred: u64) -> SignedBalanceProof {
    BalanceProof {
        domain: test_domain(),
        channel_identifier: u(1),
        nonce,
        balance: crate::proofs::BalanceData {
            transferred_amount: u(transferred),
            ..Default::default()
        },
        additional_hash: H256::ZERO,
    }
    .sign(&pair.key_a)
    .unwrap()
}

/// Asserts that `f` fails with `want` and leaves `b` untouched.
fn rejected(
    pair: &mut Pair,
    want: ChannelError,
    f: impl FnOnce(&mut Channel) -> Result<Vec<ChannelEvent>, ChannelError>,
) {
    let before = pair.b.clone();
    let got = f(&mut pair.b);
    assert_eq!(got, Err(want));
    assert_eq!(
        pair.b, before,
        "a rejected input must not change the channel"
    );
}

#[test]
fn payments_both_ways_move_balances() {
    let mut pair = Pair::new(u(100), u(50));
    pair.pay(Side::A, u(30)).unwrap();
    pair.pay(Side::B, u(5)).unwrap();
    pair.pay(Side::A, u(1)).unwrap();
    assert_eq!(pair.a.our_balance().unwrap(), u(74));
    assert_eq!(pair.b.our_balance().unwrap(), u(76));
    assert_eq!(pair.b.partner_balance().unwrap(), u(74));
    assert_eq!(pair.a.our().nonce(), 2);
    assert_eq!(pair.b.partner().nonce(), 2);
    assert_eq!(
        pair.b.partner_latest_proof(),
        pair.a.our_latest_proof(),
        "both sides hold the same latest proof of A"
    );
}

#[test]
fn cannot_send_more_than_held() {
    let mut pair = Pair::new(u(10), u(0));
    pair.pay(Side::A, u(10)).unwrap();
    let before = pair.a.clone();
    assert_eq!(
        pair.pay(Side::A, u(1)),
        Err(ChannelError::InsufficientBalance {
            available: u(0),
            requested: u(1)
        })
    );
    assert_eq!(pair.a, before);
    assert_eq!(pair.pay(Side::A, u(0)), Err(ChannelError::ZeroAmount));
}

#[test]
fn rejects_amount_beyond_sender_balance() {
    let mut pair = Pair::new(u(10), u(0));
    // A signs a proof for more than it holds (a malicious sender bypassing its own checks).
    let proof = signed_by_a(&pair, 1, 11);
    rejected(
        &mut pair,
        ChannelError::InsufficientBalance {
            available: u(10),
            requested: u(11),
        },
        |b| b.handle_payment(&proof, u(11)),
    );
}

#[test]
fn rejects_bad_signature() {
    let mut pair = Pair::new(u(100), u(0));
    let mut proof = next_payment_from_a(&mut pair, 5);
    // Signed by a stranger over the same bytes.
    proof.signature = proof.proof.sign(&test_signer(9)).unwrap().signature;
    let stranger = test_signer(9).address();
    let a_address = pair.a.our_address();
    rejected(
        &mut pair,
        ChannelError::BadSignature(crate::CryptoError::WrongSigner {
            expected: a_address,
            actual: stranger,
        }),
        |b| b.handle_payment(&proof, u(5)),
    );
    // Once the key is learned, a forged signature fails plain verification.
    pair.pay(Side::A, u(1)).unwrap();
    let mut proof = next_payment_from_a(&mut pair, 5);
    proof.signature = proof.proof.sign(&test_signer(9)).unwrap().signature;
    let addr = pair.a.our_address();
    rejected(
        &mut pair,
        ChannelError::BadSignature(crate::CryptoError::Invalid(addr)),
        |b| b.handle_payment(&proof, u(5)),
    );
}

#[test]
fn rejects_replayed_and_stale_proofs() {
    let mut pair = Pair::new(u(100), u(0));
    let first = next_payment_from_a(&mut pair, 5);
    pair.b.handle_payment(&first, u(5)).unwrap();
    pair.a.send_payment(u(5), H256::ZERO, &pair.key_a).unwrap();
    rejected(
        &mut pair,
        ChannelError::StaleNonce { latest: 1, got: 1 },
        |b| b.handle_payment(&first, u(5)),
    );
}

#[test]
fn rejects_nonce_gap_and_decreasing_transfer() {
    let mut pair = Pair::new(u(100), u(0));
    pair.pay(Side::A, u(20)).unwrap();
    let mut skip = pair.a.clone();
    skip.send_payment(u(1), H256::ZERO, &pair.key_a).unwrap();
    let skipped = next_payment_from_a(
        &mut Pair {
            a: skip,
            ..pair.clone()
        },
        1,
    );
    rejected(
        &mut pair,
        ChannelError::NonceGap {
            expected: 2,
            got: 3,
        },
        |b| b.handle_payment(&skipped, u(1)),
    );
    let lower = signed_by_a(&pair, 2, 10);
    rejected(
        &mut pair,
        ChannelError::TransferredAmountDecreased {
            previous: u(20),
            got: u(10),
        },
        |b| b.handle_payment(&lower, u(1)),
    );
}

#[test]
fn rejects_amount_that_does_not_match_the_proof() {
    let mut pair = Pair::new(u(100), u(0));
    let proof = next_payment_from_a(&mut pair, 5);
    rejected(
        &mut pair,
        ChannelError::BalanceMismatch {
            field: "transferred_amount",
            expected: "6".into(),
            got: "5".into(),
        },
        |b| b.handle_payment(&proof, u(6)),
    );
}

#[test]
fn rejects_wrong_channel_chain_and_token_network() {
    let mut pair = Pair::new(u(100), u(0));
    let base = next_payment_from_a(&mut pair, 5).proof;
    let key_a = pair.key_a.clone();
    let resign = |p: BalanceProof| p.sign(&key_a).unwrap();

    let mut other_channel = base;
    other_channel.channel_identifier = u(2);
    let p = resign(other_channel);
    rejected(
        &mut pair,
        ChannelError::WrongChannel {
            expected: u(1),
            got: u(2),
        },
        |b| b.handle_payment(&p, u(5)),
    );

    let mut other_chain = base;
    other_chain.domain.chain_id = u(1);
    let p = resign(other_chain);
    rejected(
        &mut pair,
        ChannelError::WrongChain {
            expected: u(337),
            got: u(1),
        },
        |b| b.handle_payment(&p, u(5)),
    );

    let mut other_network = base;
    other_network.domain.token_network_address = Address([1; 20]);
    let p = resign(other_network);
    rejected(
        &mut pair,
        ChannelError::WrongTokenNetwork {
            expected: test_domain().token_network_address,
            got: Address([1; 20]),
        },
        |b| b.handle_payment(&p, u(5)),
    );
}

#[test]
fn rejects_overflow() {
    let mut pair = Pair::new(U256::MAX, u(1));
    pair.pay(Side::B, u(1)).unwrap();
    // A's balance is MAX + 1: the arithmetic must refuse, not wrap.
    assert_eq!(pair.a.our_balance(), Err(ChannelError::Overflow("balance")));
    let before = pair.a.clone();
    assert_eq!(
        pair.pay(Side::A, u(1)),
        Err(ChannelError::Overflow("balance"))
    );
    assert_eq!(pair.a, before);
}

#[test]
fn locked_transfer_unlock_and_expiry() {
    let mut pair = Pair::new(u(100), u(0));
    let now = pair.now;
    let lock = HashTimeLock {
        expiration: now + 100,
        amount: u(40),
        secrethash: secret(1).hash(),
    };
    pair.drive(Side::A, |ch, key, now| {
        ch.send_locked_transfer(lock, now, H256::ZERO, key)
    })
    .unwrap();
    assert_eq!(pair.b.partner().locked(), u(40));
    assert_eq!(pair.b.partner_distributable().unwrap(), u(60));
    assert_eq!(
        pair.a.our().locks.locksroot(),
        pair.b.partner().locks.locksroot()
    );

    // Wrong secret: no lock has sha256 of it.
    let mut sender = pair.a.clone();
    let msg = sends(
        &sender
            .send_unlock(secret(1), H256::ZERO, &pair.key_a)
            .unwrap(),
    )
    .pop();
    let Some(ChannelMessage::Unlock { proof, .. }) = msg else {
        panic!("expected unlock")
    };
    rejected(
        &mut pair,
        ChannelError::WrongSecret(secret(2).hash()),
        |b| b.handle_unlock(&proof, &secret(2)),
    );

    pair.drive(Side::A, |ch, key, _| {
        ch.send_unlock(secret(1), H256::ZERO, key)
    })
    .unwrap();
    assert_eq!(pair.b.our_balance().unwrap(), u(40));
    assert_eq!(pair.b.partner().locked(), u(0));

    // A second lock that expires.
    let lock2 = HashTimeLock {
        expiration: now + 10,
        amount: u(7),
        secrethash: secret(3).hash(),
    };
    pair.drive(Side::A, |ch, key, now| {
        ch.send_locked_transfer(lock2, now, H256::ZERO, key)
    })
    .unwrap();
    let before = pair.a.clone();
    assert_eq!(
        pair.a
            .send_lock_expired(lock2.secrethash, now + 9, H256::ZERO, &pair.key_a),
        Err(ChannelError::LockNotExpired(lock2.secrethash))
    );
    assert_eq!(pair.a, before);
    pair.now = now + 10;
    pair.drive(Side::A, |ch, key, now| {
        ch.send_lock_expired(lock2.secrethash, now, H256::ZERO, key)
    })
    .unwrap();
    assert_eq!(pair.b.partner().locked(), u(0));
    assert_eq!(pair.a.our_distributable().unwrap(), u(60));
}

#[test]
fn rejects_expired_lock() {
    let mut pair = Pair::new(u(100), u(0));
    let now = pair.now;
    let lock = HashTimeLock {
        expiration: now + 5,
        amount: u(1),
        secrethash: secret(1).hash(),
    };
    let mut sender = pair.a.clone();
    let msg = sends(
        &sender
            .send_locked_transfer(lock, now, H256::ZERO, &pair.key_a)
            .unwrap(),
    )
    .pop();
    let Some(ChannelMessage::LockedTransfer { proof, lock }) = msg else {
        panic!("expected a locked transfer")
    };
    rejected(
        &mut pair,
        ChannelError::LockExpired {
            expiration: now + 5,
            now: now + 5,
        },
        |b| b.handle_locked_transfer(&proof, &lock, now + 5),
    );
}

#[test]
fn withdraw_reserves_then_ledger_confirms() {
    let mut pair = Pair::new(u(100), u(20));
    let now = pair.now;
    let events = pair
        .drive(Side::A, |ch, key, now| {
            ch.request_withdraw(u(30), now + 60, now, key)
        })
        .unwrap();
    let ready = events.iter().find_map(|e| match e {
        ChannelEvent::WithdrawReady {
            proof,
            participant_signature,
            partner_signature,
        } => Some((*proof, *participant_signature, *partner_signature)),
        _ => None,
    });
    let (proof, sig_a, sig_b) = ready.expect("withdraw ready after confirmation");
    // The proof both signed is the one A asked for, and its signing hash is the EIP-191 hash
    // of the Raiden withdraw packing, rebuilt here field by field.
    assert_eq!(proof.participant, pair.key_a.address());
    assert_eq!(proof.total_withdraw, u(30));
    assert_eq!(proof.withdrawable_until, now + 60);
    let domain = test_domain();
    let prefix = b"\x19Ethereum Signed Message:\n200";
    let mut message = prefix.to_vec();
    message.extend_from_slice(domain.token_network_address.as_bytes());
    message.extend_from_slice(&domain.chain_id.to_be_bytes::<32>());
    message.extend_from_slice(&u(3).to_be_bytes::<32>()); // MessageTypeId.WITHDRAW
    message.extend_from_slice(&pair.a.id().to_be_bytes::<32>());
    message.extend_from_slice(pair.key_a.address().as_bytes());
    message.extend_from_slice(&u(30).to_be_bytes::<32>());
    message.extend_from_slice(&u(now + 60).to_be_bytes::<32>());
    assert_eq!(message.len(), prefix.len() + 200, "200 packed bytes");
    assert_eq!(proof.signing_hash(), crate::crypto::keccak256(&message));
    assert_eq!(
        sig_a.recover(&proof.signing_hash()).unwrap(),
        pair.key_a.address()
    );
    assert_eq!(
        sig_b.recover(&proof.signing_hash()).unwrap(),
        pair.key_b.address()
    );
    assert_eq!(pair.a.our_distributable().unwrap(), u(70));
    assert_eq!(pair.b.partner_distributable().unwrap(), u(70));
    assert_eq!(
        pair.pay(Side::A, u(71)),
        Err(ChannelError::InsufficientBalance {
            available: u(70),
            requested: u(71)
        })
    );
    for ch in [&mut pair.a, &mut pair.b] {
        ch.handle_ledger_withdraw(pair.key_a.address(), u(30))
            .unwrap();
    }
    assert!(pair.a.our().pending_withdraw.is_none());
    assert_eq!(pair.a.our_balance().unwrap(), u(70));
    assert_eq!(pair.a.total_available().unwrap(), u(90));
    let _ = now;
}

#[test]
fn rejects_withdraw_beyond_balance_or_expired() {
    let mut pair = Pair::new(u(10), u(0));
    let now = pair.now;
    let proof = WithdrawProof {
        domain: test_domain(),
        channel_identifier: u(1),
        participant: pair.key_a.address(),
        total_withdraw: u(11),
        withdrawable_until: now + 60,
    };
    let sig = proof.sign(&pair.key_a).unwrap();
    let key_b = pair.key_b.clone();
    rejected(
        &mut pair,
        ChannelError::InsufficientBalance {
            available: u(10),
            requested: u(11),
        },
        |b| b.handle_withdraw_request(&proof, &sig, now, &key_b),
    );
    let expired = WithdrawProof {
        total_withdraw: u(5),
        withdrawable_until: now,
        ..proof
    };
    let sig = expired.sign(&pair.key_a).unwrap();
    rejected(
        &mut pair,
        ChannelError::WithdrawExpired { until: now, now },
        |b| b.handle_withdraw_request(&expired, &sig, now, &key_b),
    );
}

#[test]
fn close_and_update_transactions() {
    let mut pair = Pair::new(u(100), u(100));
    pair.pay(Side::A, u(10)).unwrap();
    pair.pay(Side::B, u(3)).unwrap();
    let close = pair.a.close(&pair.key_a).unwrap();
    assert_eq!(Some(&close.partner_proof), pair.a.partner_latest_proof());
    assert_eq!(
        close
            .closing_signature
            .recover(&close.partner_proof.closing_hash())
            .unwrap(),
        pair.key_a.address()
    );
    assert_eq!(
        pair.pay(Side::A, u(1)),
        Err(ChannelError::NotOpen("closing"))
    );
    pair.b
        .handle_ledger_closed(pair.key_a.address(), 5)
        .unwrap();
    let update = pair.b.update_transaction(&pair.key_b).unwrap().unwrap();
    assert_eq!(Some(&update.closer_proof), pair.a.our_latest_proof());
    assert_eq!(
        update
            .non_closing_signature
            .recover(&update.closer_proof.update_hash())
            .unwrap(),
        pair.key_b.address()
    );
    // The closer itself has nothing to update.
    pair.a
        .handle_ledger_closed(pair.key_a.address(), 5)
        .unwrap();
    assert_eq!(pair.a.update_transaction(&pair.key_a).unwrap(), None);
}

#[test]
fn close_without_partner_proof_uses_the_empty_placeholder() {
    let mut pair = Pair::new(u(1), u(1));
    let close = pair.a.close(&pair.key_a).unwrap();
    assert!(close.partner_proof.is_none());
}

#[test]
fn parts_roundtrip_keeps_the_channel() {
    let mut pair = Pair::new(u(100), u(100));
    pair.pay(Side::A, u(10)).unwrap();
    let mut back = Channel::from_parts(pair.b.to_parts()).unwrap();
    assert_eq!(back, pair.b);
    // The restored channel goes on verifying and accepting A's next payment.
    let proof = next_payment_from_a(&mut pair, 5);
    back.handle_payment(&proof, u(5)).unwrap();
    assert_eq!(back.partner().nonce(), 2);
}

#[test]
fn restore_latest_proofs_checks_signers_and_continues() {
    let mut pair = Pair::new(u(100), u(100));
    pair.pay(Side::A, u(10)).unwrap();
    pair.pay(Side::B, u(4)).unwrap();
    let ours = pair.a.our_latest_proof().copied();
    let theirs = pair.a.partner_latest_proof().copied();
    let fresh = Pair::new(u(100), u(100)).a;

    let mut swapped = fresh.clone();
    assert!(matches!(
        swapped.restore_latest_proofs(theirs, ours),
        Err(ChannelError::BadSignature(_))
    ));
    assert_eq!(swapped, fresh, "a refused restore changes nothing");

    let mut restored = fresh;
    restored.restore_latest_proofs(ours, theirs).unwrap();
    assert_eq!(restored.our_balance().unwrap(), u(94));
    pair.a = restored;
    pair.pay(Side::A, u(1)).unwrap();
    assert_eq!(pair.b.partner().nonce(), 2);
}
