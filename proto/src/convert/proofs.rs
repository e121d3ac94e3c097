//! Conversions of the signed-message types: domain, balance data and proofs, withdraw proofs.

use channel_core::{
    BalanceData, BalanceProof, Domain, Signature, SignedBalanceProof, WithdrawProof,
};

use super::{
    address, address_bytes, h256, h256_bytes, required, signature, signature_bytes, u256,
    u256_bytes, FieldError, Rule,
};
use crate::v1;

impl TryFrom<v1::Domain> for Domain {
    type Error = FieldError;
    fn try_from(m: v1::Domain) -> Result<Self, FieldError> {
        Ok(Domain {
            chain_id: u256("chain_id", &m.chain_id)?,
            token_network_address: address("token_network_address", &m.token_network_address)?,
        })
    }
}

impl From<&Domain> for v1::Domain {
    fn from(d: &Domain) -> Self {
        v1::Domain {
            chain_id: u256_bytes(&d.chain_id),
            token_network_address: address_bytes(&d.token_network_address),
        }
    }
}

impl TryFrom<v1::BalanceData> for BalanceData {
    type Error = FieldError;
    fn try_from(m: v1::BalanceData) -> Result<Self, FieldError> {
        Ok(BalanceData {
            transferred_amount: u256("transferred_amount", &m.transferred_amount)?,
            locked_amount: u256("locked_amount", &m.locked_amount)?,
            locksroot: h256("locksroot", &m.locksroot)?,
        })
    }
}

impl From<&BalanceData> for v1::BalanceData {
    fn from(b: &BalanceData) -> Self {
        v1::BalanceData {
            transferred_amount: u256_bytes(&b.transferred_amount),
            locked_amount: u256_bytes(&b.locked_amount),
            locksroot: h256_bytes(&b.locksroot),
        }
    }
}

impl TryFrom<v1::BalanceProof> for BalanceProof {
    type Error = FieldError;
    fn try_from(m: v1::BalanceProof) -> Result<Self, FieldError> {
        Ok(BalanceProof {
            domain: required("domain", m.domain)?,
            channel_identifier: u256("channel_identifier", &m.channel_identifier)?,
            nonce: m.nonce,
            balance: required("balance", m.balance)?,
            additional_hash: h256("additional_hash", &m.additional_hash)?,
        })
    }
}

impl From<&BalanceProof> for v1::BalanceProof {
    fn from(p: &BalanceProof) -> Self {
        v1::BalanceProof {
            domain: Some((&p.domain).into()),
            channel_identifier: u256_bytes(&p.channel_identifier),
            nonce: p.nonce,
            balance: Some((&p.balance).into()),
            additional_hash: h256_bytes(&p.additional_hash),
        }
    }
}

impl TryFrom<v1::SignedBalanceProof> for SignedBalanceProof {
    type Error = FieldError;
    /// The "none" proof (nonce 0, empty balance) may carry no signature or 65 zero bytes;
    /// every other proof needs a well-formed signature.
    fn try_from(m: v1::SignedBalanceProof) -> Result<Self, FieldError> {
        let proof: BalanceProof = required("proof", m.proof)?;
        let unsigned_none = proof.nonce == 0
            && proof.balance.is_empty()
            && (m.signature.is_empty() || m.signature.iter().all(|b| *b == 0));
        let signature = if unsigned_none {
            Signature::EMPTY
        } else if m.signature.is_empty() || m.signature.iter().all(|b| *b == 0) {
            return Err(FieldError::new(
                "signature",
                Rule::Invalid(
                    "may be empty only for the nonce 0 proof with an empty balance".into(),
                ),
            ));
        } else {
            signature("signature", &m.signature)?
        };
        Ok(SignedBalanceProof { proof, signature })
    }
}

impl From<&SignedBalanceProof> for v1::SignedBalanceProof {
    fn from(p: &SignedBalanceProof) -> Self {
        v1::SignedBalanceProof {
            proof: Some((&p.proof).into()),
            signature: signature_bytes(&p.signature),
        }
    }
}

impl TryFrom<v1::WithdrawProof> for WithdrawProof {
    type Error = FieldError;
    fn try_from(m: v1::WithdrawProof) -> Result<Self, FieldError> {
        Ok(WithdrawProof {
            domain: required("domain", m.domain)?,
            channel_identifier: u256("channel_identifier", &m.channel_identifier)?,
            participant: address("participant", &m.participant)?,
            total_withdraw: u256("total_withdraw", &m.total_withdraw)?,
            withdrawable_until: m.withdrawable_until,
        })
    }
}

impl From<&WithdrawProof> for v1::WithdrawProof {
    fn from(w: &WithdrawProof) -> Self {
        v1::WithdrawProof {
            domain: Some((&w.domain).into()),
            channel_identifier: u256_bytes(&w.channel_identifier),
            participant: address_bytes(&w.participant),
            total_withdraw: u256_bytes(&w.total_withdraw),
            withdrawable_until: w.withdrawable_until,
        }
    }
}

/// A withdraw proof with both signatures, as `channel-core` defines it.
pub use channel_core::ledger::CoSignedWithdraw;

impl TryFrom<v1::CoSignedWithdraw> for CoSignedWithdraw {
    type Error = FieldError;
    fn try_from(m: v1::CoSignedWithdraw) -> Result<Self, FieldError> {
        Ok(CoSignedWithdraw {
            proof: required("proof", m.proof)?,
            participant_signature: signature("participant_signature", &m.participant_signature)?,
            partner_signature: signature("partner_signature", &m.partner_signature)?,
        })
    }
}

impl From<&CoSignedWithdraw> for v1::CoSignedWithdraw {
    fn from(w: &CoSignedWithdraw) -> Self {
        v1::CoSignedWithdraw {
            proof: Some((&w.proof).into()),
            participant_signature: signature_bytes(&w.participant_signature),
            partner_signature: signature_bytes(&w.partner_signature),
        }
    }
}
