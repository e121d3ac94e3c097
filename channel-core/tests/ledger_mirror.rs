//! The ledger mirror against the embedded ledger: whatever random sequence of operations the
//! ledger accepts, a mirror fed only its events holds the same channel records and secret
//! registrations, and every lock the ledger keeps back for an unlock. Feeding the same
//! events again changes nothing.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use channel_core::channel::pending_unlocks;
use channel_core::ledger::{
    ChannelPhase, Ledger, LedgerConfig, LedgerEventKind, LedgerMirror, LedgerState,
    SettleTransaction,
};
use channel_core::locks::{locksroot_of, pack_locks};
use channel_core::testing::{test_domain, test_signer};
use channel_core::{
    Address, BalanceData, BalanceProof, HashTimeLock, LocalSigner, Secret, SignedBalanceProof,
    Signer, EMPTY_LOCKSROOT, H256, U256,
};
use proptest::prelude::*;

const WINDOW: u64 = 20;

fn u(n: u64) -> U256 {
    U256::from(n)
}

#[derive(Clone, Debug)]
enum Op {
    Open(usize, usize),
    Deposit(usize, usize, u64),
    /// Close by participant `.1` of channel `.0` with a proof of the partner (`None`: no proof).
    Close(usize, usize, Option<(u64, u64, u8)>),
    /// The non-closer of channel `.0` submits a newer proof of the closer.
    Update(usize, u64, u64, u8),
    Settle(usize),
    RegisterSecret(u8),
    Unlock(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0usize..3;
    prop_oneof![
        2 => (who.clone(), who.clone()).prop_map(|(a, b)| Op::Open(a, b)),
        3 => (0usize..3, 0usize..2, 1u64..200).prop_map(|(c, p, d)| Op::Deposit(c, p, d)),
        2 => (
            0usize..3,
            0usize..2,
            proptest::option::of((0u64..100, 4u64..60, 0u8..4))
        )
            .prop_map(|(c, p, proof)| Op::Close(c, p, proof)),
        2 => (0usize..3, 0u64..100, 4u64..60, 0u8..4).prop_map(|(c, t, l, s)| Op::Update(c, t, l, s)),
        3 => (0usize..3).prop_map(Op::Settle),
        1 => (0u8..4).prop_map(Op::RegisterSecret),
        3 => (0usize..3).prop_map(Op::Unlock),
        2 => (5u64..40).prop_map(Op::Wait),
    ]
}

fn secret(n: u8) -> Secret {
    Secret(H256([n + 1; 32]))
}

/// What the test knows beside the ledger: the balance data and locks behind every proof it
/// submitted, as a party would.
struct World {
    ledger: Ledger,
    keys: Vec<LocalSigner>,
    channels: Vec<U256>,
    submitted: BTreeMap<(U256, Address), (BalanceData, Vec<HashTimeLock>)>,
    nonces: BTreeMap<(U256, Address), u64>,
    now: u64,
}

impl World {
    fn new() -> Self {
        let mut ledger = Ledger::new(LedgerConfig {
            domain: test_domain(),
            settlement_timeout: WINDOW,
        });
        let keys: Vec<_> = (1..=3).map(test_signer).collect();
        for k in &keys {
            ledger.mint(k.address(), u(10_000), 1).unwrap();
        }
        Self {
            ledger,
            keys,
            channels: Vec::new(),
            submitted: BTreeMap::new(),
            nonces: BTreeMap::new(),
            now: 2,
        }
    }

    fn parties(&self, c: usize) -> Option<(U256, [Address; 2])> {
        let id = *self.channels.get(c)?;
        let r = self.ledger.channel(id)?;
        Some((id, [r.participants[0].address, r.participants[1].address]))
    }

    fn key_of(&self, a: Address) -> &LocalSigner {
        self.keys.iter().find(|k| k.address() == a).unwrap()
    }

    /// A proof signed by `signer` in channel `id` with the next nonce of that signer.
    fn proof(
        &mut self,
        id: U256,
        signer: Address,
        transferred: u64,
        locked: u64,
        secrets: u8,
    ) -> (SignedBalanceProof, Vec<HashTimeLock>) {
        let locks: Vec<HashTimeLock> = (0..secrets)
            .map(|s| HashTimeLock {
                expiration: self.now + 50,
                amount: u(locked / u64::from(secrets).max(1)),
                secrethash: secret(s).hash(),
            })
            .collect();
        let locked_total = locks.iter().fold(U256::ZERO, |a, l| a + l.amount);
        let nonce = self.nonces.entry((id, signer)).or_insert(0);
        *nonce += 1;
        let balance = BalanceData {
            transferred_amount: u(transferred),
            locked_amount: locked_total,
            locksroot: if locks.is_empty() {
                EMPTY_LOCKSROOT
            } else {
                locksroot_of(&locks)
            },
        };
        let proof = BalanceProof {
            domain: test_domain(),
            channel_identifier: id,
            nonce: *nonce,
            balance,
            additional_hash: H256::ZERO,
        }
        .sign(self.key_of(signer))
        .unwrap();
        (proof, locks)
    }

