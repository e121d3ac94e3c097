//! Property tests of mediation against the ledger: three or four devices around one hub on the
//! embedded `Ledger`, paying each other through it while payers and payees collude against the
//! hub on the ledger. Besides what `mediation_properties.rs` does off-chain (pay, reveal,
//! unlock or withhold, lock-expired, time), any device or the hub closes its channel at any
//! time (a device also with an older proof of the hub's, or none), payees register their
//! secrets on the ledger themselves at any time (also for forwards the hub refused), and
//! anyone unlocks a settled channel's kept-back locks at any time (a payer grabbing its locks
//! back early; some devices settle and unlock everything they can on every tick, before the
//! hub). Bug 1's opening move is an operation of its own: pay (with an expiry also beyond the
//! settlement window), the payer closes at once and grabs at settlement, the payee reveals or
//! registers the secret right after. On every tick the hub does what its driver does: brings each record up to
//! its channels (`handle_secret_reveal` with a learned secret, `handle_secret_registered`,
//! `handle_settlement`), carries out `MediatedTransfer::poll` (off-chain actions only in an
//! open channel) and submits what each channel's monitor (`poll_ledger_actions`) asks for;
//! every device's monitor contests, settles and unlocks, and honest ("diligent") payees'
//! monitors also register their secrets and close to claim.
//!
//! After every step: the hub holds no payer lock it did not forward; a hub that paid out can
//! still claim; the two views of each channel agree; nonces only grow; the ledger conserves
//! tokens. At the end (every channel closed, settled and unlocked): nothing is left kept back;
//! every transfer's two locks ended as the records say; no transfer paid the payee without
//! paying the hub; the hub ends with its deposits plus what its transfers earned (never less);
//! every device ends with its deposit minus the forwarded locks it paid plus the locks it was
//! paid, so a refused lock costs its payer nothing, and a payer pays for a transfer whose
//! payee was not paid only when the payee let the secret out too late for its own lock.
//!
//! Then step-by-step regressions of the two bugs an adversarial client found: a payer and a
//! payee colluding over a lock that outlives the settlement window, and a lock the hub took
//! without forwarding it.
//!
//! Cases default to 64; set `PROPTEST_CASES` for more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mediation_rules/world.rs"]
#[allow(dead_code)] // the rule tests use all of it, this file part
mod world;

use std::collections::{BTreeMap, BTreeSet};

use channel_core::channel::{
    pending_unlocks, Channel, ChannelMessage, ChannelPhase, LedgerAction, LedgerView,
};
use channel_core::crypto::{LocalSigner, Signer};
use channel_core::ledger::{ChannelPhase as LedgerPhase, LedgerError, LedgerEventKind};
use channel_core::locks::{unpack_locks, HashTimeLock, Secret};
use channel_core::mediation::{
    FeePolicy, Leg, MediatedTransfer, MediationAction, MediationConfig, MediationError,
    MediationRefusal, Stage,
};
use channel_core::testing::{sends, test_domain};
use channel_core::{Address, BalanceData, SignedBalanceProof, H256, U256};
use proptest::prelude::*;
use world::{u, Star, WINDOW};

const REVEAL: u64 = 20;

fn config(fees: FeePolicy) -> MediationConfig {
    MediationConfig {
        fees,
        reveal_timeout: REVEAL,
        min_outgoing_lifetime: 5,
        settlement_window: WINDOW,
    }
}

/// Who closes a device's channel, and with which proof of the partner's.
#[derive(Clone, Copy, Debug)]
enum Closer {
    /// The device, with the hub's latest proof.
    Device,
    /// The hub, with the device's latest proof.
    Hub,
    /// The device, with one of the hub's proofs it received (by index, oldest first).
    DeviceStale(usize),
    /// The device, with no proof of the hub's at all.
    DeviceEmpty,
}

#[derive(Clone, Debug)]
enum Op {
    /// Device `from` pays `amount` to device `to`, locking for `expires_in` seconds (also
    /// beyond the settlement window); `cover` 0 underpays the fee by one, 1 pays it exactly,
    /// 2 overpays by one.
    Pay {
        from: usize,
        to: usize,
        amount: u64,
        expires_in: u64,
        cover: u64,
    },
    /// Bug 1: as `Pay`, then the payer closes its channel at once (with the hub's latest
    /// proof) and grabs its kept-back locks the moment the channel settles; right after, the
    /// payee reveals the secret to the hub (or, `on_ledger`, registers it there).
    PayAndClose {
        from: usize,
        to: usize,
        amount: u64,
        expires_in: u64,
        on_ledger: bool,
    },
    /// The payee of a transfer whose secret the hub does not know reveals it to the hub.
    Reveal(usize),
    /// A payee registers one of its secrets (of a forwarded or a refused lock) on the ledger.
    Register(usize),
    /// A payer that knows a secret unlocks toward the hub.
    PayerUnlock(usize),
    /// A payer takes back one of its expired locks.
    PayerExpire(usize),
    Close {
        device: usize,
        by: Closer,
    },
    /// Anyone unlocks some kept-back locks of a settled channel, whenever.
    EarlyUnlock(usize),
    Advance(u64),
}

fn op(devices: usize) -> impl Strategy<Value = Op> {
    let closer = prop_oneof![
        3 => Just(Closer::Device),
        2 => Just(Closer::Hub),
        1 => any::<usize>().prop_map(Closer::DeviceStale),
        1 => Just(Closer::DeviceEmpty),
    ];
    // Mostly locks the hub takes, some too short or too long for it.
    let expires_in = prop_oneof![3 => 26u64..=WINDOW, 1 => 1u64..2 * WINDOW + 60];
    prop_oneof![
        8 => (0..devices, 0..devices, 1u64..80, expires_in, 0u64..3).prop_map(
            |(from, to, amount, expires_in, cover)| Op::Pay { from, to, amount, expires_in, cover }),
        1 => (0..devices, 0..devices, 1u64..80, 26u64..2 * WINDOW + 60, any::<bool>()).prop_map(
            |(from, to, amount, expires_in, on_ledger)| Op::PayAndClose {
                from, to, amount, expires_in, on_ledger
            }),
        3 => any::<usize>().prop_map(Op::Reveal),
        3 => any::<usize>().prop_map(Op::Register),
        3 => any::<usize>().prop_map(Op::PayerUnlock),
        1 => any::<usize>().prop_map(Op::PayerExpire),
        1 => (0..devices, closer).prop_map(|(device, by)| Op::Close { device, by }),
        2 => any::<usize>().prop_map(Op::EarlyUnlock),
        4 => (1u64..40).prop_map(Op::Advance),
    ]
}

/// One participant acting on one device channel: the hub, or the device itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Who {
    Hub,
    Device,
}

