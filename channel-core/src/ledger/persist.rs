//! How ledger state is written with serde: maps become sequences so that any format works
//! (serde_json only allows string map keys), amounts are decimal strings as everywhere else in
//! the crate, and the record carries a format version that loading checks.
//!
//! Owns only the encoding; the in-memory state stays in `BTreeMap`s for deterministic order.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::primitives::{u256_dec, U256};

/// Version of the persisted ledger layout. Bump when the layout changes.
pub const LEDGER_FORMAT_VERSION: u32 = 1;

/// A record that knows its own map key, so a map of them is stored as a plain list.
pub trait Keyed {
    type Key: Ord;
    fn key(&self) -> Self::Key;
}

/// `BTreeMap<V::Key, V>` as a list of `V`; the key is recomputed on load and duplicates are
/// rejected.
pub mod keyed_list {
    use super::*;

    pub fn serialize<S, V>(map: &BTreeMap<V::Key, V>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        V: Keyed + Serialize,
    {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, D, V>(d: D) -> Result<BTreeMap<V::Key, V>, D::Error>
    where
        D: Deserializer<'de>,
        V: Keyed + Deserialize<'de>,
    {
        let mut map = BTreeMap::new();
        for item in Vec::<V>::deserialize(d)? {
            if map.insert(item.key(), item).is_some() {
                return Err(D::Error::custom("duplicate record in keyed list"));
            }
        }
        Ok(map)
    }
}

#[derive(Serialize, Deserialize)]
struct AmountEntry<K>(K, #[serde(with = "u256_dec")] U256);

/// `BTreeMap<K, U256>` as a list of `[key, "decimal"]` pairs.
pub mod amount_map {
    use super::*;

    pub fn serialize<S, K>(map: &BTreeMap<K, U256>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize + Copy,
    {
        s.collect_seq(map.iter().map(|(k, v)| AmountEntry(*k, *v)))
    }

    pub fn deserialize<'de, D, K>(d: D) -> Result<BTreeMap<K, U256>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
    {
        let mut map = BTreeMap::new();
        for AmountEntry(k, v) in Vec::<AmountEntry<K>>::deserialize(d)? {
            if map.insert(k, v).is_some() {
                return Err(D::Error::custom("duplicate key in amount map"));
            }
        }
        Ok(map)
    }
}

/// `BTreeMap<K, V>` as a list of `[key, value]` pairs.
pub mod pair_list {
    use super::*;

    pub fn serialize<S, K, V>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        K: Serialize,
        V: Serialize,
    {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, D, K, V>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        D: Deserializer<'de>,
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
    {
        let mut map = BTreeMap::new();
        for (k, v) in Vec::<(K, V)>::deserialize(d)? {
            if map.insert(k, v).is_some() {
                return Err(D::Error::custom("duplicate key in pair list"));
            }
        }
        Ok(map)
    }
}

/// Accepts only [`LEDGER_FORMAT_VERSION`].
pub fn version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v == LEDGER_FORMAT_VERSION {
        Ok(v)
    } else {
        Err(D::Error::custom(format!(
            "ledger format version {v} is not supported (expected {LEDGER_FORMAT_VERSION})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{Address, H256};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        #[serde(with = "amount_map")]
        amounts: BTreeMap<Address, U256>,
        #[serde(with = "pair_list")]
        times: BTreeMap<H256, u64>,
    }

    #[test]
    fn maps_roundtrip_through_json_as_lists() {
        let mut amounts = BTreeMap::new();
        amounts.insert(Address([1; 20]), U256::MAX);
        amounts.insert(Address([2; 20]), U256::from(7u8));
        let mut times = BTreeMap::new();
        times.insert(H256([3; 32]), 42u64);
        let sample = Sample { amounts, times };
        let json = serde_json::to_string(&sample).unwrap();
        assert!(
            json.contains("\"7\""),
            "amounts are decimal strings: {json}"
        );
        let back: Sample = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sample);
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let a = Address([1; 20]).to_string();
        let json = format!(r#"{{"amounts":[["{a}","1"],["{a}","2"]],"times":[]}}"#);
        assert!(serde_json::from_str::<Sample>(&json).is_err());
    }
}
