//! [`LedgerMirrorRecord`]: the stored form of the chain follower's
//! [`LedgerMirror`](channel_core::ledger::LedgerMirror) inside
//! [`ChainFollowerRecord`](super::ChainFollowerRecord) (namespace `device`, key
//! `chain_follower`, written with the device's [`RECORD_VERSION`](super::RECORD_VERSION)).
//!
//! The mirror's fields are private to the core; this record freezes the layout its derived
//! serde wrote until now (channels by id as 78 zero-padded decimal digits, secrets by
//! secrethash, the kept-back entries, the last event's seq and ledger time) and converts
//! through [`LedgerMirror::to_parts`] / [`LedgerMirror::from_parts`]. The ledger record types
//! inside it (`MirroredChannel`, `KeptBack`) have public fields and keep their own serde.

use std::collections::BTreeMap;

use channel_core::ledger::{KeptBack, LedgerMirror, MirrorParts, MirroredChannel};
use channel_core::H256;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The mirror as stored (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMirrorRecord {
    /// Every mirrored channel, by its id as 78 zero-padded decimal digits.
    pub channels: BTreeMap<String, MirroredChannel>,
    /// Registration time of every registered secret, by secrethash.
    pub secrets: BTreeMap<H256, u64>,
    pub kept_back: Vec<KeptBack>,
    pub last_seq: u64,
    pub last_time: u64,
}

impl From<&LedgerMirror> for LedgerMirrorRecord {
    fn from(mirror: &LedgerMirror) -> Self {
        let parts = mirror.to_parts();
        Self {
            channels: parts
                .channels
                .into_iter()
                .map(|c| (format!("{:0>78}", c.record.id), c))
                .collect(),
            secrets: parts.secrets.into_iter().collect(),
            kept_back: parts.kept_back,
            last_seq: parts.last_seq,
            last_time: parts.last_time,
        }
    }
}

impl From<LedgerMirrorRecord> for LedgerMirror {
    /// The mirror of the record (channels are filed again under their own ids).
    fn from(r: LedgerMirrorRecord) -> Self {
        LedgerMirror::from_parts(MirrorParts {
            channels: r.channels.into_values().collect(),
            secrets: r.secrets.into_iter().collect(),
            kept_back: r.kept_back,
            last_seq: r.last_seq,
            last_time: r.last_time,
        })
    }
}

/// `#[serde(with = "…")]` for a [`LedgerMirror`] field stored as a [`LedgerMirrorRecord`].
pub mod as_record {
    use super::*;

    pub fn serialize<S: Serializer>(mirror: &LedgerMirror, s: S) -> Result<S::Ok, S::Error> {
        LedgerMirrorRecord::from(mirror).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LedgerMirror, D::Error> {
        LedgerMirrorRecord::deserialize(d).map(LedgerMirror::from)
    }
}

#[cfg(test)]
mod tests {
    use channel_core::ledger::{LedgerEvent, LedgerEventKind};
    use channel_core::{Address, Secret, U256};
    use serde_json::json;

    use super::*;

    #[test]
    fn layout_of_the_mirror_is_frozen() {
        let mut mirror = LedgerMirror::new();
        let opened = LedgerEvent {
            seq: 1,
            time: 100,
            kind: LedgerEventKind::ChannelOpened {
                channel_id: U256::from(5u8),
                participant1: Address([0x11; 20]),
                participant2: Address([0x22; 20]),
                settlement_timeout: 500,
            },
        };
        let secret = Secret(H256([0x5e; 32]));
        let registered = LedgerEvent {
            seq: 2,
            time: 120,
            kind: LedgerEventKind::SecretRegistered {
                secrethash: secret.hash(),
                secret,
            },
        };
        for e in [&opened, &registered] {
            mirror.apply(e).unwrap();
        }
        let value = serde_json::to_value(LedgerMirrorRecord::from(&mirror)).unwrap();
        // The ledger's own record type of the channel keeps its serde.
        let channel = serde_json::to_value(mirror.mirrored_channel(U256::from(5u8))).unwrap();
        let want = json!({
            "channels": { format!("{:0>78}", 5): channel },
            "secrets": {
                "0x9985b2e4b9b71b28ce59ea5ce77f0b110637b625c6d7f41e982c9510940a2056": 120
            },
            "kept_back": [],
            "last_seq": 2,
            "last_time": 120
        });
        assert_eq!(value, want);
        // The layout the mirror's own serde wrote until now.
        assert_eq!(serde_json::to_value(&mirror).unwrap(), want);
        let back: LedgerMirrorRecord = serde_json::from_value(want).unwrap();
        assert_eq!(LedgerMirror::from(back), mirror);
    }
}
