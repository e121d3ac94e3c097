//! Plain values the SDK hands to the application.

use channel_core::primitives::{Address, U256};
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
    /// What the device owns in the channel now.
    pub ours: U256,
    /// What the hub owns in the channel now.
    pub hubs: U256,
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
