//! [`HubLedger`]: the hub's embedded ledger, reached through its `voltlane.v1.Ledger` gRPC
//! service (today's default). Every transaction is one call whose answer carries the events
//! it emitted, and every read is one call; events of the device come from `Ledger.Subscribe`.

use std::sync::Arc;

use channel_core::channel::PendingUnlock;
use channel_core::ledger::{ChannelRecord, LedgerEvent, LedgerOp};
use channel_core::primitives::{Address, U256};
use voltlane_proto::convert::{address, address_bytes, h256, h256_bytes, u256, u256_bytes};
use voltlane_proto::v1;

use crate::error::ClientError;
use crate::rpc::Rpc;

/// The hub's Ledger service as the device's ledger.
#[derive(Clone, Debug)]
pub struct HubLedger {
    /// Shared with the client (one connection to the hub).
    rpc: Arc<Rpc>,
}

fn core_events(events: Vec<v1::LedgerEvent>) -> Result<Vec<LedgerEvent>, ClientError> {
    events
        .into_iter()
        .map(|m| Ok(LedgerEvent::try_from(m)?))
        .collect()
}

impl HubLedger {
    pub(crate) fn new(rpc: Rpc) -> Self {
        Self { rpc: Arc::new(rpc) }
    }

    /// Sends `op` as this device and returns the events the ledger emitted.
    pub async fn execute(&self, op: &LedgerOp) -> Result<Vec<LedgerEvent>, ClientError> {
        let rpc = &self.rpc;
        let resp = match op {
            LedgerOp::OpenChannel {
                partner,
                total_deposit,
            } => {
                let req = v1::OpenChannelRequest {
                    partner: address_bytes(partner),
                    total_deposit: if total_deposit.is_zero() {
                        Vec::new()
                    } else {
                        u256_bytes(total_deposit)
                    },
                };
                let resp = rpc
                    .call("Ledger.OpenChannel", move |mut c| {
                        let req = req.clone();
                        async move { c.ledger.open_channel(req).await }
                    })
                    .await?;
                return core_events(resp.events);
            }
            LedgerOp::SetTotalDeposit {
                channel_id,
                participant,
                total_deposit,
            } => {
                let req = v1::SetTotalDepositRequest {
                    channel_id: u256_bytes(channel_id),
                    participant: address_bytes(participant),
                    total_deposit: u256_bytes(total_deposit),
                };
                rpc.call("Ledger.SetTotalDeposit", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.set_total_deposit(req).await }
                })
                .await?
            }
            LedgerOp::SetTotalWithdraw(w) => {
                let req = v1::SetTotalWithdrawRequest {
                    withdraw: Some(w.into()),
                };
                rpc.call("Ledger.SetTotalWithdraw", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.set_total_withdraw(req).await }
                })
                .await?
            }
            LedgerOp::Close(tx) => {
                let req = v1::CloseChannelRequest {
                    channel_id: u256_bytes(&tx.channel_id),
                    partner_proof: (!tx.partner_proof.is_none())
                        .then(|| (&tx.partner_proof).into()),
                    closing_signature: tx.closing_signature.as_bytes().to_vec(),
                };
                rpc.call("Ledger.CloseChannel", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.close_channel(req).await }
                })
                .await?
            }
            LedgerOp::Update(tx) => {
                let req = v1::UpdateNonClosingBalanceProofRequest {
                    channel_id: u256_bytes(&tx.channel_id),
                    closer_proof: Some((&tx.closer_proof).into()),
                    non_closing_signature: tx.non_closing_signature.as_bytes().to_vec(),
                };
                rpc.call("Ledger.UpdateNonClosingBalanceProof", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.update_non_closing_balance_proof(req).await }
                })
                .await?
            }
            LedgerOp::Settle(settle) => {
                let req = v1::SettleChannelRequest::from(settle);
                rpc.call("Ledger.SettleChannel", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.settle_channel(req).await }
                })
                .await?
            }
            LedgerOp::RegisterSecret(secret) => {
                let req = v1::RegisterSecretRequest {
                    secret: h256_bytes(&secret.0),
                };
                rpc.call("Ledger.RegisterSecret", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.register_secret(req).await }
                })
                .await?
            }
            LedgerOp::Unlock {
                channel_id,
                receiver,
                sender,
                packed_locks,
            } => {
                let req = v1::UnlockRequest {
                    channel_id: u256_bytes(channel_id),
                    receiver: address_bytes(receiver),
                    sender: address_bytes(sender),
                    packed_locks: packed_locks.clone(),
                };
                rpc.call("Ledger.Unlock", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.unlock(req).await }
                })
                .await?
            }
            LedgerOp::CooperativeSettle {
                channel_id,
                withdraws: [w1, w2],
            } => {
                let req = v1::CooperativeSettleRequest {
                    channel_id: u256_bytes(channel_id),
                    withdraw1: Some(w1.into()),
                    withdraw2: Some(w2.into()),
                };
                rpc.call("Ledger.CooperativeSettle", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.cooperative_settle(req).await }
                })
                .await?
            }
        };
        core_events(resp.events)
    }

    /// The ledger's current time.
    pub async fn now(&self) -> Result<u64, ClientError> {
        let t = self
            .rpc
            .call("Ledger.GetTime", |mut c| async move {
                c.ledger.get_time(v1::GetTimeRequest {}).await
            })
            .await?;
        Ok(t.now)
    }

    /// The ledger's record of `channel_id`.
    pub async fn channel(&self, channel_id: U256) -> Result<ChannelRecord, ClientError> {
        let m = self
            .rpc
            .call("Ledger.GetChannel", move |mut c| async move {
                c.ledger
                    .get_channel(v1::GetLedgerChannelRequest {
                        channel_id: u256_bytes(&channel_id),
                    })
                    .await
            })
            .await?;
        Ok(ChannelRecord::try_from(m)?)
    }

    /// `who`'s token balance on the ledger.
    pub async fn token_balance(&self, who: Address) -> Result<U256, ClientError> {
        let b = self
            .rpc
            .call("Ledger.GetTokenBalance", move |mut c| async move {
                c.ledger
                    .get_token_balance(v1::GetTokenBalanceRequest {
                        address: address_bytes(&who),
                    })
                    .await
            })
            .await?;
        Ok(u256("balance", &b.balance)?)
    }

    /// The seq of the hub ledger's last event (where a new device starts following it).
    pub async fn last_event_seq(&self) -> Result<u64, ClientError> {
        let t = self
            .rpc
            .call("Ledger.GetTime", |mut c| async move {
                c.ledger.get_time(v1::GetTimeRequest {}).await
            })
            .await?;
        Ok(t.last_event_seq)
    }

    /// Opens a channel with `partner` (no deposit) and returns its id.
    pub async fn open_channel(&self, partner: Address) -> Result<U256, ClientError> {
        let resp = self
            .rpc
            .call("Ledger.OpenChannel", move |mut c| async move {
                c.ledger
                    .open_channel(v1::OpenChannelRequest {
                        partner: address_bytes(&partner),
                        total_deposit: Vec::new(),
                    })
                    .await
            })
            .await?;
        Ok(u256("channel_id", &resp.channel_id)?)
    }

    /// Every channel `who` takes part in (`Ledger.ListChannels`).
    pub async fn channels_of(&self, who: Address) -> Result<Vec<ChannelRecord>, ClientError> {
        let list = self
            .rpc
            .call("Ledger.ListChannels", move |mut c| async move {
                c.ledger
                    .list_channels(v1::ListLedgerChannelsRequest {
                        participant: address_bytes(&who),
                    })
                    .await
            })
            .await?;
        list.channels
            .into_iter()
            .map(|m| Ok(ChannelRecord::try_from(m)?))
            .collect()
    }

    /// The tokens the ledger keeps back in `channel_id` after settlement
    /// (`Ledger.GetPendingUnlocks`).
    pub async fn pending_unlocks(
        &self,
        channel_id: U256,
    ) -> Result<Vec<PendingUnlock>, ClientError> {
        let answer = self
            .rpc
            .call("Ledger.GetPendingUnlocks", move |mut c| async move {
                c.ledger
                    .get_pending_unlocks(v1::GetPendingUnlocksRequest {
                        channel_id: u256_bytes(&channel_id),
                    })
                    .await
            })
            .await;
        let list = match answer {
            Ok(list) => list,
            // A hub from before locks travelled the wire cannot say; it kept nothing back.
            Err(e) if e.code() == Some(tonic::Code::Unimplemented) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        list.unlocks
            .into_iter()
            .map(|u| {
                Ok(PendingUnlock {
                    sender: address("unlocks.sender", &u.sender)?,
                    receiver: address("unlocks.receiver", &u.receiver)?,
                    locksroot: h256("unlocks.locksroot", &u.locksroot)?,
                })
            })
            .collect()
    }

    /// Dev faucet: credits `amount` test tokens to `to` (`Ledger.Mint`).
    pub async fn mint(&self, to: Address, amount: U256) -> Result<(), ClientError> {
        let req = v1::MintRequest {
            to: address_bytes(&to),
            amount: u256_bytes(&amount),
        };
        self.rpc
            .call("Ledger.Mint", move |mut c| {
                let req = req.clone();
                async move { c.ledger.mint(req).await }
            })
            .await?;
        Ok(())
    }

    /// The events that concern `participant` from `from_seq` on, then live
    /// (`Ledger.Subscribe`).
    pub(crate) async fn subscribe(
        &self,
        from_seq: u64,
        participant: Address,
    ) -> Result<tonic::Streaming<v1::LedgerEvent>, ClientError> {
        let participant = address_bytes(&participant);
        self.rpc
            .call("Ledger.Subscribe", move |mut c| {
                let participant = participant.clone();
                async move {
                    c.ledger
                        .subscribe(v1::SubscribeRequest {
                            from_seq,
                            participant,
                        })
                        .await
                }
            })
            .await
    }
}
