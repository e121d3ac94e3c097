//! The follower: one poll ([`ChainLedger::follow_once`]) and the loop around it
//! ([`ChainLedger::follow`]) with bounded backoff and a health status.
//!
//! Order of one poll, under the follow turn (one poll at a time): read the cursor; ask the node
//! for the confirmed events from it and, when the cursor moves, the timestamp of the last
//! block read; number and apply them to a copy of the state (`state::FollowerState::advance`);
//! write the one batch and await its durability; only then, under the state lock, swap the
//! state in and broadcast the events. A poll dropped at any await (shutdown) leaves the
//! in-memory state as it was; if its batch became durable anyway, the next poll reads the
//! same events from the same cursor, numbers them alike and writes the same records again.

use std::sync::Arc;
use std::time::Duration;

use channel_core::ledger::LedgerEvent;

use super::error::ChainError;
use super::state::FollowerState;
use super::{parties_of, ChainLedger};
use crate::error::HubError;
use crate::ledger::handle::PublishedEvent;
use crate::shutdown::Shutdown;

/// Longest wait between polls after failures (unless the interval itself is longer).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Shortest wait after a failure, whatever the interval: a failing node is never hammered.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The follower's health, for the hub's health report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FollowerStatus {
    /// No poll has finished since connecting.
    Starting,
    /// The last poll succeeded; the follower reads `next_block` next.
    Following { next_block: u64 },
    /// The last `failures` polls failed; `error` is the latest. `node_unreachable` when the
    /// node did not answer at all (rather than answered something the follower cannot use).
    Stalled {
        error: String,
        node_unreachable: bool,
        failures: u32,
    },
}

/// What one successful poll did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Step {
    /// Events numbered, persisted and published.
    pub events: usize,
    /// Whether the cursor moved (there may be more to read at once).
    pub advanced: bool,
}

impl ChainLedger {
    /// Polls the confirmed events after the cursor once (at most the configured
    /// `max_log_range` blocks), persists them with the mirror and the cursor, and publishes
    /// them; returns how many there were. On error nothing persisted changed and the next
    /// call reads from the same cursor.
    pub async fn follow_once(&self) -> Result<usize, HubError> {
        Ok(self.step().await?.events)
    }

    /// Polls until `shutdown` (run it in its own task; `interval` should not be zero): at once
    /// again while the cursor moves (catching up), every `interval` once caught up, and with a
    /// doubling backoff (from [`MIN_BACKOFF`] up to [`MAX_BACKOFF`]) after failures, each
    /// logged and shown in [`ChainLedger::status`]. Stops for good after a storage failure
    /// ([`ChainLedger::failed`]).
    pub async fn follow(&self, mut shutdown: Shutdown, interval: Duration) {
        let mut failures: u32 = 0;
        loop {
            if shutdown.is_triggered() {
                return;
            }
            let outcome = tokio::select! {
                _ = shutdown.wait() => return,
                outcome = self.step() => outcome,
            };
            let wait = match outcome {
                Ok(step) => {
                    if failures > 0 {
                        tracing::info!(failures, "chain follower recovered");
                    }
                    failures = 0;
                    if step.advanced {
                        Duration::ZERO
                    } else {
                        interval
                    }
                }
                Err(ChainError::Failed | ChainError::Store(_)) => {
                    tracing::error!("chain follower stopped after a storage failure");
                    return;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = backoff(interval, failures);
                    tracing::warn!(error = %e, failures, retry_in = ?wait, "chain follower poll failed");
                    wait
                }
            };
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = shutdown.wait() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One poll, with the status updated from its outcome.
    pub(super) async fn step(&self) -> Result<Step, ChainError> {
        let outcome = self.poll_and_commit().await;
        self.status.send_modify(|status| {
            *status = match &outcome {
                Ok(_) => match self.lock() {
                    Ok(inner) => FollowerStatus::Following {
                        next_block: inner.state.cursor.next_block,
                    },
                    Err(e) => stalled(status, &e),
                },
                Err(e) => stalled(status, e),
            }
        });
        outcome
    }

    async fn poll_and_commit(&self) -> Result<Step, ChainError> {
        let _turn = self.follow_turn.lock().await;
        let state: FollowerState = {
            let inner = self.lock()?;
            if inner.failed {
                return Err(ChainError::Failed);
            }
            inner.state.clone()
        };
        let (events, next) = self.eth.poll_events(state.cursor).await?;
        let block_time = match next.next_block.checked_sub(1) {
            Some(last_read) if next > state.cursor => {
                self.eth.node().block_timestamp(Some(last_read)).await?
            }
            _ => 0,
        };
        let Some(advance) = state.advance(events, next, block_time)? else {
            return Ok(Step {
                events: 0,
                advanced: false,
            });
        };
        let persist = self.store.write(advance.batch).map_err(|e| {
            self.mark_failed();
            tracing::error!(error = %e, "chain ledger write failed; the follower stops");
            e
        })?;
        persist.durable().await.map_err(|e| {
            self.mark_failed();
            tracing::error!(error = %e, "chain ledger flush failed; the follower stops");
            e
        })?;
        let step = Step {
            events: advance.events.len(),
            advanced: advance.state.cursor > state.cursor,
        };
        self.publish(advance.state, advance.events)?;
        Ok(step)
    }

    /// Makes `state` (durable) the current one and broadcasts `events`, under one lock, so a
    /// subscriber sees either all of them live or all of them in its replay.
    fn publish(&self, state: FollowerState, events: Vec<LedgerEvent>) -> Result<(), ChainError> {
        let mut inner = self.lock()?;
        inner.state = state;
        for event in events {
            let parties = parties_of(&inner.state.mirror, &event);
            // No receivers is fine: nobody subscribed.
            let _ = self
                .events
                .send(Arc::new(PublishedEvent { event, parties }));
        }
        Ok(())
    }

    fn mark_failed(&self) {
        if let Ok(mut inner) = self.lock() {
            inner.failed = true;
        }
        self.failed.send_replace(true);
    }
}

/// The status after a failed poll: one more failure than before.
fn stalled(previous: &FollowerStatus, error: &ChainError) -> FollowerStatus {
    let failures = match previous {
        FollowerStatus::Stalled { failures, .. } => failures.saturating_add(1),
        _ => 1,
    };
    FollowerStatus::Stalled {
        error: error.to_string(),
        node_unreachable: error.is_unreachable(),
        failures,
    }
}

/// `interval` (at least [`MIN_BACKOFF`]) doubled per failure after the first, at most
/// `max(MAX_BACKOFF, interval)`.
fn backoff(interval: Duration, failures: u32) -> Duration {
    let cap = MAX_BACKOFF.max(interval);
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    interval.max(MIN_BACKOFF).saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_interval_and_stays_bounded() {
        let i = Duration::from_millis(100);
        assert_eq!(backoff(i, 1), i);
        assert_eq!(backoff(i, 2), Duration::from_millis(200));
        assert_eq!(backoff(i, 4), Duration::from_millis(800));
        assert_eq!(backoff(i, 40), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(60), 3), Duration::from_secs(60));
        assert_eq!(backoff(Duration::ZERO, 1), MIN_BACKOFF);
        assert_eq!(backoff(Duration::ZERO, 3), MIN_BACKOFF * 4);
    }
}
