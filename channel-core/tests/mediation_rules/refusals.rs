//! Every refusal, and that it changes nothing: of a forward (`plan_forward` through
//! `forward`) and of each transition of a mediated transfer.

use channel_core::channel::{Channel, ChannelMessage};
use channel_core::crypto::Signer;
use channel_core::locks::{HashTimeLock, Secret};
use channel_core::mediation::{
    forward, plan_forward, FeeError, FeePolicy, Leg, MediatedTransfer, MediationError,
    MediationRefusal, Stage,
};
use channel_core::testing::test_domain;
use channel_core::{H256, U256};

use crate::world::{u, Star};
use crate::{amt, Fixture};

/// Runs `forward` on a copy of `outgoing`; asserts the refusal and that the copy is unchanged.
fn refused(
    fx: &Fixture,
    incoming: &Channel,
    lock: &HashTimeLock,
    amount: u64,
    outgoing: &Channel,
    want: MediationRefusal,
) {
    let mut copy = outgoing.clone();
    let got = forward(
        incoming,
        lock,
        u(amount),
        &mut copy,
        &fx.config,
        fx.star.now,
        H256::ZERO,
        &fx.star.hub_key,
    );
    assert_eq!(got.err(), Some(MediationError::Refused(want.clone())));
    assert_eq!(
        &copy, outgoing,
        "refusal {want:?} changed the payee channel"
    );
    assert_eq!(
        plan_forward(incoming, lock, u(amount), outgoing, &fx.config, fx.star.now),
        Err(want)
    );
}

/// The payer has locked `gross` toward the hub; returns (incoming, lock, outgoing).
fn locked(fx: &mut Fixture, gross: u64, expires_in: u64) -> (Channel, HashTimeLock, Channel) {
    let lock = fx.lock(gross, expires_in);
    fx.star.lock_to_hub(fx.payer, lock).unwrap();
    (
        fx.star.hub[&fx.payer].clone(),
        lock,
        fx.star.hub[&fx.payee].clone(),
    )
}

#[test]
fn forward_within_the_rules_is_accepted_at_the_boundaries() {
    // amount 100: fee 1 + 1 = 2, so 102 covers it exactly; the outgoing lock expires 20 s
    // earlier and 26 s leaves the payee 6 s > 5 s.
    let mut fx = Fixture::two_devices();
    let (incoming, lock, outgoing) = locked(&mut fx, 102, 26);
    let plan = plan_forward(&incoming, &lock, u(100), &outgoing, &fx.config, fx.star.now).unwrap();
    assert_eq!(plan.fee, amt(2));
    assert_eq!(plan.outgoing_lock.amount, amt(100));
    assert_eq!(plan.outgoing_lock.expiration, lock.expiration - 20);
    assert_eq!(plan.outgoing_lock.secrethash, lock.secrethash);
}

#[test]
fn same_channel_same_partner_and_other_ledgers_are_refused() {
    let mut fx = Fixture::two_devices();
    let (incoming, lock, _) = locked(&mut fx, 102, 60);
    refused(
        &fx,
        &incoming,
        &lock,
        100,
        &incoming,
        MediationRefusal::SameChannel(incoming.id()),
    );
    let hub = fx.star.hub_key.address();
    let twin = Channel::new(test_domain(), u(99), hub, fx.payer);
    refused(
        &fx,
        &incoming,
        &lock,
        100,
        &twin,
        MediationRefusal::SamePartner(fx.payer),
    );
    let mut other = test_domain();
    other.chain_id = u(1);
    let elsewhere = Channel::new(other, u(2), hub, fx.payee);
    refused(
        &fx,
        &incoming,
        &lock,
        100,
        &elsewhere,
        MediationRefusal::DifferentLedgers,
    );
}

#[test]
fn closed_channels_are_refused() {
    let mut fx = Fixture::two_devices();
    let (incoming, lock, outgoing) = locked(&mut fx, 102, 60);
    let mut closed_in = incoming.clone();
    closed_in
        .handle_ledger_closed(fx.payer, fx.star.now)
        .unwrap();
    refused(
        &fx,
        &closed_in,
        &lock,
        100,
        &outgoing,
        MediationRefusal::PayerChannelNotOpen("closed"),
    );
    let mut closed_out = outgoing.clone();
    closed_out
        .handle_ledger_closed(fx.payee, fx.star.now)
        .unwrap();
    refused(
        &fx,
        &incoming,
        &lock,
        100,
        &closed_out,
        MediationRefusal::PayeeChannelNotOpen("closed"),
    );
}

