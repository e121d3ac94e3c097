//! Mediated payments (a device pays another device through the hub), end to end against the
//! real hub binary, in one test binary (one link instead of eight):
//!
//! - `wire`: the protocol message by message with raw protobuf devices;
//! - `sdk`: the device SDK on both sides: 1,000 payments, payee offline, payer restart, a hub
//!   that withholds the unlock;
//! - `faults`, `replays`: refusals and replays with their precise statuses, nothing changed;
//! - `expiry`: a payee that never reveals, everything back exactly;
//! - `crash`: `kill -9` of the hub at every step of the protocol;
//! - `disputes`: a payer or a hub withholding its unlock loses on the ledger;
//! - `chain`: the payer withholding its unlock, on a real chain (anvil).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chain;
mod checks;
mod crash;
mod disputes;
mod expiry;
mod faults;
mod replays;
mod sdk;
mod wire;
