//! Taking money out of an open channel with the partner's consent: a withdraw request, the
//! partner's confirmation, and the ledger's report that the withdraw happened.
//!
//! While a withdraw is pending its amount is reserved: the requester cannot spend it, and the
//! partner will not accept payments that would dip into it.

use super::{Channel, ChannelError, ChannelEvent, ChannelMessage, PendingWithdraw};
use crate::crypto::{Signature, Signer};
use crate::primitives::U256;
use crate::proofs::WithdrawProof;

impl Channel {
    /// Asks the partner to co-sign taking our cumulative withdraw to `total_withdraw`,
    /// valid on the ledger until `withdrawable_until`.
    pub fn request_withdraw(
        &mut self,
        total_withdraw: U256,
        withdrawable_until: u64,
        now: u64,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        if self.our.pending_withdraw.is_some() {
            return Err(ChannelError::WithdrawPending);
        }
        self.check_withdraw_amount(
            total_withdraw,
            self.our.total_withdraw,
            self.our_distributable()?,
        )?;
        if withdrawable_until <= now {
            return Err(ChannelError::WithdrawExpired {
                until: withdrawable_until,
                now,
            });
        }
        let proof = WithdrawProof {
            domain: self.domain,
            channel_identifier: self.id,
            participant: self.our.address,
            total_withdraw,
            withdrawable_until,
        };
        let signature = proof.sign(signer)?;
        self.our.pending_withdraw = Some(PendingWithdraw {
            proof,
            participant_signature: signature,
            partner_signature: None,
        });
        Ok(vec![ChannelEvent::Send(ChannelMessage::WithdrawRequest {
            proof,
            signature,
        })])
    }

    fn check_withdraw_amount(
        &self,
        requested: U256,
        current: U256,
        distributable: U256,
    ) -> Result<(), ChannelError> {
        if requested <= current {
            return Err(ChannelError::WithdrawNotIncreasing { current, requested });
        }
        let extra = requested.saturating_sub(current);
        if extra > distributable {
            return Err(ChannelError::InsufficientBalance {
                available: distributable,
                requested: extra,
            });
        }
        Ok(())
    }

    /// The partner asks to withdraw; if valid we co-sign and reserve the amount.
    pub fn handle_withdraw_request(
        &mut self,
        proof: &WithdrawProof,
        signature: &Signature,
        now: u64,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        self.check_domain(&proof.domain, &proof.channel_identifier)?;
        if proof.participant != self.partner.address {
            return Err(ChannelError::WrongParticipant {
                expected: self.partner.address,
                got: proof.participant,
            });
        }
        if self.partner.pending_withdraw.is_some() {
            return Err(ChannelError::WithdrawPending);
        }
        if proof.withdrawable_until <= now {
            return Err(ChannelError::WithdrawExpired {
                until: proof.withdrawable_until,
                now,
            });
        }
        self.check_withdraw_amount(
            proof.total_withdraw,
            self.partner.total_withdraw,
            self.partner_distributable()?,
        )?;
        self.partner_key.verify(&proof.signing_hash(), signature)?;
        let ours = proof.sign(signer)?;
        self.partner.pending_withdraw = Some(PendingWithdraw {
            proof: *proof,
            participant_signature: *signature,
            partner_signature: Some(ours),
        });
        Ok(vec![ChannelEvent::Send(
            ChannelMessage::WithdrawConfirmation {
                proof: *proof,
                signature: ours,
            },
        )])
    }

    /// The partner co-signed our withdraw request: it can go to the ledger.
    pub fn handle_withdraw_confirmation(
        &mut self,
        proof: &WithdrawProof,
        signature: &Signature,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        let pending = self
            .our
            .pending_withdraw
            .as_ref()
            .ok_or(ChannelError::NoPendingWithdraw)?;
        if pending.proof != *proof {
            return Err(ChannelError::WithdrawMismatch);
        }
        let participant_signature = pending.participant_signature;
        self.partner_key.verify(&proof.signing_hash(), signature)?;
        if let Some(p) = self.our.pending_withdraw.as_mut() {
            p.partner_signature = Some(*signature);
        }
        Ok(vec![ChannelEvent::WithdrawReady {
            proof: *proof,
            participant_signature,
            partner_signature: *signature,
        }])
    }

    /// The ledger paid out a withdraw: `participant`'s cumulative withdraw is now
    /// `total_withdraw`.
    pub fn handle_ledger_withdraw(
        &mut self,
        participant: crate::primitives::Address,
        total_withdraw: U256,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        let end = self.end_mut(participant)?;
        if total_withdraw < end.total_withdraw {
            return Err(ChannelError::WithdrawNotIncreasing {
                current: end.total_withdraw,
                requested: total_withdraw,
            });
        }
        end.total_withdraw = total_withdraw;
        if end
            .pending_withdraw
            .as_ref()
            .is_some_and(|w| w.proof.total_withdraw <= total_withdraw)
        {
            end.pending_withdraw = None;
        }
        Ok(vec![ChannelEvent::WithdrawChanged {
            participant,
            total_withdraw,
        }])
    }
}
