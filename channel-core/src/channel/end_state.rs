//! One participant's side of a channel: what it deposited and withdrew on the ledger, the
//! latest balance proof it signed, and its pending hash-time locks toward the partner.

use super::ChannelError;
use crate::crypto::Signature;
use crate::locks::PendingLocks;
use crate::primitives::{Address, U256};
use crate::proofs::{BalanceData, SignedBalanceProof, WithdrawProof};

/// A withdraw both sides are working on; its amount is reserved until the ledger confirms it
/// or it expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingWithdraw {
    pub proof: WithdrawProof,
    pub participant_signature: Signature,
    pub partner_signature: Option<Signature>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndState {
    pub address: Address,
    pub total_deposit: U256,
    /// Withdrawn according to the ledger.
    pub total_withdraw: U256,
    pub pending_withdraw: Option<PendingWithdraw>,
    /// The latest balance proof signed by this participant.
    pub latest: Option<SignedBalanceProof>,
    pub locks: PendingLocks,
}

impl EndState {
    pub fn new(address: Address) -> Self {
        Self {
            address,
            total_deposit: U256::ZERO,
            total_withdraw: U256::ZERO,
            pending_withdraw: None,
            latest: None,
            locks: PendingLocks::new(),
        }
    }

    pub fn nonce(&self) -> u64 {
        self.latest.as_ref().map_or(0, |p| p.proof.nonce)
    }

    pub fn balance_data(&self) -> BalanceData {
        self.latest
            .as_ref()
            .map_or(BalanceData::EMPTY, |p| p.proof.balance)
    }

    pub fn transferred(&self) -> U256 {
        self.balance_data().transferred_amount
    }

    pub fn locked(&self) -> U256 {
        self.balance_data().locked_amount
    }

    /// The withdraw total this side has asked for and may still get (reserved).
    pub fn reserved_withdraw(&self) -> U256 {
        self.pending_withdraw
            .as_ref()
            .map_or(self.total_withdraw, |w| {
                w.proof.total_withdraw.max(self.total_withdraw)
            })
    }

    pub fn next_nonce(&self) -> Result<u64, ChannelError> {
        self.nonce()
            .checked_add(1)
            .ok_or(ChannelError::NonceExhausted)
    }

    /// `deposit - withdrawn + received - sent`: what this side owns in the channel, locks
    /// included.
    pub fn balance(&self, partner: &EndState) -> Result<U256, ChannelError> {
        self.total_deposit
            .checked_add(partner.transferred())
            .and_then(|v| v.checked_sub(self.total_withdraw))
            .and_then(|v| v.checked_sub(self.transferred()))
            .ok_or(ChannelError::Overflow("balance"))
    }

    /// What this side can still send or lock: balance minus its pending locks minus any
    /// withdraw it has asked for but the ledger has not yet carried out.
    pub fn distributable(&self, partner: &EndState) -> Result<U256, ChannelError> {
        let reserved = self.reserved_withdraw().saturating_sub(self.total_withdraw);
        Ok(self
            .balance(partner)?
            .saturating_sub(self.locked())
            .saturating_sub(reserved))
    }
}
