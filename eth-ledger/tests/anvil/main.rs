//! Voltlane's Ethereum ledger against the real Raiden 0.50 contracts on anvil. Every test
//! starts its own anvil on a free loopback port and deploys fresh contracts, so tests are
//! independent and can run in parallel. One test binary, so the crate is linked once.
//! anvil and `contracts.json` come from the repository's `.devchain/` (`scripts/devchain.sh
//! install`); without them every test fails and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bad_input;
mod bindings;
mod common;
mod cooperative;
mod dispute;
mod events;
mod locks;
mod rpc_failure;
mod transactions;
mod twin;
mod withdraw;
