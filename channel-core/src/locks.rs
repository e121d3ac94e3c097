//! Hash-time locks: the 96-byte lock encoding, secrets and their sha256 hashes, and the ordered
//! set of pending locks whose keccak256 is the locksroot carried in balance proofs.

use serde::{Deserialize, Serialize};

use crate::crypto::{keccak256, sha256};
use crate::primitives::{u256_dec, u256_to_be, H256, U256};

/// keccak256 of the empty string: the locksroot of a channel direction with no pending locks.
pub const EMPTY_LOCKSROOT: H256 = H256([
    0xc5, 0xd2, 0x46, 0x01, 0x86, 0xf7, 0x23, 0x3c, 0x92, 0x7e, 0x7d, 0xb2, 0xdc, 0xc7, 0x03, 0xc0,
    0xe5, 0x00, 0xb6, 0x53, 0xca, 0x82, 0x27, 0x3b, 0x7b, 0xfa, 0xd8, 0x04, 0x5d, 0x85, 0xa4, 0x70,
]);

/// Bytes of one packed lock.
pub const LOCK_LEN: usize = 96;

/// A secret whose sha256 unlocks a hash-time lock.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Secret(pub H256);

impl Secret {
    pub fn hash(&self) -> H256 {
        sha256(self.0.as_bytes())
    }
}

/// One hash-time lock: `amount` moves to the receiver if the secret behind `secrethash` is
/// registered on the ledger strictly before `expiration` (ledger time, seconds).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct HashTimeLock {
    pub expiration: u64,
    #[serde(with = "u256_dec")]
    pub amount: U256,
    pub secrethash: H256,
}

impl HashTimeLock {
    /// `expiration (32) || amount (32) || secrethash (32)`.
    pub fn pack(&self) -> [u8; LOCK_LEN] {
        let mut out = [0u8; LOCK_LEN];
        out[..32].copy_from_slice(&u256_to_be(&U256::from(self.expiration)));
        out[32..64].copy_from_slice(&u256_to_be(&self.amount));
        out[64..].copy_from_slice(self.secrethash.as_bytes());
        out
    }

    /// The lock can no longer be claimed on chain at ledger time `now`.
    pub fn is_expired(&self, now: u64) -> bool {
        now >= self.expiration
    }
}

/// Errors from decoding packed locks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockDecodeError {
    #[error("packed locks length {0} is not a multiple of 96")]
    Length(usize),
    #[error("lock expiration does not fit in 64 bits")]
    Expiration,
}

/// Decodes a concatenation of packed locks.
pub fn unpack_locks(bytes: &[u8]) -> Result<Vec<HashTimeLock>, LockDecodeError> {
    if !bytes.len().is_multiple_of(LOCK_LEN) {
        return Err(LockDecodeError::Length(bytes.len()));
    }
    bytes
        .chunks_exact(LOCK_LEN)
        .map(|c| {
            let exp = U256::from_be_slice(&c[..32]);
            let expiration = u64::try_from(exp).map_err(|_| LockDecodeError::Expiration)?;
            Ok(HashTimeLock {
                expiration,
                amount: U256::from_be_slice(&c[32..64]),
                secrethash: H256(c[64..].try_into().map_err(|_| LockDecodeError::Length(0))?),
            })
        })
        .collect()
}

/// keccak256 of the packed locks, in order.
pub fn locksroot_of(locks: &[HashTimeLock]) -> H256 {
    keccak256(&pack_locks(locks))
}

/// Concatenation of packed locks.
pub fn pack_locks(locks: &[HashTimeLock]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(locks.len() * LOCK_LEN);
    for l in locks {
        buf.extend_from_slice(&l.pack());
    }
    buf
}

/// The pending locks of one direction of a channel, in creation order, with their total.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingLocks {
    locks: Vec<HashTimeLock>,
}

impl From<Vec<HashTimeLock>> for PendingLocks {
    /// The set of `locks`, in this order (a channel's invariants on them are checked by
    /// [`Channel::from_parts`](crate::channel::Channel::from_parts)).
    fn from(locks: Vec<HashTimeLock>) -> Self {
        Self { locks }
    }
}

impl PendingLocks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn as_slice(&self) -> &[HashTimeLock] {
        &self.locks
    }

    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.locks.is_empty()
    }

    pub fn get(&self, secrethash: &H256) -> Option<&HashTimeLock> {
        self.locks.iter().find(|l| &l.secrethash == secrethash)
    }

    pub fn contains(&self, secrethash: &H256) -> bool {
        self.get(secrethash).is_some()
    }

    /// Sum of all pending amounts; `None` on overflow (cannot happen for locks admitted by the
    /// channel, which caps them by the sender's balance).
    pub fn total(&self) -> Option<U256> {
        self.locks
            .iter()
            .try_fold(U256::ZERO, |acc, l| acc.checked_add(l.amount))
    }

    pub fn locksroot(&self) -> H256 {
        if self.locks.is_empty() {
            EMPTY_LOCKSROOT
        } else {
            locksroot_of(&self.locks)
        }
    }

    /// The set with `lock` appended (pure: `self` is untouched).
    pub fn with(&self, lock: HashTimeLock) -> Self {
        let mut locks = self.locks.clone();
        locks.push(lock);
        Self { locks }
    }

    /// The set without the lock for `secrethash`, and that lock.
    pub fn without(&self, secrethash: &H256) -> Option<(Self, HashTimeLock)> {
        let idx = self
            .locks
            .iter()
            .position(|l| &l.secrethash == secrethash)?;
        let mut locks = self.locks.clone();
        let removed = locks.remove(idx);
        Some((Self { locks }, removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_keccak_of_nothing() {
        assert_eq!(keccak256(&[]), EMPTY_LOCKSROOT);
        assert_eq!(PendingLocks::new().locksroot(), EMPTY_LOCKSROOT);
    }

    #[test]
    fn pack_unpack_roundtrip_and_order_matters() {
        let a = HashTimeLock {
            expiration: 10,
            amount: U256::from(5u8),
            secrethash: Secret(H256([1; 32])).hash(),
        };
        let b = HashTimeLock {
            expiration: 11,
            amount: U256::from(6u8),
            secrethash: Secret(H256([2; 32])).hash(),
        };
        let set = PendingLocks::new().with(a).with(b);
        assert_eq!(
            unpack_locks(&pack_locks(set.as_slice())).unwrap(),
            vec![a, b]
        );
        assert_ne!(locksroot_of(&[a, b]), locksroot_of(&[b, a]));
        assert_eq!(set.total(), Some(U256::from(11u8)));
        let (rest, removed) = set.without(&a.secrethash).unwrap();
        assert_eq!(removed, a);
        assert_eq!(rest.as_slice(), &[b]);
        assert!(unpack_locks(&[0u8; 95]).is_err());
    }
}
