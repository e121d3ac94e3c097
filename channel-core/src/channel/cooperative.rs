//! Cooperative close: both participants withdraw their whole balance in one ledger call
//! (`cooperative_settle`), so the channel settles at once with no settlement window.
//!
//! The flow, and who calls what:
//! 1. The proposer calls [`Channel::propose_cooperative_close`]: it builds both whole-balance
//!    withdraw proofs, signs both, stops payments and returns the
//!    [`CooperativeCloseProposal`] to send.
//! 2. The partner calls [`Channel::accept_cooperative_close`]: every rule is checked before
//!    anything changes (same channel and ledger, right participants, each total exactly the
//!    participant's whole balance, no locks or withdraws pending, not expired at `now`, both
//!    signatures by the proposer exactly as the ledger will attribute them); only then does it
//!    sign both, stop payments and return the [`CooperativeCloseAcceptance`].
//! 3. Either side submits `cooperative_settle` with the four signatures. If the submission
//!    fails (or the proposal is abandoned), [`Channel::resume_payments`] reopens the channel for
//!    payments; the ledger channel was never closed, so nothing else needs undoing. Once the
//!    ledger reports the settlement, the channel is settled.

use super::{Channel, ChannelError, ChannelPhase};
use crate::crypto::{verify_signer, Signature, Signer};
use crate::primitives::{Address, U256};
use crate::proofs::WithdrawProof;

/// What the proposer sends: both withdraws, each signed by the proposer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CooperativeCloseProposal {
    /// The proposer's withdraw of its whole balance, and the proposer's signature on it.
    pub proposer_withdraw: WithdrawProof,
    pub proposer_signature: Signature,
    /// The partner's withdraw of its whole balance, and the proposer's signature on it.
    pub partner_withdraw: WithdrawProof,
    pub partner_withdraw_proposer_signature: Signature,
}

/// What the accepting side returns: its signatures on both withdraws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CooperativeCloseAcceptance {
    /// The acceptor's signature on the proposer's withdraw.
    pub on_proposer_withdraw: Signature,
    /// The acceptor's signature on its own withdraw.
    pub on_own_withdraw: Signature,
}

/// Why a cooperative close was refused (a [`ChannelError::CooperativeClose`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CooperativeCloseRefusal {
    #[error("{which} names participant {got}, expected {expected}")]
    WrongParticipant {
        which: &'static str,
        expected: Address,
        got: Address,
    },
    #[error(
        "{which}.total_withdraw must be {expected} (the participant's whole balance), got {got}"
    )]
    NotWholeBalance {
        which: &'static str,
        expected: U256,
        got: U256,
    },
    #[error("locks are pending; unlock them or let them expire first")]
    LocksPending,
    #[error("a withdraw is pending; wait for it to reach the ledger or expire")]
    WithdrawPending,
    #[error("{which} expired: withdrawable_until {until} is not after ledger time {now}")]
    Expired {
        which: &'static str,
        until: u64,
        now: u64,
    },
    #[error("{which} signature: {reason}")]
    BadSignature { which: &'static str, reason: String },
}

impl Channel {
    /// Both whole-balance withdraws as this channel sees them, valid until `until`:
    /// `(ours, the partner's)`.
    fn whole_balance_withdraws(
        &self,
        until: u64,
    ) -> Result<(WithdrawProof, WithdrawProof), ChannelError> {
        let total = |base: U256, add: U256| {
            base.checked_add(add)
                .ok_or(ChannelError::Overflow("cooperative close total withdraw"))
        };
        let ours = WithdrawProof {
            domain: self.domain,
            channel_identifier: self.id,
            participant: self.our.address,
            total_withdraw: total(self.our.total_withdraw, self.our_balance()?)?,
            withdrawable_until: until,
        };
        let partners = WithdrawProof {
            participant: self.partner.address,
            total_withdraw: total(self.partner.total_withdraw, self.partner_balance()?)?,
            ..ours
        };
        Ok((ours, partners))
    }

