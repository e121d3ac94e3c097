//! The device's ledger: the one seam through which every ledger transaction (a
//! [`LedgerOp`]) and every ledger read of the SDK goes, with two implementations chosen at
//! connect from the hub's announced ledger kind (`Hub.GetInfo`):
//!
//! - [`HubLedger`] (`hub`): the hub's embedded ledger through its `voltlane.v1.Ledger` gRPC
//!   service; transactions answer with their events, the device follows `Ledger.Subscribe`.
//! - [`ChainLedger`] (`chain`): Raiden's TokenNetwork 0.50 on an EVM chain, reached over the
//!   device's own RPC URL and signed with the device's own key; reads come from a mirror of
//!   the chain's confirmed events the device follows itself, and a transaction returns once
//!   its block was read, with the events it caused.
//!
//! Both answer with `channel-core` values (events, channel records, pending unlocks), so the
//! callers (`client`, `ops`, `watcher`, mediation and sessions) do not know which one runs.
//! The dev faucet exists only on the embedded ledger ([`ClientError::FaucetEmbeddedOnly`]).

pub mod chain;
mod hub;

use channel_core::channel::PendingUnlock;
use channel_core::ledger::{ChannelRecord, LedgerEvent, LedgerOp};
use channel_core::primitives::{Address, U256};

pub use chain::{
    check_deployment, ChainAccess, ChainDeployment, ChainError, ChainLedger, DeployedContracts,
};
pub use hub::HubLedger;
pub use voltlane_eth::RetryPolicy;

use crate::error::ClientError;
use crate::shared::Shared;

/// The ledger a device uses (see the module docs).
#[derive(Debug)]
pub enum DeviceLedger {
    /// The hub's embedded ledger, over gRPC.
    Hub(HubLedger),
    /// An EVM chain, directly.
    Ethereum(Box<ChainLedger>),
}

impl DeviceLedger {
    /// `"embedded"` or `"ethereum"`.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceLedger::Hub(_) => "embedded",
            DeviceLedger::Ethereum(_) => "ethereum",
        }
    }

    /// The chain ledger, when the device uses one.
    pub fn chain(&self) -> Option<&ChainLedger> {
        match self {
            DeviceLedger::Hub(_) => None,
            DeviceLedger::Ethereum(c) => Some(c),
        }
    }

    /// Sends `op` as this device and returns the events the ledger emitted (on a chain: the
    /// device's events read up to the transaction's block).
    pub async fn execute(&self, op: &LedgerOp) -> Result<Vec<LedgerEvent>, ClientError> {
        match self {
            DeviceLedger::Hub(h) => h.execute(op).await,
            DeviceLedger::Ethereum(c) => Ok(c.execute(op).await?),
        }
    }

    /// Opens a channel with `partner` without a deposit; returns its id.
    pub async fn open_channel(&self, partner: Address) -> Result<U256, ClientError> {
        match self {
            DeviceLedger::Hub(h) => h.open_channel(partner).await,
            DeviceLedger::Ethereum(c) => Ok(c.open_channel(partner).await?),
        }
    }

    /// The ledger's current time (on a chain: the last confirmed block's timestamp read).
    pub async fn now(&self) -> Result<u64, ClientError> {
        match self {
            DeviceLedger::Hub(h) => h.now().await,
            DeviceLedger::Ethereum(c) => Ok(c.now().await?),
        }
    }

    /// The ledger's record of `channel_id`.
    pub async fn channel(&self, channel_id: U256) -> Result<ChannelRecord, ClientError> {
        match self {
            DeviceLedger::Hub(h) => h.channel(channel_id).await,
            DeviceLedger::Ethereum(c) => Ok(c.channel(channel_id)?),
        }
    }

    /// Every channel `who` takes part in (on a chain: the device's own, after catching up).
    pub async fn channels_of(&self, who: Address) -> Result<Vec<ChannelRecord>, ClientError> {
        match self {
            DeviceLedger::Hub(h) => h.channels_of(who).await,
            DeviceLedger::Ethereum(c) => Ok(c.channels_of(who).await?),
        }
    }

    /// `who`'s token balance on the ledger.
    pub async fn token_balance(&self, who: Address) -> Result<U256, ClientError> {
        match self {
            DeviceLedger::Hub(h) => h.token_balance(who).await,
            DeviceLedger::Ethereum(c) => Ok(c.token_balance(who).await?),
        }
    }

    /// The tokens the ledger keeps back in `channel_id` after settlement, both directions.
    pub async fn pending_unlocks(
        &self,
        channel_id: U256,
    ) -> Result<Vec<PendingUnlock>, ClientError> {
        match self {
            DeviceLedger::Hub(h) => h.pending_unlocks(channel_id).await,
            DeviceLedger::Ethereum(c) => Ok(c.pending_unlocks(channel_id)?),
        }
    }

    /// Dev faucet: credits `amount` test tokens to `to`. Embedded ledger only.
    pub async fn mint(&self, to: Address, amount: U256) -> Result<(), ClientError> {
        match self {
            DeviceLedger::Hub(h) => h.mint(to, amount).await,
            DeviceLedger::Ethereum(c) => {
                let domain = c.domain();
                Err(ClientError::FaucetEmbeddedOnly {
                    chain_id: domain.chain_id,
                    token: c.eth().token(),
                })
            }
        }
    }
}

// The crate's callers go through these, with the client's shared state.

/// Sends `op` as this device and returns the events the ledger emitted.
pub(crate) async fn execute(
    shared: &Shared,
    op: &LedgerOp,
) -> Result<Vec<LedgerEvent>, ClientError> {
    shared.ledger.execute(op).await
}

/// The ledger's current time.
pub(crate) async fn now(shared: &Shared) -> Result<u64, ClientError> {
    shared.ledger.now().await
}

/// The ledger's record of `channel_id`.
pub(crate) async fn channel(
    shared: &Shared,
    channel_id: U256,
) -> Result<ChannelRecord, ClientError> {
    shared.ledger.channel(channel_id).await
}

/// `who`'s token balance on the ledger.
pub(crate) async fn token_balance(shared: &Shared, who: Address) -> Result<U256, ClientError> {
    shared.ledger.token_balance(who).await
}