/// The star, the hub's records and driver, the devices' behaviour and what the test
/// remembers to judge the outcome.
struct Sim {
    star: Star,
    config: MediationConfig,
    /// The hub's mediation records, with the ledger time each lock was taken.
    records: Vec<MediatedTransfer>,
    taken_at: Vec<u64>,
    /// Every secret a payee made (for a forwarded or a refused lock), with its payee.
    secrets: BTreeMap<H256, (Secret, Address)>,
    /// Secrets the hub told the payer.
    payer_knows: BTreeSet<H256>,
    next_secret: u64,
    deposits: BTreeMap<Address, U256>,
    hub_deposit: U256,
    /// Devices whose monitor also registers secrets and closes to claim (honest payees);
    /// every device's monitor contests, settles and unlocks.
    diligent: BTreeSet<Address>,
    /// Colluding devices that, on every tick before anyone else, settle their channel as soon
    /// as the ledger allows and unlock every kept-back lock list they know, whether or not its
    /// locks are decided (anyone may call `Ledger::unlock`).
    grabbers: BTreeSet<Address>,
    /// Devices that closed with a proof of the hub's older than its latest (or none): they
    /// gave up what the newer proofs gave them, so their payout is only bounded.
    stale: BTreeSet<Address>,
    /// Every lock list anyone signed, by root (the drivers' lock archives).
    lock_archive: BTreeMap<H256, Vec<u8>>,
    /// Balance data of every proof each participant signed, per (signer, channel).
    balance_archive: BTreeMap<(Address, U256), Vec<BalanceData>>,
    /// Every proof of the hub's each device received, oldest first.
    hub_proofs: BTreeMap<Address, Vec<SignedBalanceProof>>,
    /// Ledger events every channel view has applied.
    seen: u64,
    /// While set, ledger events are not delivered to the channel views (a lagging view).
    paused: bool,
    /// Locks that moved off-chain: (channel, secrethash) unlocked toward the receiver.
    offchain_paid: BTreeSet<(U256, H256)>,
    /// Ledger unlocks: (channel, sender, secrethash) → whether the receiver got the lock.
    ledger_fates: BTreeMap<(U256, Address, H256), bool>,
    /// (participant view, device) → (our nonce, partner nonce), to check they only grow.
    nonces: BTreeMap<(Who, Address), (u64, u64)>,
    last_close: u64,
    /// What the hub's driver tried and the core refused (it logs and retries).
    driver_errors: Vec<String>,
    /// Check after every step that no record says the hub paid out and lost the incoming
    /// lock (off only where a record is known to misjudge a settlement).
    check_legs: bool,
    /// A payee's late move, due at a ledger time: (time, secrethash, on the ledger rather
    /// than revealed to the hub).
    scheduled: Vec<(u64, H256, bool)>,
    /// How often each interesting thing happened (printed with `MEDIATION_STATS`).
    stats: BTreeMap<&'static str, u64>,
}

impl Sim {
    /// One channel per `(device deposit, hub deposit, diligent)`.
    fn new(devices: &[(u64, u64, bool)], fees: FeePolicy) -> Self {
        Self::with_grabbers(devices, &[], fees)
    }

    /// As [`Sim::new`], with the devices of index `grabbers` grabbing kept-back locks.
    fn with_grabbers(devices: &[(u64, u64, bool)], grabbers: &[usize], fees: FeePolicy) -> Self {
        let deposits: Vec<(u64, u64)> = devices.iter().map(|(d, h, _)| (*d, *h)).collect();
        let star = Star::new(&deposits);
        let dev_deposits = devices
            .iter()
            .enumerate()
            .map(|(i, (d, _, _))| (star.addr(i), u(*d)))
            .collect();
        let hub_deposit = devices.iter().fold(U256::ZERO, |a, (_, h, _)| a + u(*h));
        let diligent = devices
            .iter()
            .enumerate()
            .filter(|(_, (_, _, honest))| *honest)
            .map(|(i, _)| star.addr(i))
            .collect();
        let seen = star.ledger.last_event_seq();
        let grabbers = grabbers.iter().map(|i| star.addr(*i)).collect();
        let mut sim = Self {
            star,
            config: config(fees),
            records: Vec::new(),
            taken_at: Vec::new(),
            secrets: BTreeMap::new(),
            payer_knows: BTreeSet::new(),
            next_secret: 1,
            deposits: dev_deposits,
            hub_deposit,
            diligent,
            grabbers,
            stale: BTreeSet::new(),
            lock_archive: BTreeMap::new(),
            balance_archive: BTreeMap::new(),
            hub_proofs: BTreeMap::new(),
            seen,
            paused: false,
            offchain_paid: BTreeSet::new(),
            ledger_fates: BTreeMap::new(),
            nonces: BTreeMap::new(),
            last_close: 0,
            driver_errors: Vec::new(),
            check_legs: true,
            scheduled: Vec::new(),
            stats: BTreeMap::new(),
        };
        sim.snapshot();
        sim
    }

    fn count(&mut self, what: &'static str) {
        *self.stats.entry(what).or_default() += 1;
    }

    fn record_of(&self, secrethash: H256) -> Option<usize> {
        self.records
            .iter()
            .position(|r| r.secrethash() == secrethash)
    }

    fn hub_addr(&self) -> Address {
        self.star.hub_key.address()
    }

    fn id(&self, device: Address) -> U256 {
        self.star.hub[&device].id()
    }

    fn view(&self, who: Who, device: Address) -> &Channel {
        match who {
            Who::Hub => &self.star.hub[&device],
            Who::Device => &self.star.devices[&device].channel,
        }
    }

    fn view_mut(&mut self, who: Who, device: Address) -> &mut Channel {
        match who {
            Who::Hub => self.star.hub.get_mut(&device).unwrap(),
            Who::Device => &mut self.star.devices.get_mut(&device).unwrap().channel,
        }
    }

    fn key(&self, who: Who, device: Address) -> LocalSigner {
        match who {
            Who::Hub => self.star.hub_key.clone(),
            Who::Device => self.star.devices[&device].key.clone(),
        }
    }

    fn ledger_phase(&self, device: Address) -> LedgerPhase {
        self.star.ledger.channel(self.id(device)).unwrap().phase
    }

    // ----- the ledger and the drivers' archives -----

    /// Delivers the new ledger events to every channel view (unless the views lag).
    fn feed(&mut self) {
        if self.paused {
            return;
        }
        let events = self.star.ledger.events_since(self.seen).to_vec();
        for ev in &events {
            for ch in self.star.hub.values_mut() {
                ch.handle_ledger_event(ev).unwrap();
            }
            for dev in self.star.devices.values_mut() {
                dev.channel.handle_ledger_event(ev).unwrap();
            }
            self.seen = ev.seq;
        }
        self.snapshot();
    }

    /// What each driver archives as it signs and receives: lock lists, balance data, and
    /// (for a colluding device) every proof of the hub's.
    fn snapshot(&mut self) {
        for (addr, dev) in &self.star.devices {
            let hub_ch = &self.star.hub[addr];
            for ch in [hub_ch, &dev.channel] {
                if let Some((root, packed)) = ch.our_signed_locks() {
                    self.lock_archive.entry(root).or_insert(packed);
                }
                if let Some((_, data)) = ch.our_signed_balance() {
                    let list = self
                        .balance_archive
                        .entry((ch.our_address(), ch.id()))
                        .or_default();
                    if !list.contains(&data) {
                        list.push(data);
                    }
                }
            }
            if let Some(p) = dev.channel.partner_latest_proof() {
                let list = self.hub_proofs.entry(*addr).or_default();
                if list.last() != Some(p) {
                    list.push(*p);
                }
            }
        }
    }

    /// `Ledger::unlock`, remembering which lock went where.
    fn ledger_unlock(
        &mut self,
        caller: Address,
        channel_id: U256,
        receiver: Address,
        sender: Address,
        packed: &[u8],
    ) -> Result<(), LedgerError> {
        let now = self.star.now;
        let fates: Vec<(H256, bool, U256)> = unpack_locks(packed)
            .unwrap_or_default()
            .iter()
            .map(|l| {
                let paid = self
                    .star
                    .ledger
                    .secret_registered_at(&l.secrethash)
                    .is_some_and(|t| t < l.expiration);
                (l.secrethash, paid, l.amount)
            })
            .collect();
        let events = self
            .star
            .ledger
            .unlock(caller, channel_id, receiver, sender, packed, now)?;
        let claimed = fates
            .iter()
            .filter(|(_, paid, _)| *paid)
            .fold(U256::ZERO, |a, (_, _, amount)| a + *amount);
        let LedgerEventKind::ChannelUnlocked {
            unlocked_amount, ..
        } = &events[0].kind
        else {
            panic!("unlock emitted {events:?}");
        };
        // Settlement keeps back at most what the two stored proofs leave for the locks: with
        // a stale proof of the hub's, a device that spent what newer proofs gave it forfeits
        // part of its claims. With both latest proofs every lock is kept back in full.
        let stale = self
            .star
            .order
            .iter()
            .any(|d| self.id(*d) == channel_id && self.stale.contains(d));
        if stale {
            assert!(*unlocked_amount <= claimed, "unlock paid other locks");
        } else {
            assert_eq!(*unlocked_amount, claimed, "unlock paid other locks");
        }
        for (h, paid, _) in fates {
            self.ledger_fates.insert((channel_id, sender, h), paid);
        }
        self.feed();
        Ok(())
    }

