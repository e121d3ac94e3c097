//! The final receipt of a session, signed by both sides over one packing: who paid whom, on
//! which ledger, for how many units at what price, and the first and last readings the
//! payments commit to. It serializes with serde (the SDK exports it as JSON) and verifies
//! offline with [`SignedSessionReceipt::verify`].

use serde::{Deserialize, Serialize};

use crate::crypto::{eip191_hash, verify_signer, Signature, Signer};
use crate::primitives::{u256_dec, u256_to_be, Address, H256, U256};
use crate::proofs::Domain;

use super::error::SessionError;
use super::offer::MeterUnit;

/// Domain separator at the start of every packed receipt.
pub const SESSION_RECEIPT_TAG: &[u8; 27] = b"voltlane.session-receipt.v1";

/// Bytes of a packed receipt.
pub const SESSION_RECEIPT_LEN: usize = 27 + 20 + 32 + 32 + 20 + 20 + 1 + 32 + 8 + 32 + 32 + 32;

/// What a session came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionReceipt {
    pub domain: Domain,
    pub session_id: H256,
    pub payer: Address,
    pub payee: Address,
    pub unit: MeterUnit,
    /// Token units per unit, as the offer said.
    #[serde(with = "u256_dec")]
    pub price_per_unit: U256,
    /// Units paid for.
    pub total_units: u64,
    /// Token units paid: `total_units × price_per_unit`.
    #[serde(with = "u256_dec")]
    pub total_paid: U256,
    /// Hash of the meter-start reading.
    pub first_reading_hash: H256,
    /// Hash of the reading the last payment committed to.
    pub last_reading_hash: H256,
}

impl SessionReceipt {
    /// `tag || token_network (20) || chain_id (32) || session_id (32) || payer (20) ||
    /// payee (20) || unit (1) || price_per_unit (32) || total_units (8) || total_paid (32) ||
    /// first_reading_hash (32) || last_reading_hash (32)`, integers big-endian.
    pub fn pack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(SESSION_RECEIPT_LEN);
        buf.extend_from_slice(SESSION_RECEIPT_TAG);
        buf.extend_from_slice(self.domain.token_network_address.as_bytes());
        buf.extend_from_slice(&u256_to_be(&self.domain.chain_id));
        buf.extend_from_slice(self.session_id.as_bytes());
        buf.extend_from_slice(self.payer.as_bytes());
        buf.extend_from_slice(self.payee.as_bytes());
        buf.push(self.unit.code());
        buf.extend_from_slice(&u256_to_be(&self.price_per_unit));
        buf.extend_from_slice(&self.total_units.to_be_bytes());
        buf.extend_from_slice(&u256_to_be(&self.total_paid));
        buf.extend_from_slice(self.first_reading_hash.as_bytes());
        buf.extend_from_slice(self.last_reading_hash.as_bytes());
        buf
    }

    /// The EIP-191 digest both sides sign.
    pub fn signing_hash(&self) -> H256 {
        eip191_hash(&self.pack())
    }

    /// Signs as the payer or the payee; refuses anyone else.
    pub fn sign_part(&self, signer: &dyn Signer) -> Result<Signature, SessionError> {
        let who = signer.address();
        if who != self.payer && who != self.payee {
            return Err(SessionError::NotSigner {
                expected: self.payee,
                signer: who,
            });
        }
        signer
            .sign_hash(&self.signing_hash())
            .map_err(SessionError::Signing)
    }
}

/// A receipt with both signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSessionReceipt {
    pub receipt: SessionReceipt,
    pub payer_signature: Signature,
    pub payee_signature: Signature,
}

impl SignedSessionReceipt {
    /// Checks, offline, that the totals agree with the price and that the payer and the
    /// payee it names both signed exactly this receipt.
    pub fn verify(&self) -> Result<(), SessionError> {
        let r = &self.receipt;
        let expected = r
            .price_per_unit
            .checked_mul(U256::from(r.total_units))
            .ok_or(SessionError::AmountOverflow {
                units: r.total_units,
                price: r.price_per_unit,
            })?;
        if r.total_paid != expected {
            return Err(SessionError::ReceiptMismatch {
                field: "total_paid",
                expected: expected.to_string(),
                got: r.total_paid.to_string(),
            });
        }
        let hash = r.signing_hash();
        verify_signer(&hash, &self.payer_signature, r.payer).map_err(|source| {
            SessionError::BadReceiptSignature {
                role: "payer",
                source,
            }
        })?;
        verify_signer(&hash, &self.payee_signature, r.payee).map_err(|source| {
            SessionError::BadReceiptSignature {
                role: "payee",
                source,
            }
        })
    }
}

impl SessionReceipt {
    /// Compares a receipt the other side proposes with `ours`, naming the first field that
    /// differs. Both sides compute their receipt from their own state; signing one that
    /// differs from ours would attest to something we did not see.
    pub fn check_matches(&self, ours: &SessionReceipt) -> Result<(), SessionError> {
        let fields: [(&'static str, String, String); 10] = [
            (
                "domain",
                format!("{:?}", ours.domain),
                format!("{:?}", self.domain),
            ),
            (
                "session_id",
                ours.session_id.to_string(),
                self.session_id.to_string(),
            ),
            ("payer", ours.payer.to_string(), self.payer.to_string()),
            ("payee", ours.payee.to_string(), self.payee.to_string()),
            (
                "unit",
                format!("{:?}", ours.unit),
                format!("{:?}", self.unit),
            ),
            (
                "price_per_unit",
                ours.price_per_unit.to_string(),
                self.price_per_unit.to_string(),
            ),
            (
                "total_units",
                ours.total_units.to_string(),
                self.total_units.to_string(),
            ),
            (
                "total_paid",
                ours.total_paid.to_string(),
                self.total_paid.to_string(),
            ),
            (
                "first_reading_hash",
                ours.first_reading_hash.to_string(),
                self.first_reading_hash.to_string(),
            ),
            (
                "last_reading_hash",
                ours.last_reading_hash.to_string(),
                self.last_reading_hash.to_string(),
            ),
        ];
        for (field, expected, got) in fields {
            if expected != got {
                return Err(SessionError::ReceiptMismatch {
                    field,
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }
}
