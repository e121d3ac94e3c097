//! Checked conversions between `voltlane.v1` wire messages and `channel-core` types.
//!
//! Wire → domain is `TryFrom` and fails with a [`FieldError`] that names the field by its full
//! path inside the message and the rule it broke, e.g.
//! `balance_proof.proof.balance.transferred_amount: must be 32 bytes (big-endian uint256), got 31`.
//! Domain → wire is infallible `From`.
//!
//! Request messages whose domain side is a set of arguments rather than one channel-core type
//! (ledger operations) convert into the small argument structs of [`requests`].

mod ledger;
pub mod liquidity;
pub mod mediation;
mod proofs;
pub mod requests;
pub mod sessions;
#[cfg(test)]
mod tests;

use channel_core::crypto::CryptoError;
use channel_core::primitives::{Address, H256, U256};
use channel_core::Signature;

pub use ledger::channel_phase;
pub use proofs::CoSignedWithdraw;

/// The rule a field broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rule {
    #[error("is required")]
    Missing,
    #[error("must be {expected} bytes ({what}), got {got}")]
    Length {
        expected: usize,
        got: usize,
        what: &'static str,
    },
    #[error("must have exactly {expected} entries, got {got}")]
    Count { expected: usize, got: usize },
    #[error("unknown enum value {0}")]
    UnknownEnum(i32),
    #[error("must not be UNSPECIFIED")]
    Unspecified,
    #[error("is not a valid signature: {0}")]
    Signature(CryptoError),
    #[error("{0}")]
    Invalid(String),
}

/// A wire message that does not satisfy the encoding rules: which field, which rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    /// Dotted path of the field inside the top-level message, e.g. `proof.domain.chain_id`.
    pub field: String,
    pub rule: Rule,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: Rule) -> Self {
        Self {
            field: field.into(),
            rule,
        }
    }

    /// The same error seen from the enclosing message: `parent.field`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

fn fixed<const N: usize>(
    field: &str,
    bytes: &[u8],
    what: &'static str,
) -> Result<[u8; N], FieldError> {
    <[u8; N]>::try_from(bytes).map_err(|_| {
        FieldError::new(
            field,
            Rule::Length {
                expected: N,
                got: bytes.len(),
                what,
            },
        )
    })
}

/// A 20-byte address.
pub fn address(field: &str, bytes: &[u8]) -> Result<Address, FieldError> {
    fixed::<20>(field, bytes, "address").map(Address)
}

/// An address field that may be empty (`None`).
pub fn optional_address(field: &str, bytes: &[u8]) -> Result<Option<Address>, FieldError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    address(field, bytes).map(Some)
}

/// A 32-byte hash.
pub fn h256(field: &str, bytes: &[u8]) -> Result<H256, FieldError> {
    fixed::<32>(field, bytes, "hash").map(H256)
}

/// A 32-byte hash, or zero when the field is empty (an optional commitment).
pub fn optional_h256(field: &str, bytes: &[u8]) -> Result<H256, FieldError> {
    if bytes.is_empty() {
        return Ok(H256::ZERO);
    }
    h256(field, bytes)
}

/// A uint256 as exactly 32 big-endian bytes.
pub fn u256(field: &str, bytes: &[u8]) -> Result<U256, FieldError> {
    fixed::<32>(field, bytes, "big-endian uint256").map(U256::from_be_bytes)
}

/// A 65-byte `r || s || v` signature satisfying the contract's rules (v, low s, range).
pub fn signature(field: &str, bytes: &[u8]) -> Result<Signature, FieldError> {
    if bytes.len() != 65 {
        return Err(FieldError::new(
            field,
            Rule::Length {
                expected: 65,
                got: bytes.len(),
                what: "r || s || v signature",
            },
        ));
    }
    Signature::from_slice(bytes).map_err(|e| FieldError::new(field, Rule::Signature(e)))
}

/// A required sub-message, converted with its errors prefixed by `field`.
pub fn required<P, D>(field: &str, value: Option<P>) -> Result<D, FieldError>
where
    D: TryFrom<P, Error = FieldError>,
{
    let value = value.ok_or_else(|| FieldError::new(field, Rule::Missing))?;
    D::try_from(value).map_err(|e| e.within(field))
}

/// Wire encoding of a uint256.
pub fn u256_bytes(v: &U256) -> Vec<u8> {
    v.to_be_bytes::<32>().to_vec()
}

/// Wire encoding of an address.
pub fn address_bytes(a: &Address) -> Vec<u8> {
    a.0.to_vec()
}

/// Wire encoding of a hash.
pub fn h256_bytes(h: &H256) -> Vec<u8> {
    h.0.to_vec()
}

/// Wire encoding of a signature.
pub fn signature_bytes(s: &Signature) -> Vec<u8> {
    s.as_bytes().to_vec()
}
