//! The end of a channel: deposits reported by the ledger, our close transaction, the
//! counter-signed update that contests the partner's close, and the ledger's close and settle
//! reports.

use super::{Channel, ChannelError, ChannelEvent, ChannelPhase, EndState};
use crate::crypto::{Signature, Signer};
use crate::ledger::{ChannelRecord, SettleTransaction};
use crate::primitives::{Address, U256};
use crate::proofs::{BalanceData, SignedBalanceProof};

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

    /// Our settle of the closed channel `record`: each participant with the balance data of
    /// its proof that the ledger stores, as the contract demands (it keeps only the hash).
    ///
    /// The partner's stored proof is one we submitted (our close or our update), so it is its
    /// latest one we hold. Ours is whichever of our proofs the partner chose to submit, which
    /// may be an old one: `archived(nonce)` looks up the balance data of a proof we signed
    /// earlier (the driver keeps every proof it signs until the channel settles, see
    /// [`Channel::our_signed_balance`]). The data is checked against the stored hash, so a
    /// wrong lookup is an error here, not a refused transaction.
    pub fn settle_transaction(
        &self,
        record: &ChannelRecord,
        archived: impl FnOnce(u64) -> Option<BalanceData>,
    ) -> Result<SettleTransaction, ChannelError> {
        if record.id != self.id {
            return Err(ChannelError::WrongChannel {
                expected: self.id,
                got: record.id,
            });
        }
        let ours = stored_balance(record, &self.our, Some(archived))?;
        let partners = stored_balance(
            record,
            &self.partner,
            None::<fn(u64) -> Option<BalanceData>>,
        )?;
        Ok(SettleTransaction {
            channel_id: self.id,
            balances: [(self.our.address, ours), (self.partner.address, partners)],
        })
    }

    /// The balance data of our latest proof with its nonce: what a driver archives each
    /// time the nonce moves, so that [`Channel::settle_transaction`] finds it if the partner
    /// closes with this proof after we signed newer ones.
    pub fn our_signed_balance(&self) -> Option<(u64, BalanceData)> {
        self.our
            .latest
            .as_ref()
            .map(|p| (p.proof.nonce, p.proof.balance))
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

/// The balance data behind the hash the ledger stores for `end`'s signer: the empty balance
/// when nothing was submitted, the end's latest proof when the nonces match, else (for our
/// own end) what `archived` finds, checked against the stored hash.
fn stored_balance(
    record: &ChannelRecord,
    end: &EndState,
    archived: Option<impl FnOnce(u64) -> Option<BalanceData>>,
) -> Result<BalanceData, ChannelError> {
    let stored = record
        .participant(end.address)
        .ok_or(ChannelError::NotParticipant(end.address))?;
    let (nonce, balance_hash) = (stored.nonce(), stored.balance_hash());
    let candidate = if balance_hash.is_zero() {
        Some(BalanceData::EMPTY)
    } else if end.nonce() == nonce {
        Some(end.balance_data())
    } else {
        archived.and_then(|lookup| lookup(nonce))
    };
    candidate
        .filter(|data| data.balance_hash() == balance_hash)
        .ok_or(ChannelError::BalanceDataUnknown {
            signer: end.address,
            nonce,
            balance_hash,
        })
}
