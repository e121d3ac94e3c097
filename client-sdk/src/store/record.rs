//! The records the device keeps and their on-disk form: one version byte followed by the
//! record as JSON. A record written by a newer SDK (unknown version byte) is refused rather
//! than misread.

use channel_core::primitives::{u256_dec, Address, U256};
use channel_core::{Domain, SignedBalanceProof};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The version byte every record is written with.
pub const RECORD_VERSION: u8 = 1;

/// Encodes `value` as `RECORD_VERSION || json`.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![RECORD_VERSION];
    serde_json::to_writer(&mut out, value).map_err(|e| StoreError::Encode {
        key: key.to_string(),
        message: e.to_string(),
    })?;
    Ok(out)
}

/// Decodes a record written by [`encode`], checking the version byte first.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    let (&version, body) = bytes.split_first().ok_or_else(|| StoreError::Corrupt {
        key: key.to_string(),
        message: "empty record".into(),
    })?;
    if version != RECORD_VERSION {
        return Err(StoreError::UnsupportedVersion {
            key: key.to_string(),
            version,
        });
    }
    serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// The device's secp256k1 key, hex encoded.
#[derive(Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub secret_hex: String,
}

impl std::fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRecord { .. }")
    }
}

/// The hub this store belongs to, so a store is never replayed against another hub or ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubRecord {
    pub hub_address: Address,
    pub domain: Domain,
    pub settlement_timeout: u64,
}

/// A payment proof we signed and sent (or are about to send) that the hub has not yet
/// acknowledged. Kept until an ack (or the hub's channel state) shows the hub has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnackedPayment {
    pub proof: SignedBalanceProof,
    #[serde(with = "u256_dec")]
    pub amount: U256,
}

impl UnackedPayment {
    pub fn nonce(&self) -> u64 {
        self.proof.proof.nonce
    }
}

/// A payment the hub made to us, as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubPaymentRecord {
    pub proof: SignedBalanceProof,
    #[serde(with = "u256_dec")]
    pub amount: U256,
}
