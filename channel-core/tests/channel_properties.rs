//! Property tests over random sequences of payments, locks, unlocks, expiries and withdraws
//! between two participants, ended by a close and settlement on the ledger module.
//!
//! Invariants checked after every step: value is conserved, no balance leaves
//! `0..=channel total`, nonces only grow (by exactly one per signed proof), both views of each
//! direction agree, and a refused step changes nothing. At the end: settling with the latest
//! proofs pays each side exactly what the off-chain state says, and closing with a stale proof
//! of the partner never pays the closer more than the honest outcome (once the partner has
//! contested with its update, which is what the hub's and the SDK's watchers do).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use channel_core::channel::{Channel, ChannelError, ChannelEvent, ChannelPhase};
use channel_core::crypto::Signer;
use channel_core::ledger::{Ledger, LedgerConfig};
use channel_core::locks::{pack_locks, HashTimeLock, Secret};
use channel_core::testing::{test_domain, Pair, Side};
use channel_core::{SignedBalanceProof, H256, U256};
use proptest::prelude::*;

const WINDOW: u64 = 100;

#[derive(Clone, Debug)]
enum Op {
    Pay(Side, u64),
    Lock(Side, u64, u64, u8),
    Unlock(Side, usize),
    Expire(Side, usize),
    Withdraw(Side, u64),
    Advance(u64),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (side(), 0u64..120).prop_map(|(s, a)| Op::Pay(s, a)),
        2 => (side(), 1u64..60, 1u64..40, 1u8..=255).prop_map(|(s, a, e, k)| Op::Lock(s, a, e, k)),
        2 => (side(), any::<usize>()).prop_map(|(s, i)| Op::Unlock(s, i)),
        1 => (side(), any::<usize>()).prop_map(|(s, i)| Op::Expire(s, i)),
        1 => (side(), 1u64..60).prop_map(|(s, a)| Op::Withdraw(s, a)),
        1 => (1u64..30).prop_map(Op::Advance),
    ]
}

fn u(n: u64) -> U256 {
    U256::from(n)
}

/// The pair plus the ledger it lives on and what the test remembers (secrets, old proofs).
struct World {
    pair: Pair,
    ledger: Ledger,
    secrets: BTreeMap<H256, Secret>,
    history: BTreeMap<u64, SignedBalanceProof>,
}

impl World {
    fn new(deposit_a: u64, deposit_b: u64) -> Self {
        let pair = Pair::new(u(deposit_a), u(deposit_b));
        let (a, b) = (pair.key_a.address(), pair.key_b.address());
        let mut ledger = Ledger::new(LedgerConfig {
            domain: test_domain(),
            settlement_timeout: WINDOW,
        });
        let now = pair.now;
        ledger.mint(a, u(deposit_a), now).unwrap();
        ledger.mint(b, u(deposit_b), now).unwrap();
        let id = ledger.open_channel(a, b, now).unwrap();
        assert_eq!(id, pair.a.id());
        ledger
            .set_total_deposit(a, id, a, u(deposit_a), now)
            .unwrap();
        ledger
            .set_total_deposit(b, id, b, u(deposit_b), now)
            .unwrap();
        Self {
            pair,
            ledger,
            secrets: BTreeMap::new(),
            history: BTreeMap::new(),
        }
    }

    fn channel(&self, side: Side) -> &Channel {
        self.pair.channel(side)
    }

