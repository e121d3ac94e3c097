//! Per-record persistence support: which records operations changed since the driver last
//! asked ([`Ledger::take_changes`]), and rebuilding a ledger from its records
//! ([`Ledger::from_parts`]).
//!
//! The ledger's state is a set of small records: one per channel, per token account, per
//! registered secret and per kept unlock entry, plus [`LedgerCounters`]. A driver persists only
//! the records an operation touched, so an operation writes O(1) records whatever the size of
//! the ledger. Owns the bookkeeping of touched records and the consistency checks on load; the
//! rules that change records live in the operation modules.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::primitives::{u256_dec, Address, H256, U256};

use super::events::EventLog;
use super::persist::Keyed;
use super::records::{ChannelPhase, ChannelRecord, LedgerConfig, UnlockEntry};
use super::{Ledger, LedgerError, LEDGER_FORMAT_VERSION};

/// The ledger's scalar state, stored as one small record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerCounters {
    #[serde(with = "u256_dec")]
    pub total_supply: U256,
    #[serde(with = "u256_dec")]
    pub contract_balance: U256,
    #[serde(with = "u256_dec")]
    pub last_channel_id: U256,
    /// Sequence number of the newest event (0 before the first).
    pub last_event_seq: u64,
}

/// Keys of the records touched since the last [`Ledger::take_changes`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Touched {
    channels: BTreeSet<U256>,
    accounts: BTreeSet<Address>,
    secrets: BTreeSet<H256>,
    unlocks: BTreeSet<H256>,
}

impl Touched {
    pub(crate) fn channel(&mut self, id: U256) {
        self.channels.insert(id);
    }

    pub(crate) fn account(&mut self, who: Address) {
        self.accounts.insert(who);
    }

    pub(crate) fn secret(&mut self, secrethash: H256) {
        self.secrets.insert(secrethash);
    }

    pub(crate) fn unlock(&mut self, key: H256) {
        self.unlocks.insert(key);
    }
}

/// The current value of every record touched since the last [`Ledger::take_changes`]; a
/// driver writes these (and deletes the absent ones) to bring its store up to date.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LedgerChanges {
    pub channels: Vec<ChannelRecord>,
    /// Token balances; zero means the account record is gone.
    pub accounts: Vec<(Address, U256)>,
    /// Registered secrets with their registration time.
    pub secrets: Vec<(H256, u64)>,
    /// Kept locks by unlock identifier; `None` means the entry is gone (fully unlocked).
    pub unlocks: Vec<(H256, Option<UnlockEntry>)>,
    /// Always present: the counters change with nearly every operation.
    pub counters: LedgerCounters,
}

/// Everything needed to rebuild a ledger: its configuration and all of its records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerParts {
    pub config: LedgerConfig,
    pub counters: LedgerCounters,
    pub channels: Vec<ChannelRecord>,
    /// Token accounts with a non-zero balance.
    pub accounts: Vec<(Address, U256)>,
    pub secrets: Vec<(H256, u64)>,
    pub unlocks: Vec<UnlockEntry>,
}

fn bad(reason: String) -> LedgerError {
    LedgerError::Records(reason)
}

impl Ledger {
    /// The counters record.
    pub fn counters(&self) -> LedgerCounters {
        LedgerCounters {
            total_supply: self.total_supply,
            contract_balance: self.contract_balance,
            last_channel_id: self.last_channel_id,
            last_event_seq: self.last_event_seq(),
        }
    }

    /// The records touched since the previous call (cost: the number of touched records), and
    /// starts tracking afresh.
    pub fn take_changes(&mut self) -> LedgerChanges {
        let touched = std::mem::take(&mut self.touched);
        LedgerChanges {
            channels: touched
                .channels
                .iter()
                .filter_map(|id| self.channels.get(id).cloned())
                .collect(),
            accounts: touched
                .accounts
                .iter()
                .map(|who| (*who, self.token_balance(*who)))
                .collect(),
            secrets: touched
                .secrets
                .iter()
                .filter_map(|h| self.secrets.get(h).map(|at| (*h, *at)))
                .collect(),
            unlocks: touched
                .unlocks
                .iter()
                .map(|key| (*key, self.unlocks.get(key).cloned()))
                .collect(),
            counters: self.counters(),
        }
    }

    /// Marks every record as touched, so the next [`Self::take_changes`] returns the whole
    /// state (used once, to convert a snapshot into records).
    pub fn touch_everything(&mut self) {
        let mut touched = Touched::default();
        touched.channels.extend(self.channels.keys().copied());
        touched.accounts.extend(self.balances.keys().copied());
        touched.secrets.extend(self.secrets.keys().copied());
        touched.unlocks.extend(self.unlocks.keys().copied());
        self.touched = touched;
    }

