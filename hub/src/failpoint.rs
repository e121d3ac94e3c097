//! Test-only fail points: named places where the hub can be made to die on purpose, so that
//! crash tests hit the exact moment they mean (e.g. "a close was applied, the contest not yet
//! sent") instead of racing a `kill -9` against the scheduler, plus one misbehaviour switch
//! for tests of the payee's protection.
//!
//! **Compiled only with the cargo feature `failpoints`**, which only the test harness enables
//! (`integration-tests` builds the separate binary `voltlane-hub-failpoints` with it). Without
//! the feature this module holds nothing but the `fail_point!` macro, which
//! then expands to nothing: no names, no environment lookup, no code at the
//! call sites. `hub/tests/no_failpoints.rs` checks the `voltlane-hub` binary for that.
//!
//! With the feature, set `VOLTLANE_FAILPOINTS` to a comma-separated list of names; when the
//! hub reaches one of them it logs the name and aborts the process (as abruptly as `kill -9`:
//! no destructors, no flush beyond what was already made durable).

/// Aborts the process at fail point `$name` (a constant of this module) if it is active;
/// `fail_point!(NAME if cond)` evaluates `cond` only in builds with the feature. Without the
/// `failpoints` feature both forms expand to nothing.
macro_rules! fail_point {
    ($name:ident) => {
        #[cfg(feature = "failpoints")]
        $crate::failpoint::hit($crate::failpoint::$name);
    };
    ($name:ident if $cond:expr) => {
        #[cfg(feature = "failpoints")]
        if $cond {
            $crate::failpoint::hit($crate::failpoint::$name);
        }
    };
}
pub(crate) use fail_point;

#[cfg(feature = "failpoints")]
pub use points::*;

#[cfg(feature = "failpoints")]
mod points {
    use std::sync::OnceLock;

    /// Environment variable listing the active fail points.
    pub const ENV: &str = "VOLTLANE_FAILPOINTS";

    /// After a ledger `ChannelClosed` by a device has been applied to the book and recorded
    /// durably as applied, before anything contests it.
    pub const AFTER_DEVICE_CLOSE_APPLIED: &str = "after_device_close_applied";

    /// The payer's lock, its forward (outgoing lock) and the record are durable (one write),
    /// before the forward is sent to the payee.
    pub const AFTER_FORWARD_DURABLE: &str = "after_forward_durable";
    /// The hub's unlock toward the payee and the secret in the payer's channel are durable
    /// (one write), before the unlock is sent and the payer told.
    pub const AFTER_OUTGOING_UNLOCKED: &str = "after_outgoing_unlocked";
    /// The payer's unlock is durable, before it is acknowledged.
    pub const AFTER_INCOMING_UNLOCKED: &str = "after_incoming_unlocked";

    /// Not a crash but misbehaviour, for tests of the payee's protection: the hub learns the
    /// payee's secret but never unlocks toward it (the payee must claim on the ledger).
    pub const HUB_WITHHOLDS_UNLOCK: &str = "hub_withholds_unlock";

    /// The crash points of a mediated payment, for tests that iterate over its steps.
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
        if is_active(name) {
            eprintln!("fail point {name} hit: aborting");
            std::process::abort();
        }
    }
}