    fn apply(&mut self, op: &Op) -> Result<Vec<ChannelEvent>, ChannelError> {
        match *op {
            Op::Pay(s, amount) => self.pair.pay(s, u(amount)),
            Op::Lock(s, amount, expires_in, seed) => {
                let secret = Secret(H256([seed; 32]));
                self.secrets.insert(secret.hash(), secret);
                let lock = HashTimeLock {
                    expiration: self.pair.now + expires_in,
                    amount: u(amount),
                    secrethash: secret.hash(),
                };
                self.pair.drive(s, |ch, key, now| {
                    ch.send_locked_transfer(lock, now, H256::ZERO, key)
                })
            }
            Op::Unlock(s, i) => {
                let Some(hash) = pick_lock(self.channel(s), i) else {
                    return Ok(vec![]);
                };
                let secret = self.secrets[&hash];
                self.pair
                    .drive(s, |ch, key, _| ch.send_unlock(secret, H256::ZERO, key))
            }
            Op::Expire(s, i) => {
                let Some(hash) = pick_lock(self.channel(s), i) else {
                    return Ok(vec![]);
                };
                self.pair.drive(s, |ch, key, now| {
                    ch.send_lock_expired(hash, now, H256::ZERO, key)
                })
            }
            Op::Withdraw(s, amount) => self.withdraw(s, amount),
            Op::Advance(dt) => {
                self.pair.now += dt;
                Ok(vec![])
            }
        }
    }

    /// Off-chain request + confirmation, then the ledger, then both sides learn of it.
    fn withdraw(&mut self, s: Side, amount: u64) -> Result<Vec<ChannelEvent>, ChannelError> {
        let total = self.channel(s).our().total_withdraw + u(amount);
        let events = self.pair.drive(s, |ch, key, now| {
            ch.request_withdraw(total, now + 50, now, key)
        })?;
        let ready = events.iter().find_map(|e| match e {
            ChannelEvent::WithdrawReady {
                proof,
                participant_signature,
                partner_signature,
            } => Some((*proof, *participant_signature, *partner_signature)),
            _ => None,
        });
        let Some((proof, sig_p, sig_partner)) = ready else {
            panic!("a confirmed withdraw must be ready for the ledger")
        };
        let caller = proof.participant;
        self.ledger
            .set_total_withdraw(caller, &proof, &sig_p, &sig_partner, self.pair.now)
            .expect("the ledger accepts a withdraw both channels agreed to");
        for ch in [&mut self.pair.a, &mut self.pair.b] {
            ch.handle_ledger_withdraw(caller, total)?;
        }
        Ok(events)
    }

    fn check_invariants(&self) {
        let (a, b) = (&self.pair.a, &self.pair.b);
        let total = a.total_available().unwrap();
        let (bal_a, bal_b) = (a.our_balance().unwrap(), b.our_balance().unwrap());
        assert_eq!(bal_a + bal_b, total, "value is conserved");
        assert!(bal_a <= total && bal_b <= total);
        assert!(a.our_distributable().unwrap() <= bal_a);
        assert!(b.our_distributable().unwrap() <= bal_b);
        // Both views of each direction agree.
        assert_eq!(a.our(), b.partner(), "A's side seen by A and by B");
        assert_eq!(b.our(), a.partner(), "B's side seen by B and by A");
        // Locked amounts are what the pending locks add up to, and fit the balance.
        for ch in [a, b] {
            assert_eq!(ch.our().locked(), ch.our().locks.total().unwrap());
            assert_eq!(
                ch.our().balance_data().locksroot,
                ch.our().locks.locksroot()
            );
            assert!(ch.our().locked() <= ch.our_balance().unwrap());
        }
        // The ledger holds exactly what the channel says is available.
        let record = self.ledger.channel(a.id()).unwrap();
        assert_eq!(record.held(), Some(total));
    }
}

fn pick_lock(ch: &Channel, i: usize) -> Option<H256> {
    let locks = ch.our().locks.as_slice();
    (!locks.is_empty()).then(|| locks[i % locks.len()].secrethash)
}

/// What each side should end with in its token balance after settle + unlock: what it
/// withdrew, plus its balance, moving every pending lock whose secret was registered in time.
fn honest_outcome(world: &World, revealed: &BTreeMap<H256, u64>) -> (U256, U256) {
    let (a, b) = (&world.pair.a, &world.pair.b);
    let claimed = |ch: &Channel| {
        ch.our()
            .locks
            .as_slice()
            .iter()
            .filter(|l| {
                revealed
                    .get(&l.secrethash)
                    .is_some_and(|t| *t < l.expiration)
            })
            .map(|l| l.amount)
            .fold(U256::ZERO, |x, y| x + y)
    };
    let (ca, cb) = (claimed(a), claimed(b));
    (
        a.our().total_withdraw + a.our_balance().unwrap() - ca + cb,
        b.our().total_withdraw + b.our_balance().unwrap() - cb + ca,
    )
}

