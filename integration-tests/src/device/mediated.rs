//! The mediated side of [`TestDevice`]: sign a payer's locked transfer, unlock and lock
//! expiry; issue a payee's payment request; apply what the hub pushes on
//! `Payments.ReceivePayments`; and the `Mediation` client. Everything is raw protobuf over
//! the device's own `channel_core` channel, so tests can also send what an honest SDK never
//! would (forged, replayed, mismatched messages).

use channel_core::channel::{ChannelEvent, ChannelMessage};
use channel_core::mediation::{PaymentRequest, SignedPaymentRequest};
use channel_core::{HashTimeLock, Secret, SignedBalanceProof, H256, U256};
use voltlane_proto::convert::mediation::{HubMessage, HubMessageKind, PaymentKind};
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

use super::{Authed, TestDevice};
use crate::error::HarnessError;

fn signed(events: Vec<ChannelEvent>) -> Result<SignedBalanceProof, HarnessError> {
    events
        .into_iter()
        .find_map(|e| match e {
            ChannelEvent::Send(
                ChannelMessage::LockedTransfer { proof, .. }
                | ChannelMessage::Unlock { proof, .. }
                | ChannelMessage::LockExpired { proof, .. }
                | ChannelMessage::Payment { proof, .. },
            ) => Some(proof),
            _ => None,
        })
        .ok_or_else(|| HarnessError::Channel("the transition signed nothing".into()))
}

fn channel_err(e: impl std::fmt::Display) -> HarnessError {
    HarnessError::Channel(e.to_string())
}

/// A `PaymentMessage` of kind `kind` carrying `proof` (request id = nonce).
pub fn mediated_message(
    proof: &SignedBalanceProof,
    amount: U256,
    kind: PaymentKind,
) -> v1::PaymentMessage {
    v1::PaymentMessage {
        request_id: proof.proof.nonce,
        balance_proof: Some(proof.into()),
        amount: u256_bytes(&amount),
        kind: (&kind).into(),
    }
}

impl TestDevice {
    pub fn mediation(&self) -> v1::mediation_client::MediationClient<Authed> {
        v1::mediation_client::MediationClient::with_interceptor(
            self.conn.clone(),
            self.bearer.clone(),
        )
    }

    pub(super) fn channel_mut(&mut self) -> Result<&mut super::ChannelState, HarnessError> {
        self.channel
            .as_mut()
            .ok_or_else(|| HarnessError::protocol("no channel opened yet"))
    }

    /// Records the hub's total deposit in the device's channel (as the ledger reported it).
    pub fn learn_hub_deposit(&mut self, total: U256) -> Result<(), HarnessError> {
        let hub = self.hub;
        self.channel_mut()?
            .handle_ledger_deposit(hub, total)
            .map_err(channel_err)?;
        Ok(())
    }

    /// A copy of the device's channel record. Sign something with the device, then
    /// [`TestDevice::restore_channel`] the copy: the device forgets what it signed, so a test
    /// can send a forged, early or oversized message and then the genuine one at the same
    /// nonce.
    pub fn save_channel(&self) -> Result<channel_core::channel::Channel, HarnessError> {
        Ok(self.channel()?.clone())
    }

    /// Puts back a record taken with [`TestDevice::save_channel`].
    pub fn restore_channel(&mut self, saved: channel_core::channel::Channel) {
        self.channel = Some(saved);
    }

    /// Makes the device's own record believe its deposit is `total`, so that it signs a lock
    /// beyond what the ledger holds for it (restore the saved record afterwards).
    pub fn pretend_own_deposit(&mut self, total: U256) -> Result<(), HarnessError> {
        let me = self.address();
        self.channel_mut()?
            .handle_ledger_deposit(me, total)
            .map_err(channel_err)?;
        Ok(())
    }

    /// As payee: a request for `amount` against `secret`, signed by this device.
    pub fn payment_request(
        &self,
        amount: U256,
        secret: Secret,
        payment_id: u64,
        expires_at: u64,
    ) -> Result<SignedPaymentRequest, HarnessError> {
        PaymentRequest {
            domain: *self.channel()?.domain(),
            payee: self.address(),
            amount,
            secrethash: secret.hash(),
            payment_id,
            expires_at,
            memo_hash: H256::ZERO,
        }
        .sign(&self.key)
        .map_err(channel_err)
    }

