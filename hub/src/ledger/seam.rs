//! [`HubLedger`]: the one ledger interface the hub's drivers use, over the two ledgers a hub
//! can settle on: the embedded one ([`LedgerHandle`], the default) and an EVM chain running
//! Raiden's TokenNetwork 0.50 ([`ChainLedger`]).
//!
//! What both give, with the same meaning:
//! - reads through [`LedgerState`] (channel records, secret registrations, tokens kept back
//!   for an unlock): every record shown is durable in the hub's store;
//! - ledger time ([`HubLedger::now`]): the wall clock on the embedded ledger, the last
//!   confirmed block's timestamp on a chain;
//! - numbered, durable events from a persisted cursor ([`HubLedger::subscribe`],
//!   [`HubLedger::settled_seq`]);
//! - every transaction as a [`LedgerOp`] sent by the operator ([`HubLedger::execute`]), which
//!   returns once its effect is in the records the hub reads (see [`Executed`]).
//!
//! What differs is said by [`HubLedger::kind`] and the facts a device needs to reach the
//! ledger itself ([`HubLedger::facts`]). The embedded ledger alone also serves the
//! `voltlane.v1.Ledger` gRPC service ([`HubLedger::embedded`]).

use std::sync::Arc;
use std::time::Duration;

use channel_core::ledger::{LedgerEvent, LedgerOp, LedgerState};
use channel_core::primitives::{Address, U256};
use channel_core::Domain;
use tokio::sync::{broadcast, watch};

use super::chain::ChainLedger;
use super::handle::{LedgerHandle, PublishedEvent};
use crate::error::HubError;

/// Which ledger the hub settles on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LedgerKind {
    /// The hub's own ledger, in its data directory (no chain needed).
    Embedded,
    /// Raiden's TokenNetwork 0.50 on an EVM chain, over JSON-RPC.
    Ethereum,
}

/// What a device needs to reach the ledger itself (announced by `Hub.GetInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerFacts {
    pub kind: LedgerKind,
    pub domain: Domain,
    /// Seconds from close until settle is allowed.
    pub settlement_timeout: u64,
    /// Ethereum only: the token, the secret registry, the deployment block, the confirmations
    /// the hub waits for.
    pub chain: Option<ChainFacts>,
}

/// The Ethereum part of [`LedgerFacts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainFacts {
    pub token: Address,
    pub secret_registry: Address,
    pub start_block: u64,
    pub confirmations: u64,
}

/// The outcome of [`HubLedger::execute`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executed {
    /// Events the operation caused that are durable and visible to reads when `execute`
    /// returns. On a chain: the events of the operation's channel (or secret) among those
    /// the follower read up to the transaction's block; empty when the follower did not reach
    /// that block within its wait (the effect then arrives with a later poll).
    pub events: Vec<LedgerEvent>,
    /// Chain only: the transaction's hash, as 0x-hex.
    pub tx_hash: Option<String>,
}

/// The hub's ledger (see the module docs). Cheap to clone.
#[derive(Clone, Debug)]
pub enum HubLedger {
    Embedded(Arc<LedgerHandle>),
    Chain(Arc<ChainLedger>),
}

/// Longest a chain `execute` waits for the follower to read its transaction's block.
const FOLLOW_WAIT: Duration = Duration::from_secs(30);
/// Pause between follower polls while `execute` waits.
const FOLLOW_PAUSE: Duration = Duration::from_millis(100);

impl HubLedger {
    pub fn kind(&self) -> LedgerKind {
        match self {
            HubLedger::Embedded(_) => LedgerKind::Embedded,
            HubLedger::Chain(_) => LedgerKind::Ethereum,
        }
    }

    /// The embedded ledger, for what only it offers (the `voltlane.v1.Ledger` service).
    pub fn embedded(&self) -> Option<&Arc<LedgerHandle>> {
        match self {
            HubLedger::Embedded(handle) => Some(handle),
            HubLedger::Chain(_) => None,
        }
    }

    /// Chain id, token network, settlement window and, on a chain, how to reach it.
    pub fn facts(&self) -> Result<LedgerFacts, HubError> {
        Ok(match self {
            HubLedger::Embedded(handle) => {
                let config = handle.read(|l| l.config().clone())?;
                LedgerFacts {
                    kind: LedgerKind::Embedded,
                    domain: config.domain,
                    settlement_timeout: config.settlement_timeout,
                    chain: None,
                }
            }
            HubLedger::Chain(chain) => LedgerFacts {
                kind: LedgerKind::Ethereum,
                domain: chain.domain(),
                settlement_timeout: chain.settle_timeout(),
                chain: Some(ChainFacts {
                    token: chain.token(),
                    secret_registry: chain.secret_registry(),
                    start_block: chain.start_block(),
                    confirmations: chain.confirmations(),
                }),
            },
        })
    }

    /// Ledger time (see the module docs).
    pub fn now(&self) -> Result<u64, HubError> {
        match self {
            HubLedger::Embedded(handle) => handle.now(),
            HubLedger::Chain(chain) => chain.now(),
        }
    }

