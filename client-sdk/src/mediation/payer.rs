//! The payer's side of a mediated payment: `pay_request` (verify, quote, lock, wait for the
//! outcome), the unlock once the payee's secret comes back, and what the Pay stream's acks
//! and rejections mean for the transfer records.

use std::sync::Arc;

use channel_core::channel::Channel;
use channel_core::mediation::SignedPaymentRequest;
use channel_core::primitives::{H256, U256};
use channel_core::{HashTimeLock, Secret};
use voltlane_proto::convert::{address_bytes, u256, u256_bytes};
use voltlane_proto::v1;

use super::decide::{
    check_payable, lock_expiration, record_ack, record_rejection, refusal_error, refusal_parts,
};
use super::MediatedReceipt;
use crate::error::ClientError;
use crate::shared::{AckReply, Shared, Signed};
use crate::store::{ForwardRecord, OutgoingTransfer, QueuedKind, Refusal, UnackedPayment};

/// What paying a request through the hub costs and how long the lock must live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// What the hub keeps.
    pub fee: U256,
    /// What the payer locks: the request's amount plus the fee.
    pub lock_amount: U256,
    /// The hub's lock toward the payee expires this much earlier than the payer's.
    pub reveal_timeout: u64,
    /// The payer's lock must expire after this ledger time.
    pub min_lock_expiration: u64,
    /// The payer's lock must expire at or before this ledger time (`None`: no bound).
    pub max_lock_expiration: Option<u64>,
}

/// Codes with which the hub refuses a forward (rather than failing to answer).
fn is_refusal(code: tonic::Code) -> bool {
    use tonic::Code as C;
    matches!(
        code,
        C::FailedPrecondition
            | C::ResourceExhausted
            | C::NotFound
            | C::AlreadyExists
            | C::InvalidArgument
            | C::OutOfRange
    )
}

/// `Mediation.Quote` for paying `amount` to `payee`. A hub without the call is quoted from
/// the fee settings of its `Hub.GetInfo`.
pub(crate) async fn quote(
    shared: &Shared,
    request: &SignedPaymentRequest,
    now: u64,
) -> Result<Quote, ClientError> {
    let amount = request.request.amount;
    let req = v1::QuoteRequest {
        payee: address_bytes(&request.request.payee),
        amount: u256_bytes(&amount),
    };
    let answer = shared
        .rpc
        .call("Mediation.Quote", move |mut c| {
            let req = req.clone();
            async move { c.mediation.quote(req).await }
        })
        .await;
    let q = match answer {
        Ok(q) => q,
        Err(ClientError::Rpc {
            code: tonic::Code::Unimplemented,
            ..
        }) => {
            let info = shared.mediation;
            let fee = info
                .fees
                .fee_for(amount)
                .map_err(|e| ClientError::InvalidState(e.to_string()))?;
            return Ok(Quote {
                fee,
                lock_amount: amount
                    .checked_add(fee)
                    .ok_or_else(|| ClientError::InvalidState("amount + fee overflows".into()))?,
                reveal_timeout: info.reveal_timeout,
                min_lock_expiration: now.saturating_add(info.reveal_timeout),
                max_lock_expiration: None,
            });
        }
        Err(ClientError::Rpc {
            code,
            hub_reason,
            message,
            ..
        }) if is_refusal(code) => return Err(refusal_error(code, hub_reason, message)),
        Err(e) => return Err(e),
    };
    let fee = u256("fee", &q.fee)?;
    let lock_amount = u256("lock_amount", &q.lock_amount)?;
    if amount.checked_add(fee) != Some(lock_amount) {
        return Err(ClientError::HubMisbehaved(format!(
            "quote's lock amount {lock_amount} is not the amount {amount} plus the fee {fee}"
        )));
    }
    Ok(Quote {
        fee,
        lock_amount,
        reveal_timeout: q.reveal_timeout,
        min_lock_expiration: q.min_lock_expiration,
        max_lock_expiration: (q.max_lock_expiration != 0).then_some(q.max_lock_expiration),
    })
}

