//! The hub's steps toward the payee: unlocking against the secret the payee revealed (or that
//! reached the ledger), and taking back an outgoing lock that expired unclaimed. Both change
//! the payee's channel and the record in one durable write before the message leaves.

use channel_core::mediation::{Leg, MediatedTransfer};
use channel_core::{Address, Secret, H256, U256};

use super::records::{RecordBook, SharedRecord};
use super::{MediationEngine, PayerOutcome};
use crate::channels::{HubPayment, SentKind};
use crate::error::HubError;
use crate::failpoint::fail_point;

impl MediationEngine {
    /// `Mediation.RevealSecret`: the payee `caller` reveals `secret` for a lock the hub sent
    /// it in channel `channel_id`. Returns the hub's unlock once it is durable.
    pub async fn reveal_secret(
        &self,
        caller: Address,
        channel_id: U256,
        secret: Secret,
    ) -> Result<HubPayment, HubError> {
        let secrethash = secret.hash();
        self.channels.book.for_device(caller, &channel_id).await?;
        let rec = self
            .records
            .get(&secrethash)?
            .ok_or(HubError::UnknownTransfer(secrethash))?;
        {
            let r = rec.lock().await;
            if r.outgoing_channel() != channel_id {
                return Err(HubError::UnknownTransfer(secrethash));
            }
            if r.outgoing_leg() == Leg::Unlocked {
                return Err(HubError::AlreadyUnlocked(secrethash));
            }
        }
        let now = self.channels.ledger.now()?;
        self.pay_payee(&rec, secret, now).await
    }

    /// Learns `secret` for the transfer and unlocks toward its payee, at ledger time `now`:
    /// the secret goes into the payer's channel (so its ledger monitor can claim the incoming
    /// lock whatever happens next) in the same write as the unlock and the record, and only
    /// while the incoming lock can still be claimed (`MediatedTransfer::unlock_outgoing`
    /// checks it against the payer's channel as it is in that write).
    pub(super) async fn pay_payee(
        &self,
        rec: &SharedRecord,
        secret: Secret,
        now: u64,
    ) -> Result<HubPayment, HubError> {
        let book = &self.channels.book;
        let mut r = rec.lock().await;
        let mut next = r.clone();
        let incoming = book
            .get(&next.incoming_channel())?
            .ok_or(HubError::UnknownChannel(next.incoming_channel()))?;
        #[cfg(feature = "failpoints")]
        if crate::failpoint::is_active(crate::failpoint::HUB_WITHHOLDS_UNLOCK) {
            self.learn_in_incoming(&next, secret).await?;
            return Err(HubError::Internal(
                "fail point hub_withholds_unlock: the hub keeps the secret and does not unlock"
                    .into(),
            ));
        }
        let outgoing = book
            .get(&next.outgoing_channel())?
            .ok_or(HubError::UnknownChannel(next.outgoing_channel()))?;
        let operator = self.channels.operator.clone();
        let paid = book
            .transition_pair(&incoming, &outgoing, |inc, out, batch| {
                next.handle_secret_reveal(secret, inc, now)?;
                if inc.partner().locks.contains(&secret.hash()) {
                    inc.learn_secret(secret)?;
                }
                let events = next.unlock_outgoing(out, inc, now, H256::ZERO, operator.as_ref())?;
                RecordBook::put(batch, &next)?;
                Ok((Some((events, SentKind::Unlock { secret })), ()))
            })
            .await;
        let (sent, ()) = match paid {
            Ok(paid) => paid,
            Err(refused) => {
                // While its lock lives, the payee may still claim on the ledger with the
                // secret: whatever refused the unlock, the payer's channel keeps it so the hub
                // can claim too. Once the payee's lock expired (or was taken back) the payee
                // can claim nothing, and the hub claims nothing either: it never takes a
                // payer's lock for a payment that did not reach its payee.
                if !r.outgoing_leg().taken_back() && !r.outgoing_lock().is_expired(now) {
                    if let Err(e) = self.learn_in_incoming(&r, secret).await {
                        tracing::debug!(secrethash = %r.secrethash(), error = %e, "secret not kept in the payer's channel");
                    }
                }
                return Err(refused);
            }
        };
        *r = next;
        fail_point!(AFTER_OUTGOING_UNLOCKED);
        let sent = sent.ok_or_else(|| HubError::Internal("unlock signed nothing".into()))?;
        book.publish(&sent);
        if r.incoming_leg() == Leg::Locked {
            self.tell_payer(
                r.incoming_channel(),
                r.secrethash(),
                PayerOutcome::SecretRevealed(secret),
            );
        }
        tracing::debug!(secrethash = %r.secrethash(), "payee paid");
        Ok(sent)
    }

    /// Records `secret` in the payer's channel while the payer's lock is pending there (its
    /// ledger monitor then registers it in time and claims the lock if the payer does not
    /// unlock).
    pub(super) async fn learn_in_incoming(
        &self,
        r: &MediatedTransfer,
        secret: Secret,
    ) -> Result<(), HubError> {
        let book = &self.channels.book;
        let incoming = book
            .get(&r.incoming_channel())?
            .ok_or(HubError::UnknownChannel(r.incoming_channel()))?;
        book.transition(&incoming, |ch, _| {
            if ch.partner().locks.contains(&secret.hash()) {
                ch.learn_secret(secret)?;
            }
            Ok(())
        })
        .await
    }

    /// Takes back the outgoing lock of a transfer whose payee never claimed it in time, and
    /// tells the payer the payment failed.
    pub(super) async fn expire_outgoing(
        &self,
        rec: &SharedRecord,
        now: u64,
    ) -> Result<(), HubError> {
        let book = &self.channels.book;
        let mut r = rec.lock().await;
        let mut next = r.clone();
        let secrethash = next.secrethash();
        let outgoing = book
            .get(&next.outgoing_channel())?
            .ok_or(HubError::UnknownChannel(next.outgoing_channel()))?;
        let operator = self.channels.operator.clone();
        let (sent, ()) = book
            .transition_and_store(&outgoing, |ch, batch| {
                let events = next.expire_outgoing(ch, now, H256::ZERO, operator.as_ref())?;
                RecordBook::put(batch, &next)?;
                Ok((Some((events, SentKind::LockExpired { secrethash })), ()))
            })
            .await?;
        *r = next;
        if let Some(sent) = &sent {
            book.publish(sent);
        }
        if r.incoming_leg() == Leg::Locked {
            self.tell_payer(
                r.incoming_channel(),
                secrethash,
                PayerOutcome::Failed(
                    "the payee did not claim the payment before its lock expired".into(),
                ),
            );
        }
        Ok(())
    }
}
