//! The hub's ledger watcher: applies ledger events to the hub's channels, contests a device's
//! close with the device's latest proof (counter-signed by the hub) inside the settlement
//! window, and settles channels once their window has passed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use channel_core::ledger::{ChannelPhase as LedgerPhase, LedgerEvent, LedgerEventKind};
use channel_core::U256;
use tokio::sync::broadcast::error::RecvError;

use super::book::ChannelBook;
use crate::error::HubError;
use crate::ledger::LedgerHandle;

/// How often the watcher looks for channels whose settlement window has passed.
const SETTLE_TICK: Duration = Duration::from_millis(500);

/// Applies every durable ledger event the book has not seen yet. Used by the watcher and by
/// request handlers that must see a just-made deposit before taking a payment.
pub async fn catch_up(
    book: &ChannelBook,
    ledger: &LedgerHandle,
) -> Result<Vec<LedgerEvent>, HubError> {
    let from = book.applied_seq().await + 1;
    let (replay, _rx) = ledger.subscribe(from)?;
    book.apply_ledger_events(&replay).await
}

/// Runs until `shutdown` completes.
pub async fn run(
    book: Arc<ChannelBook>,
    ledger: Arc<LedgerHandle>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(SETTLE_TICK);
    loop {
        let from = book.applied_seq().await + 1;
        let (replay, mut rx) = match ledger.subscribe(from) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "watcher cannot subscribe to the ledger");
                return;
            }
        };
        react(&book, &ledger, &replay).await;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => settle_due(&book, &ledger).await,
                event = rx.recv() => match event {
                    Ok(event) => react(&book, &ledger, std::slice::from_ref(&event)).await,
                    // Fell behind: resubscribe from the last applied seq.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

async fn react(book: &ChannelBook, ledger: &LedgerHandle, events: &[LedgerEvent]) {
    let relevant = match book.apply_ledger_events(events).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "applying ledger events failed");
            return;
        }
    };
    for event in relevant {
        if let LedgerEventKind::ChannelClosed {
            channel_id,
            closing_participant,
            ..
        } = event.kind
        {
            if closing_participant != book.operator_address() {
                contest(book, ledger, channel_id).await;
            }
        }
    }
}

/// The device closed: submit its latest proof so the hub is credited with every payment.
async fn contest(book: &ChannelBook, ledger: &LedgerHandle, id: U256) {
    let tx = match book.update_for(&id).await {
        Ok(Some(tx)) => tx,
        Ok(None) => return,
        Err(e) => {
            tracing::error!(channel = %id, error = %e, "cannot build update transaction");
            return;
        }
    };
    let result = ledger
        .submit(book.operator_address(), |l, caller, now| {
            l.update_non_closing_balance_proof(
                caller,
                id,
                &tx.closer_proof,
                &tx.non_closing_signature,
                now,
            )
        })
        .await;
    match result {
        Ok(_) => {
            tracing::info!(channel = %id, nonce = tx.closer_proof.proof.nonce, "contested close with the device's latest proof")
        }
        Err(e) => tracing::warn!(channel = %id, error = %e, "update of a device's close refused"),
    }
}

/// Settles the hub's closed channels whose window has passed.
async fn settle_due(book: &ChannelBook, ledger: &LedgerHandle) {
    let me = book.operator_address();
    let Ok(now) = ledger.now() else { return };
    let due: Vec<U256> = match ledger.read(|l| {
        l.channels_of(me)
            .into_iter()
            .filter(|c| c.phase == LedgerPhase::Closed && c.settle_after.is_some_and(|t| now > t))
            .map(|c| c.id)
            .collect()
    }) {
        Ok(d) => d,
        Err(_) => return,
    };
    for id in due {
        match ledger
            .submit(me, |l, caller, now| l.settle_channel(caller, id, now))
            .await
        {
            Ok(_) => tracing::info!(channel = %id, "settled"),
            // A device may have settled in between; the ledger refuses a second settle.
            Err(e) => tracing::debug!(channel = %id, error = %e, "settle not done"),
        }
    }
}
