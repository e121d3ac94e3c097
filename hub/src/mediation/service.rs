//! `voltlane.v1.Mediation`: thin handlers over [`MediationEngine`], and the payer's steps of
//! `Payments.Pay` ([`take_mediated`]), which the Pay stream hands over in order.

use channel_core::mediation::Leg;
use channel_core::Address;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use voltlane_proto::convert::mediation::{PayerEvents, PaymentKind, Quote, RevealSecret};
use voltlane_proto::convert::requests::Payment;
use voltlane_proto::convert::{h256_bytes, u256_bytes, FieldError};
use voltlane_proto::v1;

use super::{MediationEngine, PayerEvent, PayerOutcome};
use crate::auth::caller;
use crate::error::HubError;

const EVENT_BUFFER: usize = 256;

fn decode<M, D: TryFrom<M, Error = FieldError>>(m: M) -> Result<D, HubError> {
    D::try_from(m).map_err(HubError::from)
}

/// One mediated step of a `Payments.Pay` stream (a payment whose kind is not `Direct`),
/// as its `PaymentAccepted`, or the error that refused it (nothing changed then).
pub async fn take_mediated(
    engine: &MediationEngine,
    caller: Address,
    p: &Payment,
) -> Result<v1::PaymentAccepted, HubError> {
    let proof = &p.balance_proof;
    match &p.kind {
        PaymentKind::Direct => Err(HubError::Internal(
            "a direct payment reached the mediator".into(),
        )),
        PaymentKind::LockedTransfer {
            lock,
            payment_request,
        } => {
            let taken = engine
                .take_locked_transfer(caller, proof, lock, payment_request)
                .await?;
            let forward = Some(match taken.forward {
                Ok(f) => v1::payment_accepted::Forward::Forwarded(v1::LockedTransferResponse {
                    payee_channel_id: u256_bytes(&f.payee_channel),
                    fee: u256_bytes(&f.fee),
                    outgoing_lock: Some((&f.outgoing_lock).into()),
                }),
                Err(e) => v1::payment_accepted::Forward::NotForwarded(e.rejection()),
            });
            Ok(v1::PaymentAccepted {
                nonce: taken.nonce,
                transferred_amount: u256_bytes(&taken.transferred_amount),
                forward,
            })
        }
        PaymentKind::Unlock { secret } => {
            let (nonce, transferred) = engine.take_unlock(caller, proof, secret).await?;
            Ok(v1::PaymentAccepted {
                nonce,
                transferred_amount: u256_bytes(&transferred),
                forward: None,
            })
        }
        PaymentKind::LockExpired { secrethash } => {
            let nonce = engine.take_lock_expired(caller, proof, secrethash).await?;
            Ok(v1::PaymentAccepted {
                nonce,
                transferred_amount: u256_bytes(&proof.proof.balance.transferred_amount),
                forward: None,
            })
        }
    }
}

fn payer_event(e: &PayerEvent) -> v1::PayerEvent {
    use v1::payer_event::Outcome;
    v1::PayerEvent {
        channel_id: u256_bytes(&e.channel_id),
        secrethash: h256_bytes(&e.secrethash),
        outcome: Some(match &e.outcome {
            PayerOutcome::SecretRevealed(s) => Outcome::SecretRevealed(h256_bytes(&s.0)),
            PayerOutcome::Failed(reason) => Outcome::Failed(reason.clone()),
        }),
    }
}

#[derive(Clone, Debug)]
pub struct MediationService {
    engine: MediationEngine,
}

impl MediationService {
    pub fn new(engine: MediationEngine) -> Self {
        Self { engine }
    }
}

#[tonic::async_trait]
impl v1::mediation_server::Mediation for MediationService {
    async fn quote(
        &self,
        request: Request<v1::QuoteRequest>,
    ) -> Result<Response<v1::TransferQuote>, Status> {
        caller(&request)?;
        let q: Quote = decode(request.into_inner())?;
        let quote = self.engine.quote(q.payee, q.amount).await?;
        Ok(Response::new(v1::TransferQuote {
            payee_channel_id: u256_bytes(&quote.payee_channel),
            fee: u256_bytes(&quote.fee),
            lock_amount: u256_bytes(&quote.lock_amount),
            reveal_timeout: quote.reveal_timeout,
            min_lock_expiration: quote.min_lock_expiration,
            max_lock_expiration: quote.max_lock_expiration,
        }))
    }

    type PayerEventsStream = ReceiverStream<Result<v1::PayerEvent, Status>>;

    async fn payer_events(
        &self,
        request: Request<v1::PayerEventsRequest>,
    ) -> Result<Response<Self::PayerEventsStream>, Status> {
        let caller = caller(&request)?;
        let req: PayerEvents = decode(request.into_inner())?;
        let channel_id = req.channel_id;
        self.engine
            .channels
            .book
            .for_device(caller, &channel_id)
            .await?;
        // Subscribe before replaying so nothing falls in between.
        let mut live = self.engine.subscribe_payer_events(channel_id);
        let mut backlog = Vec::new();
        for rec in self.engine.records.all().map_err(Status::from)? {
            let r = rec.lock().await;
            if r.incoming_channel() != channel_id || r.incoming_leg() != Leg::Locked {
                continue;
            }
            let outcome = match (r.secret(), r.outgoing_leg()) {
                (_, Leg::Expired) => PayerOutcome::Failed(
                    "the payee did not claim the payment before its lock expired".into(),
                ),
                (Some(secret), _) => PayerOutcome::SecretRevealed(secret),
                (None, _) => continue,
            };
            backlog.push(PayerEvent {
                channel_id,
                secrethash: r.secrethash(),
                outcome,
            });
        }
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let mut shutdown = self.engine.channels.shutdown.clone();
        tokio::spawn(async move {
            for e in &backlog {
                if tx.send(Ok(payer_event(e))).await.is_err() {
                    return;
                }
            }
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tx.closed() => return,
                    e = live.recv() => match e {
                        Ok(e) if e.channel_id == channel_id => {
                            if tx.send(Ok(payer_event(&e))).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(_) => {
                            let _ = tx
                                .send(Err(voltlane_proto::errors::status(
                                    tonic::Code::Aborted,
                                    v1::ErrorReason::StreamLagged,
                                    "payer event stream lagged; resubscribe for a replay",
                                )))
                                .await;
                            return;
                        }
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn reveal_secret(
        &self,
        request: Request<v1::RevealSecretRequest>,
    ) -> Result<Response<v1::RevealSecretResponse>, Status> {
        let caller = caller(&request)?;
        let req: RevealSecret = decode(request.into_inner())?;
        let unlock = self
            .engine
            .reveal_secret(caller, req.channel_id, req.secret)
            .await?;
        Ok(Response::new(v1::RevealSecretResponse {
            unlock_proof: Some((&unlock.proof).into()),
            amount: u256_bytes(&unlock.amount),
        }))
    }
}
