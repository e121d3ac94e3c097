//! The device's own protection on the ledger, as a device SDK runs it: channel-core's
//! monitor (`Channel::poll_ledger_actions`) over the ledger's current record of the channel,
//! with the device's raw `Ledger` RPCs. For tests where the hub misbehaves and the device
//! must claim on the ledger what it is owed (register the secret, close, settle, unlock).
//!
//! Call order: [`TestDevice::learn_secret`] for the secrets the device knows (a payee's own
//! invoice secret), then [`TestDevice::monitor_ledger_once`] on every tick with one
//! [`LedgerWatch`] per device. A pass first applies the ledger events the device has not seen
//! (a `Ledger.Subscribe` replay up to the last durable event) to its channel, so that it
//! knows which secrets the registry holds and when; then it submits what the monitor asks.
//! A submission the ledger refuses (someone else did it first) is reported, not an error:
//! the next pass decides again.

use channel_core::channel::{LedgerAction, LedgerView, PendingUnlock};
use channel_core::ledger::{ChannelRecord, LedgerEvent};
use channel_core::{Address, Secret, H256};
use futures::StreamExt;
use voltlane_proto::convert::{address_bytes, h256_bytes, u256_bytes};
use voltlane_proto::v1;

use super::TestDevice;
use crate::error::HarnessError;

/// Where a device's ledger monitor stands: the next ledger event to apply, and how long
/// before a received lock expires it registers the secret itself.
#[derive(Clone, Debug)]
pub struct LedgerWatch {
    next_seq: u64,
    reveal_timeout: u64,
}

impl LedgerWatch {
    /// A watch that starts from the ledger's first event.
    pub fn new(reveal_timeout: u64) -> Self {
        Self {
            next_seq: 1,
            reveal_timeout,
        }
    }
}

/// One transaction the monitor submitted, and the ledger's answer.
#[derive(Debug)]
pub struct Submitted {
    /// `update`, `settle`, `close`, `register_secret` or `unlock`.
    pub action: &'static str,
    pub outcome: Result<(), tonic::Status>,
}

fn protocol(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Protocol(e.to_string())
}

fn channel_err(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Channel(e.to_string())
}

impl TestDevice {
    /// Records a secret the device knows for one of its pending locks (so its monitor can
    /// register it).
    pub fn learn_secret(&mut self, secret: Secret) -> Result<(), HarnessError> {
        self.channel_mut()?
            .learn_secret(secret)
            .map_err(channel_err)?;
        Ok(())
    }

    /// `Ledger.GetChannel` of the device's channel, as channel-core's record.
    pub async fn ledger_record(&self) -> Result<ChannelRecord, HarnessError> {
        ChannelRecord::try_from(self.ledger_view().await?).map_err(protocol)
    }

    /// `Ledger.GetPendingUnlocks` of the device's channel: what settlement kept back.
    pub async fn pending_unlocks(&self) -> Result<Vec<PendingUnlock>, HarnessError> {
        let answer = self
            .ledger()
            .get_pending_unlocks(v1::GetPendingUnlocksRequest {
                channel_id: u256_bytes(&self.channel_id()?),
            })
            .await?
            .into_inner();
        answer
            .unlocks
            .iter()
            .map(|u| {
                Ok(PendingUnlock {
                    sender: Address::from_slice(&u.sender).map_err(|_| protocol("sender"))?,
                    receiver: Address::from_slice(&u.receiver).map_err(|_| protocol("receiver"))?,
                    locksroot: H256::from_slice(&u.locksroot).map_err(|_| protocol("locksroot"))?,
                })
            })
            .collect()
    }

