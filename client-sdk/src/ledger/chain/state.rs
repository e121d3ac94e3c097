//! The device's chain follower state: the [`LedgerMirror`] of its own channels, the event
//! cursor, the ledger time, and the numbered events the channel has not applied yet; with
//! its one store record ([`ChainFollowerRecord`]).
//!
//! Only the events that concern the device are kept: its channels' events (the
//! `ChannelOpened` that names it, then every event of that channel), mints to it and every
//! secret registration (a secret can open a lock in any channel). They are filtered before
//! they are numbered, so the seqs are the device's own, consecutive, and a poll from the
//! same persisted state numbers the same events alike.
//!
//! One poll ([`FollowerState::advance`]) yields the next state and the one record that makes
//! it durable; until that record is written, the previous state is the durable one and the
//! next poll reads the same blocks again.

use std::collections::BTreeMap;
use std::sync::Arc;

use channel_core::ledger::{LedgerEvent, LedgerMirror};
use channel_core::primitives::{Address, U256};
use voltlane_eth::{ChainEvent, EventCursor, MirrorPosition};

use super::error::ChainError;
use crate::store::{ChainFollowerRecord, DeploymentId, DeviceStore};

/// What the follower knows (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerState {
    pub deployment: DeploymentId,
    pub start_block: u64,
    /// Shared, so copying the state for a poll does not copy the mirror.
    pub mirror: Arc<LedgerMirror>,
    pub cursor: EventCursor,
    /// Timestamp of the last confirmed block read (0 before the first poll that read one).
    pub time: u64,
    /// Numbered events not yet applied to the channel when the state was written, oldest
    /// first.
    pub undelivered: Vec<LedgerEvent>,
}

/// One poll, ready to persist: the next state, the events it numbered and its record.
#[derive(Debug)]
pub struct Advance {
    pub state: FollowerState,
    pub events: Vec<LedgerEvent>,
    pub record: ChainFollowerRecord,
}

/// Where a new follower starts reading: the start block the hub announced, but never later
/// than the head at the device's first connect. The start block is only the hub's word; a
/// hub announcing a future block could otherwise hide its own close of the device's channel
/// (opened after this connect) from the device's follower until the contest window is over.
/// An earlier announced block only costs more reading.
pub fn first_block_to_read(announced: u64, head: u64) -> u64 {
    announced.min(head)
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
            undelivered: Vec::new(),
        }
    }

    /// Seq of the last numbered event (0 = none).
    pub fn last_seq(&self) -> u64 {
        self.mirror.last_seq()
    }

    /// The stored state for `deployment`, or a new one at `start_block` when the store has
    /// none. A store that follows another deployment, or whose record contradicts itself,
    /// is refused.
    pub fn load(
        store: &DeviceStore,
        deployment: DeploymentId,
        start_block: u64,
    ) -> Result<Self, ChainError> {
        let Some(record) = store.chain_follower()? else {
            return Ok(Self::new(deployment, start_block));
        };
        if record.deployment != deployment {
            return Err(ChainError::OtherDeployment {
                stored_chain: record.deployment.chain_id,
                stored_network: record.deployment.token_network,
                chain: deployment.chain_id,
                network: deployment.token_network,
            });
        }
        let last = record.mirror.last_seq();
        let mut previous = 0;
        for e in &record.undelivered {
            if e.seq <= previous || e.seq > last {
                return Err(ChainError::Inconsistent(format!(
                    "undelivered event {} is out of order or beyond the mirror's last event {last}",
                    e.seq
                )));
            }
            previous = e.seq;
        }
        if record.next_block < record.start_block {
            return Err(ChainError::Inconsistent(format!(
                "the cursor (block {}) is before the start block {}",
                record.next_block, record.start_block
            )));
        }
        if record.start_block != start_block {
            tracing::warn!(
                stored = record.start_block,
                announced = start_block,
                next_block = record.next_block,
                "the hub announces another start block than this store began with; \
                 continuing from the stored cursor"
            );
        }
        Ok(Self {
            deployment,
            start_block: record.start_block,
            mirror: Arc::new(record.mirror),
            cursor: EventCursor::from_block(record.next_block),
            time: record.time,
            undelivered: record.undelivered,
        })
    }

    /// The record that makes this state durable.
    pub fn record(&self) -> ChainFollowerRecord {
        ChainFollowerRecord {
            deployment: self.deployment,
            start_block: self.start_block,
            next_block: self.cursor.next_block,
            time: self.time,
            mirror: LedgerMirror::clone(&self.mirror),
            undelivered: self.undelivered.clone(),
        }
    }

    /// The undelivered events after `seq`.
    pub fn undelivered_after(&self, seq: u64) -> Vec<LedgerEvent> {
        self.undelivered
            .iter()
            .filter(|e| e.seq > seq)
            .cloned()
            .collect()
    }

    /// Applies one poll to a copy of this state: `events` as `poll_events` returned them,
    /// `next` the cursor after them, `block_time` the timestamp of the last block read
    /// (`next.next_block - 1`), `me` the device, `delivered` the channel's last applied seq
    /// (older undelivered events are dropped). `None` when the poll changed nothing. On
    /// error this state is untouched and nothing is to be written.
    pub fn advance(
        &self,
        me: Address,
        events: Vec<ChainEvent>,
        next: EventCursor,
        block_time: u64,
        delivered: u64,
    ) -> Result<Option<Advance>, ChainError> {
        let position = MirrorPosition {
            mirror: Arc::clone(&self.mirror),
            cursor: self.cursor,
            time: self.time,
        };
        let events = concerning(me, &self.mirror, events);
        let Some(step) = position.step(events, next, block_time)? else {
            return Ok(None);
        };
        let numbered = step.events;
        let (mirror, time) = (step.position.mirror, step.position.time);
        let mut undelivered = self.undelivered_after(delivered);
        undelivered.extend(numbered.iter().cloned());
        let state = FollowerState {
            deployment: self.deployment,
            start_block: self.start_block,
            mirror,
            cursor: next,
            time,
            undelivered,
        };
        let record = state.record();
        Ok(Some(Advance {
            state,
            events: numbered,
            record,
        }))
    }
}

/// The events of one poll that concern `me` (see the module docs), in order. The channels of
/// `me` are those `mirror` has plus those opened earlier in the same poll.
pub fn concerning(me: Address, mirror: &LedgerMirror, events: Vec<ChainEvent>) -> Vec<ChainEvent> {
    let mut ours: BTreeMap<U256, [Address; 2]> = mirror
        .channels_of(me)
        .into_iter()
        .map(|r| (r.id, [r.participants[0].address, r.participants[1].address]))
        .collect();
    events
        .into_iter()
        .filter(|e| {
            let parties = e.kind.channel_id().and_then(|id| ours.get(&id).copied());
            let keep = e.kind.concerns(me, parties);
            if let channel_core::ledger::LedgerEventKind::ChannelOpened {
                channel_id,
                participant1,
                participant2,
                ..
            } = &e.kind
            {
                if keep {
                    ours.insert(*channel_id, [*participant1, *participant2]);
                }
            }
            keep
        })
        .collect()
}
