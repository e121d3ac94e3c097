//! Metered sessions end to end: cars, chargers, locks and meters as `voltlane_client`
//! devices (or raw protobuf devices where a misbehaving payee is needed) around one real hub
//! process. Exact units and money on every side, the credit window held when the payer stops
//! paying, every class of bad reading refused without payment, restarts of each side and of
//! the hub, and receipts that verify offline and refuse tampering.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ev;
mod limits;
mod refusals;
mod restarts;
mod world;