/// Closes (by `closer`, with the given proof of the partner), optionally updates, settles,
/// registers `reveal` secrets and unlocks both directions; returns both token balances.
fn settle(
    world: &mut World,
    closer: Side,
    partner_proof: Option<SignedBalanceProof>,
    update: bool,
    reveal: bool,
) -> (U256, U256, BTreeMap<H256, u64>) {
    let now = world.pair.now;
    let id = world.pair.a.id();
    let (ka, kb) = (world.pair.key_a.clone(), world.pair.key_b.clone());
    let (closer_key, other_key) = match closer {
        Side::A => (&ka, &kb),
        Side::B => (&kb, &ka),
    };
    let proof = partner_proof.unwrap_or_else(|| SignedBalanceProof::none(test_domain(), id));
    let sig = proof.counter_sign_close(closer_key).unwrap();
    world
        .ledger
        .close_channel(closer_key.address(), id, &proof, &sig, now)
        .unwrap();
    let (closer_ch, other_ch) = match closer {
        Side::A => (&mut world.pair.a, &mut world.pair.b),
        Side::B => (&mut world.pair.b, &mut world.pair.a),
    };
    closer_ch
        .handle_ledger_closed(closer_key.address(), now)
        .unwrap();
    other_ch
        .handle_ledger_closed(closer_key.address(), now)
        .unwrap();
    if update {
        if let Some(tx) = other_ch.update_transaction(other_key).unwrap() {
            world
                .ledger
                .update_non_closing_balance_proof(
                    other_key.address(),
                    id,
                    &tx.closer_proof,
                    &tx.non_closing_signature,
                    now + 1,
                )
                .unwrap();
        }
    }
    let mut revealed = BTreeMap::new();
    if reveal {
        for ch in [&world.pair.a, &world.pair.b] {
            for l in ch.our().locks.as_slice() {
                if let std::collections::btree_map::Entry::Vacant(slot) =
                    revealed.entry(l.secrethash)
                {
                    let t = now + 2;
                    world
                        .ledger
                        .register_secret(ka.address(), world.secrets[&l.secrethash], t)
                        .unwrap();
                    slot.insert(t);
                }
            }
        }
    }
    let after = now + WINDOW + 1;
    // The non-closer settles, with the balance data of both stored proofs: the closer's is
    // the latest it holds; its own may be any proof it signed (a stale close), looked up in
    // its archive (`history`: every proof B signed).
    let record = world.ledger.channel(id).unwrap().clone();
    let history = &world.history;
    let settle_tx = match closer {
        Side::A => world.pair.b.settle_transaction(&record, |nonce| {
            history.get(&nonce).map(|p| p.proof.balance)
        }),
        Side::B => world.pair.a.settle_transaction(&record, |_| None),
    }
    .unwrap();
    let before_settle = world.ledger.clone();
    assert!(world
        .ledger
        .settle_channel(ka.address(), &settle_tx, now + WINDOW)
        .is_err());
    assert_eq!(world.ledger, before_settle, "early settle changes nothing");
    world
        .ledger
        .settle_channel(ka.address(), &settle_tx, after)
        .unwrap();
    for (sender, receiver) in [(&world.pair.a, kb.address()), (&world.pair.b, ka.address())] {
        let locks = sender.our().locks.as_slice();
        if !locks.is_empty() {
            let packed = pack_locks(locks);
            // Unlocking with the sender's latest locks works whenever the ledger kept its
            // locksroot (it was submitted); with a stale proof there may be nothing to unlock.
            let _ = world.ledger.unlock(
                ka.address(),
                id,
                receiver,
                sender.our_address(),
                &packed,
                after,
            );
        }
    }
    (
        world.ledger.token_balance(ka.address()),
        world.ledger.token_balance(kb.address()),
        revealed,
    )
}