    fn register(&mut self, caller: Address, secret: Secret) -> Result<(), LedgerError> {
        let now = self.star.now;
        self.star.ledger.register_secret(caller, secret, now)?;
        self.feed();
        Ok(())
    }

    fn close(&mut self, device: Address, by: Closer) {
        if self.ledger_phase(device) != LedgerPhase::Opened {
            return;
        }
        let now = self.star.now;
        let id = self.id(device);
        let (caller, proof, signature) = match by {
            Closer::Device | Closer::Hub => {
                let who = if matches!(by, Closer::Hub) {
                    Who::Hub
                } else {
                    Who::Device
                };
                let key = self.key(who, device);
                let tx = self.view_mut(who, device).close(&key).unwrap();
                (key.address(), tx.partner_proof, tx.closing_signature)
            }
            Closer::DeviceStale(_) | Closer::DeviceEmpty => {
                let key = self.key(Who::Device, device);
                let history = self.hub_proofs.get(&device).cloned().unwrap_or_default();
                let proof = match by {
                    Closer::DeviceStale(i) if !history.is_empty() => history[i % history.len()],
                    _ => SignedBalanceProof::none(test_domain(), id),
                };
                let latest = self.star.devices[&device].channel.partner_latest_proof();
                if latest.is_some() && latest != Some(&proof) {
                    self.stale.insert(device);
                    self.count("stale close");
                }
                let signature = proof.counter_sign_close(&key).unwrap();
                (key.address(), proof, signature)
            }
        };
        self.star
            .ledger
            .close_channel(caller, id, &proof, &signature, now)
            .expect("a close the ledger accepts");
        self.last_close = now;
        self.feed();
    }

    /// What `who`'s monitor of `device`'s channel asks for now.
    fn monitor_actions(&self, who: Who, device: Address) -> Vec<LedgerAction> {
        let id = self.id(device);
        let record = self.star.ledger.channel(id).unwrap().clone();
        let pending = pending_unlocks(&self.star.ledger, &record);
        let ch = self.view(who, device);
        let archived: Vec<Vec<u8>> = ch
            .archived_locks_wanted(&pending)
            .iter()
            .filter_map(|root| self.lock_archive.get(root).cloned())
            .collect();
        let view = LedgerView {
            record: &record,
            now: self.star.now,
            reveal_timeout: REVEAL,
            pending_unlocks: &pending,
            archived_locks: &archived,
        };
        ch.poll_ledger_actions(&view, &self.key(who, device))
            .unwrap()
    }

    /// Submits what `who`'s monitor of `device`'s channel asks for. A device that is not
    /// diligent only contests, settles and unlocks.
    fn run_monitor(&mut self, who: Who, device: Address) {
        let now = self.star.now;
        let id = self.id(device);
        let key = self.key(who, device);
        let caller = key.address();
        let claims = who == Who::Hub || self.diligent.contains(&device);
        for action in self.monitor_actions(who, device) {
            let what = format!("{who:?} monitor of {device}: {action:?}");
            match action {
                LedgerAction::Update(tx) => {
                    self.star
                        .ledger
                        .update_non_closing_balance_proof(
                            caller,
                            tx.channel_id,
                            &tx.closer_proof,
                            &tx.non_closing_signature,
                            now,
                        )
                        .expect(&what);
                }
                LedgerAction::Settle { channel_id } => {
                    let record = self.star.ledger.channel(channel_id).unwrap().clone();
                    let stored = record.participant(caller).unwrap().balance_hash();
                    let archive = self
                        .balance_archive
                        .get(&(caller, id))
                        .cloned()
                        .unwrap_or_default();
                    let tx = self
                        .view(who, device)
                        .settle_transaction(&record, |_| {
                            archive.iter().find(|b| b.balance_hash() == stored).copied()
                        })
                        .expect(&what);
                    self.star
                        .ledger
                        .settle_channel(caller, &tx, now)
                        .expect(&what);
                }
                LedgerAction::Close { .. } if claims => {
                    self.count(if who == Who::Hub {
                        "hub closes to claim"
                    } else {
                        "payee closes to claim"
                    });
                    let tx = self.view_mut(who, device).close(&key).unwrap();
                    self.star
                        .ledger
                        .close_channel(caller, id, &tx.partner_proof, &tx.closing_signature, now)
                        .expect(&what);
                    self.last_close = now;
                }
                LedgerAction::RegisterSecret { secret } if claims => {
                    self.count(if who == Who::Hub {
                        "hub registers"
                    } else {
                        "payee's monitor registers"
                    });
                    self.star
                        .ledger
                        .register_secret(caller, secret, now)
                        .expect(&what);
                }
                LedgerAction::Unlock {
                    channel_id,
                    receiver,
                    sender,
                    packed_locks,
                } => {
                    self.ledger_unlock(caller, channel_id, receiver, sender, &packed_locks)
                        .expect(&what);
                }
                LedgerAction::Close { .. } | LedgerAction::RegisterSecret { .. } => {}
            }
            self.feed();
        }
    }

    // ----- the hub's mediation driver -----

    /// Brings record `k` up to its channels, as the hub's driver does before polling.
    fn sync_record(&mut self, k: usize) {
        let now = self.star.now;
        let r = &self.records[k];
        let h = r.secrethash();
        let incoming = &self.star.hub[&r.payer()];
        let outgoing = &self.star.hub[&r.payee()];
        let (mut learned, mut registered) = (None, None);
        for ch in [incoming, outgoing] {
            if let Some(known) = ch.known_secret(&h) {
                learned = Some(known.secret);
                if let Some(at) = known.registered_at {
                    registered = Some((known.secret, at));
                }
            }
        }
        let mut next = r.clone();
        if let (None, Some(secret)) = (r.secret(), learned) {
            let before = next.clone();
            if next.handle_secret_reveal(secret, incoming, now).is_err() {
                assert_eq!(next, before, "a refused reveal changed the record");
            }
        }
        if let (None, Some((secret, at))) = (r.secret_registered_at(), registered) {
            next.handle_secret_registered(secret, at).unwrap();
        }
        next.handle_settlement(incoming, outgoing, now);
        self.records[k] = next;
    }

    /// The payee's secret reaches the hub, which pays the payee: `handle_secret_reveal`, the
    /// secret into the payer's channel, `unlock_outgoing`, all or nothing.
    fn pay_payee(&mut self, k: usize, secret: Secret) -> Result<(), MediationError> {
        let now = self.star.now;
        let (payer, payee) = (self.records[k].payer(), self.records[k].payee());
        let mut next = self.records[k].clone();
        let mut incoming = self.star.hub[&payer].clone();
        let mut outgoing = self.star.hub[&payee].clone();
        let hub_key = &self.star.hub_key;
        let events = next
            .handle_secret_reveal(secret, &incoming, now)
            .and_then(|_| {
                if incoming.partner().locks.contains(&secret.hash()) {
                    incoming.learn_secret(secret)?;
                }
                next.unlock_outgoing(&mut outgoing, &incoming, now, H256::ZERO, hub_key)
            })?;
        self.offchain_paid
            .insert((outgoing.id(), next.secrethash()));
        self.records[k] = next;
        self.star.hub.insert(payer, incoming);
        self.star.hub.insert(payee, outgoing);
        self.star.deliver_to_device(payee, &events).unwrap();
        Ok(())
    }

