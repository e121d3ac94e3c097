//! The payer's steps of a mediated payment, as they arrive on `Payments.Pay` (in the
//! channel's nonce order): its locked transfer, which the hub takes and then forwards; its
//! unlock, which pays the hub; its lock expiry, which takes a lock back. Each is idempotent
//! for the exact proof the hub already holds (a re-sent message after a lost ack).

use channel_core::channel::{Channel, ChannelEvent};
use channel_core::mediation::{take_and_forward, MediatedTransfer, SignedPaymentRequest};
use channel_core::{Address, HashTimeLock, Secret, SignedBalanceProof, H256, U256};

use super::records::RecordBook;
use super::{MediationEngine, PayerOutcome};
use crate::channels::SentKind;
use crate::error::HubError;
use crate::failpoint::fail_point;

/// Where a forwarded payment went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forwarded {
    pub payee_channel: U256,
    /// What the hub keeps: incoming lock amount minus outgoing lock amount.
    pub fee: U256,
    pub outgoing_lock: HashTimeLock,
}

/// The hub holds the payer's lock (durable) and forwarded it.
///
/// `forward` is an `Err` only for a re-send of a lock that a hub before this version took
/// without forwarding it: this hub takes a payer's lock only together with its forward (both
/// in one write, or neither), so a lock it did not forward never enters the payer's channel
/// and can never be claimed by the hub.
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
    /// is taken only together with its forward to the payee, in one durable write: any
    /// refusal (of the lock by the payer's channel, of the forward by the mediation rules, a
    /// payee offline or without capacity) is an `Err`, and then neither channel changed and
    /// the hub holds nothing of the proof. The exact proof the hub already holds is a re-send
    /// and is answered as the first time.
    pub async fn take_locked_transfer(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        lock: &HashTimeLock,
        request: &SignedPaymentRequest,
    ) -> Result<TakenLock, HubError> {
        let forwarded = match self.take_and_forward(caller, proof, lock, request).await {
            Err(HubError::UnknownChannel(_))
            | Err(HubError::Channel(channel_core::channel::ChannelError::InsufficientBalance {
                ..
            })) => {
                // Maybe a deposit the hub has not applied yet: catch up and judge again.
                self.channels.catch_up().await?;
                self.take_and_forward(caller, proof, lock, request).await?
            }
            other => other?,
        };
        let (nonce, transferred_amount) = accepted_state(proof);
        Ok(TakenLock {
            nonce,
            transferred_amount,
            forward: forwarded,
        })
    }

    /// Takes the payer's lock and forwards it (see [`Self::take_locked_transfer`]). The outer
    /// `Err` refuses the proof; the inner one answers a re-send of a lock an older hub took
    /// without forwarding.
    async fn take_and_forward(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        lock: &HashTimeLock,
        request: &SignedPaymentRequest,
    ) -> Result<Result<Forwarded, HubError>, HubError> {
        let id = proof.proof.channel_identifier;
        let book = &self.channels.book;
        let incoming = book.for_device(caller, &id).await?;
        if incoming.lock().await.partner_latest_proof() == Some(proof) {
            return Ok(self.already_taken(id, lock).await);
        }
        let secrethash = lock.secrethash;
        let now = self.channels.ledger.now()?;
        // The book follows the ledger with a lag: a channel the payer already closed on the
        // ledger takes no new lock, or the lock could outlive the settlement the book does
        // not see yet (the expiry bound counts from a close no earlier than now).
        let open_on_ledger = self.channels.ledger.read(|l| {
            l.channel_record(id)
                .map(|r| r.phase == channel_core::ledger::ChannelPhase::Opened)
        })?;
        if open_on_ledger != Some(true) {
            return Err(
                channel_core::mediation::MediationRefusal::PayerChannelNotOpen(
                    "closed on the ledger",
                )
                .into(),
            );
        }
        request.verify(&book.domain, now)?;
        // A secrethash mediated before is refused: the hub may know its secret, and a held
        // lock whose secret the hub knows is one its ledger monitor would claim.
        let reservation = self.records.reserve(secrethash)?;
        let payee = request.request.payee;
        let (payee_channel, outgoing) = self.payee_channel(&payee).await?;
        if !self.channels.presence.is_online(&payee_channel) {
            return Err(HubError::PayeeOffline(payee));
        }
        let operator = self.channels.operator.clone();
        let config = self.config;
        let (sent, record) = book
            .transition_pair(&incoming, &outgoing, |inc, out, batch| {
                if inc.partner_latest_proof() == Some(proof) {
                    // Taken meanwhile by another stream of the same payer.
                    return Ok((None, None));
                }
                let (record, events) = take_and_forward(
                    inc,
                    proof,
                    lock,
                    request.request.amount,
                    out,
                    &config,
                    now,
                    H256::ZERO,
                    operator.as_ref(),
                )?;
                RecordBook::put(batch, &record)?;
                let kind = SentKind::LockedTransfer {
                    lock: *record.outgoing_lock(),
                    payer: caller,
                    payment_request: *request,
                };
                Ok((Some((events, kind)), Some(record)))
            })
            .await?;
        let Some(record) = record else {
            drop(reservation);
            return Ok(self.already_taken(id, lock).await);
        };
        let outgoing_lock = *record.outgoing_lock();
        self.records.insert(reservation, record)?;
        fail_point!(AFTER_FORWARD_DURABLE);
        if let Some(message) = &sent {
            book.publish(message);
        }
        Ok(Ok(Forwarded {
            payee_channel,
            fee: lock.amount.saturating_sub(outgoing_lock.amount),
            outgoing_lock,
        }))
    }

    /// The answer to a re-sent locked transfer the hub holds: where it was forwarded.
    async fn already_taken(
        &self,
        incoming_id: U256,
        lock: &HashTimeLock,
    ) -> Result<Forwarded, HubError> {
        let secrethash = lock.secrethash;
        let existing = self
            .records
            .get(&secrethash)?
            .ok_or(HubError::NotForwardedBefore(secrethash))?;
        let r = existing.lock().await;
        if r.incoming_channel() != incoming_id || r.incoming_lock() != lock {
            return Err(HubError::NotForwardedBefore(secrethash));
        }
        Ok(Forwarded {
            payee_channel: r.outgoing_channel(),
            fee: lock.amount.saturating_sub(r.outgoing_lock().amount),
            outgoing_lock: *r.outgoing_lock(),
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
        fail_point!(AFTER_INCOMING_UNLOCKED);
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
