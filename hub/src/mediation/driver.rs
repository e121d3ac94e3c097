//! The mediation driver: a level-triggered pass over every unfinished transfer, at start-up
//! and every [`TICK`], doing what `MediatedTransfer::poll` lists for the ledger time now.
//!
//! Before polling it brings the record up to what its channels know from the ledger (a
//! secret registered there, by the hub or by the payee claiming on its own), so that a record
//! written before a crash and a ledger that moved since meet again. It does not submit ledger
//! transactions: the incoming channel knows the secret, and the channel monitor registers it,
//! closes and unlocks (`LedgerAction::RegisterSecret`, `Close`, `Unlock`).

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::mediation::{Leg, MediationAction};
use channel_core::H256;

use super::records::{RecordBook, SharedRecord};
use super::{MediationEngine, PayerOutcome};
use crate::error::HubError;

/// How often the driver runs.
pub const TICK: Duration = Duration::from_millis(500);
/// How often a payer that has not unlocked is reminded of the secret.
const REMIND_EVERY: Duration = Duration::from_secs(5);

/// Runs until `shutdown` completes.
pub async fn run(engine: MediationEngine, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reminded: HashMap<H256, Instant> = HashMap::new();
    let mut first = true;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                if let Err(e) = pass(&engine, &mut reminded, first).await {
                    tracing::error!(error = %e, "mediation pass failed");
                }
                first = false;
            }
        }
    }
}

/// One pass over every unfinished record. Records are brought up to their channels on the
/// `full` pass (the first after start-up) and, later, once their outgoing lock is within the
/// reveal timeout of expiring (the only time a secret learned or registered without the
/// record can still matter); between those, polling the record alone is enough.
pub async fn pass(
    engine: &MediationEngine,
    reminded: &mut HashMap<H256, Instant>,
    full: bool,
) -> Result<(), HubError> {
    let reveal_timeout = engine.config.reveal_timeout;
    let now = engine.channels.ledger.now()?;
    for rec in engine.records.all()? {
        let (secrethash, near_expiry, channels) = {
            let r = rec.lock().await;
            if r.is_finished() {
                reminded.remove(&r.secrethash());
                engine.records.retire(r.secrethash())?;
                continue;
            }
            let near = now.saturating_add(reveal_timeout) >= r.outgoing_lock().expiration;
            (
                r.secrethash(),
                near,
                [r.incoming_channel(), r.outgoing_channel()],
            )
        };
        let [incoming_open, outgoing_open] = [
            is_open(engine, &channels[0]).await?,
            is_open(engine, &channels[1]).await?,
        ];
        // A channel that left the open phase is settled on the ledger, which decides the
        // lock: bring the record up to it on every pass until both legs are decided.
        if full || near_expiry || !incoming_open || !outgoing_open {
            if let Err(e) = sync_with_channels(engine, &rec, now).await {
                tracing::warn!(%secrethash, error = %e, "cannot bring a transfer up to its channels");
            }
        }
        let actions = rec.lock().await.poll(now);
        for action in actions {
            let off_chain_possible =
                match action {
                    MediationAction::UnlockOutgoing { .. }
                    | MediationAction::ExpireOutgoing { .. } => outgoing_open,
                    MediationAction::RevealSecretToPayer { .. } => incoming_open,
                    MediationAction::RegisterSecret { .. }
                    | MediationAction::ClaimOnLedger { .. } => true,
                };
            if !off_chain_possible {
                tracing::debug!(%secrethash, ?action, "channel not open: the ledger decides this lock");
                continue;
            }
            let done = match action {
                MediationAction::UnlockOutgoing { secret, .. } => {
                    engine.pay_payee(&rec, secret, now).await.map(|_| ())
                }
                MediationAction::ExpireOutgoing { .. } => engine.expire_outgoing(&rec, now).await,
                MediationAction::RevealSecretToPayer { channel, secret } => {
                    // The first time a record is seen here the payer was just told (by the
                    // reveal, or by its PayerEvents backlog after a restart): start the clock.
                    let due = match reminded.get(&secrethash) {
                        None => {
                            reminded.insert(secrethash, Instant::now());
                            false
                        }
                        Some(at) => at.elapsed() >= REMIND_EVERY,
                    };
                    if due {
                        reminded.insert(secrethash, Instant::now());
                        engine.tell_payer(
                            channel,
                            secrethash,
                            PayerOutcome::SecretRevealed(secret),
                        );
                    }
                    Ok(())
                }
                MediationAction::RegisterSecret { secret, .. } => {
                    // The channel monitor registers it once the payer's channel knows it.
                    let r = rec.lock().await.clone();
                    engine.learn_in_incoming(&r, secret).await
                }
                MediationAction::ClaimOnLedger { .. } => Ok(()),
            };
            if let Err(e) = done {
                tracing::warn!(%secrethash, ?action, error = %e, "mediation step failed; retried next pass");
            }
        }
    }
    Ok(())
}