    fn expire_outgoing(&mut self, k: usize) -> Result<(), MediationError> {
        let now = self.star.now;
        let payee = self.records[k].payee();
        let mut next = self.records[k].clone();
        let mut outgoing = self.star.hub[&payee].clone();
        let events = next.expire_outgoing(&mut outgoing, now, H256::ZERO, &self.star.hub_key)?;
        self.records[k] = next;
        self.star.hub.insert(payee, outgoing);
        self.star.deliver_to_device(payee, &events).unwrap();
        Ok(())
    }

    /// The hub's channel with the payer learns the secret, so its monitor registers it in
    /// time and claims the incoming lock if the payer does not unlock.
    fn learn_in_incoming(&mut self, k: usize, secret: Secret) {
        let incoming = self.star.hub.get_mut(&self.records[k].payer()).unwrap();
        if incoming.partner().locks.contains(&secret.hash()) {
            incoming.learn_secret(secret).unwrap();
        }
    }

    /// One pass of the hub's mediation driver over every record.
    fn mediation_pass(&mut self) {
        let now = self.star.now;
        for k in 0..self.records.len() {
            self.sync_record(k);
            for action in self.records[k].poll(now) {
                let (payer, payee) = (self.records[k].payer(), self.records[k].payee());
                let payer_open = self.star.hub[&payer].phase() == ChannelPhase::Open;
                let payee_open = self.star.hub[&payee].phase() == ChannelPhase::Open;
                let done = match action {
                    MediationAction::UnlockOutgoing { secret, .. } if payee_open => {
                        self.pay_payee(k, secret)
                    }
                    MediationAction::RevealSecretToPayer { secret, .. } if payer_open => {
                        self.payer_knows.insert(secret.hash());
                        Ok(())
                    }
                    MediationAction::RegisterSecret { secret, before } => {
                        assert!(now < before);
                        self.learn_in_incoming(k, secret);
                        Ok(())
                    }
                    MediationAction::ExpireOutgoing { .. } if payee_open => self.expire_outgoing(k),
                    // Closed channels: the ledger decides; claims: the monitor closes.
                    _ => Ok(()),
                };
                if let Err(e) = done {
                    self.driver_errors
                        .push(format!("at {now}: {action:?} for record {k}: {e}"));
                }
            }
        }
    }

    /// A grabbing device settles its channel as soon as it can and unlocks every kept-back
    /// lock list of it that it knows, at once.
    fn grab(&mut self, device: Address) {
        let now = self.star.now;
        let id = self.id(device);
        let record = self.star.ledger.channel(id).unwrap().clone();
        if record.phase == LedgerPhase::Closed && now > record.settle_after.unwrap_or(u64::MAX) {
            let stored = record.participant(device).unwrap().balance_hash();
            let archive = self
                .balance_archive
                .get(&(device, id))
                .cloned()
                .unwrap_or_default();
            // A device that closed with an older proof of the hub's does not have its balance
            // data (`settle_transaction` looks up only our own old proofs): the hub settles.
            if let Ok(tx) = self
                .star
                .device_channel(device)
                .settle_transaction(&record, |_| {
                    archive.iter().find(|b| b.balance_hash() == stored).copied()
                })
            {
                self.star.ledger.settle_channel(device, &tx, now).unwrap();
                self.feed();
            }
        }
        let entries: Vec<(Address, Address, H256)> = self
            .star
            .ledger
            .unlock_entries()
            .filter(|e| e.channel_id == id && self.lock_archive.contains_key(&e.locksroot))
            .map(|e| (e.receiver, e.sender, e.locksroot))
            .collect();
        for (receiver, sender, root) in entries {
            self.count("early unlock");
            let packed = self.lock_archive[&root].clone();
            self.ledger_unlock(device, id, receiver, sender, &packed)
                .unwrap();
        }
    }

    /// Everything the hub and the devices do at the current ledger time.
    fn tick(&mut self) {
        for device in self.grabbers.clone() {
            self.grab(device);
        }
        let now = self.star.now;
        let (due, later) = self.scheduled.iter().partition(|(t, _, _)| *t <= now);
        self.scheduled = later;
        for (_, h, on_ledger) in due {
            if on_ledger {
                if self.star.ledger.secret_registered_at(&h).is_none() {
                    self.count("late registration");
                    self.payee_registers(h).unwrap();
                }
            } else if let Some(k) = self
                .record_of(h)
                .filter(|k| self.records[*k].secret().is_none())
            {
                let ok = self.reveal(k).is_ok();
                self.count(if ok {
                    "late reveal taken"
                } else {
                    "late reveal refused"
                });
            }
        }
        self.mediation_pass();
        for device in self.star.order.clone() {
            self.run_monitor(Who::Hub, device);
            self.run_monitor(Who::Device, device);
        }
        for k in 0..self.records.len() {
            self.sync_record(k);
        }
        self.snapshot();
    }

    fn advance(&mut self, dt: u64) {
        for _ in 0..dt {
            self.star.now += 1;
            self.tick();
            self.check();
        }
    }

    fn advance_to(&mut self, t: u64) {
        let dt = t.saturating_sub(self.star.now);
        self.advance(dt);
    }

    // ----- what the devices do -----

    /// `payer` asks the hub to forward `amount` to `payee` against a new secret of the
    /// payee's, locking `gross` for `expires_in` seconds. Returns the secret and the record's
    /// index, or the refusal (after which neither side holds anything of the lock).
    fn pay(
        &mut self,
        payer: Address,
        payee: Address,
        amount: u64,
        gross: u64,
        expires_in: u64,
    ) -> (Secret, Result<usize, MediationError>) {
        let now = self.star.now;
        let secret = Secret(H256(U256::from(self.next_secret).to_be_bytes()));
        self.next_secret += 1;
        self.secrets.insert(secret.hash(), (secret, payee));
        let lock = HashTimeLock {
            expiration: now + expires_in,
            amount: u(gross),
            secrethash: secret.hash(),
        };
        let (dev_before, hub_before) = (
            self.star.devices[&payer].channel.clone(),
            self.star.hub.clone(),
        );
        let result = self
            .star
            .pay_through_hub(payer, payee, lock, u(amount), &self.config);
        let result = match result {
            Ok(record) => {
                assert!(
                    lock.expiration <= now + self.config.settlement_window,
                    "a lock beyond the settlement window was forwarded"
                );
                assert_eq!(record.incoming_lock(), &lock);
                self.records.push(record);
                self.taken_at.push(now);
                Ok(self.records.len() - 1)
            }
            Err(e) => {
                assert_eq!(
                    self.star.devices[&payer].channel, dev_before,
                    "the payer kept a refused lock"
                );
                assert_eq!(self.star.hub, hub_before, "the hub kept a refused lock");
                Err(e)
            }
        };
        self.snapshot();
        (secret, result)
    }

