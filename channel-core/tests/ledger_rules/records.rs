//! Per-record persistence: a store kept up to date only from `take_changes` rebuilds, at every
//! step, a ledger equal to the live one.

use std::collections::BTreeMap;

use channel_core::ledger::{
    ChannelRecord, LedgerChanges, LedgerCounters, LedgerParts, UnlockEntry,
};

use super::*;

/// A model of a driver's store: one entry per record, updated from changes only.
#[derive(Default)]
struct Records {
    channels: BTreeMap<U256, ChannelRecord>,
    accounts: BTreeMap<Address, U256>,
    secrets: BTreeMap<H256, u64>,
    unlocks: BTreeMap<H256, UnlockEntry>,
    counters: LedgerCounters,
}

impl Records {
    fn apply(&mut self, changes: LedgerChanges) {
        for c in changes.channels {
            self.channels.insert(c.id, c);
        }
        for (who, amount) in changes.accounts {
            if amount.is_zero() {
                self.accounts.remove(&who);
            } else {
                self.accounts.insert(who, amount);
            }
        }
        self.secrets.extend(changes.secrets);
        for (key, entry) in changes.unlocks {
            match entry {
                Some(e) => self.unlocks.insert(key, e),
                None => self.unlocks.remove(&key),
            };
        }
        self.counters = changes.counters;
    }

    fn rebuild(&self, config: &LedgerConfig) -> Ledger {
        Ledger::from_parts(LedgerParts {
            config: config.clone(),
            counters: self.counters.clone(),
            channels: self.channels.values().cloned().collect(),
            accounts: self.accounts.iter().map(|(a, b)| (*a, *b)).collect(),
            secrets: self.secrets.iter().map(|(h, t)| (*h, *t)).collect(),
            unlocks: self.unlocks.values().cloned().collect(),
        })
        .unwrap()
    }

    /// Takes the ledger's changes, then checks the rebuilt ledger equals it (once its events
    /// are released: the rebuilt one keeps none in memory).
    fn sync_and_compare(&mut self, l: &mut Ledger) {
        self.apply(l.take_changes());
        let seq = l.last_event_seq();
        l.release_events_through(seq);
        assert_eq!(self.rebuild(l.config()), *l);
    }
}

#[test]
fn records_from_changes_rebuild_the_ledger_after_every_kind_of_operation() {
    // Everything since creation: mints, open, deposits, close, settle keeping locks.
    let (mut w, locks, secrets) = locks_world();
    let mut records = Records::default();
    records.sync_and_compare(&mut w.l);
    assert_eq!(records.unlocks.len(), 1, "settle kept a lock entry");
    let (a, b, c) = w.addr();

    w.l.register_secret(b, secrets[0], 499).unwrap();
    records.sync_and_compare(&mut w.l);
    assert_eq!(records.secrets.len(), 1);
    w.l.unlock(c, u(1), b, a, &pack_locks(&locks), 1000)
        .unwrap();
    records.sync_and_compare(&mut w.l);
    assert!(records.unlocks.is_empty(), "the unlocked entry is deleted");

    // The settled pair reopens a channel and deposits.
    assert_eq!(w.l.open_channel(a, b, 1001).unwrap(), u(2));
    w.l.set_total_deposit(a, u(2), a, u(5), 1002).unwrap();
    records.sync_and_compare(&mut w.l);

    // An account drained to zero disappears from the records.
    let drained = w.l.token_balance(c);
    w.l.open_channel(c, a, 1003).unwrap();
    w.l.set_total_deposit(c, u(3), c, drained, 1004).unwrap();
    assert_eq!(w.l.token_balance(c), U256::ZERO);
    records.sync_and_compare(&mut w.l);
    assert!(!records.accounts.contains_key(&c));

    // A refused operation leaves nothing to write.
    assert!(w.l.open_channel(c, a, 1005).is_err());
    let nothing = w.l.take_changes();
    assert!(nothing.channels.is_empty() && nothing.accounts.is_empty());
    assert_eq!(nothing.counters, records.counters);
}
