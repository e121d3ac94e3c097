//! # voltlane-client
//!
//! The device side of Voltlane: an async (tokio) driver around `channel_core`'s [`Channel`]
//! state machine that talks to a Voltlane hub over gRPC (`voltlane.v1`).
//!
//! - [`Client::connect`] reads the hub's info, authenticates with the device key (challenge
//!   signed over `voltlane_proto::auth::auth_digest`) and re-authenticates transparently when
//!   the hub forgets its sessions.
//! - [`Client::open_channel`], [`Client::pay`] (resolves once the hub acknowledged, pipelined on
//!   one stream, re-sent after reconnects and restarts), [`Client::balances`].
//! - Mediated payments between devices through the hub (hash-time-locked transfers,
//!   [`mediation`]): a payee issues [`Client::create_payment_request`] and hears of payments on
//!   [`Client::mediated_payments`]; a payer calls [`Client::pay_request`] and gets a
//!   [`MediatedReceipt`] that proves the payment to anyone. Expired locks are taken back by
//!   themselves, and a lock the hub owes the device is claimed on the ledger if the hub
//!   withholds its unlock.
//! - Metered sessions ([`session`]): a payee sells energy, access time or readings as it
//!   delivers them ([`Client::offer_session`]), a payer pays for each signed reading
//!   ([`Client::accept_session`]), and both sign a receipt that verifies offline.
//! - The ways out without trusting the hub: [`Client::withdraw`], [`Client::cooperative_close`],
//!   [`Client::close`], [`Client::settle`]; a ledger watcher contests a stale close by the hub.
//! - The ledger is either the hub's embedded one (through its `Ledger` service) or, when the
//!   hub announces Ethereum, the chain itself over the device's own RPC URL
//!   ([`ConnectOptions::chain_access`], [`ledger`]): the device follows the contract's
//!   confirmed events and sends its transactions from its own key.
//! - [`DeviceStore`] (sled at a path the app chooses, or in memory) keeps the key, the channel,
//!   the unacknowledged proofs, the hub's proofs, the last ledger event and the records of
//!   mediated payments (requests with their secrets, transfers paid and received), in
//!   versioned records.
//! - [`Client::export_proofs_json`] for auditors and other Raiden-compatible ledgers.
//!
//! What this crate does not do: no protocol rules of its own (they live in `channel-core`), no
//! routes over more than one hub, no payer-born secrets (a payment needs the payee's request),
//! one channel per store.
//!
//! [`Channel`]: channel_core::channel::Channel

mod backoff;
mod client;
mod error;
pub mod export;
pub mod ledger;
pub mod mediation;
mod ops;
mod payments;
mod receiver;
mod restore;
mod rpc;
pub mod session;
mod shared;
pub mod store;
pub mod sync;
mod types;
mod watcher;

pub use client::Client;
pub use error::{ClientError, HubReason};
pub use export::{ExportedProof, ExportedProofs};
pub use ledger::{ChainAccess, DeviceLedger};
pub use mediation::{MediatedReceipt, MediationInfo, MediationOptions, Quote, ReceiptError};
pub use ops::WITHDRAW_VALIDITY;
pub use restore::restore_proofs;
pub use rpc::{ConnectOptions, Wire, STREAMING_METHODS};
pub use store::{DeviceStore, StoreError};
pub use types::{
    Balances, LinkState, MediatedPayment, PaymentReceipt, ReceivedPayment, Settlement,
};
pub use voltlane_store::keyfile::{self, KeySource, Passphrase};

pub use channel_core::mediation::SignedPaymentRequest;

pub use channel_core::primitives::{Address, U256};
pub use channel_core::LocalSigner;