    /// The payee of record `k` reveals its secret to the hub. A refusal changes nothing.
    fn reveal(&mut self, k: usize) -> Result<(), MediationError> {
        let (h, payee, payer) = {
            let r = &self.records[k];
            (r.secrethash(), r.payee(), r.payer())
        };
        let secret = self.secrets[&h].0;
        let dev = &mut self.star.devices.get_mut(&payee).unwrap().channel;
        let _ = dev.learn_secret(secret); // its own secret, if it still holds the lock
        let before = (
            self.records[k].clone(),
            self.star.hub[&payer].clone(),
            self.star.hub[&payee].clone(),
        );
        let result = self.pay_payee(k, secret);
        if result.is_err() {
            let after = (
                self.records[k].clone(),
                self.star.hub[&payer].clone(),
                self.star.hub[&payee].clone(),
            );
            assert_eq!(after, before, "a refused reveal changed the hub");
        }
        result
    }

    /// The payee of `secret` registers it on the ledger itself.
    fn payee_registers(&mut self, h: H256) -> Result<(), LedgerError> {
        let (secret, payee) = self.secrets[&h];
        let dev = &mut self.star.devices.get_mut(&payee).unwrap().channel;
        let _ = dev.learn_secret(secret);
        self.register(payee, secret)
    }

