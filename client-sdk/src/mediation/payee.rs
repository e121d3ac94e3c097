//! The payee's side of a mediated payment: issuing a request (its secret durable first),
//! taking the hub's locked transfers, unlocks and lock expiries from `ReceivePayments`,
//! deciding whether to reveal, and revealing with retries.
//!
//! Every hub proof is applied once, by nonce: the stream and the `RevealSecret` answer may
//! both carry the same unlock, and whichever applies it first publishes the payment; the
//! other finds a stale nonce and does nothing.

use std::sync::Arc;

use channel_core::channel::Channel;
use channel_core::mediation::{PaymentRequest, SignedPaymentRequest};
use channel_core::primitives::{Address, H256, U256};
use channel_core::{HashTimeLock, Secret, SignedBalanceProof, Signer};
use rand::RngCore;
use voltlane_proto::convert::mediation::HubMessage;
use voltlane_proto::convert::{h256_bytes, required, u256_bytes};
use voltlane_proto::v1;

use super::decide::reveal_decision;
use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::shared::Shared;
use crate::store::{DeviceBatch, IncomingState, IncomingTransfer, PaymentRequestRecord};
use crate::types::MediatedPayment;

/// A fresh secret from the operating system's randomness, not used by any stored request.
fn fresh_secret(shared: &Shared) -> Result<Secret, ClientError> {
    loop {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| ClientError::InvalidState(format!("no OS randomness: {e}")))?;
        let secret = Secret(H256(bytes));
        if shared.store.payment_request(&secret.hash())?.is_none() {
            return Ok(secret);
        }
    }
}

/// Issues a request for `amount` naming what it is for (`memo_hash`, zero for nothing),
/// valid for `valid_for_secs` of ledger time, with a new secret stored (flushed) before the
/// request is returned.
pub(crate) async fn create_request(
    shared: &Shared,
    amount: U256,
    payment_id: u64,
    valid_for_secs: u64,
    memo_hash: H256,
) -> Result<SignedPaymentRequest, ClientError> {
    if valid_for_secs == 0 {
        return Err(ClientError::InvalidState(
            "a payment request must be valid for at least one second".into(),
        ));
    }
    let now = crate::ledger::now(shared).await?;
    let expires_at = now
        .checked_add(valid_for_secs)
        .ok_or(ClientError::LedgerTimeOverflow { now })?;
    let secret = fresh_secret(shared)?;
    let signer = shared.rpc.signer();
    let request = PaymentRequest {
        domain: shared.hub.domain,
        payee: signer.address(),
        amount,
        secrethash: secret.hash(),
        payment_id,
        expires_at,
        memo_hash,
    }
    .sign(signer)?;
    shared
        .put_payment_request(&PaymentRequestRecord {
            request,
            secret,
            paid_nonce: None,
        })
        .await?;
    Ok(request)
}

/// Applies one mediated message the hub pushed (`msg` is not a direct payment).
pub(crate) async fn receive(shared: &Arc<Shared>, msg: HubMessage) -> Result<(), ClientError> {
    use voltlane_proto::convert::mediation::HubMessageKind as K;
    let proof = msg.balance_proof;
    match msg.kind {
        K::Payment => Err(ClientError::InvalidState(
            "a direct payment is not a mediated message".into(),
        )),
        K::LockedTransfer {
            lock,
            payer,
            payment_request,
        } => on_locked_transfer(shared, &proof, lock, payer, payment_request).await,
        K::Unlock { secret } => apply_unlock(shared, &proof, secret).await.map(drop),
        K::LockExpired { secrethash } => on_lock_expired(shared, &proof, secrethash).await,
    }
}

/// Runs `transition` with the hub's `proof` on the channel, once: `None` for a proof whose
/// nonce we already hold (a replay from the stream, or the unlock that came with a reveal's
/// answer). Checked before the transition, whose own checks would call a replayed lock a
/// duplicate or a replayed unlock a wrong secret. `transition` may add records to the batch
/// (read-modify-write allowed: it runs under the records lock); durable when this returns.
pub(super) async fn once<R>(
    shared: &Shared,
    proof: &SignedBalanceProof,
    transition: impl FnOnce(&mut Channel, &mut DeviceBatch) -> Result<R, ClientError>,
) -> Result<Option<R>, ClientError> {
    shared
        .transition_recording(|ch, batch| {
            if proof.proof.nonce <= ch.partner().nonce() {
                return Ok(None);
            }
            transition(ch, batch).map(Some)
        })
        .await
}

