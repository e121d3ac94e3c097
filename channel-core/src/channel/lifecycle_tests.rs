//! Tests of a channel's end of life against the real ledger rules: the level-triggered
//! monitor, idempotent ledger input, timers, and cooperative close with each of its refusals
//! (every refusal leaves the channel exactly as it was).

use super::monitor::{pending_unlocks, LedgerView};
use super::*;
use crate::crypto::Signer;
use crate::ledger::{Ledger, LedgerConfig, LedgerEvent};
use crate::testing::{test_domain, Pair, Side};

const WINDOW: u64 = 30;
const REVEAL: u64 = 10;

/// What `ch`'s monitor asks for, given `ledger`'s state of channel 1 at `now`.
fn actions(ch: &Channel, ledger: &Ledger, now: u64, key: &dyn Signer) -> Vec<LedgerAction> {
    actions_for(ch, ledger.channel(u(1)).unwrap(), ledger, now, key)
}

fn actions_for(
    ch: &Channel,
    record: &crate::ledger::ChannelRecord,
    ledger: &Ledger,
    now: u64,
    key: &dyn Signer,
) -> Vec<LedgerAction> {
    let pending = pending_unlocks(ledger, record);
    let view = LedgerView {
        record,
        now,
        reveal_timeout: REVEAL,
        pending_unlocks: &pending,
        archived_locks: &[],
    };
    ch.poll_ledger_actions(&view, key).unwrap()
}

/// Submits every update A's monitor asks for at `now` (B closed); returns how many.
fn contest_as_a(pair: &Pair, ledger: &mut Ledger, now: u64) -> usize {
    let mut submitted = 0;
    for got in actions(&pair.a, ledger, now, &pair.key_a) {
        if let LedgerAction::Update(tx) = got {
            ledger
                .update_non_closing_balance_proof(
                    pair.key_a.address(),
                    u(1),
                    &tx.closer_proof,
                    &tx.non_closing_signature,
                    now,
                )
                .unwrap();
            submitted += 1;
        }
    }
    submitted
}

fn u(n: u64) -> U256 {
    U256::from(n)
}

/// A ledger with channel 1 between the pair's keys, both deposits made, and the pair's
/// channels fed every ledger event. A pays B 40, then B pays A 10.
fn funded() -> (Pair, Ledger, Vec<LedgerEvent>) {
    let mut pair = Pair::new(U256::ZERO, U256::ZERO);
    let mut ledger = Ledger::new(LedgerConfig {
        domain: test_domain(),
        settlement_timeout: WINDOW,
    });
    let (a, b) = (pair.key_a.address(), pair.key_b.address());
    let now = pair.now;
    ledger.mint(a, u(1_000), now).unwrap();
    ledger.mint(b, u(1_000), now).unwrap();
    let id = ledger.open_channel(a, b, now).unwrap();
    assert_eq!(id, u(1));
    ledger.set_total_deposit(a, id, a, u(100), now).unwrap();
    ledger.set_total_deposit(b, id, b, u(50), now).unwrap();
    let events = ledger.events_since(0).to_vec();
    for ev in &events {
        pair.a.handle_ledger_event(ev).unwrap();
        pair.b.handle_ledger_event(ev).unwrap();
    }
    pair.pay(Side::A, u(40)).unwrap();
    pair.pay(Side::B, u(10)).unwrap();
    (pair, ledger, events)
}

#[test]
fn ledger_events_apply_once_whatever_the_replays() {
    let (mut pair, mut ledger, events) = funded();
    assert_eq!(pair.b.partner().total_deposit, u(100));
    let before = pair.b.clone();
    for ev in events.iter().rev().chain(events.iter()) {
        assert_eq!(pair.b.handle_ledger_event(ev).unwrap(), vec![]);
    }
    assert_eq!(
        pair.b, before,
        "replayed and out-of-order events change nothing"
    );

    let close = pair.a.close(&pair.key_a).unwrap();
    let closed = ledger
        .close_channel(
            pair.key_a.address(),
            close.channel_id,
            &close.partner_proof,
            &close.closing_signature,
            pair.now,
        )
        .unwrap();
    let first = pair.b.handle_ledger_event(&closed[0]).unwrap();
    assert_eq!(
        first,
        vec![ChannelEvent::Closed {
            closer: pair.key_a.address()
        }]
    );
    let after = pair.b.clone();
    assert_eq!(pair.b.handle_ledger_event(&closed[0]).unwrap(), vec![]);
    assert_eq!(pair.b, after);
}

