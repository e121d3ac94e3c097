//! Test-only fail points: named places where the hub can be made to die on purpose, so that
//! crash tests hit the exact moment they mean (e.g. "a close was applied, the contest not yet
//! sent") instead of racing a `kill -9` against the scheduler.
//!
//! Set `VOLTLANE_FAILPOINTS` to a comma-separated list of names; when the hub reaches one of
//! them it logs the name and aborts the process (as abruptly as `kill -9`: no destructors, no
//! flush beyond what was already made durable). Unset in production, a fail point costs one
//! load of a cached flag.

use std::sync::OnceLock;

/// Environment variable listing the active fail points.
pub const ENV: &str = "VOLTLANE_FAILPOINTS";

/// After a ledger `ChannelClosed` by a device has been applied to the book and recorded
/// durably as applied, before anything contests it.
pub const AFTER_DEVICE_CLOSE_APPLIED: &str = "after_device_close_applied";

/// The payer's lock, its forward (outgoing lock) and the record are durable (one write),
/// before the forward is sent to the payee.
pub const AFTER_FORWARD_DURABLE: &str = "after_forward_durable";
/// The hub's unlock toward the payee and the secret in the payer's channel are durable (one
/// write), before the unlock is sent and the payer told.
pub const AFTER_OUTGOING_UNLOCKED: &str = "after_outgoing_unlocked";
/// The payer's unlock is durable, before it is acknowledged.
pub const AFTER_INCOMING_UNLOCKED: &str = "after_incoming_unlocked";

/// Not a crash but misbehaviour, for tests of the payee's protection: the hub learns the
/// payee's secret but never unlocks toward it (the payee must claim on the ledger).
pub const HUB_WITHHOLDS_UNLOCK: &str = "hub_withholds_unlock";

/// Every fail point, for tests that iterate over the protocol's steps.
pub const MEDIATION_STEPS: &[&str] = &[
    AFTER_FORWARD_DURABLE,
    AFTER_OUTGOING_UNLOCKED,
    AFTER_INCOMING_UNLOCKED,
];

fn active() -> &'static [String] {
    static ACTIVE: OnceLock<Vec<String>> = OnceLock::new();
    ACTIVE.get_or_init(|| {
        std::env::var(ENV)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Whether fail point `name` is active (for the misbehaviour points, which do not abort).
pub fn is_active(name: &str) -> bool {
    active().iter().any(|n| n == name)
}

/// Aborts the process if fail point `name` is active.
pub fn hit(name: &str) {
    if active().iter().any(|n| n == name) {
        eprintln!("fail point {name} hit: aborting");
        std::process::abort();
    }
}
