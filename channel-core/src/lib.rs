//! # channel-core
//!
//! The Voltlane protocol engine: everything two parties need to agree on money off-chain and
//! enforce it on a Raiden TokenNetwork v0.50 compatible ledger.
//!
//! - [`primitives`]: addresses, hashes, U256.
//! - [`crypto`]: keccak/sha256, EIP-191, secp256k1 signatures, the [`crypto::Signer`] trait.
//! - [`proofs`]: balance, counter-signed and withdraw proofs, packed as the contract expects.
//! - [`locks`]: hash-time locks and locksroots.
//! - [`settlement`]: the contract's settlement arithmetic.
//! - [`channel`]: one channel as one participant sees it, a state machine fed with inputs.
//! - [`ledger`]: a deterministic token-network ledger implementing the on-chain rules.
//! - [`session`]: metered sessions, payments bound to signed meter readings.
//!
//! What this crate does not do: no networking, no disk, no clock, no randomness. Ledger time
//! (seconds) and random bytes are arguments; persistence and transport belong to the drivers
//! (`voltlane-hub`, `voltlane-client`).

pub mod channel;
pub mod crypto;
pub mod ledger;
pub mod liquidity;
pub mod locks;
pub mod mediation;
pub mod primitives;
pub mod proofs;
pub mod session;
pub mod settlement;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use crypto::{CryptoError, LocalSigner, PeerKey, Signature, Signer};
pub use locks::{HashTimeLock, PendingLocks, Secret, EMPTY_LOCKSROOT};
pub use primitives::{Address, H256, U256};
pub use proofs::{BalanceData, BalanceProof, Domain, SignedBalanceProof, WithdrawProof};
