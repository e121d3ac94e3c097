//! Time as an input, quinn-proto style: [`Channel::poll_timeout`] tells the driver the next
//! ledger time at which the channel has something to do by itself, and
//! [`Channel::handle_timeout`] does it when that time has come. The channel never reads a
//! clock; the driver arms one timer per channel (or one tick for many) from `poll_timeout`.
//!
//! What expires:
//! - a pending withdraw (ours or the partner's) at its `withdrawable_until`: the ledger will
//!   refuse it from then on, so the reserved amount becomes spendable again;
//! - a cooperative close at the end of its withdraws' validity: the ledger can no longer
//!   settle it, so payments resume;
//! - one of our locks at its expiration: the driver may now send
//!   [`Channel::send_lock_expired`](super::Channel::send_lock_expired) to take the amount back
//!   (that needs a signature, so `handle_timeout` only reports it).

use super::{Channel, ChannelEvent, ChannelPhase};

impl Channel {
    /// The earliest ledger time at which [`Channel::handle_timeout`] will have work, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let withdraws = [&self.our, &self.partner]
            .into_iter()
            .filter_map(|end| end.pending_withdraw.as_ref())
            .map(|w| w.proof.withdrawable_until);
        let locks = self.our.locks.as_slice().iter().map(|l| l.expiration);
        let cooperative = match self.phase {
            ChannelPhase::CooperativeSettling { until } => Some(until),
            _ => None,
        };
        withdraws.chain(locks).chain(cooperative).min()
    }

    /// Handles everything due at ledger time `now`. Idempotent: calling it again with the
    /// same `now` returns only what is still due (our expired locks, until they are dropped).
    pub fn handle_timeout(&mut self, now: u64) -> Vec<ChannelEvent> {
        let mut events = Vec::new();
        if let ChannelPhase::CooperativeSettling { until } = self.phase {
            if until <= now {
                self.phase = ChannelPhase::Open;
                events.push(ChannelEvent::PaymentsResumed);
            }
        }
        for end in [&mut self.our, &mut self.partner] {
            if let Some(w) = end
                .pending_withdraw
                .take_if(|w| w.proof.withdrawable_until <= now)
            {
                events.push(ChannelEvent::WithdrawExpired {
                    participant: w.proof.participant,
                    total_withdraw: w.proof.total_withdraw,
                });
            }
        }
        for lock in self.our.locks.as_slice() {
            if lock.is_expired(now) && !self.claimed_on_ledger(lock) {
                events.push(ChannelEvent::LockExpirable {
                    secrethash: lock.secrethash,
                    amount: lock.amount,
                });
            }
        }
        events
    }
}
