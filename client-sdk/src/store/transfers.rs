//! The records of mediated payments, one per secrethash:
//! - [`OutgoingTransfer`] (payer): the request we pay, our lock, and every step since (the
//!   hub's forward answer, the secret, our unlock or our lock expiry). It is also the durable
//!   "this request was paid" mark that keeps a request from being paid twice.
//! - [`PaymentRequestRecord`] (payee): a request we issued with its secret, written before
//!   the request leaves the device, and whether it was paid.
//! - [`IncomingTransfer`] (payee): a lock the hub sent us, who pays it and what we did about
//!   it (revealed, refused, paid, expired).
//!
//! These records outlive the channel they were made in (a settled channel is cleared, its
//! payment history is not); readers match `channel_id` against the current channel.

use channel_core::mediation::SignedPaymentRequest;
use channel_core::primitives::{u256_dec, Address, H256, U256};
use channel_core::{HashTimeLock, Secret, SignedBalanceProof};
use serde::{Deserialize, Serialize};

use super::{hash_key, ns, DeviceBatch, DeviceStore, StoreError};

/// A refusal as the hub sent it: a gRPC code (as its integer value) and a reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: i32,
    pub reason: String,
}

/// What the hub did with our locked transfer (from its ack).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardRecord {
    /// The hub locked `outgoing_lock` toward the payee and keeps `fee`.
    Forwarded {
        #[serde(with = "u256_dec")]
        fee: U256,
        outgoing_lock: HashTimeLock,
    },
    /// The hub holds our lock but did not forward it.
    NotForwarded(Refusal),
    /// The hub holds our lock; its answer about the forward was lost (we learned that it
    /// holds the proof from its channel state after a reconnect).
    Unknown,
}

/// Payer side: one mediated payment we make.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingTransfer {
    /// Our channel with the hub in which the lock was made.
    #[serde(with = "u256_dec")]
    pub channel_id: U256,
    /// The payee's request being paid.
    pub request: SignedPaymentRequest,
    /// Our lock toward the hub (amount = request amount + fee).
    pub lock: HashTimeLock,
    /// The fee we agreed to (the hub's quote).
    #[serde(with = "u256_dec")]
    pub fee: U256,
    /// Nonce of the proof carrying the lock.
    pub lock_nonce: u64,
    /// The hub's answer, once it acknowledged the lock.
    pub forward: Option<ForwardRecord>,
    /// The hub rejected the proof itself (it never held the lock): nonce and refusal.
    pub rejected: Option<(u64, Refusal)>,
    /// The hub reported the transfer failed (from `PayerEvents`).
    pub failure: Option<String>,
    /// The payee's secret, once the hub relayed it.
    pub secret: Option<Secret>,
    /// Nonce of our unlock proof, once signed.
    pub unlock_nonce: Option<u64>,
    /// The hub acknowledged our unlock: the payment is complete.
    pub unlock_acked: bool,
    /// Nonce of our lock-expired proof, once signed (the lock is ours again).
    pub expired_nonce: Option<u64>,
    /// Our proof just before the lock's (none when the lock's was our first): if the hub
    /// refuses the lock, the channel is taken back to it. Absent in records of older SDKs.
    #[serde(default)]
    pub previous_proof: Option<SignedBalanceProof>,
}

impl OutgoingTransfer {
    pub fn secrethash(&self) -> H256 {
        self.lock.secrethash
    }
}

/// Payee side: a request we issued and its secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequestRecord {
    pub request: SignedPaymentRequest,
    pub secret: Secret,
    /// Nonce of the hub's unlock that paid it.
    pub paid_nonce: Option<u64>,
}

impl std::fmt::Debug for PaymentRequestRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentRequestRecord")
            .field("request", &self.request)
            .field("secret", &"..")
            .field("paid_nonce", &self.paid_nonce)
            .finish()
    }
}

/// What the payee did with a lock the hub sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncomingState {
    /// Applied; not decided yet (a crash came between applying and deciding).
    Held,
    /// Not revealed, and why: the hub takes the lock back at its expiry.
    Refused { reason: String },
    /// The secret is learned and being revealed to the hub.
    Revealing,
    /// The hub has the secret (it answered the reveal); its unlock is due.
    Revealed,
    /// The hub unlocked it with this proof.
    Paid { unlock_nonce: u64 },
    /// The hub took it back.
    Expired,
}

/// Payee side: one lock the hub sent us.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncomingTransfer {
    #[serde(with = "u256_dec")]
    pub channel_id: U256,
    pub lock: HashTimeLock,
    /// The payer, as the hub names it.
    pub payer: Address,
    /// The request the payer says it pays, as the hub relayed it.
    pub payment_request: SignedPaymentRequest,
    /// Nonce of the hub's proof carrying the lock.
    pub lock_nonce: u64,
    pub state: IncomingState,
}

impl DeviceBatch {
    pub fn outgoing(&mut self, t: &OutgoingTransfer) -> Result<&mut Self, StoreError> {
        self.put(ns::OUTGOING, &hash_key(&t.secrethash()), t)
    }

    pub fn payment_request(&mut self, r: &PaymentRequestRecord) -> Result<&mut Self, StoreError> {
        self.put(ns::REQUEST, &hash_key(&r.request.request.secrethash), r)
    }

    pub fn incoming(&mut self, t: &IncomingTransfer) -> Result<&mut Self, StoreError> {
        self.put(ns::INCOMING, &hash_key(&t.lock.secrethash), t)
    }
}

impl DeviceStore {
    // ----- payer -----

    pub fn outgoing(&self, secrethash: &H256) -> Result<Option<OutgoingTransfer>, StoreError> {
        self.get(ns::OUTGOING, &hash_key(secrethash))
    }

    // ----- payee -----

    pub fn payment_request(
        &self,
        secrethash: &H256,
    ) -> Result<Option<PaymentRequestRecord>, StoreError> {
        self.get(ns::REQUEST, &hash_key(secrethash))
    }

    pub fn incoming(&self, secrethash: &H256) -> Result<Option<IncomingTransfer>, StoreError> {
        self.get(ns::INCOMING, &hash_key(secrethash))
    }
}