    /// Applies every durable ledger event from `watch`'s next one up to `last` to the
    /// device's channel.
    async fn apply_ledger_events(
        &mut self,
        watch: &mut LedgerWatch,
        last: u64,
    ) -> Result<(), HarnessError> {
        if last < watch.next_seq {
            return Ok(());
        }
        let mut events = self
            .ledger()
            .subscribe(v1::SubscribeRequest {
                from_seq: watch.next_seq,
                participant: Vec::new(),
            })
            .await?
            .into_inner();
        while watch.next_seq <= last {
            let event = events
                .next()
                .await
                .ok_or_else(|| protocol("the ledger event stream ended early"))??;
            let seq = event.seq;
            let event = LedgerEvent::try_from(event).map_err(protocol)?;
            self.channel_mut()?
                .handle_ledger_event(&event)
                .map_err(channel_err)?;
            watch.next_seq = seq + 1;
        }
        Ok(())
    }

    /// One monitor pass (see the module docs); returns what it submitted.
    pub async fn monitor_ledger_once(
        &mut self,
        watch: &mut LedgerWatch,
    ) -> Result<Vec<Submitted>, HarnessError> {
        let time = self
            .ledger()
            .get_time(v1::GetTimeRequest {})
            .await?
            .into_inner();
        self.apply_ledger_events(watch, time.last_event_seq).await?;
        let record = self.ledger_record().await?;
        let pending = self.pending_unlocks().await?;
        let view = LedgerView {
            record: &record,
            now: time.now,
            reveal_timeout: watch.reveal_timeout,
            pending_unlocks: &pending,
            archived_locks: &[],
        };
        let actions = self
            .channel()?
            .poll_ledger_actions(&view, self.key())
            .map_err(channel_err)?;
        let mut submitted = Vec::with_capacity(actions.len());
        for action in actions {
            submitted.push(self.submit(&record, action).await?);
        }
        Ok(submitted)
    }

    async fn submit(
        &mut self,
        record: &ChannelRecord,
        action: LedgerAction,
    ) -> Result<Submitted, HarnessError> {
        let mut ledger = self.ledger();
        let (name, answer) = match action {
            LedgerAction::Update(tx) => (
                "update",
                ledger
                    .update_non_closing_balance_proof(v1::UpdateNonClosingBalanceProofRequest {
                        channel_id: u256_bytes(&tx.channel_id),
                        closer_proof: Some((&tx.closer_proof).into()),
                        non_closing_signature: tx.non_closing_signature.as_bytes().to_vec(),
                    })
                    .await,
            ),
            LedgerAction::Settle { .. } => {
                // The hub always closes and updates with this device's latest proof, so the
                // test device needs no archive of older ones.
                let settle = self
                    .channel()?
                    .settle_transaction(record, |_| None)
                    .map_err(channel_err)?;
                (
                    "settle",
                    ledger
                        .settle_channel(v1::SettleChannelRequest::from(&settle))
                        .await,
                )
            }
            LedgerAction::Close { .. } => {
                let key = self.key().clone();
                let tx = self.channel_mut()?.close(&key).map_err(channel_err)?;
                (
                    "close",
                    ledger
                        .close_channel(v1::CloseChannelRequest {
                            channel_id: u256_bytes(&tx.channel_id),
                            partner_proof: Some((&tx.partner_proof).into()),
                            closing_signature: tx.closing_signature.as_bytes().to_vec(),
                        })
                        .await,
                )
            }
            LedgerAction::RegisterSecret { secret } => (
                "register_secret",
                ledger
                    .register_secret(v1::RegisterSecretRequest {
                        secret: h256_bytes(&secret.0),
                    })
                    .await,
            ),
            LedgerAction::Unlock {
                channel_id,
                receiver,
                sender,
                packed_locks,
            } => (
                "unlock",
                ledger
                    .unlock(v1::UnlockRequest {
                        channel_id: u256_bytes(&channel_id),
                        receiver: address_bytes(&receiver),
                        sender: address_bytes(&sender),
                        packed_locks,
                    })
                    .await,
            ),
        };
        Ok(Submitted {
            action: name,
            outcome: answer.map(|_| ()),
        })
    }
}