    /// `sender`'s kept-back locks in `device`'s settled channel, unlocked by `caller`.
    fn unlock_kept_back(&mut self, caller: Address, device: Address, sender: Address) {
        let id = self.id(device);
        let receiver = if sender == device {
            self.hub_addr()
        } else {
            device
        };
        let entry = self
            .star
            .ledger
            .pending_unlock(id, sender, receiver)
            .expect("locks kept back")
            .clone();
        let packed = self.lock_archive[&entry.locksroot].clone();
        self.ledger_unlock(caller, id, receiver, sender, &packed)
            .unwrap();
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Pay {
                from,
                to,
                amount,
                expires_in,
                cover,
            } => {
                let gross = self.config.fees.gross_amount(u(amount)).unwrap() + u(cover);
                let gross = u64::try_from(gross).unwrap() - 1;
                let (payer, payee) = (self.star.addr(from), self.star.addr(to));
                let (_, result) = self.pay(payer, payee, amount, gross, expires_in);
                match result {
                    Ok(_) => assert!(cover >= 1, "an underpaid fee was forwarded"),
                    Err(MediationError::Refused(_) | MediationError::Channel(_)) => {}
                    Err(other) => panic!("forward failed beyond a refusal: {other}"),
                }
            }
            Op::PayAndClose {
                from,
                to,
                amount,
                expires_in,
                on_ledger,
            } => {
                let gross = self.config.fees.gross_amount(u(amount)).unwrap();
                let gross = u64::try_from(gross).unwrap();
                let (payer, payee) = (self.star.addr(from), self.star.addr(to));
                let (secret, result) = self.pay(payer, payee, amount, gross, expires_in);
                if result.is_ok() && self.ledger_phase(payer) == LedgerPhase::Opened {
                    self.count("pay and close");
                    self.close(payer, Closer::Device);
                    self.grabbers.insert(payer);
                    let after_settlement = self.star.now + WINDOW + 2;
                    self.scheduled
                        .push((after_settlement, secret.hash(), on_ledger));
                }
            }
            Op::Reveal(i) => {
                let open: Vec<usize> = (0..self.records.len())
                    .filter(|&k| self.records[k].secret().is_none())
                    .collect();
                if let Some(&k) = pick(&open, i) {
                    let ok = self.reveal(k).is_ok();
                    self.count(if ok { "reveal taken" } else { "reveal refused" });
                }
            }
            Op::Register(i) => {
                // Half the time a secret whose lock the payee still holds unexpired.
                let now = self.star.now;
                let unregistered: Vec<H256> = self
                    .secrets
                    .iter()
                    .filter(|(h, _)| self.star.ledger.secret_registered_at(h).is_none())
                    .filter(|(h, (_, payee))| {
                        i % 2 == 0
                            || self.star.devices[payee]
                                .channel
                                .partner()
                                .locks
                                .get(h)
                                .is_some_and(|l| !l.is_expired(now))
                    })
                    .map(|(h, _)| *h)
                    .collect();
                if let Some(&h) = pick(&unregistered, i / 2) {
                    self.count(if self.record_of(h).is_some() {
                        "payee registers"
                    } else {
                        "payee registers a refused lock's secret"
                    });
                    self.payee_registers(h).unwrap();
                }
            }
            Op::PayerUnlock(i) => self.payer_unlock(i),
            Op::PayerExpire(i) => self.payer_expire(i),
            Op::Close { device, by } => self.close(self.star.addr(device), by),
            Op::EarlyUnlock(i) => {
                let entries: Vec<(U256, Address, Address, H256)> = self
                    .star
                    .ledger
                    .unlock_entries()
                    .filter(|e| self.lock_archive.contains_key(&e.locksroot))
                    .map(|e| (e.channel_id, e.receiver, e.sender, e.locksroot))
                    .collect();
                if let Some(&(id, receiver, sender, root)) = pick(&entries, i) {
                    self.count("early unlock");
                    let packed = self.lock_archive[&root].clone();
                    self.ledger_unlock(sender, id, receiver, sender, &packed)
                        .unwrap();
                }
            }
            Op::Advance(dt) => self.advance(dt),
        }
        self.tick();
        self.check();
    }

    fn payer_unlock(&mut self, i: usize) {
        let candidates: Vec<usize> = (0..self.records.len())
            .filter(|&k| {
                let r = &self.records[k];
                let h = r.secrethash();
                let dev = &self.star.devices[&r.payer()].channel;
                let public = self
                    .star
                    .ledger
                    .secret_registered_at(&h)
                    .is_some_and(|t| t < r.incoming_lock().expiration);
                r.incoming_leg() == Leg::Locked
                    && (self.payer_knows.contains(&h) || public)
                    && dev.phase() == ChannelPhase::Open
                    && dev.our().locks.contains(&h)
            })
            .collect();
        let Some(&k) = pick(&candidates, i) else {
            return;
        };
        let payer = self.records[k].payer();
        let secret = self.secrets[&self.records[k].secrethash()].0;
        let dev = &self.star.devices[&payer];
        let mut sent = dev.channel.clone();
        let events = sent.send_unlock(secret, H256::ZERO, &dev.key).unwrap();
        let Some(ChannelMessage::Unlock { proof, secret }) = sends(&events).into_iter().next()
        else {
            panic!("unlock expected");
        };
        let mut next = self.records[k].clone();
        let mut incoming = self.star.hub[&payer].clone();
        next.handle_incoming_unlock(&mut incoming, &proof, &secret)
            .unwrap();
        self.offchain_paid.insert((incoming.id(), secret.hash()));
        self.count("payer unlocks");
        self.records[k] = next;
        self.star.hub.insert(payer, incoming);
        self.star.devices.get_mut(&payer).unwrap().channel = sent;
    }

    fn payer_expire(&mut self, i: usize) {
        let now = self.star.now;
        let mut expired: Vec<(Address, H256)> = Vec::new();
        for (addr, dev) in &self.star.devices {
            if dev.channel.phase() != ChannelPhase::Open {
                continue;
            }
            for l in dev.channel.our().locks.as_slice() {
                if l.is_expired(now) && !dev.channel.claimed_on_ledger(l) {
                    expired.push((*addr, l.secrethash));
                }
            }
        }
        let Some(&(payer, h)) = pick(&expired, i) else {
            return;
        };
        let dev = &self.star.devices[&payer];
        let mut sent = dev.channel.clone();
        let events = sent
            .send_lock_expired(h, now, H256::ZERO, &dev.key)
            .unwrap();
        let Some(ChannelMessage::LockExpired { proof, .. }) = sends(&events).into_iter().next()
        else {
            panic!("lock expired expected");
        };
        let mut incoming = self.star.hub[&payer].clone();
        let k = self
            .records
            .iter()
            .position(|r| r.incoming_channel() == incoming.id() && r.secrethash() == h)
            .expect("the hub holds a payer's lock it did not forward");
        let mut next = self.records[k].clone();
        next.handle_incoming_expired(&mut incoming, &proof, now)
            .unwrap();
        self.count("payer expires");
        self.records[k] = next;
        self.star.hub.insert(payer, incoming);
        self.star.devices.get_mut(&payer).unwrap().channel = sent;
    }

    // ----- invariants -----

    /// After every step.
    fn check(&mut self) {
        let now = self.star.now;
        assert!(self.star.ledger.conservation_holds());
        for k in 0..self.records.len() {
            let r = &self.records[k];
            assert!(r.incoming_lock().amount >= r.outgoing_lock().amount + r.fee());
            assert!(r.outgoing_lock().expiration + REVEAL <= r.incoming_lock().expiration);
            assert!(
                r.incoming_lock().expiration <= self.taken_at[k] + WINDOW,
                "a lock outlives the settlement window"
            );
            // The hub never paid out a transfer whose incoming lock went back.
            assert!(
                !(self.check_legs && r.outgoing_leg().paid() && r.incoming_leg().taken_back()),
                "hub paid out and lost the incoming lock: {:?} / {:?}",
                r.incoming_leg(),
                r.outgoing_leg()
            );
            assert!(!self.check_legs || r.stage() != Stage::HubLost);
            let inc = &self.star.hub[&r.payer()];
            if r.outgoing_leg() == Leg::Unlocked && r.incoming_leg() == Leg::Locked {
                assert!(
                    inc.claimed_on_ledger(r.incoming_lock())
                        || (!r.incoming_lock().is_expired(now)
                            && inc.phase() != ChannelPhase::Settled),
                    "hub paid out but can no longer claim the incoming lock"
                );
            }
            // The record agrees with both channels while they are not settled.
            let out = &self.star.hub[&r.payee()];
            if out.phase() != ChannelPhase::Settled {
                assert_eq!(
                    r.outgoing_leg() == Leg::Locked,
                    out.our().locks.get(&r.secrethash()) == Some(r.outgoing_lock())
                );
            }
            if inc.phase() != ChannelPhase::Settled {
                assert_eq!(
                    r.incoming_leg() == Leg::Locked,
                    inc.partner().locks.get(&r.secrethash()) == Some(r.incoming_lock())
                );
            }
        }
        for addr in self.star.order.clone() {
            let hub_ch = &self.star.hub[&addr];
            let dev_ch = &self.star.devices[&addr].channel;
            // Every lock the hub holds from a payer is one it forwarded.
            for lock in hub_ch.partner().locks.as_slice() {
                assert!(
                    self.records
                        .iter()
                        .any(|r| r.incoming_channel() == hub_ch.id() && r.incoming_lock() == lock),
                    "the hub holds a lock of {addr} it did not forward"
                );
            }
            if !self.paused {
                assert_eq!(hub_ch.our(), dev_ch.partner(), "hub side seen by both");
                assert_eq!(hub_ch.partner(), dev_ch.our(), "device side seen by both");
                assert_eq!(hub_ch.phase(), dev_ch.phase(), "phase seen by both");
            }
            for (who, ch) in [(Who::Hub, hub_ch), (Who::Device, dev_ch)] {
                let n = (ch.our().nonce(), ch.partner().nonce());
                let prev = self.nonces.insert((who, addr), n).unwrap_or((0, 0));
                assert!(n.0 >= prev.0 && n.1 >= prev.1, "nonces went back");
            }
        }
    }

    /// Closes, settles and unlocks everything, then checks who got what.
    fn finish(&mut self) {
        self.settle_everything();
        self.check_outcome(true);
    }

    /// The hub closes every channel still open; time runs until every channel is settled
    /// and every lock has expired, the monitors doing the rest.
    fn settle_everything(&mut self) {
        for device in self.star.order.clone() {
            self.close(device, Closer::Hub);
        }
        let last_expiry = self
            .star
            .hub
            .values()
            .flat_map(|ch| [ch.our(), ch.partner()])
            .flat_map(|end| end.locks.as_slice().iter().map(|l| l.expiration))
            .max()
            .unwrap_or(0);
        let horizon = (self.last_close + WINDOW + 1).max(last_expiry) + 2;
        self.advance_to(horizon);
    }

    /// Who got what, once everything is settled. `records` also checks that every record
    /// ended as the ledger decided and that the core refused nothing the driver asked.
    fn check_outcome(&self, records: bool) {
        let hub = self.hub_addr();
        let ledger = &self.star.ledger;
        for device in &self.star.order {
            assert_eq!(self.ledger_phase(*device), LedgerPhase::Settled);
        }
        let left: Vec<_> = ledger.unlock_entries().collect();
        assert!(left.is_empty(), "tokens left kept back: {left:?}");
        assert_eq!(ledger.contract_balance(), U256::ZERO);
        assert!(ledger.conservation_holds());
        let total_deposits = self.deposits.values().fold(self.hub_deposit, |a, b| a + *b);
        let total_paid = self
            .star
            .order
            .iter()
            .chain([&hub])
            .fold(U256::ZERO, |a, who| a + ledger.token_balance(*who));
        assert_eq!(total_paid, total_deposits, "value conserved");
        assert!(
            !records || self.driver_errors.is_empty(),
            "the core refused what the hub's driver was asked to do: {:#?}",
            self.driver_errors
        );

        // Per transfer: where its two locks ended, on the ledger or off-chain.
        let mut moved: BTreeMap<Address, (U256, U256)> = BTreeMap::new(); // (gained, paid)
        for r in &self.records {
            let h = r.secrethash();
            let (inc, out) = (r.incoming_lock(), r.outgoing_lock());
            let payer_paid = self.offchain_paid.contains(&(r.incoming_channel(), h))
                || self.ledger_fates.get(&(r.incoming_channel(), r.payer(), h)) == Some(&true);
            let payee_paid = self.offchain_paid.contains(&(r.outgoing_channel(), h))
                || self.ledger_fates.get(&(r.outgoing_channel(), hub, h)) == Some(&true);
            let what = format!(
                "transfer {h} of {} from {} to {} ({:?} / {:?}, registered at {:?}, \
                 locks expire at {} / {})",
                inc.amount,
                r.payer(),
                r.payee(),
                r.incoming_leg(),
                r.outgoing_leg(),
                ledger.secret_registered_at(&h),
                inc.expiration,
                out.expiration
            );
            assert!(
                !payee_paid || payer_paid,
                "the hub paid for nothing: {what}"
            );
            if payer_paid && !payee_paid && !self.stale.contains(&r.payee()) {
                let late = ledger
                    .secret_registered_at(&h)
                    .is_some_and(|t| t >= out.expiration && t < inc.expiration);
                assert!(
                    late,
                    "the payer paid for a transfer whose payee was not paid: {what}"
                );
            }
            // The record's legs say the same.
            if records {
                assert_ne!(r.incoming_leg(), Leg::Locked, "undecided: {what}");
                assert_eq!(r.incoming_leg().paid(), payer_paid, "incoming leg: {what}");
            }
            if records && !self.stale.contains(&r.payee()) {
                assert_ne!(r.outgoing_leg(), Leg::Locked, "undecided: {what}");
                assert_eq!(r.outgoing_leg().paid(), payee_paid, "outgoing leg: {what}");
            }
            if payer_paid {
                moved.entry(r.payer()).or_default().1 += inc.amount;
                moved.entry(hub).or_default().0 += inc.amount;
            }
            if payee_paid {
                moved.entry(hub).or_default().1 += out.amount;
                moved.entry(r.payee()).or_default().0 += out.amount;
            }
        }
        // The hub ends with its deposits plus what its transfers earned: never less (devices
        // that closed with a stale proof of the hub's only give it more).
        let (gained, paid) = moved.get(&hub).copied().unwrap_or_default();
        let hub_final = ledger.token_balance(hub);
        assert!(gained >= paid, "the hub's transfers lost money");
        assert!(
            hub_final >= self.hub_deposit,
            "the hub ends below its deposits"
        );
        if self.stale.is_empty() {
            assert_eq!(
                hub_final + paid,
                self.hub_deposit + gained,
                "the hub's payout"
            );
        } else {
            assert!(
                hub_final + paid >= self.hub_deposit + gained,
                "the hub's payout"
            );
        }
        // Every device: its deposit, minus the forwarded locks it paid, plus those it was
        // paid. A refused lock costs nothing.
        for (device, deposit) in &self.deposits {
            let (gained, paid) = moved.get(device).copied().unwrap_or_default();
            let got = ledger.token_balance(*device) + paid;
            if self.stale.contains(device) {
                assert!(got <= *deposit + gained, "payout of stale closer {device}");
            } else {
                assert_eq!(got, *deposit + gained, "payout of {device}");
            }
        }
    }
}

