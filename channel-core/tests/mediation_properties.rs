//! Property tests over random interleavings of many mediated transfers through one hub:
//! four devices, each with a real channel to the hub, paying each other through it with real
//! signatures and payee-signed payment requests, while payees reveal (or stay offline), payers
//! unlock (or withhold), locks expire, time advances second by second with the hub acting on
//! `MediatedTransfer::poll`, and the hub or the devices "crash" (everything is rebuilt from
//! the serialized channels and records; nothing else survives).
//!
//! After every step: the hub's incoming locks cover its outgoing locks plus fees, per transfer
//! and in total, and it never ends up having paid a payee without a claim on the payer; every
//! record agrees with the channels; value is conserved in each channel and across all of them
//! (each party's balance is its deposit plus what completed transfers moved); nobody can spend
//! more than it holds; nonces only grow. At the end, honest settlement on the ledger pays
//! everyone exactly what the off-chain state says.
//!
//! Cases default to 64; set `PROPTEST_CASES` for more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mediation_rules/world.rs"]
#[allow(dead_code)] // the rule tests use all of it, this file most
mod world;

use std::collections::{BTreeMap, BTreeSet};

use channel_core::channel::{Channel, ChannelMessage};
use channel_core::crypto::Signer;
use channel_core::locks::{HashTimeLock, Secret};
use channel_core::mediation::{
    FeePolicy, Leg, MediatedTransfer, MediationAction, MediationConfig, MediationError,
    PaymentRequest, Stage,
};
use channel_core::testing::test_domain;
use channel_core::{Address, H256, U256};
use proptest::prelude::*;
use world::{u, Star};

const DEVICES: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    /// Device `from` pays `amount` to device `to`, locking for `expires_in` seconds;
    /// `cover` 0 underpays the fee by one, 1 pays it exactly, 2 overpays by one.
    Pay {
        from: usize,
        to: usize,
        amount: u64,
        expires_in: u64,
        cover: u64,
    },
    /// The payee of some forwarded transfer reveals its secret.
    Reveal(usize),
    /// A payer who learnt a secret unlocks toward the hub.
    PayerUnlock(usize),
    /// A payer takes back one of its expired locks.
    PayerExpire(usize),
    Advance(u64),
    HubCrash,
    DeviceCrash(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..DEVICES, 0..DEVICES, 1u64..80, 1u64..120, 0u64..3).prop_map(
            |(from, to, amount, expires_in, cover)| Op::Pay { from, to, amount, expires_in, cover }),
        3 => any::<usize>().prop_map(Op::Reveal),
        3 => any::<usize>().prop_map(Op::PayerUnlock),
        2 => any::<usize>().prop_map(Op::PayerExpire),
        3 => (1u64..40).prop_map(Op::Advance),
        1 => Just(Op::HubCrash),
        1 => (0..DEVICES).prop_map(Op::DeviceCrash),
    ]
}

/// The hub, its devices, the hub's records, and what the test remembers about secrets.
struct Sim {
    star: Star,
    config: MediationConfig,
    /// The hub's durable mediation records.
    records: Vec<MediatedTransfer>,
    /// Every secret, as its payee keeps it.
    secrets: BTreeMap<H256, Secret>,
    /// Secrets the hub has told the payer.
    payer_knows: BTreeSet<H256>,
    next_secret: u64,
    deposits: BTreeMap<Address, U256>,
    hub_deposit: U256,
    /// (hub nonce, device nonce) per device channel, to check they only grow.
    nonces: BTreeMap<Address, (u64, u64)>,
}

impl Sim {
    fn new(deposits: &[(u64, u64)], fees: FeePolicy) -> Self {
        let star = Star::new(deposits);
        let config = MediationConfig {
            fees,
            reveal_timeout: 20,
            min_outgoing_lifetime: 5,
            settlement_window: world::WINDOW,
        };
        let dev_deposits = deposits
            .iter()
            .enumerate()
            .map(|(i, (d, _))| (star.addr(i), u(*d)))
            .collect();
        let hub_deposit = deposits
            .iter()
            .map(|(_, h)| u(*h))
            .fold(U256::ZERO, |a, b| a + b);
        Self {
            star,
            config,
            records: Vec::new(),
            secrets: BTreeMap::new(),
            payer_knows: BTreeSet::new(),
            next_secret: 1,
            deposits: dev_deposits,
            hub_deposit,
            nonces: BTreeMap::new(),
        }
    }

