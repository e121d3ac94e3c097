//! The chain follower's persisted state and its records in the store: the ledger mirror, the
//! event cursor with the last event seq and ledger time, and one record per numbered event.
//!
//! Layout (its own namespaces, so a data directory of the embedded ledger is never mistaken
//! for one that follows a chain):
//! - `chain_ledger/cursor` ([`CursorRecord`]): which deployment is followed, the next block to
//!   read, the seq of the last event numbered, the ledger time; small, written whenever the
//!   cursor moves.
//! - `chain_ledger/mirror`: the [`LedgerMirror`] as a whole, written with every poll that
//!   brought events (its size grows with the number of channels; see the module docs of
//!   `super` for why it is one record).
//! - `chain_ledger_events/<seq, 20 digits>`: each numbered event, in the embedded ledger's
//!   event record format (same key, same version), for replay to subscribers.
//!
//! One poll's records are one batch ([`FollowerState::advance`]), so after a crash the cursor,
//! the mirror and the event log always agree: the next poll reads again from the persisted
//! cursor and numbers the same events with the same seqs.

use std::sync::Arc;

use channel_core::ledger::{LedgerEvent, LedgerMirror};
use channel_core::Address;
use serde::{Deserialize, Serialize};
use voltlane_eth::{ChainEvent, EventCursor, MirrorPosition};

use super::error::ChainError;
use crate::ledger::records::{event_key, read_event_in, read_events_in, EVENT_RECORD_VERSION};
use crate::store::{record, KvStore, StoreError, WriteBatch};

/// Namespace of the cursor and mirror records.
pub const NS_CHAIN_LEDGER: &str = "chain_ledger";
pub const KEY_CURSOR: &str = "cursor";
pub const KEY_MIRROR: &str = "mirror";
/// Namespace of the numbered event records, keyed like the embedded ledger's.
pub const NS_CHAIN_EVENTS: &str = "chain_ledger_events";
/// Format version of the cursor and mirror records.
pub const CHAIN_RECORD_VERSION: u8 = 1;

/// The deployment a store follows: what every stored record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentId {
    pub chain_id: u64,
    pub token_network: Address,
}

/// `chain_ledger/cursor`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorRecord {
    pub deployment: DeploymentId,
    /// The start block the store was created with (for the log when the configuration
    /// changes later; the cursor wins).
    pub start_block: u64,
    pub next_block: u64,
    /// Seq of the last numbered event (= the mirror's last seq).
    pub last_seq: u64,
    /// Ledger time: timestamp of the last confirmed block read.
    pub time: u64,
}

/// What the follower knows, all of it durable (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerState {
    pub deployment: DeploymentId,
    pub start_block: u64,
    /// Shared, so that copying the state (for a poll, or a reader) does not copy the mirror.
    pub mirror: Arc<LedgerMirror>,
    pub cursor: EventCursor,
    /// Timestamp of the last confirmed block read (0 before the first poll that read one).
    pub time: u64,
}

/// The outcome of one poll, ready to persist: the next state, the numbered events and the one
/// batch that makes both durable.
#[derive(Debug)]
pub struct Advance {
    pub state: FollowerState,
    pub events: Vec<LedgerEvent>,
    pub batch: WriteBatch,
}

impl FollowerState {
    /// A new follower that starts reading at `start_block`.
    pub fn new(deployment: DeploymentId, start_block: u64) -> Self {
        Self {
            deployment,
            start_block,
            mirror: Arc::new(LedgerMirror::new()),
            cursor: EventCursor::from_block(start_block),
            time: 0,
        }
    }

    /// The seq of the last event numbered (and durable).
    pub fn last_seq(&self) -> u64 {
        self.mirror.last_seq()
    }

