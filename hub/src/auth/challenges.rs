//! Single-use, short-lived auth challenges. Pure: `now` and the random bytes are arguments.

use std::collections::HashMap;

use channel_core::crypto::verify_signer;
use channel_core::primitives::Address;
use channel_core::Signature;
use voltlane_proto::auth::auth_digest;

use super::AuthError;

/// Outstanding challenges above which new ones are refused (after pruning expired ones).
pub const MAX_PENDING_CHALLENGES: usize = 100_000;

/// A challenge handed to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuedChallenge {
    pub challenge: [u8; 32],
    pub expires_at: u64,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    address: Address,
    expires_at: u64,
}

/// Challenges issued and not yet redeemed.
#[derive(Debug)]
pub struct ChallengeBook {
    hub: Address,
    ttl: u64,
    pending: HashMap<[u8; 32], Pending>,
}

impl ChallengeBook {
    pub fn new(hub: Address, ttl_secs: u64) -> Self {
        Self {
            hub,
            ttl: ttl_secs,
            pending: HashMap::new(),
        }
    }

    /// Records `challenge` (fresh random bytes) for `address`, valid while `now < expires_at`.
    pub fn issue(
        &mut self,
        address: Address,
        challenge: [u8; 32],
        now: u64,
    ) -> Result<IssuedChallenge, AuthError> {
        if self.pending.len() >= MAX_PENDING_CHALLENGES {
            self.pending.retain(|_, p| p.expires_at > now);
            if self.pending.len() >= MAX_PENDING_CHALLENGES {
                return Err(AuthError::TooManyChallenges);
            }
        }
        let expires_at = now.saturating_add(self.ttl);
        self.pending.insert(
            challenge,
            Pending {
                address,
                expires_at,
            },
        );
        Ok(IssuedChallenge {
            challenge,
            expires_at,
        })
    }

    /// Consumes the challenge (whatever the outcome: it is single-use) and checks that it was
    /// issued to `address`, has not expired and that `signature` is `address`'s over the auth
    /// digest for this hub.
    pub fn redeem(
        &mut self,
        address: Address,
        challenge: &[u8; 32],
        signature: &Signature,
        now: u64,
    ) -> Result<(), AuthError> {
        let pending = self
            .pending
            .remove(challenge)
            .ok_or(AuthError::UnknownChallenge)?;
        if now >= pending.expires_at {
            return Err(AuthError::UnknownChallenge);
        }
        if pending.address != address {
            return Err(AuthError::ChallengeAddressMismatch {
                issued_to: pending.address,
                claimed: address,
            });
        }
        verify_signer(&auth_digest(&self.hub, challenge), signature, address).map_err(|e| {
            AuthError::BadSignature {
                expected: address,
                reason: e.to_string(),
            }
        })
    }

    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use channel_core::crypto::{LocalSigner, Signer};

    use super::*;

    fn key(n: u8) -> LocalSigner {
        channel_core::testing::test_signer(n)
    }

    #[test]
    fn single_use_expiring_and_bound_to_address_and_hub() {
        let hub = Address([9; 20]);
        let dev = key(1);
        let mut book = ChallengeBook::new(hub, 60);
        let c = book.issue(dev.address(), [1; 32], 100).unwrap();
        assert_eq!(c.expires_at, 160);
        let sig = dev.sign_hash(&auth_digest(&hub, &c.challenge)).unwrap();
        book.redeem(dev.address(), &c.challenge, &sig, 110).unwrap();
        assert_eq!(
            book.redeem(dev.address(), &c.challenge, &sig, 110),
            Err(AuthError::UnknownChallenge),
            "replay"
        );

        book.issue(dev.address(), [2; 32], 100).unwrap();
        let sig = dev.sign_hash(&auth_digest(&hub, &[2; 32])).unwrap();
        assert_eq!(
            book.redeem(dev.address(), &[2; 32], &sig, 160),
            Err(AuthError::UnknownChallenge),
            "expired"
        );

        book.issue(dev.address(), [3; 32], 100).unwrap();
        let other_hub = dev
            .sign_hash(&auth_digest(&Address([8; 20]), &[3; 32]))
            .unwrap();
        assert!(matches!(
            book.redeem(dev.address(), &[3; 32], &other_hub, 101),
            Err(AuthError::BadSignature { .. })
        ));

        book.issue(dev.address(), [4; 32], 100).unwrap();
        let sig = key(2).sign_hash(&auth_digest(&hub, &[4; 32])).unwrap();
        assert!(matches!(
            book.redeem(key(2).address(), &[4; 32], &sig, 101),
            Err(AuthError::ChallengeAddressMismatch { .. })
        ));
        assert_eq!(book.pending_count(), 0);
    }
}
