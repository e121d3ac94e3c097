//! The token-network ledger against the Raiden v0.50 rules: a happy path for every operation, a
//! test for every rejection (exact error, ledger unchanged), conservation after every step, and
//! a serde round trip.

// Helpers outside `#[test]` functions are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used)]

#[path = "ledger_rules/close_settle.rs"]
mod close_settle;
#[path = "ledger_rules/cooperative.rs"]
mod cooperative;
#[path = "ledger_rules/faucet.rs"]
mod faucet;
#[path = "ledger_rules/records.rs"]
mod records;
#[path = "ledger_rules/unlock.rs"]
mod unlock;

use unlock::locks_world;

use channel_core::crypto::CryptoError;
use channel_core::ledger::{
    ChannelPhase, Ledger, LedgerConfig, LedgerError, LedgerEvent, LedgerEventKind,
    SettleTransaction,
};
use channel_core::locks::{pack_locks, LockDecodeError};
use channel_core::settlement::{settle_amounts, SettlementInput};
use channel_core::{
    Address, BalanceData, BalanceProof, Domain, HashTimeLock, LocalSigner, Secret, Signature,
    SignedBalanceProof, Signer, WithdrawProof, EMPTY_LOCKSROOT, H256, U256,
};

const TIMEOUT: u64 = 100;
const OPENED_AT: u64 = 10;

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn key(n: u8) -> LocalSigner {
    channel_core::testing::test_signer(n)
}

fn domain() -> Domain {
    Domain {
        chain_id: u(337),
        token_network_address: Address([0xaa; 20]),
    }
}

fn other_domain() -> Domain {
    Domain {
        chain_id: u(1),
        ..domain()
    }
}

/// A ledger plus three keys: `a` and `b` share channel 1, `c` is a third party.
struct World {
    l: Ledger,
    a: LocalSigner,
    b: LocalSigner,
    c: LocalSigner,
}

impl World {
    /// Minted 1000 each; channel 1 between a and b with deposits a = 100, b = 50.
    fn new() -> Self {
        let mut w = Self {
            l: Ledger::new(LedgerConfig {
                domain: domain(),
                settlement_timeout: TIMEOUT,
            }),
            a: key(1),
            b: key(2),
            c: key(3),
        };
        let (a, b, c) = (w.a.address(), w.b.address(), w.c.address());
        for who in [a, b, c] {
            w.l.mint(who, u(1000), 1).unwrap();
            check(&w.l);
        }
        assert_eq!(w.l.open_channel(a, b, OPENED_AT).unwrap(), u(1));
        check(&w.l);
        w.ok(|l| l.set_total_deposit(a, u(1), a, u(100), 11));
        w.ok(|l| l.set_total_deposit(b, u(1), b, u(50), 12));
        w
    }

    fn addr(&self) -> (Address, Address, Address) {
        (self.a.address(), self.b.address(), self.c.address())
    }

    /// Runs an operation that must succeed; checks its events are the log's tail and that
    /// tokens are conserved.
    fn ok(
        &mut self,
        op: impl FnOnce(&mut Ledger) -> Result<Vec<LedgerEvent>, LedgerError>,
    ) -> Vec<LedgerEvent> {
        let before = self.l.last_event_seq();
        let events = op(&mut self.l).unwrap();
        assert!(!events.is_empty());
        assert_eq!(events.as_slice(), self.l.events_since(before));
        check(&self.l);
        events
    }

    /// Runs an operation that must fail with exactly `expected` and change nothing.
    fn rejected<T: std::fmt::Debug>(
        &mut self,
        expected: LedgerError,
        op: impl FnOnce(&mut Ledger) -> Result<T, LedgerError>,
    ) {
        let before = self.l.clone();
        let err = op(&mut self.l).unwrap_err();
        assert_eq!(err, expected);
        assert!(!err.to_string().is_empty());
        assert_eq!(self.l, before, "a rejected call must not change the ledger");
    }

    fn channel_phase(&self, id: u64) -> ChannelPhase {
        self.l.channel(u(id)).unwrap().phase
    }
}

