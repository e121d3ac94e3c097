//! Versioned records: one format-version byte, then the payload (serde_json here). Readers
//! refuse versions they do not know instead of misreading them.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::StoreError;

/// Encodes `value` as `[version] ++ json`.
pub fn encode<T: Serialize>(version: u8, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![version];
    serde_json::to_writer(&mut out, value)
        .map_err(|e| StoreError::Backend(format!("encoding record: {e}")))?;
    Ok(out)
}

/// Decodes a record written by [`encode`] with exactly `supported` as its version.
pub fn decode<T: DeserializeOwned>(
    namespace: &str,
    key: &str,
    supported: u8,
    bytes: &[u8],
) -> Result<T, StoreError> {
    let (version, payload) = split(namespace, key, bytes)?;
    if version != supported {
        return Err(unknown_version(namespace, key, version, supported));
    }
    json(namespace, key, payload)
}

/// A record's version byte and payload (for a reader that matches on the version).
pub fn split<'a>(
    namespace: &str,
    key: &str,
    bytes: &'a [u8],
) -> Result<(u8, &'a [u8]), StoreError> {
    let (version, payload) = bytes.split_first().ok_or_else(|| StoreError::Corrupt {
        namespace: namespace.to_string(),
        key: key.to_string(),
        reason: "empty record".into(),
    })?;
    Ok((*version, payload))
}

/// A JSON payload as `T`.
pub fn json<T: DeserializeOwned>(
    namespace: &str,
    key: &str,
    payload: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(payload).map_err(|e| corrupt(namespace, key, e))
}

/// The refusal of a record whose version `found` this build cannot read (it writes `supported`).
pub fn unknown_version(namespace: &str, key: &str, found: u8, supported: u8) -> StoreError {
    StoreError::Version {
        namespace: namespace.to_string(),
        key: key.to_string(),
        found,
        supported,
    }
}

/// The refusal of a record that decoded but does not make sense (`reason`).
pub fn corrupt(namespace: &str, key: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        namespace: namespace.to_string(),
        key: key.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let bytes = encode(1, &vec![1u32, 2, 3]).unwrap();
        assert_eq!(bytes[0], 1);
        let v: Vec<u32> = decode("ns", "k", 1, &bytes).unwrap();
        assert_eq!(v, vec![1, 2, 3]);
        assert!(matches!(
            decode::<Vec<u32>>("ns", "k", 2, &bytes),
            Err(StoreError::Version {
                found: 1,
                supported: 2,
                ..
            })
        ));
        assert!(matches!(
            decode::<Vec<u32>>("ns", "k", 1, &[]),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