    /// The stored state for `deployment`, or a new one starting at `start_block` when the
    /// store holds none. A store that follows another deployment, or whose records do not fit
    /// together, is refused.
    pub fn load(
        store: &dyn KvStore,
        deployment: DeploymentId,
        start_block: u64,
    ) -> Result<Self, ChainError> {
        let Some(bytes) = store.read(NS_CHAIN_LEDGER, KEY_CURSOR)? else {
            return Self::load_fresh(store, deployment, start_block);
        };
        let cursor: CursorRecord =
            record::decode(NS_CHAIN_LEDGER, KEY_CURSOR, CHAIN_RECORD_VERSION, &bytes)?;
        if cursor.deployment != deployment {
            return Err(ChainError::OtherDeployment {
                stored_chain: cursor.deployment.chain_id,
                stored_network: cursor.deployment.token_network,
                configured_chain: deployment.chain_id,
                configured_network: deployment.token_network,
            });
        }
        let mirror: LedgerMirror = match store.read(NS_CHAIN_LEDGER, KEY_MIRROR)? {
            Some(bytes) => {
                record::decode(NS_CHAIN_LEDGER, KEY_MIRROR, CHAIN_RECORD_VERSION, &bytes)?
            }
            None => LedgerMirror::new(),
        };
        if mirror.last_seq() != cursor.last_seq {
            return Err(ChainError::Inconsistent(format!(
                "the cursor record names event {} as the last, the mirror event {}",
                cursor.last_seq,
                mirror.last_seq()
            )));
        }
        if cursor.last_seq > 0 && read_event(store, cursor.last_seq)?.is_none() {
            return Err(ChainError::Inconsistent(format!(
                "event {} named by the cursor record is missing",
                cursor.last_seq
            )));
        }
        if let Some(next) = cursor.last_seq.checked_add(1) {
            if read_event(store, next)?.is_some() {
                return Err(ChainError::Inconsistent(format!(
                    "event {next} is stored beyond the last event {} the cursor names",
                    cursor.last_seq
                )));
            }
        }
        if cursor.start_block != start_block {
            tracing::warn!(
                stored = cursor.start_block,
                configured = start_block,
                next_block = cursor.next_block,
                "the configured start block differs from the one this data directory began \
                 with; continuing from the stored cursor"
            );
        }
        Ok(Self {
            deployment,
            start_block: cursor.start_block,
            mirror: Arc::new(mirror),
            cursor: EventCursor::from_block(cursor.next_block),
            time: cursor.time,
        })
    }

    /// A new state, after checking that the store holds no stray follower records.
    fn load_fresh(
        store: &dyn KvStore,
        deployment: DeploymentId,
        start_block: u64,
    ) -> Result<Self, ChainError> {
        if store.read(NS_CHAIN_LEDGER, KEY_MIRROR)?.is_some()
            || !store.list(NS_CHAIN_EVENTS)?.is_empty()
        {
            return Err(ChainError::Inconsistent(
                "a mirror or event records are stored without a cursor record".into(),
            ));
        }
        Ok(Self::new(deployment, start_block))
    }

    /// Applies one poll (`events` as `poll_events` returned them, the cursor after them and
    /// the timestamp of the last block read, `next.next_block - 1`) to a copy of this state.
    /// `None` when the poll changed nothing (no events, cursor unmoved). On error this state
    /// is untouched and nothing is to be written.
    pub fn advance(
        &self,
        events: Vec<ChainEvent>,
        next: EventCursor,
        block_time: u64,
    ) -> Result<Option<Advance>, ChainError> {
        let position = MirrorPosition {
            mirror: Arc::clone(&self.mirror),
            cursor: self.cursor,
            time: self.time,
        };
        let Some(step) = position.step(events, next, block_time)? else {
            return Ok(None);
        };
        let numbered = step.events;
        let time = step.position.time;
        let state = FollowerState {
            deployment: self.deployment,
            start_block: self.start_block,
            mirror: step.position.mirror,
            cursor: step.position.cursor,
            time,
        };
        let mut batch = WriteBatch::new();
        let cursor = CursorRecord {
            deployment: state.deployment,
            start_block: state.start_block,
            next_block: next.next_block,
            last_seq: state.last_seq(),
            time,
        };
        batch.put(
            NS_CHAIN_LEDGER,
            KEY_CURSOR,
            record::encode(CHAIN_RECORD_VERSION, &cursor)?,
        );
        if !numbered.is_empty() {
            batch.put(
                NS_CHAIN_LEDGER,
                KEY_MIRROR,
                record::encode(CHAIN_RECORD_VERSION, state.mirror.as_ref())?,
            );
            for event in &numbered {
                batch.put(
                    NS_CHAIN_EVENTS,
                    &event_key(event.seq),
                    record::encode(EVENT_RECORD_VERSION, event)?,
                );
            }
        }
        Ok(Some(Advance {
            state,
            events: numbered,
            batch,
        }))
    }
}

/// The stored event with `seq`, if any; a record holding another seq is corrupt.
pub fn read_event(store: &dyn KvStore, seq: u64) -> Result<Option<LedgerEvent>, StoreError> {
    read_event_in(store, NS_CHAIN_EVENTS, seq)
}

/// Stored events `from..=to`, oldest first; a missing one is an error (the log has no gaps).
pub fn read_events(
    store: &dyn KvStore,
    from: u64,
    to: u64,
) -> Result<Vec<LedgerEvent>, StoreError> {
    read_events_in(store, NS_CHAIN_EVENTS, from, to)
}
