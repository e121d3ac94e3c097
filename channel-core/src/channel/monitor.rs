//! The channel monitor: what this participant must submit to the ledger to protect its
//! balance, decided from the ledger's *current record* of the channel, not from having seen an
//! event. Level-triggered, as a watchtower is: drivers call
//! [`Channel::poll_ledger_action`] at start-up, on every timer tick and whenever the ledger
//! moved, and submit what it returns. A submission that turns out to be redundant (someone
//! already updated or settled) is refused by the ledger and changes nothing, so calling too
//! often is harmless, while calling too rarely can never lose a contest that is still possible:
//! as long as the window is open and the ledger holds an older proof of the partner than we
//! do, the answer is "update".

use super::{Channel, ChannelError, UpdateTransaction};
use crate::crypto::Signer;
use crate::ledger::{ChannelPhase as LedgerPhase, ChannelRecord};
use crate::primitives::U256;

/// A transaction the monitor wants on the ledger now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerAction {
    /// The partner closed with an older proof of its own than the one we hold: submit ours,
    /// counter-signed, before the window ends.
    Update(Box<UpdateTransaction>),
    /// The settlement window is over: settle.
    Settle { channel_id: U256 },
}

impl Channel {
    /// What to submit now, given the ledger's `record` of this channel at ledger time `now`.
    ///
    /// - Closed by the partner, window open, ledger holds partner nonce `k`, we hold a partner
    ///   proof with nonce `> k` → [`LedgerAction::Update`].
    /// - Closed, window over → [`LedgerAction::Settle`].
    /// - Otherwise nothing.
    pub fn poll_ledger_action(
        &self,
        record: &ChannelRecord,
        now: u64,
        signer: &dyn Signer,
    ) -> Result<Option<LedgerAction>, ChannelError> {
        if record.id != self.id {
            return Err(ChannelError::WrongChannel {
                expected: self.id,
                got: record.id,
            });
        }
        if record.phase != LedgerPhase::Closed {
            return Ok(None);
        }
        let settle_after = record.settle_after.unwrap_or(0);
        if now > settle_after {
            return Ok(Some(LedgerAction::Settle {
                channel_id: self.id,
            }));
        }
        let partner = self.partner.address;
        if record.closer != Some(partner) {
            return Ok(None);
        }
        let on_ledger = record
            .participant(partner)
            .ok_or(ChannelError::NotParticipant(partner))?
            .nonce();
        let Some(closer_proof) = self.partner.latest else {
            return Ok(None);
        };
        if closer_proof.proof.nonce <= on_ledger {
            return Ok(None);
        }
        Ok(Some(LedgerAction::Update(Box::new(UpdateTransaction {
            channel_id: self.id,
            closer_proof,
            non_closing_signature: closer_proof.counter_sign_update(signer)?,
        }))))
    }

    /// The earliest ledger time at which [`Channel::poll_ledger_action`] will have something
    /// new to say for `record` (settling), or `None` when only a ledger change can.
    pub fn poll_ledger_timeout(&self, record: &ChannelRecord) -> Option<u64> {
        (record.id == self.id && record.phase == LedgerPhase::Closed)
            .then(|| record.settle_after.map(|t| t.saturating_add(1)))
            .flatten()
    }
}
