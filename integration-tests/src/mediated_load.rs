//! The mediated half of `loadgen` (`--mediated`): N payer devices pay M payee devices through
//! one hub, each payer keeping up to `window` mediated payments in flight on its one
//! `Payments.Pay` stream. A payment is timed from sending its locked transfer to the ack of
//! its unlock, i.e. the whole protocol: lock → forward → reveal → unlock toward the payee →
//! secret to the payer → unlock toward the hub.
//!
//! The payees are real devices with their own channels and receive streams; to keep the
//! load generator simple the payment requests are signed here with the payee's key and the
//! payee task finds the secret in a shared table (a real payee hands the request out itself).
//! Everything is bounded by timeouts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use channel_core::mediation::{FeePolicy, PaymentRequest, SignedPaymentRequest};
use channel_core::{LocalSigner, Secret, H256, U256};
use futures::StreamExt;
use tokio::sync::Barrier;
use voltlane_proto::convert::mediation::HubMessageKind;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

use crate::device::TestDevice;
use crate::{Forward, HarnessError, PayAck};

/// Secrets of the payment requests in flight, by secrethash (what each payee would know).
pub type Secrets = Arc<Mutex<HashMap<H256, Secret>>>;

/// Parameters of one payer's run.
#[derive(Clone, Debug)]
pub struct MediatedPlan {
    pub payments: u64,
    pub amount: U256,
    pub window: usize,
    pub fees: FeePolicy,
    /// Lock lifetime the payer asks for, seconds.
    pub lock_lifetime: u64,
    pub timeout: Duration,
    pub duration: Option<Duration>,
}

/// What one payer saw.
#[derive(Debug, Default)]
pub struct MediatedResult {
    pub completed: u64,
    pub not_forwarded: u64,
    pub first_failure: Option<String>,
    pub latencies: Vec<Duration>,
}

fn secret_for(payer: usize, k: u64, salt: u64) -> Secret {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&(payer as u64).to_be_bytes());
    b[8..16].copy_from_slice(&k.to_be_bytes());
    b[16..24].copy_from_slice(&salt.to_be_bytes());
    b[31] = 1;
    Secret(H256(b))
}

fn protocol(what: impl Into<String>) -> HarnessError {
    HarnessError::Protocol(what.into())
}

/// Runs one payee: applies every hub message of its receive stream in order and reveals the
/// secret of each lock it knows. Ends when `stop` resolves or the stream ends.
pub async fn payee(
    mut device: TestDevice,
    secrets: Secrets,
    ready: Arc<Barrier>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<u64, HarnessError> {
    let mut stream = device.receive(0).await?;
    ready.wait().await;
    let channel_id = u256_bytes(&device.channel_id()?);
    let mut stop = stop;
    let mut received = 0u64;
    let mut reveals = tokio::task::JoinSet::new();
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => break,
            m = stream.next() => match m {
                Some(m) => m?,
                None => break,
            },
        };
        let now = crate::device::mediated::unix_now();
        let applied = device.apply_hub_message(msg, now)?;
        match applied.kind {
            HubMessageKind::LockedTransfer { lock, .. } => {
                let secret = secrets
                    .lock()
                    .map_err(|_| protocol("secrets lock poisoned"))?
                    .get(&lock.secrethash)
                    .copied();
                if let Some(secret) = secret {
                    let mut client = device.mediation();
                    let channel_id = channel_id.clone();
                    reveals.spawn(async move {
                        client
                            .reveal_secret(v1::RevealSecretRequest {
                                channel_id,
                                secret: secret.0 .0.to_vec(),
                            })
                            .await
                    });
                }
            }
            HubMessageKind::Unlock { .. } => received += 1,
            _ => {}
        }
        while let Some(done) = reveals.try_join_next() {
            done.map_err(|e| protocol(e.to_string()))??;
        }
    }
    Ok(received)
}

