//! Metered sessions between devices: the hub relays, it does not meter and holds no money
//! of a session (the payments are ordinary mediated payments of bills).
//!
//! - [`relay`]: [`SessionRelay`], the in-memory mailbox of open sessions: who offered, who
//!   accepted, the first and latest publication, the receipt signatures, who is watching.
//!   Every message is checked with `channel_core::session` rules before it is passed on.
//! - [`service`]: `voltlane.v1.Sessions`, thin handlers over the relay.
//!
//! Nothing here is persisted on purpose: the state that carries money is the devices' (their
//! session records and channels), and each side reopens, re-accepts, republishes and re-signs
//! from it after a hub restart. Relayed sessions nobody has watched for
//! [`relay::IDLE_TIMEOUT`] are dropped when room is needed.

pub mod relay;
#[cfg(test)]
mod relay_tests;
pub mod service;

pub use relay::SessionRelay;
