//! [`LedgerState`]: what a channel participant reads of the ledger, whichever ledger it is.
//!
//! The embedded [`Ledger`] answers from its own state; a [`LedgerMirror`] answers from the
//! events of a ledger it cannot read directly (a chain). Drivers read through this trait, so
//! the channel monitor gets the same [`LedgerView`](crate::channel::LedgerView) on either.

use std::collections::BTreeSet;

use crate::channel::PendingUnlock;
use crate::primitives::{Address, H256, U256};

use super::{ChannelRecord, Ledger, LedgerMirror};

pub trait LedgerState {
    /// The record of channel `id`, if the ledger has it.
    fn channel_record(&self, id: U256) -> Option<&ChannelRecord>;
    /// Every channel `who` takes part in, by identifier.
    fn channel_records_of(&self, who: Address) -> Vec<&ChannelRecord>;
    /// When the secret of `secrethash` was registered, if it was.
    fn secret_registration(&self, secrethash: &H256) -> Option<u64>;
    /// The tokens of `record`'s channel kept back for an unlock, both directions.
    fn kept_back(&self, record: &ChannelRecord) -> Vec<PendingUnlock>;
    /// Every channel with tokens still kept back for an unlock (costs the number of kept-back
    /// entries, not of channels: a watcher's cheap test before [`LedgerState::kept_back`]).
    fn channels_keeping_back(&self) -> BTreeSet<U256>;
}

impl LedgerState for Ledger {
    fn channel_record(&self, id: U256) -> Option<&ChannelRecord> {
        self.channel(id)
    }

    fn channel_records_of(&self, who: Address) -> Vec<&ChannelRecord> {
        self.channels_of(who)
    }

    fn secret_registration(&self, secrethash: &H256) -> Option<u64> {
        self.secret_registered_at(secrethash)
    }

    fn kept_back(&self, record: &ChannelRecord) -> Vec<PendingUnlock> {
        crate::channel::pending_unlocks(self, record)
    }

    fn channels_keeping_back(&self) -> BTreeSet<U256> {
        self.unlock_entries().map(|e| e.channel_id).collect()
    }
}

impl LedgerState for LedgerMirror {
    fn channel_record(&self, id: U256) -> Option<&ChannelRecord> {
        self.channel(id)
    }

    fn channel_records_of(&self, who: Address) -> Vec<&ChannelRecord> {
        self.channels_of(who)
    }

    fn secret_registration(&self, secrethash: &H256) -> Option<u64> {
        self.secret_registered_at(secrethash)
    }

    fn kept_back(&self, record: &ChannelRecord) -> Vec<PendingUnlock> {
        self.pending_unlocks(record.id)
    }

    fn channels_keeping_back(&self) -> BTreeSet<U256> {
        self.kept_back_all().iter().map(|k| k.channel_id).collect()
    }
}
