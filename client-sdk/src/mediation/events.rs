//! The `Mediation.PayerEvents` task: one subscription per client, for the open channel,
//! reconnecting with backoff. The hub first replays the outcome of every unfinished transfer
//! of ours, then streams new ones, so a restart or a dropped stream loses nothing: a secret
//! is checked against the request and unlocks our lock; a failure is recorded for the waiting
//! `pay_request` (the lock itself is taken back by the janitor once it expires).

use std::sync::Arc;

use channel_core::primitives::U256;
use channel_core::Secret;
use voltlane_proto::convert::{h256, u256, u256_bytes};
use voltlane_proto::v1;
use voltlane_proto::v1::payer_event::Outcome;
use voltlane_proto::{FieldError, Rule};

use super::payer;
use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::shared::Shared;

/// Runs until the client is dropped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut backoff = Backoff::new();
    loop {
        let channel_id = shared.wait_open_channel().await;
        if let Err(e) = session(&shared, channel_id, &mut backoff).await {
            tracing::debug!(error = %e, "payer event stream interrupted");
        }
        backoff.sleep().await;
    }
}

async fn session(
    shared: &Shared,
    channel_id: U256,
    backoff: &mut Backoff,
) -> Result<(), ClientError> {
    let mut stream = shared
        .rpc
        .call("Mediation.PayerEvents", move |mut c| async move {
            c.mediation
                .payer_events(v1::PayerEventsRequest {
                    channel_id: u256_bytes(&channel_id),
                })
                .await
        })
        .await?;
    backoff.reset();
    while let Some(m) = stream
        .message()
        .await
        .map_err(|s| ClientError::rpc("Mediation.PayerEvents", s))?
    {
        if let Err(e) = handle(shared, channel_id, m).await {
            tracing::warn!(error = %e, "refused a payer event from the hub");
        }
    }
    Ok(())
}

/// Applies one event. Errors are logged and the stream goes on.
async fn handle(shared: &Shared, channel_id: U256, m: v1::PayerEvent) -> Result<(), ClientError> {
    if u256("channel_id", &m.channel_id)? != channel_id {
        return Err(ClientError::HubMisbehaved(
            "payer event for another channel".into(),
        ));
    }
    let secrethash = h256("secrethash", &m.secrethash)?;
    match m.outcome {
        Some(Outcome::SecretRevealed(bytes)) => {
            let secret = Secret(h256("secret_revealed", &bytes)?);
            if secret.hash() != secrethash {
                return Err(ClientError::HubMisbehaved(format!(
                    "revealed secret does not hash to {secrethash}"
                )));
            }
            payer::unlock_with(shared, secret).await
        }
        Some(Outcome::Failed(reason)) => {
            tracing::info!(%secrethash, %reason, "mediated transfer failed");
            payer::record_failure(shared, &secrethash, reason).await?;
            Ok(())
        }
        None => Err(FieldError::new("outcome", Rule::Missing).into()),
    }
}