#[test]
fn monitor_contests_a_stale_close_until_the_ledger_holds_the_latest_proof() {
    let (mut pair, mut ledger, _) = funded();
    // B closes with an older proof of A's (nonce 1, 40) although A paid 5 more: that only
    // hurts B. What A must do is put B's payment to A (10) on the ledger, which holds none.
    let stale = *pair.b.partner_latest_proof().unwrap();
    pair.pay(Side::A, u(5)).unwrap();
    let closing_signature = stale.counter_sign_close(&pair.key_b).unwrap();
    let now = pair.now + 1;
    ledger
        .close_channel(pair.key_b.address(), u(1), &stale, &closing_signature, now)
        .unwrap();

    // A's view never saw the close event (e.g. it crashed right after applying it): the
    // monitor decides from the ledger's record alone.
    let got = actions(&pair.a, &ledger, now, &pair.key_a);
    let [LedgerAction::Update(tx)] = got.as_slice() else {
        panic!("expected an update, got {got:?}");
    };
    assert_eq!(tx.closer_proof.proof.nonce, pair.a.partner().nonce());
    ledger
        .update_non_closing_balance_proof(
            pair.key_a.address(),
            tx.channel_id,
            &tx.closer_proof,
            &tx.non_closing_signature,
            now,
        )
        .unwrap();
    assert_eq!(
        actions(&pair.a, &ledger, now, &pair.key_a),
        vec![],
        "nothing left to contest"
    );
    // B, the closer, has nothing to contest; neither side acts before the window ends.
    assert_eq!(actions(&pair.b, &ledger, now, &pair.key_b), vec![]);
    let record = ledger.channel(u(1)).unwrap().clone();
    let settle_at = pair.a.poll_ledger_timeout(&record, REVEAL).unwrap();
    assert_eq!(settle_at, now + WINDOW + 1);
    for (ch, key) in [(&pair.a, &pair.key_a), (&pair.b, &pair.key_b)] {
        assert_eq!(
            actions(ch, &ledger, settle_at, key),
            vec![LedgerAction::Settle { channel_id: u(1) }]
        );
    }
    // The ledger keeps only the hash of A's stale proof; A must bring its data. A's latest
    // proof is another one, so A needs its archive of the proofs it signed.
    assert_eq!(
        pair.a.settle_transaction(&record, |_| None),
        Err(ChannelError::BalanceDataUnknown {
            signer: pair.key_a.address(),
            nonce: 1,
            balance_hash: stale.proof.balance.balance_hash(),
        })
    );
    let wrong_archive = pair
        .a
        .settle_transaction(&record, |_| Some(BalanceData::EMPTY));
    assert!(
        matches!(
            wrong_archive,
            Err(ChannelError::BalanceDataUnknown { nonce: 1, .. })
        ),
        "archived data is checked against the stored hash"
    );
    let settle = pair
        .a
        .settle_transaction(&record, |nonce| (nonce == 1).then_some(stale.proof.balance))
        .unwrap();
    ledger
        .settle_channel(pair.key_a.address(), &settle, settle_at)
        .unwrap();
    assert_eq!(actions(&pair.a, &ledger, settle_at, &pair.key_a), vec![]);
    // A: 100 - 40 (the proof B chose) + 10 (B's payment, there only thanks to the update).
    assert_eq!(ledger.token_balance(pair.key_a.address()), u(900 + 70));
    assert_eq!(ledger.token_balance(pair.key_b.address()), u(950 + 80));
}

