//! Mediated payments on the device: paying another device through the hub, and being paid by
//! one. The rules (locks, unlocks, expiry, what the hub may forward) are `channel_core`'s; this
//! module drives them over the wire and makes every step durable before it leaves the device.
//!
//! # The secret is born at the payee
//! As in `channel_core::mediation`: the payee makes a random secret and hands out a
//! [`SignedPaymentRequest`](channel_core::mediation::SignedPaymentRequest) naming
//! `sha256(secret)`. It reveals the secret only for a lock that pays the request, so the
//! request and the secret together ([`MediatedReceipt`]) prove to anyone that the payee was
//! paid.
//!
//! # Payer (`payer`)
//! `Client::pay_request`: verify the request, refuse one this store already paid, ask the hub
//! for a quote, lock amount + fee toward the hub (a locked transfer on the one ordered
//! `Payments.Pay` stream, durable first), and read the hub's ack: not forwarded is a precise
//! error at once; forwarded waits for the outcome from `Mediation.PayerEvents` (`events`):
//! the secret (checked against the request, then our unlock goes out and its ack completes
//! the payment) or a failure. Every record change wakes the waiting call, which reads the
//! durable [`OutgoingTransfer`](crate::store::OutgoingTransfer) to decide.
//!
//! # Payee (`payee`)
//! `Client::create_payment_request` stores the secret with the request (flushed) before
//! returning it. A lock the hub pushes on `Payments.ReceivePayments` is applied, and if it
//! pays a stored, unpaid, unexpired request in full and leaves time before it expires, the
//! secret is learned by the channel (so the ledger monitor can register it if the hub never
//! unlocks) and revealed with `Mediation.RevealSecret`, retried until the hub has it or the
//! lock expires. The hub's unlock completes the payment and is published to the app.
//!
//! # Nothing rots (`janitor`)
//! Every second while the channel holds locks: our locks that expired without a known
//! secret are taken back (`lock_expired`), known secrets whose unlock never went out are
//! unlocked, and the payee's reveals interrupted by a restart are resumed. After a restart
//! the hub replays `PayerEvents`, so transfers whose secret was revealed meanwhile complete.
//!
//! Pure decisions live in `decide` and are unit-tested without a hub.

pub(crate) mod decide;
pub(crate) mod events;
pub(crate) mod janitor;
pub(crate) mod payee;
pub(crate) mod payer;
#[cfg(test)]
mod pipeline_tests;
mod receipt;
#[cfg(test)]
mod tests;

use channel_core::mediation::FeePolicy;

pub use decide::NoReveal;
pub use payer::Quote;
pub use receipt::{MediatedReceipt, ReceiptError};

/// The hub's mediation settings, from `Hub.GetInfo`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediationInfo {
    pub fees: FeePolicy,
    /// Seconds by which the hub's lock toward the payee expires before the payer's.
    pub reveal_timeout: u64,
}

/// The device's choices for mediated payments; every field defaults from the hub's
/// `reveal_timeout` when unset. Set with `Client::set_mediation_options`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediationOptions {
    lock_lifetime: Option<u64>,
    payee_reveal_margin: Option<u64>,
}

impl MediationOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Payer: how long (ledger seconds) a lock we make lives. Default: three times the hub's
    /// reveal timeout. The hub's `min_lock_expiration` is respected whatever this says.
    pub fn lock_lifetime(mut self, secs: u64) -> Self {
        self.lock_lifetime = Some(secs);
        self
    }

    /// Payee: reveal the secret only for a lock that still lives longer than this (ledger
    /// seconds). Default: half the hub's reveal timeout, at least one second.
    pub fn payee_reveal_margin(mut self, secs: u64) -> Self {
        self.payee_reveal_margin = Some(secs);
        self
    }

    /// The payer's lock lifetime given the hub's reveal timeout.
    pub fn lock_lifetime_for(&self, reveal_timeout: u64) -> u64 {
        self.lock_lifetime
            .unwrap_or_else(|| reveal_timeout.saturating_mul(3))
    }

    /// The payee's reveal margin given the hub's reveal timeout.
    pub fn reveal_margin_for(&self, reveal_timeout: u64) -> u64 {
        self.payee_reveal_margin
            .unwrap_or_else(|| (reveal_timeout / 2).max(1))
    }

    /// How long before a received lock expires the ledger monitor registers its secret
    /// itself when the hub has not unlocked it: half the reveal margin, at least two seconds
    /// (the monitor looks once a second).
    pub fn register_lead_for(&self, reveal_timeout: u64) -> u64 {
        (self.reveal_margin_for(reveal_timeout) / 2).max(2)
    }
}
