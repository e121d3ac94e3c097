//! The ledger's event log: what every operation emitted, numbered 1, 2, 3… with the ledger time
//! of the operation. Drivers follow the ledger by polling `events_since(last_seen_seq)`.
//!
//! The log keeps in memory only the events a driver has not released: a driver that stores each
//! event as its own record calls `release_events_through` once they are persisted and reads
//! older events from its store. Without releases every event stays (the sans-I/O tests rely on
//! that). Kept events are numbered without gaps right after the released ones; loading a
//! persisted log checks that.

use serde::{Deserialize, Serialize};

use crate::locks::Secret;
use crate::primitives::{u256_dec, Address, H256, U256};

/// What happened, mirroring the TokenNetwork and SecretRegistry contract events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerEventKind {
    Minted {
        to: Address,
        #[serde(with = "u256_dec")]
        amount: U256,
    },
    ChannelOpened {
        #[serde(with = "u256_dec")]
        channel_id: U256,
        participant1: Address,
        participant2: Address,
        settlement_timeout: u64,
    },
    Deposit {
        #[serde(with = "u256_dec")]
        channel_id: U256,
        participant: Address,
        #[serde(with = "u256_dec")]
        total_deposit: U256,
    },
    Withdraw {
        #[serde(with = "u256_dec")]
        channel_id: U256,
        participant: Address,
        #[serde(with = "u256_dec")]
        total_withdraw: U256,
    },
    ChannelClosed {
        #[serde(with = "u256_dec")]
        channel_id: U256,
        closing_participant: Address,
        nonce: u64,
        balance_hash: H256,
    },
    NonClosingBalanceProofUpdated {
        #[serde(with = "u256_dec")]
        channel_id: U256,
        closing_participant: Address,
        nonce: u64,
        balance_hash: H256,
    },
    ChannelSettled {
        #[serde(with = "u256_dec")]
        channel_id: U256,
        participant1: Address,
        #[serde(with = "u256_dec")]
        participant1_amount: U256,
        participant1_locksroot: H256,
        participant2: Address,
        #[serde(with = "u256_dec")]
        participant2_amount: U256,
        participant2_locksroot: H256,
    },
    SecretRegistered {
        secrethash: H256,
        secret: Secret,
    },
    ChannelUnlocked {
        #[serde(with = "u256_dec")]
        channel_id: U256,
        receiver: Address,
        sender: Address,
        locksroot: H256,
        #[serde(with = "u256_dec")]
        unlocked_amount: U256,
        #[serde(with = "u256_dec")]
        returned_tokens: U256,
    },
}

impl LedgerEventKind {
    /// The channel the event is about, if it is about one.
    pub fn channel_id(&self) -> Option<U256> {
        match self {
            Self::ChannelOpened { channel_id, .. }
            | Self::Deposit { channel_id, .. }
            | Self::Withdraw { channel_id, .. }
            | Self::ChannelClosed { channel_id, .. }
            | Self::NonClosingBalanceProofUpdated { channel_id, .. }
            | Self::ChannelSettled { channel_id, .. }
            | Self::ChannelUnlocked { channel_id, .. } => Some(*channel_id),
            Self::Minted { .. } | Self::SecretRegistered { .. } => None,
        }
    }
}

impl LedgerEventKind {
    /// Whether the event concerns `who`, given the participants of its channel (`parties`,
    /// for channel events): an event of one of its channels, a mint to it, or a secret
    /// registration (a secret can open a lock in any channel, so every participant must
    /// see it).
    pub fn concerns(&self, who: Address, parties: Option<[Address; 2]>) -> bool {
        match self {
            Self::Minted { to, .. } => *to == who,
            Self::SecretRegistered { .. } => true,
            Self::ChannelOpened {
                participant1,
                participant2,
                ..
            } => *participant1 == who || *participant2 == who,
            _ => parties.is_some_and(|p| p.contains(&who)),
        }
    }
}

/// One numbered event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEvent {
    /// 1, 2, 3… across the whole ledger.
    pub seq: u64,
    /// Ledger time (`now`) of the operation that emitted it.
    pub time: u64,
    pub kind: LedgerEventKind,
}

/// Append-only list of events; `events[i].seq == released + i + 1`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StoredLog", into = "StoredLog")]
pub(crate) struct EventLog {
    /// Number of events released by the driver (they are no longer in memory).
    released: u64,
    events: Vec<LedgerEvent>,
}

/// How a log is written: `{released, events}`; a plain list (the earlier format, nothing
/// released) is still read.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredLog {
    Tail {
        released: u64,
        events: Vec<LedgerEvent>,
    },
    Whole(Vec<LedgerEvent>),
}

impl EventLog {
    /// An empty log that continues after `last_seq` events kept elsewhere.
    pub(crate) fn after(last_seq: u64) -> Self {
        Self {
            released: last_seq,
            events: Vec::new(),
        }
    }

    /// Sequence number of the newest event, 0 when empty.
    pub(crate) fn last_seq(&self) -> u64 {
        self.released
            .saturating_add(u64::try_from(self.events.len()).unwrap_or(u64::MAX))
    }

    /// Sequence number of the newest released event (0 when none was released).
    pub(crate) fn released(&self) -> u64 {
        self.released
    }

    /// Kept events with `seq > after_seq`, oldest first. Released events are not in memory:
    /// for `after_seq < released()` this starts at `released() + 1`.
    pub(crate) fn since(&self, after_seq: u64) -> &[LedgerEvent] {
        let start = usize::try_from(after_seq.saturating_sub(self.released))
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        &self.events[start..]
    }

