//! [`ChainError`]: what can go wrong when the device follows and uses an Ethereum chain
//! itself, sorted by what the caller must do.
//!
//! - Retry later: the node did not answer or answered something unusable
//!   ([`ChainError::Node`] with an unavailable or decode error), or a mined transaction is not
//!   confirmed yet ([`ChainError::NotConfirmed`]). The follower keeps its cursor.
//! - The chain refused a transaction ([`ChainError::Node`] with a revert): someone else may
//!   have done it first; look at the ledger again.
//! - Refuse the hub or fix the configuration: the chain at the device's RPC URL is not the
//!   deployment the hub announces ([`ChainError::WrongDeployment`]), or the store follows
//!   another one ([`ChainError::OtherDeployment`]).
//! - The store's follower record or the chain's events do not fit together
//!   ([`ChainError::Inconsistent`], [`ChainError::Mirror`]).

use channel_core::ledger::MirrorError;
use channel_core::primitives::{Address, H256, U256};
use voltlane_eth::EthError;

use crate::store::StoreError;

/// Errors of the device's chain ledger (see the module docs).
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node refused, reverted, timed out or was unreachable.
    #[error("Ethereum node: {0}")]
    Node(#[from] EthError),
    /// The chain behind the device's RPC URL is not what the hub announces: the device's
    /// proofs would be bound to another contract than the one the hub settles on.
    #[error(
        "the hub announces {what} {announced}, but the chain at the device's RPC URL has \
         {found}: refusing a hub whose contract differs from the chain's"
    )]
    WrongDeployment {
        what: &'static str,
        announced: String,
        found: String,
    },
    /// The store follows another chain or token network.
    #[error(
        "the device store follows token network {stored_network} on chain {stored_chain}, \
         but the hub settles on token network {network} on chain {chain}; use another store"
    )]
    OtherDeployment {
        stored_chain: u64,
        stored_network: Address,
        chain: u64,
        network: Address,
    },
    /// The stored follower record contradicts itself.
    #[error("the chain follower record in the device store is inconsistent: {0}")]
    Inconsistent(String),
    /// A confirmed event does not fit the device's mirror.
    #[error(
        "a confirmed chain event does not fit the device's ledger mirror ({0}); was the \
         hub's announced start block after the TokenNetwork's deployment?"
    )]
    Mirror(#[from] MirrorError),
    /// A mined transaction's block was not read by the follower in time.
    #[error(
        "transaction {tx_hash} was mined in block {block}, but the follower did not read \
         past that block within {waited_secs} s (confirmations not reached, or the node \
         stopped answering)"
    )]
    NotConfirmed {
        tx_hash: H256,
        block: u64,
        waited_secs: u64,
    },
    /// The mirror has no such channel (not opened, not the device's, or not read yet).
    #[error(
        "channel {0} is not in the device's mirror of the chain (not opened, not this \
         device's, or not confirmed yet)"
    )]
    UnknownChannel(U256),
    /// A transaction that should have opened a channel shows no `ChannelOpened` event.
    #[error("the open transaction {tx_hash} shows no ChannelOpened event with {partner}")]
    NoOpenEvent { tx_hash: H256, partner: Address },
    /// The device store failed while persisting or loading the follower.
    #[error("device store: {0}")]
    Store(#[from] StoreError),
    #[error("internal: {0}")]
    Internal(String),
}

impl ChainError {
    /// Whether the chain refused the transaction itself (a revert), e.g. because someone
    /// else already did what it asks.
    pub fn is_refusal(&self) -> bool {
        matches!(self, ChainError::Node(EthError::Reverted { .. }))
    }

    /// Whether retrying later may help (the node was unreachable or slow).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ChainError::Node(
                EthError::Unavailable { .. }
                    | EthError::ReceiptTimeout { .. }
                    | EthError::Decode { .. }
            ) | ChainError::NotConfirmed { .. }
        )
    }
}

impl From<voltlane_eth::FollowError> for ChainError {
    fn from(e: voltlane_eth::FollowError) -> Self {
        match e {
            voltlane_eth::FollowError::Mirror(m) => ChainError::Mirror(m),
            other => ChainError::Internal(other.to_string()),
        }
    }
}