impl Sim {
    /// What happened in this case, one line: how often each interesting path was taken.
    fn print_stats(&mut self) {
        let mut stats = std::mem::take(&mut self.stats);
        let count = |f: &dyn Fn(&MediatedTransfer) -> bool| {
            self.records.iter().filter(|r| f(r)).count() as u64
        };
        stats.insert("records", count(&|_| true));
        stats.insert(
            "incoming settled to hub",
            count(&|r| r.incoming_leg() == Leg::SettledToReceiver),
        );
        stats.insert(
            "incoming settled to payer",
            count(&|r| r.incoming_leg() == Leg::SettledToSender),
        );
        stats.insert(
            "outgoing settled to payee",
            count(&|r| r.outgoing_leg() == Leg::SettledToReceiver),
        );
        stats.insert("completed", count(&|r| r.stage() == Stage::Completed));
        stats.insert("ledger-decided locks", self.ledger_fates.len() as u64);
        eprintln!("STATS {stats:?}");
    }
}

fn pick<T>(items: &[T], i: usize) -> Option<&T> {
    (!items.is_empty()).then(|| &items[i % items.len()])
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

type Scenario = (Vec<(u64, u64, bool)>, Vec<usize>, u64, u32, Vec<Op>);

fn scenario() -> impl Strategy<Value = Scenario> {
    (3usize..=4).prop_flat_map(|n| {
        (
            prop::collection::vec((1u64..300, 0u64..300, any::<bool>()), n),
            prop::collection::vec(0..n, 0..=2),
            0u64..3,
            prop_oneof![Just(0u32), 1u32..50_000],
            prop::collection::vec(op(n), 1..120),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), .. ProptestConfig::default() })]

    #[test]
    fn colluding_payers_and_payees_on_the_ledger_never_cost_the_hub_or_an_honest_payer(
        (devices, grabbers, flat, ppm, ops) in scenario(),
    ) {
        let fees = FeePolicy { flat: u(flat), proportional_ppm: ppm };
        let mut sim = Sim::with_grabbers(&devices, &grabbers, fees);
        for op in &ops {
            sim.apply(op);
        }
        sim.finish();
        if std::env::var("MEDIATION_STATS").is_ok() {
            sim.print_stats();
        }
    }
}

// ----- regressions -----

/// Payer (device 0) and payee (device 1), 1,000 each in their channels and the hub 1,000 in
/// each; fee 1 + 1 % (2 on 100).
fn two(payer_diligent: bool, payee_diligent: bool) -> (Sim, Address, Address) {
    let sim = Sim::new(
        &[
            (1_000, 1_000, payer_diligent),
            (1_000, 1_000, payee_diligent),
        ],
        FeePolicy {
            flat: u(1),
            proportional_ppm: 10_000,
        },
    );
    let (p, q) = (sim.star.addr(0), sim.star.addr(1));
    (sim, p, q)
}

fn payouts(sim: &Sim, p: Address, q: Address) -> [U256; 3] {
    let l = &sim.star.ledger;
    [
        l.token_balance(sim.hub_addr()),
        l.token_balance(p),
        l.token_balance(q),
    ]
}

/// Bug 1, as found: the payer locks for the payee's request with an expiry far beyond the
/// settlement window, the hub forwards, the payer closes at once, the hub contests and
/// settles, the lock is kept back and unlocked back to the payer (its secret is not
/// registered), and only then the payee reveals the secret and the hub pays it.
///
/// Fixed first by the expiry bound: such a lock is refused (`ExpiryTooLate`). A lock within
/// the bound has expired by the time the closed channel can settle, so the same moves lead
/// nowhere: the payer's early unlock takes back a lock that is dead anyway, and the late
/// reveal is refused. Everyone ends with its deposit.
#[test]
fn bug1_a_colluding_close_and_early_unlock_cost_the_hub_nothing() {
    let (mut sim, p, q) = two(false, false);
    let t0 = sim.star.now;
    let (_, refused) = sim.pay(p, q, 100, 102, 2 * WINDOW + 50);
    assert_eq!(
        refused,
        Err(MediationError::Refused(MediationRefusal::ExpiryTooLate {
            expiration: t0 + 2 * WINDOW + 50,
            latest: t0 + WINDOW,
            now: t0,
            settlement_window: WINDOW,
        }))
    );
    assert!(sim.star.hub_channel(p).partner().locks.is_empty());
    assert!(sim.star.device_channel(p).our().locks.is_empty());

    // The longest lock the hub takes.
    let (secret, k) = sim.pay(p, q, 100, 102, WINDOW);
    let k = k.unwrap();
    let lock = *sim.records[k].incoming_lock();
    assert_eq!(lock.expiration, t0 + WINDOW);

    // The payer closes at once; the hub contests with the payer's proof carrying the lock.
    sim.close(p, Closer::Device);
    sim.tick();
    let id = sim.id(p);
    let stored = sim
        .star
        .ledger
        .channel(id)
        .unwrap()
        .participant(p)
        .unwrap()
        .nonce();
    assert_eq!(
        stored,
        sim.star.hub_channel(p).partner().nonce(),
        "hub contested"
    );

    // The window passes; the payer settles and unlocks at once, before anyone else.
    sim.advance_to(t0 + WINDOW);
    sim.star.now += 1;
    let settle_at = sim.star.now;
    assert!(lock.is_expired(settle_at), "the lock is dead at settlement");
    let record = sim.star.ledger.channel(id).unwrap().clone();
    let tx = sim
        .star
        .device_channel(p)
        .settle_transaction(&record, |_| None)
        .unwrap();
    sim.star.ledger.settle_channel(p, &tx, settle_at).unwrap();
    sim.feed();
    sim.unlock_kept_back(p, p, p);
    assert!(
        !sim.ledger_fates[&(id, p, lock.secrethash)],
        "back to the payer"
    );

    // Only now does the payee reveal: refused, the hub pays nothing.
    sim.star.now += 1;
    let k_record = sim.records[k].clone();
    assert_eq!(sim.reveal(k), Err(MediationError::OutgoingExpired));
    assert_eq!(sim.records[k], k_record);
    // Nor does the secret on the ledger help the payee: its lock expired before.
    sim.payee_registers(secret.hash()).unwrap();
    sim.tick();
    sim.check();
    sim.finish();
    assert_eq!(payouts(&sim, p, q), [u(2_000), u(1_000), u(1_000)]);
}