    fn hub_addr(&self) -> Address {
        self.star.hub_key.address()
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Pay {
                from,
                to,
                amount,
                expires_in,
                cover,
            } => self.pay(from, to, amount, expires_in, cover),
            Op::Reveal(i) => self.reveal(i),
            Op::PayerUnlock(i) => self.payer_unlock(i),
            Op::PayerExpire(i) => self.payer_expire(i),
            Op::Advance(dt) => {
                for _ in 0..dt {
                    self.star.now += 1;
                    self.hub_tick();
                    self.check();
                }
            }
            Op::HubCrash => self.hub_crash(),
            Op::DeviceCrash(i) => {
                let addr = self.star.addr(i);
                let dev = self.star.devices.get_mut(&addr).unwrap();
                dev.channel = reload(&dev.channel);
            }
        }
        self.hub_tick();
    }

    fn pay(&mut self, from: usize, to: usize, amount: u64, expires_in: u64, cover: u64) {
        let (payer, payee) = (self.star.addr(from), self.star.addr(to));
        let now = self.star.now;
        // The payee issues a signed request; the payer checks it.
        let secret = Secret(H256(U256::from(self.next_secret).to_be_bytes()));
        self.next_secret += 1;
        let request = PaymentRequest {
            domain: test_domain(),
            payee,
            amount: u(amount),
            secrethash: secret.hash(),
            payment_id: self.next_secret,
            expires_at: now + expires_in,
            memo_hash: H256::ZERO,
        }
        .sign(&self.star.devices[&payee].key)
        .unwrap();
        request.verify(&test_domain(), now).unwrap();
        self.secrets.insert(secret.hash(), secret);
        let gross = self.config.fees.gross_amount(u(amount)).unwrap() + u(cover);
        if gross <= U256::from(1u8) {
            return;
        }
        let lock = HashTimeLock {
            expiration: now + expires_in,
            amount: gross - U256::from(1u8),
            secrethash: secret.hash(),
        };
        let before = self.star.clone();
        match self
            .star
            .pay_through_hub(payer, payee, lock, u(amount), &self.config)
        {
            Ok(record) => {
                let expected_fee = self.config.fees.fee_for(u(amount)).unwrap();
                assert_eq!(record.fee(), expected_fee);
                assert!(cover >= 1, "an underpaid fee was forwarded");
                assert!(
                    lock.expiration <= now + self.config.settlement_window,
                    "a lock beyond the settlement window was forwarded"
                );
                self.records.push(record);
            }
            Err(MediationError::Refused(_) | MediationError::Channel(_)) => {
                // Neither the hub nor the payer holds anything of a refused lock.
                assert_same(&before, &self.star, "a refused locked transfer");
            }
            Err(other) => panic!("forward failed beyond a refusal: {other}"),
        }
    }

    fn reveal(&mut self, i: usize) {
        let open: Vec<usize> = (0..self.records.len())
            .filter(|&k| self.records[k].secret().is_none())
            .collect();
        let Some(&k) = pick(&open, i) else { return };
        let record = &mut self.records[k];
        let payee_holds = self.star.devices[&record.payee()]
            .channel
            .partner()
            .locks
            .contains(&record.secrethash());
        if !payee_holds {
            return; // the payee reveals only against a lock it holds
        }
        let secret = self.secrets[&record.secrethash()];
        let before = record.clone();
        let incoming = self.star.hub[&record.payer()].clone();
        if record
            .handle_secret_reveal(secret, &incoming, self.star.now)
            .is_err()
        {
            assert_eq!(*record, before, "a refused reveal changed the record");
        }
    }

    fn payer_unlock(&mut self, i: usize) {
        let can: Vec<usize> = (0..self.records.len())
            .filter(|&k| {
                let r = &self.records[k];
                r.incoming_leg() == Leg::Locked && self.payer_knows.contains(&r.secrethash())
            })
            .collect();
        let Some(&k) = pick(&can, i) else { return };
        let payer = self.records[k].payer();
        let secret = self.secrets[&self.records[k].secrethash()];
        let msg = self
            .star
            .device_sends(payer, |ch, key, _| ch.send_unlock(secret, H256::ZERO, key))
            .unwrap();
        let ChannelMessage::Unlock { proof, secret } = msg else {
            panic!("unlock expected")
        };
        let hub = self.star.hub.get_mut(&payer).unwrap();
        self.records[k]
            .handle_incoming_unlock(hub, &proof, &secret)
            .unwrap();
    }

    fn payer_expire(&mut self, i: usize) {
        let now = self.star.now;
        let mut expired: Vec<(Address, H256)> = Vec::new();
        for (addr, dev) in &self.star.devices {
            for l in dev.channel.our().locks.as_slice() {
                let registered_in_time = self
                    .star
                    .ledger
                    .secret_registered_at(&l.secrethash)
                    .is_some_and(|t| t < l.expiration);
                if l.is_expired(now) && !registered_in_time {
                    expired.push((*addr, l.secrethash));
                }
            }
        }
        let Some(&(payer, hash)) = pick(&expired, i) else {
            return;
        };
        let msg = self
            .star
            .device_sends(payer, |ch, key, now| {
                ch.send_lock_expired(hash, now, H256::ZERO, key)
            })
            .unwrap();
        let ChannelMessage::LockExpired { proof, .. } = msg else {
            panic!("lock expired expected")
        };
        let hub = self.star.hub.get_mut(&payer).unwrap();
        let channel_id = hub.id();
        match self
            .records
            .iter_mut()
            .find(|r| r.incoming_channel() == channel_id && r.secrethash() == hash)
        {
            Some(record) => {
                record.handle_incoming_expired(hub, &proof, now).unwrap();
            }
            None => {
                hub.handle_lock_expired(&proof, &hash, now).unwrap();
            }
        }
    }

    /// The hub does everything its records ask for at the current time.
    fn hub_tick(&mut self) {
        let now = self.star.now;
        let hub_addr = self.hub_addr();
        for k in 0..self.records.len() {
            for action in self.records[k].poll(now) {
                let record = &mut self.records[k];
                match action {
                    MediationAction::UnlockOutgoing { .. } => {
                        let payee = record.payee();
                        let incoming = self.star.hub[&record.payer()].clone();
                        let out = self.star.hub.get_mut(&payee).unwrap();
                        let events = record
                            .unlock_outgoing(out, &incoming, now, H256::ZERO, &self.star.hub_key)
                            .unwrap();
                        self.star.deliver_to_device(payee, &events).unwrap();
                    }
                    MediationAction::RevealSecretToPayer { secret, .. } => {
                        self.payer_knows.insert(secret.hash());
                    }
                    MediationAction::RegisterSecret { secret, before } => {
                        assert!(now < before);
                        self.star
                            .ledger
                            .register_secret(hub_addr, secret, now)
                            .unwrap();
                        record.handle_secret_registered(secret, now).unwrap();
                    }
                    MediationAction::ExpireOutgoing { .. } => {
                        let payee = record.payee();
                        let out = self.star.hub.get_mut(&payee).unwrap();
                        let events = record
                            .expire_outgoing(out, now, H256::ZERO, &self.star.hub_key)
                            .unwrap();
                        self.star.deliver_to_device(payee, &events).unwrap();
                    }
                    MediationAction::ClaimOnLedger { .. } => {} // done at the final settlement
                }
            }
        }
    }

    /// Everything the hub keeps goes through its persisted form (a channel's parts, a
    /// record's serialization); nothing else survives.
    fn hub_crash(&mut self) {
        let channels: BTreeMap<Address, Channel> =
            self.star.hub.iter().map(|(a, c)| (*a, reload(c))).collect();
        let records: Vec<MediatedTransfer> = self.records.iter().map(roundtrip).collect();
        assert_eq!(channels, self.star.hub);
        assert_eq!(records, self.records);
        self.star.hub = channels;
        self.records = records;
    }

    /// What completed transfers moved, per participant: (gained, paid).
    fn moved(&self) -> BTreeMap<Address, (U256, U256)> {
        let mut out: BTreeMap<Address, (U256, U256)> = BTreeMap::new();
        let hub = self.hub_addr();
        for r in &self.records {
            if r.incoming_leg() == Leg::Unlocked {
                out.entry(r.payer()).or_default().1 += r.incoming_lock().amount;
                out.entry(hub).or_default().0 += r.incoming_lock().amount;
            }
            if r.outgoing_leg() == Leg::Unlocked {
                out.entry(hub).or_default().1 += r.outgoing_lock().amount;
                out.entry(r.payee()).or_default().0 += r.outgoing_lock().amount;
            }
        }
        out
    }

    fn check(&mut self) {
        let now = self.star.now;
        let (mut covered, mut owed) = (U256::ZERO, U256::ZERO);
        for r in &self.records {
            // Per transfer: the incoming lock covers the outgoing one plus the fee.
            assert!(r.incoming_lock().amount >= r.outgoing_lock().amount + r.fee());
            assert!(
                r.outgoing_lock().expiration + self.config.reveal_timeout
                    <= r.incoming_lock().expiration
            );
            // The hub never has paid (or still owes) a payee without a claim on the payer.
            if r.outgoing_leg() != Leg::Expired {
                assert_ne!(
                    r.incoming_leg(),
                    Leg::Expired,
                    "hub exposed: {:?}",
                    r.stage()
                );
                covered += r.incoming_lock().amount;
                owed += r.outgoing_lock().amount + r.fee();
            }
            if r.outgoing_leg() == Leg::Unlocked && r.incoming_leg() == Leg::Locked {
                assert!(
                    !r.incoming_lock().is_expired(now) || r.incoming_claimable_on_ledger(),
                    "hub paid out but can no longer claim the incoming lock"
                );
            }
            assert_ne!(r.stage(), Stage::HubLost);
            // The record agrees with both channels.
            let out = &self.star.hub[&r.payee()];
            let inc = &self.star.hub[&r.payer()];
            assert_eq!(
                r.outgoing_leg() == Leg::Locked,
                out.our().locks.get(&r.secrethash()) == Some(r.outgoing_lock())
            );
            assert_eq!(
                r.incoming_leg() == Leg::Locked,
                inc.partner().locks.get(&r.secrethash()) == Some(r.incoming_lock())
            );
        }
        assert!(
            covered >= owed,
            "in total, incoming {covered} < outgoing + fees {owed}"
        );

        let moved = self.moved();
        let mut hub_total = U256::ZERO;
        for (addr, hub_ch) in &self.star.hub {
            let dev_ch = &self.star.devices[addr].channel;
            assert_eq!(hub_ch.our(), dev_ch.partner(), "hub side seen by both");
            assert_eq!(hub_ch.partner(), dev_ch.our(), "device side seen by both");
            let total = hub_ch.total_available().unwrap();
            let (hb, db) = (hub_ch.our_balance().unwrap(), dev_ch.our_balance().unwrap());
            assert_eq!(hb + db, total, "value conserved in the channel");
            for ch in [hub_ch, dev_ch] {
                assert!(ch.our_distributable().unwrap() <= ch.our_balance().unwrap());
                assert_eq!(ch.our().locked(), ch.our().locks.total().unwrap());
                assert_eq!(
                    ch.our().balance_data().locksroot,
                    ch.our().locks.locksroot()
                );
                assert!(
                    ch.our().locked() <= ch.our_balance().unwrap(),
                    "locks beyond balance"
                );
            }
            let (gained, paid) = moved.get(addr).copied().unwrap_or_default();
            assert_eq!(
                db + paid,
                self.deposits[addr] + gained,
                "device balance of {addr}"
            );
            hub_total += hb;
            // Nonces only grow.
            let n = (hub_ch.our().nonce(), dev_ch.our().nonce());
            let prev = self.nonces.insert(*addr, n).unwrap_or((0, 0));
            assert!(n.0 >= prev.0 && n.1 >= prev.1, "nonces went back");
            // The ledger holds what the channel says is available.
            assert_eq!(
                self.star.ledger.channel(hub_ch.id()).unwrap().held(),
                Some(total)
            );
        }
        let (gained, paid) = moved.get(&self.hub_addr()).copied().unwrap_or_default();
        assert_eq!(
            hub_total + paid,
            self.hub_deposit + gained,
            "hub balance across channels"
        );
    }

    /// The hub registers every secret it knows for a pending incoming lock (as it must before
    /// closing), then everything is settled honestly on the ledger.
    fn settle(&mut self) {
        let now = self.star.now;
        let hub_addr = self.hub_addr();
        for r in &mut self.records {
            if let Some(d) = r.must_register_secret_by() {
                assert!(now < d.before);
                self.star
                    .ledger
                    .register_secret(hub_addr, d.secret, now)
                    .unwrap();
                r.handle_secret_registered(d.secret, now).unwrap();
            }
        }
        let want = self.star.expected_payouts();
        // What the records say completed transfers moved agrees with the channels' view.
        let mut by_records = self.moved();
        for r in &self.records {
            if r.incoming_leg() == Leg::Locked && r.incoming_claimable_on_ledger() {
                by_records.entry(r.payer()).or_default().1 += r.incoming_lock().amount;
                by_records.entry(hub_addr).or_default().0 += r.incoming_lock().amount;
            }
        }
        self.star.settle_all();
        for (who, amount) in &want {
            assert_eq!(
                self.star.ledger.token_balance(*who),
                *amount,
                "payout of {who}"
            );
            let deposit = self.deposits.get(who).copied().unwrap_or(self.hub_deposit);
            let (gained, paid) = by_records.get(who).copied().unwrap_or_default();
            assert_eq!(*amount + paid, deposit + gained, "net result of {who}");
        }
        assert_eq!(self.star.ledger.contract_balance(), U256::ZERO);
        assert!(self.star.ledger.conservation_holds());
    }
}