    /// Drops from memory every event with `seq <= seq` (capped at the newest event).
    pub(crate) fn release_through(&mut self, seq: u64) {
        let n = usize::try_from(seq.saturating_sub(self.released))
            .unwrap_or(usize::MAX)
            .min(self.events.len());
        self.events.drain(..n);
        self.released = self
            .released
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Appends `kinds` in order at time `now` and returns copies of the new events.
    pub(crate) fn append(&mut self, now: u64, kinds: Vec<LedgerEventKind>) -> Vec<LedgerEvent> {
        let start = self.events.len();
        for kind in kinds {
            let seq = self.last_seq().saturating_add(1);
            self.events.push(LedgerEvent {
                seq,
                time: now,
                kind,
            });
        }
        self.events[start..].to_vec()
    }

    fn checked(released: u64, events: Vec<LedgerEvent>) -> Result<Self, String> {
        let mut expected = released;
        for (i, e) in events.iter().enumerate() {
            expected = expected
                .checked_add(1)
                .ok_or_else(|| "event sequence overflows".to_string())?;
            if e.seq != expected {
                return Err(format!(
                    "event at position {i} has seq {}, expected {expected}",
                    e.seq
                ));
            }
        }
        Ok(Self { released, events })
    }
}

impl TryFrom<Vec<LedgerEvent>> for EventLog {
    type Error = String;

    fn try_from(events: Vec<LedgerEvent>) -> Result<Self, Self::Error> {
        Self::checked(0, events)
    }
}

impl TryFrom<StoredLog> for EventLog {
    type Error = String;

    fn try_from(stored: StoredLog) -> Result<Self, Self::Error> {
        match stored {
            StoredLog::Tail { released, events } => Self::checked(released, events),
            StoredLog::Whole(events) => Self::checked(0, events),
        }
    }
}

impl From<EventLog> for StoredLog {
    fn from(log: EventLog) -> Self {
        StoredLog::Tail {
            released: log.released,
            events: log.events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_concerns_its_channels_participants_its_minter_and_everyone_for_secrets() {
        let (a, b, c) = (Address([1; 20]), Address([2; 20]), Address([3; 20]));
        let deposit = LedgerEventKind::Deposit {
            channel_id: U256::from(1u8),
            participant: b,
            total_deposit: U256::from(5u8),
        };
        assert!(deposit.concerns(a, Some([a, b])));
        assert!(!deposit.concerns(c, Some([a, b])));
        assert!(!deposit.concerns(a, None));
        let opened = LedgerEventKind::ChannelOpened {
            channel_id: U256::from(1u8),
            participant1: a,
            participant2: b,
            settlement_timeout: 10,
        };
        assert!(opened.concerns(b, None));
        assert!(!opened.concerns(c, None));
        let minted = LedgerEventKind::Minted {
            to: c,
            amount: U256::from(1u8),
        };
        assert!(minted.concerns(c, None) && !minted.concerns(a, None));
        let secret = LedgerEventKind::SecretRegistered {
            secrethash: H256([9; 32]),
            secret: Secret(H256([8; 32])),
        };
        assert!(secret.concerns(c, None));
    }

    fn minted(n: u8) -> LedgerEventKind {
        LedgerEventKind::Minted {
            to: Address([n; 20]),
            amount: U256::from(n),
        }
    }

    #[test]
    fn numbers_from_one_and_slices_after_a_seq() {
        let mut log = EventLog::default();
        assert_eq!(log.last_seq(), 0);
        assert!(log.since(0).is_empty());
        let new = log.append(7, vec![minted(1), minted(2)]);
        assert_eq!(new.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert!(new.iter().all(|e| e.time == 7));
        log.append(9, vec![minted(3)]);
        assert_eq!(log.last_seq(), 3);
        assert_eq!(log.since(0).len(), 3);
        assert_eq!(log.since(2)[0].seq, 3);
        assert!(log.since(3).is_empty());
        assert!(log.since(u64::MAX).is_empty());
    }

    #[test]
    fn loading_rejects_gaps_in_seq() {
        let mut log = EventLog::default();
        log.append(1, vec![minted(1), minted(2)]);
        let json = serde_json::to_string(&log).unwrap();
        assert_eq!(serde_json::from_str::<EventLog>(&json).unwrap(), log);
        let mut events = log.since(0).to_vec();
        assert!(serde_json::from_str::<EventLog>(&serde_json::to_string(&events).unwrap()).is_ok());
        events.remove(0);
        let json = serde_json::to_string(&events).unwrap();
        assert!(serde_json::from_str::<EventLog>(&json).is_err());
    }

    #[test]
    fn released_events_leave_memory_and_numbering_goes_on() {
        let mut log = EventLog::default();
        log.append(1, vec![minted(1), minted(2), minted(3)]);
        log.release_through(2);
        assert_eq!(log.released(), 2);
        assert_eq!(log.last_seq(), 3);
        assert_eq!(
            log.since(0).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3]
        );
        assert!(log.since(3).is_empty());
        log.release_through(99);
        assert_eq!((log.released(), log.last_seq()), (3, 3));
        assert_eq!(log.append(2, vec![minted(4)])[0].seq, 4);

        let json = serde_json::to_string(&log).unwrap();
        assert_eq!(serde_json::from_str::<EventLog>(&json).unwrap(), log);
        let resumed = EventLog::after(7);
        assert_eq!(resumed.last_seq(), 7);
        assert!(json.contains("\"released\":3"), "{json}");
        let bad = json.replace("\"released\":3", "\"released\":2");
        assert!(serde_json::from_str::<EventLog>(&bad).is_err());
    }
}
