//! `voltlane.v1.Channels` and `voltlane.v1.Payments`: thin handlers over [`ChannelEngine`].
//!
//! `Pay` runs one task per stream: decode each message, hand it to the engine, and answer
//! with an ack (accepted only once the new state is durable) or a per-message rejection
//! carrying the status code and reason; a bad message does not end the stream.

use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use voltlane_proto::convert::mediation::PaymentKind;
use voltlane_proto::convert::requests::Payment;
use voltlane_proto::convert::{u256_bytes, FieldError};
use voltlane_proto::v1;

use super::{push, ChannelEngine};
use crate::auth::caller;
use crate::error::HubError;
use crate::mediation::{self, MediationEngine};
use crate::metrics::Metrics;

/// Acks buffered per payment stream.
const ACK_BUFFER: usize = 256;

/// Most payment messages applied as one batch (one write and one fsync per channel).
const MAX_BATCH: usize = 256;

/// Applies a batch of payment messages in arrival order (durably) and returns their acks, in
/// the same order: accepted, or a rejection carrying the status code and reason.
async fn apply_payments(
    engine: &ChannelEngine,
    mediation: &MediationEngine,
    caller: channel_core::Address,
    msgs: Vec<v1::PaymentMessage>,
) -> Vec<v1::PaymentAck> {
    let mut acks = Vec::with_capacity(msgs.len());
    let mut direct: Vec<(u64, Result<Payment, HubError>)> = Vec::new();
    for m in msgs {
        let request_id = m.request_id;
        let decoded: Result<Payment, HubError> = decode(m);
        match decoded {
            Ok(p) if p.kind != PaymentKind::Direct => {
                // Everything before it first: the channel's proofs are taken in order.
                acks.extend(apply_direct(engine, caller, std::mem::take(&mut direct)).await);
                let ack = match mediation::service::take_mediated(mediation, caller, &p).await {
                    Ok(accepted) => v1::PaymentAck {
                        request_id,
                        outcome: Some(v1::payment_ack::Outcome::Accepted(accepted)),
                    },
                    Err(e) => rejection(request_id, e),
                };
                acks.push(ack);
            }
            other => direct.push((request_id, other)),
        }
    }
    acks.extend(apply_direct(engine, caller, direct).await);
    acks
}

/// Applies a run of direct payments (one write per channel run) and returns their acks.
async fn apply_direct(
    engine: &ChannelEngine,
    caller: channel_core::Address,
    msgs: Vec<(u64, Result<Payment, HubError>)>,
) -> Vec<v1::PaymentAck> {
    if msgs.is_empty() {
        return Vec::new();
    }
    let (ids, decoded): (Vec<u64>, Vec<Result<Payment, HubError>>) = msgs.into_iter().unzip();
    let valid: Vec<Payment> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok().cloned())
        .collect();
    let mut applied = match engine.take_payments(caller, &valid).await {
        Ok(results) => results.into_iter(),
        Err(e) => {
            let rejected = e.rejection();
            return ids
                .into_iter()
                .map(|id| rejected_with(id, rejected.clone()))
                .collect();
        }
    };
    ids.into_iter()
        .zip(decoded)
        .map(|(request_id, d)| {
            let result = match d {
                Ok(_) => applied
                    .next()
                    .unwrap_or_else(|| Err(HubError::Internal("no result for a payment".into()))),
                Err(e) => Err(e),
            };
            match result {
                Ok(accepted) => v1::PaymentAck {
                    request_id,
                    outcome: Some(v1::payment_ack::Outcome::Accepted(accepted)),
                },
                Err(e) => rejection(request_id, e),
            }
        })
        .collect()
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
        let page = decode(request.into_inner())?;
        let (channels, next) = self.engine.list_channels(caller, page).await?;
        Ok(Response::new(v1::ChannelStates {
            channels,
            next_after_channel_id: next.map(|id| u256_bytes(&id)).unwrap_or_default(),
        }))
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
    mediation: MediationEngine,
    metrics: Metrics,
}

impl PaymentsService {
    pub fn new(mediation: MediationEngine) -> Self {
        Self {
            engine: mediation.channels().clone(),
            mediation,
            metrics: Metrics::default(),
        }
    }

    /// Records Pay streams, acks and their latency in `metrics` (else in a detached set).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        Self { metrics, ..self }
    }
}

fn rejection(request_id: u64, e: HubError) -> v1::PaymentAck {
    rejected_with(request_id, e.rejection())
}

fn rejected_with(request_id: u64, rejected: v1::PaymentRejected) -> v1::PaymentAck {
    v1::PaymentAck {
        request_id,
        outcome: Some(v1::payment_ack::Outcome::Rejected(rejected)),
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
        let mediation = self.mediation.clone();
        let metrics = self.metrics.clone();
        let mut shutdown = engine.shutdown.clone();
        tokio::spawn(async move {
            let _open = metrics.pay_stream();
            // Payments are applied strictly in arrival order, in batches of what has arrived,
            // each acked once durable (one fsync per batch, shared with every other channel's
            // writes: group commit). An inbound
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
                            let arrived = std::time::Instant::now();
                            // Take every message already received (up to MAX_BATCH): they are
                            // applied together, sharing one write and one fsync per channel.
                            let mut batch = vec![m];
                            let mut end = None;
                            while batch.len() < MAX_BATCH {
                                match inbound.next().now_or_never() {
                                    Some(Some(Ok(m))) => batch.push(m),
                                    Some(Some(Err(status))) => {
                                        end = Some(Some(status));
                                        break;
                                    }
                                    Some(None) => {
                                        end = Some(None);
                                        break;
                                    }
                                    None => break,
                                }
                            }
                            for ack in apply_payments(&engine, &mediation, caller, batch).await {
                                metrics.payment_ack(&ack);
                                if tx.send(Ok(ack)).await.is_err() {
                                    return;
                                }
                            }
                            metrics.acks_sent(arrived);
                            if let Some(end) = end {
                                if let Some(status) = end {
                                    let _ = tx.send(Err(status)).await;
                                }
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
        let after_nonce = req.after_nonce;
        let (backlog, live) = self.engine.hub_payments_since(caller, req).await?;
        let (tx, rx) = mpsc::channel(ACK_BUFFER);
        let mut shutdown = self.engine.shutdown.clone();
        let online = self.engine.presence.enter(channel_id);
        let book = self.engine.book.clone();
        tokio::spawn(async move {
            let _online = online;
            let stored = |after: u64| book.stored_hub_payments(&channel_id, after);
            let stop = async move { shutdown.wait().await };
            push::run(channel_id, after_nonce, backlog, live, stored, tx, stop).await;
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
