//! The chain follower's persisted state and its records in the store: the ledger mirror, the
//! event cursor with the last event seq and ledger time, and one record per numbered event.
//!
//! Layout (its own namespaces, so a data directory of the embedded ledger is never mistaken
//! for one that follows a chain):
//! - `chain_ledger/cursor` ([`CursorRecord`]): which deployment is followed, the next block to
//!   read, the seq of the last event numbered, the ledger time; small, written whenever the
//!   cursor moves.
//! - the [`LedgerMirror`] in pieces, so that a poll rewrites only what its events touched
//!   (the cost of a poll does not grow with the number of channels):
//!   `chain_ledger_channels/<channel id, 78 digits>` (a [`MirroredChannel`]),
//!   `chain_ledger_secrets/<secrethash>` (its registration time) and `chain_ledger/kept_back`
//!   (the locks kept back at settlement, until unlocked; small).
//! - `chain_ledger_events/<seq, 20 digits>`: each numbered event, in the embedded ledger's
//!   event record format (same key, same version), for replay to subscribers.
//!
//! One poll's records are one batch ([`FollowerState::advance`]), so after a crash the cursor,
//! the mirror and the event log always agree: the next poll reads again from the persisted
//! cursor and numbers the same events with the same seqs.

use std::sync::Arc;

use std::collections::BTreeSet;

use channel_core::ledger::{
    KeptBack, LedgerEvent, LedgerEventKind, LedgerMirror, MirrorParts, MirroredChannel,
};
use channel_core::{Address, H256, U256};
use serde::{Deserialize, Serialize};
use voltlane_eth::{ChainEvent, EventCursor, MirrorPosition};

use super::error::ChainError;
use crate::ledger::records::{event_key, read_event_in, read_events_in, EVENT_RECORD_VERSION};
use crate::store::{record, KvStore, StoreError, WriteBatch};

