//! Conversions between `channel-core`'s primitive types and alloy's. Both sides use `ruint`
//! for 256-bit integers, so amounts pass through unchanged; addresses and hashes are the same
//! bytes in different wrappers.

use alloy::primitives::{Address as EvmAddress, Bytes, B256};
use channel_core::{Address, Signature, H256, U256};

use crate::error::EthError;

pub fn to_evm(a: Address) -> EvmAddress {
    EvmAddress::from(a.0)
}

pub fn from_evm(a: EvmAddress) -> Address {
    Address(a.into_array())
}

pub fn to_b256(h: &H256) -> B256 {
    B256::from(h.0)
}

pub fn from_b256(h: B256) -> H256 {
    H256(h.0)
}

pub fn sig_bytes(s: &Signature) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A uint256 from the chain that our types keep as `u64` (nonces, timestamps).
pub fn to_u64(step: &'static str, what: &'static str, v: U256) -> Result<u64, EthError> {
    u64::try_from(v).map_err(|_| EthError::Decode {
        step,
        what,
        reason: format!("{v} does not fit in 64 bits"),
    })
}