/// The settle of channel `id` between a and b with the balance data of the proofs that were
/// submitted for each: the ledger, like the contract, stores only their hashes, so whoever
/// settles must know the data.
fn settle_of(id: u64, a: BalanceData, b: BalanceData) -> SettleTransaction {
    SettleTransaction {
        channel_id: u(id),
        balances: [(key(1).address(), a), (key(2).address(), b)],
    }
}

/// Conservation: accounts + contract == minted, and the contract holds what channels and kept
/// locks account for.
fn check(l: &Ledger) {
    let accounts = l.accounts().fold(U256::ZERO, |acc, (_, b)| acc + b);
    assert_eq!(accounts + l.contract_balance(), l.total_supply());
    assert!(l.conservation_holds());
}

fn balance(t: u64, locked: u64, locksroot: H256) -> BalanceData {
    BalanceData {
        transferred_amount: u(t),
        locked_amount: u(locked),
        locksroot,
    }
}

fn proof(signer: &LocalSigner, channel: u64, nonce: u64, data: BalanceData) -> SignedBalanceProof {
    BalanceProof {
        domain: domain(),
        channel_identifier: u(channel),
        nonce,
        balance: data,
        additional_hash: H256([nonce as u8; 32]),
    }
    .sign(signer)
    .unwrap()
}

fn withdraw(channel: u64, participant: Address, total: u64, until: u64) -> WithdrawProof {
    WithdrawProof {
        domain: domain(),
        channel_identifier: u(channel),
        participant,
        total_withdraw: u(total),
        withdrawable_until: until,
    }
}

fn sigs(w: &WithdrawProof, first: &LocalSigner, second: &LocalSigner) -> (Signature, Signature) {
    (w.sign(first).unwrap(), w.sign(second).unwrap())
}

fn wrong_signer(role: &'static str, expected: Address, actual: Address) -> LedgerError {
    LedgerError::BadSignature {
        role,
        source: CryptoError::WrongSigner { expected, actual },
    }
}

/// a closes channel 1 with b's proof `bp` at time `now`.
fn close_by_a(w: &mut World, bp: &SignedBalanceProof, now: u64) -> Vec<LedgerEvent> {
    let sig = bp.counter_sign_close(&w.a).unwrap();
    let a = w.a.address();
    w.ok(|l| l.close_channel(a, u(1), bp, &sig, now))
}
#[test]
fn mint_open_and_deposit_happy_path() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    assert_eq!(w.l.token_balance(a), u(900));
    assert_eq!(w.l.token_balance(b), u(950));
    assert_eq!(w.l.contract_balance(), u(150));
    let ch = w.l.channel(u(1)).unwrap();
    assert_eq!(ch.phase, ChannelPhase::Opened);
    assert_eq!(ch.opened_at, OPENED_AT);
    assert_eq!(ch.participants[0].address, a);
    assert_eq!(ch.participant(b).unwrap().total_deposit, u(50));
    assert_eq!(w.l.open_channel_between(b, a).unwrap().id, u(1));

    // A third party tops up b's deposit and pays for it.
    let ev = w.ok(|l| l.set_total_deposit(c, u(1), b, u(80), 13));
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::Deposit {
            channel_id: u(1),
            participant: b,
            total_deposit: u(80)
        }
    );
    assert_eq!(w.l.token_balance(c), u(970));
    assert_eq!(w.l.open_channel(a, c, 14).unwrap(), u(2));
    check(&w.l);
    assert_eq!(w.l.channels_of(a).len(), 2);
    assert_eq!(w.l.channels_of(b).len(), 1);

    let events = w.l.events_since(0);
    assert_eq!(events.len() as u64, w.l.last_event_seq());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
    }
    assert!(matches!(events[0].kind, LedgerEventKind::Minted { .. }));
    assert_eq!(
        events[3].kind,
        LedgerEventKind::ChannelOpened {
            channel_id: u(1),
            participant1: a,
            participant2: b,
            settlement_timeout: TIMEOUT
        }
    );
    assert_eq!(events[3].time, OPENED_AT);
    assert!(w.l.events_since(w.l.last_event_seq()).is_empty());
}