    /// Runs a query on the ledger's records.
    pub fn read<R>(&self, f: impl FnOnce(&dyn LedgerState) -> R) -> Result<R, HubError> {
        match self {
            HubLedger::Embedded(handle) => handle.read(|l| f(l)),
            HubLedger::Chain(chain) => chain.read(|m| f(m)),
        }
    }

    /// Seq of every event the reads show, each durable and published.
    pub async fn settled_seq(&self) -> Result<u64, HubError> {
        match self {
            HubLedger::Embedded(handle) => handle.settled_seq().await,
            HubLedger::Chain(chain) => chain.settled_seq().await,
        }
    }

    /// Highest durable, published event seq.
    pub fn durable_seq(&self) -> Result<u64, HubError> {
        match self {
            HubLedger::Embedded(handle) => handle.durable_seq(),
            HubLedger::Chain(chain) => chain.durable_seq(),
        }
    }

    /// Durable events from `from_seq` plus a receiver of every later one (skip live events at
    /// or below the last replayed seq).
    pub fn subscribe(
        &self,
        from_seq: u64,
    ) -> Result<(Vec<LedgerEvent>, broadcast::Receiver<Arc<PublishedEvent>>), HubError> {
        match self {
            HubLedger::Embedded(handle) => handle.subscribe(from_seq),
            HubLedger::Chain(chain) => chain.subscribe(from_seq),
        }
    }

    /// `events` with their channels' participants.
    pub fn published(&self, events: Vec<LedgerEvent>) -> Result<Vec<PublishedEvent>, HubError> {
        match self {
            HubLedger::Embedded(handle) => handle.published(events),
            HubLedger::Chain(chain) => chain.published(events),
        }
    }

    /// Turns `true` for good once a storage failure stopped the ledger.
    pub fn failed(&self) -> watch::Receiver<bool> {
        match self {
            HubLedger::Embedded(handle) => handle.failed(),
            HubLedger::Chain(chain) => chain.failed(),
        }
    }

    /// Tokens `who` holds on the ledger.
    pub async fn token_balance(&self, who: Address) -> Result<U256, HubError> {
        match self {
            HubLedger::Embedded(handle) => handle.read(|l| l.token_balance(who)),
            HubLedger::Chain(chain) => chain.token_balance(who).await,
        }
    }

    /// Sends `op` as `operator` and returns once it is on the ledger, without waiting for the
    /// hub's view to show it: the transaction hash on a chain (mined and successful), `None`
    /// on the embedded ledger (applied, its events durable). For the watcher, whose
    /// `InFlight` holds the action back until its effect is mirrored: a contest must not
    /// wait for confirmations that another channel's contest needs to start.
    pub async fn send(&self, operator: Address, op: &LedgerOp) -> Result<Option<String>, HubError> {
        match self {
            HubLedger::Embedded(handle) => {
                handle.execute(operator, op).await?;
                Ok(None)
            }
            HubLedger::Chain(chain) => {
                check_chain_operator(chain, operator)?;
                Ok(Some(chain.execute(op).await?.tx_hash.to_string()))
            }
        }
    }

    /// Sends `op` as `operator` (see [`Executed`]). On the embedded ledger the operation runs
    /// at once and its events are durable when this returns. On a chain the transaction is
    /// signed with the operator key (the chain ledger's; `operator` must be it), mined, and
    /// then the follower is driven until it has read the transaction's block, so that the
    /// records the hub reads show the effect.
    pub async fn execute(&self, operator: Address, op: &LedgerOp) -> Result<Executed, HubError> {
        match self {
            HubLedger::Embedded(handle) => Ok(Executed {
                events: handle.execute(operator, op).await?,
                tx_hash: None,
            }),
            HubLedger::Chain(chain) => {
                check_chain_operator(chain, operator)?;
                let before = chain.durable_seq()?;
                let outcome = chain.execute(op).await?;
                let reached = chain
                    .follow_past(outcome.block_number, FOLLOW_WAIT, FOLLOW_PAUSE)
                    .await?;
                let events = if reached {
                    let (replay, _) = chain.subscribe(before.saturating_add(1))?;
                    op.own_events(replay)
                } else {
                    tracing::warn!(
                        op = op.name(),
                        block = outcome.block_number,
                        "the chain follower has not read the transaction's block yet; its \
                         effect shows with a later poll"
                    );
                    Vec::new()
                };
                Ok(Executed {
                    events,
                    tx_hash: Some(outcome.tx_hash.to_string()),
                })
            }
        }
    }
}

/// A chain ledger signs with its own key only: refuses a transaction asked as anyone else.
fn check_chain_operator(chain: &ChainLedger, operator: Address) -> Result<(), HubError> {
    if chain.operator() != operator {
        return Err(HubError::Internal(format!(
            "a chain transaction as {operator} was asked of a ledger that signs as {}",
            chain.operator()
        )));
    }
    Ok(())
}
