//! The one error type of the harness, sorted by what the caller can do about it.

use std::time::Duration;

/// Why a harness operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The hub binary could not be found or built; fix the build and rerun.
    #[error("hub binary: {0}")]
    Binary(String),
    /// Local I/O (temp dirs, log files, spawning).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The hub did not become healthy, or an expected state did not show up, in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// The hub process exited while we expected it to run.
    #[error("hub exited unexpectedly ({status}); log tail:\n{log_tail}")]
    HubExited { status: String, log_tail: String },
    /// Could not connect to the hub.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A call was answered with a gRPC error status.
    #[error("grpc {}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The hub answered something that does not fit the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The dev chain (anvil, the contracts, a transaction) failed.
    #[error("chain: {0}")]
    Chain(#[from] voltlane_eth::EthError),
    /// channel-core refused a local operation (signing, balance).
    #[error("channel: {0}")]
    Channel(String),
}

impl HarnessError {
    pub(crate) fn protocol(what: impl Into<String>) -> Self {
        Self::Protocol(what.into())
    }
}