#[test]
fn a_lock_the_hub_does_not_hold_or_already_forwarded_is_refused() {
    let mut fx = Fixture::two_devices();
    let (incoming, lock, outgoing) = locked(&mut fx, 102, 60);
    let mut bigger = lock;
    bigger.amount = u(500);
    refused(
        &fx,
        &incoming,
        &bigger,
        100,
        &outgoing,
        MediationRefusal::IncomingLockNotHeld(lock.secrethash),
    );
    let mut other = lock;
    other.secrethash = Secret(H256([8; 32])).hash();
    refused(
        &fx,
        &incoming,
        &other,
        100,
        &outgoing,
        MediationRefusal::IncomingLockNotHeld(other.secrethash),
    );
    let mut after = outgoing.clone();
    forward(
        &incoming,
        &lock,
        u(100),
        &mut after,
        &fx.config,
        fx.star.now,
        H256::ZERO,
        &fx.star.hub_key,
    )
    .unwrap();
    refused(
        &fx,
        &incoming,
        &lock,
        100,
        &after,
        MediationRefusal::AlreadyForwarded(lock.secrethash),
    );
}

#[test]
fn amounts_and_fees_that_do_not_add_up_are_refused() {
    let mut fx = Fixture::two_devices();
    let (incoming, lock, outgoing) = locked(&mut fx, 101, 60);
    refused(
        &fx,
        &incoming,
        &lock,
        0,
        &outgoing,
        MediationRefusal::ZeroAmount,
    );
    refused(
        &fx,
        &incoming,
        &lock,
        100,
        &outgoing,
        MediationRefusal::FeeNotCovered {
            locked: amt(101),
            amount: amt(100),
            fee: amt(2),
        },
    );
    fx.config.fees = FeePolicy {
        flat: U256::MAX,
        proportional_ppm: 1,
    };
    refused(
        &fx,
        &incoming,
        &lock,
        1,
        &outgoing,
        MediationRefusal::Fee(FeeError::Overflow { amount: amt(1) }),
    );
}

#[test]
fn an_outgoing_lock_that_would_expire_too_soon_is_refused() {
    let mut fx = Fixture::two_devices();
    let now = fx.star.now;
    // Incoming expires in 25 s: outgoing at now + 5, not after now + 5.
    let (incoming, lock, outgoing) = locked(&mut fx, 102, 25);
    refused(
        &fx,
        &incoming,
        &lock,
        100,
        &outgoing,
        MediationRefusal::ExpiryTooSoon {
            incoming_expiration: now + 25,
            outgoing_expiration: now + 5,
            earliest: now + 5,
        },
    );
    // Shorter than the reveal timeout itself: still a refusal, and no underflow.
    fx.secret = Secret(H256([9; 32]));
    let (incoming, lock, outgoing) = locked(&mut fx, 102, 3);
    refused(
        &fx,
        &incoming,
        &lock,
        100,
        &outgoing,
        MediationRefusal::ExpiryTooSoon {
            incoming_expiration: now + 3,
            outgoing_expiration: now + 3 - 20,
            earliest: now + 5,
        },
    );
}

#[test]
fn a_lock_beyond_the_settlement_window_is_refused() {
    let mut fx = Fixture::two_devices();
    let now = fx.star.now;
    let window = fx.config.settlement_window;
    // Exactly the window: forwarded (it has expired by the time a close made now settles).
    let (incoming, lock, outgoing) = locked(&mut fx, 102, window);
    let plan = plan_forward(&incoming, &lock, u(100), &outgoing, &fx.config, now).unwrap();
    assert_eq!(plan.outgoing_lock.expiration, now + window - 20);
    // One second more, and the attack's "never": refused, naming the bound.
    for (seed, expires_in) in [(9u8, window + 1), (10, u64::MAX - now)] {
        fx.secret = Secret(H256([seed; 32]));
        let (incoming, lock, outgoing) = locked(&mut fx, 102, expires_in);
        refused(
            &fx,
            &incoming,
            &lock,
            100,
            &outgoing,
            MediationRefusal::ExpiryTooLate {
                expiration: now + expires_in,
                latest: now + window,
                now,
                settlement_window: window,
            },
        );
    }
}

