//! The payer's steps of a mediated payment, as they arrive on `Payments.Pay` (in the
//! channel's nonce order): its locked transfer, which the hub takes and then forwards; its
//! unlock, which pays the hub; its lock expiry, which takes a lock back. Each is idempotent
//! for the exact proof the hub already holds (a re-sent message after a lost ack).

use channel_core::channel::{Channel, ChannelEvent};
use channel_core::mediation::{forward, MediatedTransfer, SignedPaymentRequest};
use channel_core::{Address, HashTimeLock, Secret, SignedBalanceProof, H256, U256};

use super::records::RecordBook;
use super::{MediationEngine, PayerOutcome};
use crate::channels::SentKind;
use crate::error::HubError;
use crate::failpoint;

/// Where a forwarded payment went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarded {
    pub payee_channel: U256,
    /// What the hub keeps: incoming lock amount minus outgoing lock amount.
    pub fee: U256,
    pub outgoing_lock: HashTimeLock,
}

/// The hub holds the payer's lock (durable); `forward` says whether it went on.
#[derive(Debug)]
pub struct TakenLock {
    pub nonce: u64,
    pub transferred_amount: U256,
    pub forward: Result<Forwarded, HubError>,
}

fn accepted_state(proof: &SignedBalanceProof) -> (u64, U256) {
    (proof.proof.nonce, proof.proof.balance.transferred_amount)
}

impl MediationEngine {
    /// The payer `caller` locks `lock` toward the hub (in `proof`) to pay `request`. The lock
    /// is taken if the channel accepts it (an `Err` means it was not); then the forward is
    /// tried and its outcome reported in [`TakenLock::forward`].
    pub async fn take_locked_transfer(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        lock: &HashTimeLock,
        request: &SignedPaymentRequest,
    ) -> Result<TakenLock, HubError> {
        let id = proof.proof.channel_identifier;
        let taken = self.take_lock(caller, proof, lock).await;
        let shared = match taken {
            Err(HubError::UnknownChannel(_))
            | Err(HubError::Channel(channel_core::channel::ChannelError::InsufficientBalance {
                ..
            })) => {
                // Maybe a deposit the hub has not applied yet: catch up and judge again.
                self.channels.catch_up().await?;
                self.take_lock(caller, proof, lock).await?
            }
            other => other?,
        };
        failpoint::hit(failpoint::AFTER_LOCK_TAKEN);
        let (nonce, transferred_amount) = accepted_state(proof);
        let forward = self.forward(caller, id, &shared, lock, request).await;
        if let Err(e) = &forward {
            tracing::info!(channel = %id, secrethash = %lock.secrethash, reason = %e, "lock taken, not forwarded");
        }
        Ok(TakenLock {
            nonce,
            transferred_amount,
            forward,
        })
    }

    async fn take_lock(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        lock: &HashTimeLock,
    ) -> Result<crate::channels::book::Shared, HubError> {
        let book = &self.channels.book;
        let shared = book
            .for_device(caller, &proof.proof.channel_identifier)
            .await?;
        let now = self.channels.ledger.now()?;
        // A lock that expired on its way (a payer re-sending after a long disconnection) is
        // still taken, as of just before its expiry: refusing it would jam the payer's
        // channel at this nonce. It is never forwarded (too late) and the payer takes it back
        // with its lock-expired; an expired lock can never be claimed, so holding it costs the
        // hub nothing.
        let judged_at = now.min(lock.expiration.saturating_sub(1));
        let secrethash = lock.secrethash;
        let used = self.records.is_used(&secrethash)?;
        book.transition(&shared, |ch, _| {
            if ch.partner_latest_proof() != Some(proof) {
                // A new lock on a secrethash mediated before is refused before it is taken:
                // the hub may know its secret (learned in this very channel), and a held lock
                // whose secret the hub knows is one its ledger monitor would claim, so the
                // payer could never take it back. (The exact proof the hub holds is a re-send.)
                if used {
                    return Err(HubError::SecretHashUsed(secrethash));
                }
                ch.handle_locked_transfer(proof, lock, judged_at)?;
            }
            Ok(())
        })
        .await?;
        Ok(shared)
    }

