//! The `Payments.Pay` stream task: owns the bidirectional stream, sends queued proofs (direct
//! payments and the payer's steps of mediated payments, each with its `kind`) in nonce order,
//! each read from the store once its write is durable (the queue carries the write's ticket,
//! and the store answers durable data only), and resolves each waiting call when the hub's ack
//! (matched by `request_id`, which is the proof's nonce) arrives. What an ack or a rejection
//! means for a mediated transfer is recorded (`mediation::payer::on_acked`) before the proof
//! leaves the unacknowledged log.
//!
//! On every (re)connect — including the first one after a device restart — it first asks
//! `Channels.GetChannel` which device nonce the hub holds, prunes what the hub has (resolving
//! those `pay` calls), and re-sends every unacknowledged proof above it, in order, before any
//! new payment. Re-sending the exact stored proof (never a re-signed one) keeps the rule that
//! no two different proofs share a nonce.

use std::sync::Arc;

use channel_core::primitives::U256;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use voltlane_proto::convert::mediation::PaymentKind;
use voltlane_proto::convert::{required, u256, u256_bytes};
use voltlane_proto::v1;
use voltlane_proto::v1::payment_accepted::Forward;
use voltlane_proto::v1::payment_ack::Outcome;
use voltlane_proto::FieldError;

use crate::backoff::Backoff;
use crate::error::ClientError;
use crate::mediation::payer;
use crate::shared::{durable, Queued, Shared};
use crate::store::{ForwardRecord, QueuedKind, UnackedPayment};
use crate::sync;

/// Runs until the client is dropped.
pub(crate) async fn run(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut backoff = Backoff::new();
    loop {
        let channel_id = shared.wait_open_channel().await;
        match session(&shared, channel_id, &mut queue, &mut backoff).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "payment stream interrupted; resyncing");
                backoff.sleep().await;
            }
        }
    }
}

/// The wire form of a queued kind.
fn wire_kind(k: &QueuedKind) -> PaymentKind {
    match *k {
        QueuedKind::Direct => PaymentKind::Direct,
        QueuedKind::LockedTransfer {
            lock,
            payment_request,
        } => PaymentKind::LockedTransfer {
            lock,
            payment_request,
        },
        QueuedKind::Unlock { secret } => PaymentKind::Unlock { secret },
        QueuedKind::LockExpired { secrethash } => PaymentKind::LockExpired { secrethash },
    }
}

fn message(p: &UnackedPayment) -> v1::PaymentMessage {
    v1::PaymentMessage {
        request_id: p.nonce(),
        balance_proof: Some((&p.proof).into()),
        amount: u256_bytes(&p.amount),
        kind: (&wire_kind(&p.kind)).into(),
    }
}

/// The hub's answer about a locked transfer's forward, from its ack.
fn forward_record(f: Option<Forward>) -> Result<Option<ForwardRecord>, FieldError> {
    Ok(match f {
        None => None,
        Some(Forward::Forwarded(r)) => Some(ForwardRecord::Forwarded {
            fee: u256("accepted.forwarded.fee", &r.fee)?,
            outgoing_lock: required("accepted.forwarded.outgoing_lock", r.outgoing_lock)?,
        }),
        Some(Forward::NotForwarded(r)) => Some(ForwardRecord::NotForwarded(
            crate::mediation::decide::refusal_record(&r),
        )),
    })
}

/// The hub holds every proof up to `nonce`: records what that means for mediated transfers,
/// prunes them from the unacknowledged log and resolves their callers. `known` are entries
/// already read (the acked one, or the resync's): their records are updated before the
/// prune, so a crash in between leaves the entry to be acknowledged again, never a pruned
/// entry whose meaning was not recorded.
pub(crate) async fn acked_through(
    shared: &Shared,
    nonce: u64,
    known: &[UnackedPayment],
    forward: Option<(u64, &ForwardRecord)>,
) -> Result<(), ClientError> {
    let forward_of = |p: &UnackedPayment| forward.filter(|(n, _)| *n == p.nonce()).map(|(_, f)| f);
    for p in known.iter().filter(|p| p.nonce() <= nonce) {
        payer::on_acked(shared, p, forward_of(p)).await?;
    }
    // Records first (durable when `on_acked` returns), then the prune.
    for p in shared.store.unacked_all()? {
        if p.nonce() <= nonce && !known.iter().any(|k| k.nonce() == p.nonce()) {
            payer::on_acked(shared, &p, forward_of(&p)).await?;
        }
    }
    let pruned = shared.store.prune_unacked(nonce).await?;
    shared.resolve_acked(&pruned, forward);
    Ok(())
}

fn stream_closed() -> ClientError {
    ClientError::Rpc {
        op: "Payments.Pay",
        code: tonic::Code::Unavailable,
        hub_reason: None,
        message: "stream closed by the hub".into(),
    }
}