async fn on_locked_transfer(
    shared: &Arc<Shared>,
    proof: &SignedBalanceProof,
    lock: HashTimeLock,
    payer: Address,
    payment_request: SignedPaymentRequest,
) -> Result<(), ClientError> {
    let now = crate::ledger::now(shared).await?;
    // A lock that expired before it reached us (the stream replays it after a long
    // disconnection) is worthless to us but still the hub's signed proof with the next nonce:
    // refusing it would leave every later proof of the hub unacceptable. So it is taken as
    // of just before its expiry; the decision below uses the real time (and does not
    // reveal), and the hub's lock-expired follows.
    let accept_at = channel_core::mediation::lock_accept_time(now, lock.expiration);
    let applied = once(shared, proof, |ch, batch| {
        ch.handle_locked_transfer(proof, &lock, accept_at)?;
        batch.incoming(&IncomingTransfer {
            channel_id: ch.id(),
            lock,
            payer,
            payment_request,
            lock_nonce: proof.proof.nonce,
            state: IncomingState::Held,
        })?;
        Ok(())
    })
    .await;
    if applied?.is_none() {
        return Ok(());
    }
    decide(shared, &lock.secrethash, now).await
}

/// Decides about the held lock `secrethash` at ledger time `now`: reveal (secret learned by
/// the channel and durable first) or refuse (the hub takes the lock back at its expiry).
async fn decide(shared: &Arc<Shared>, secrethash: &H256, now: u64) -> Result<(), ClientError> {
    let Some(incoming) = shared.store.incoming(secrethash)? else {
        return Ok(());
    };
    if incoming.state != IncomingState::Held {
        return Ok(());
    }
    let request = shared.store.payment_request(secrethash)?;
    let margin = shared
        .options()
        .reveal_margin_for(shared.mediation.reveal_timeout);
    match reveal_decision(request.as_ref(), &incoming.lock, now, margin) {
        Ok(secret) => {
            shared
                .transition_recording(|ch, batch| {
                    ch.learn_secret(secret)?;
                    shared.stage_incoming_update(batch, secrethash, |t| {
                        t.state = IncomingState::Revealing
                    })?;
                    Ok(())
                })
                .await?;
            spawn_reveal(
                shared,
                incoming.channel_id,
                secret,
                incoming.lock.expiration,
            );
        }
        Err(why) => {
            tracing::info!(%secrethash, reason = %why, "not revealing the secret for a lock");
            let reason = why.to_string();
            shared
                .update_incoming(secrethash, |t| t.state = IncomingState::Refused { reason })
                .await?;
        }
    }
    Ok(())
}

/// Starts the reveal task of `secret` unless one is running.
fn spawn_reveal(shared: &Arc<Shared>, channel_id: U256, secret: Secret, expiration: u64) {
    let secrethash = secret.hash();
    if !shared.start_reveal(secrethash) {
        return;
    }
    shared.spawn(move |s| async move {
        reveal(&s, channel_id, secret, expiration).await;
        s.end_reveal(&secrethash);
    });
}

/// `Mediation.RevealSecret`, retried with backoff until the hub has the secret (answered, or
/// ALREADY_EXISTS: already unlocked) or the lock is gone or expired.
async fn reveal(shared: &Arc<Shared>, channel_id: U256, secret: Secret, expiration: u64) {
    let secrethash = secret.hash();
    let mut backoff = Backoff::new();
    loop {
        let req = v1::RevealSecretRequest {
            channel_id: u256_bytes(&channel_id),
            secret: h256_bytes(&secret.0),
        };
        let answer = shared
            .rpc
            .call("Mediation.RevealSecret", move |mut c| {
                let req = req.clone();
                async move { c.mediation.reveal_secret(req).await }
            })
            .await;
        let done = match answer {
            Ok(resp) => {
                if let Err(e) = apply_reveal_answer(shared, resp, secret).await {
                    tracing::debug!(error = %e, "unlock in the reveal answer not applied; the stream brings it");
                }
                true
            }
            Err(e) if e.code() == Some(tonic::Code::AlreadyExists) => true,
            Err(e) => {
                tracing::warn!(error = %e, %secrethash, "revealing the secret failed; retrying");
                false
            }
        };
        if done {
            let marked = shared
                .update_incoming(&secrethash, |t| {
                    if t.state == IncomingState::Revealing {
                        t.state = IncomingState::Revealed;
                    }
                })
                .await;
            if let Err(e) = marked {
                tracing::warn!(error = %e, "could not record the reveal");
            }
            return;
        }
        let pending = shared
            .channel()
            .ok()
            .flatten()
            .is_some_and(|ch| ch.partner().locks.contains(&secrethash));
        let expired = match crate::ledger::now(shared).await {
            Ok(now) => now >= expiration,
            Err(_) => false,
        };
        if !pending || expired {
            return;
        }
        backoff.sleep().await;
    }
}

