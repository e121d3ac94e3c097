//! Voltlane's Ethereum ledger backend: the Raiden TokenNetwork v0.50 contracts (with their
//! SecretRegistry and the dev CustomToken) on an EVM chain, reached over JSON-RPC with alloy.
//!
//! [`EthereumLedger`] offers the same operations as the embedded
//! [`channel_core::ledger::Ledger`] (open, deposit, withdraw, close, update, settle, register
//! secret, unlock, cooperative settle, token balance, ledger time) and reads the contracts'
//! events into [`channel_core::ledger::LedgerEventKind`] from a block cursor
//! ([`EthereumLedger::poll_events`]). Every proof it submits is built and signed by
//! `channel-core`; this crate only checks that a proof belongs to this ledger and to the right
//! signers before paying gas for it, then sends it.
//!
//! What this crate does not do: it keeps no state beyond the local transaction nonce (the
//! caller persists its event cursor), it does not decide when to close, update or settle (the
//! channel rules in `channel-core` do), and it is not wired into the hub or the SDK yet.
//!
//! Layout: [`error`], [`convert`] (core ↔ alloy types), [`bindings`] (`sol!` declarations),
//! [`artifacts`] (the contracts' JSON), [`rpc`] (retries and timeouts), `tx` (signing, nonce,
//! gas cap, receipts), [`ledger`] (the operations), [`events`] (log cursor), [`deploy`]
//! (dev-chain deployment).

pub mod artifacts;
pub mod bindings;
pub mod convert;
pub mod deploy;
pub mod error;
pub mod events;
pub mod ledger;
pub mod node;
pub mod rpc;
mod tx;

pub use deploy::{deploy, DeployParams, Deployment, DevKey};
pub use error::EthError;
pub use events::{ChainEvent, EventCursor};
pub use ledger::{EthConfig, EthereumLedger, ParticipantInfo, TxOutcome};
pub use node::Node;
pub use rpc::RetryPolicy;
