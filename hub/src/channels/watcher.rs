//! The hub's ledger watcher: applies ledger events to the hub's channels, and runs the
//! channel monitor (`Channel::poll_ledger_actions`) over every hub channel that may need
//! protecting: contest, settle, register a secret before a received lock expires, unlock
//! after settlement.
//!
//! Contesting and settling are level-triggered: the watcher looks at the ledger's current
//! record of each closed channel at start-up, on every tick, and whenever applied events
//! touched the hub's channels, and submits what the monitor asks for. It never depends on
//! having *seen* a close event, so a close applied by a request's catch-up, or just before a
//! crash, is contested all the same while the settlement window is open.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use channel_core::channel::{pending_unlocks, LedgerAction, LedgerView, PendingUnlock};
use channel_core::ledger::{ChannelPhase as LedgerPhase, ChannelRecord, LedgerEvent};
use tokio::sync::broadcast::error::RecvError;

use super::book::ChannelBook;
use crate::error::HubError;
use crate::ledger::LedgerHandle;
use crate::metrics::{watcher_action, WatcherAction};

/// How often the watcher runs the monitor, at the latest.
const MONITOR_TICK: Duration = Duration::from_millis(500);

/// Applies every durable ledger event the book has not seen yet. Used by the watcher and by
/// request handlers that must see a just-made deposit before taking a payment.
pub async fn catch_up(book: &ChannelBook, ledger: &LedgerHandle) -> Result<(), HubError> {
    book.catch_up_with(ledger).await.map(|_| ())
}

/// Runs until `shutdown` completes. `reveal_timeout` (seconds): how long before a received
/// lock expires the hub stops waiting for the payer's off-chain unlock and registers the
/// secret on the ledger itself (`--reveal-timeout-secs`).
pub async fn run(
    book: Arc<ChannelBook>,
    ledger: Arc<LedgerHandle>,
    reveal_timeout: u64,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(MONITOR_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let from = book.applied_seq().await + 1;
        let (replay, mut rx) = match ledger.subscribe(from) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "watcher cannot subscribe to the ledger");
                return;
            }
        };
        apply(&book, &replay).await;
        monitor(&book, &ledger, reveal_timeout).await;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => monitor(&book, &ledger, reveal_timeout).await,
                _ = book.ledger_moved.notified() => monitor(&book, &ledger, reveal_timeout).await,
                event = rx.recv() => match event {
                    Ok(published) => apply(&book, std::slice::from_ref(&published.event)).await,
                    // Fell behind: resubscribe from the last applied seq.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

async fn apply(book: &ChannelBook, events: &[LedgerEvent]) {
    if let Err(e) = book.apply_ledger_events(events).await {
        tracing::error!(error = %e, "applying ledger events failed");
    }
}

/// One monitor pass over every hub channel that may need protecting: closed ones, settled
/// ones with tokens still kept back for unlock, and open ones with pending locks; for each,
/// submit what the channel monitor asks for.
pub async fn monitor(book: &ChannelBook, ledger: &LedgerHandle, reveal_timeout: u64) {
    let me = book.operator_address();
    let Ok(now) = ledger.now() else { return };
    let with_locks = book.channels_with_locks();
    let watched: Vec<(ChannelRecord, Vec<PendingUnlock>)> = match ledger.read(|l| {
        l.channels_of(me)
            .into_iter()
            .filter(|c| match c.phase {
                LedgerPhase::Closed => true,
                LedgerPhase::Settled | LedgerPhase::Opened => with_locks.contains(&c.id),
            })
            .map(|c| (c.clone(), pending_unlocks(l, c)))
            .collect()
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "monitor cannot read the ledger");
            return;
        }
    };
    for (record, pending) in watched {
        let view = LedgerView {
            record: &record,
            now,
            reveal_timeout,
            pending_unlocks: &pending,
        };
        let actions = match book.ledger_actions(&view).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(channel = %record.id, error = %e, "monitor cannot decide");
                continue;
            }
        };
        for action in actions {
            submit(book, ledger, &record, action).await;
        }
    }
}

/// Submits one monitor action. A refusal is expected when someone else got there first
/// (the device settled, an earlier pass already updated): logged, and the next pass decides
/// again from the ledger's state.
async fn submit(
    book: &ChannelBook,
    ledger: &LedgerHandle,
    record: &ChannelRecord,
    action: LedgerAction,
) {
    let me = book.operator_address();
    let id = record.id;
    match action {
        LedgerAction::Update(tx) => {
            let nonce = tx.closer_proof.proof.nonce;
            let result = ledger
                .submit(me, |l, caller, now| {
                    l.update_non_closing_balance_proof(
                        caller,
                        id,
                        &tx.closer_proof,
                        &tx.non_closing_signature,
                        now,
                    )
                })
                .await;
            watcher_action(WatcherAction::Contest, &result);
            match result {
                Ok(_) => {
                    tracing::info!(channel = %id, nonce, "contested close with the device's latest proof")
                }
                Err(e) => {
                    tracing::warn!(channel = %id, nonce, error = %e, "update of a device's close refused")
                }
            }
        }
        LedgerAction::RegisterSecret { secret } => {
            let secrethash = secret.hash();
            let result = ledger
                .submit(me, |l, caller, now| l.register_secret(caller, secret, now))
                .await;
            watcher_action(WatcherAction::RegisterSecret, &result);
            match result {
                Ok(_) => {
                    tracing::info!(channel = %id, %secrethash, "registered a secret on the ledger")
                }
                Err(e) => {
                    tracing::warn!(channel = %id, %secrethash, error = %e, "secret registration refused")
                }
            }
        }
        LedgerAction::Unlock {
            channel_id,
            receiver,
            sender,
            packed_locks,
        } => {
            let result = ledger
                .submit(me, |l, caller, now| {
                    l.unlock(caller, channel_id, receiver, sender, &packed_locks, now)
                })
                .await;
            watcher_action(WatcherAction::Unlock, &result);
            match result {
                Ok(_) => tracing::info!(channel = %channel_id, %sender, %receiver, "unlocked"),
                Err(e) => tracing::debug!(channel = %channel_id, error = %e, "unlock not done"),
            }
        }
        LedgerAction::Close { channel_id } => {
            let result = match book.close_transaction(&channel_id).await {
                Ok(tx) => ledger
                    .submit(me, |l, caller, now| {
                        l.close_channel(
                            caller,
                            channel_id,
                            &tx.partner_proof,
                            &tx.closing_signature,
                            now,
                        )
                    })
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    tracing::info!(channel = %channel_id, "closed to claim a lock the device never unlocked")
                }
                Err(e) => {
                    tracing::warn!(channel = %channel_id, error = %e, "close to claim a lock not done")
                }
            }
        }
        LedgerAction::Settle { channel_id } => {
            let result = match book.settle_transaction(record).await {
                Ok(settle) => {
                    ledger
                        .submit(me, |l, caller, now| l.settle_channel(caller, &settle, now))
                        .await
                }
                Err(e) => Err(e),
            };
            watcher_action(WatcherAction::Settle, &result);
            match result {
                Ok(_) => tracing::info!(channel = %channel_id, "settled"),
                Err(e) => tracing::debug!(channel = %channel_id, error = %e, "settle not done"),
            }
        }
    }
}