    fn check_cooperative_preconditions(&self) -> Result<(), ChannelError> {
        self.ensure_open()?;
        if !self.our.locks.is_empty() || !self.partner.locks.is_empty() {
            return Err(CooperativeCloseRefusal::LocksPending.into());
        }
        if self.our.pending_withdraw.is_some() || self.partner.pending_withdraw.is_some() {
            return Err(CooperativeCloseRefusal::WithdrawPending.into());
        }
        Ok(())
    }

    /// Proposes a cooperative close valid on the ledger until `withdrawable_until`; stops
    /// payments. The driver persists the channel before sending the proposal.
    pub fn propose_cooperative_close(
        &mut self,
        withdrawable_until: u64,
        now: u64,
        signer: &dyn Signer,
    ) -> Result<CooperativeCloseProposal, ChannelError> {
        self.check_cooperative_preconditions()?;
        if withdrawable_until <= now {
            return Err(ChannelError::WithdrawExpired {
                until: withdrawable_until,
                now,
            });
        }
        let (ours, partners) = self.whole_balance_withdraws(withdrawable_until)?;
        let proposal = CooperativeCloseProposal {
            proposer_withdraw: ours,
            proposer_signature: ours.sign(signer)?,
            partner_withdraw: partners,
            partner_withdraw_proposer_signature: partners.sign(signer)?,
        };
        self.stop_payments(withdrawable_until);
        Ok(proposal)
    }

    /// Checks the partner's proposal against every rule and, only if all hold, signs both
    /// withdraws and stops payments. A refusal changes nothing.
    pub fn accept_cooperative_close(
        &mut self,
        proposal: &CooperativeCloseProposal,
        now: u64,
        signer: &dyn Signer,
    ) -> Result<CooperativeCloseAcceptance, ChannelError> {
        use CooperativeCloseRefusal as R;
        self.check_cooperative_preconditions()?;
        let theirs = &proposal.proposer_withdraw;
        let ours = &proposal.partner_withdraw;
        for (which, w, participant) in [
            ("proposer_withdraw", theirs, self.partner.address),
            ("partner_withdraw", ours, self.our.address),
        ] {
            self.check_domain(&w.domain, &w.channel_identifier)?;
            if w.participant != participant {
                return Err(R::WrongParticipant {
                    which,
                    expected: participant,
                    got: w.participant,
                }
                .into());
            }
            if w.withdrawable_until <= now {
                return Err(R::Expired {
                    which,
                    until: w.withdrawable_until,
                    now,
                }
                .into());
            }
        }
        let (want_ours, want_theirs) = self.whole_balance_withdraws(0)?;
        for (which, w, want) in [
            ("proposer_withdraw", theirs, want_theirs.total_withdraw),
            ("partner_withdraw", ours, want_ours.total_withdraw),
        ] {
            if w.total_withdraw != want {
                return Err(R::NotWholeBalance {
                    which,
                    expected: want,
                    got: w.total_withdraw,
                }
                .into());
            }
        }
        let partner = self.partner.address;
        for (which, w, sig) in [
            ("proposer_withdraw", theirs, &proposal.proposer_signature),
            (
                "partner_withdraw",
                ours,
                &proposal.partner_withdraw_proposer_signature,
            ),
        ] {
            verify_signer(&w.signing_hash(), sig, partner).map_err(|e| R::BadSignature {
                which,
                reason: e.to_string(),
            })?;
        }
        let acceptance = CooperativeCloseAcceptance {
            on_proposer_withdraw: theirs.sign(signer)?,
            on_own_withdraw: ours.sign(signer)?,
        };
        self.stop_payments(theirs.withdrawable_until.min(ours.withdrawable_until));
        Ok(acceptance)
    }

    /// Undoes [`Channel::stop_payments`] after a cooperative close that did not reach the
    /// ledger. Only a channel that stopped payments without closing on the ledger reopens;
    /// any later phase is left as it is.
    pub fn resume_payments(&mut self) {
        if matches!(self.phase, ChannelPhase::CooperativeSettling { .. }) {
            self.phase = ChannelPhase::Open;
        }
    }
}
