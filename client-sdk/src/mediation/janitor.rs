//! The lock janitor: while the open channel holds pending locks, once at start-up, every
//! [`JANITOR_TICK`] and on every phase change, it
//! - takes back our locks that expired (ledger time) unclaimed and whose secret we do not
//!   know, with a lock-expired proof on the Pay stream, so the funds of a refused, failed or
//!   abandoned payment become spendable again by themselves;
//! - unlocks our locks whose secret we learned but whose unlock never went out;
//! - resumes the payee's side of locks the hub sent us (decide, reveal) after a restart.
//!
//! Level-triggered: every pass decides from the channel, the records and the ledger time
//! alone ([`janitor_plan`]); the signing steps check again under the channel lock, so a pass
//! racing another path (a secret arriving, the hub's unlock) does nothing twice.

use std::sync::Arc;
use std::time::Duration;

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::primitives::H256;

use super::decide::janitor_plan;
use super::{payee, payer};
use crate::error::ClientError;
use crate::shared::{Shared, Signed};
use crate::store::{QueuedKind, UnackedPayment};

/// How often the janitor looks while locks are pending.
pub const JANITOR_TICK: Duration = Duration::from_secs(1);

/// Runs until the client is dropped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut changed = shared.subscribe_changes();
    loop {
        let busy = shared.channel().ok().flatten().is_some_and(|ch| {
            ch.phase() == ChannelPhase::Open
                && !(ch.our().locks.is_empty() && ch.partner().locks.is_empty())
        });
        if busy {
            if let Err(e) = pass(&shared).await {
                tracing::debug!(error = %e, "lock janitor pass failed; retrying");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(JANITOR_TICK) => {}
            c = changed.changed() => {
                if c.is_err() {
                    return;
                }
            }
        }
    }
}

/// One pass at the current ledger time.
pub(crate) async fn pass(shared: &Arc<Shared>) -> Result<(), ClientError> {
    let now = crate::ledger::now(shared).await?;
    let channel = shared.require_channel()?;
    let plan = janitor_plan(&channel, now, |h| {
        shared
            .store
            .outgoing(h)
            .ok()
            .flatten()
            .and_then(|t| t.secret)
    });
    for secret in plan.unlock {
        payer::unlock_with(shared, secret).await?;
    }
    for secrethash in plan.expire {
        expire(shared, secrethash, now).await?;
    }
    payee::resume(shared, &channel, now).await
}

/// Takes back our lock `secrethash`, expired at ledger time `now`, unless the channel
/// changed meanwhile (gone, claimed on the ledger, or its secret became known).
pub(crate) async fn expire(shared: &Shared, secrethash: H256, now: u64) -> Result<(), ClientError> {
    let signer = shared.rpc.signer().clone();
    let store = shared.store.clone();
    let sign = move |ch: &mut Channel| {
        let Some(lock) = ch.our().locks.get(&secrethash).copied() else {
            return Ok(None);
        };
        let secret_known = store
            .outgoing(&secrethash)?
            .is_some_and(|t| t.secret.is_some());
        if !lock.is_expired(now) || ch.claimed_on_ledger(&lock) || secret_known {
            return Ok(None);
        }
        ch.send_lock_expired(secrethash, now, H256::ZERO, &signer)?;
        Ok(Some(Signed {
            amount: lock.amount,
            kind: QueuedKind::LockExpired { secrethash },
        }))
    };
    let record = |entry: &UnackedPayment, batch: &mut crate::store::DeviceBatch| {
        shared
            .stage_outgoing_update(batch, &secrethash, |t| {
                t.expired_nonce = Some(entry.nonce())
            })
            .map(drop)
    };
    if shared.enqueue(sign, record).await?.is_some() {
        tracing::info!(%secrethash, "took back an expired lock");
    }
    Ok(())
}
