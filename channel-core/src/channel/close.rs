//! The end of a channel: deposits reported by the ledger, our close transaction, the
//! counter-signed update that contests the partner's close, and the ledger's close and settle
//! reports.

use super::{Channel, ChannelError, ChannelEvent, ChannelPhase, EndState};
use crate::crypto::{Signature, Signer};
use crate::primitives::{Address, U256};
use crate::proofs::SignedBalanceProof;

/// What to submit to the ledger's `close_channel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseTransaction {
    pub channel_id: U256,
    /// The partner's latest proof, or the empty placeholder if it never sent one.
    pub partner_proof: SignedBalanceProof,
    pub closing_signature: Signature,
}

/// What to submit to the ledger's `update_non_closing_balance_proof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateTransaction {
    pub channel_id: U256,
    pub closer_proof: SignedBalanceProof,
    pub non_closing_signature: Signature,
}

impl Channel {
    pub(super) fn end_mut(&mut self, who: Address) -> Result<&mut EndState, ChannelError> {
        if who == self.our.address {
            Ok(&mut self.our)
        } else if who == self.partner.address {
            Ok(&mut self.partner)
        } else {
            Err(ChannelError::NotParticipant(who))
        }
    }

    /// The ledger reports `participant`'s cumulative deposit.
    pub fn handle_ledger_deposit(
        &mut self,
        participant: Address,
        total_deposit: U256,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        let end = self.end_mut(participant)?;
        if total_deposit < end.total_deposit {
            return Err(ChannelError::DepositDecreased {
                current: end.total_deposit,
                new: total_deposit,
            });
        }
        end.total_deposit = total_deposit;
        Ok(vec![ChannelEvent::DepositChanged {
            participant,
            total_deposit,
        }])
    }

    /// Builds our close: the partner's latest proof counter-signed by us. The channel stops
    /// taking and making payments from here on.
    pub fn close(&mut self, signer: &dyn Signer) -> Result<CloseTransaction, ChannelError> {
        match self.phase {
            ChannelPhase::Open
            | ChannelPhase::CooperativeSettling { .. }
            | ChannelPhase::Closing => {}
            other => return Err(ChannelError::NotOpen(other.name())),
        }
        let partner_proof = self
            .partner
            .latest
            .unwrap_or_else(|| SignedBalanceProof::none(self.domain, self.id));
        let closing_signature = partner_proof.counter_sign_close(signer)?;
        self.phase = ChannelPhase::Closing;
        Ok(CloseTransaction {
            channel_id: self.id,
            partner_proof,
            closing_signature,
        })
    }

    /// Stops new payments in both directions while a cooperative settle, valid on the ledger
    /// until `until`, is on its way; [`Channel::resume_payments`] undoes it, and so does
    /// [`Channel::handle_timeout`] once `until` has passed. Has no effect unless the channel
    /// is open.
    pub fn stop_payments(&mut self, until: u64) {
        if self.phase == ChannelPhase::Open {
            self.phase = ChannelPhase::CooperativeSettling { until };
        }
    }

    /// The ledger reports the channel closed.
    pub fn handle_ledger_closed(
        &mut self,
        closer: Address,
        at: u64,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        if closer != self.our.address && closer != self.partner.address {
            return Err(ChannelError::NotParticipant(closer));
        }
        self.phase = ChannelPhase::Closed { closer, at };
        Ok(vec![ChannelEvent::Closed { closer }])
    }

    /// If the partner closed, our counter-signature over its latest proof, so that the ledger
    /// credits everything it sent us. `None` when we closed or it never sent us a proof.
    pub fn update_transaction(
        &self,
        signer: &dyn Signer,
    ) -> Result<Option<UpdateTransaction>, ChannelError> {
        let ChannelPhase::Closed { closer, .. } = self.phase else {
            return Ok(None);
        };
        if closer != self.partner.address {
            return Ok(None);
        }
        let Some(closer_proof) = self.partner.latest else {
            return Ok(None);
        };
        Ok(Some(UpdateTransaction {
            channel_id: self.id,
            closer_proof,
            non_closing_signature: closer_proof.counter_sign_update(signer)?,
        }))
    }

    /// The ledger settled the channel (unilaterally or cooperatively).
    pub fn handle_ledger_settled(&mut self) -> Vec<ChannelEvent> {
        self.phase = ChannelPhase::Settled;
        vec![ChannelEvent::Settled]
    }
}