/// The payer closes on the ledger at `t0` while the hub's view of the ledger lags 30 s behind
/// its clock, and pays through the hub at `t0 + 30` with the longest lock the hub takes then
/// (`t0 + 130`): the payer's channel can settle at `t0 + 101`, with the lock still alive.
/// Returns the record's index and the payment's secret.
fn close_unseen_then_pay(sim: &mut Sim, p: Address, q: Address) -> (usize, Secret) {
    let t0 = sim.star.now;
    sim.paused = true;
    let id = sim.id(p);
    let mut early = sim.star.device_channel(p).clone();
    let tx = early.close(&sim.star.devices[&p].key).unwrap();
    sim.star
        .ledger
        .close_channel(p, id, &tx.partner_proof, &tx.closing_signature, t0)
        .unwrap();
    sim.star.now = t0 + 30;
    let (secret, k) = sim.pay(p, q, 100, 102, WINDOW);
    let k = k.unwrap();
    assert_eq!(sim.records[k].incoming_lock().expiration, t0 + 30 + WINDOW);
    sim.paused = false;
    sim.feed();
    sim.tick();
    sim.check();
    let stored = sim
        .star
        .ledger
        .channel(id)
        .unwrap()
        .participant(p)
        .unwrap()
        .nonce();
    assert_eq!(
        stored,
        sim.star.hub_channel(p).partner().nonce(),
        "hub contested"
    );
    (k, secret)
}

/// Defence in depth behind the expiry bound, for a lock still alive when the payer's channel
/// settles (a close the hub had not seen when it took the lock, see `close_unseen_then_pay`):
/// the payer unlocks the lock back to itself right at settlement, then the payee reveals the
/// secret to the hub, in time for its own lock. Refused: the payer's channel settled without
/// the secret on the ledger, so the hub can no longer claim (`check_incoming_claimable`,
/// which catches it even on a record the driver has not brought up to the settlement yet,
/// and the leg `handle_settlement` decides once it has). The hub pays nothing.
///
/// (A payee that registers the secret on the ledger instead still claims its lock there: the
/// hub is safe from that only through the expiry bound, which needs ledger time that does not
/// run ahead of the ledger events the hub has applied.)
#[test]
fn bug1_a_reveal_after_the_payers_channel_settled_without_the_secret_is_refused() {
    let (mut sim, p, q) = two(false, false);
    let t0 = sim.star.now;
    let (k, secret) = close_unseen_then_pay(&mut sim, p, q);
    let id = sim.id(p);
    let lock = *sim.records[k].incoming_lock();
    sim.advance_to(t0 + WINDOW);
    let between_passes = sim.records[k].clone();
    sim.advance(1);
    assert_eq!(sim.ledger_phase(p), LedgerPhase::Settled);
    assert!(!lock.is_expired(sim.star.now), "alive at settlement");
    assert!(
        sim.star
            .ledger
            .pending_unlock(id, p, sim.hub_addr())
            .is_some(),
        "nobody unlocked a lock whose secret may still come"
    );
    sim.unlock_kept_back(p, p, p);
    assert!(
        !sim.ledger_fates[&(id, p, lock.secrethash)],
        "back to the payer"
    );

    sim.star.now += 1;
    assert!(!sim.records[k].outgoing_lock().is_expired(sim.star.now));
    let mut stale = between_passes;
    assert_eq!(stale.incoming_leg(), Leg::Locked);
    assert_eq!(
        stale.handle_secret_reveal(secret, sim.star.hub_channel(p), sim.star.now),
        Err(MediationError::IncomingSettled {
            expiration: lock.expiration
        })
    );
    // Still alive, the lock stays pending in the record until it expires (its fate is then
    // fixed by the registry); meanwhile the settled channel refuses every reveal.
    assert_eq!(sim.records[k].incoming_leg(), Leg::Locked);
    assert_eq!(
        sim.reveal(k),
        Err(MediationError::IncomingSettled {
            expiration: lock.expiration
        })
    );
    assert!(sim.records[k].secret().is_none());
    sim.tick();
    sim.check();
    sim.finish();
    assert_eq!(payouts(&sim, p, q), [u(2_000), u(1_000), u(1_000)]);
}

/// The same lock alive at settlement (`close_unseen_then_pay`), but nobody unlocks early:
/// at settlement neither monitor unlocks the payer's lock while its secret may still come.
/// The payee then registers the secret on the ledger, in time for both locks; the hub's
/// monitor unlocks the payer's lock to the hub, the payee claims its own on the ledger, and
/// the hub ends with its fee. (Had a monitor unlocked at settlement, the lock would have gone
/// back to the payer and the payee's claim would have cost the hub 100.)
///
/// The record does not follow: `handle_settlement` gave the payer the lock at settlement
/// (`SettledToSender`), so it ends `HubLost` and asks to expire a claimed outgoing lock. The
/// outcome is checked on the ledger only.
#[test]
fn bug1_the_monitor_does_not_unlock_a_lock_whose_secret_may_still_come() {
    let (mut sim, p, q) = two(true, true);
    let t0 = sim.star.now;
    let (k, secret) = close_unseen_then_pay(&mut sim, p, q);
    let id = sim.id(p);
    let lock = *sim.records[k].incoming_lock();
    sim.advance_to(t0 + WINDOW + 1);
    assert_eq!(sim.ledger_phase(p), LedgerPhase::Settled);
    assert!(!lock.is_expired(sim.star.now));
    for who in [Who::Hub, Who::Device] {
        let actions = sim.monitor_actions(who, p);
        assert!(
            !actions
                .iter()
                .any(|a| matches!(a, LedgerAction::Unlock { .. })),
            "{who:?} unlocks an undecided lock: {actions:?}"
        );
    }
    assert!(sim
        .star
        .ledger
        .pending_unlock(id, p, sim.hub_addr())
        .is_some());

    sim.star.now += 1;
    sim.payee_registers(secret.hash()).unwrap();
    sim.tick();
    assert_eq!(
        sim.ledger_fates.get(&(id, p, lock.secrethash)),
        Some(&true),
        "the hub's monitor unlocked the claimed lock to the hub"
    );
    sim.check_legs = false;
    sim.settle_everything();
    sim.check_outcome(false);
    assert_eq!(payouts(&sim, p, q), [u(2_002), u(1_000 - 102), u(1_100)]);
}

/// Bug 2, as found: the hub refuses to forward a lock (here the payer offers less than the
/// fee) but, on the old path, had already taken it into the payer's channel. The payee
/// registers the secret on the ledger; the hub then refuses the payer's lock-expired and
/// claims the lock, which it never forwarded. Now the hub takes a lock only together with its
/// forward, the payer takes a refused one back, and the payer keeps its whole deposit.
#[test]
fn bug2_a_refused_forward_costs_the_payer_nothing_when_the_payee_registers_the_secret() {
    let (mut sim, p, q) = two(true, true);
    let t0 = sim.star.now;
    let (secret, refused) = sim.pay(p, q, 100, 101, 60);
    assert_eq!(
        refused,
        Err(MediationError::Refused(MediationRefusal::FeeNotCovered {
            locked: u(101),
            amount: u(100),
            fee: u(2),
        }))
    );
    assert!(sim.star.hub_channel(p).partner().locks.is_empty());
    assert!(sim.star.device_channel(p).our().locks.is_empty());

    sim.payee_registers(secret.hash()).unwrap();
    sim.tick();
    sim.advance_to(t0 + 60 + REVEAL);
    assert_eq!(
        sim.ledger_phase(p),
        LedgerPhase::Opened,
        "the hub closed to claim a lock it never forwarded"
    );
    sim.finish();
    assert_eq!(payouts(&sim, p, q), [u(2_000), u(1_000), u(1_000)]);
}