    /// As payer: locks `lock_amount` toward the hub until `expiration` to pay `request`.
    pub fn sign_locked_transfer(
        &mut self,
        request: &SignedPaymentRequest,
        lock_amount: U256,
        expiration: u64,
        now: u64,
    ) -> Result<v1::PaymentMessage, HarnessError> {
        let lock = HashTimeLock {
            expiration,
            amount: lock_amount,
            secrethash: request.request.secrethash,
        };
        let key = self.key.clone();
        let proof = signed(
            self.channel_mut()?
                .send_locked_transfer(lock, now, H256::ZERO, &key)
                .map_err(channel_err)?,
        )?;
        Ok(mediated_message(
            &proof,
            lock_amount,
            PaymentKind::LockedTransfer {
                lock,
                payment_request: *request,
            },
        ))
    }

    /// As payer: releases its lock toward the hub with `secret`.
    pub fn sign_unlock(&mut self, secret: Secret) -> Result<v1::PaymentMessage, HarnessError> {
        let key = self.key.clone();
        let events = self
            .channel_mut()?
            .send_unlock(secret, H256::ZERO, &key)
            .map_err(channel_err)?;
        let proof = signed(events)?;
        Ok(mediated_message(
            &proof,
            U256::ZERO,
            PaymentKind::Unlock { secret },
        ))
    }

    /// As payer: takes back its expired lock.
    pub fn sign_lock_expired(
        &mut self,
        secrethash: H256,
        now: u64,
    ) -> Result<v1::PaymentMessage, HarnessError> {
        let key = self.key.clone();
        let events = self
            .channel_mut()?
            .send_lock_expired(secrethash, now, H256::ZERO, &key)
            .map_err(channel_err)?;
        let proof = signed(events)?;
        Ok(mediated_message(
            &proof,
            U256::ZERO,
            PaymentKind::LockExpired { secrethash },
        ))
    }

    /// Applies one proof the hub pushed (any kind) to the device's channel; returns the
    /// decoded message.
    pub fn apply_hub_message(
        &mut self,
        m: v1::HubPayment,
        now: u64,
    ) -> Result<HubMessage, HarnessError> {
        let msg = HubMessage::try_from(m).map_err(|e| HarnessError::protocol(e.to_string()))?;
        let ch = self.channel_mut()?;
        let proof = &msg.balance_proof;
        match &msg.kind {
            HubMessageKind::Payment => ch.handle_payment(proof, msg.amount),
            HubMessageKind::LockedTransfer { lock, .. } => {
                ch.handle_locked_transfer(proof, lock, now)
            }
            HubMessageKind::Unlock { secret } => ch.handle_unlock(proof, secret),
            HubMessageKind::LockExpired { secrethash } => {
                ch.handle_lock_expired(proof, secrethash, now)
            }
        }
        .map_err(channel_err)?;
        Ok(msg)
    }

    /// Opens `Payments.ReceivePayments` for this device's channel after `after_nonce`
    /// (while it is open, the hub counts the device online as a payee).
    pub async fn receive(
        &self,
        after_nonce: u64,
    ) -> Result<tonic::Streaming<v1::HubPayment>, HarnessError> {
        Ok(self
            .payments()
            .receive_payments(v1::ReceivePaymentsRequest {
                channel_id: u256_bytes(&self.channel_id()?),
                after_nonce,
            })
            .await?
            .into_inner())
    }

    /// Ledger time, from `Ledger.GetTime`.
    pub async fn ledger_now(&self) -> Result<u64, HarnessError> {
        Ok(self
            .ledger()
            .get_time(v1::GetTimeRequest {})
            .await?
            .into_inner()
            .now)
    }
}

/// This machine's clock in unix seconds: the embedded ledger's time on a hub on the same
/// machine (for load generation, where a `GetTime` per message would cost too much).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