/// A locks 30 toward B (B, the hub, forwarded it and learned the secret from the payee);
/// A withholds the unlock. B's monitor registers the secret inside the reveal timeout, A's
/// lock-expired for it is refused, and after close, update and settle B unlocks on the ledger
/// and gets the 30.
#[test]
fn a_withheld_unlock_is_claimed_on_the_ledger() {
    let (mut pair, mut ledger, _) = funded();
    let secret = crate::locks::Secret(H256([7; 32]));
    let expiration = pair.now + 50;
    let lock = crate::locks::HashTimeLock {
        expiration,
        amount: u(30),
        secrethash: secret.hash(),
    };
    pair.drive(Side::A, |ch, key, now| {
        ch.send_locked_transfer(lock, now, H256::ZERO, key)
    })
    .unwrap();
    assert_eq!(
        pair.b.learn_secret(secret).unwrap(),
        vec![ChannelEvent::SecretLearned {
            secrethash: secret.hash()
        }]
    );
    assert_eq!(pair.b.learn_secret(secret).unwrap(), vec![], "idempotent");
    assert_eq!(
        pair.b.learn_secret(crate::locks::Secret(H256([8; 32]))),
        Err(ChannelError::UnknownLock(
            crate::locks::Secret(H256([8; 32])).hash()
        ))
    );

    // While the partner can still unlock off-chain, nothing to do; from the reveal timeout on,
    // register.
    let record = ledger.channel(u(1)).unwrap().clone();
    let reveal_at = pair.b.poll_ledger_timeout(&record, REVEAL).unwrap();
    assert_eq!(reveal_at, expiration - REVEAL);
    assert_eq!(
        actions(&pair.b, &ledger, reveal_at - 1, &pair.key_b),
        vec![]
    );
    assert_eq!(
        actions(&pair.b, &ledger, reveal_at, &pair.key_b),
        vec![LedgerAction::RegisterSecret { secret }]
    );
    let registered = ledger
        .register_secret(pair.key_b.address(), secret, reveal_at)
        .unwrap();
    for ev in &registered {
        pair.a.handle_ledger_event(ev).unwrap();
        pair.b.handle_ledger_event(ev).unwrap();
    }
    assert!(pair.b.claimed_on_ledger(&lock));
    assert_eq!(actions(&pair.b, &ledger, reveal_at, &pair.key_b), vec![]);

    // After expiry A tries to take the lock back off-chain: refused on both sides.
    let after = expiration + 1;
    let mut a = pair.a.clone();
    assert_eq!(
        a.send_lock_expired(lock.secrethash, after, H256::ZERO, &pair.key_a),
        Err(ChannelError::LockClaimedOnLedger(lock.secrethash))
    );
    assert_eq!(
        pair.a.handle_timeout(after),
        vec![],
        "a claimed lock never expires"
    );

    // Until the lock expires A may still unlock off-chain; from its expiration on, B's monitor
    // asks to close to claim it on the ledger.
    assert_eq!(
        pair.b
            .poll_ledger_timeout(&ledger.channel(u(1)).unwrap().clone(), REVEAL),
        Some(expiration)
    );
    assert_eq!(
        actions(&pair.b, &ledger, expiration - 1, &pair.key_b),
        vec![]
    );
    assert_eq!(
        actions(&pair.b, &ledger, expiration, &pair.key_b),
        vec![LedgerAction::Close { channel_id: u(1) }]
    );
    assert_eq!(
        actions(&pair.a, &ledger, expiration, &pair.key_a),
        vec![],
        "the sender of the lock has nothing to claim"
    );

    // B closes with A's latest proof (which carries the lock), A updates, the window ends.
    let close = pair.b.close(&pair.key_b).unwrap();
    ledger
        .close_channel(
            pair.key_b.address(),
            u(1),
            &close.partner_proof,
            &close.closing_signature,
            after,
        )
        .unwrap();
    contest_as_a(&pair, &mut ledger, after);
    let settle_at = after + WINDOW + 1;
    let record = ledger.channel(u(1)).unwrap().clone();
    let settle = pair.b.settle_transaction(&record, |_| None).unwrap();
    ledger
        .settle_channel(pair.key_b.address(), &settle, settle_at)
        .unwrap();
    let got = actions(&pair.b, &ledger, settle_at, &pair.key_b);
    assert_eq!(
        got,
        vec![LedgerAction::Unlock {
            channel_id: u(1),
            receiver: pair.key_b.address(),
            sender: pair.key_a.address(),
            packed_locks: crate::locks::pack_locks(&[lock]),
        }]
    );
    let LedgerAction::Unlock {
        receiver,
        sender,
        packed_locks,
        ..
    } = &got[0]
    else {
        unreachable!()
    };
    ledger
        .unlock(
            pair.key_b.address(),
            u(1),
            *receiver,
            *sender,
            packed_locks,
            settle_at,
        )
        .unwrap();
    assert_eq!(actions(&pair.b, &ledger, settle_at, &pair.key_b), vec![]);
    // A: 100 - 40 + 10 - 30 (the claimed lock); B: 50 - 10 + 40 + 30.
    assert_eq!(ledger.token_balance(pair.key_a.address()), u(900 + 40));
    assert_eq!(ledger.token_balance(pair.key_b.address()), u(950 + 110));
}

