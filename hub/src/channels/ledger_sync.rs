//! How the ledger's events reach the hub's channels: each durable event with a seq above the
//! last applied one is applied in order (a channel opened with the hub is created, deposits,
//! withdraws, closes and settlements update it), the affected channels and the progress are
//! persisted together, and the counter-signed update that contests a device's close is built
//! here for the watcher to submit.

use std::sync::Arc;

use channel_core::channel::{Channel, UpdateTransaction};
use channel_core::crypto::Signer;
use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::{Address, U256};
use tokio::sync::Mutex;

use super::book::{ChannelBook, ChannelChange, CHANNEL_RECORD_VERSION, KEY_APPLIED_SEQ, NS_BOOK};
use crate::error::HubError;
use crate::store::{record, WriteBatch};

impl ChannelBook {
    /// Applies ledger events with seq above the last applied one, in order, persisting the
    /// affected channels and the progress together. Returns the events that concern the hub's
    /// channels (for the watcher to react to).
    pub async fn apply_ledger_events(
        &self,
        events: &[LedgerEvent],
    ) -> Result<Vec<LedgerEvent>, HubError> {
        let mut applied = self.ledger_progress.lock().await;
        let me = self.operator.address();
        let mut batch = WriteBatch::new();
        let mut relevant = Vec::new();
        let mut last = *applied;
        for event in events.iter().filter(|e| e.seq > *applied) {
            last = event.seq;
            if let Some(ch) = self.apply_one(me, event).await? {
                Self::put(&mut batch, &ch)?;
                relevant.push(event.clone());
            }
        }
        if last == *applied {
            return Ok(relevant);
        }
        batch.put(
            NS_BOOK,
            KEY_APPLIED_SEQ,
            record::encode(CHANNEL_RECORD_VERSION, &last)?,
        );
        self.store.write(batch)?.durable().await?;
        *applied = last;
        if relevant.iter().any(|e| {
            matches!(e.kind, LedgerEventKind::ChannelClosed { closing_participant, .. } if closing_participant != me)
        }) {
            crate::failpoint::hit(crate::failpoint::AFTER_DEVICE_CLOSE_APPLIED);
        }
        Ok(relevant)
    }

    /// The last ledger event seq applied.
    pub async fn applied_seq(&self) -> u64 {
        *self.ledger_progress.lock().await
    }

    async fn apply_one(
        &self,
        me: Address,
        event: &LedgerEvent,
    ) -> Result<Option<Channel>, HubError> {
        use LedgerEventKind as K;
        let (id, change): (U256, ChannelChange) = match &event.kind {
            K::ChannelOpened {
                channel_id,
                participant1,
                participant2,
                ..
            } => {
                let partner = if *participant1 == me {
                    *participant2
                } else if *participant2 == me {
                    *participant1
                } else {
                    return Ok(None);
                };
                let ch = Channel::new(self.domain, *channel_id, me, partner);
                let mut map = self
                    .channels
                    .write()
                    .map_err(|_| HubError::Internal("channel map lock poisoned".into()))?;
                map.entry(*channel_id)
                    .or_insert_with(|| Arc::new(Mutex::new(ch.clone())));
                return Ok(Some(ch));
            }
            K::Deposit {
                channel_id,
                participant,
                total_deposit,
            } => {
                let (p, t) = (*participant, *total_deposit);
                (
                    *channel_id,
                    Box::new(move |ch: &mut Channel| {
                        ch.handle_ledger_deposit(p, t)
                            .map(|_| ())
                            .map_err(Into::into)
                    }),
                )
            }
            K::Withdraw {
                channel_id,
                participant,
                total_withdraw,
            } => {
                let (p, t) = (*participant, *total_withdraw);
                (
                    *channel_id,
                    Box::new(move |ch: &mut Channel| {
                        ch.handle_ledger_withdraw(p, t)
                            .map(|_| ())
                            .map_err(Into::into)
                    }),
                )
            }
            K::ChannelClosed {
                channel_id,
                closing_participant,
                ..
            } => {
                let (closer, at) = (*closing_participant, event.time);
                (
                    *channel_id,
                    Box::new(move |ch: &mut Channel| {
                        ch.handle_ledger_closed(closer, at)
                            .map(|_| ())
                            .map_err(Into::into)
                    }),
                )
            }
            K::ChannelSettled { channel_id, .. } => (
                *channel_id,
                Box::new(|ch: &mut Channel| {
                    ch.handle_ledger_settled();
                    Ok(())
                }),
            ),
            _ => return Ok(None),
        };
        let Some(shared) = self.get(&id)? else {
            return Ok(None);
        };
        let mut ch = shared.lock().await;
        let mut next = ch.clone();
        if let Err(e) = change(&mut next) {
            // The ledger is the authority; a disagreement is logged, not fatal.
            tracing::warn!(channel = %id, error = %e, "ledger event not applicable to channel");
            return Ok(None);
        }
        *ch = next.clone();
        Ok(Some(next))
    }

    /// If the device closed channel `id`, the hub's counter-signed update over the device's
    /// latest proof.
    pub async fn update_for(&self, id: &U256) -> Result<Option<UpdateTransaction>, HubError> {
        let Some(shared) = self.get(id)? else {
            return Ok(None);
        };
        let ch = shared.lock().await;
        Ok(ch.update_transaction(self.operator.as_ref())?)
    }
}
