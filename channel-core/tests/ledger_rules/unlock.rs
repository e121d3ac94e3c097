//! The secret registry and unlock of locks kept at settlement.

use super::*;

/// a → b locks: 20 with secret 1 (registered in time), 10 with secret 2 (registered exactly at
/// expiration: too late), 5 with secret 3 (never registered).
pub(super) fn locks_world() -> (World, Vec<HashTimeLock>, [Secret; 3]) {
    let mut w = World::new();
    let secrets = [1u8, 2, 3].map(|n| Secret(H256([n; 32])));
    let locks = vec![
        HashTimeLock {
            expiration: 500,
            amount: u(20),
            secrethash: secrets[0].hash(),
        },
        HashTimeLock {
            expiration: 260,
            amount: u(10),
            secrethash: secrets[1].hash(),
        },
        HashTimeLock {
            expiration: 900,
            amount: u(5),
            secrethash: secrets[2].hash(),
        },
    ];
    let root = channel_core::locks::locksroot_of(&locks);
    let ap = proof(&w.a, 1, 5, balance(10, 35, root));
    let sig = ap.counter_sign_close(&w.b).unwrap();
    let b = w.b.address();
    w.ok(|l| l.close_channel(b, u(1), &ap, &sig, 30));
    w.ok(|l| l.settle_channel(b, &settle_of(1, ap.proof.balance, BalanceData::EMPTY), 131));
    (w, locks, secrets)
}

#[test]
fn secret_registry_records_time_once() {
    let mut w = World::new();
    let c = w.c.address();
    let s = Secret(H256([7; 32]));
    let ev = w.ok(|l| l.register_secret(c, s, 42));
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::SecretRegistered {
            secrethash: s.hash(),
            secret: s
        }
    );
    assert_eq!(w.l.secret_registered_at(&s.hash()), Some(42));
    let twice = LedgerError::SecretAlreadyRegistered {
        secrethash: s.hash(),
        registered_at: 42,
    };
    w.rejected(twice, |l| l.register_secret(c, s, 43));
    w.rejected(LedgerError::ZeroSecret, |l| {
        l.register_secret(c, Secret(H256::ZERO), 43)
    });
}

#[test]
fn unlock_pays_registered_locks_and_returns_the_rest() {
    let (mut w, locks, secrets) = locks_world();
    let (a, b, c) = w.addr();
    // settle kept a's 35 locked; a got 100 - 10 - 35, b got 50 + 10.
    assert_eq!(w.l.token_balance(a), u(900 + 55));
    assert_eq!(w.l.token_balance(b), u(950 + 60));
    assert_eq!(w.l.contract_balance(), u(35));
    assert_eq!(w.l.pending_unlock(u(1), a, b).unwrap().locked_amount, u(35));
    assert!(w.l.pending_unlock(u(1), b, a).is_none());

    w.ok(|l| l.register_secret(b, secrets[0], 499));
    w.ok(|l| l.register_secret(b, secrets[1], 260));
    let packed = pack_locks(&locks);
    let ev = w.ok(|l| l.unlock(c, u(1), b, a, &packed, 1000));
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::ChannelUnlocked {
            channel_id: u(1),
            receiver: b,
            sender: a,
            locksroot: channel_core::locks::locksroot_of(&locks),
            unlocked_amount: u(20),
            returned_tokens: u(15)
        }
    );
    assert_eq!(w.l.token_balance(b), u(1010 + 20));
    assert_eq!(w.l.token_balance(a), u(955 + 15));
    assert_eq!(w.l.contract_balance(), U256::ZERO);

    let twice = LedgerError::NothingToUnlock {
        channel_id: u(1),
        sender: a,
        receiver: b,
    };
    w.rejected(twice, |l| l.unlock(c, u(1), b, a, &packed, 1001));
}

#[test]
fn unlock_rejections() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let opened = LedgerError::WrongPhase {
        channel_id: u(1),
        expected: ChannelPhase::Settled,
        actual: ChannelPhase::Opened,
    };
    w.rejected(opened, |l| l.unlock(c, u(1), b, a, &[], 20));
    w.rejected(LedgerError::UnknownChannel(u(8)), |l| {
        l.unlock(c, u(8), b, a, &[], 20)
    });

    let (mut w, locks, _) = locks_world();
    let wrong_way = LedgerError::NothingToUnlock {
        channel_id: u(1),
        sender: b,
        receiver: a,
    };
    w.rejected(wrong_way, |l| l.unlock(c, u(1), a, b, &[], 200));
    let reordered = pack_locks(&[locks[1], locks[0], locks[2]]);
    let mismatch = LedgerError::LocksrootMismatch {
        expected: channel_core::locks::locksroot_of(&locks),
        got: channel_core::crypto::keccak256(&reordered),
    };
    w.rejected(mismatch, |l| l.unlock(c, u(1), b, a, &reordered, 200));
}

#[test]
fn unlock_of_malformed_but_signed_locks_and_cap_by_kept() {
    // a signed a locksroot over 95 bytes: unlock names the decoding error.
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let junk = [7u8; 95];
    let ap = proof(
        &w.a,
        1,
        1,
        balance(0, 10, channel_core::crypto::keccak256(&junk)),
    );
    let sig = ap.counter_sign_close(&w.b).unwrap();
    w.ok(|l| l.close_channel(b, u(1), &ap, &sig, 30));
    w.ok(|l| l.settle_channel(b, &settle_of(1, ap.proof.balance, BalanceData::EMPTY), 131));
    w.rejected(LedgerError::BadLocks(LockDecodeError::Length(95)), |l| {
        l.unlock(c, u(1), b, a, &junk, 200)
    });

    // a locked 200 with only 100 deposited: settle keeps 150 (all there is), unlock pays 150.
    let mut w = World::new();
    let s = Secret(H256([9; 32]));
    let lock = HashTimeLock {
        expiration: 900,
        amount: u(200),
        secrethash: s.hash(),
    };
    let ap = proof(
        &w.a,
        1,
        1,
        balance(0, 200, channel_core::locks::locksroot_of(&[lock])),
    );
    let sig = ap.counter_sign_close(&w.b).unwrap();
    w.ok(|l| l.close_channel(b, u(1), &ap, &sig, 30));
    w.ok(|l| l.settle_channel(b, &settle_of(1, ap.proof.balance, BalanceData::EMPTY), 131));
    assert_eq!(
        w.l.pending_unlock(u(1), a, b).unwrap().locked_amount,
        u(150)
    );
    w.ok(|l| l.register_secret(b, s, 140));
    let ev = w.ok(|l| l.unlock(c, u(1), b, a, &lock.pack(), 200));
    assert!(matches!(
        ev[0].kind,
        LedgerEventKind::ChannelUnlocked { unlocked_amount, returned_tokens, .. }
            if unlocked_amount == u(150) && returned_tokens.is_zero()
    ));
    assert_eq!(w.l.token_balance(b), u(950 + 150));
}
