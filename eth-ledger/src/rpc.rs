//! Talking to the node despite a flaky connection: every JSON-RPC request runs under a
//! timeout and is retried with backoff while the failure is transient (connection refused or
//! reset, timeouts, a cut-off response). An answer from the node itself (a revert, a refused
//! transaction) is never retried here: it is turned into an [`EthError`] that names the step.
//!
//! Retrying a read is harmless. Transactions are retried one level up (`tx`), by re-sending
//! the same signed bytes, so a retry can never execute an operation twice.

use std::future::Future;
use std::time::Duration;

use alloy::rpc::json_rpc::{ErrorPayload, RpcError};
use alloy::transports::{TransportError, TransportErrorKind};

use crate::error::EthError;

/// How hard to try before giving up on the node.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request (at least 1).
    pub attempts: u32,
    /// Each attempt is abandoned after this long.
    pub request_timeout: Duration,
    /// Pause after the first failure; doubles up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 8,
            request_timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// What a failed request means for the caller.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The request may not have reached the node or its answer got lost: try again.
    Transient(String),
    /// The node answered with an error.
    Node(ErrorPayload),
    /// Anything else (our own encoding bug, a malformed answer that will not improve).
    Permanent(String),
}

pub(crate) fn classify(err: TransportError) -> Failure {
    match err {
        RpcError::ErrorResp(payload) => {
            if payload.is_retry_err() {
                Failure::Transient(payload.to_string())
            } else {
                Failure::Node(payload)
            }
        }
        RpcError::Transport(kind) => match kind {
            TransportErrorKind::HttpError(ref http) if http.status < 500 && http.status != 429 => {
                Failure::Permanent(kind.to_string())
            }
            other => Failure::Transient(other.to_string()),
        },
        // An empty or cut-off body: what a dropped connection looks like mid-response.
        RpcError::NullResp => Failure::Transient("empty response".into()),
        RpcError::DeserError { err, text } if text.trim().is_empty() => {
            Failure::Transient(format!("truncated response: {err}"))
        }
        other => Failure::Permanent(other.to_string()),
    }
}

/// The revert reason in a node's error answer, if it is a revert.
pub(crate) fn revert_reason(payload: &ErrorPayload) -> Option<String> {
    if let Some(data) = payload.as_revert_data() {
        if let Some(reason) = alloy::sol_types::decode_revert_reason(&data) {
            return Some(reason);
        }
    }
    let msg = payload.message.as_ref();
    if msg.contains("revert") {
        return Some(msg.to_string());
    }
    None
}

/// A node's error answer as our error: a revert names its reason.
pub(crate) fn node_error(step: &'static str, payload: &ErrorPayload) -> EthError {
    match revert_reason(payload) {
        Some(reason) => EthError::Reverted {
            step,
            reason,
            tx_hash: None,
        },
        None => EthError::NodeRefused {
            step,
            message: payload.to_string(),
        },
    }
}

/// One attempt of a request under the policy's timeout.
pub(crate) async fn attempt<T, Fut>(policy: &RetryPolicy, fut: Fut) -> Result<T, Failure>
where
    Fut: Future<Output = Result<T, TransportError>>,
{
    match tokio::time::timeout(policy.request_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(e)),
        Err(_) => Err(Failure::Transient(format!(
            "no answer within {} ms",
            policy.request_timeout.as_millis()
        ))),
    }
}

/// Runs a read-only request, retrying transient failures.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    step: &'static str,
    mut request: F,
) -> Result<T, EthError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TransportError>>,
{
    let attempts = policy.attempts.max(1);
    let mut last = String::new();
    for n in 0..attempts {
        match attempt(policy, request()).await {
            Ok(v) => return Ok(v),
            Err(Failure::Transient(why)) => {
                last = why;
                if n + 1 < attempts {
                    tokio::time::sleep(policy.backoff(n)).await;
                }
            }
            Err(Failure::Node(payload)) => return Err(node_error(step, &payload)),
            Err(Failure::Permanent(why)) => {
                return Err(EthError::Unavailable {
                    step,
                    attempts: n + 1,
                    last: why,
                })
            }
        }
    }
    Err(EthError::Unavailable {
        step,
        attempts,
        last,
    })
}
