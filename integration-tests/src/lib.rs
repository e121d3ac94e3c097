//! # integration-tests
//!
//! End-to-end checks of Voltlane against the **real** `voltlane-hub` binary, started as a
//! child process on a free loopback port, plus the `loadgen` load generator.
//!
//! - [`binary`]: finds (and if needed builds, once per process) the `voltlane-hub` binary.
//! - [`process`]: [`HubProcess`], one hub process with its own temporary data directory:
//!   start, wait until healthy, `kill -9`, restart on the same data dir and port.
//! - [`device`]: [`TestDevice`], a device speaking raw `voltlane.v1` protobuf with a
//!   `channel_core::channel::Channel` for its own state: login, mint, open, deposit, sign
//!   payments, pipelined `Payments.Pay`; the mediated messages of payer and payee
//!   (`device::mediated`) and the device's own ledger monitor (`device::ledger_monitor`).
//! - [`chain`]: [`chain::ChainHub`], a hub process settling on a dev chain (anvil with
//!   Raiden's TokenNetwork 0.50, from `voltlane_eth::devnet`), and a device's own connection
//!   to that chain.
//! - [`mediation`]: what the mediated-payment tests share: a hub with mediation settings,
//!   devices matched by auto-deposit, the hub's view of a channel as a comparable snapshot.
//! - [`operator`]: [`Operator`], the hub operator's own session (`OperatorPay`), logged in
//!   with the key the hub created in its data directory.
//! - [`settlement`]: a device's unilateral close on the ledger and the checks of what the
//!   ledger made of it (contested nonce, settled amounts, token balances).
//! - [`stats`]: latency percentiles and the raw k256 sign/verify rates for the loadgen.
//!
//! What this crate does not do: use the device SDK (`voltlane-client`; SDK-based tests are
//! separate), talk to anything but loopback, or run without a Unix `SIGKILL` (`Child::kill`).

pub mod binary;
pub mod chain;
pub mod device;
pub mod error;
pub mod mediated_load;
pub mod mediation;
pub mod operator;
pub mod process;
pub mod settlement;
pub mod stats;

pub use device::{Forward, PayAck, PaySession, TestDevice};
pub use error::HarnessError;
pub use operator::Operator;
pub use process::{HubOptions, HubProcess};

use std::future::Future;
use std::time::Duration;

/// Awaits `fut` for at most `limit`; on timeout the error names `what`.
///
/// The budget is the test's own: the hub binary under test is located (and, the first time in
/// a process after a source change, built: see [`binary`]) before the clock starts. A
/// failure to build is left for [`HubProcess::start`] to report.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = T>,
) -> Result<T, HarnessError> {
    let _ = tokio::task::spawn_blocking(binary::hub_binary).await;
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| HarnessError::Timeout {
            what: what.to_string(),
            after: limit,
        })
}

/// Polls `check` every 25 ms until it holds; panics naming `what` once `limit` has passed.
/// For tests: the condition is expected to become true.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
