//! Plain values the SDK hands to the application.

use channel_core::primitives::{Address, H256, U256};
use channel_core::SignedBalanceProof;

/// A payment the hub acknowledged (it is durable at the hub).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaymentReceipt {
    /// Nonce of the balance proof that carried the payment.
    pub nonce: u64,
    pub amount: U256,
    /// Total the device has sent the hub in this channel, this payment included.
    pub transferred_amount: U256,
}

/// A payment the hub made to the device, already checked and stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivedPayment {
    pub channel_id: U256,
    pub amount: U256,
    pub proof: SignedBalanceProof,
}

/// The channel as the device sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balances {
    pub channel_id: U256,
    /// `open`, `closing`, `closed` or `settled`.
    pub phase: &'static str,
    pub device: Address,
    pub hub: Address,
    /// What the device owns in the channel now, its pending locks toward the hub included.
    pub ours: U256,
    /// What the hub owns in the channel now, its pending locks toward the device included.
    pub hubs: U256,
    /// Of `ours`, what is held in pending locks toward the hub (mediated payments under way,
    /// or failed ones waiting for their expiry): not spendable until unlocked or expired.
    pub our_locked: U256,
    /// Of `hubs`, what the hub holds in pending locks toward the device (incoming mediated
    /// payments): the device's once the hub unlocks them.
    pub hub_locked: U256,
    /// What the device can pay or lock now: `ours` minus `our_locked` minus a pending withdraw.
    pub our_spendable: U256,
    pub our_deposit: U256,
    pub hub_deposit: U256,
    pub our_withdraw: U256,
    pub hub_withdraw: U256,
    /// Total the device has sent the hub.
    pub our_transferred: U256,
    /// Total the hub has sent the device.
    pub hub_transferred: U256,
    /// Nonce of the latest proof the device signed.
    pub our_nonce: u64,
    /// Nonce of the latest proof the hub signed that the device holds.
    pub hub_nonce: u64,
    /// Payments signed but not yet acknowledged by the hub.
    pub unacked: usize,
}

/// What the ledger paid each side when the channel settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub channel_id: U256,
    pub device_amount: U256,
    pub hub_amount: U256,
}

/// A mediated payment the device received: the hub unlocked a lock it sent for one of the
/// device's payment requests. Published once the unlock is checked and durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediatedPayment {
    pub channel_id: U256,
    /// The paying device, as the hub named it.
    pub payer: Address,
    /// The payment id of the request that was paid.
    pub payment_id: u64,
    /// What the device received (the lock's amount).
    pub amount: U256,
    pub secrethash: H256,
    /// Nonce of the hub's unlock proof.
    pub nonce: u64,
}

/// What the device saw of its connection to the hub ([`crate::Client::link`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkState {
    /// Whether the hub answered since the last transport failure (at connect: `true`).
    pub up: bool,
    /// Calls and streams that failed below gRPC so far: the connection was refused, reset or
    /// closed because a keepalive ping went unanswered. (A missed call deadline is not one.)
    pub failures: u64,
}
