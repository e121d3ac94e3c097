//! Fixed-width values of the Ethereum / Raiden world: 20-byte addresses (EIP-55 display),
//! 32-byte hashes and the 256-bit unsigned integer used for every amount.
//!
//! Owns parsing and formatting only; hashing lives in [`crate::crypto`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Keccak256};

pub use ruint::aliases::U256;

/// Errors from parsing hex values, addresses and integers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("not valid hex: {0}")]
    Hex(String),
    #[error("address checksum (EIP-55) does not match")]
    Checksum,
    #[error("not a decimal uint256: {0}")]
    Integer(String),
}

fn strip_0x(s: &str) -> &str {
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
}

/// Decodes `0x`-prefixed (or bare) hex into bytes.
pub fn decode_hex(s: &str) -> Result<Vec<u8>, ParseError> {
    hex::decode(strip_0x(s)).map_err(|e| ParseError::Hex(e.to_string()))
}

fn decode_fixed<const N: usize>(s: &str) -> Result<[u8; N], ParseError> {
    let bytes = decode_hex(s)?;
    fixed_from_slice(&bytes)
}

/// Copies a slice into an array, naming both lengths when they differ.
pub fn fixed_from_slice<const N: usize>(bytes: &[u8]) -> Result<[u8; N], ParseError> {
    <[u8; N]>::try_from(bytes).map_err(|_| ParseError::Length {
        expected: N,
        got: bytes.len(),
    })
}

/// A 20-byte Ethereum address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 20]);

impl Address {
    pub const ZERO: Address = Address([0u8; 20]);

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseError> {
        fixed_from_slice(bytes).map(Address)
    }

    /// All-lowercase form, `0x` prefixed (no checksum, so nothing to hash).
    pub fn to_lower_hex(&self) -> String {
        format!("0x{}", hex::encode(self.0))
    }

    /// EIP-55 mixed-case checksum form, `0x` prefixed.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = Keccak256::digest(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }
}

impl FromStr for Address {
    type Err = ParseError;

    /// Accepts all-lowercase, all-uppercase or a correct EIP-55 checksum; a mixed-case string
    /// with a wrong checksum is rejected (it is most likely a typo).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let body = strip_0x(s);
        let addr = Address(decode_fixed::<20>(body)?);
        let has_lower = body.chars().any(|c| c.is_ascii_lowercase());
        let has_upper = body.chars().any(|c| c.is_ascii_uppercase());
        if has_lower && has_upper && strip_0x(&addr.to_checksum()) != body {
            return Err(ParseError::Checksum);
        }
        Ok(addr)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

/// A 32-byte hash or opaque word (keccak/sha256 digests, locksroots, secrets).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct H256(pub [u8; 32]);

impl H256 {
    pub const ZERO: H256 = H256([0u8; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseError> {
        fixed_from_slice(bytes).map(H256)
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }
}

impl FromStr for H256 {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        decode_fixed::<32>(s).map(H256)
    }
}

impl fmt::Display for H256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for H256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Serde as a `0x` hex string: `$text` writes it, `FromStr` reads it back.
macro_rules! hex_serde {
    ($t:ty, $text:ident) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.$text())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}
// Addresses go into records and JSON in lowercase: EIP-55 costs a keccak to write and another
// to check on reading, and a hub reads and writes addresses in every channel record. Display
// (logs, tables, messages for people) keeps the checksum.
hex_serde!(Address, to_lower_hex);
hex_serde!(H256, to_string);

/// Big-endian 32-byte encoding of a uint256 (the contract's `uint256` packing).
pub fn u256_to_be(v: &U256) -> [u8; 32] {
    v.to_be_bytes::<32>()
}

/// Reads a big-endian uint256; the slice must be exactly 32 bytes.
pub fn u256_from_be(bytes: &[u8]) -> Result<U256, ParseError> {
    let arr: [u8; 32] = fixed_from_slice(bytes)?;
    Ok(U256::from_be_bytes(arr))
}

/// Parses a decimal uint256, rejecting anything that does not fit (no truncation).
pub fn u256_from_dec(s: &str) -> Result<U256, ParseError> {
    U256::from_str_radix(s, 10).map_err(|_| ParseError::Integer(s.to_string()))
}

/// Serde helpers that write U256 as a decimal string (the reference doc's JSON convention).
pub mod u256_dec {
    use super::*;

    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let s = String::deserialize(d)?;
        u256_from_dec(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_roundtrip_and_rejects_bad_case() {
        let s = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
        let a: Address = s.parse().unwrap();
        assert_eq!(a.to_string(), s);
        assert_eq!(
            s.to_lowercase().parse::<Address>().unwrap(),
            a,
            "lowercase carries no checksum and is accepted"
        );
        let bad = "0x7e5F4552091A69125d5DfCb7b8C2659029395Bdf";
        assert_eq!(bad.parse::<Address>(), Err(ParseError::Checksum));
        assert!(matches!(
            "0x1234".parse::<Address>(),
            Err(ParseError::Length {
                expected: 20,
                got: 2
            })
        ));
    }

    #[test]
    fn serde_writes_lowercase_and_reads_both_forms() {
        let s = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf";
        let a: Address = s.parse().unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{}\"", s.to_lowercase()));
        assert_eq!(serde_json::from_str::<Address>(&json).unwrap(), a);
        assert_eq!(
            serde_json::from_str::<Address>(&format!("\"{s}\"")).unwrap(),
            a,
            "records written with the checksum still read"
        );
        assert!(
            serde_json::from_str::<Address>("\"0x7e5F4552091A69125d5DfCb7b8C2659029395Bdf\"")
                .is_err()
        );
    }

    #[test]
    fn u256_decimal_rejects_overflow() {
        let max = "115792089237316195423570985008687907853269984665640564039457584007913129639935";
        assert_eq!(u256_from_dec(max).unwrap(), U256::MAX);
        let over = "115792089237316195423570985008687907853269984665640564039457584007913129639936";
        assert!(u256_from_dec(over).is_err());
        assert!(u256_from_dec("-1").is_err());
        assert!(u256_from_be(&[0u8; 31]).is_err());
    }
}
