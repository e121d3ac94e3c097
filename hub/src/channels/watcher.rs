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
use channel_core::ledger::{ChannelPhase as LedgerPhase, ChannelRecord, LedgerEvent, LedgerOp};
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
    let id = record.id;
    let (what, op) = match ledger_op(book, record, action).await {
        Ok(planned) => planned,
        Err((what, e)) => {
            tracing::warn!(channel = %id, error = %e, "{} not submitted", what.label());
            return;
        }
    };
    let result = ledger.execute(book.operator_address(), &op).await;
    if let Some(counted) = what.metric() {
        watcher_action(counted, &result);
    }
    match result {
        Ok(_) => tracing::info!(channel = %id, op = op.name(), "{}", what.done()),
        Err(e) if what.refusal_expected() => {
            tracing::debug!(channel = %id, op = op.name(), error = %e, "{} not done", what.label())
        }
        Err(e) => {
            tracing::warn!(channel = %id, op = op.name(), error = %e, "{} refused", what.label())
        }
    }
}

/// What a monitor action is, for metrics and logs.
#[derive(Clone, Copy, Debug)]
enum Planned {
    Contest,
    RegisterSecret,
    Unlock,
    CloseToClaim,
    Settle,
}

impl Planned {
    fn label(self) -> &'static str {
        match self {
            Planned::Contest => "update of a device's close",
            Planned::RegisterSecret => "secret registration",
            Planned::Unlock => "unlock",
            Planned::CloseToClaim => "close to claim a lock",
            Planned::Settle => "settle",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Planned::Contest => "contested close with the device's latest proof",
            Planned::RegisterSecret => "registered a secret on the ledger",
            Planned::Unlock => "unlocked",
            Planned::CloseToClaim => "closed to claim a lock the device never unlocked",
            Planned::Settle => "settled",
        }
    }

    fn metric(self) -> Option<WatcherAction> {
        match self {
            Planned::Contest => Some(WatcherAction::Contest),
            Planned::RegisterSecret => Some(WatcherAction::RegisterSecret),
            Planned::Unlock => Some(WatcherAction::Unlock),
            Planned::Settle => Some(WatcherAction::Settle),
            Planned::CloseToClaim => None,
        }
    }

    /// Settles and unlocks race the device's own; their refusals are routine.
    fn refusal_expected(self) -> bool {
        matches!(self, Planned::Settle | Planned::Unlock)
    }
}

/// The ledger operation for `action`: the monitor's transaction as it is, or (for a close or a
/// settle) built by the book from the channel.
async fn ledger_op(
    book: &ChannelBook,
    record: &ChannelRecord,
    action: LedgerAction,
) -> Result<(Planned, LedgerOp), (Planned, HubError)> {
    Ok(match action {
        LedgerAction::Update(tx) => (Planned::Contest, LedgerOp::Update(*tx)),
        LedgerAction::RegisterSecret { secret } => {
            (Planned::RegisterSecret, LedgerOp::RegisterSecret(secret))
        }
        LedgerAction::Unlock {
            channel_id,
            receiver,
            sender,
            packed_locks,
        } => (
            Planned::Unlock,
            LedgerOp::Unlock {
                channel_id,
                receiver,
                sender,
                packed_locks,
            },
        ),
        LedgerAction::Close { channel_id } => {
            let planned = Planned::CloseToClaim;
            let tx = book
                .close_transaction(&channel_id)
                .await
                .map_err(|e| (planned, e))?;
            (planned, LedgerOp::Close(tx))
        }
        LedgerAction::Settle { .. } => {
            let planned = Planned::Settle;
            let settle = book
                .settle_transaction(record)
                .await
                .map_err(|e| (planned, e))?;
            (planned, LedgerOp::Settle(settle))
        }
    })
}
