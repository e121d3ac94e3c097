//! The `Payments.ReceivePayments` task: takes the balance proofs the hub signs for the device,
//! in nonce order. A direct payment is checked with `Channel::handle_payment`, made durable,
//! and only then published to the application (a broadcast channel; `balances()` reflects it
//! too). The steps of mediated payments toward the device (locked transfer, unlock, lock
//! expired) go to [`crate::mediation::payee`]. While this stream is open the hub counts the
//! device online as a payee.

use std::sync::Arc;

use channel_core::channel::ChannelError;
use channel_core::primitives::U256;
use channel_core::SignedBalanceProof;
use voltlane_proto::convert::mediation::{HubMessage, HubMessageKind};
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::mediation::payee;
use crate::shared::Shared;
use crate::store::HubPaymentRecord;
use crate::types::ReceivedPayment;

/// Runs until the client is dropped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    loop {
        let channel_id = shared.wait_open_channel().await;
        if let Err(e) = session(&shared, channel_id, &mut backoff).await {
            tracing::debug!(error = %e, "hub payment stream interrupted");
        }
        backoff.sleep().await;
    }
}

async fn session(
    shared: &Arc<Shared>,
    channel_id: U256,
    backoff: &mut Backoff,
) -> Result<(), ClientError> {
    let after_nonce = shared.require_channel()?.partner().nonce();
    let mut stream = shared
        .rpc
        .call("Payments.ReceivePayments", move |mut c| async move {
            c.payments
                .receive_payments(v1::ReceivePaymentsRequest {
                    channel_id: u256_bytes(&channel_id),
                    after_nonce,
                })
                .await
        })
        .await?;
    backoff.reset();
    while let Some(m) = stream
        .message()
        .await
        .map_err(|s| ClientError::rpc("Payments.ReceivePayments", s))?
    {
        let result = match HubMessage::try_from(m) {
            Err(e) => Err(e.into()),
            Ok(msg) if msg.kind == HubMessageKind::Payment => {
                receive(shared, channel_id, msg.balance_proof, msg.amount)
                    .await
                    .map(|p| {
                        if let Some(p) = p {
                            let _ = shared.hub_payments.send(p);
                        }
                    })
            }
            Ok(msg) => payee::receive(shared, msg).await,
        };
        if let Err(e) = result {
            if needs_replay(&e) {
                // Proofs only count in nonce order: a gap means the stream skipped one. A
                // new stream from the nonce we hold replays it from the hub's store.
                tracing::warn!(error = %e, "the hub's stream skipped a proof; reconnecting to replay it");
                return Err(e);
            }
            tracing::warn!(error = %e, "refused a proof from the hub");
        }
    }
    Ok(())
}

/// Whether a refused proof means the stream lost one before it (and every later proof would
/// be refused too), so the stream must be reopened from the nonce the device holds.
fn needs_replay(e: &ClientError) -> bool {
    matches!(e, ClientError::Channel(ChannelError::NonceGap { .. }))
}

/// Checks and stores one hub payment; `None` for a replay of one we already hold.
async fn receive(
    shared: &Shared,
    channel_id: U256,
    proof: SignedBalanceProof,
    amount: U256,
) -> Result<Option<ReceivedPayment>, ClientError> {
    let received = shared
        .transition(|ch, batch| {
            ch.handle_payment(&proof, amount)?;
            batch.hub_payment(&HubPaymentRecord { proof, amount })?;
            Ok(())
        })
        .await;
    match received {
        Ok(()) => {}
        Err(ClientError::Channel(ChannelError::StaleNonce { .. })) => return Ok(None),
        Err(e) => return Err(e),
    }
    Ok(Some(ReceivedPayment {
        channel_id,
        amount,
        proof,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_nonce_gap_reopens_the_stream() {
        let gap = ClientError::Channel(ChannelError::NonceGap {
            expected: 5,
            got: 6,
        });
        assert!(needs_replay(&gap));
        let forged = ClientError::Channel(ChannelError::StaleNonce { latest: 5, got: 5 });
        assert!(!needs_replay(&forged));
        assert!(!needs_replay(&ClientError::InvalidState("x".into())));
    }
}