#[test]
fn open_rejections() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    w.rejected(LedgerError::SelfChannel, |l| l.open_channel(a, a, 20));
    w.rejected(LedgerError::ZeroAddress, |l| {
        l.open_channel(a, Address::ZERO, 20)
    });
    let exists = LedgerError::ChannelExists { channel_id: u(1) };
    w.rejected(exists.clone(), |l| l.open_channel(a, b, 20));
    w.rejected(exists, |l| l.open_channel(b, a, 20));
    assert_eq!(w.l.open_channel(b, c, 20).unwrap(), u(2));
}

#[test]
fn deposit_rejections() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    w.rejected(LedgerError::UnknownChannel(u(9)), |l| {
        l.set_total_deposit(a, u(9), a, u(200), 20)
    });
    let not_participant = LedgerError::NotParticipant {
        channel_id: u(1),
        address: c,
    };
    w.rejected(not_participant, |l| {
        l.set_total_deposit(c, u(1), c, u(200), 20)
    });
    for requested in [100, 99] {
        let err = LedgerError::DepositNotIncreasing {
            current: u(100),
            requested: u(requested),
        };
        w.rejected(err, |l| l.set_total_deposit(a, u(1), a, u(requested), 20));
    }
    let poor = LedgerError::InsufficientTokens {
        who: a,
        needed: u(901),
        available: u(900),
    };
    w.rejected(poor, |l| l.set_total_deposit(a, u(1), a, u(1001), 20));
    close_by_a(&mut w, &SignedBalanceProof::none(domain(), u(1)), 30);
    let closed = LedgerError::WrongPhase {
        channel_id: u(1),
        expected: ChannelPhase::Opened,
        actual: ChannelPhase::Closed,
    };
    w.rejected(closed, |l| l.set_total_deposit(b, u(1), b, u(60), 31));
}

#[test]
fn withdraw_happy_path_and_rejections() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let wd = withdraw(1, a, 30, 50);
    let (sa, sb) = sigs(&wd, &w.a, &w.b);
    let ev = w.ok(|l| l.set_total_withdraw(c, &wd, &sa, &sb, 49));
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::Withdraw {
            channel_id: u(1),
            participant: a,
            total_withdraw: u(30)
        }
    );
    assert_eq!(w.l.token_balance(a), u(930));
    assert_eq!(w.l.contract_balance(), u(120));

    // Replaying the same proof does not withdraw again.
    let again = LedgerError::WithdrawNotIncreasing {
        current: u(30),
        requested: u(30),
    };
    w.rejected(again, |l| l.set_total_withdraw(a, &wd, &sa, &sb, 20));
    let expired = LedgerError::WithdrawExpired { until: 50, now: 50 };
    let wd2 = withdraw(1, a, 40, 50);
    let (sa2, sb2) = sigs(&wd2, &w.a, &w.b);
    w.rejected(expired, |l| l.set_total_withdraw(a, &wd2, &sa2, &sb2, 50));
    // b's withdraw of 121 plus a's 30 exceeds the 150 deposited.
    let greedy = withdraw(1, b, 121, 50);
    let (gb, ga) = sigs(&greedy, &w.b, &w.a);
    let exceeds = LedgerError::WithdrawExceedsDeposit {
        total_withdraw: u(151),
        total_deposit: u(150),
    };
    w.rejected(exceeds, |l| l.set_total_withdraw(b, &greedy, &gb, &ga, 20));

    let foreign = WithdrawProof {
        domain: other_domain(),
        ..wd2
    };
    let (fa, fb) = sigs(&foreign, &w.a, &w.b);
    let wrong_domain = LedgerError::WrongDomain {
        expected: domain(),
        got: other_domain(),
    };
    w.rejected(wrong_domain, |l| {
        l.set_total_withdraw(a, &foreign, &fa, &fb, 20)
    });
    let unknown = withdraw(7, a, 40, 50);
    let (ua, ub) = sigs(&unknown, &w.a, &w.b);
    w.rejected(LedgerError::UnknownChannel(u(7)), |l| {
        l.set_total_withdraw(a, &unknown, &ua, &ub, 20)
    });
    let stranger = withdraw(1, c, 40, 50);
    let (sc, sb3) = sigs(&stranger, &w.c, &w.b);
    let not_participant = LedgerError::NotParticipant {
        channel_id: u(1),
        address: c,
    };
    w.rejected(not_participant, |l| {
        l.set_total_withdraw(c, &stranger, &sc, &sb3, 20)
    });

    // Each of the two signatures must come from the right participant.
    let by_c = wd2.sign(&w.c).unwrap();
    let err = wrong_signer("withdrawing participant", a, c);
    w.rejected(err, |l| l.set_total_withdraw(a, &wd2, &by_c, &sb2, 20));
    let err = wrong_signer("withdraw partner", b, a);
    w.rejected(err, |l| l.set_total_withdraw(a, &wd2, &sa2, &sa2, 20));

    // Only while no balance proof was submitted.
    let bp = proof(&w.b, 1, 1, balance(5, 0, EMPTY_LOCKSROOT));
    close_by_a(&mut w, &bp, 30);
    let closed = LedgerError::WrongPhase {
        channel_id: u(1),
        expected: ChannelPhase::Opened,
        actual: ChannelPhase::Closed,
    };
    w.rejected(closed, |l| l.set_total_withdraw(a, &wd2, &sa2, &sb2, 31));
}
#[test]
fn serde_json_roundtrip_keeps_everything() {
    let (mut w, locks, secrets) = locks_world();
    let (a, b, c) = w.addr();
    w.ok(|l| l.register_secret(c, secrets[0], 200));
    assert_eq!(w.l.open_channel(a, c, 201).unwrap(), u(2));
    w.ok(|l| l.set_total_deposit(c, u(2), c, u(7), 202));

    let json = serde_json::to_string(&w.l).unwrap();
    let back: Ledger = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w.l);
    assert_eq!(
        back.pending_unlock(u(1), a, b),
        w.l.pending_unlock(u(1), a, b)
    );
    assert_eq!(back.secret_registered_at(&secrets[0].hash()), Some(200));
    assert_eq!(back.events_since(0), w.l.events_since(0));

    // The restored ledger keeps working exactly like the original.
    let mut back = back;
    back.unlock(c, u(1), b, a, &pack_locks(&locks), 300)
        .unwrap();
    w.ok(|l| l.unlock(c, u(1), b, a, &pack_locks(&locks), 300));
    assert_eq!(back, w.l);

    let wrong_version = json.replacen("\"version\":1", "\"version\":2", 1);
    assert_ne!(wrong_version, json);
    assert!(serde_json::from_str::<Ledger>(&wrong_version).is_err());
}

