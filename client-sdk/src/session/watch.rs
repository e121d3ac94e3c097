//! The session event stream both sides keep open: `Sessions.WatchSession`, decoded, and
//! reopened with backoff when the hub goes away (after the side's own reconnect step, e.g.
//! reopening the session on a restarted hub).

use std::future::Future;
use std::sync::Arc;

use channel_core::primitives::{Address, H256};
use channel_core::session::Publication;
use voltlane_proto::convert::address;
use voltlane_proto::convert::sessions::ReceiptPart;
use voltlane_proto::v1;

use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::shared::Shared;

/// One decoded session event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Accepted(Address),
    Publication(Publication),
    Receipt(ReceiptPart),
    Presence(bool),
}

fn decode(e: v1::SessionEvent) -> Result<Event, ClientError> {
    use v1::session_event::Kind;
    Ok(match e.kind {
        Some(Kind::Accepted(a)) => Event::Accepted(address("accepted.payer", &a.payer)?),
        Some(Kind::Publication(p)) => Event::Publication(
            p.try_into()
                .map_err(|e: voltlane_proto::FieldError| e.within("publication"))?,
        ),
        Some(Kind::ReceiptSignature(r)) => Event::Receipt(
            r.try_into()
                .map_err(|e: voltlane_proto::FieldError| e.within("receipt_signature"))?,
        ),
        Some(Kind::Presence(p)) => Event::Presence(p.watching),
        None => {
            return Err(ClientError::HubMisbehaved(
                "session event without a kind".into(),
            ))
        }
    })
}

/// An open `WatchSession` stream.
pub(crate) struct Watch(tonic::Streaming<v1::SessionEvent>);

impl Watch {
    pub async fn open(shared: &Shared, id: H256) -> Result<Self, ClientError> {
        let req = v1::WatchSessionRequest {
            session_id: id.as_bytes().to_vec(),
        };
        let stream = shared
            .rpc
            .call("Sessions.WatchSession", move |mut c| {
                let req = req.clone();
                async move { c.sessions.watch_session(req).await }
            })
            .await?;
        Ok(Self(stream))
    }

    /// The next event; `None` when the stream ended (the hub went away or dropped us).
    pub async fn next(&mut self) -> Option<Result<Event, ClientError>> {
        match self.0.message().await {
            Ok(Some(e)) => Some(decode(e)),
            Ok(None) => None,
            Err(s) => Some(Err(ClientError::rpc("Sessions.WatchSession", s))),
        }
    }
}

/// One side of a session, as the watch loop drives it.
pub(crate) trait Side: Send + Sync + 'static {
    fn shared(&self) -> &Arc<Shared>;
    fn session_id(&self) -> H256;
    /// What to do before each (re)watch: the payee reopens and republishes, the payer
    /// re-accepts.
    fn reconnect(&self) -> impl Future<Output = Result<(), ClientError>> + Send;
    fn on_event(&self, event: Event) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// Keeps `WatchSession` open for `side` for as long as the client runs: reconnects with
/// backoff, and applies every event (a failed one is logged, the stream goes on).
pub(crate) async fn run<S: Side>(side: S) {
    let id = side.session_id();
    let mut backoff = Backoff::new();
    let mut first = true;
    loop {
        if !first {
            backoff.sleep().await;
        }
        first = false;
        if let Err(e) = side.reconnect().await {
            tracing::debug!(session = %id, error = %e, "session reconnect failed; retrying");
            continue;
        }
        let mut watch = match Watch::open(side.shared(), id).await {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(session = %id, error = %e, "watch failed; retrying");
                continue;
            }
        };
        backoff.reset();
        while let Some(event) = watch.next().await {
            match event {
                Ok(e) => {
                    if let Err(e) = side.on_event(e).await {
                        tracing::warn!(session = %id, error = %e, "session event not applied");
                    }
                }
                Err(e) => {
                    tracing::debug!(session = %id, error = %e, "watch ended");
                    break;
                }
            }
        }
    }
}

/// Signs `receipt` as this device and hands the signature to the hub
/// (`Sessions.SignReceipt`), which passes it to the other side.
pub(crate) async fn sign_receipt(
    shared: &Shared,
    receipt: &channel_core::session::SessionReceipt,
) -> Result<(), ClientError> {
    let part = ReceiptPart {
        receipt: *receipt,
        signature: receipt.sign_part(shared.rpc.signer())?,
    };
    let msg = v1::ReceiptSignature::from(&part);
    shared
        .rpc
        .call("Sessions.SignReceipt", move |mut c| {
            let msg = msg.clone();
            async move { c.sessions.sign_receipt(msg).await }
        })
        .await?;
    Ok(())
}
