//! [`MirrorPosition::step`]: one poll of confirmed contract events, applied to a copy of a
//! follower's mirror. It is the part of following a chain that the hub's `ChainLedger` and the
//! device SDK's share; each driver persists the outcome its own way (the hub as a store batch
//! with an event log, the device as one record) before anything reads it.
//!
//! Pure: no I/O, no clock. On an error the position it was called on is unchanged and nothing
//! is to be written.

use std::sync::Arc;

use channel_core::ledger::{LedgerEvent, LedgerMirror, MirrorError};

use crate::events::{number_events, ChainEvent, EventCursor};

/// Where a follower stands: its mirror (every event it numbered, applied), the next block to
/// read, and ledger time (the timestamp of the last confirmed block read; 0 before any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorPosition {
    /// Shared, so that copying a position (for a poll, or a reader) does not copy the mirror.
    pub mirror: Arc<LedgerMirror>,
    pub cursor: EventCursor,
    pub time: u64,
}

/// Why a poll's events cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("the event cursor would go back from block {from} to {to}")]
    CursorBack { from: u64, to: u64 },
    #[error("numbering the events: {0}")]
    Numbering(String),
    /// A confirmed event does not fit the mirror (typically: the follower started reading
    /// after the contract's deployment block and missed the channel's opening).
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    #[error("event {0} was numbered at or below the mirror's last seq")]
    NotAfterLastSeq(u64),
}

/// The outcome of [`MirrorPosition::step`]: the next position and the events it numbered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub position: MirrorPosition,
    pub events: Vec<LedgerEvent>,
}

impl MirrorPosition {
    /// A follower that has read nothing yet and starts at `start_block`.
    pub fn new(start_block: u64) -> Self {
        Self {
            mirror: Arc::new(LedgerMirror::new()),
            cursor: EventCursor::from_block(start_block),
            time: 0,
        }
    }

    /// The seq of the last event numbered.
    pub fn last_seq(&self) -> u64 {
        self.mirror.last_seq()
    }

    /// Applies one poll: `events` (those the follower keeps, in the order the poll returned
    /// them), the cursor after them and the timestamp of the last block read. Numbers the
    /// events after the mirror's last seq and applies them to a copy of the mirror; ledger time
    /// never goes backwards. `None` when the poll changed nothing (no events, cursor unmoved).
    pub fn step(
        &self,
        events: Vec<ChainEvent>,
        next: EventCursor,
        block_time: u64,
    ) -> Result<Option<Step>, FollowError> {
        if next < self.cursor {
            return Err(FollowError::CursorBack {
                from: self.cursor.next_block,
                to: next.next_block,
            });
        }
        if events.is_empty() && next == self.cursor {
            return Ok(None);
        }
        let numbered = number_events(events, self.last_seq())
            .map_err(|e| FollowError::Numbering(e.to_string()))?;
        let mirror = if numbered.is_empty() {
            Arc::clone(&self.mirror)
        } else {
            let mut mirror = LedgerMirror::clone(&self.mirror);
            for event in &numbered {
                if !mirror.apply(event)? {
                    return Err(FollowError::NotAfterLastSeq(event.seq));
                }
            }
            Arc::new(mirror)
        };
        let time = mirror.last_time().max(self.time).max(block_time);
        Ok(Some(Step {
            position: MirrorPosition {
                mirror,
                cursor: next,
                time,
            },
            events: numbered,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use channel_core::ledger::LedgerEventKind;
    use channel_core::{Address, U256};

    use super::*;

    fn opened(block: u64, id: u8) -> ChainEvent {
        ChainEvent {
            block_number: block,
            log_index: 0,
            tx_hash: channel_core::H256::ZERO,
            time: 1_000 + block,
            kind: LedgerEventKind::ChannelOpened {
                channel_id: U256::from(id),
                participant1: Address([1; 20]),
                participant2: Address([2; 20]),
                settlement_timeout: 100,
            },
        }
    }

    #[test]
    fn a_step_numbers_applies_and_moves_time_forward_only() {
        let start = MirrorPosition::new(5);
        assert_eq!(
            start.step(vec![], EventCursor::from_block(5), 0).unwrap(),
            None
        );
        let one = start
            .step(vec![opened(6, 1)], EventCursor::from_block(8), 1_007)
            .unwrap()
            .unwrap();
        assert_eq!(one.events.len(), 1);
        assert_eq!(one.events[0].seq, 1);
        assert_eq!(one.position.time, 1_007);
        assert!(one.position.mirror.channel(U256::from(1u8)).is_some());
        assert!(
            start.mirror.channel(U256::from(1u8)).is_none(),
            "the old one is untouched"
        );
        // An empty poll moves the cursor; an older block time does not move time back.
        let two = one
            .position
            .step(vec![], EventCursor::from_block(9), 3)
            .unwrap()
            .unwrap();
        assert_eq!(
            (two.position.cursor.next_block, two.position.time),
            (9, 1_007)
        );
        assert!(two.events.is_empty());
    }

    #[test]
    fn a_cursor_going_back_or_an_event_that_does_not_fit_is_refused() {
        let start = MirrorPosition::new(5);
        assert!(matches!(
            start.step(vec![], EventCursor::from_block(4), 0),
            Err(FollowError::CursorBack { from: 5, to: 4 })
        ));
        let one = start
            .step(vec![opened(6, 1)], EventCursor::from_block(7), 0)
            .unwrap()
            .unwrap();
        // The same channel opened again does not fit the mirror.
        assert!(matches!(
            one.position
                .step(vec![opened(7, 1)], EventCursor::from_block(8), 0),
            Err(FollowError::Mirror(_))
        ));
    }
}