    /// Forwards the payer's lock (held in channel `incoming_id`) to the payee of `request`.
    async fn forward(
        &self,
        payer: Address,
        incoming_id: U256,
        incoming: &crate::channels::book::Shared,
        lock: &HashTimeLock,
        request: &SignedPaymentRequest,
    ) -> Result<Forwarded, HubError> {
        let secrethash = lock.secrethash;
        if let Some(existing) = self.records.get(&secrethash)? {
            let r = existing.lock().await;
            if r.incoming_channel() == incoming_id && r.incoming_lock() == lock {
                // The same transfer again (a re-sent message): it was forwarded.
                return Ok(Forwarded {
                    payee_channel: r.outgoing_channel(),
                    fee: lock.amount.saturating_sub(r.outgoing_lock().amount),
                    outgoing_lock: *r.outgoing_lock(),
                });
            }
            return Err(HubError::SecretHashUsed(secrethash));
        }
        let now = self.channels.ledger.now()?;
        request.verify(&self.channels.book.domain, now)?;
        let reservation = self.records.reserve(secrethash)?;
        let payee = request.request.payee;
        let (payee_channel, outgoing) = self.payee_channel(&payee).await?;
        if !self.channels.presence.is_online(&payee_channel) {
            return Err(HubError::PayeeOffline(payee));
        }
        let incoming_now: Channel = incoming.lock().await.clone();
        let operator = self.channels.operator.clone();
        let config = self.config;
        let (sent, record) = self
            .channels
            .book
            .transition_and_store(&outgoing, |ch, batch| {
                let (record, events) = forward(
                    &incoming_now,
                    lock,
                    request.request.amount,
                    ch,
                    &config,
                    now,
                    H256::ZERO,
                    operator.as_ref(),
                )?;
                RecordBook::put(batch, &record)?;
                let kind = SentKind::LockedTransfer {
                    lock: *record.outgoing_lock(),
                    payer,
                    payment_request: *request,
                };
                Ok((Some((events, kind)), record))
            })
            .await?;
        let outgoing_lock = *record.outgoing_lock();
        self.records.insert(reservation, record)?;
        failpoint::hit(failpoint::AFTER_FORWARD_DURABLE);
        if let Some(message) = &sent {
            self.channels.book.publish(message);
        }
        Ok(Forwarded {
            payee_channel,
            fee: lock.amount.saturating_sub(outgoing_lock.amount),
            outgoing_lock,
        })
    }

    /// The payer `caller` unlocks its lock toward the hub with `secret`: the hub is paid.
    /// Returns the nonce and transferred amount the hub now holds.
    pub async fn take_unlock(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        secret: &Secret,
    ) -> Result<(u64, U256), HubError> {
        self.take_payer_step(
            caller,
            proof,
            &secret.hash(),
            |r, ch| Ok(r.handle_incoming_unlock(ch, proof, secret)?),
            |ch| Ok(ch.handle_unlock(proof, secret)?),
        )
        .await?;
        failpoint::hit(failpoint::AFTER_INCOMING_UNLOCKED);
        Ok(accepted_state(proof))
    }

    /// The payer `caller` takes back its expired lock `secrethash`. Refused while the secret
    /// is registered on the ledger in time (the lock is then the hub's).
    pub async fn take_lock_expired(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        secrethash: &H256,
    ) -> Result<u64, HubError> {
        let now = self.channels.ledger.now()?;
        self.take_payer_step(
            caller,
            proof,
            secrethash,
            |r, ch| Ok(r.handle_incoming_expired(ch, proof, now)?),
            |ch| Ok(ch.handle_lock_expired(proof, secrethash, now)?),
        )
        .await?;
        Ok(proof.proof.nonce)
    }

    /// One payer step on the lock `secrethash` of its channel: through the transfer's record
    /// (`with_record`, record and channel written together) when the hub forwarded that lock,
    /// on the channel alone (`channel_only`) when it never did. The exact proof the hub
    /// already holds is a re-send and changes nothing.
    async fn take_payer_step(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        secrethash: &H256,
        with_record: impl FnOnce(
            &mut MediatedTransfer,
            &mut Channel,
        ) -> Result<Vec<ChannelEvent>, HubError>,
        channel_only: impl FnOnce(&mut Channel) -> Result<Vec<ChannelEvent>, HubError>,
    ) -> Result<(), HubError> {
        let id = proof.proof.channel_identifier;
        let book = &self.channels.book;
        let shared = book.for_device(caller, &id).await?;
        let Some(rec) = self.records.get(secrethash)? else {
            return book
                .transition(&shared, |ch, _| {
                    if ch.partner_latest_proof() != Some(proof) {
                        channel_only(ch)?;
                    }
                    Ok(())
                })
                .await;
        };
        let mut r = rec.lock().await;
        if r.incoming_channel() != id {
            return Err(HubError::UnknownTransfer(*secrethash));
        }
        let mut next = r.clone();
        let changed = book
            .transition(&shared, |ch, batch| {
                if ch.partner_latest_proof() == Some(proof) {
                    return Ok(false);
                }
                with_record(&mut next, ch)?;
                RecordBook::put(batch, &next)?;
                Ok(true)
            })
            .await?;
        if changed {
            *r = next;
        }
        Ok(())
    }

    /// Tells the payer of a record what became of it (used by the payee and driver paths).
    pub(super) fn tell_payer(&self, channel: U256, secrethash: H256, outcome: PayerOutcome) {
        self.emit(channel, secrethash, outcome);
    }
}