#[test]
fn monitor_refuses_a_record_of_another_channel() {
    let (pair, ledger, _) = funded();
    let mut record = ledger.channel(u(1)).unwrap().clone();
    record.id = u(2);
    let view = LedgerView {
        record: &record,
        now: pair.now,
        reveal_timeout: REVEAL,
        pending_unlocks: &[],
        archived_locks: &[],
    };
    assert_eq!(
        pair.a.poll_ledger_actions(&view, &pair.key_a),
        Err(ChannelError::WrongChannel {
            expected: u(1),
            got: u(2)
        })
    );
}

fn proposal_by_a(pair: &Pair, until: u64) -> CooperativeCloseProposal {
    let mut a = pair.a.clone();
    a.propose_cooperative_close(until, pair.now, &pair.key_a)
        .unwrap()
}

/// `accept_cooperative_close` on B must fail with `want` and leave B untouched.
fn refused(pair: &mut Pair, proposal: &CooperativeCloseProposal, want: ChannelError) {
    let before = pair.b.clone();
    assert_eq!(
        pair.b
            .accept_cooperative_close(proposal, pair.now, &pair.key_b),
        Err(want)
    );
    assert_eq!(
        pair.b, before,
        "a refused proposal must not change the channel"
    );
}

#[test]
fn cooperative_close_settles_on_the_ledger_and_refuses_every_bad_proposal() {
    use CooperativeCloseRefusal as R;
    let (mut pair, mut ledger, _) = funded();
    let until = pair.now + 100;
    let good = proposal_by_a(&pair, until);
    assert_eq!(good.proposer_withdraw.total_withdraw, u(70));
    assert_eq!(good.partner_withdraw.total_withdraw, u(80));

    let mut p = good;
    p.proposer_withdraw.total_withdraw = u(71);
    p.proposer_signature = p.proposer_withdraw.sign(&pair.key_a).unwrap();
    refused(
        &mut pair,
        &p,
        R::NotWholeBalance {
            which: "proposer_withdraw",
            expected: u(70),
            got: u(71),
        }
        .into(),
    );

    let mut p = good;
    let (a, b) = (pair.key_a.address(), pair.key_b.address());
    p.partner_withdraw.participant = a;
    refused(
        &mut pair,
        &p,
        R::WrongParticipant {
            which: "partner_withdraw",
            expected: b,
            got: a,
        }
        .into(),
    );

    // Expired at the acceptor's ledger time: the bug of a refused settle freezing the channel.
    let soon = pair.now + 1;
    let stale = proposal_by_a(&pair, soon);
    pair.now = soon;
    refused(
        &mut pair,
        &stale,
        R::Expired {
            which: "proposer_withdraw",
            until: soon,
            now: soon,
        }
        .into(),
    );
    pair.now -= 1;

    let mut p = good;
    p.partner_withdraw_proposer_signature = p.partner_withdraw.sign(&pair.key_b).unwrap();
    let before = pair.b.clone();
    assert!(matches!(
        pair.b.accept_cooperative_close(&p, pair.now, &pair.key_b),
        Err(ChannelError::CooperativeClose(R::BadSignature {
            which: "partner_withdraw",
            ..
        }))
    ));
    assert_eq!(pair.b, before);

    let mut p = good;
    p.proposer_withdraw.domain.chain_id = u(1);
    refused(
        &mut pair,
        &p,
        ChannelError::WrongChain {
            expected: test_domain().chain_id,
            got: u(1),
        },
    );

    // The good one: B signs, stops payments, and the four signatures settle on the ledger.
    let ok = pair
        .b
        .accept_cooperative_close(&good, pair.now, &pair.key_b)
        .unwrap();
    assert_eq!(pair.b.phase(), ChannelPhase::CooperativeSettling { until });
    assert!(pair.b.send_payment(u(1), H256::ZERO, &pair.key_b).is_err());
    let events = ledger
        .cooperative_settle(
            pair.key_b.address(),
            u(1),
            &good.proposer_withdraw,
            (&good.proposer_signature, &ok.on_proposer_withdraw),
            &good.partner_withdraw,
            (
                &ok.on_own_withdraw,
                &good.partner_withdraw_proposer_signature,
            ),
            pair.now,
        )
        .unwrap();
    for ev in &events {
        pair.b.handle_ledger_event(ev).unwrap();
    }
    assert_eq!(pair.b.phase(), ChannelPhase::Settled);
    assert_eq!(ledger.token_balance(pair.key_a.address()), u(970));
    assert_eq!(ledger.token_balance(pair.key_b.address()), u(1_030));
}

