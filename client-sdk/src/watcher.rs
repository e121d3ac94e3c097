//! The ledger watcher tasks, with no help from the hub's channel logic:
//!
//! - [`run`] follows the ledger's events that concern this device from the last one the
//!   device applied, feeds every event to the channel (the core's idempotent
//!   `handle_ledger_event`) and persists the seq with the channel. On the hub's embedded
//!   ledger the events come from `Ledger.Subscribe`; on a chain from the device's own
//!   follower ([`crate::ledger::ChainLedger::follow_once`]), which persists them with its
//!   mirror and cursor before they are fed here, so a crash in between feeds them again.
//! - [`monitor`] is the level-triggered channel monitor: while it has something to guard
//!   ([`needs_watch`]) it reads the ledger's current record of the channel (at start-up, every
//!   [`MONITOR_TICK`], and whenever the channel changes phase) and submits what the core's
//!   `Channel::poll_ledger_actions` asks for: the hub's latest proof counter-signed
//!   (`UpdateNonClosingBalanceProof`) when the hub closed with an older one, a settle once the
//!   window is over, the secret of a lock the hub owes us when the hub has not unlocked it
//!   close to its expiry, a close when such a lock is claimed on the ledger but the hub never
//!   unlocked it, and the unlocks of the tokens the ledger kept back at settlement. It never
//!   depends on having seen an event, so a close the device applied just before a crash is
//!   still contested after the restart. On a chain its actions pass through the core's
//!   `InFlight` first, so a transaction whose effect is not mirrored yet is not sent again
//!   before [`resend_after`] seconds of ledger time.

use std::sync::Arc;
use std::time::Duration;

use channel_core::channel::{
    Channel, ChannelPhase, InFlight, LedgerAction, LedgerView, UpdateTransaction,
};
use channel_core::ledger::{ChannelPhase as LedgerPhase, ChannelRecord, LedgerEvent, LedgerOp};
use channel_core::primitives::U256;

use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::ledger::{self, ChainLedger, DeviceLedger, HubLedger};
use crate::ops;
use crate::shared::Shared;

/// Runs until the client is dropped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    loop {
        let outcome = match &shared.ledger {
            DeviceLedger::Hub(hub) => session(&shared, hub, &mut backoff).await,
            DeviceLedger::Ethereum(chain) => follow(&shared, chain, &mut backoff).await,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, kind = shared.ledger.kind(), "ledger follower interrupted");
        }
        backoff.sleep().await;
    }
}

/// One `Ledger.Subscribe` stream of the hub's embedded ledger.
async fn session(
    shared: &Arc<Shared>,
    hub: &HubLedger,
    backoff: &mut Backoff,
) -> Result<(), ClientError> {
    let from_seq = shared.store.ledger_seq()?.saturating_add(1);
    // Only the events of this device (its channels, mints to it, secret registrations).
    let me = channel_core::Signer::address(shared.rpc.signer());
    let mut stream = hub.subscribe(from_seq, me).await?;
    backoff.reset();
    while let Some(m) = stream
        .message()
        .await
        .map_err(|s| ClientError::rpc("Ledger.Subscribe", s))?
    {
        deliver(shared, &[LedgerEvent::try_from(m)?]).await?;
    }
    Ok(())
}

/// Follows the chain until a poll fails: feeds what an earlier run left undelivered, then
/// polls (at once again while the cursor moves, every poll interval once caught up) and
/// feeds each poll's events to the channel.
async fn follow(
    shared: &Arc<Shared>,
    chain: &ChainLedger,
    backoff: &mut Backoff,
) -> Result<(), ClientError> {
    loop {
        let undelivered = chain.undelivered_after(shared.store.ledger_seq()?)?;
        deliver(shared, &undelivered).await?;
        let step = chain.follow_once().await?;
        backoff.reset();
        if step.advanced {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(chain.poll_interval()).await;
        }
    }
}

