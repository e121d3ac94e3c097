//! Talking to the node despite a flaky connection: every JSON-RPC request runs under a
//! timeout and is retried with backoff while the failure is transient (connection refused or
//! reset, timeouts, a cut-off response). An answer from the node itself (a revert, a refused
//! transaction) is never retried here: it is turned into an [`EthError`] that names the step.
//!
//! Retrying a read is harmless. Transactions are retried one level up (`tx`), by re-sending
//! the same signed bytes, so a retry can never execute an operation twice.

use std::future::Future;
use std::time::Duration;

use crate::abi::decode_revert;
use crate::error::EthError;
use crate::http::HttpError;
use crate::jsonrpc::{CallError, RpcErrorObject};

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
    Node(RpcErrorObject),
    /// Anything else (our own encoding bug, a malformed answer that will not improve).
    Permanent(String),
}

/// Node errors that mean "not now" rather than "no": rate limits and a node that is behind.
fn is_retry_error(e: &RpcErrorObject) -> bool {
    let msg = e.message.to_lowercase();
    matches!(e.code, 429 | -32005)
        || msg.contains("rate limit")
        || msg.contains("too many requests")
        || msg.contains("header not found")
}

pub(crate) fn classify(err: CallError) -> Failure {
    match err {
        CallError::Http(HttpError::TooLarge) => Failure::Permanent(HttpError::TooLarge.to_string()),
        CallError::Http(e) => Failure::Transient(e.to_string()),
        CallError::Status { status, .. } if status == 429 || status >= 500 => {
            Failure::Transient(err.to_string())
        }
        CallError::Status { .. } => Failure::Permanent(err.to_string()),
        CallError::Node(e) if is_retry_error(&e) => Failure::Transient(e.to_string()),
        CallError::Node(e) => Failure::Node(e),
        // An empty body: what a dropped connection looks like mid-response.
        CallError::Malformed { empty: true, .. } => Failure::Transient(err.to_string()),
        CallError::Malformed { .. } => Failure::Permanent(err.to_string()),
    }
}

/// The revert reason in a node's error answer, if it is a revert.
pub(crate) fn revert_reason(e: &RpcErrorObject) -> Option<String> {
    if let Some(reason) = e.revert_data().as_deref().and_then(decode_revert) {
        return Some(reason);
    }
    if e.message.contains("revert") {
        return Some(e.message.clone());
    }
    None
}

/// A node's error answer as our error: a revert names its reason.
pub(crate) fn node_error(step: &'static str, e: &RpcErrorObject) -> EthError {
    match revert_reason(e) {
        Some(reason) => EthError::Reverted {
            step,
            reason,
            tx_hash: None,
        },
        None => EthError::NodeRefused {
            step,
            message: e.to_string(),
        },
    }
}

/// One attempt of a request under the policy's timeout.
pub(crate) async fn attempt<T, Fut>(policy: &RetryPolicy, fut: Fut) -> Result<T, Failure>
where
    Fut: Future<Output = Result<T, CallError>>,
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
    Fut: Future<Output = Result<T, CallError>>,
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
            Err(Failure::Node(e)) => return Err(node_error(step, &e)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{Value, ERROR_STRING};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn node(code: i64, message: &str, data: Option<serde_json::Value>) -> RpcErrorObject {
        RpcErrorObject {
            code,
            message: message.into(),
            data,
        }
    }

    #[test]
    fn lost_connections_and_overload_are_transient_answers_are_not() {
        let transient = [
            CallError::Http(HttpError::Connect("refused".into())),
            CallError::Http(HttpError::Broken("reset".into())),
            CallError::Status {
                status: 503,
                body: String::new(),
            },
            CallError::Status {
                status: 429,
                body: String::new(),
            },
            CallError::Malformed {
                reason: "empty body".into(),
                empty: true,
            },
            CallError::Node(node(-32005, "limit exceeded", None)),
            CallError::Node(node(-32000, "header not found", None)),
        ];
        for e in transient {
            let text = e.to_string();
            assert!(matches!(classify(e), Failure::Transient(_)), "{text}");
        }
        let permanent = [
            CallError::Status {
                status: 404,
                body: "not found".into(),
            },
            CallError::Http(HttpError::TooLarge),
            CallError::Malformed {
                reason: "not JSON".into(),
                empty: false,
            },
        ];
        for e in permanent {
            let text = e.to_string();
            assert!(matches!(classify(e), Failure::Permanent(_)), "{text}");
        }
        let refused = CallError::Node(node(-32000, "nonce too low", None));
        assert!(matches!(classify(refused), Failure::Node(_)));
    }

    #[test]
    fn a_revert_is_named_by_its_reason() {
        let data = ERROR_STRING
            .encode_call(&[Value::String("TN/open: channel exists".into())])
            .unwrap();
        let e = node(
            3,
            "execution reverted",
            Some(serde_json::json!(format!("0x{}", hex::encode(data)))),
        );
        let err = node_error("openChannel", &e);
        assert!(
            matches!(&err, EthError::Reverted { reason, .. } if reason == "TN/open: channel exists"),
            "{err:?}"
        );
        // Without data, a message that says "revert" is the reason; otherwise a refusal.
        let err = node_error("x", &node(-32000, "execution reverted", None));
        assert!(matches!(err, EthError::Reverted { .. }), "{err:?}");
        let err = node_error("x", &node(-32601, "method not found", None));
        assert!(matches!(err, EthError::NodeRefused { .. }), "{err:?}");
        assert!(err.to_string().contains("method not found"), "{err}");
    }

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            request_timeout: std::time::Duration::from_millis(200),
            initial_backoff: std::time::Duration::from_millis(1),
            max_backoff: std::time::Duration::from_millis(2),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_budget() {
        let calls = AtomicU32::new(0);
        let result: Result<u32, EthError> = with_retry(&quick(), "eth_blockNumber", || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(CallError::Http(HttpError::Broken("reset".into())))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);

        calls.store(0, Ordering::SeqCst);
        let err = with_retry(&quick(), "eth_blockNumber", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(CallError::Http(HttpError::Connect("refused".into()))) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(
            matches!(&err, EthError::Unavailable { attempts: 3, last, .. } if last.contains("refused")),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_node_answer_is_not_retried() {
        let calls = AtomicU32::new(0);
        let err = with_retry(&quick(), "eth_call", || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(CallError::Node(node(-32000, "execution reverted", None))) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            matches!(
                err,
                EthError::Reverted {
                    step: "eth_call",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_request_without_an_answer_times_out_and_is_retried() {
        let calls = AtomicU32::new(0);
        let err = with_retry(&quick(), "eth_chainId", || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<Result<(), CallError>>()
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(err.to_string().contains("no answer within 200 ms"), "{err}");
    }
}
