//! What the ledger reports, fed to the channel: one idempotent entry point,
//! [`Channel::handle_ledger_event`], used by the hub and the device SDK alike.
//!
//! Drivers follow the ledger with at-least-once delivery: the same event can arrive from a
//! subscription replay, from an operation's response and again after a restart that happened
//! between applying an event and recording that it was applied. So applying an event the
//! channel already reflects (or an older one: deposits and withdraws only grow, a closed
//! channel stays closed) is a no-op that returns no events, never an error.

use super::{Channel, ChannelError, ChannelEvent, ChannelPhase};
use crate::ledger::{ChannelRecord, LedgerEvent, LedgerEventKind};
use crate::primitives::{Address, U256};

impl Channel {
    /// Applies one ledger event if it concerns this channel. Returns what changed (empty when
    /// the event is for another channel or already reflected). Errors only when the event
    /// names this channel but someone who is not a participant (the ledger never does that).
    pub fn handle_ledger_event(
        &mut self,
        event: &LedgerEvent,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        use LedgerEventKind as K;
        match &event.kind {
            K::Deposit {
                channel_id,
                participant,
                total_deposit,
            } if *channel_id == self.id => self.raise_deposit(*participant, *total_deposit),
            K::Withdraw {
                channel_id,
                participant,
                total_withdraw,
            } if *channel_id == self.id => self.raise_withdraw(*participant, *total_withdraw),
            K::ChannelClosed {
                channel_id,
                closing_participant,
                ..
            } if *channel_id == self.id => match self.phase {
                ChannelPhase::Open
                | ChannelPhase::CooperativeSettling { .. }
                | ChannelPhase::Closing => {
                    self.handle_ledger_closed(*closing_participant, event.time)
                }
                ChannelPhase::Closed { .. } | ChannelPhase::Settled => Ok(Vec::new()),
            },
            K::SecretRegistered { secret, .. } => {
                Ok(self.handle_secret_registered(*secret, event.time))
            }
            K::ChannelSettled { channel_id, .. } if *channel_id == self.id => {
                if self.phase == ChannelPhase::Settled {
                    Ok(Vec::new())
                } else {
                    Ok(self.handle_ledger_settled())
                }
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Brings deposits and withdraws up to the ledger's `record` of this channel (they only
    /// grow; lower or equal totals are no-ops). Used when a driver reads the record directly
    /// instead of following events (e.g. right after opening).
    pub fn handle_ledger_record(
        &mut self,
        record: &ChannelRecord,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        if record.id != self.id {
            return Err(ChannelError::WrongChannel {
                expected: self.id,
                got: record.id,
            });
        }
        let mut next = self.clone();
        let mut events = Vec::new();
        for p in &record.participants {
            events.extend(next.raise_deposit(p.address, p.total_deposit)?);
            events.extend(next.raise_withdraw(p.address, p.total_withdraw)?);
        }
        *self = next;
        Ok(events)
    }

    fn raise_deposit(
        &mut self,
        participant: Address,
        total: U256,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        if total <= self.end_mut(participant)?.total_deposit {
            return Ok(Vec::new());
        }
        self.handle_ledger_deposit(participant, total)
    }

    fn raise_withdraw(
        &mut self,
        participant: Address,
        total: U256,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        if total <= self.end_mut(participant)?.total_withdraw {
            return Ok(Vec::new());
        }
        self.handle_ledger_withdraw(participant, total)
    }
}