async fn apply_reveal_answer(
    shared: &Shared,
    resp: v1::RevealSecretResponse,
    secret: Secret,
) -> Result<(), ClientError> {
    let proof: SignedBalanceProof = required("unlock_proof", resp.unlock_proof)?;
    apply_unlock(shared, &proof, secret).await.map(drop)
}

/// Applies the hub's unlock (from the stream or a reveal answer) once, records the request
/// as paid (one durable write), and publishes the payment after it. `None` for a replay.
pub(crate) async fn apply_unlock(
    shared: &Shared,
    proof: &SignedBalanceProof,
    secret: Secret,
) -> Result<Option<MediatedPayment>, ClientError> {
    let secrethash = secret.hash();
    let nonce = proof.proof.nonce;
    let applied = once(shared, proof, |ch, batch| {
        let lock = ch.partner().locks.get(&secrethash).copied();
        ch.handle_unlock(proof, &secret)?;
        let incoming = shared.stage_incoming_update(batch, &secrethash, |t| {
            t.state = IncomingState::Paid {
                unlock_nonce: nonce,
            }
        })?;
        let request = shared.stage_payment_request_update(batch, &secrethash, |r| {
            r.paid_nonce.get_or_insert(nonce);
        })?;
        Ok((ch.id(), lock, incoming, request))
    })
    .await;
    let Some((channel_id, lock, incoming, request)) = applied? else {
        return Ok(None);
    };
    let payment = MediatedPayment {
        channel_id,
        payer: incoming.as_ref().map_or(Address::ZERO, |t| t.payer),
        payment_id: request
            .as_ref()
            .map(|r| r.request.request.payment_id)
            .or_else(|| {
                incoming
                    .as_ref()
                    .map(|t| t.payment_request.request.payment_id)
            })
            .unwrap_or(0),
        amount: lock.map_or(U256::ZERO, |l| l.amount),
        secrethash,
        nonce,
    };
    tracing::info!(%secrethash, amount = %payment.amount, "mediated payment received");
    let _ = shared.mediated_payments.send(payment);
    Ok(Some(payment))
}

async fn on_lock_expired(
    shared: &Shared,
    proof: &SignedBalanceProof,
    secrethash: H256,
) -> Result<(), ClientError> {
    let now = crate::ledger::now(shared).await?;
    let applied = once(shared, proof, |ch, batch| {
        ch.handle_lock_expired(proof, &secrethash, now)?;
        shared.stage_incoming_update(batch, &secrethash, |t| t.state = IncomingState::Expired)?;
        Ok(())
    })
    .await;
    if applied?.is_none() {
        return Ok(());
    }
    tracing::info!(%secrethash, "the hub took back its expired lock");
    Ok(())
}

/// Resumes the payee's side of every lock the hub holds toward us (after a restart, or a
/// reveal that gave up early): undecided locks are decided, interrupted reveals restarted.
pub(crate) async fn resume(
    shared: &Arc<Shared>,
    channel: &Channel,
    now: u64,
) -> Result<(), ClientError> {
    for lock in channel.partner().locks.as_slice() {
        let secrethash = lock.secrethash;
        let Some(t) = shared.store.incoming(&secrethash)? else {
            continue;
        };
        if t.channel_id != channel.id() {
            continue;
        }
        match t.state {
            IncomingState::Held => decide(shared, &secrethash, now).await?,
            IncomingState::Revealing if !lock.is_expired(now) => {
                if let Some(known) = channel.known_secret(&secrethash) {
                    spawn_reveal(shared, t.channel_id, known.secret, lock.expiration);
                }
            }
            _ => {}
        }
    }
    Ok(())
}
