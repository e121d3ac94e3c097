//! Stateless, self-authenticating auth challenges, single use once redeemed.
//!
//! A challenge is 32 bytes: `expires_at (8, big-endian unix seconds) || nonce (8 random) ||
//! mac (16)`, where `mac` is the first 16 bytes of
//! `keccak256(secret || hub || device || expires_at || nonce)` under a per-process random
//! `secret`. Issuing one stores nothing, so no number of `GetChallenge` calls can fill a table
//! and lock other devices out. Redeeming recomputes the MAC (the challenge must have been
//! issued by this hub process to this device), checks the expiry and the device's signature,
//! and only then records the challenge as used until it expires: only a signed, valid
//! challenge costs the hub memory, for at most the challenge lifetime.
//!
//! Pure: `now`, the random nonce and the secret are arguments.

use std::collections::BTreeSet;

use channel_core::crypto::{keccak256_concat, verify_signer};
use channel_core::primitives::Address;
use channel_core::Signature;
use voltlane_proto::auth::auth_digest;

use super::AuthError;

/// Length of the MAC inside a challenge.
const MAC_LEN: usize = 16;

/// A challenge handed to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssuedChallenge {
    pub challenge: [u8; 32],
    pub expires_at: u64,
}

/// Issues and redeems challenges for one hub. Holds only the challenges already redeemed and
/// not yet expired.
#[derive(Debug)]
pub struct ChallengeBook {
    hub: Address,
    ttl: u64,
    secret: [u8; 32],
    /// Redeemed challenges by `(expires_at, challenge)`, so expired ones prune from the front.
    used: BTreeSet<(u64, [u8; 32])>,
}

impl ChallengeBook {
    /// A book for `hub` whose challenges live `ttl_secs`, keyed by `secret` (32 fresh random
    /// bytes per process: challenges of an earlier process or another hub do not verify).
    pub fn new(hub: Address, ttl_secs: u64, secret: [u8; 32]) -> Self {
        Self {
            hub,
            ttl: ttl_secs,
            secret,
            used: BTreeSet::new(),
        }
    }

    /// A challenge for `address`, valid while `now < expires_at`, made unique by `nonce` (fresh
    /// random bytes). Changes nothing.
    pub fn issue(&self, address: Address, nonce: [u8; 8], now: u64) -> IssuedChallenge {
        let expires_at = now.saturating_add(self.ttl);
        let mut challenge = [0u8; 32];
        challenge[..8].copy_from_slice(&expires_at.to_be_bytes());
        challenge[8..16].copy_from_slice(&nonce);
        let mac = self.mac(address, &challenge[..16]);
        challenge[16..].copy_from_slice(&mac);
        IssuedChallenge {
            challenge,
            expires_at,
        }
    }

    /// Checks that `challenge` was issued by this book to `address`, has not expired, has not
    /// been redeemed and that `signature` is `address`'s over the auth digest for this hub;
    /// then marks it used. A refused challenge changes nothing (it stays redeemable by the
    /// device it was issued to, with a correct signature).
    pub fn redeem(
        &mut self,
        address: Address,
        challenge: &[u8; 32],
        signature: &Signature,
        now: u64,
    ) -> Result<(), AuthError> {
        self.prune(now);
        let expected = self.mac(address, &challenge[..16]);
        if !constant_time_eq(&expected, &challenge[16..]) {
            return Err(AuthError::ForeignChallenge { claimed: address });
        }
        let expires_at = expiry_of(challenge);
        if now >= expires_at {
            return Err(AuthError::ChallengeExpired { expires_at, now });
        }
        let key = (expires_at, *challenge);
        if self.used.contains(&key) {
            return Err(AuthError::ChallengeUsed);
        }
        verify_signer(&auth_digest(&self.hub, challenge), signature, address).map_err(|e| {
            AuthError::BadSignature {
                expected: address,
                reason: e.to_string(),
            }
        })?;
        self.used.insert(key);
        Ok(())
    }

    /// Redeemed challenges still remembered (those not yet expired at the last redeem).
    pub fn used_count(&self) -> usize {
        self.used.len()
    }

