//! [`ChainLedger`]: the device's ledger when its hub settles on an EVM chain (Raiden's
//! TokenNetwork 0.50 through `voltlane-eth`). The device talks to the chain itself, over its
//! own RPC URL ([`ChainAccess`]), and signs every transaction with its own key; the hub is
//! not involved in anything that protects the device's money.
//!
//! - **Connecting** ([`ChainLedger::connect`]): `EthereumLedger::connect` checks that a
//!   TokenNetwork answers at the hub's announced address; then the chain id, token, secret
//!   registry and settlement timeout the chain reports must equal what the hub announces
//!   ([`check_deployment`]): a hub that announces another contract than the one the proofs
//!   are bound to is refused. The follower state is loaded from the device store, or started
//!   at the hub's announced start block.
//! - **The follower** ([`ChainLedger::follow_once`]): poll confirmed events from the cursor,
//!   keep those that concern the device, number them, apply them to the mirror, persist
//!   mirror + cursor + ledger time + undelivered events in ONE store write and await its
//!   durability; only then is the new state visible. The caller (the SDK's watcher) then
//!   feeds the undelivered events to the channel ([`ChainLedger::undelivered_after`]).
//! - **Reads** come from the mirror (channel records, pending unlocks, secret
//!   registrations); token balances from the token contract. **Ledger time**
//!   ([`ChainLedger::now`]) is the timestamp of the last confirmed block the follower read:
//!   it lags the chain head by the confirmations and the poll interval.
//! - **Writes** ([`ChainLedger::execute`]) send the transaction, wait until it is mined, then
//!   drive the follower until its cursor is past the transaction's block, and return the
//!   numbered events read meanwhile, so a caller sees the effect (an open's channel id, a
//!   close's record) as on the embedded ledger.
//!
//! Layout: this file (access options, the announced deployment, connect, reads, writes,
//! polls), `state` (the follower state and its record), `error` ([`ChainError`]).
//!
//! What this type does not do: handle reorganisations deeper than the confirmations, or
//! decide anything (the channel rules in `channel-core` do).

pub mod error;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use channel_core::channel::PendingUnlock;
use channel_core::ledger::{ChannelRecord, LedgerEvent, LedgerEventKind, LedgerOp};
use channel_core::primitives::{Address, H256, U256};
use channel_core::{Domain, LocalSigner, Signer};
use voltlane_eth::fees::DEFAULT_MAX_FEE_PER_GAS;
use voltlane_eth::{EthConfig, EthereumLedger, RetryPolicy, TxOutcome};

pub use error::ChainError;
pub use state::FollowerState;

use crate::store::{DeploymentId, DeviceStore};

/// How many numbered events the ledger keeps in memory for [`ChainLedger::execute`]'s
/// answer (the device's own events only, so far more than a transaction can cause).
const RECENT_EVENTS: usize = 1024;

/// How a device reaches the chain its hub settles on (its own node: a device must not depend
/// on the hub's). Give it to [`crate::ConnectOptions::chain_access`].
#[derive(Clone)]
pub struct ChainAccess {
    /// The node's JSON-RPC URL (`http://` only; see `voltlane-eth`).
    pub rpc_url: String,
    /// Confirmations before an event counts (1 = the head block counts). `None`: the hub's
    /// announced number, at least 1.
    pub confirmations: Option<u64>,
    /// Refuse any transaction whose gas estimate is above this.
    pub gas_cap: u64,
    /// Most wei per gas a transaction may pay.
    pub max_fee_per_gas: U256,
    /// How often the follower polls for new confirmed blocks.
    pub poll_interval: Duration,
    /// How long to wait for a sent transaction's receipt.
    pub receipt_timeout: Duration,
    /// How long a transaction, once mined, may take to be confirmed and read.
    pub confirm_timeout: Duration,
    /// At most this many blocks per `eth_getLogs` request.
    pub max_log_range: u64,
    /// Retries of each JSON-RPC request.
    pub retry: RetryPolicy,
}

impl ChainAccess {
    /// Access through `rpc_url` with defaults: the hub's confirmations, a gas cap of 3M, the
    /// default fee cap of `voltlane-eth`, a poll every 2 s.
    pub fn new(rpc_url: impl Into<String>) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            confirmations: None,
            gas_cap: 3_000_000,
            max_fee_per_gas: DEFAULT_MAX_FEE_PER_GAS,
            poll_interval: Duration::from_secs(2),
            receipt_timeout: Duration::from_secs(120),
            confirm_timeout: Duration::from_secs(600),
            max_log_range: 2_000,
            retry: RetryPolicy::default(),
        }
    }
}