/// Pays `request` through the hub (see the module docs of [`crate::mediation`]).
pub(crate) async fn pay_request(
    shared: &Arc<Shared>,
    request: &SignedPaymentRequest,
) -> Result<MediatedReceipt, ClientError> {
    let now = crate::ledger::now(shared).await?;
    request.verify(&shared.hub.domain, now)?;
    let secrethash = request.request.secrethash;
    let channel = shared.require_channel()?;
    check_payable(
        shared.store.outgoing(&secrethash)?.as_ref(),
        channel.our().locks.contains(&secrethash),
    )?;

    let quote = quote(shared, request, now).await?;
    let lifetime = shared.options().lock_lifetime_for(quote.reveal_timeout);
    let lock = HashTimeLock {
        expiration: lock_expiration(
            now,
            lifetime,
            quote.min_lock_expiration,
            quote.max_lock_expiration,
        )?,
        amount: quote.lock_amount,
        secrethash,
    };
    let mut changes = shared.subscribe_transfers();
    let reply = send_lock(shared, request, lock, quote.fee, now).await?;
    reply.await.map_err(|_| ClientError::Shutdown)??;
    wait_outcome(shared, &secrethash, &mut changes).await
}

/// Signs our locked transfer `lock` paying `request` with `fee` at ledger time `now` and
/// queues it on the Pay stream; its transfer record is written with it. Under the channel
/// lock: the check that binds (no concurrent payment of the same request slips in between),
/// the signature and the record, before anything is sent.
pub(crate) async fn send_lock(
    shared: &Shared,
    request: &SignedPaymentRequest,
    lock: HashTimeLock,
    fee: U256,
    now: u64,
) -> Result<AckReply, ClientError> {
    let secrethash = lock.secrethash;
    let signer = shared.rpc.signer().clone();
    let store = shared.store.clone();
    let payment_request = *request;
    // Refused at once while an earlier attempt is under way (rather than waiting behind its
    // lock in `enqueue`); checked again under the channel lock, where it binds.
    check_payable(
        store.outgoing(&secrethash)?.as_ref(),
        shared.require_channel()?.our().locks.contains(&secrethash),
    )?;
    // Our proof before the lock, kept with the transfer: a refused lock is retracted to it.
    let previous = std::sync::OnceLock::new();
    let sign = |ch: &mut Channel| {
        check_payable(
            store.outgoing(&secrethash)?.as_ref(),
            ch.our().locks.contains(&secrethash),
        )?;
        let _ = previous.set(ch.our_latest_proof().copied());
        // The balance proof commits to what is paid for (the request's memo, e.g. a reading).
        ch.send_locked_transfer(lock, now, payment_request.request.memo_hash, &signer)?;
        Ok(Some(Signed {
            amount: lock.amount,
            kind: QueuedKind::LockedTransfer {
                lock,
                payment_request,
            },
        }))
    };
    let record = |entry: &UnackedPayment, batch: &mut crate::store::DeviceBatch| {
        batch.outgoing(&OutgoingTransfer {
            channel_id: entry.proof.proof.channel_identifier,
            request: payment_request,
            lock,
            fee,
            lock_nonce: entry.nonce(),
            forward: None,
            rejected: None,
            failure: None,
            secret: None,
            unlock_nonce: None,
            unlock_acked: false,
            expired_nonce: None,
            previous_proof: previous.get().copied().flatten(),
        })?;
        Ok(())
    };
    shared
        .enqueue(sign, record)
        .await?
        .ok_or_else(|| ClientError::InvalidState("the locked transfer was not signed".into()))
}

/// Waits until the transfer record of `secrethash` has an outcome (or the channel leaves the
/// open phase first).
pub(crate) async fn wait_outcome(
    shared: &Shared,
    secrethash: &H256,
    changes: &mut tokio::sync::watch::Receiver<u64>,
) -> Result<MediatedReceipt, ClientError> {
    let mut phases = shared.subscribe_changes();
    loop {
        changes.mark_unchanged();
        phases.mark_unchanged();
        let t = shared.store.outgoing(secrethash)?.ok_or_else(|| {
            ClientError::InvalidState(format!("the record of transfer {secrethash} is gone"))
        })?;
        if let Some(outcome) = t.outcome() {
            return outcome;
        }
        if shared.open_channel_id() != Some(t.channel_id) {
            return Err(ClientError::InvalidState(format!(
                "the channel left the open phase before transfer {secrethash} completed; its \
                 lock is settled on the ledger"
            )));
        }
        tokio::select! {
            c = changes.changed() => c.map_err(|_| ClientError::Shutdown)?,
            c = phases.changed() => c.map_err(|_| ClientError::Shutdown)?,
        }
    }
}