fn pick<T>(items: &[T], i: usize) -> Option<&T> {
    (!items.is_empty()).then(|| &items[i % items.len()])
}

/// A channel as a driver reloads it: through its parts, which every record type converts
/// from and to (the partner's cached key is learned again).
fn reload(channel: &Channel) -> Channel {
    Channel::from_parts(channel.to_parts()).unwrap()
}

fn roundtrip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    serde_json::from_str(&serde_json::to_string(value).unwrap()).unwrap()
}

fn assert_same(before: &Star, after: &Star, what: &str) {
    assert_eq!(before.hub, after.hub, "{what} changed the hub");
    for (a, d) in &before.devices {
        assert_eq!(
            d.channel, after.devices[a].channel,
            "{what} changed a device"
        );
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), .. ProptestConfig::default() })]

    #[test]
    fn mediated_transfers_keep_the_hub_covered_and_settle_to_the_off_chain_state(
        deposits in prop::collection::vec((1u64..400, 0u64..400), DEVICES),
        flat in 0u64..4,
        ppm in prop_oneof![Just(0u32), 1u32..100_000],
        ops in prop::collection::vec(op(), 1..80),
    ) {
        let fees = FeePolicy { flat: u(flat), proportional_ppm: ppm };
        let mut sim = Sim::new(&deposits, fees);
        for op in &ops {
            sim.apply(op);
            sim.check();
        }
        if std::env::var("MEDIATION_STATS").is_ok() {
            let stages: Vec<_> = sim.records.iter().map(|r| r.stage()).collect();
            eprintln!("{} records {:?} registered={}", stages.len(), stages,
                sim.records.iter().filter(|r| r.secret_registered_at().is_some()).count());
        }
        sim.settle();
    }
}