/// The hub's view of channel `channel_id` (`Channels.GetChannel`).
pub(crate) async fn hub_channel_state(
    shared: &Shared,
    channel_id: U256,
) -> Result<v1::ChannelState, ClientError> {
    shared
        .rpc
        .call("Channels.GetChannel", move |mut c| async move {
            c.channels
                .get_channel(v1::GetChannelRequest {
                    channel_id: u256_bytes(&channel_id),
                })
                .await
        })
        .await
}

/// The device nonce the hub holds for `channel_id`.
pub(crate) async fn hub_device_nonce(
    shared: &Shared,
    channel_id: U256,
) -> Result<u64, ClientError> {
    let state = hub_channel_state(shared, channel_id).await?;
    Ok(state
        .device_proof
        .and_then(|p| p.proof)
        .map_or(0, |p| p.nonce))
}

async fn session(
    shared: &Arc<Shared>,
    channel_id: U256,
    queue: &mut mpsc::UnboundedReceiver<Queued>,
    backoff: &mut Backoff,
) -> Result<(), ClientError> {
    // 1. Resync: what does the hub already hold?
    let hub_nonce = hub_device_nonce(shared, channel_id).await?;
    let our_nonce = shared.require_channel()?.our().nonce();
    let plan = sync::plan_resync(shared.store.unacked_all()?, hub_nonce, our_nonce)?;
    for p in &plan.retracted {
        shared.store.remove_unacked(p.nonce()).await?;
    }
    acked_through(shared, hub_nonce, &plan.acked, None).await?;

    // 2. Open the stream with the re-sends already queued on it (read from the store: durable).
    let (out, out_rx) = mpsc::unbounded_channel();
    let mut last_sent = hub_nonce;
    for p in &plan.resend {
        out.send(message(p)).map_err(|_| stream_closed())?;
        last_sent = p.nonce();
    }
    let mut payments = shared.rpc.clients().payments;
    let mut acks = payments
        .pay(UnboundedReceiverStream::new(out_rx))
        .await
        .map_err(|s| ClientError::rpc("Payments.Pay", s))?
        .into_inner();
    backoff.reset();

    // 3. Pump: queued payments out (each once durable; a group's writes share flushes), acks
    //    in.
    loop {
        tokio::select! {
            next = queue.recv() => {
                let Some(first) = next else { return Ok(()) };
                let mut batch = vec![first];
                while let Ok(n) = queue.try_recv() {
                    batch.push(n);
                }
                for (nonce, persist) in batch {
                    durable(persist).await?;
                    if nonce <= last_sent {
                        continue; // already re-sent during the resync
                    }
                    if let Some(p) = shared.store.unacked(nonce)? {
                        out.send(message(&p)).map_err(|_| stream_closed())?;
                        last_sent = nonce;
                    }
                }
            }
            ack = acks.message() => {
                match ack {
                    Ok(Some(ack)) => {
                        handle_ack(shared, ack).await?;
                        // A refused lock taken back frees its nonce: the next proof reuses
                        // it and must go out, not be skipped as sent.
                        last_sent = last_sent.min(shared.require_channel()?.our().nonce());
                    }
                    Ok(None) => return Err(stream_closed()),
                    Err(s) => return Err(ClientError::rpc("Payments.Pay", s)),
                }
            }
        }
    }
}