#[test]
fn a_refused_lock_is_taken_back_only_to_the_proof_before_it() {
    let mut fx = Fixture::two_devices();
    let payer = fx.payer;
    // One accepted payment first, so the lock's proof has a predecessor.
    let pay = fx
        .star
        .device_sends(payer, |ch, key, _| ch.send_payment(u(5), H256::ZERO, key))
        .unwrap();
    let now = fx.star.now;
    let hub_key = fx.star.hub_key.clone();
    fx.star
        .hub
        .get_mut(&payer)
        .unwrap()
        .handle_message(&pay, now, &hub_key)
        .unwrap();
    let dev = fx.star.devices.get_mut(&payer).unwrap();
    let before = dev.channel.clone();
    let previous = *before.our_latest_proof().unwrap();
    let lock = HashTimeLock {
        expiration: now + 60,
        amount: u(102),
        secrethash: fx.secret.hash(),
    };
    dev.channel
        .send_locked_transfer(lock, now, H256::ZERO, &dev.key)
        .unwrap();
    let sent = dev.channel.clone();
    // Not to anything else: no predecessor, a proof of another nonce, another lock.
    let other = HashTimeLock {
        amount: u(101),
        ..lock
    };
    for (lock, previous, what) in [
        (lock, None, "without the proof before it"),
        (lock, Some(*sent.our_latest_proof().unwrap()), "to itself"),
        (other, Some(previous), "for another lock"),
    ] {
        let mut copy = sent.clone();
        assert!(
            copy.retract_refused_lock(&lock, previous.as_ref()).is_err(),
            "retracted {what}"
        );
        assert_eq!(
            copy, sent,
            "a refused retraction changed the channel ({what})"
        );
    }
    dev.channel
        .retract_refused_lock(&lock, Some(&previous))
        .unwrap();
    assert_eq!(
        dev.channel, before,
        "back to exactly the state before the lock"
    );
}

#[test]
fn no_capacity_toward_the_payee_is_refused() {
    let star = Star::new(&[(5_000, 0), (0, 1_000)]);
    let mut fx = Fixture {
        payer: star.addr(0),
        payee: star.addr(1),
        star,
        ..Fixture::two_devices()
    };
    let (incoming, lock, outgoing) = locked(&mut fx, 2_000, 60);
    refused(
        &fx,
        &incoming,
        &lock,
        1_001,
        &outgoing,
        MediationRefusal::NoCapacity {
            available: amt(1_000),
            requested: amt(1_001),
        },
    );
    assert!(plan_forward(
        &incoming,
        &lock,
        u(1_000),
        &outgoing,
        &fx.config,
        fx.star.now
    )
    .is_ok());
}

/// Runs a transition on copies of the record and channel; asserts the error and that
/// neither copy changed.
fn transition_refused<T: std::fmt::Debug>(
    record: &MediatedTransfer,
    channel: &Channel,
    want: impl Fn(&MediationError) -> bool,
    step: impl FnOnce(&mut MediatedTransfer, &mut Channel) -> Result<T, MediationError>,
) {
    let (mut r, mut c) = (record.clone(), channel.clone());
    let got = step(&mut r, &mut c);
    match got {
        Err(e) => assert!(want(&e), "unexpected refusal {e:?}"),
        Ok(v) => panic!("expected a refusal, got {v:?}"),
    }
    assert_eq!(&r, record, "refusal changed the record");
    assert_eq!(&c, channel, "refusal changed the channel");
}

