//! The session event stream both sides keep open: `Sessions.WatchSession`, decoded, and
//! reopened with backoff when the hub goes away (after the side's own reconnect step, e.g.
//! reopening the session on a restarted hub).

use channel_core::primitives::{Address, H256};
use channel_core::session::Publication;
use voltlane_proto::convert::address;
use voltlane_proto::convert::sessions::ReceiptPart;
use voltlane_proto::v1;

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