/// Applies one ack. An error ends the session (and triggers a resync).
pub(crate) async fn handle_ack(shared: &Shared, ack: v1::PaymentAck) -> Result<(), ClientError> {
    let nonce = ack.request_id;
    match ack.outcome {
        Some(Outcome::Accepted(a)) => {
            let transferred = u256("accepted.transferred_amount", &a.transferred_amount)?;
            let sent = shared.store.unacked(a.nonce)?;
            if let Some(sent) = &sent {
                sync::check_accepted(sent, a.nonce, transferred)?;
            }
            let forward = forward_record(a.forward)?;
            let known: Vec<_> = sent.into_iter().collect();
            acked_through(
                shared,
                a.nonce,
                &known,
                forward.as_ref().map(|f| (a.nonce, f)),
            )
            .await
        }
        Some(Outcome::Rejected(r)) => {
            let code = tonic::Code::from_i32(r.code);
            let refusal = crate::mediation::decide::refusal_record(&r);
            let hub_reason = crate::error::HubReason::from_wire(r.error_reason);
            if payer::retract_refused(shared, nonce, &refusal).await? {
                return Ok(());
            }
            if sync::rejection_is_transient(code) {
                return Err(ClientError::PaymentRejected {
                    nonce,
                    code,
                    hub_reason,
                    reason: r.reason,
                });
            }
            let why = format!(
                "the hub rejected payment nonce {nonce} ({code:?}: {}); later payments cannot \
                 follow it, close the channel",
                r.reason
            );
            shared.set_send_blocked(Some(why))?;
            if let Some(sent) = shared.store.unacked(nonce)? {
                payer::on_rejected(shared, &sent, refusal).await?;
            }
            shared.resolve(
                nonce,
                Err(ClientError::PaymentRejected {
                    nonce,
                    code,
                    hub_reason,
                    reason: r.reason,
                }),
            );
            Ok(())
        }
        None => Err(ClientError::Malformed(voltlane_proto::FieldError::new(
            "outcome",
            voltlane_proto::Rule::Missing,
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use channel_core::channel::Channel;
    use channel_core::mediation::PaymentRequest;
    use channel_core::primitives::{Address, H256};
    use channel_core::{Domain, HashTimeLock, LocalSigner, Secret, Signer};

    use super::*;
    use crate::store::Refusal;

    #[test]
    fn every_queued_kind_goes_out_as_its_wire_kind() {
        let dev = LocalSigner::from_bytes(&[1; 32]).unwrap();
        let payee = LocalSigner::from_bytes(&[3; 32]).unwrap();
        let domain = Domain {
            chain_id: U256::from(337u64),
            token_network_address: Address([4; 20]),
        };
        let mut ch = Channel::new(domain, U256::from(1u64), dev.address(), Address([2; 20]));
        ch.handle_ledger_deposit(dev.address(), U256::from(1_000u64))
            .unwrap();
        ch.send_payment(U256::from(5u64), H256::ZERO, &dev).unwrap();
        let proof = *ch.our_latest_proof().unwrap();
        let s = Secret(H256([9; 32]));
        let lock = HashTimeLock {
            expiration: 300,
            amount: U256::from(102u64),
            secrethash: s.hash(),
        };
        let payment_request = PaymentRequest {
            domain,
            payee: payee.address(),
            amount: U256::from(100u64),
            secrethash: s.hash(),
            payment_id: 1,
            expires_at: 500,
            memo_hash: H256::ZERO,
        }
        .sign(&payee)
        .unwrap();
        for (kind, wire) in [
            (QueuedKind::Direct, PaymentKind::Direct),
            (
                QueuedKind::LockedTransfer {
                    lock,
                    payment_request,
                },
                PaymentKind::LockedTransfer {
                    lock,
                    payment_request,
                },
            ),
            (
                QueuedKind::Unlock { secret: s },
                PaymentKind::Unlock { secret: s },
            ),
            (
                QueuedKind::LockExpired {
                    secrethash: s.hash(),
                },
                PaymentKind::LockExpired {
                    secrethash: s.hash(),
                },
            ),
        ] {
            let m = message(&UnackedPayment {
                proof,
                amount: U256::from(5u64),
                kind,
            });
            assert_eq!(m.request_id, 1);
            assert_eq!(PaymentKind::try_from(m.kind).unwrap(), wire);
        }
    }

    #[test]
    fn the_forward_answer_is_read_or_its_bad_field_named() {
        assert_eq!(forward_record(None).unwrap(), None);
        let lock = HashTimeLock {
            expiration: 280,
            amount: U256::from(100u64),
            secrethash: H256([1; 32]),
        };
        let forwarded = Forward::Forwarded(v1::LockedTransferResponse {
            payee_channel_id: u256_bytes(&U256::from(2u64)),
            fee: u256_bytes(&U256::from(2u64)),
            outgoing_lock: Some((&lock).into()),
        });
        assert_eq!(
            forward_record(Some(forwarded)).unwrap(),
            Some(ForwardRecord::Forwarded {
                fee: U256::from(2u64),
                outgoing_lock: lock,
            })
        );
        // The typed reason is kept with the record (as its `[REASON] ` prefix).
        let refused = Forward::NotForwarded(v1::PaymentRejected {
            code: tonic::Code::ResourceExhausted as i32,
            reason: "hub has no capacity toward the payee".into(),
            error_reason: v1::ErrorReason::NoCapacity as i32,
        });
        assert_eq!(
            forward_record(Some(refused)).unwrap(),
            Some(ForwardRecord::NotForwarded(Refusal {
                code: tonic::Code::ResourceExhausted as i32,
                reason: "[NO_CAPACITY] hub has no capacity toward the payee".into(),
            }))
        );
        let no_lock = Forward::Forwarded(v1::LockedTransferResponse {
            payee_channel_id: Vec::new(),
            fee: u256_bytes(&U256::from(2u64)),
            outgoing_lock: None,
        });
        let err = forward_record(Some(no_lock)).unwrap_err();
        assert_eq!(err.field, "accepted.forwarded.outgoing_lock");
        let short_fee = Forward::Forwarded(v1::LockedTransferResponse {
            payee_channel_id: Vec::new(),
            fee: vec![1; 3],
            outgoing_lock: Some((&lock).into()),
        });
        assert_eq!(
            forward_record(Some(short_fee)).unwrap_err().field,
            "accepted.forwarded.fee"
        );
    }
}