/// Namespace of the cursor and kept-back records.
pub const NS_CHAIN_LEDGER: &str = "chain_ledger";
pub const KEY_CURSOR: &str = "cursor";
pub const KEY_KEPT_BACK: &str = "kept_back";
/// One record per mirrored channel.
pub const NS_CHAIN_CHANNELS: &str = "chain_ledger_channels";
/// One record per registered secret.
pub const NS_CHAIN_SECRETS: &str = "chain_ledger_secrets";
/// Namespace of the numbered event records, keyed like the embedded ledger's.
pub const NS_CHAIN_EVENTS: &str = "chain_ledger_events";
/// Format version of the cursor and mirror records (2: the mirror in pieces).
pub const CHAIN_RECORD_VERSION: u8 = 2;

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
    /// Ledger time of the last event numbered (the mirror's).
    pub mirror_time: u64,
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
        let mirror = load_mirror(store, &cursor)?;
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
        if !store.list(NS_CHAIN_CHANNELS)?.is_empty()
            || !store.list(NS_CHAIN_SECRETS)?.is_empty()
            || store.read(NS_CHAIN_LEDGER, KEY_KEPT_BACK)?.is_some()
            || !store.list(NS_CHAIN_EVENTS)?.is_empty()
        {
            return Err(ChainError::Inconsistent(
                "mirror or event records are stored without a cursor record".into(),
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
            mirror_time: state.mirror.last_time(),
        };
        batch.put(
            NS_CHAIN_LEDGER,
            KEY_CURSOR,
            record::encode(CHAIN_RECORD_VERSION, &cursor)?,
        );
        if !numbered.is_empty() {
            put_touched(&mut batch, &state.mirror, &numbered)?;
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

/// Writes the mirror's records that `events` touched: their channels, the secrets they
/// registered, the kept-back list if a settle or an unlock changed it.
fn put_touched(
    batch: &mut WriteBatch,
    mirror: &LedgerMirror,
    events: &[LedgerEvent],
) -> Result<(), ChainError> {
    let mut channels = BTreeSet::new();
    let mut kept_back_changed = false;
    for event in events {
        if let Some(id) = event.kind.channel_id() {
            channels.insert(id);
        }
        match &event.kind {
            LedgerEventKind::SecretRegistered { secrethash, .. } => {
                if let Some(at) = mirror.secret_registered_at(secrethash) {
                    batch.put(
                        NS_CHAIN_SECRETS,
                        &secret_key(secrethash),
                        record::encode(CHAIN_RECORD_VERSION, &at)?,
                    );
                }
            }
            LedgerEventKind::ChannelSettled { .. } | LedgerEventKind::ChannelUnlocked { .. } => {
                kept_back_changed = true;
            }
            _ => {}
        }
    }
    for id in channels {
        if let Some(channel) = mirror.mirrored_channel(id) {
            batch.put(
                NS_CHAIN_CHANNELS,
                &channel_key(&id),
                record::encode(CHAIN_RECORD_VERSION, channel)?,
            );
        }
    }
    if kept_back_changed {
        batch.put(
            NS_CHAIN_LEDGER,
            KEY_KEPT_BACK,
            record::encode(CHAIN_RECORD_VERSION, &mirror.kept_back_all().to_vec())?,
        );
    }
    Ok(())
}

/// The mirror put together from its records, with the cursor's last seq and time.
fn load_mirror(store: &dyn KvStore, cursor: &CursorRecord) -> Result<LedgerMirror, ChainError> {
    let mut channels = Vec::new();
    for key in store.list(NS_CHAIN_CHANNELS)? {
        if let Some(bytes) = store.read(NS_CHAIN_CHANNELS, &key)? {
            let channel: MirroredChannel =
                record::decode(NS_CHAIN_CHANNELS, &key, CHAIN_RECORD_VERSION, &bytes)?;
            if channel_key(&channel.record.id) != key {
                return Err(ChainError::Inconsistent(format!(
                    "the record under {NS_CHAIN_CHANNELS}/{key} holds channel {}",
                    channel.record.id
                )));
            }
            channels.push(channel);
        }
    }
    let mut secrets = Vec::new();
    for key in store.list(NS_CHAIN_SECRETS)? {
        if let Some(bytes) = store.read(NS_CHAIN_SECRETS, &key)? {
            let at: u64 = record::decode(NS_CHAIN_SECRETS, &key, CHAIN_RECORD_VERSION, &bytes)?;
            let hash: H256 = key.parse().map_err(|_| {
                ChainError::Inconsistent(format!("{NS_CHAIN_SECRETS}/{key} is not a secret hash"))
            })?;
            secrets.push((hash, at));
        }
    }
    let kept_back: Vec<KeptBack> = match store.read(NS_CHAIN_LEDGER, KEY_KEPT_BACK)? {
        Some(bytes) => {
            record::decode(NS_CHAIN_LEDGER, KEY_KEPT_BACK, CHAIN_RECORD_VERSION, &bytes)?
        }
        None => Vec::new(),
    };
    Ok(LedgerMirror::from_parts(MirrorParts {
        channels,
        secrets,
        kept_back,
        last_seq: cursor.last_seq,
        last_time: cursor.mirror_time,
    }))
}

fn channel_key(id: &U256) -> String {
    format!("{id:0>78}")
}

fn secret_key(secrethash: &H256) -> String {
    secrethash.to_string()
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use channel_core::Secret;

    use super::*;
    use crate::store::MemoryStore;

    const DEPLOYMENT: DeploymentId = DeploymentId {
        chain_id: 31_337,
        token_network: Address([0x71; 20]),
    };

    fn at(block: u64, kind: LedgerEventKind) -> ChainEvent {
        ChainEvent {
            block_number: block,
            log_index: 0,
            tx_hash: H256::ZERO,
            time: 1_000 + block,
            kind,
        }
    }

    fn opened(block: u64, id: u64) -> ChainEvent {
        at(
            block,
            LedgerEventKind::ChannelOpened {
                channel_id: U256::from(id),
                participant1: Address([1; 20]),
                participant2: Address([id as u8 + 1; 20]),
                settlement_timeout: 100,
            },
        )
    }

    async fn commit(store: &MemoryStore, advance: Advance) -> FollowerState {
        store.write(advance.batch).unwrap().durable().await.unwrap();
        advance.state
    }

    fn channel_puts(batch: &WriteBatch) -> Vec<String> {
        batch
            .ops
            .iter()
            .filter(|op| op.namespace == NS_CHAIN_CHANNELS)
            .map(|op| op.key.clone())
            .collect()
    }

    /// A poll writes the records of the channels its events touched, not the whole mirror,
    /// and the store puts the same mirror together again.
    #[tokio::test]
    async fn a_poll_writes_what_it_touched_and_a_reload_puts_the_mirror_together() {
        let store = MemoryStore::new();
        let state = FollowerState::load(&store, DEPLOYMENT, 10).unwrap();
        let first = state
            .advance(
                vec![opened(11, 1), opened(12, 2), opened(12, 3)],
                EventCursor::from_block(13),
                1_012,
            )
            .unwrap()
            .unwrap();
        assert_eq!(channel_puts(&first.batch).len(), 3);
        let state = commit(&store, first).await;

        let secret = Secret(H256([9; 32]));
        let second = state
            .advance(
                vec![
                    at(
                        14,
                        LedgerEventKind::Deposit {
                            channel_id: U256::from(2u8),
                            participant: Address([1; 20]),
                            total_deposit: U256::from(50u8),
                        },
                    ),
                    at(
                        14,
                        LedgerEventKind::SecretRegistered {
                            secrethash: secret.hash(),
                            secret,
                        },
                    ),
                ],
                EventCursor::from_block(15),
                1_014,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            channel_puts(&second.batch),
            vec![channel_key(&U256::from(2u8))],
            "only the channel the deposit touched"
        );
        let state = commit(&store, second).await;

        let reloaded = FollowerState::load(&store, DEPLOYMENT, 10).unwrap();
        assert_eq!(reloaded, state);
        assert_eq!(
            reloaded.mirror.secret_registered_at(&secret.hash()),
            Some(1_014)
        );
        assert_eq!(reloaded.cursor.next_block, 15);
        // A store of another deployment is refused.
        let other = DeploymentId {
            chain_id: 1,
            ..DEPLOYMENT
        };
        assert!(matches!(
            FollowerState::load(&store, other, 10),
            Err(ChainError::OtherDeployment { .. })
        ));
    }

    /// A channel record stored under another channel's key is corruption, named as such.
    #[tokio::test]
    async fn a_channel_record_under_the_wrong_key_is_refused() {
        let store = MemoryStore::new();
        let state = FollowerState::load(&store, DEPLOYMENT, 10).unwrap();
        let advance = state
            .advance(vec![opened(11, 1)], EventCursor::from_block(12), 1_011)
            .unwrap()
            .unwrap();
        let mut batch = advance.batch.clone();
        for op in &mut batch.ops {
            if op.namespace == NS_CHAIN_CHANNELS {
                op.key = channel_key(&U256::from(7u8));
            }
        }
        store.write(batch).unwrap().durable().await.unwrap();
        assert!(matches!(
            FollowerState::load(&store, DEPLOYMENT, 10),
            Err(ChainError::Inconsistent(_))
        ));
    }
}