/// Unlocks our lock opened by `secret` (which the hub relayed from the payee): records the
/// secret and signs the unlock under the channel lock, queued on the Pay stream. Nothing to
/// do when the lock is no longer pending (already unlocked, or taken back after expiry).
pub(crate) async fn unlock_with(shared: &Shared, secret: Secret) -> Result<(), ClientError> {
    let secrethash = secret.hash();
    let Some(t) = shared.store.outgoing(&secrethash)? else {
        tracing::debug!(%secrethash, "secret for a transfer this store does not know; ignored");
        return Ok(());
    };
    if !t.request.proves_payment(&secret) {
        return Err(ClientError::HubMisbehaved(format!(
            "secret does not open the request of transfer {secrethash}"
        )));
    }
    let signer = shared.rpc.signer().clone();
    let sign = |ch: &mut Channel| {
        let Some(lock) = ch.our().locks.get(&secrethash).copied() else {
            return Ok(None);
        };
        ch.send_unlock(secret, t.request.request.memo_hash, &signer)?;
        Ok(Some(Signed {
            amount: lock.amount,
            kind: QueuedKind::Unlock { secret },
        }))
    };
    let record = |entry: &UnackedPayment, batch: &mut crate::store::DeviceBatch| {
        shared
            .stage_outgoing_update(batch, &secrethash, |t| {
                t.secret = Some(secret);
                t.unlock_nonce = Some(entry.nonce());
            })
            .map(drop)
    };
    if shared.enqueue(sign, record).await?.is_none() {
        tracing::debug!(%secrethash, "secret for a lock no longer pending; nothing to unlock");
    }
    Ok(())
}

/// The hub reported the transfer `secrethash` failed.
pub(crate) async fn record_failure(
    shared: &Shared,
    secrethash: &H256,
    reason: String,
) -> Result<(), ClientError> {
    shared
        .update_outgoing(secrethash, |t| {
            if t.secret.is_none() && t.failure.is_none() {
                t.failure = Some(reason);
            }
        })
        .await?;
    Ok(())
}

/// The hub holds `entry` (its ack, or its channel state after a reconnect); `forward` is
/// its answer about a locked transfer, `Unknown` when that answer was lost.
pub(crate) async fn on_acked(
    shared: &Shared,
    entry: &UnackedPayment,
    forward: Option<&ForwardRecord>,
) -> Result<(), ClientError> {
    if let Some(secrethash) = entry.kind.secrethash() {
        shared
            .update_outgoing(&secrethash, |t| record_ack(t, entry, forward))
            .await?;
    }
    Ok(())
}

/// The hub refused proof `nonce`. If it is our locked transfer, the hub holds nothing of it
/// (a hub takes a payer's lock only together with its forward): the lock is taken back
/// ([`Shared::retract_lock`]), the transfer records the refusal, and its `pay_request` fails
/// with what the refusal means (payee offline, no capacity, ...). Returns whether it was
/// handled so; `false` for any other proof, and for a locked transfer whose earlier proof
/// this store does not have (written by an older SDK): then the refusal is final as before.
pub(crate) async fn retract_refused(
    shared: &Shared,
    nonce: u64,
    refusal: &Refusal,
) -> Result<bool, ClientError> {
    let Some(entry) = shared.store.unacked(nonce)? else {
        return Ok(false);
    };
    let QueuedKind::LockedTransfer { lock, .. } = entry.kind else {
        return Ok(false);
    };
    let Some(t) = shared.store.outgoing(&lock.secrethash)? else {
        return Ok(false);
    };
    if t.lock_nonce != nonce || (nonce > 1 && t.previous_proof.is_none()) {
        return Ok(false);
    }
    if let Err(e) = shared.retract_lock(&entry, t.previous_proof.as_ref()).await {
        tracing::warn!(nonce, error = %e, "a refused locked transfer cannot be taken back");
        return Ok(false);
    }
    on_rejected(shared, &entry, refusal.clone()).await?;
    let (code, hub_reason, message) = refusal_parts(refusal);
    tracing::info!(nonce, secrethash = %lock.secrethash, ?code, hub_reason = ?hub_reason, reason = %message, "locked transfer refused by the hub and taken back");
    shared.resolve(nonce, Err(refusal_error(code, hub_reason, message)));
    Ok(true)
}

/// The hub refused the proof `entry` for good.
pub(crate) async fn on_rejected(
    shared: &Shared,
    entry: &UnackedPayment,
    refusal: Refusal,
) -> Result<(), ClientError> {
    if let Some(secrethash) = entry.kind.secrethash() {
        shared
            .update_outgoing(&secrethash, |t| record_rejection(t, entry, refusal))
            .await?;
    }
    Ok(())
}
