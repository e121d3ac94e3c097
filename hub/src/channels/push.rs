//! What one device's `Payments.ReceivePayments` stream sends: the proofs the hub signed toward
//! it, in strictly consecutive nonce order, with none left out.
//!
//! The device takes hub proofs only in nonce order (`n + 1` after `n`) and refuses a gap. The
//! hub signs a proof under its channel's lock but publishes it to the live fan-out after the
//! lock is released, once the signing task has done its own bookkeeping (a mediated
//! transfer's record, its payer told). So two tasks signing `n` and `n + 1` for the same
//! device (an unlock against the payee's reveal and the next forwarded lock, say) may publish
//! them in the opposite order. Every proof is written to the store in the same batch as the
//! channel, before the next one can be signed, so when `n + 1` is published, `n` is already
//! stored: a live message that does not follow the last one sent is preceded by the stored
//! ones it skipped ([`Step::Gap`]), and the late one is skipped as already sent. If the store
//! cannot fill the gap, the stream ends with `ABORTED` and the device reconnects with the
//! nonce it holds, which replays from the store.
//!
//! [`NonceCursor`] is the decision, [`run`] the stream task around it.

use std::future::Future;

use channel_core::U256;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;
use voltlane_proto::v1;

use super::{view, HubPayment};
use crate::error::HubError;

/// What to do with a proof toward the device, given what the stream already sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It is the next nonce: send it.
    Send,
    /// Sent already (the backlog had it, or a gap was filled with it): drop it.
    Skip,
    /// Proofs with nonces in `after + 1 .. nonce` have not been sent: send the stored ones
    /// first.
    Gap { after: u64 },
}

/// The last nonce a device's stream sent, and what follows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceCursor {
    last: u64,
}

impl NonceCursor {
    /// A stream for a device that holds every hub proof up to `after_nonce`.
    pub fn new(after_nonce: u64) -> Self {
        Self { last: after_nonce }
    }

    /// The last nonce sent (or the device's own, before anything was sent).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// What to do with the proof of `nonce`.
    pub fn step(&self, nonce: u64) -> Step {
        if nonce <= self.last {
            Step::Skip
        } else if nonce == self.last.saturating_add(1) {
            Step::Send
        } else {
            Step::Gap { after: self.last }
        }
    }

    /// The proof of `nonce` went out.
    pub fn sent(&mut self, nonce: u64) {
        self.last = self.last.max(nonce);
    }
}

/// Why the stream task stopped sending.
enum Stop {
    /// The device went away, or the hub shuts down.
    Gone,
    /// The device must reconnect with the nonce it holds (the status says why).
    Reconnect(Status),
}

/// Sends `backlog` and then the `live` proofs of `channel_id` on `tx`, in consecutive nonce
/// order from `after_nonce`, until the device goes away or `shutdown` completes. `stored(n)`
/// reads the proofs of the channel stored with a nonce above `n`, in nonce order.
pub async fn run<S>(
    channel_id: U256,
    after_nonce: u64,
    backlog: Vec<HubPayment>,
    mut live: broadcast::Receiver<HubPayment>,
    stored: S,
    tx: mpsc::Sender<Result<v1::HubPayment, Status>>,
    shutdown: impl Future<Output = ()>,
) where
    S: Fn(u64) -> Result<Vec<HubPayment>, HubError>,
{
    tokio::pin!(shutdown);
    let mut cursor = NonceCursor::new(after_nonce);
    // The backlog is what the store held above `after_nonce`: consecutive by construction.
    for p in backlog {
        if cursor.step(p.proof.proof.nonce) == Step::Skip {
            continue;
        }
        if tx.send(Ok(view::hub_payment(&p))).await.is_err() {
            return;
        }
        cursor.sent(p.proof.proof.nonce);
    }
    loop {
        let p = tokio::select! {
            _ = &mut shutdown => return,
            // The device went away: it is offline from now on.
            _ = tx.closed() => return,
            p = live.recv() => p,
        };
        let outcome = match p {
            Ok(p) if p.channel_id == channel_id => deliver(&mut cursor, p, &stored, &tx).await,
            Ok(_) => Ok(()),
            // Lagged: the device reconnects with its last nonce and gets a replay.
            Err(_) => Err(Stop::Reconnect(lagged(
                "hub payment stream lagged; reconnect with after_nonce",
            ))),
        };
        match outcome {
            Ok(()) => {}
            Err(Stop::Gone) => return,
            Err(Stop::Reconnect(status)) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        }
    }
}

/// Sends the live proof `p` if it is due, after the stored proofs it overtook.
async fn deliver<S>(
    cursor: &mut NonceCursor,
    p: HubPayment,
    stored: &S,
    tx: &mpsc::Sender<Result<v1::HubPayment, Status>>,
) -> Result<(), Stop>
where
    S: Fn(u64) -> Result<Vec<HubPayment>, HubError>,
{
    let nonce = p.proof.proof.nonce;
    match cursor.step(nonce) {
        Step::Skip => return Ok(()),
        Step::Send => {}
        Step::Gap { after } => {
            tracing::debug!(channel_id = %p.channel_id, after, nonce, "hub proofs published out of order; sending the stored ones first");
            let missing = stored(after).map_err(|e| {
                Stop::Reconnect(lagged(format!(
                    "hub payment stream cannot read the proofs after nonce {after}: {e}; \
                     reconnect with after_nonce"
                )))
            })?;
            for m in missing {
                let n = m.proof.proof.nonce;
                if n >= nonce {
                    break;
                }
                if cursor.step(n) != Step::Send {
                    continue;
                }
                send(tx, &m).await?;
                cursor.sent(n);
            }
            if cursor.step(nonce) != Step::Send {
                return Err(Stop::Reconnect(lagged(format!(
                    "hub payment stream is missing the proofs between nonce {} and {nonce}; \
                     reconnect with after_nonce",
                    cursor.last()
                ))));
            }
        }
    }
    send(tx, &p).await?;
    cursor.sent(nonce);
    Ok(())
}

async fn send(
    tx: &mpsc::Sender<Result<v1::HubPayment, Status>>,
    p: &HubPayment,
) -> Result<(), Stop> {
    tx.send(Ok(view::hub_payment(p)))
        .await
        .map_err(|_| Stop::Gone)
}

/// The status that ends a payment stream the device must reopen with its last nonce
/// (ABORTED, reason STREAM_LAGGED).
fn lagged(message: impl Into<String>) -> Status {
    voltlane_proto::errors::status(tonic::Code::Aborted, v1::ErrorReason::StreamLagged, message)
}

#[cfg(test)]
#[path = "push_tests.rs"]
mod tests;