#[test]
fn the_hub_unlocks_only_against_the_secret_and_in_the_right_channel() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    let key = fx.star.hub_key.clone();
    let out = fx.star.hub[&fx.payee].clone();
    let inc = fx.star.hub[&fx.payer].clone();
    transition_refused(
        &record,
        &out,
        |e| *e == MediationError::SecretUnknown,
        |r, c| r.unlock_outgoing(c, &fx.star.hub[&fx.payer], fx.star.now, H256::ZERO, &key),
    );
    let wrong = Secret(H256([8; 32]));
    transition_refused(
        &record,
        &out,
        |e| matches!(e, MediationError::WrongSecret { .. }),
        |r, _| r.handle_secret_reveal(wrong, &fx.star.hub[&fx.payer], fx.star.now),
    );
    assert_eq!(
        record.handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now),
        Ok(true)
    );
    assert_eq!(
        record.handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now),
        Ok(false),
        "idempotent"
    );
    transition_refused(
        &record,
        &inc,
        |e| {
            *e == MediationError::WrongChannel {
                expected: out.id(),
                got: inc.id(),
            }
        },
        |r, c| r.unlock_outgoing(c, &fx.star.hub[&fx.payer], fx.star.now, H256::ZERO, &key),
    );
    let mut out = out;
    record
        .unlock_outgoing(
            &mut out,
            &fx.star.hub[&fx.payer],
            fx.star.now,
            H256::ZERO,
            &key,
        )
        .unwrap();
    transition_refused(
        &record,
        &out,
        |e| *e == MediationError::OutgoingNotPending(Stage::OutgoingUnlocked),
        |r, c| r.unlock_outgoing(c, &fx.star.hub[&fx.payer], fx.star.now, H256::ZERO, &key),
    );
}

#[test]
fn a_secret_revealed_after_the_outgoing_lock_expired_is_refused() {
    let mut fx = Fixture::two_devices();
    let record = fx.forwarded(102, 100, 60);
    let expiry = record.outgoing_lock().expiration;
    let out = fx.star.hub[&fx.payee].clone();
    transition_refused(
        &record,
        &out,
        |e| *e == MediationError::OutgoingExpired,
        |r, _| r.handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], expiry),
    );
}

#[test]
fn outgoing_expiry_needs_expiration_and_no_secret() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    let key = fx.star.hub_key.clone();
    let expiry = record.outgoing_lock().expiration;
    let out = fx.star.hub[&fx.payee].clone();
    transition_refused(
        &record,
        &out,
        |e| {
            *e == MediationError::NotExpired {
                expiration: expiry,
                now: expiry - 1,
            }
        },
        |r, c| r.expire_outgoing(c, expiry - 1, H256::ZERO, &key),
    );
    record
        .handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], expiry - 1)
        .unwrap();
    transition_refused(
        &record,
        &out,
        |e| *e == MediationError::SecretKnown,
        |r, c| r.expire_outgoing(c, expiry, H256::ZERO, &key),
    );
}

#[test]
fn the_payers_lock_expired_is_refused_once_the_secret_is_on_the_ledger_in_time() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    let key = fx.star.hub_key.clone();
    let deadline = record.must_register_secret_by();
    assert_eq!(
        deadline, None,
        "nothing to register before the secret is known"
    );
    record
        .handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now)
        .unwrap();
    let mut out = fx.star.hub[&fx.payee].clone();
    record
        .unlock_outgoing(
            &mut out,
            &fx.star.hub[&fx.payer],
            fx.star.now,
            H256::ZERO,
            &key,
        )
        .unwrap();
    let deadline = record.must_register_secret_by().unwrap();
    assert_eq!(
        (deadline.from, deadline.before),
        (fx.star.now + 40, fx.star.now + 60)
    );
    fx.star
        .ledger
        .register_secret(key.address(), fx.secret, deadline.from)
        .unwrap();
    record
        .handle_secret_registered(fx.secret, deadline.from)
        .unwrap();
    assert_eq!(record.stage(), Stage::SecretRegistered);
    // The payer tries to take the lock back after it expired.
    fx.star.now = deadline.before;
    let msg = fx
        .star
        .device_sends(fx.payer, |ch, k, now| {
            ch.send_lock_expired(fx.secret.hash(), now, H256::ZERO, k)
        })
        .unwrap();
    let ChannelMessage::LockExpired { proof, .. } = msg else {
        panic!("lock expired expected")
    };
    let inc = fx.star.hub[&fx.payer].clone();
    transition_refused(
        &record,
        &inc,
        |e| {
            *e == MediationError::ClaimableOnLedger {
                registered_at: deadline.from,
                expiration: deadline.before,
            }
        },
        |r, c| r.handle_incoming_expired(c, &proof, deadline.before),
    );
}