/// Applies `events` (oldest first) that are newer than the last applied one to the channel,
/// each with its seq in one durable write.
async fn deliver(shared: &Shared, events: &[LedgerEvent]) -> Result<(), ClientError> {
    let mut changed = false;
    for ev in events {
        if ev.seq <= shared.store.ledger_seq()? {
            continue;
        }
        // The event and its seq in one durable write.
        let effect = if shared.channel()?.is_some() {
            shared
                .transition(|ch, batch| {
                    let effect = crate::sync::apply_event(ch, ev)?;
                    batch.ledger_seq(ev.seq)?;
                    Ok(effect)
                })
                .await?
        } else {
            shared.store.put_ledger_seq(ev.seq).await?;
            Default::default()
        };
        changed |= effect.changed;
    }
    if changed && shared.open_channel_id().is_none() {
        shared.fail_pending("the channel left the open phase before the hub acknowledged");
    }
    Ok(())
}

/// How often the monitor looks at the ledger while it has something to guard.
pub const MONITOR_TICK: Duration = Duration::from_secs(1);

/// Whether the monitor must watch the ledger for `channel`: while it is closing or closed
/// (contest, settle, register secrets), while open with a lock the hub owes us whose secret
/// we know (register it in time if the hub withholds the unlock, then close to claim it),
/// and once settled until a pass found the ledger holding nothing back for it
/// (`unlocks_done`). Settled with no lock in the channel is no exception: the hub may have
/// closed with an old proof of ours that carried locks, which only our archive still knows.
pub fn needs_watch(channel: &Channel, unlocks_done: bool) -> bool {
    match channel.phase() {
        ChannelPhase::Closing | ChannelPhase::Closed { .. } => true,
        ChannelPhase::Settled => !unlocks_done,
        ChannelPhase::Open | ChannelPhase::CooperativeSettling { .. } => channel
            .partner()
            .locks
            .as_slice()
            .iter()
            .any(|l| channel.known_secret(&l.secrethash).is_some()),
    }
}

/// How long (ledger seconds) the monitor on a chain holds back an action it already sent
/// whose effect is not mirrored yet: a quarter of the shorter of the reveal timeout and the
/// settlement window, at least one second, so a lost transaction is sent again well in time.
pub fn resend_after(reveal_timeout: u64, settlement_timeout: u64) -> u64 {
    (reveal_timeout.min(settlement_timeout) / 4).max(1)
}

