//! [`ChainError`]: what can go wrong when the hub settles on a chain, sorted by what the caller
//! must do, and its conversion into the hub's one error type.
//!
//! - Retry later: the node did not answer or answered nonsense ([`ChainError::Node`]). The
//!   follower keeps its cursor and tries again; nothing was persisted.
//! - Fix the configuration or the data directory: it follows another deployment
//!   ([`ChainError::OtherDeployment`]), its records do not fit together
//!   ([`ChainError::Inconsistent`]), or the chain's events do not fit the mirror
//!   ([`ChainError::Mirror`], typically a start block after the contract's deployment).
//! - Restart the hub: the store failed ([`ChainError::Store`], then [`ChainError::Failed`]).

use channel_core::ledger::MirrorError;
use channel_core::Address;
use voltlane_eth::{EthError, FollowError};

use crate::error::HubError;
use crate::store::StoreError;

/// Errors of the chain ledger driver (see the module docs).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    // --- retry later ----------------------------------------------------------------------
    /// The node refused, timed out, was unreachable, or its answer did not decode.
    #[error("ledger node: {0}")]
    Node(#[from] EthError),

    // --- fix the configuration or the data directory ----------------------------------------
    /// The store follows another chain or token network than the one configured.
    #[error(
        "the data directory follows token network {stored_network} on chain {stored_chain}, but \
         the hub is configured for token network {configured_network} on chain \
         {configured_chain}; use another data directory or the original deployment"
    )]
    OtherDeployment {
        stored_chain: u64,
        stored_network: Address,
        configured_chain: u64,
        configured_network: Address,
    },
    /// The persisted follower records contradict each other.
    #[error("the chain ledger records in the data directory are inconsistent: {0}")]
    Inconsistent(String),
    /// A confirmed event does not fit the mirror: the follower cannot move past it.
    #[error(
        "a confirmed chain event does not fit the ledger mirror ({0}); was the follower's \
         start block after the TokenNetwork's deployment block?"
    )]
    Mirror(#[from] MirrorError),
    /// A poll's events could not be applied for another reason (the cursor went back, or
    /// the seqs ran out): a bug or a node answering nonsense.
    #[error("following the chain: {0}")]
    Follow(String),

    // --- restart the hub ----------------------------------------------------------------------
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// A store failure was seen before: in-memory and stored state may differ.
    #[error("the chain ledger stopped after a storage failure; restart the hub")]
    Failed,
    #[error("internal: {0}")]
    Internal(String),
}

impl From<FollowError> for ChainError {
    fn from(e: FollowError) -> Self {
        match e {
            FollowError::Mirror(m) => ChainError::Mirror(m),
            other => ChainError::Follow(other.to_string()),
        }
    }
}

impl ChainError {
    /// Whether the node itself could not be reached (health reports "ledger node
    /// unreachable"), as opposed to an answer or a state that is wrong.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ChainError::Node(EthError::Unavailable { .. } | EthError::ReceiptTimeout { .. })
        )
    }
}

impl From<ChainError> for HubError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::Store(s) => HubError::Store(s),
            ChainError::Failed => HubError::LedgerFailed,
            ChainError::OtherDeployment { .. } | ChainError::Node(EthError::Config(_)) => {
                HubError::Config(e.to_string())
            }
            ChainError::Node(_)
            | ChainError::Inconsistent(_)
            | ChainError::Mirror(_)
            | ChainError::Follow(_)
            | ChainError::Internal(_) => HubError::Internal(e.to_string()),
        }
    }
}