#[test]
fn a_forged_unlock_from_the_payer_is_refused_by_the_channel() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    record
        .handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now)
        .unwrap();
    let secret = fx.secret;
    let msg = fx
        .star
        .device_sends(fx.payer, |ch, k, _| ch.send_unlock(secret, H256::ZERO, k))
        .unwrap();
    let ChannelMessage::Unlock { proof, .. } = msg else {
        panic!("unlock expected")
    };
    let mut forged = proof;
    forged.proof.balance.transferred_amount = u(500);
    let inc = fx.star.hub[&fx.payer].clone();
    transition_refused(
        &record,
        &inc,
        |e| matches!(e, MediationError::Channel(_)),
        |r, c| r.handle_incoming_unlock(c, &forged, &secret),
    );
    let wrong = Secret(H256([8; 32]));
    transition_refused(
        &record,
        &inc,
        |e| matches!(e, MediationError::WrongSecret { .. }),
        |r, c| r.handle_incoming_unlock(c, &proof, &wrong),
    );
    let mut inc = inc;
    record
        .handle_incoming_unlock(&mut inc, &proof, &secret)
        .unwrap();
    assert_eq!(record.incoming_leg(), Leg::Unlocked);
    transition_refused(
        &record,
        &inc,
        |e| *e == MediationError::IncomingNotPending(Stage::IncomingUnlocked),
        |r, c| r.handle_incoming_unlock(c, &proof, &secret),
    );
}

#[test]
fn the_hub_never_pays_out_once_its_incoming_lock_is_gone() {
    // A hub that learnt the secret but neither unlocked nor registered it in time: once the
    // payer's lock expired, it must not unlock toward the payee any more.
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    let key = fx.star.hub_key.clone();
    record
        .handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now)
        .unwrap();
    fx.star.now = record.incoming_lock().expiration;
    let hash = fx.secret.hash();
    let msg = fx
        .star
        .device_sends(fx.payer, |ch, k, now| {
            ch.send_lock_expired(hash, now, H256::ZERO, k)
        })
        .unwrap();
    let ChannelMessage::LockExpired { proof, .. } = msg else {
        panic!("lock expired expected")
    };
    let mut inc = fx.star.hub[&fx.payer].clone();
    record
        .handle_incoming_expired(&mut inc, &proof, fx.star.now)
        .unwrap();
    let out = fx.star.hub[&fx.payee].clone();
    transition_refused(
        &record,
        &out,
        |e| *e == MediationError::IncomingExpired,
        |r, c| r.unlock_outgoing(c, &fx.star.hub[&fx.payer], fx.star.now, H256::ZERO, &key),
    );
    // It can take its own lock back instead.
    let mut out = out;
    record
        .expire_outgoing(&mut out, fx.star.now, H256::ZERO, &key)
        .unwrap();
    assert_eq!(record.stage(), Stage::Refunded);
}

#[test]
fn a_secret_registered_too_late_for_the_hub_to_claim_does_not_make_it_pay() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    let key = fx.star.hub_key.clone();
    let late = record.incoming_lock().expiration;
    record.handle_secret_registered(fx.secret, late).unwrap();
    assert_eq!(record.secret_registered_at(), Some(late));
    assert_eq!(record.secret(), None);
    assert!(!record.incoming_claimable_on_ledger());
    assert!(!record.poll(late).iter().any(|a| matches!(
        a,
        channel_core::mediation::MediationAction::UnlockOutgoing { .. }
    )));
    let out = fx.star.hub[&fx.payee].clone();
    transition_refused(
        &record,
        &out,
        |e| *e == MediationError::SecretUnknown,
        |r, c| r.unlock_outgoing(c, &fx.star.hub[&fx.payer], fx.star.now, H256::ZERO, &key),
    );
    // Registered in time, the hub pays: it can claim the incoming lock on the ledger.
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    record
        .handle_secret_registered(fx.secret, late - 1)
        .unwrap();
    assert_eq!(record.secret(), Some(fx.secret));
    let mut out = fx.star.hub[&fx.payee].clone();
    record
        .unlock_outgoing(
            &mut out,
            &fx.star.hub[&fx.payer],
            fx.star.now,
            H256::ZERO,
            &key,
        )
        .unwrap();
    assert_eq!(record.stage(), Stage::SecretRegistered);
}
