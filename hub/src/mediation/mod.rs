//! The hub as a mediator: it forwards a payer device's hash-time-locked transfer to a payee
//! device over its own channel with the payee, and settles both legs as the secret travels
//! back. Every rule is `channel_core::mediation`'s; this module is the driver around it:
//! which record and channels a message touches, what is durable together, what is sent when.
//!
//! - [`records`]: the [`MediatedTransfer`](channel_core::mediation::MediatedTransfer) records
//!   (one per secrethash), stored with the channel change they go with.
//! - `payer`: the payer's steps, arriving on `Payments.Pay` in nonce order: the locked
//!   transfer (take the lock, then forward), the unlock, the lock expiry.
//! - `payee`: the payee's reveal of the secret (unlock toward it), and the quote.
//! - [`driver`]: the level-triggered loop over unfinished records (`MediatedTransfer::poll`):
//!   takes back outgoing locks that expired, unlocks against secrets that reached the ledger,
//!   reminds payers of secrets they have not unlocked with. Claiming on the ledger is the
//!   channel monitor's job (the incoming channel learns the secret, so its monitor registers
//!   it in time and closes to claim a lock the payer never unlocked).
//! - [`service`]: the thin `voltlane.v1.Mediation` handlers.
//!
//! Durability: a message the hub signs is in the same write as the channel and the record it
//! changes, and leaves only once that write is durable; a crash between two steps leaves a
//! record that the driver (or the next message) carries on from.

pub mod driver;
mod payee;
mod payer;
pub mod records;
pub mod service;
pub mod transfer_record;

use std::sync::Arc;

use channel_core::mediation::MediationConfig;
use channel_core::{Address, Secret, H256, U256};
use tokio::sync::broadcast;

use crate::channels::book::Shared;
use crate::channels::fanout::Fanout;
use crate::channels::ChannelEngine;
use crate::error::HubError;

pub use payer::{Forwarded, TakenLock};
pub use records::RecordBook;

/// What the payer of a transfer learns from the hub (`Mediation.PayerEvents`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayerEvent {
    pub channel_id: U256,
    pub secrethash: H256,
    pub outcome: PayerOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayerOutcome {
    /// The payee revealed the secret: unlock with it.
    SecretRevealed(Secret),
    /// The transfer failed; the payer's lock is its own again once it expires.
    Failed(String),
}

/// The mediator (one per hub).
#[derive(Clone, Debug)]
pub struct MediationEngine {
    channels: ChannelEngine,
    records: Arc<RecordBook>,
    config: MediationConfig,
    payer_events: Arc<Fanout<PayerEvent>>,
}

/// A quote for paying a payee through the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub payee_channel: U256,
    pub fee: U256,
    pub lock_amount: U256,
    pub reveal_timeout: u64,
    pub min_lock_expiration: u64,
    pub max_lock_expiration: u64,
}

impl MediationEngine {
    /// Loads the stored records.
    pub fn new(channels: ChannelEngine, config: MediationConfig) -> Result<Self, HubError> {
        let records = Arc::new(RecordBook::load(channels.book.store.clone())?);
        tracing::info!(records = records.len(), "mediated transfers loaded");
        let payer_events = Arc::new(Fanout::new(crate::channels::fanout::FANOUT_BUFFER));
        Ok(Self {
            channels,
            records,
            config,
            payer_events,
        })
    }

    pub fn config(&self) -> &MediationConfig {
        &self.config
    }

    pub fn records(&self) -> &Arc<RecordBook> {
        &self.records
    }

    pub fn channels(&self) -> &ChannelEngine {
        &self.channels
    }

    /// Subscribes to the live payer events of channel `channel_id`.
    pub fn subscribe_payer_events(&self, channel_id: U256) -> broadcast::Receiver<PayerEvent> {
        self.payer_events.subscribe(channel_id)
    }

    fn emit(&self, channel_id: U256, secrethash: H256, outcome: PayerOutcome) {
        self.payer_events.publish(
            channel_id,
            PayerEvent {
                channel_id,
                secrethash,
                outcome,
            },
        );
    }

    /// The hub's open channel with `payee` with the most capacity toward it.
    async fn payee_channel(&self, payee: &Address) -> Result<(U256, Shared), HubError> {
        let mut best: Option<(U256, Shared, U256)> = None;
        for (id, shared) in self.channels.book.channels_of(payee)? {
            let ch = shared.lock().await;
            if ch.phase() != channel_core::channel::ChannelPhase::Open {
                continue;
            }
            let capacity = ch.our_distributable()?;
            drop(ch);
            if best.as_ref().is_none_or(|(_, _, c)| capacity > *c) {
                best = Some((id, shared, capacity));
            }
        }
        best.map(|(id, shared, _)| (id, shared))
            .ok_or(HubError::NoPayeeChannel(*payee))
    }

    /// `Mediation.Quote`: what paying `amount` to `payee` costs, if the hub can forward it
    /// now (payee channel open, payee online, capacity). Changes nothing.
    pub async fn quote(&self, payee: Address, amount: U256) -> Result<Quote, HubError> {
        self.channels.catch_up().await?;
        let (payee_channel, shared) = self.payee_channel(&payee).await?;
        if !self.channels.presence.is_online(&payee_channel) {
            return Err(HubError::PayeeOffline(payee));
        }
        if amount.is_zero() {
            return Err(channel_core::mediation::MediationRefusal::ZeroAmount.into());
        }
        let fees = &self.config.fees;
        let fee = fees
            .fee_for(amount)
            .map_err(channel_core::mediation::MediationRefusal::from)?;
        let lock_amount = fees
            .gross_amount(amount)
            .map_err(channel_core::mediation::MediationRefusal::from)?;
        let available = shared.lock().await.our_distributable()?;
        if available < amount {
            return Err(channel_core::mediation::MediationRefusal::NoCapacity {
                available,
                requested: amount,
            }
            .into());
        }
        let now = self.channels.ledger.now()?;
        Ok(Quote {
            payee_channel,
            fee,
            lock_amount,
            reveal_timeout: self.config.reveal_timeout,
            min_lock_expiration: self.config.min_lock_expiration(now),
            max_lock_expiration: self.config.latest_lock_expiration(now),
        })
    }
}

impl From<channel_core::mediation::MediationRefusal> for HubError {
    fn from(r: channel_core::mediation::MediationRefusal) -> Self {
        HubError::Mediation(r.into())
    }
}