    /// Runs one operation; the ledger may refuse it (that is part of the test).
    fn apply(&mut self, op: &Op) {
        let now = self.now;
        match *op {
            Op::Open(a, b) => {
                let (a, b) = (self.keys[a].address(), self.keys[b].address());
                if let Ok(id) = self.ledger.open_channel(a, b, now) {
                    self.channels.push(id);
                }
            }
            Op::Deposit(c, p, amount) => {
                if let Some((id, parties)) = self.parties(c) {
                    let who = parties[p];
                    let total = self.ledger.channel(id).unwrap().participants[p].total_deposit;
                    let _ = self
                        .ledger
                        .set_total_deposit(who, id, who, total + u(amount), now);
                }
            }
            Op::Close(c, p, proof) => {
                let Some((id, parties)) = self.parties(c) else {
                    return;
                };
                let (closer, partner) = (parties[p], parties[1 - p]);
                let (signed, locks) = match proof {
                    Some((t, l, s)) => self.proof(id, partner, t, l, s),
                    None => (SignedBalanceProof::none(test_domain(), id), Vec::new()),
                };
                let sig = signed.counter_sign_close(self.key_of(closer)).unwrap();
                if self
                    .ledger
                    .close_channel(closer, id, &signed, &sig, now)
                    .is_ok()
                    && !signed.is_none()
                {
                    self.submitted
                        .insert((id, partner), (signed.proof.balance, locks));
                }
            }
            Op::Update(c, t, l, s) => {
                let Some((id, parties)) = self.parties(c) else {
                    return;
                };
                let Some(closer) = self.ledger.channel(id).unwrap().closer else {
                    return;
                };
                let non_closer = if parties[0] == closer {
                    parties[1]
                } else {
                    parties[0]
                };
                let (signed, locks) = self.proof(id, closer, t, l, s);
                let sig = signed.counter_sign_update(self.key_of(non_closer)).unwrap();
                if self
                    .ledger
                    .update_non_closing_balance_proof(non_closer, id, &signed, &sig, now)
                    .is_ok()
                {
                    self.submitted
                        .insert((id, closer), (signed.proof.balance, locks));
                }
            }
            Op::Settle(c) => {
                let Some((id, parties)) = self.parties(c) else {
                    return;
                };
                let data = |a: Address| {
                    self.submitted
                        .get(&(id, a))
                        .map_or(BalanceData::EMPTY, |(b, _)| *b)
                };
                let settle = SettleTransaction {
                    channel_id: id,
                    balances: [
                        (parties[0], data(parties[0])),
                        (parties[1], data(parties[1])),
                    ],
                };
                let _ = self.ledger.settle_channel(parties[0], &settle, now);
            }
            Op::RegisterSecret(s) => {
                let who = self.keys[0].address();
                let _ = self.ledger.register_secret(who, secret(s), now);
            }
            Op::Unlock(c) => {
                let Some((id, parties)) = self.parties(c) else {
                    return;
                };
                for (sender, receiver) in [(parties[0], parties[1]), (parties[1], parties[0])] {
                    if let Some((_, locks)) = self.submitted.get(&(id, sender)) {
                        let packed = pack_locks(locks);
                        let _ = self
                            .ledger
                            .unlock(receiver, id, receiver, sender, &packed, now);
                    }
                }
            }
            Op::Wait(s) => self.now += s,
        }
    }
}

/// The mirror agrees with the ledger on every channel, every secret and every kept lock.
fn assert_mirrors(world: &World, mirror: &LedgerMirror) {
    for id in &world.channels {
        let record = world.ledger.channel(*id).unwrap();
        assert_eq!(mirror.channel(*id), Some(record), "channel {id}");
        let kept = pending_unlocks(&world.ledger, record);
        let mirrored = mirror.pending_unlocks(*id);
        for k in &kept {
            assert!(mirrored.contains(k), "kept back {k:?} not mirrored");
        }
        // The mirror may list a direction whose locks kept nothing back (the event does not
        // carry the amount): the ledger refuses its unlock, so it is harmless.
        for m in &mirrored {
            if !kept.contains(m) {
                assert!(world
                    .ledger
                    .pending_unlock(*id, m.sender, m.receiver)
                    .is_none());
            }
        }
    }
    // The cheap index of channels keeping something back agrees with the records (a
    // superset on the mirror, for the reason above).
    let (on_ledger, mirrored) = (
        world.ledger.channels_keeping_back(),
        mirror.channels_keeping_back(),
    );
    assert!(
        on_ledger.is_subset(&mirrored),
        "{on_ledger:?} ⊄ {mirrored:?}"
    );
    for id in &world.channels {
        let record = world.ledger.channel(*id).unwrap();
        assert_eq!(
            on_ledger.contains(id),
            !world.ledger.kept_back(record).is_empty()
        );
        assert_eq!(mirrored.contains(id), !mirror.kept_back(record).is_empty());
    }
    for s in 0..4 {
        let hash = secret(s).hash();
        assert_eq!(
            mirror.secret_registered_at(&hash),
            world.ledger.secret_registered_at(&hash)
        );
    }
    for k in &world.keys {
        let mine: Vec<U256> = mirror
            .channels_of(k.address())
            .iter()
            .map(|r| r.id)
            .collect();
        let theirs: Vec<U256> = world
            .ledger
            .channels_of(k.address())
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(mine, theirs);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

    #[test]
    fn a_mirror_fed_the_events_holds_what_the_ledger_holds(
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut world = World::new();
        let mut mirror = LedgerMirror::new();
        for op in &ops {
            world.apply(op);
            for event in world.ledger.events_since(mirror.last_seq()).to_vec() {
                prop_assert!(mirror.apply(&event).unwrap());
            }
            assert_mirrors(&world, &mirror);
        }
        // A replay from the start (a driver that crashed before persisting its cursor) is
        // idempotent.
        let before = mirror.clone();
        for event in world.ledger.events_since(0).to_vec() {
            prop_assert!(!mirror.apply(&event).unwrap());
        }
        prop_assert_eq!(&mirror, &before);
        prop_assert_eq!(mirror.last_seq(), world.ledger.last_event_seq());
        // Taken apart (as a driver stores it, one record per channel and per secret) and put
        // together again, it is the same mirror.
        prop_assert_eq!(LedgerMirror::from_parts(mirror.to_parts()), mirror);
    }
}

#[test]
fn an_event_of_a_channel_never_opened_is_refused_and_changes_nothing() {
    let mut world = World::new();
    world.apply(&Op::Open(0, 1));
    world.apply(&Op::Deposit(0, 0, 50));
    let events = world.ledger.events_since(0).to_vec();
    let deposit = events
        .iter()
        .find(|e| matches!(e.kind, LedgerEventKind::Deposit { .. }))
        .unwrap();
    let mut mirror = LedgerMirror::new();
    let before = mirror.clone();
    let err = mirror.apply(deposit).unwrap_err();
    assert!(err.to_string().contains("never saw opened"), "{err}");
    assert_eq!(mirror, before);
    for e in &events {
        mirror.apply(e).unwrap();
    }
    let id = world.channels[0];
    assert_eq!(mirror.channel(id).unwrap().phase, ChannelPhase::Opened);
    assert_eq!(
        mirror.channel(id).unwrap().participants[0].total_deposit,
        u(50)
    );
}

#[test]
fn locks_kept_back_at_settlement_are_mirrored_until_unlocked() {
    let mut world = World::new();
    let mut mirror = LedgerMirror::new();
    let ops = [
        Op::Open(0, 1),
        Op::Deposit(0, 0, 100),
        Op::Deposit(0, 1, 100),
        // Participant 1 closes with a proof of participant 0 locking 40 in two locks.
        Op::Close(0, 1, Some((10, 40, 2))),
        Op::RegisterSecret(0),
        Op::Wait(WINDOW + 1),
        Op::Settle(0),
    ];
    for op in &ops {
        world.apply(op);
    }
    for e in world.ledger.events_since(0).to_vec() {
        mirror.apply(&e).unwrap();
    }
    let id = world.channels[0];
    assert_eq!(
        world.ledger.channel(id).unwrap().phase,
        ChannelPhase::Settled
    );
    assert_mirrors(&world, &mirror);
    let [a, b] = [world.keys[0].address(), world.keys[1].address()];
    let pending = mirror.pending_unlocks(id);
    assert_eq!(pending.len(), 1);
    assert_eq!((pending[0].sender, pending[0].receiver), (a, b));
    world.apply(&Op::Unlock(0));
    for e in world.ledger.events_since(mirror.last_seq()).to_vec() {
        assert!(matches!(e.kind, LedgerEventKind::ChannelUnlocked { .. }));
        mirror.apply(&e).unwrap();
    }
    assert!(mirror.pending_unlocks(id).is_empty());
    assert_mirrors(&world, &mirror);
}

/// The contract's cooperative settle names both locksroots as 32 zero bytes (the embedded
/// ledger names the empty locksroot): neither keeps anything back.
#[test]
fn a_settle_naming_zero_or_empty_locksroots_keeps_nothing_back() {
    let mut world = World::new();
    world.apply(&Op::Open(0, 1));
    let mut mirror = LedgerMirror::new();
    for e in world.ledger.events_since(0).to_vec() {
        mirror.apply(&e).unwrap();
    }
    let id = world.channels[0];
    let [a, b] = [world.keys[0].address(), world.keys[1].address()];
    let settled = channel_core::ledger::LedgerEvent {
        seq: mirror.last_seq() + 1,
        time: 50,
        kind: LedgerEventKind::ChannelSettled {
            channel_id: id,
            participant1: a,
            participant1_amount: U256::ZERO,
            participant1_locksroot: H256::ZERO,
            participant2: b,
            participant2_amount: U256::ZERO,
            participant2_locksroot: EMPTY_LOCKSROOT,
        },
    };
    assert!(mirror.apply(&settled).unwrap());
    assert_eq!(mirror.channel(id).unwrap().phase, ChannelPhase::Settled);
    assert!(mirror.pending_unlocks(id).is_empty());
}
