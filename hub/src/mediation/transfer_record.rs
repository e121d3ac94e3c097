//! [`MediatedTransferRecord`]: how the hub stores a
//! [`MediatedTransfer`](channel_core::mediation::MediatedTransfer) under `mediated` (unfinished)
//! and `mediated_done` (finished), keyed by secrethash (hex). Only the hub writes these.
//!
//! Version [`MEDIATED_RECORD_VERSION`] (the record's version byte) is the layout the core
//! type's derived serde wrote up to commit f030e4f, frozen here field by field, including the
//! core's own `version` field inside the JSON (always [`MEDIATED_TRANSFER_VERSION`]). The
//! conversion goes through `MediatedTransfer::to_parts` / `from_parts`, so the core's private
//! fields can change without changing the records.

use channel_core::mediation::{
    Leg, MediatedTransfer, MediatedTransferParts, MediatedTransferPartsError,
    MEDIATED_TRANSFER_VERSION,
};
use channel_core::primitives::u256_dec;
use channel_core::{Address, HashTimeLock, Secret, U256};
use serde::{Deserialize, Serialize};

use crate::store::{record, StoreError};

/// The version byte of the records (the only one in the field).
pub const MEDIATED_RECORD_VERSION: u8 = 1;

/// One mediated transfer, as stored (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediatedTransferRecord {
    /// The core's format version of the transfer, always [`MEDIATED_TRANSFER_VERSION`].
    pub version: u32,
    #[serde(with = "u256_dec")]
    pub incoming_channel: U256,
    pub payer: Address,
    pub incoming_lock: HashTimeLock,
    #[serde(with = "u256_dec")]
    pub outgoing_channel: U256,
    pub payee: Address,
    pub outgoing_lock: HashTimeLock,
    #[serde(with = "u256_dec")]
    pub fee: U256,
    pub reveal_timeout: u64,
    pub secret: Option<Secret>,
    pub secret_registered_at: Option<u64>,
    pub incoming: LegRecord,
    pub outgoing: LegRecord,
}

/// Where one lock of the transfer stands (the core's `Leg`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LegRecord {
    Locked,
    Unlocked,
    Expired,
    SettledToReceiver,
    SettledToSender,
}

/// Why a decoded record is not a transfer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransferRecordError {
    #[error("transfer format version {0} is not {MEDIATED_TRANSFER_VERSION}")]
    Version(u32),
    #[error(transparent)]
    Parts(#[from] MediatedTransferPartsError),
}

impl MediatedTransferRecord {
    pub fn from_transfer(t: &MediatedTransfer) -> Self {
        let p = t.to_parts();
        Self {
            version: MEDIATED_TRANSFER_VERSION,
            incoming_channel: p.incoming_channel,
            payer: p.payer,
            incoming_lock: p.incoming_lock,
            outgoing_channel: p.outgoing_channel,
            payee: p.payee,
            outgoing_lock: p.outgoing_lock,
            fee: p.fee,
            reveal_timeout: p.reveal_timeout,
            secret: p.secret,
            secret_registered_at: p.secret_registered_at,
            incoming: p.incoming.into(),
            outgoing: p.outgoing.into(),
        }
    }

    pub fn into_transfer(self) -> Result<MediatedTransfer, TransferRecordError> {
        if self.version != MEDIATED_TRANSFER_VERSION {
            return Err(TransferRecordError::Version(self.version));
        }
        Ok(MediatedTransfer::from_parts(MediatedTransferParts {
            incoming_channel: self.incoming_channel,
            payer: self.payer,
            incoming_lock: self.incoming_lock,
            outgoing_channel: self.outgoing_channel,
            payee: self.payee,
            outgoing_lock: self.outgoing_lock,
            fee: self.fee,
            reveal_timeout: self.reveal_timeout,
            secret: self.secret,
            secret_registered_at: self.secret_registered_at,
            incoming: self.incoming.into(),
            outgoing: self.outgoing.into(),
        })?)
    }

    /// `t` as stored: `[MEDIATED_RECORD_VERSION] ++ JSON`.
    pub fn encode(t: &MediatedTransfer) -> Result<Vec<u8>, StoreError> {
        record::encode(MEDIATED_RECORD_VERSION, &Self::from_transfer(t))
    }

    /// The transfer stored as `bytes` under `namespace/key`, of any version still in the
    /// field; an unknown version is refused with [`StoreError::Version`].
    pub fn decode(
        namespace: &str,
        key: &str,
        bytes: &[u8],
    ) -> Result<MediatedTransfer, StoreError> {
        let (version, payload) = record::split(namespace, key, bytes)?;
        let rec: Self = match version {
            1 => record::json(namespace, key, payload)?,
            found => {
                return Err(record::unknown_version(
                    namespace,
                    key,
                    found,
                    MEDIATED_RECORD_VERSION,
                ))
            }
        };
        rec.into_transfer()
            .map_err(|e| record::corrupt(namespace, key, e))
    }
}