    /// Forgets redeemed challenges that expired at or before `now`: they fail the expiry check
    /// anyway.
    fn prune(&mut self, now: u64) {
        self.used = self.used.split_off(&(now.saturating_add(1), [0u8; 32]));
    }

    fn mac(&self, address: Address, expiry_and_nonce: &[u8]) -> [u8; MAC_LEN] {
        let digest = keccak256_concat(&[
            &self.secret,
            self.hub.as_bytes(),
            address.as_bytes(),
            expiry_and_nonce,
        ]);
        let mut mac = [0u8; MAC_LEN];
        mac.copy_from_slice(&digest.0[..MAC_LEN]);
        mac
    }
}

fn expiry_of(challenge: &[u8; 32]) -> u64 {
    let mut expiry = [0u8; 8];
    expiry.copy_from_slice(&challenge[..8]);
    u64::from_be_bytes(expiry)
}

/// Compares without stopping at the first differing byte, so the time taken does not tell a
/// forger how much of a guessed MAC was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use channel_core::crypto::{LocalSigner, Signer};

    use super::*;

    const HUB: Address = Address([9; 20]);
    const SECRET: [u8; 32] = [0x5e; 32];

    fn key(n: u8) -> LocalSigner {
        channel_core::testing::test_signer(n)
    }

    fn book() -> ChallengeBook {
        ChallengeBook::new(HUB, 60, SECRET)
    }

    fn signed(who: &LocalSigner, hub: Address, challenge: &[u8; 32]) -> Signature {
        who.sign_hash(&auth_digest(&hub, challenge)).unwrap()
    }

    #[test]
    fn issuing_is_stateless_and_encodes_expiry_and_nonce() {
        let book = book();
        let dev = key(1).address();
        let c = book.issue(dev, [1; 8], 100);
        assert_eq!(c.expires_at, 160);
        assert_eq!(c.challenge[..8], 160u64.to_be_bytes());
        assert_eq!(c.challenge[8..16], [1; 8]);
        assert_eq!(
            book.issue(dev, [1; 8], 100),
            c,
            "deterministic in its inputs"
        );
        assert_ne!(book.issue(dev, [2; 8], 100).challenge, c.challenge);
        assert_ne!(
            book.issue(key(2).address(), [1; 8], 100).challenge[16..],
            c.challenge[16..],
            "the MAC covers the device"
        );
        assert_eq!(book.used_count(), 0);
    }

    #[test]
    fn a_challenge_is_single_use() {
        let mut book = book();
        let dev = key(1);
        let c = book.issue(dev.address(), [1; 8], 100);
        let sig = signed(&dev, HUB, &c.challenge);
        assert_eq!(book.redeem(dev.address(), &c.challenge, &sig, 110), Ok(()));
        assert_eq!(book.used_count(), 1);
        assert_eq!(
            book.redeem(dev.address(), &c.challenge, &sig, 111),
            Err(AuthError::ChallengeUsed),
            "replay"
        );
        // Another challenge of the same device is independent.
        let d = book.issue(dev.address(), [2; 8], 100);
        let sig = signed(&dev, HUB, &d.challenge);
        assert_eq!(book.redeem(dev.address(), &d.challenge, &sig, 111), Ok(()));
        assert_eq!(book.used_count(), 2);
    }

    #[test]
    fn a_challenge_expires_and_used_ones_are_pruned_after_expiry() {
        let mut book = book();
        let dev = key(1);
        let c = book.issue(dev.address(), [1; 8], 100);
        let sig = signed(&dev, HUB, &c.challenge);
        assert_eq!(
            book.redeem(dev.address(), &c.challenge, &sig, 160),
            Err(AuthError::ChallengeExpired {
                expires_at: 160,
                now: 160
            })
        );
        assert_eq!(book.used_count(), 0, "a refused redeem records nothing");
        assert_eq!(book.redeem(dev.address(), &c.challenge, &sig, 159), Ok(()));
        assert_eq!(book.used_count(), 1);

        // A later redeem prunes the expired entry; the old challenge is refused as expired.
        let later = book.issue(dev.address(), [2; 8], 170);
        let sig_later = signed(&dev, HUB, &later.challenge);
        assert_eq!(
            book.redeem(dev.address(), &later.challenge, &sig_later, 171),
            Ok(())
        );
        assert_eq!(book.used_count(), 1, "the expired entry was pruned");
        assert!(matches!(
            book.redeem(dev.address(), &c.challenge, &sig, 172),
            Err(AuthError::ChallengeExpired { .. })
        ));
    }

    #[test]
    fn a_challenge_is_bound_to_the_device_it_was_issued_to() {
        let mut book = book();
        let (dev, thief) = (key(1), key(2));
        let c = book.issue(dev.address(), [1; 8], 100);
        let sig = signed(&thief, HUB, &c.challenge);
        assert_eq!(
            book.redeem(thief.address(), &c.challenge, &sig, 101),
            Err(AuthError::ForeignChallenge {
                claimed: thief.address()
            })
        );
        // The device it was issued to can still use it.
        let sig = signed(&dev, HUB, &c.challenge);
        assert_eq!(book.redeem(dev.address(), &c.challenge, &sig, 101), Ok(()));
    }

    #[test]
    fn a_challenge_is_bound_to_the_hub_and_process_that_issued_it() {
        let dev = key(1);
        let other_hub = ChallengeBook::new(Address([8; 20]), 60, SECRET);
        let c = other_hub.issue(dev.address(), [1; 8], 100);
        let mut book = book();
        let sig = signed(&dev, HUB, &c.challenge);
        assert!(matches!(
            book.redeem(dev.address(), &c.challenge, &sig, 101),
            Err(AuthError::ForeignChallenge { .. })
        ));

        let restarted = ChallengeBook::new(HUB, 60, [0x11; 32]);
        let c = restarted.issue(dev.address(), [1; 8], 100);
        let sig = signed(&dev, HUB, &c.challenge);
        assert!(matches!(
            book.redeem(dev.address(), &c.challenge, &sig, 101),
            Err(AuthError::ForeignChallenge { .. })
        ));
        assert_eq!(book.used_count(), 0);
    }

    #[test]
    fn forged_or_tampered_challenges_are_refused() {
        let mut book = book();
        let dev = key(1);
        let c = book.issue(dev.address(), [1; 8], 100);

        // A made-up challenge with a guessed MAC.
        let mut forged = c.challenge;
        forged[31] ^= 1;
        let sig = signed(&dev, HUB, &forged);
        assert!(matches!(
            book.redeem(dev.address(), &forged, &sig, 101),
            Err(AuthError::ForeignChallenge { .. })
        ));

        // The expiry pushed into the future: the MAC no longer matches.
        let mut extended = c.challenge;
        extended[..8].copy_from_slice(&10_000u64.to_be_bytes());
        let sig = signed(&dev, HUB, &extended);
        assert!(matches!(
            book.redeem(dev.address(), &extended, &sig, 200),
            Err(AuthError::ForeignChallenge { .. })
        ));

        // A different nonce under the same MAC.
        let mut renonced = c.challenge;
        renonced[8] ^= 0x80;
        let sig = signed(&dev, HUB, &renonced);
        assert!(matches!(
            book.redeem(dev.address(), &renonced, &sig, 101),
            Err(AuthError::ForeignChallenge { .. })
        ));
        assert_eq!(book.used_count(), 0);
    }

    #[test]
    fn a_bad_signature_does_not_use_up_the_challenge() {
        let mut book = book();
        let dev = key(1);
        let c = book.issue(dev.address(), [1; 8], 100);
        let for_other_hub = signed(&dev, Address([8; 20]), &c.challenge);
        assert!(matches!(
            book.redeem(dev.address(), &c.challenge, &for_other_hub, 101),
            Err(AuthError::BadSignature { .. })
        ));
        let by_someone_else = signed(&key(2), HUB, &c.challenge);
        assert!(matches!(
            book.redeem(dev.address(), &c.challenge, &by_someone_else, 101),
            Err(AuthError::BadSignature { .. })
        ));
        assert_eq!(book.used_count(), 0);
        let sig = signed(&dev, HUB, &c.challenge);
        assert_eq!(book.redeem(dev.address(), &c.challenge, &sig, 101), Ok(()));
    }
}