fn run_ops(world: &mut World, ops: &[Op]) {
    for op in ops {
        let before_a = world.pair.a.clone();
        let before_b = world.pair.b.clone();
        let nonces = (world.pair.a.our().nonce(), world.pair.b.our().nonce());
        match world.apply(op) {
            Ok(events) => {
                let signed = events
                    .iter()
                    .filter(|e| matches!(e, ChannelEvent::Send(_)))
                    .count() as u64;
                let new = (world.pair.a.our().nonce(), world.pair.b.our().nonce());
                assert!(new.0 >= nonces.0 && new.1 >= nonces.1, "nonces only grow");
                assert!(new.0 - nonces.0 + new.1 - nonces.1 <= signed);
                // Every proof B ever signed, as A holds it.
                if let Some(p) = world.pair.a.partner_latest_proof() {
                    world.history.insert(p.proof.nonce, *p);
                }
            }
            Err(_) => {
                assert_eq!(world.pair.a, before_a, "refused {op:?} changed A");
                assert_eq!(world.pair.b, before_b, "refused {op:?} changed B");
            }
        }
        world.check_invariants();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn honest_settlement_pays_the_off_chain_state(
        deposit_a in 1u64..400,
        deposit_b in 1u64..400,
        ops in prop::collection::vec(op(), 0..40),
        closer in side(),
        reveal in any::<bool>(),
    ) {
        let mut world = World::new(deposit_a, deposit_b);
        run_ops(&mut world, &ops);
        let (ka, kb) = (world.pair.key_a.address(), world.pair.key_b.address());
        let partner_proof = match closer {
            Side::A => world.pair.a.partner_latest_proof().copied(),
            Side::B => world.pair.b.partner_latest_proof().copied(),
        };
        let snapshot = World { pair: world.pair.clone(), ledger: world.ledger.clone(),
            secrets: world.secrets.clone(), history: world.history.clone() };
        let (got_a, got_b, revealed) = settle(&mut world, closer, partner_proof, true, reveal);
        let (want_a, want_b) = honest_outcome(&snapshot, &revealed);
        prop_assert_eq!(got_a, want_a, "A's payout");
        prop_assert_eq!(got_b, want_b, "B's payout");
        prop_assert_eq!(got_a + got_b, u(deposit_a + deposit_b), "nothing created or lost");
        prop_assert_eq!(world.ledger.token_balance(ka) + world.ledger.token_balance(kb),
            world.ledger.total_supply());
        prop_assert_eq!(world.pair.a.phase(), ChannelPhase::Closed { closer: match closer {
            Side::A => ka, Side::B => kb }, at: snapshot.pair.now });
    }

    #[test]
    fn stale_proof_never_pays_the_closer_more(
        deposit_a in 1u64..400,
        deposit_b in 1u64..400,
        ops in prop::collection::vec(op(), 1..40),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut world = World::new(deposit_a, deposit_b);
        run_ops(&mut world, &ops);
        // A closes with an old proof of B (or none) instead of B's latest.
        let stale: Vec<SignedBalanceProof> = world.history.values().copied()
            .filter(|p| p.signer().ok() == Some(world.pair.key_b.address())).collect();
        let stale_proof = if stale.is_empty() { None } else { Some(stale[pick.index(stale.len())]) };
        let honest_world = World { pair: world.pair.clone(), ledger: world.ledger.clone(),
            secrets: world.secrets.clone(), history: world.history.clone() };
        let mut honest_copy = honest_world;
        let honest_proof = honest_copy.pair.a.partner_latest_proof().copied();
        let (honest_a, _, _) = settle(&mut honest_copy, Side::A, honest_proof, true, false);
        // B contests with A's latest proof, as its watcher does.
        let (stale_a, stale_b, _) = settle(&mut world, Side::A, stale_proof, true, false);
        prop_assert!(stale_a <= honest_a, "stale close paid A {} > honest {}", stale_a, honest_a);
        // Locks of the stale proof that nobody unlocked stay in the ledger; nothing vanishes.
        prop_assert_eq!(stale_a + stale_b + world.ledger.contract_balance(), u(deposit_a + deposit_b));
    }
}