#[test]
fn overflow_rejections() {
    // Closing would put the end of the settlement window past u64::MAX.
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let mut json = serde_json::to_value(&w.l).unwrap();
    json["config"]["settlement_timeout"] = u64::MAX.into();
    w.l = serde_json::from_value(json).unwrap();
    let none = SignedBalanceProof::none(domain(), u(1));
    let sig = none.counter_sign_close(&w.a).unwrap();
    let err = LedgerError::Overflow("settlement window end");
    w.rejected(err, |l| l.close_channel(a, u(1), &none, &sig, 30));

    // Cumulative withdraw totals that do not fit in a uint256.
    let mut w = World::new();
    let wd = withdraw(1, a, 20, 100);
    let (s1, s2) = sigs(&wd, &w.a, &w.b);
    w.ok(|l| l.set_total_withdraw(a, &wd, &s1, &s2, 20));
    let huge = WithdrawProof {
        total_withdraw: U256::MAX,
        ..withdraw(1, b, 0, 100)
    };
    let (hb, ha) = sigs(&huge, &w.b, &w.a);
    let err = LedgerError::Overflow("channel total withdraw");
    w.rejected(err, |l| l.set_total_withdraw(b, &huge, &hb, &ha, 21));
    let wa = withdraw(1, a, 1, 100);
    let (aa, ab) = sigs(&wa, &w.a, &w.b);
    let err = LedgerError::Overflow("cooperative settle total withdraw");
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &huge, (&hb, &ha), 21)
    });

    // The channel identifier counter is exhausted.
    let mut json = serde_json::to_value(&w.l).unwrap();
    json["last_channel_id"] = U256::MAX.to_string().into();
    w.l = serde_json::from_value(json).unwrap();
    let err = LedgerError::Overflow("channel identifier");
    w.rejected(err, |l| l.open_channel(b, c, 22));
}
