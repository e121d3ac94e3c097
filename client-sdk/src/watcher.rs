//! The ledger watcher task: follows `Ledger.Subscribe` from the last event the device applied,
//! feeds deposit / withdraw / close / settle events to the channel and persists the seq with
//! the channel. When the hub closes, it contests with the hub's latest proof counter-signed
//! (`UpdateNonClosingBalanceProof`) inside the window, then settles once the window is over —
//! with no help from the hub's channel logic.

use std::sync::Arc;

use channel_core::ledger::LedgerEvent;
use voltlane_proto::convert::u256_bytes;
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
        if effect.hub_closed {
            shared.spawn(contest_and_settle);
        }
    }
    Ok(())
}

/// The hub closed: submit our counter-signature over the hub's latest proof, then settle
/// after the window.
async fn contest_and_settle(shared: Arc<Shared>) {
    if let Err(e) = contest(&shared).await {
        tracing::warn!(error = %e, "could not contest the hub's close");
    }
    match ops::settle(&shared).await {
        Ok(_) => tracing::info!("channel settled after the hub's close"),
        Err(e) => tracing::warn!(error = %e, "could not settle after the hub's close"),
    }
}

async fn contest(shared: &Shared) -> Result<(), ClientError> {
    let channel = shared.require_channel()?;
    let Some(tx) = channel.update_transaction(shared.rpc.signer())? else {
        return Ok(()); // the hub never paid us: nothing to contest with
    };
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