impl std::fmt::Debug for ChainAccess {
    // The RPC URL may carry an API key: not printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainAccess")
            .field("confirmations", &self.confirmations)
            .field("gas_cap", &self.gas_cap)
            .field("max_fee_per_gas", &self.max_fee_per_gas)
            .field("poll_interval", &self.poll_interval)
            .finish_non_exhaustive()
    }
}

/// The contracts a ledger runs on: what the hub announces, and what the chain reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeployedContracts {
    /// Chain id and TokenNetwork: what every proof is bound to.
    pub domain: Domain,
    pub token: Address,
    pub secret_registry: Address,
    /// Seconds between close and settle.
    pub settlement_timeout: u64,
}

/// What an Ethereum hub announces in `Hub.GetInfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainDeployment {
    pub contracts: DeployedContracts,
    /// The TokenNetwork's deployment block: where a new store starts reading.
    pub start_block: u64,
    /// The hub's confirmations (a hint).
    pub confirmations: u64,
}

/// Refuses a chain whose contracts are not the ones the hub announces.
pub fn check_deployment(
    announced: &DeployedContracts,
    found: &DeployedContracts,
) -> Result<(), ChainError> {
    let wrong = |what: &'static str, a: String, f: String| {
        Err(ChainError::WrongDeployment {
            what,
            announced: a,
            found: f,
        })
    };
    if announced.domain.chain_id != found.domain.chain_id {
        return wrong(
            "chain id",
            announced.domain.chain_id.to_string(),
            format!("chain id {}", found.domain.chain_id),
        );
    }
    let (a, f) = (
        announced.domain.token_network_address,
        found.domain.token_network_address,
    );
    if a != f {
        return wrong("token network", a.to_string(), format!("token network {f}"));
    }
    if announced.token != found.token {
        return wrong(
            "token",
            announced.token.to_string(),
            format!("token {} behind that TokenNetwork", found.token),
        );
    }
    if announced.secret_registry != found.secret_registry {
        return wrong(
            "secret registry",
            announced.secret_registry.to_string(),
            format!(
                "secret registry {} behind that TokenNetwork",
                found.secret_registry
            ),
        );
    }
    if announced.settlement_timeout != found.settlement_timeout {
        return wrong(
            "settlement timeout",
            format!("{} s", announced.settlement_timeout),
            format!("a settlement timeout of {} s", found.settlement_timeout),
        );
    }
    Ok(())
}

/// What one successful poll did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// Events numbered and persisted.
    pub events: usize,
    /// Whether the cursor moved (there may be more to read at once).
    pub advanced: bool,
}

struct Inner {
    /// Durable state.
    state: FollowerState,
    /// The last numbered events, for `execute`'s answer.
    recent: VecDeque<LedgerEvent>,
}

/// The device's handle on the chain (see the module docs).
pub struct ChainLedger {
    eth: EthereumLedger,
    store: DeviceStore,
    me: Address,
    poll_interval: Duration,
    confirm_timeout: Duration,
    inner: Mutex<Inner>,
    /// One poll at a time: two concurrent polls would read from the same cursor.
    follow_turn: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for ChainLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainLedger")
            .field("device", &self.me)
            .field("domain", &self.eth.domain())
            .finish_non_exhaustive()
    }
}

