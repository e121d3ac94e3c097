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
//!
//! On a chain a transaction's effect shows only once the follower has read its block, so a
//! monitor pass may ask again for what an earlier pass sent; [`InFlight`] holds such an
//! action back for [`CHAIN_RESEND_AFTER`] seconds of ledger time (resent after that if its
//! effect never arrived). So a submission returns once its transaction is mined
//! (`HubLedger::send`), without waiting for confirmations, and a pass submits for up to
//! [`SUBMIT_CONCURRENCY`] channels at once. On the embedded ledger the effect is visible
//! when the submission returns, and nothing is held back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use channel_core::channel::{InFlight, LedgerAction, LedgerView, PendingUnlock};
use channel_core::ledger::{
    ChannelPhase as LedgerPhase, ChannelRecord, LedgerEvent, LedgerEventKind, LedgerOp,
};
use futures::StreamExt;
use tokio::sync::broadcast::error::RecvError;

use super::book::ChannelBook;
use crate::error::HubError;
use crate::ledger::{HubLedger, LedgerKind};
use crate::metrics::{watcher_action, WatcherAction};

/// How often the watcher runs the monitor, at the latest.
const MONITOR_TICK: Duration = Duration::from_millis(500);

/// How many channels' transactions a monitor pass has under way at once. On a chain each
/// waits for its block: one at a time, a hundred closes at once would take a hundred blocks
/// to contest, and a settlement window is only so many blocks long.
const SUBMIT_CONCURRENCY: usize = 64;

/// On a chain: seconds of ledger (block) time before the monitor sends again an action
/// whose effect has not been mirrored (a dropped or reverted transaction). Well inside any
/// reveal timeout or settlement window a chain deployment uses.
pub const CHAIN_RESEND_AFTER: u64 = 60;

/// The in-flight tracker for `ledger`'s kind (see the module docs).
pub fn in_flight_for(ledger: &HubLedger) -> InFlight {
    match ledger.kind() {
        LedgerKind::Embedded => InFlight::new(0),
        LedgerKind::Ethereum => InFlight::new(CHAIN_RESEND_AFTER),
    }
}

/// Applies every durable ledger event the book has not seen yet. Used by the watcher and by
/// request handlers that must see a just-made deposit before taking a payment.
pub async fn catch_up(book: &ChannelBook, ledger: &HubLedger) -> Result<(), HubError> {
    book.catch_up_with(ledger).await.map(|_| ())
}

/// Runs until `shutdown` completes. `reveal_timeout` (seconds): how long before a received
/// lock expires the hub stops waiting for the payer's off-chain unlock and registers the
/// secret on the ledger itself (`--reveal-timeout-secs`).
pub async fn run(
    book: Arc<ChannelBook>,
    ledger: HubLedger,
    reveal_timeout: u64,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut in_flight = in_flight_for(&ledger);
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
        apply(&book, &replay, &mut in_flight).await;
        monitor(&book, &ledger, reveal_timeout, &mut in_flight).await;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => monitor(&book, &ledger, reveal_timeout, &mut in_flight).await,
                _ = book.ledger_moved.notified() => {
                    monitor(&book, &ledger, reveal_timeout, &mut in_flight).await
                }
                event = rx.recv() => match event {
                    Ok(published) => {
                        apply(&book, std::slice::from_ref(&published.event), &mut in_flight).await
                    }
                    // Fell behind: resubscribe from the last applied seq.
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

async fn apply(book: &ChannelBook, events: &[LedgerEvent], in_flight: &mut InFlight) {
    for event in events {
        if let LedgerEventKind::SecretRegistered { secrethash, .. } = &event.kind {
            in_flight.forget_secret(secrethash);
        }
    }
    if let Err(e) = book.apply_ledger_events(events).await {
        tracing::error!(error = %e, "applying ledger events failed");
    }
}

/// One monitor pass over every hub channel that may need protecting: closed ones, settled
/// ones with tokens still kept back for unlock (the hub's locks, current or archived, or the
/// device's), and open ones with pending locks; for each,
/// submit what the channel monitor asks for (less what `in_flight` holds back).
pub async fn monitor(
    book: &ChannelBook,
    ledger: &HubLedger,
    reveal_timeout: u64,
    in_flight: &mut InFlight,
) {
    let me = book.operator_address();
    let Ok(now) = ledger.now() else { return };
    // A set: the filter below asks it once per channel of the hub.
    let with_locks: std::collections::BTreeSet<_> =
        book.channels_with_locks().into_iter().collect();
    let watched: Vec<(ChannelRecord, Vec<PendingUnlock>)> = match ledger.read(|l| {
        let keeping_back = l.channels_keeping_back();
        l.channel_records_of(me)
            .into_iter()
            .filter(|c| match c.phase {
                LedgerPhase::Closed => true,
                LedgerPhase::Opened => with_locks.contains(&c.id),
                // Kept-back tokens may be the hub's even when its channel holds no lock any
                // more: the device closed with an old proof that carried some.
                LedgerPhase::Settled => keeping_back.contains(&c.id),
            })
            .map(|c| (c.clone(), l.kept_back(c)))
            .collect()
    }) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "monitor cannot read the ledger");
            return;
        }
    };
    in_flight.retain_channels(|id| watched.iter().any(|(record, _)| record.id == id));
    let mut to_submit: Vec<(ChannelRecord, Vec<LedgerAction>)> = Vec::new();
    for (record, pending) in watched {
        let view = LedgerView {
            record: &record,
            now,
            reveal_timeout,
            pending_unlocks: &pending,
            // The book adds what its archive holds for these.
            archived_locks: &[],
        };
        let actions = match book.ledger_actions(&view).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(channel = %record.id, error = %e, "monitor cannot decide");
                continue;
            }
        };
        let actions = in_flight.to_send(record.id, actions, now);
        if !actions.is_empty() {
            to_submit.push((record, actions));
        }
    }
    // Channels concurrently (on a chain each transaction waits for its block), each
    // channel's actions in order.
    futures::stream::iter(to_submit)
        .for_each_concurrent(SUBMIT_CONCURRENCY, |(record, actions)| async move {
            for action in actions {
                submit(book, ledger, &record, action).await;
            }
        })
        .await;
}

/// Submits one monitor action. A refusal is expected when someone else got there first
/// (the device settled, an earlier pass already updated): logged, and the next pass decides
/// again from the ledger's state.
async fn submit(
    book: &ChannelBook,
    ledger: &HubLedger,
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
    let result = ledger.send(book.operator_address(), &op).await;
    if let Some(counted) = what.metric() {
        watcher_action(counted, &result);
    }
    match result {
        Ok(tx_hash) => tracing::info!(
            channel = %id,
            op = op.name(),
            tx = tx_hash.as_deref().unwrap_or("-"),
            "{}",
            what.done()
        ),
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
