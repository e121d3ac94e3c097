//! A channel taken apart into plain data ([`ChannelParts`]) and put together again, for drivers
//! whose record types own the on-disk layout: the core may rename or reshape its private fields
//! without changing what a driver writes, and a driver converts its records through this one
//! seam.
//!
//! [`Channel::from_parts`] checks the invariants the state machine relies on and that the data
//! alone can show (proofs for this channel, locks matching the latest proof of their side,
//! secrets filed under their own hash, withdraws for their own side) and refuses the parts with
//! a [`ChannelPartsError`] otherwise. It does not check signatures: the driver's own store is
//! trusted for those, as it was when the proofs were first checked.

use std::collections::{BTreeMap, BTreeSet};

use super::{Channel, ChannelPhase, EndState, KnownSecret};
use crate::crypto::PeerKey;
use crate::primitives::{Address, H256, U256};
use crate::proofs::Domain;

/// A channel as plain data (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelParts {
    pub domain: Domain,
    pub id: U256,
    pub our: EndState,
    pub partner: EndState,
    pub phase: ChannelPhase,
    /// Secrets of pending locks this side knows, by secrethash.
    pub secrets: BTreeMap<H256, KnownSecret>,
}

/// Which side of a channel a refused part belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelEnd {
    Our,
    Partner,
}

impl std::fmt::Display for ChannelEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChannelEnd::Our => "our",
            ChannelEnd::Partner => "the partner's",
        })
    }
}

/// Why [`Channel::from_parts`] refused its parts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelPartsError {
    #[error("{side} {what} is for another channel or ledger")]
    ForeignProof {
        side: ChannelEnd,
        what: &'static str,
    },
    #[error("{side} pending withdraw is for participant {got}, not {expected}")]
    WithdrawParticipant {
        side: ChannelEnd,
        expected: Address,
        got: Address,
    },
    #[error("{side} pending locks hold secrethash {0} twice", .secrethash)]
    DuplicateLock { side: ChannelEnd, secrethash: H256 },
    #[error("{side} pending locks overflow their total")]
    LockTotalOverflow { side: ChannelEnd },
    #[error("{side} pending locks do not match the {field} of {side} latest proof")]
    LocksMismatch {
        side: ChannelEnd,
        field: &'static str,
    },
    #[error("the secret filed under {0} does not hash to it", .secrethash)]
    SecretMismatch { secrethash: H256 },
}

impl Channel {
    /// This channel as plain data (the inverse of [`Channel::from_parts`]).
    pub fn to_parts(&self) -> ChannelParts {
        ChannelParts {
            domain: self.domain,
            id: self.id,
            our: self.our.clone(),
            partner: self.partner.clone(),
            phase: self.phase,
            secrets: self.secrets.clone(),
        }
    }

    /// A channel put together from `parts`, once their invariants hold (see the module docs).
    /// The partner's verifying key is learned again from its next signature.
    pub fn from_parts(parts: ChannelParts) -> Result<Self, ChannelPartsError> {
        for (side, end) in [
            (ChannelEnd::Our, &parts.our),
            (ChannelEnd::Partner, &parts.partner),
        ] {
            check_end(&parts.domain, &parts.id, side, end)?;
        }
        for (hash, known) in &parts.secrets {
            if known.secret.hash() != *hash {
                return Err(ChannelPartsError::SecretMismatch { secrethash: *hash });
            }
        }
        Ok(Self {
            domain: parts.domain,
            id: parts.id,
            partner_key: PeerKey::new(parts.partner.address),
            our: parts.our,
            partner: parts.partner,
            phase: parts.phase,
            secrets: parts.secrets,
        })
    }
}

/// The checks of one side's state.
fn check_end(
    domain: &Domain,
    id: &U256,
    side: ChannelEnd,
    end: &EndState,
) -> Result<(), ChannelPartsError> {
    if let Some(latest) = &end.latest {
        if latest.proof.domain != *domain || latest.proof.channel_identifier != *id {
            return Err(ChannelPartsError::ForeignProof {
                side,
                what: "latest balance proof",
            });
        }
    }
    if let Some(w) = &end.pending_withdraw {
        if w.proof.domain != *domain || w.proof.channel_identifier != *id {
            return Err(ChannelPartsError::ForeignProof {
                side,
                what: "pending withdraw",
            });
        }
        if w.proof.participant != end.address {
            return Err(ChannelPartsError::WithdrawParticipant {
                side,
                expected: end.address,
                got: w.proof.participant,
            });
        }
    }
    let mut seen = BTreeSet::new();
    for lock in end.locks.as_slice() {
        if !seen.insert(lock.secrethash) {
            return Err(ChannelPartsError::DuplicateLock {
                side,
                secrethash: lock.secrethash,
            });
        }
    }
    let balance = end.balance_data();
    let total = end
        .locks
        .total()
        .ok_or(ChannelPartsError::LockTotalOverflow { side })?;
    if total != balance.locked_amount {
        return Err(ChannelPartsError::LocksMismatch {
            side,
            field: "locked amount",
        });
    }
    if end.locks.locksroot() != balance.locksroot {
        return Err(ChannelPartsError::LocksMismatch {
            side,
            field: "locksroot",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Signer;
    use crate::locks::{HashTimeLock, PendingLocks, Secret};
    use crate::testing::{test_domain, test_signer as signer};

    fn channel() -> Channel {
        let (a, b) = (signer(1), signer(2));
        Channel::new(test_domain(), U256::from(7u8), a.address(), b.address())
    }

    #[test]
    fn parts_round_trip() {
        let ch = channel();
        assert_eq!(Channel::from_parts(ch.to_parts()), Ok(ch));
    }

    #[test]
    fn locks_without_a_proof_carrying_them_are_refused() {
        let mut parts = channel().to_parts();
        let lock = HashTimeLock {
            expiration: 10,
            amount: U256::from(5u8),
            secrethash: Secret(H256([1; 32])).hash(),
        };
        parts.our.locks = PendingLocks::from(vec![lock]);
        assert_eq!(
            Channel::from_parts(parts.clone()),
            Err(ChannelPartsError::LocksMismatch {
                side: ChannelEnd::Our,
                field: "locked amount"
            })
        );
        parts.our.locks = PendingLocks::from(vec![lock, lock]);
        assert!(matches!(
            Channel::from_parts(parts),
            Err(ChannelPartsError::DuplicateLock {
                side: ChannelEnd::Our,
                ..
            })
        ));
    }

    #[test]
    fn a_secret_under_another_hash_is_refused() {
        let mut parts = channel().to_parts();
        let secret = Secret(H256([3; 32]));
        parts.secrets.insert(
            H256([9; 32]),
            KnownSecret {
                secret,
                registered_at: None,
            },
        );
        assert_eq!(
            Channel::from_parts(parts),
            Err(ChannelPartsError::SecretMismatch {
                secrethash: H256([9; 32])
            })
        );
    }
}