impl ChainLedger {
    /// Connects to the node at `access.rpc_url` as `signer`, checks the chain against what
    /// the hub announced (`deployment`), and loads the follower state from `store` (or starts
    /// one at the announced start block).
    pub async fn connect(
        access: &ChainAccess,
        deployment: &ChainDeployment,
        signer: &LocalSigner,
        store: DeviceStore,
    ) -> Result<Self, ChainError> {
        let announced = deployment.contracts;
        let mut config = EthConfig::new(
            access.rpc_url.clone(),
            announced.domain.token_network_address,
        );
        config.confirmations = access
            .confirmations
            .unwrap_or(deployment.confirmations)
            .max(1);
        config.gas_cap = access.gas_cap;
        config.max_fee_per_gas = access.max_fee_per_gas;
        config.max_log_range = access.max_log_range;
        // `first_block` stays 0: the start block is the hub's word, and a device must find
        // its own channel on chain (to close or contest it) whatever the hub announces.
        config.retry = access.retry.clone();
        config.receipt_timeout = access.receipt_timeout;
        let eth = EthereumLedger::connect(&config, signer).await?;
        let found = DeployedContracts {
            domain: eth.domain(),
            token: eth.token(),
            secret_registry: eth.secret_registry(),
            settlement_timeout: eth.settle_timeout(),
        };
        check_deployment(&announced, &found)?;
        let chain_id = u64::try_from(found.domain.chain_id).map_err(|_| {
            ChainError::Internal(format!(
                "chain id {} does not fit 64 bits",
                found.domain.chain_id
            ))
        })?;
        let id = DeploymentId {
            chain_id,
            token_network: found.domain.token_network_address,
        };
        if store.chain_follower()?.is_none() && store.ledger_seq()? != 0 {
            // The seqs of another ledger (the embedded one): the chain's are the device's own.
            store.put_ledger_seq(0).await?;
        }
        let head = eth.node().block_number().await?;
        let start_block = state::first_block_to_read(deployment.start_block, head);
        let state = FollowerState::load(&store, id, start_block)?;
        tracing::info!(
            chain_id,
            token_network = %id.token_network,
            next_block = state.cursor.next_block,
            events = state.last_seq(),
            "following the chain"
        );
        Ok(Self {
            eth,
            store,
            me: signer.address(),
            poll_interval: access.poll_interval,
            confirm_timeout: access.confirm_timeout,
            inner: Mutex::new(Inner {
                state,
                recent: VecDeque::new(),
            }),
            follow_turn: tokio::sync::Mutex::new(()),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, ChainError> {
        self.inner
            .lock()
            .map_err(|_| ChainError::Internal("chain ledger lock poisoned".into()))
    }

    // ----- getters -----

    /// Chain id and token network (equal to the hub's announced ones).
    pub fn domain(&self) -> Domain {
        self.eth.domain()
    }

    /// The underlying connection (token, node, dev-chain controls).
    pub fn eth(&self) -> &EthereumLedger {
        &self.eth
    }

    /// How often the background follower polls.
    pub fn poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// The next block the follower reads.
    pub fn next_block(&self) -> Result<u64, ChainError> {
        Ok(self.lock()?.state.cursor.next_block)
    }

    /// Seq of the last numbered event.
    pub fn last_seq(&self) -> Result<u64, ChainError> {
        Ok(self.lock()?.state.last_seq())
    }

    /// A copy of the follower state (durable).
    pub fn state(&self) -> Result<FollowerState, ChainError> {
        Ok(self.lock()?.state.clone())
    }

    // ----- reads -----

    /// Ledger time: the timestamp of the last confirmed block read. Before the first poll of
    /// a new store, polls first (catching up), so it is never 0 once the chain has blocks.
    pub async fn now(&self) -> Result<u64, ChainError> {
        let time = self.lock()?.state.time;
        if time != 0 {
            return Ok(time);
        }
        self.catch_up().await?;
        Ok(self.lock()?.state.time)
    }

    /// The mirrored record of `channel_id`.
    pub fn channel(&self, channel_id: U256) -> Result<ChannelRecord, ChainError> {
        self.lock()?
            .state
            .mirror
            .channel(channel_id)
            .cloned()
            .ok_or(ChainError::UnknownChannel(channel_id))
    }

    /// Every channel of `who` the mirror has (only the device's own are mirrored), after
    /// catching up with the chain: what decides whether to open a new channel.
    pub async fn channels_of(&self, who: Address) -> Result<Vec<ChannelRecord>, ChainError> {
        self.catch_up().await?;
        Ok(self
            .lock()?
            .state
            .mirror
            .channels_of(who)
            .into_iter()
            .cloned()
            .collect())
    }

    /// The tokens of `channel_id` kept back for an unlock after settlement.
    pub fn pending_unlocks(&self, channel_id: U256) -> Result<Vec<PendingUnlock>, ChainError> {
        Ok(self.lock()?.state.mirror.pending_unlocks(channel_id))
    }

    /// When the secret of `secrethash` was registered on chain, if it was (mirrored).
    pub fn secret_registration(&self, secrethash: &H256) -> Result<Option<u64>, ChainError> {
        Ok(self.lock()?.state.mirror.secret_registered_at(secrethash))
    }

    /// `who`'s tokens (the token contract's `balanceOf` at the head block).
    pub async fn token_balance(&self, who: Address) -> Result<U256, ChainError> {
        Ok(self.eth.token_balance(who).await?)
    }

    /// Numbered events after `seq` that were not yet applied to the channel when the
    /// follower last wrote its state.
    pub fn undelivered_after(&self, seq: u64) -> Result<Vec<LedgerEvent>, ChainError> {
        Ok(self.lock()?.state.undelivered_after(seq))
    }

    // ----- writes -----

    /// Sends `op` as the device's transaction, waits until it is mined and the follower has
    /// read past its block, and returns the events numbered meanwhile (the device's own).
    pub async fn execute(&self, op: &LedgerOp) -> Result<Vec<LedgerEvent>, ChainError> {
        Ok(self.send(op).await?.1)
    }

    /// Opens a channel with `partner` (no deposit) and returns its id, from the
    /// `ChannelOpened` event the follower read.
    pub async fn open_channel(&self, partner: Address) -> Result<U256, ChainError> {
        let op = LedgerOp::OpenChannel {
            partner,
            total_deposit: U256::ZERO,
        };
        let (outcome, events) = self.send(&op).await?;
        let me = self.me;
        events
            .iter()
            .find_map(|e| match e.kind {
                LedgerEventKind::ChannelOpened {
                    channel_id,
                    participant1,
                    participant2,
                    ..
                } if [participant1, participant2] == [me, partner]
                    || [participant1, participant2] == [partner, me] =>
                {
                    Some(channel_id)
                }
                _ => None,
            })
            .ok_or(ChainError::NoOpenEvent {
                tx_hash: outcome.tx_hash,
                partner,
            })
    }

    /// `execute`, with the mined transaction.
    async fn send(&self, op: &LedgerOp) -> Result<(TxOutcome, Vec<LedgerEvent>), ChainError> {
        let before = self.last_seq()?;
        let outcome = self.eth.execute(op).await.inspect_err(|e| {
            tracing::debug!(op = op.name(), error = %e, "chain transaction failed");
        })?;
        tracing::info!(
            op = op.name(),
            tx = %outcome.tx_hash,
            block = outcome.block_number,
            "chain transaction mined"
        );
        self.wait_past(&outcome).await?;
        let events = self
            .lock()?
            .recent
            .iter()
            .filter(|e| e.seq > before)
            .cloned()
            .collect();
        Ok((outcome, events))
    }

    /// Drives the follower until its cursor is past `outcome`'s block.
    async fn wait_past(&self, outcome: &TxOutcome) -> Result<(), ChainError> {
        let started = Instant::now();
        loop {
            if self.next_block()? > outcome.block_number {
                return Ok(());
            }
            match self.follow_once().await {
                Ok(step) if step.advanced => continue,
                Ok(_) => {}
                Err(e) if e.is_transient() => {
                    tracing::debug!(error = %e, "follower poll failed while waiting for a transaction");
                }
                Err(e) => return Err(e),
            }
            if started.elapsed() >= self.confirm_timeout {
                return Err(ChainError::NotConfirmed {
                    tx_hash: outcome.tx_hash,
                    block: outcome.block_number,
                    waited_secs: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }

    // ----- the follower -----

    /// Polls until a poll no longer moves the cursor (the follower is at the confirmed head).
    pub async fn catch_up(&self) -> Result<(), ChainError> {
        while self.follow_once().await?.advanced {}
        Ok(())
    }

    /// Polls the confirmed events after the cursor once, persists the next state in one
    /// store write and awaits its durability, then makes it current. On error nothing
    /// visible changed and the next call reads from the same cursor.
    pub async fn follow_once(&self) -> Result<Step, ChainError> {
        let _turn = self.follow_turn.lock().await;
        let state = self.lock()?.state.clone();
        let (events, next) = self.eth.poll_events(state.cursor).await?;
        let block_time = match next.next_block.checked_sub(1) {
            Some(last_read) if next > state.cursor => {
                self.eth.node().block_timestamp(Some(last_read)).await?
            }
            _ => 0,
        };
        let delivered = self.store.ledger_seq()?;
        let Some(advance) = state.advance(self.me, events, next, block_time, delivered)? else {
            return Ok(Step {
                events: 0,
                advanced: false,
            });
        };
        self.store.put_chain_follower(&advance.record).await?;
        let step = Step {
            events: advance.events.len(),
            advanced: advance.state.cursor > state.cursor,
        };
        let mut inner = self.lock()?;
        inner.state = advance.state;
        inner.recent.extend(advance.events);
        let excess = inner.recent.len().saturating_sub(RECENT_EVENTS);
        inner.recent.drain(..excess);
        Ok(step)
    }
}