/// Runs one payer against `payees` (round robin), `plan.window` payments in flight.
pub async fn payer(
    index: usize,
    mut device: TestDevice,
    payees: Vec<(LocalSigner, U256)>,
    secrets: Secrets,
    plan: MediatedPlan,
    start: Arc<Barrier>,
) -> Result<MediatedResult, HarnessError> {
    let mut session = device.pay_session(plan.window.max(1) * 2).await?;
    let mut events = device
        .mediation()
        .payer_events(v1::PayerEventsRequest {
            channel_id: u256_bytes(&device.channel_id()?),
        })
        .await?
        .into_inner();
    let domain = *device.channel()?.domain();
    let salt = device.ledger_now().await?;
    start.wait().await;
    let started = Instant::now();
    let lock_amount = plan
        .fees
        .gross_amount(plan.amount)
        .map_err(|e| protocol(e.to_string()))?;
    let mut out = MediatedResult::default();
    // secrethash -> (secret, sent at); removed once the unlock is acked.
    let mut in_flight: HashMap<H256, Instant> = HashMap::new();
    // request id (nonce) of an unlock -> secrethash
    let mut unlocks: HashMap<u64, H256> = HashMap::new();
    let mut sent = 0u64;
    loop {
        let time_left = plan.duration.is_none_or(|d| started.elapsed() < d);
        while in_flight.len() < plan.window && sent < plan.payments && time_left {
            let (payee_key, _) = &payees[(index + sent as usize) % payees.len()];
            let secret = secret_for(index, sent, salt);
            let now = crate::device::mediated::unix_now();
            let request: SignedPaymentRequest = PaymentRequest {
                domain,
                payee: channel_core::Signer::address(payee_key),
                amount: plan.amount,
                secrethash: secret.hash(),
                payment_id: sent,
                expires_at: now + 3_600,
                memo_hash: channel_core::H256::ZERO,
            }
            .sign(payee_key)
            .map_err(|e| protocol(e.to_string()))?;
            secrets
                .lock()
                .map_err(|_| protocol("secrets lock poisoned"))?
                .insert(secret.hash(), secret);
            let msg = device.sign_locked_transfer(
                &request,
                lock_amount,
                now + plan.lock_lifetime,
                now,
            )?;
            in_flight.insert(secret.hash(), Instant::now());
            session.send(msg).await?;
            sent += 1;
        }
        if in_flight.is_empty() && !(sent < plan.payments && time_left) {
            break;
        }
        tokio::select! {
            ack = tokio::time::timeout(plan.timeout, session.next_ack()) => {
                let ack = ack
                    .map_err(|_| HarnessError::Timeout { what: "a mediated ack".into(), after: plan.timeout })??
                    .ok_or_else(|| protocol("hub ended the pay stream"))?;
                match ack {
                    PayAck::Accepted { request_id, forward, .. } => {
                        if let Some(hash) = unlocks.remove(&request_id) {
                            if let Some(at) = in_flight.remove(&hash) {
                                out.latencies.push(at.elapsed());
                                out.completed += 1;
                            }
                        } else if let Some(Forward::NotForwarded { code, reason }) = forward {
                            out.not_forwarded += 1;
                            out.first_failure.get_or_insert(format!("{code:?}: {reason}"));
                            // The lock stays until it expires; stop waiting for it.
                            return Err(protocol(format!("payment not forwarded: {code:?}: {reason}")));
                        }
                    }
                    PayAck::Rejected { code, reason, .. } => {
                        return Err(protocol(format!("mediated message rejected: {code:?}: {reason}")));
                    }
                }
            }
            event = tokio::time::timeout(plan.timeout, events.next()) => {
                let event = event
                    .map_err(|_| HarnessError::Timeout { what: "a payer event".into(), after: plan.timeout })?
                    .ok_or_else(|| protocol("payer event stream ended"))??;
                if let Some(v1::payer_event::Outcome::SecretRevealed(bytes)) = event.outcome {
                    let secret = Secret(H256(
                        <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| protocol("secret is not 32 bytes"))?,
                    ));
                    let hash = secret.hash();
                    if in_flight.contains_key(&hash) && !unlocks.values().any(|h| *h == hash) {
                        let msg = device.sign_unlock(secret)?;
                        unlocks.insert(msg.request_id, hash);
                        session.send(msg).await?;
                        secrets.lock().map_err(|_| protocol("secrets lock poisoned"))?.remove(&hash);
                    }
                } else if let Some(v1::payer_event::Outcome::Failed(reason)) = event.outcome {
                    return Err(protocol(format!("mediated payment failed: {reason}")));
                }
            }
        }
    }
    session.finish();
    Ok(out)
}