/// Whether channel `id` is open off-chain (payments can still move in it).
async fn is_open(engine: &MediationEngine, id: &channel_core::U256) -> Result<bool, HubError> {
    Ok(match engine.channels.book.get(id)? {
        Some(ch) => ch.lock().await.phase() == ChannelPhase::Open,
        None => false,
    })
}

/// Brings the record up to what its channels know: a secret the hub learned (the payee's
/// reveal reached the payer's channel but the hub died before unlocking: the hub must still
/// pay the payee, if it can still claim), a secret registration the channels saw on the
/// ledger, and a settlement of either channel (the ledger decides a lock still pending
/// then, and a record whose legs are both decided is finished and retired).
async fn sync_with_channels(
    engine: &MediationEngine,
    rec: &SharedRecord,
    now: u64,
) -> Result<(), HubError> {
    let book = &engine.channels.book;
    let mut r = rec.lock().await;
    let secrethash = r.secrethash();
    let (Some(incoming), Some(outgoing)) = (
        book.get(&r.incoming_channel())?,
        book.get(&r.outgoing_channel())?,
    ) else {
        return Err(HubError::UnknownChannel(r.incoming_channel()));
    };
    let incoming: Channel = incoming.lock().await.clone();
    let outgoing: Channel = outgoing.lock().await.clone();
    let mut learned = None;
    let mut registered = None;
    for ch in [&incoming, &outgoing] {
        if let Some(k) = ch.known_secret(&secrethash) {
            learned = Some(k.secret);
            if let Some(at) = k.registered_at {
                registered = Some((k.secret, at));
            }
        }
    }
    let mut next = r.clone();
    if let (None, Some(secret)) = (r.secret(), learned) {
        if let Err(e) = next.handle_secret_reveal(secret, &incoming, now) {
            tracing::debug!(%secrethash, error = %e, "a learned secret cannot pay the payee any more");
        }
    }
    if let (None, Some((secret, at))) = (r.secret_registered_at(), registered) {
        next.handle_secret_registered(secret, at)?;
    }
    next.handle_settlement(&incoming, &outgoing, now);
    if next == *r {
        return Ok(());
    }
    let mut batch = crate::store::WriteBatch::new();
    RecordBook::put(&mut batch, &next)?;
    book.store.write(batch)?.durable().await?;
    let newly_known = r.secret().is_none() && next.secret().is_some();
    *r = next;
    if newly_known && r.incoming_leg() == Leg::Locked {
        // The payer learns it now rather than at the next reminder.
        if let Some(secret) = r.secret() {
            engine.tell_payer(
                r.incoming_channel(),
                secrethash,
                PayerOutcome::SecretRevealed(secret),
            );
        }
    }
    tracing::info!(
        %secrethash,
        stage = ?r.stage(),
        secret_known = r.secret().is_some(),
        registered_at = ?r.secret_registered_at(),
        "transfer brought up to its channels"
    );
    Ok(())
}
