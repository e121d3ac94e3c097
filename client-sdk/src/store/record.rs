//! The records the device keeps and their on-disk form: one version byte followed by the
//! record as JSON. A record written by a newer SDK (unknown version byte) is refused rather
//! than misread.

use channel_core::ledger::{LedgerEvent, LedgerMirror};
use channel_core::mediation::SignedPaymentRequest;
use channel_core::primitives::{u256_dec, Address, H256, U256};
use channel_core::{Domain, HashTimeLock, Secret, SignedBalanceProof};
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

/// A failure of a record type shared with the hub ([`voltlane_store::records`]) under `key`,
/// in this store's terms: an unknown version is [`StoreError::UnsupportedVersion`], as for
/// every other record of the device.
pub fn from_shared(key: &str, e: voltlane_store::StoreError) -> StoreError {
    match e {
        voltlane_store::StoreError::Version { found, .. } => StoreError::UnsupportedVersion {
            key: key.to_string(),
            version: found,
        },
        voltlane_store::StoreError::Corrupt { reason, .. } => StoreError::Corrupt {
            key: key.to_string(),
            message: reason,
        },
        other => StoreError::Backend(other),
    }
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

/// A proof we signed and sent (or are about to send) on `Payments.Pay` that the hub has not
/// yet acknowledged. Kept until an ack (or the hub's channel state) shows the hub has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnackedPayment {
    pub proof: SignedBalanceProof,
    /// The direct payment's amount, or the lock's for a mediated step.
    #[serde(with = "u256_dec")]
    pub amount: U256,
    /// What the proof does. Absent in records written before mediated payments existed
    /// (they are all direct payments), and left out for direct payments so those records
    /// stay readable by such SDKs.
    #[serde(default, skip_serializing_if = "QueuedKind::is_direct")]
    pub kind: QueuedKind,
}

/// What a queued proof does: the stored form of `PaymentMessage.kind`.
// The locked transfer carries the payee's request as the wire does; the log holds a handful
// of entries, and keeping it `Copy` like the proof beside it is worth more than the bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueuedKind {
    /// A direct payment to the hub.
    #[default]
    Direct,
    /// A new lock toward the hub paying the payee's request through it.
    LockedTransfer {
        lock: HashTimeLock,
        payment_request: SignedPaymentRequest,
    },
    /// We release our lock with its secret.
    Unlock { secret: Secret },
    /// We take back our expired lock.
    LockExpired { secrethash: H256 },
}

impl QueuedKind {
    pub fn is_direct(&self) -> bool {
        matches!(self, QueuedKind::Direct)
    }

    /// The secrethash of the lock a mediated step is about.
    pub fn secrethash(&self) -> Option<H256> {
        match self {
            QueuedKind::Direct => None,
            QueuedKind::LockedTransfer { lock, .. } => Some(lock.secrethash),
            QueuedKind::Unlock { secret } => Some(secret.hash()),
            QueuedKind::LockExpired { secrethash } => Some(*secrethash),
        }
    }
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

/// The chain deployment a device follows (on a hub that settles on Ethereum).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentId {
    pub chain_id: u64,
    pub token_network: Address,
}

/// The chain follower's state (only on an Ethereum hub), written as ONE record so that the
/// mirror, the event cursor, the ledger time and the events not yet applied to the channel
/// always agree after a crash: the next poll reads again from `next_block` and numbers the
/// same events with the same seqs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainFollowerRecord {
    pub deployment: DeploymentId,
    /// The block a new store started reading at (the hub's announced `start_block`).
    pub start_block: u64,
    /// The next block to read.
    pub next_block: u64,
    /// Ledger time: the timestamp of the last confirmed block read.
    pub time: u64,
    /// The device's channels, secret registrations and kept-back locks as the events built
    /// them (its `last_seq` is the seq of the last numbered event); stored as a
    /// [`LedgerMirrorRecord`](super::mirror::LedgerMirrorRecord).
    #[serde(with = "super::mirror::as_record")]
    pub mirror: LedgerMirror,
    /// Numbered events after the channel's last applied seq (`ledger_seq`) at the time of the
    /// write: delivered to the channel again after a crash.
    pub undelivered: Vec<LedgerEvent>,
}
