//! The ledger watcher tasks, with no help from the hub's channel logic:
//!
//! - [`run`] follows `Ledger.Subscribe` from the last event the device applied, feeds every
//!   event to the channel (the core's idempotent `handle_ledger_event`) and persists the seq
//!   with the channel.
//! - [`monitor`] is the level-triggered channel monitor: while the channel is closing or
//!   closed it reads the ledger's current record of the channel (at start-up, every
//!   [`MONITOR_TICK`], and whenever the channel changes phase) and submits what the core's
//!   `Channel::poll_ledger_action` asks for: the hub's latest proof counter-signed
//!   (`UpdateNonClosingBalanceProof`) when the hub closed with an older one, and a settle once
//!   the window is over. It never depends on having seen the close event, so a close the
//!   device applied just before a crash is still contested after the restart.

use std::sync::Arc;
use std::time::Duration;

use channel_core::channel::{ChannelPhase, LedgerAction, LedgerView, UpdateTransaction};
use channel_core::ledger::{ChannelPhase as LedgerPhase, LedgerEvent};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::ops;
use crate::shared::Shared;

/// Runs until the client is dropped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    loop {
        if let Err(e) = session(&shared, &mut backoff).await {
            tracing::warn!(error = %e, "ledger subscription interrupted");
        }
        backoff.sleep().await;
    }
}

async fn session(shared: &Arc<Shared>, backoff: &mut Backoff) -> Result<(), ClientError> {
    let from_seq = shared.store.ledger_seq()?.saturating_add(1);
    let mut stream = shared
        .rpc
        .call("Ledger.Subscribe", move |mut c| async move {
            c.ledger.subscribe(v1::SubscribeRequest { from_seq }).await
        })
        .await?;
    backoff.reset();
    while let Some(m) = stream
        .message()
        .await
        .map_err(|s| ClientError::rpc("Ledger.Subscribe", s))?
    {
        let ev = LedgerEvent::try_from(m)?;
        if ev.seq <= shared.store.ledger_seq()? {
            continue;
        }
        let effect = shared.apply_ledger_event(&ev)?;
        shared.store.put_ledger_seq(ev.seq)?;
        if effect.changed {
            shared.store.flush().await?;
        }
    }
    Ok(())
}

/// How often the monitor looks at the ledger while the channel is closing or closed.
pub const MONITOR_TICK: Duration = Duration::from_secs(1);

/// Seconds before a received lock expires at which the device registers its secret itself.
pub const REVEAL_TIMEOUT_SECS: u64 = 10;

/// Runs the channel monitor until the client is dropped.
pub(crate) async fn monitor(shared: Arc<Shared>) {
    let mut changed = shared.subscribe_changes();
    loop {
        let watching = shared.channel().ok().flatten().is_some_and(|ch| {
            matches!(
                ch.phase(),
                ChannelPhase::Closing | ChannelPhase::Closed { .. }
            )
        });
        if watching {
            if let Err(e) = monitor_once(&shared).await {
                tracing::warn!(error = %e, "channel monitor pass failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(MONITOR_TICK) => {}
            c = changed.changed() => {
                if c.is_err() {
                    return;
                }
            }
        }
    }
}

/// One monitor pass: read the ledger's record of our channel and submit what the core asks.
///
/// The device holds no hash-time locks yet (none travel the wire), so nothing is kept back
/// for it after settlement and the view lists no pending unlocks; the core's secret
/// registration and unlock rules are wired in all the same, for when locks arrive.
async fn monitor_once(shared: &Shared) -> Result<(), ClientError> {
    let channel = shared.require_channel()?;
    let record = ops::ledger_channel(shared, channel.id()).await?;
    let now = ops::ledger_now(shared).await?;
    let view = LedgerView {
        record: &record,
        now,
        reveal_timeout: REVEAL_TIMEOUT_SECS,
        pending_unlocks: &[],
    };
    let actions = channel.poll_ledger_actions(&view, shared.rpc.signer())?;
    if actions.is_empty()
        && record.phase == LedgerPhase::Settled
        && channel.phase() != ChannelPhase::Settled
    {
        shared.update_channel(|ch| Ok(ch.handle_ledger_settled()))?;
        shared.store.flush().await?;
    }
    for action in actions {
        submit(shared, action).await?;
    }
    Ok(())
}

/// Submits one monitor action. A refusal of a settle, registration or unlock is expected
/// when someone else got there first: logged, and the next pass decides again.
async fn submit(shared: &Shared, action: LedgerAction) -> Result<(), ClientError> {
    match action {
        LedgerAction::Update(tx) => {
            let nonce = tx.closer_proof.proof.nonce;
            contest(shared, &tx).await?;
            tracing::info!(nonce, "contested the hub's close with its latest proof");
        }
        LedgerAction::Settle { channel_id } => match ops::submit_settle(shared, channel_id).await {
            Ok(_) => tracing::info!("channel settled"),
            Err(e) => tracing::debug!(error = %e, "settle not done"),
        },
        LedgerAction::Close { .. } => {
            tracing::warn!(
                "a lock owed to this device needs claiming on the ledger: close the channel"
            );
        }
        LedgerAction::RegisterSecret { secret } => {
            let req = v1::RegisterSecretRequest {
                secret: secret.0.as_bytes().to_vec(),
            };
            let resp = shared
                .rpc
                .call("Ledger.RegisterSecret", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.register_secret(req).await }
                })
                .await;
            apply_or_log(shared, "secret registration", resp).await?;
        }
        LedgerAction::Unlock {
            channel_id,
            receiver,
            sender,
            packed_locks,
        } => {
            let req = v1::UnlockRequest {
                channel_id: u256_bytes(&channel_id),
                receiver: address_bytes(&receiver),
                sender: address_bytes(&sender),
                packed_locks,
            };
            let resp = shared
                .rpc
                .call("Ledger.Unlock", move |mut c| {
                    let req = req.clone();
                    async move { c.ledger.unlock(req).await }
                })
                .await;
            apply_or_log(shared, "unlock", resp).await?;
        }
    }
    Ok(())
}

/// Applies the events of a monitor submission the ledger accepted; a refusal is only logged
/// (someone else may have done it already, and the next pass decides again).
async fn apply_or_log(
    shared: &Shared,
    what: &'static str,
    resp: Result<v1::LedgerOpResponse, ClientError>,
) -> Result<(), ClientError> {
    match resp {
        Ok(resp) => {
            ops::apply_events(shared, resp.events).await?;
        }
        Err(e) => tracing::debug!(error = %e, "{what} not done"),
    }
    Ok(())
}

/// Submits our counter-signature over the hub's latest proof.
async fn contest(shared: &Shared, tx: &UpdateTransaction) -> Result<(), ClientError> {
    let req = v1::UpdateNonClosingBalanceProofRequest {
        channel_id: u256_bytes(&tx.channel_id),
        closer_proof: Some((&tx.closer_proof).into()),
        non_closing_signature: tx.non_closing_signature.as_bytes().to_vec(),
    };
    let resp = shared
        .rpc
        .call("Ledger.UpdateNonClosingBalanceProof", move |mut c| {
            let req = req.clone();
            async move { c.ledger.update_non_closing_balance_proof(req).await }
        })
        .await?;
    ops::apply_events(shared, resp.events).await?;
    Ok(())
}