impl From<Leg> for LegRecord {
    fn from(l: Leg) -> Self {
        match l {
            Leg::Locked => Self::Locked,
            Leg::Unlocked => Self::Unlocked,
            Leg::Expired => Self::Expired,
            Leg::SettledToReceiver => Self::SettledToReceiver,
            Leg::SettledToSender => Self::SettledToSender,
        }
    }
}

impl From<LegRecord> for Leg {
    fn from(l: LegRecord) -> Self {
        match l {
            LegRecord::Locked => Self::Locked,
            LegRecord::Unlocked => Self::Unlocked,
            LegRecord::Expired => Self::Expired,
            LegRecord::SettledToReceiver => Self::SettledToReceiver,
            LegRecord::SettledToSender => Self::SettledToSender,
        }
    }
}

#[cfg(test)]
mod tests {
    use channel_core::H256;
    use serde_json::{json, Value};

    use super::*;

    fn parts() -> MediatedTransferParts {
        let secret = Secret(H256([0x5e; 32]));
        let lock = HashTimeLock {
            expiration: 100,
            amount: U256::from(10u8),
            secrethash: secret.hash(),
        };
        MediatedTransferParts {
            incoming_channel: U256::from(1u8),
            payer: Address([0x11; 20]),
            incoming_lock: lock,
            outgoing_channel: U256::from(2u8),
            payee: Address([0x22; 20]),
            outgoing_lock: HashTimeLock {
                expiration: 90,
                amount: U256::from(9u8),
                ..lock
            },
            fee: U256::from(1u8),
            reveal_timeout: 20,
            secret: Some(secret),
            secret_registered_at: Some(95),
            incoming: Leg::SettledToReceiver,
            outgoing: Leg::Unlocked,
        }
    }

    fn want() -> Value {
        let secrethash = "0x9985b2e4b9b71b28ce59ea5ce77f0b110637b625c6d7f41e982c9510940a2056";
        json!({
            "version": 1,
            "incoming_channel": "1",
            "payer": format!("0x{}", "11".repeat(20)),
            "incoming_lock": { "expiration": 100, "amount": "10", "secrethash": secrethash },
            "outgoing_channel": "2",
            "payee": format!("0x{}", "22".repeat(20)),
            "outgoing_lock": { "expiration": 90, "amount": "9", "secrethash": secrethash },
            "fee": "1",
            "reveal_timeout": 20,
            "secret": format!("0x{}", "5e".repeat(32)),
            "secret_registered_at": 95,
            "incoming": "SettledToReceiver",
            "outgoing": "Unlocked"
        })
    }

    #[test]
    fn v1_layout_of_a_mediated_transfer_is_frozen() {
        let t = MediatedTransfer::from_parts(parts()).unwrap();
        let bytes = MediatedTransferRecord::encode(&t).unwrap();
        assert_eq!(bytes[0], MEDIATED_RECORD_VERSION);
        let got: Value = serde_json::from_slice(&bytes[1..]).unwrap();
        let want = want();
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(&got[field], value, "{field}");
        }
        assert_eq!(got, want);
        // The layout the core type's own serde wrote until now.
        assert_eq!(serde_json::to_value(&t).unwrap(), want);
        let mut stored = vec![1u8];
        stored.extend(serde_json::to_vec(&want).unwrap());
        assert_eq!(
            MediatedTransferRecord::decode("mediated", "k", &stored).unwrap(),
            t
        );
    }

    #[test]
    fn unknown_versions_and_broken_transfers_are_refused() {
        let t = MediatedTransfer::from_parts(parts()).unwrap();
        let mut bytes = MediatedTransferRecord::encode(&t).unwrap();
        bytes[0] = 2;
        assert!(matches!(
            MediatedTransferRecord::decode("mediated", "k", &bytes),
            Err(StoreError::Version {
                found: 2,
                supported: 1,
                ..
            })
        ));
        let mut inner = want();
        inner["version"] = json!(2);
        let mut other_secret = want();
        other_secret["secret"] = json!(format!("0x{}", "77".repeat(32)));
        for broken in [inner, other_secret] {
            let mut stored = vec![1u8];
            stored.extend(serde_json::to_vec(&broken).unwrap());
            assert!(matches!(
                MediatedTransferRecord::decode("mediated", "k", &stored),
                Err(StoreError::Corrupt { .. })
            ));
        }
    }
}
