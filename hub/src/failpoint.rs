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

/// Aborts the process if fail point `name` is active.
pub fn hit(name: &str) {
    if active().iter().any(|n| n == name) {
        eprintln!("fail point {name} hit: aborting");
        std::process::abort();
    }
}