/// Runs the channel monitor until the client is dropped.
pub(crate) async fn monitor(shared: Arc<Shared>) {
    let mut changed = shared.subscribe_changes();
    // The settled channel whose kept-back tokens are all unlocked (nothing left to guard).
    let mut unlocks_done: Option<U256> = None;
    // On a chain: what was sent and is not mirrored yet.
    let mut in_flight = shared.ledger.chain().map(|_| {
        InFlight::new(resend_after(
            shared.mediation.reveal_timeout,
            shared.hub.settlement_timeout,
        ))
    });
    loop {
        let channel = shared.channel().ok().flatten();
        let watching = channel
            .as_ref()
            .is_some_and(|ch| needs_watch(ch, unlocks_done == Some(ch.id())));
        if watching {
            match monitor_once(&shared, in_flight.as_mut()).await {
                Ok(MonitorPass::Idle) => {}
                Ok(MonitorPass::NothingKeptBack(id)) => unlocks_done = Some(id),
                Err(e) => tracing::warn!(error = %e, "channel monitor pass failed; retrying"),
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

/// What a monitor pass found.
enum MonitorPass {
    Idle,
    /// The channel settled and the ledger keeps nothing back for it any more.
    NothingKeptBack(U256),
}

/// One monitor pass: read the ledger's record of our channel (and, once settled, what it
/// keeps back) and submit what the core asks (on a chain, what `in_flight` lets through).
async fn monitor_once(
    shared: &Shared,
    in_flight: Option<&mut InFlight>,
) -> Result<MonitorPass, ClientError> {
    let channel = shared.require_channel()?;
    let record = ledger::channel(shared, channel.id()).await?;
    let now = ledger::now(shared).await?;
    let kept_back = if record.phase == LedgerPhase::Settled {
        shared.ledger.pending_unlocks(channel.id()).await?
    } else {
        Vec::new()
    };
    let view = LedgerView {
        record: &record,
        now,
        reveal_timeout: shared
            .options()
            .register_lead_for(shared.mediation.reveal_timeout),
        pending_unlocks: &kept_back,
        archived_locks: &shared
            .store
            .archived_locks(&channel.archived_locks_wanted(&kept_back))?,
    };
    let actions = channel.poll_ledger_actions(&view, shared.rpc.signer())?;
    if actions.is_empty()
        && record.phase == LedgerPhase::Settled
        && channel.phase() != ChannelPhase::Settled
    {
        shared
            .update_channel(|ch| Ok(ch.handle_ledger_settled()))
            .await?;
    }
    let done = record.phase == LedgerPhase::Settled && kept_back.is_empty() && actions.is_empty();
    let actions = match (in_flight, shared.ledger.chain()) {
        (Some(in_flight), Some(chain)) => {
            // Registrations the chain shows are no longer in flight.
            for lock in channel.partner().locks.as_slice() {
                if chain.secret_registration(&lock.secrethash)?.is_some() {
                    in_flight.forget_secret(&lock.secrethash);
                }
            }
            in_flight.to_send(channel.id(), actions, now)
        }
        _ => actions,
    };
    for action in actions {
        submit(shared, &record, action).await?;
    }
    Ok(if done {
        MonitorPass::NothingKeptBack(channel.id())
    } else {
        MonitorPass::Idle
    })
}

/// Submits one monitor action. A refusal of a settle, registration or unlock is expected
/// when someone else got there first: logged, and the next pass decides again.
async fn submit(
    shared: &Shared,
    record: &ChannelRecord,
    action: LedgerAction,
) -> Result<(), ClientError> {
    match action {
        LedgerAction::Update(tx) => {
            let nonce = tx.closer_proof.proof.nonce;
            contest(shared, &tx).await?;
            tracing::info!(nonce, "contested the hub's close with its latest proof");
        }
        LedgerAction::Settle { .. } => match ops::submit_settle(shared, record).await {
            Ok(_) => tracing::info!("channel settled"),
            Err(e) => tracing::debug!(error = %e, "settle not done"),
        },
        LedgerAction::Close { channel_id } => match ops::close(shared).await {
            Ok(settle_after) => tracing::warn!(
                %channel_id,
                settle_after,
                "closed the channel to claim a lock the hub never unlocked"
            ),
            Err(e) => tracing::warn!(error = %e, "close to claim a lock not done"),
        },
        LedgerAction::RegisterSecret { secret } => {
            let op = LedgerOp::RegisterSecret(secret);
            apply_or_log(
                shared,
                "secret registration",
                ledger::execute(shared, &op).await,
            )
            .await?;
        }
        LedgerAction::Unlock {
            channel_id,
            receiver,
            sender,
            packed_locks,
        } => {
            let op = LedgerOp::Unlock {
                channel_id,
                receiver,
                sender,
                packed_locks,
            };
            apply_or_log(shared, "unlock", ledger::execute(shared, &op).await).await?;
        }
    }
    Ok(())
}

/// Applies the events of a monitor submission the ledger accepted; a refusal is only logged
/// (someone else may have done it already, and the next pass decides again).
async fn apply_or_log(
    shared: &Shared,
    what: &'static str,
    resp: Result<Vec<LedgerEvent>, ClientError>,
) -> Result<(), ClientError> {
    match resp {
        Ok(events) => {
            ops::apply_events(shared, events).await?;
        }
        Err(e) => tracing::debug!(error = %e, "{what} not done"),
    }
    Ok(())
}

/// Submits our counter-signature over the hub's latest proof.
async fn contest(shared: &Shared, tx: &UpdateTransaction) -> Result<(), ClientError> {
    let events = ledger::execute(shared, &LedgerOp::Update(tx.clone())).await?;
    ops::apply_events(shared, events).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sent_action_is_held_back_well_inside_both_windows() {
        assert_eq!(resend_after(40, 500), 10);
        assert_eq!(resend_after(500, 100), 25);
        // Never zero: a zero would resend on every pass.
        assert_eq!(resend_after(2, 100), 1);
        assert_eq!(resend_after(0, 0), 1);
    }
}
