//! `voltlane.v1.Sessions`: decode, call the relay, encode. The rules are the relay's and
//! `channel_core::session`'s.

use std::pin::Pin;
use std::task::{Context, Poll};

use channel_core::H256;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use voltlane_proto::convert::sessions::{session_id, OpenSession, ReceiptPart};
use voltlane_proto::convert::{address_bytes, FieldError};
use voltlane_proto::v1;

use super::relay::{Role, SessionRelay, WATCH_BUFFER};
use crate::auth::caller;
use crate::error::HubError;
use crate::shutdown::Shutdown;

fn decode<M, D: TryFrom<M, Error = FieldError>>(m: M) -> Result<D, HubError> {
    D::try_from(m).map_err(HubError::from)
}

/// A watcher's `WatchSession` stream. The relay holds its only sender, so the stream ends
/// when the relay lets go of it: the session expired or was dropped, or the watcher fell
/// behind (the device then reopens or re-watches). Dropped (the device went away), it tells
/// the relay, which tells the other side.
#[derive(Debug)]
pub struct WatchStream {
    events: mpsc::Receiver<Result<v1::SessionEvent, Status>>,
    relay: SessionRelay,
    id: H256,
    role: Role,
    /// Ends the task that sends the shutdown notice, when the stream goes first.
    _gone: oneshot::Sender<()>,
}

impl Stream for WatchStream {
    type Item = Result<v1::SessionEvent, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().events.poll_recv(cx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        // Closed first, so that the relay no longer counts this watcher.
        self.events.close();
        self.relay.watcher_gone(self.id, self.role);
    }
}

#[derive(Clone, Debug)]
pub struct SessionsService {
    relay: SessionRelay,
    shutdown: Shutdown,
}

impl SessionsService {
    pub fn new(relay: SessionRelay, shutdown: Shutdown) -> Self {
        Self { relay, shutdown }
    }
}

#[tonic::async_trait]
impl v1::sessions_server::Sessions for SessionsService {
    async fn open_session(
        &self,
        request: Request<v1::OpenSessionRequest>,
    ) -> Result<Response<v1::SessionOpened>, Status> {
        let caller = caller(&request)?;
        let req: OpenSession = decode(request.into_inner())?;
        let payer = self.relay.open(caller, req.offer, req.payer).await?;
        Ok(Response::new(v1::SessionOpened {
            payer: payer.as_ref().map(address_bytes).unwrap_or_default(),
        }))
    }

    async fn accept_session(
        &self,
        request: Request<v1::AcceptSessionRequest>,
    ) -> Result<Response<v1::AcceptedSession>, Status> {
        let caller = caller(&request)?;
        let id = session_id(&request.into_inner().session_id).map_err(HubError::from)?;
        let offer = self.relay.accept(caller, id)?;
        Ok(Response::new(v1::AcceptedSession {
            offer: Some((&offer).into()),
        }))
    }

    async fn publish(
        &self,
        request: Request<v1::SessionPublication>,
    ) -> Result<Response<v1::PublishAck>, Status> {
        let caller = caller(&request)?;
        let publication = decode(request.into_inner())?;
        let payer_watching = self.relay.publish(caller, publication)?;
        Ok(Response::new(v1::PublishAck { payer_watching }))
    }

    async fn sign_receipt(
        &self,
        request: Request<v1::ReceiptSignature>,
    ) -> Result<Response<v1::ReceiptSignatureAck>, Status> {
        let caller = caller(&request)?;
        let part: ReceiptPart = decode(request.into_inner())?;
        self.relay.sign_receipt(caller, part)?;
        Ok(Response::new(v1::ReceiptSignatureAck {}))
    }

    type WatchSessionStream = WatchStream;

    async fn watch_session(
        &self,
        request: Request<v1::WatchSessionRequest>,
    ) -> Result<Response<Self::WatchSessionStream>, Status> {
        let caller = caller(&request)?;
        let id = session_id(&request.into_inner().session_id).map_err(HubError::from)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        // Only a weak handle outside the relay: the relay letting go ends the stream.
        let weak = tx.downgrade();
        let role = self.relay.watch(caller, id, tx)?;
        let (gone, stream_gone) = oneshot::channel();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stream_gone => {}
                _ = shutdown.wait() => {
                    if let Some(tx) = weak.upgrade() {
                        let _ = tx.try_send(Err(HubError::ShuttingDown.into()));
                    }
                }
            }
        });
        Ok(Response::new(WatchStream {
            events: rx,
            relay: self.relay.clone(),
            id,
            role,
            _gone: gone,
        }))
    }
}
