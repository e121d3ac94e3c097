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
//! from it after a hub restart, or after its session expired.
//!
//! What one key may hold is bounded: a payee opens sessions only with an open channel with
//! the hub holding a deposit of its own, at most `--max-sessions-per-key` of them (default
//! [`relay::MAX_SESSIONS_PER_KEY`]). A session unused for `--session-idle-timeout-secs`
//! (default [`relay::IDLE_TIMEOUT`]) expires, however often it is reopened or watched: only
//! acceptance, new readings and bills and receipt signatures count as use. An expired session
//! is dropped when it is next looked up or when room is needed, and its watch streams end.

pub mod relay;
#[cfg(test)]
mod relay_tests;
pub mod service;

pub use relay::SessionRelay;
