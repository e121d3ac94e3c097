//! The CLI's one error type, grouped by the exit code it ends the process with:
//! usage (2), rejected by the hub (3), hub unreachable (4), and local failures (1: a key
//! file, the device store, or a command the device's own channel refuses before anything is
//! sent). Its `Display` is what follows `error: ` on stderr; for the hub's answers that is
//! the gRPC status code name and the hub's reason, e.g. `NOT_FOUND: unknown channel 7`.

use tonic::Code;
use voltlane_client::ClientError;

/// Exit code of a usage error (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of a request the hub refused.
pub const EXIT_REJECTED: u8 = 3;
/// Exit code of a hub that cannot be reached (or answered UNAVAILABLE / DEADLINE_EXCEEDED).
pub const EXIT_CONNECTION: u8 = 4;
/// Exit code of a local failure.
pub const EXIT_LOCAL: u8 = 1;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line is well-formed for clap but cannot be used (a bad URL, a missing
    /// `--store`).
    #[error("{0}")]
    Usage(String),
    /// The hub answered with a gRPC status other than UNAVAILABLE / DEADLINE_EXCEEDED.
    #[error("{}: {message}", code_name(*code))]
    Rejected { code: Code, message: String },
    /// The hub did not answer: nothing listens, TLS failed, or it is unavailable.
    #[error("{}: {message}", code_name(*code))]
    Connection { code: Code, message: String },
    /// A local file, the device store, or a local refusal.
    #[error("{0}")]
    Local(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Rejected { .. } => EXIT_REJECTED,
            CliError::Connection { .. } => EXIT_CONNECTION,
            CliError::Local(_) => EXIT_LOCAL,
        }
    }

    /// A gRPC status, sorted into a rejection or a connection failure by its code.
    pub fn status(status: &tonic::Status) -> Self {
        let message = if status.message().is_empty() {
            "(no reason given)".to_string()
        } else {
            status.message().to_string()
        };
        Self::from_code(status.code(), message)
    }

    fn from_code(code: Code, message: String) -> Self {
        match code {
            Code::Unavailable | Code::DeadlineExceeded => CliError::Connection { code, message },
            _ => CliError::Rejected { code, message },
        }
    }

    /// The transport could not reach `endpoint` at all.
    pub fn unreachable(endpoint: &str, message: impl std::fmt::Display) -> Self {
        CliError::Connection {
            code: Code::Unavailable,
            message: format!("cannot connect to {endpoint}: {message}"),
        }
    }

    /// The hub did not finish the command within `--timeout-secs`.
    pub fn timed_out(limit: std::time::Duration) -> Self {
        CliError::Connection {
            code: Code::DeadlineExceeded,
            message: format!(
                "no answer from the hub within {} s (a payment signed meanwhile stays in the \
                 store and is re-sent by the next device command)",
                limit.as_secs()
            ),
        }
    }

    /// A malformed answer from the hub: a rejection of the hub by the CLI, reported as the
    /// INTERNAL status the hub's own clients would see.
    pub fn malformed(e: impl std::fmt::Display) -> Self {
        CliError::Rejected {
            code: Code::Internal,
            message: format!("malformed answer from the hub: {e}"),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Rpc { code, message, .. } => Self::from_code(code, message),
            ClientError::PaymentRejected {
                nonce,
                code,
                reason,
                ..
            } => Self::from_code(code, format!("payment with nonce {nonce}: {reason}")),
            ClientError::Connect { endpoint, message } => Self::unreachable(&endpoint, message),
            ClientError::Malformed(f) => Self::malformed(f),
            other => match other.code() {
                Some(code) => Self::from_code(code, other.to_string()),
                None => CliError::Local(other.to_string()),
            },
        }
    }
}

impl From<voltlane_proto::FieldError> for CliError {
    fn from(e: voltlane_proto::FieldError) -> Self {
        Self::malformed(e)
    }
}

pub use voltlane_proto::code_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_sort_into_rejections_and_connection_failures() {
        let e = CliError::status(&tonic::Status::failed_precondition("channel 3 is closed"));
        assert_eq!(e.exit_code(), EXIT_REJECTED);
        assert_eq!(e.to_string(), "FAILED_PRECONDITION: channel 3 is closed");
        let e = CliError::status(&tonic::Status::unavailable("down"));
        assert_eq!(e.exit_code(), EXIT_CONNECTION);
        assert_eq!(e.to_string(), "UNAVAILABLE: down");
        let e = CliError::status(&tonic::Status::deadline_exceeded(""));
        assert_eq!(e.exit_code(), EXIT_CONNECTION);
        assert_eq!(e.to_string(), "DEADLINE_EXCEEDED: (no reason given)");
    }

    #[test]
    fn sdk_errors_keep_the_hubs_code_and_local_ones_exit_1() {
        let e = CliError::from(ClientError::rpc(
            "Ledger.Mint",
            tonic::Status::invalid_argument("amount: must be at least 1"),
        ));
        assert_eq!(e.exit_code(), EXIT_REJECTED);
        assert_eq!(
            e.to_string(),
            "INVALID_ARGUMENT: amount: must be at least 1"
        );
        let e = CliError::from(ClientError::Connect {
            endpoint: "http://127.0.0.1:9".into(),
            message: "refused".into(),
        });
        assert_eq!(e.exit_code(), EXIT_CONNECTION);
        assert!(e.to_string().starts_with("UNAVAILABLE: "), "{e}");
        let e = CliError::from(ClientError::NoChannel);
        assert_eq!(e.exit_code(), EXIT_LOCAL);
    }
}
