//! [`ChainLedger`]: the hub's ledger when it settles on an EVM chain (Raiden's TokenNetwork
//! through `voltlane-eth`), shaped like the embedded [`super::LedgerHandle`] so that the hub
//! can drive either.
//!
//! - **Reads** come from a [`LedgerMirror`] fed only by confirmed contract events
//!   ([`ChainLedger::read`]): channel records (nonce and balance hash of submitted proofs, as
//!   the contract stores them), secret registrations, locks kept back for an unlock.
//! - **The follower** ([`ChainLedger::follow_once`], the loop [`ChainLedger::follow`], in
//!   `follow`) moves the mirror: poll confirmed events from the cursor, number them, apply
//!   them, persist mirror + cursor + events in one batch, await durability, then publish.
//!   Nothing is published (nor visible to [`ChainLedger::read`]) before it is durable, and a
//!   crash after the batch loses nothing: subscribers replay from the store.
//! - **Writes** ([`ChainLedger::execute`]) send a transaction signed with the operator key and
//!   return once it is mined; its effect reaches the mirror later, as events, when the
//!   follower reads them. `execute` returns no events.
//! - **Ledger time** ([`ChainLedger::now`]) is the timestamp of the last confirmed block the
//!   follower read, persisted with the cursor: it advances only as the follower does, and
//!   lags the chain head by the configured confirmations. The contract judges deadlines by
//!   its own block time, so a caller acting near a deadline (an update before
//!   `settle_after`) must keep a margin of at least that lag plus its own reaction time.
//!
//! Layout: this file (connecting, reads, subscriptions, writes), `state` (the persisted
//! follower state and its records), `follow` (one poll and the loop with backoff and health
//! status), `error` ([`ChainError`]).
//!
//! Where a new store starts reading: [`ChainLedgerConfig::start_block`], normally the block
//! of the TokenNetwork's deployment (`Deployment::deploy_block` on a dev chain; the operator
//! knows it for a real one). No event of the contract can be older, and starting later would
//! miss channels opened before it (the mirror then refuses their later events). The cursor
//! persisted in the store wins over the configuration afterwards.
//!
//! What this type does not do: decide anything (the channel rules in `channel-core` do) and
//! handle chain reorganisations deeper than the configured confirmations.

pub mod error;
mod follow;
pub mod state;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

use channel_core::ledger::{LedgerEvent, LedgerMirror, LedgerOp};
use channel_core::{Address, Domain, LocalSigner, U256};
use tokio::sync::{broadcast, watch};
use voltlane_eth::{EthConfig, EthereumLedger, TxOutcome};

pub use error::ChainError;
pub use follow::FollowerStatus;
pub use state::{DeploymentId, FollowerState};

use super::handle::PublishedEvent;
use crate::error::HubError;
use crate::store::KvStore;

/// Capacity of the live event channel; a subscriber further behind is told to resubscribe.
const EVENT_CHANNEL_CAPACITY: usize = 4096;

/// How the hub reaches the chain and where a new store starts following it.
#[derive(Clone, Debug)]
pub struct ChainLedgerConfig {
    pub eth: EthConfig,
    /// First block a new store reads events from: the TokenNetwork's deployment block (see
    /// the module docs). Ignored once the store has a cursor.
    pub start_block: u64,
}

struct Inner {
    /// Durable state (every event in it is durable and published).
    state: FollowerState,
    /// Set after a storage failure: the follower stops, further polls are refused.
    failed: bool,
}

/// The hub's handle on a chain ledger (see the module docs).
pub struct ChainLedger {
    eth: EthereumLedger,
    config: ChainLedgerConfig,
    store: Arc<dyn KvStore>,
    inner: Mutex<Inner>,
    /// One poll at a time: two concurrent polls would read from the same cursor.
    follow_turn: tokio::sync::Mutex<()>,
    events: broadcast::Sender<Arc<PublishedEvent>>,
    failed: watch::Sender<bool>,
    status: watch::Sender<FollowerStatus>,
}

impl std::fmt::Debug for ChainLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainLedger")
            .field("operator", &self.eth.address())
            .field("domain", &self.eth.domain())
            .finish_non_exhaustive()
    }
}

