//! `voltlane.v1.Channels` and `voltlane.v1.Payments`: thin handlers over [`ChannelEngine`].
//!
//! `Pay` runs one task per stream: decode each message, hand it to the engine, and answer
//! with an ack (accepted only once the new state is durable) or a per-message rejection
//! carrying the status code and reason; a bad message does not end the stream.

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use voltlane_proto::convert::requests::Payment;
use voltlane_proto::convert::FieldError;
use voltlane_proto::v1;

use super::{view, ChannelEngine};
use crate::auth::caller;
use crate::error::HubError;

/// Acks buffered per payment stream.
const ACK_BUFFER: usize = 256;

/// Applies one payment message to its channel (durably) and returns its ack: accepted, or
/// a rejection carrying the status code and reason.
async fn apply_payment(
    engine: &ChannelEngine,
    caller: channel_core::Address,
    msg: v1::PaymentMessage,
) -> v1::PaymentAck {
    let request_id = msg.request_id;
    let applied = match decode::<_, Payment>(msg) {
        Ok(payment) => engine.take_payment(caller, payment).await,
        Err(e) => Err(e),
    };
    match applied {
        Ok(accepted) => v1::PaymentAck {
            request_id,
            outcome: Some(v1::payment_ack::Outcome::Accepted(accepted)),
        },
        Err(e) => rejection(request_id, e),
    }
}

fn decode<M, D: TryFrom<M, Error = FieldError>>(m: M) -> Result<D, HubError> {
    D::try_from(m).map_err(HubError::from)
}

/// `voltlane.v1.Channels`.
#[derive(Clone, Debug)]
pub struct ChannelsService {
    engine: ChannelEngine,
}

impl ChannelsService {
    pub fn new(engine: ChannelEngine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl v1::channels_server::Channels for ChannelsService {
    async fn get_channel(
        &self,
        request: Request<v1::GetChannelRequest>,
    ) -> Result<Response<v1::ChannelState>, Status> {
        let caller = caller(&request)?;
        let id = decode(request.into_inner())?;
        Ok(Response::new(self.engine.get_channel(caller, id).await?))
    }

    async fn list_channels(
        &self,
        request: Request<v1::ListChannelsRequest>,
    ) -> Result<Response<v1::ChannelStates>, Status> {
        let caller = caller(&request)?;
        let channels = self.engine.list_channels(caller).await?;
        Ok(Response::new(v1::ChannelStates { channels }))
    }

    async fn request_withdraw(
        &self,
        request: Request<v1::RequestWithdrawRequest>,
    ) -> Result<Response<v1::CoSignedWithdraw>, Status> {
        let caller = caller(&request)?;
        let req = decode(request.into_inner())?;
        Ok(Response::new(
            self.engine.request_withdraw(caller, req).await?,
        ))
    }

    async fn cooperative_close(
        &self,
        request: Request<v1::CooperativeCloseRequest>,
    ) -> Result<Response<v1::CooperativeCloseResponse>, Status> {
        let caller = caller(&request)?;
        let req = decode(request.into_inner())?;
        Ok(Response::new(
            self.engine.cooperative_close(caller, req).await?,
        ))
    }

    async fn operator_deposit(
        &self,
        request: Request<v1::OperatorDepositRequest>,
    ) -> Result<Response<v1::OperatorDepositResponse>, Status> {
        let caller = caller(&request)?;
        let req = decode(request.into_inner())?;
        Ok(Response::new(
            self.engine.operator_deposit(caller, req).await?,
        ))
    }
}

/// `voltlane.v1.Payments`.
#[derive(Clone, Debug)]
pub struct PaymentsService {
    engine: ChannelEngine,
}

impl PaymentsService {
    pub fn new(engine: ChannelEngine) -> Self {
        Self { engine }
    }
}

fn rejection(request_id: u64, e: HubError) -> v1::PaymentAck {
    let status = Status::from(e);
    v1::PaymentAck {
        request_id,
        outcome: Some(v1::payment_ack::Outcome::Rejected(v1::PaymentRejected {
            code: status.code() as i32,
            reason: status.message().to_string(),
        })),
    }
}

#[tonic::async_trait]
impl v1::payments_server::Payments for PaymentsService {
    type PayStream = ReceiverStream<Result<v1::PaymentAck, Status>>;

    async fn pay(
        &self,
        request: Request<Streaming<v1::PaymentMessage>>,
    ) -> Result<Response<Self::PayStream>, Status> {
        let caller = caller(&request)?;
        self.engine.payments_available()?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(ACK_BUFFER);
        let engine = self.engine.clone();
        let mut shutdown = engine.shutdown.clone();
        tokio::spawn(async move {
            // Payments are applied strictly in arrival order, each acked once durable (the
            // fsync is shared with every other channel's writes: group commit). An inbound
            // error (e.g. a message over the size limit) ends the stream with that status,
            // after every earlier payment was acked.
            loop {
                tokio::select! {
                    _ = shutdown.wait() => {
                        let _ = tx.send(Err(HubError::ShuttingDown.into())).await;
                        return;
                    }
                    msg = inbound.next() => match msg {
                        Some(Ok(m)) => {
                            let ack = apply_payment(&engine, caller, m).await;
                            if tx.send(Ok(ack)).await.is_err() {
                                return;
                            }
                        }
                        Some(Err(status)) => {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                        // The client closed its side: every payment is acked; end the stream.
                        None => return,
                    },
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type ReceivePaymentsStream = ReceiverStream<Result<v1::HubPayment, Status>>;

    async fn receive_payments(
        &self,
        request: Request<v1::ReceivePaymentsRequest>,
    ) -> Result<Response<Self::ReceivePaymentsStream>, Status> {
        let caller = caller(&request)?;
        let req: voltlane_proto::convert::requests::ReceivePayments = decode(request.into_inner())?;
        let channel_id = req.channel_id;
        let (backlog, mut live) = self.engine.hub_payments_since(caller, req).await?;
        let (tx, rx) = mpsc::channel(ACK_BUFFER);
        let mut shutdown = self.engine.shutdown.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for p in backlog {
                last = p.proof.proof.nonce;
                if tx.send(Ok(view::hub_payment(&p))).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    p = live.recv() => match p {
                        Ok(p) if p.channel_id == channel_id && p.proof.proof.nonce > last => {
                            last = p.proof.proof.nonce;
                            if tx.send(Ok(view::hub_payment(&p))).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        // Lagged: the device reconnects with its last nonce and gets a replay.
                        Err(_) => {
                            let _ = tx
                                .send(Err(Status::aborted("hub payment stream lagged; reconnect with after_nonce")))
                                .await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn operator_pay(
        &self,
        request: Request<v1::OperatorPayRequest>,
    ) -> Result<Response<v1::HubPayment>, Status> {
        let caller = caller(&request)?;
        let req = decode(request.into_inner())?;
        Ok(Response::new(self.engine.operator_pay(caller, req).await?))
    }
}
