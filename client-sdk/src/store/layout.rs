//! The key layout of device stores written before the shared store seam: raw sled keys, single
//! records under bare names and nonces/hashes as raw bytes after a prefix. [`legacy_key`] names
//! each such key's place in today's namespaced layout; [`super::DeviceStore::open`] moves them
//! once. Values (version byte + JSON) are unchanged.

use super::{ns, CHAIN_FOLLOWER, CHANNEL, HUB, KEY, LEDGER_SEQ};

/// Single records stored under their bare name.
const SINGLES: [&str; 5] = [KEY, HUB, CHANNEL, LEDGER_SEQ, CHAIN_FOLLOWER];

/// Logs keyed by a big-endian `u64` nonce after the prefix.
const BY_NONCE: [(&[u8], &str); 3] = [
    (b"unacked/", ns::UNACKED),
    (b"hub_payment/", ns::HUB_PAYMENT),
    (b"signed_balance/", ns::SIGNED_BALANCE),
];

/// Records keyed by a 32-byte hash after the prefix.
const BY_HASH: [(&[u8], &str); 6] = [
    (b"signed_locks/", ns::SIGNED_LOCKS),
    (b"transfer/", ns::OUTGOING),
    (b"request/", ns::REQUEST),
    (b"incoming/", ns::INCOMING),
    (b"session-payee/", ns::PAYEE_SESSION),
    (b"session-payer/", ns::PAYER_SESSION),
];

/// Where the legacy raw key `raw` lives now (namespace, key), or `None` if it is not a legacy
/// key (today's keys never match: nonces are 20 decimal digits and hashes 64 hex digits).
pub(super) fn legacy_key(raw: &[u8]) -> Option<(String, String)> {
    if let Some(name) = SINGLES.iter().find(|n| n.as_bytes() == raw) {
        return Some((ns::DEVICE.to_string(), name.to_string()));
    }
    for (prefix, namespace) in BY_NONCE {
        if let Some(rest) = raw.strip_prefix(prefix) {
            if let Ok(bytes) = <[u8; 8]>::try_from(rest) {
                let nonce = u64::from_be_bytes(bytes);
                return Some((namespace.to_string(), super::nonce_key(nonce)));
            }
        }
    }
    for (prefix, namespace) in BY_HASH {
        if let Some(rest) = raw.strip_prefix(prefix) {
            if rest.len() == 32 {
                return Some((namespace.to_string(), hex::encode(rest)));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_keys_map_once_and_todays_keys_are_left_alone() {
        assert_eq!(
            legacy_key(b"channel"),
            Some(("device".into(), "channel".into()))
        );
        let mut unacked = b"unacked/".to_vec();
        unacked.extend_from_slice(&7u64.to_be_bytes());
        let (namespace, key) = legacy_key(&unacked).unwrap();
        assert_eq!(
            (namespace.as_str(), key.as_str()),
            ("unacked", "00000000000000000007")
        );
        let mut locks = b"signed_locks/".to_vec();
        locks.extend_from_slice(&[0xab; 32]);
        assert_eq!(legacy_key(&locks).unwrap().1, "ab".repeat(32));
        // Today's flat keys are not legacy keys.
        for today in [
            "device/channel".to_string(),
            format!("unacked/{key}"),
            format!("signed_locks/{}", "ab".repeat(32)),
        ] {
            assert_eq!(legacy_key(today.as_bytes()), None, "{today}");
        }
    }
}