impl ChainLedger {
    /// Connects to the node as `operator` (`voltlane-eth` checks the chain id answers, that a
    /// TokenNetwork is at the configured address and reads its parameters), then loads the
    /// follower state from `store`, or starts a new one at `config.start_block`. A store that
    /// follows another chain or token network is refused ([`HubError::Config`]).
    pub async fn connect(
        config: &ChainLedgerConfig,
        operator: &LocalSigner,
        store: Arc<dyn KvStore>,
    ) -> Result<Self, HubError> {
        let eth = EthereumLedger::connect(&config.eth, operator)
            .await
            .map_err(ChainError::from)?;
        let domain = eth.domain();
        let chain_id = u64::try_from(domain.chain_id).map_err(|_| {
            ChainError::Internal(format!("chain id {} does not fit 64 bits", domain.chain_id))
        })?;
        let deployment = DeploymentId {
            chain_id,
            token_network: domain.token_network_address,
        };
        let state = FollowerState::load(store.as_ref(), deployment, config.start_block)?;
        tracing::info!(
            chain_id,
            token_network = %deployment.token_network,
            next_block = state.cursor.next_block,
            events = state.last_seq(),
            "chain ledger loaded"
        );
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        Ok(Self {
            eth,
            config: config.clone(),
            store,
            inner: Mutex::new(Inner {
                state,
                failed: false,
            }),
            follow_turn: tokio::sync::Mutex::new(()),
            events,
            failed: watch::Sender::new(false),
            status: watch::Sender::new(FollowerStatus::Starting),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, ChainError> {
        self.inner
            .lock()
            .map_err(|_| ChainError::Internal("chain ledger lock poisoned".into()))
    }

    // ----- getters -----

    /// The operator's address: the sender of every transaction [`Self::execute`] sends.
    pub fn operator(&self) -> Address {
        self.eth.address()
    }

    /// Chain id and token network: what every proof for this ledger must be bound to.
    pub fn domain(&self) -> Domain {
        self.eth.domain()
    }

    /// Seconds between close and the first moment settle is allowed (the contract's).
    pub fn settle_timeout(&self) -> u64 {
        self.eth.settle_timeout()
    }

    /// The ERC-20 token the TokenNetwork holds.
    pub fn token(&self) -> Address {
        self.eth.token()
    }

    /// The SecretRegistry the TokenNetwork consults.
    pub fn secret_registry(&self) -> Address {
        self.eth.secret_registry()
    }

    /// The block this data directory began following at (the deployment block, normally).
    pub fn start_block(&self) -> u64 {
        self.lock()
            .map_or(self.config.start_block, |inner| inner.state.start_block)
    }

    /// Confirmations an event needs before the follower reads it.
    pub fn confirmations(&self) -> u64 {
        self.config.eth.confirmations
    }

    /// A receiver that turns `true` (once, for good) when a store failure stopped the
    /// follower.
    pub fn failed(&self) -> watch::Receiver<bool> {
        self.failed.subscribe()
    }

    /// The follower's health: following, or stalled with the last error (see
    /// [`FollowerStatus`]).
    pub fn status(&self) -> watch::Receiver<FollowerStatus> {
        self.status.subscribe()
    }

    // ----- reads (from the mirror; everything in it is durable) -----

    /// Runs a query on the mirror.
    pub fn read<R>(&self, f: impl FnOnce(&LedgerMirror) -> R) -> Result<R, HubError> {
        let inner = self.lock()?;
        Ok(f(&inner.state.mirror))
    }

    /// Ledger time: the timestamp of the last confirmed block the follower read (0 before its
    /// first poll on a new store). Never goes backwards; see the module docs for its lag.
    pub fn now(&self) -> Result<u64, HubError> {
        Ok(self.lock()?.state.time)
    }

    /// The next block the follower will read.
    pub fn next_block(&self) -> Result<u64, HubError> {
        Ok(self.lock()?.state.cursor.next_block)
    }

    /// Highest event seq that is durable and published.
    pub fn durable_seq(&self) -> Result<u64, HubError> {
        Ok(self.lock()?.state.last_seq())
    }

    /// The seq of every event the mirror shows. On the chain ledger the mirror holds only
    /// durable, published events, so this is [`Self::durable_seq`]; async to match
    /// `LedgerHandle::settled_seq`.
    pub async fn settled_seq(&self) -> Result<u64, HubError> {
        self.durable_seq()
    }

    /// Durable events with `seq >= from_seq` (read from the store) plus a receiver for every
    /// later one, with the same contract as `LedgerHandle::subscribe`: the receiver and the
    /// durable seq are taken under the lock publishing holds, so skipping live events with
    /// `seq <=` the last replayed one misses and doubles nothing.
    pub fn subscribe(
        &self,
        from_seq: u64,
    ) -> Result<(Vec<LedgerEvent>, broadcast::Receiver<Arc<PublishedEvent>>), HubError> {
        let (rx, durable) = {
            let inner = self.lock()?;
            (self.events.subscribe(), inner.state.last_seq())
        };
        let replay = state::read_events(self.store.as_ref(), from_seq, durable)?;
        Ok((replay, rx))
    }

    /// `events` with the participants of their channels (for filtering a replay the way live
    /// events are filtered).
    pub fn published(&self, events: Vec<LedgerEvent>) -> Result<Vec<PublishedEvent>, HubError> {
        let inner = self.lock()?;
        Ok(events
            .into_iter()
            .map(|event| {
                let parties = parties_of(&inner.state.mirror, &event);
                PublishedEvent { event, parties }
            })
            .collect())
    }

    /// Tokens `who` holds on the chain (the token contract's `balanceOf`, at the head block).
    pub async fn token_balance(&self, who: Address) -> Result<U256, HubError> {
        Ok(self
            .eth
            .token_balance(who)
            .await
            .map_err(ChainError::from)?)
    }

    // ----- writes -----

    /// Sends `op` as a transaction from the operator key and waits until it is mined
    /// successfully; returns its hash, block and gas. Input that cannot be right for this
    /// ledger (another domain, wrong signers) is refused before anything is sent. No events
    /// come back: the effect arrives as confirmed events through the follower, and the mirror
    /// shows it only after the poll that reads them.
    pub async fn execute(&self, op: &LedgerOp) -> Result<TxOutcome, HubError> {
        let outcome = self.eth.execute(op).await.map_err(|e| {
            tracing::warn!(op = op.name(), error = %e, "ledger transaction failed");
            ChainError::from(e)
        })?;
        tracing::info!(
            op = op.name(),
            tx = %outcome.tx_hash,
            block = outcome.block_number,
            "ledger transaction mined"
        );
        Ok(outcome)
    }
}

/// The participants of `event`'s channel, for channel events the mirror knows.
fn parties_of(mirror: &LedgerMirror, event: &LedgerEvent) -> Option<[Address; 2]> {
    let id = event.kind.channel_id()?;
    let record = mirror.channel(id)?;
    Some([
        record.participants[0].address,
        record.participants[1].address,
    ])
}
