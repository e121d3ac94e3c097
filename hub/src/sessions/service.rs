//! `voltlane.v1.Sessions`: decode, call the relay, encode. The rules are the relay's and
//! `channel_core::session`'s.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use voltlane_proto::convert::sessions::{session_id, OpenSession, ReceiptPart};
use voltlane_proto::convert::{address_bytes, FieldError};
use voltlane_proto::v1;

use super::relay::{SessionRelay, WATCH_BUFFER};
use crate::auth::caller;
use crate::error::HubError;
use crate::shutdown::Shutdown;

fn decode<M, D: TryFrom<M, Error = FieldError>>(m: M) -> Result<D, HubError> {
    D::try_from(m).map_err(HubError::from)
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
        let payer = self.relay.open(caller, req.offer, req.payer)?;
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

    type WatchSessionStream = ReceiverStream<Result<v1::SessionEvent, Status>>;

    async fn watch_session(
        &self,
        request: Request<v1::WatchSessionRequest>,
    ) -> Result<Response<Self::WatchSessionStream>, Status> {
        let caller = caller(&request)?;
        let id = session_id(&request.into_inner().session_id).map_err(HubError::from)?;
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let role = self.relay.watch(caller, id, tx.clone())?;
        // Tell the other side when this watcher goes (stream dropped, or the hub stops).
        let relay = self.relay.clone();
        let mut shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tx.closed() => {}
                _ = shutdown.wait() => {
                    let _ = tx.try_send(Err(HubError::ShuttingDown.into()));
                }
            }
            drop(tx);
            relay.watcher_gone(id, role);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