#[test]
fn a_cooperative_close_that_fails_resumes_payments() {
    let (mut pair, _, _) = funded();
    let until = pair.now + 10;
    let proposal = proposal_by_a(&pair, until);
    pair.b
        .accept_cooperative_close(&proposal, pair.now, &pair.key_b)
        .unwrap();
    assert_eq!(
        pair.b.send_payment(u(1), H256::ZERO, &pair.key_b),
        Err(ChannelError::NotOpen("settling cooperatively"))
    );
    // The submission failed: payments resume at once.
    pair.b.resume_payments();
    assert_eq!(pair.b.phase(), ChannelPhase::Open);
    pair.pay(Side::B, u(1)).unwrap();

    // Never submitted: payments resume when the withdraws can no longer reach the ledger.
    let until = pair.now + 10;
    let proposal = proposal_by_a(&pair, until);
    pair.b
        .accept_cooperative_close(&proposal, pair.now, &pair.key_b)
        .unwrap();
    assert_eq!(pair.b.poll_timeout(), Some(pair.now + 10));
    assert_eq!(pair.b.handle_timeout(pair.now + 9), vec![]);
    assert_eq!(
        pair.b.handle_timeout(pair.now + 10),
        vec![ChannelEvent::PaymentsResumed]
    );
    assert_eq!(pair.b.phase(), ChannelPhase::Open);
    assert_eq!(pair.b.poll_timeout(), None);
}

#[test]
fn a_unilateral_close_is_never_resumed() {
    let (mut pair, _, _) = funded();
    pair.a.close(&pair.key_a).unwrap();
    pair.a.resume_payments();
    assert_eq!(pair.a.phase(), ChannelPhase::Closing);
}

#[test]
fn an_expired_withdraw_frees_its_reservation_on_timeout() {
    let (mut pair, _, _) = funded();
    let until = pair.now + 5;
    pair.drive(Side::A, |ch, key, now| {
        ch.request_withdraw(u(20), until, now, key)
    })
    .unwrap();
    assert_eq!(pair.b.poll_timeout(), Some(until));
    let reserved = pair.b.partner_distributable().unwrap();
    assert_eq!(
        pair.b.handle_timeout(until),
        vec![ChannelEvent::WithdrawExpired {
            participant: pair.key_a.address(),
            total_withdraw: u(20)
        }]
    );
    assert_eq!(pair.b.partner_distributable().unwrap(), reserved + u(20));
    assert_eq!(pair.b.poll_timeout(), None);
}

/// A secret is kept only while its lock is pending: once unlocked (or expired) off-chain it
/// is dropped, so a channel that mediates many payments does not grow with each one.
#[test]
fn secrets_are_forgotten_once_their_lock_is_gone() {
    let (mut pair, _ledger, _) = funded();
    for i in 0..5u8 {
        let secret = crate::locks::Secret(H256([0x40 + i; 32]));
        let lock = crate::locks::HashTimeLock {
            expiration: pair.now + 50,
            amount: u(3),
            secrethash: secret.hash(),
        };
        pair.drive(Side::A, |ch, key, now| {
            ch.send_locked_transfer(lock, now, H256::ZERO, key)
        })
        .unwrap();
        pair.b.learn_secret(secret).unwrap();
        pair.a.learn_secret(secret).unwrap();
        assert_eq!(pair.b.known_secrets(), 1, "kept while pending");
        pair.drive(Side::A, |ch, key, _| {
            ch.send_unlock(secret, H256::ZERO, key)
        })
        .unwrap();
        assert_eq!(pair.a.known_secrets(), 0, "sender forgets at its unlock");
        assert_eq!(pair.b.known_secrets(), 0, "receiver forgets at the unlock");
        assert!(pair.b.known_secret(&secret.hash()).is_none());
    }
    assert_eq!(pair.b.partner_balance().unwrap(), u(100 - 40 + 10 - 15));
}

