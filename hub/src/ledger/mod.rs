//! The embedded token-network ledger as the hub drives it.
//!
//! - [`handle::LedgerHandle`]: `channel_core::ledger::Ledger` behind a mutex, fed with
//!   wall-clock `now`, persisted (touched records + event records, one atomic batch) and
//!   durable before any caller hears of a change; durable events are broadcast in order.
//! - [`records`]: the ledger's records in the store, loading them, converting old snapshots.
//! - [`chain::ChainLedger`]: the ledger when the hub settles on an EVM chain: a mirror fed by
//!   confirmed contract events (persisted with the event cursor, then published), writes sent
//!   as transactions with the operator key.
//! - [`seam::HubLedger`]: the one interface the hub's drivers use, over either ledger.
//! - [`service::LedgerService`]: the `voltlane.v1.Ledger` gRPC service (thin handlers).

pub mod chain;
pub mod handle;
pub mod records;
#[cfg(test)]
mod scale_tests;
pub mod seam;
pub mod service;

pub use handle::LedgerHandle;
pub use seam::{ChainFacts, Executed, HubLedger, LedgerFacts, LedgerKind};
pub use service::LedgerService;
