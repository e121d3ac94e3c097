//! The device's ledger: every transaction it sends, as a [`LedgerOp`], and the reads it
//! needs (time, its channel's record, token balances).
//!
//! Today the hub's `Ledger` service (the embedded ledger) serves both. A device on a real
//! chain will send the same operations to the chain itself, never through the hub, for
//! everything that protects its money; this module is the one place that will change.

use channel_core::ledger::{ChannelRecord, LedgerOp};
use channel_core::primitives::{Address, U256};
use voltlane_proto::convert::{address_bytes, h256_bytes, u256, u256_bytes};
use voltlane_proto::v1;

use crate::error::ClientError;
use crate::shared::Shared;

/// Sends `op` as this device and returns the events the ledger emitted.
pub(crate) async fn execute(
    shared: &Shared,
    op: &LedgerOp,
) -> Result<Vec<v1::LedgerEvent>, ClientError> {
    let rpc = &shared.rpc;
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
            return Ok(resp.events);
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
                partner_proof: (!tx.partner_proof.is_none()).then(|| (&tx.partner_proof).into()),
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
    Ok(resp.events)
}

/// The ledger's current time.
pub(crate) async fn now(shared: &Shared) -> Result<u64, ClientError> {
    let t = shared
        .rpc
        .call("Ledger.GetTime", |mut c| async move {
            c.ledger.get_time(v1::GetTimeRequest {}).await
        })
        .await?;
    Ok(t.now)
}

/// The ledger's record of `channel_id`.
pub(crate) async fn channel(
    shared: &Shared,
    channel_id: U256,
) -> Result<ChannelRecord, ClientError> {
    let m = shared
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
pub(crate) async fn token_balance(shared: &Shared, who: Address) -> Result<U256, ClientError> {
    let b = shared
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