/// B closes with an old proof of A's that carried a lock A has since unlocked off-chain: the
/// ledger keeps the lock's 30 back at settlement under a root A's channel no longer holds.
/// A gets it back only by unlocking with the locks behind that root, from its archive.
#[test]
fn locks_of_an_old_proof_the_partner_closed_with_are_unlocked_from_the_archive() {
    let (mut pair, mut ledger, _) = funded();
    let secret = crate::locks::Secret(H256([7; 32]));
    let lock = crate::locks::HashTimeLock {
        expiration: pair.now + 50,
        amount: u(30),
        secrethash: secret.hash(),
    };
    pair.drive(Side::A, |ch, key, now| {
        ch.send_locked_transfer(lock, now, H256::ZERO, key)
    })
    .unwrap();
    // What A's driver archives as it signs: the balance data and the locks of each proof.
    let locked = *pair.b.partner_latest_proof().unwrap();
    let (root, packed) = pair.a.our_signed_locks().unwrap();
    assert_eq!(root, locked.proof.balance.locksroot);
    let signed_balance = pair.a.our_signed_balance().unwrap();
    pair.b.learn_secret(secret).unwrap();
    pair.drive(Side::A, |ch, key, _| {
        ch.send_unlock(secret, H256::ZERO, key)
    })
    .unwrap();
    assert_eq!(pair.a.our_signed_locks(), None, "A holds no lock any more");

    // B closes with the locked proof instead of the unlock (it forgoes the 30, and hopes
    // to keep them from A too). A contests with B's latest; the window passes; A settles.
    let closing_signature = locked.counter_sign_close(&pair.key_b).unwrap();
    let now = pair.now + 1;
    ledger
        .close_channel(pair.key_b.address(), u(1), &locked, &closing_signature, now)
        .unwrap();
    assert_eq!(
        contest_as_a(&pair, &mut ledger, now),
        1,
        "A contests with B's latest"
    );
    let settle_at = now + WINDOW + 1;
    let record = ledger.channel(u(1)).unwrap().clone();
    let settle = pair
        .a
        .settle_transaction(&record, |nonce| {
            (nonce == signed_balance.0).then_some(signed_balance.1)
        })
        .unwrap();
    let settled = ledger
        .settle_channel(pair.key_a.address(), &settle, settle_at)
        .unwrap();
    let settled = settled.last().unwrap();
    assert_eq!(
        pair.a.lock_archive_after(settled),
        LockArchiveChange::KeepOnly(root),
        "every archived list but the kept-back one can go"
    );

    // Without the archive A's monitor sees the 30 kept back but cannot unlock them.
    let record = ledger.channel(u(1)).unwrap().clone();
    let pending = pending_unlocks(&ledger, &record);
    assert_eq!(pair.a.archived_locks_wanted(&pending), vec![root]);
    assert_eq!(actions(&pair.a, &ledger, settle_at, &pair.key_a), vec![]);
    // A list that hashes to another root is ignored.
    let wrong = crate::locks::pack_locks(&[crate::locks::HashTimeLock {
        amount: u(29),
        ..lock
    }]);
    let view_at = |archived: &[Vec<u8>], now: u64| {
        pair.a
            .poll_ledger_actions(
                &LedgerView {
                    record: &record,
                    now,
                    reveal_timeout: REVEAL,
                    pending_unlocks: &pending,
                    archived_locks: archived,
                },
                &pair.key_a,
            )
            .unwrap()
    };
    // The lock outlives the settlement window: until it expires its secret may still be
    // registered, so the monitor does not unlock it yet (an unlock would settle it for good).
    assert!(lock.expiration > settle_at);
    assert_eq!(view_at(std::slice::from_ref(&packed), settle_at), vec![]);
    assert_eq!(
        pair.a.poll_ledger_timeout(&record, REVEAL),
        None,
        "A holds no lock of its own any more; the archived one is found at the next tick"
    );
    let view = |archived: &[Vec<u8>]| view_at(archived, lock.expiration);
    assert_eq!(view(&[wrong]), vec![]);
    let got = view(std::slice::from_ref(&packed));
    assert_eq!(
        got,
        vec![LedgerAction::Unlock {
            channel_id: u(1),
            receiver: pair.key_b.address(),
            sender: pair.key_a.address(),
            packed_locks: packed.clone(),
        }]
    );
    let unlocked = ledger
        .unlock(
            pair.key_a.address(),
            u(1),
            pair.key_b.address(),
            pair.key_a.address(),
            &packed,
            settle_at,
        )
        .unwrap();
    assert_eq!(
        pair.a.lock_archive_after(unlocked.last().unwrap()),
        LockArchiveChange::Release
    );
    // The secret was never registered, so the 30 went back to A: A 100 - 40 + 10, B 50 - 10
    // + 40 (the locked proof's transfer of 40; the unlock's 30 never reached the ledger).
    assert_eq!(ledger.token_balance(pair.key_a.address()), u(900 + 70));
    assert_eq!(ledger.token_balance(pair.key_b.address()), u(950 + 80));
    assert_eq!(
        pending_unlocks(&ledger, &record),
        vec![],
        "nothing left to unlock"
    );
}