    /// Rebuilds a ledger from its records. The event log starts empty after
    /// `counters.last_event_seq` (older events live in the driver's store). Refuses records
    /// that contradict each other: duplicates, channel ids beyond the last one, two unsettled
    /// channels for one pair, or tokens that do not add up.
    pub fn from_parts(parts: LedgerParts) -> Result<Self, LedgerError> {
        let LedgerParts {
            config,
            counters,
            channels: channel_list,
            accounts,
            secrets: secret_list,
            unlocks: unlock_list,
        } = parts;
        let mut channels = BTreeMap::new();
        let mut unsettled_pairs = BTreeMap::new();
        for channel in channel_list {
            let id = channel.id;
            if id.is_zero() || id > counters.last_channel_id {
                return Err(bad(format!(
                    "channel {id} is outside 1..={}",
                    counters.last_channel_id
                )));
            }
            if channel.phase != ChannelPhase::Settled
                && unsettled_pairs
                    .insert(channel.participants_hash(), id)
                    .is_some()
            {
                return Err(bad(format!(
                    "channel {id} is a second unsettled channel of its pair"
                )));
            }
            if channels.insert(id, channel).is_some() {
                return Err(bad(format!("channel {id} appears twice")));
            }
        }
        let mut balances = BTreeMap::new();
        for (who, amount) in accounts {
            if amount.is_zero() {
                continue;
            }
            if balances.insert(who, amount).is_some() {
                return Err(bad(format!("account {who} appears twice")));
            }
        }
        let mut secrets = BTreeMap::new();
        for (hash, at) in secret_list {
            if secrets.insert(hash, at).is_some() {
                return Err(bad(format!("secret {hash} appears twice")));
            }
        }
        let mut unlocks = BTreeMap::new();
        for entry in unlock_list {
            let key = entry.key();
            if unlocks.insert(key, entry).is_some() {
                return Err(bad(format!("unlock entry {key} appears twice")));
            }
        }
        let ledger = Self {
            version: LEDGER_FORMAT_VERSION,
            config,
            balances,
            total_supply: counters.total_supply,
            contract_balance: counters.contract_balance,
            last_channel_id: counters.last_channel_id,
            channels,
            unsettled_pairs,
            secrets,
            unlocks,
            events: EventLog::after(counters.last_event_seq),
            touched: Touched::default(),
        };
        if !ledger.conservation_holds() {
            return Err(bad(
                "token accounts, channels and kept locks do not add up to the supply".into(),
            ));
        }
        Ok(ledger)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::funded;
    use super::*;

    fn parts_of(ledger: &mut Ledger) -> LedgerParts {
        ledger.touch_everything();
        let changes = ledger.take_changes();
        LedgerParts {
            config: ledger.config().clone(),
            counters: changes.counters,
            channels: changes.channels,
            accounts: changes.accounts,
            secrets: changes.secrets,
            unlocks: changes.unlocks.into_iter().filter_map(|(_, e)| e).collect(),
        }
    }

    #[test]
    fn an_operation_reports_exactly_the_records_it_touched() {
        let (mut l, a, b) = funded();
        let _ = l.take_changes();
        let (a, b) = (
            crate::crypto::Signer::address(&a),
            crate::crypto::Signer::address(&b),
        );
        let one = U256::from(1u8);
        l.set_total_deposit(b, one, b, U256::from(30u8), 1).unwrap();
        let changes = l.take_changes();
        assert_eq!(changes.channels.len(), 1);
        assert_eq!(
            changes.channels[0].participants[1].total_deposit,
            U256::from(30u8)
        );
        assert_eq!(changes.accounts, vec![(b, U256::from(70u8))]);
        assert!(changes.secrets.is_empty() && changes.unlocks.is_empty());
        assert_eq!(changes.counters.last_event_seq, l.last_event_seq());
        assert_eq!(changes.counters.contract_balance, U256::from(70u8));

        // A refused operation touches nothing.
        assert!(l.set_total_deposit(a, one, a, U256::from(1u8), 2).is_err());
        let none = l.take_changes();
        assert!(none.channels.is_empty() && none.accounts.is_empty());
    }

    #[test]
    fn rebuilt_from_its_records_the_ledger_is_the_same() {
        let (mut l, _, _) = funded();
        let mut rebuilt = Ledger::from_parts(parts_of(&mut l)).unwrap();
        let seq = l.last_event_seq();
        l.release_events_through(seq);
        assert_eq!(rebuilt, l);
        // Both go on identically.
        let b = rebuilt.channel(U256::from(1u8)).unwrap().participants[1].address;
        let next_a = l
            .open_channel(b, crate::primitives::Address([9; 20]), 3)
            .unwrap();
        let next_b = rebuilt
            .open_channel(b, crate::primitives::Address([9; 20]), 3)
            .unwrap();
        assert_eq!(next_a, next_b);
        assert_eq!(rebuilt, l);
    }

    #[test]
    fn contradictory_records_are_refused() {
        let (mut l, _, _) = funded();
        let good = parts_of(&mut l);

        let mut twice = good.clone();
        twice.channels.push(twice.channels[0].clone());
        assert!(matches!(
            Ledger::from_parts(twice),
            Err(LedgerError::Records(_))
        ));

        let mut beyond = good.clone();
        beyond.counters.last_channel_id = U256::ZERO;
        assert!(matches!(
            Ledger::from_parts(beyond),
            Err(LedgerError::Records(_))
        ));

        let mut minted_more = good.clone();
        minted_more.counters.total_supply = U256::from(1u8);
        assert!(matches!(
            Ledger::from_parts(minted_more),
            Err(LedgerError::Records(_))
        ));

        let mut lost_account = good;
        lost_account.accounts.pop();
        assert!(matches!(
            Ledger::from_parts(lost_account),
            Err(LedgerError::Records(_))
        ));
    }
}
