//! JSON-RPC 2.0 over the HTTP transport: one request, one answer. The node's `error` object is
//! kept whole (code, message, data) so that `rpc` can tell a revert from a refusal from a
//! rate limit; everything else that goes wrong is described by [`CallError`]. No timeouts or
//! retries here (see `rpc`).

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::http::{HttpClient, HttpError};

/// A JSON-RPC error answer.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcErrorObject {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl RpcErrorObject {
    /// The revert data a node attaches to an `execution reverted` error: `data` as a hex
    /// string, or nested as `data.data` (some nodes wrap it).
    pub fn revert_data(&self) -> Option<Vec<u8>> {
        let data = self.data.as_ref()?;
        let text = data
            .as_str()
            .or_else(|| data.get("data").and_then(Value::as_str))?;
        hex::decode(text.strip_prefix("0x")?).ok()
    }
}

impl std::fmt::Display for RpcErrorObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "error {}: {}", self.code, self.message)?;
        if let Some(data) = &self.data {
            write!(f, " (data {data})")?;
        }
        Ok(())
    }
}

/// Why a call got no result.
#[derive(Debug)]
pub(crate) enum CallError {
    Http(HttpError),
    /// An HTTP error status without a JSON-RPC answer in the body.
    Status {
        status: u16,
        body: String,
    },
    /// The node answered with a JSON-RPC error.
    Node(RpcErrorObject),
    /// The answer is not a JSON-RPC answer to our request. `empty` when there was no body at
    /// all (what a connection cut off mid-answer can look like).
    Malformed {
        reason: String,
        empty: bool,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Http(e) => e.fmt(f),
            CallError::Status { status, body } => write!(f, "HTTP status {status}: {body}"),
            CallError::Node(e) => e.fmt(f),
            CallError::Malformed { reason, .. } => write!(f, "malformed answer: {reason}"),
        }
    }
}

/// A JSON-RPC client for one endpoint.
#[derive(Debug)]
pub(crate) struct JsonRpc {
    http: HttpClient,
    next_id: AtomicU64,
}

impl JsonRpc {
    pub(crate) fn new(http: HttpClient) -> Self {
        Self {
            http,
            next_id: AtomicU64::new(1),
        }
    }

    /// Calls `method` with `params` (a JSON array) and returns its `result`.
    pub(crate) async fn call(&self, method: &str, params: &Value) -> Result<Value, CallError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let answer = self
            .http
            .post_json(request.to_string().into_bytes())
            .await
            .map_err(CallError::Http)?;
        parse_answer(id, answer.status, &answer.body)
    }
}

/// The most of a non-JSON body an error message quotes.
const QUOTE_LIMIT: usize = 200;

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut end = text.len().min(QUOTE_LIMIT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// The result of the answer to request `id`, or why there is none.
pub(crate) fn parse_answer(id: u64, status: u16, body: &[u8]) -> Result<Value, CallError> {
    let ok_status = (200..300).contains(&status);
    if body.iter().all(u8::is_ascii_whitespace) {
        if !ok_status {
            return Err(CallError::Status {
                status,
                body: String::new(),
            });
        }
        return Err(CallError::Malformed {
            reason: "empty body".into(),
            empty: true,
        });
    }
    let doc: Value = match serde_json::from_slice(body) {
        Ok(doc) => doc,
        Err(e) if ok_status => {
            return Err(CallError::Malformed {
                reason: format!("not JSON ({e}): {}", quote(body)),
                empty: false,
            })
        }
        Err(_) => {
            return Err(CallError::Status {
                status,
                body: quote(body),
            })
        }
    };
    // Some nodes answer errors with a 4xx/5xx status and a JSON-RPC error body: the error
    // object says more than the status.
    if let Some(error) = doc.get("error").filter(|e| e.is_object()) {
        return Err(CallError::Node(RpcErrorObject {
            code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            data: error.get("data").cloned().filter(|d| !d.is_null()),
        }));
    }
    if !ok_status {
        return Err(CallError::Status {
            status,
            body: quote(body),
        });
    }
    match doc.get("id").and_then(Value::as_u64) {
        Some(got) if got == id => {}
        other => {
            return Err(CallError::Malformed {
                reason: format!("answer id {other:?}, expected {id}"),
                empty: false,
            })
        }
    }
    doc.get("result").cloned().ok_or(CallError::Malformed {
        reason: "neither result nor error".into(),
        empty: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_is_returned_even_when_null() {
        let v = parse_answer(7, 200, br#"{"jsonrpc":"2.0","id":7,"result":"0x7a69"}"#).unwrap();
        assert_eq!(v, json!("0x7a69"));
        let v = parse_answer(8, 200, br#"{"jsonrpc":"2.0","id":8,"result":null}"#).unwrap();
        assert_eq!(v, Value::Null);
    }

    #[test]
    fn an_error_answer_keeps_code_message_and_revert_data() {
        let body = br#"{"jsonrpc":"2.0","id":3,"error":{"code":3,"message":"execution reverted: TN/x","data":"0x08c379a0"}}"#;
        let Err(CallError::Node(e)) = parse_answer(3, 200, body) else {
            panic!("not a node error");
        };
        assert_eq!(
            (e.code, e.message.as_str()),
            (3, "execution reverted: TN/x")
        );
        assert_eq!(e.revert_data(), Some(vec![0x08, 0xc3, 0x79, 0xa0]));
        // Nested data, and an error sent with an HTTP error status.
        let body = br#"{"jsonrpc":"2.0","id":4,"error":{"code":-32000,"message":"m","data":{"data":"0x01"}}}"#;
        let Err(CallError::Node(e)) = parse_answer(4, 500, body) else {
            panic!("not a node error");
        };
        assert_eq!(e.revert_data(), Some(vec![1]));
        assert!(e.to_string().contains("-32000"), "{e}");
    }

    #[test]
    fn anything_else_is_described() {
        assert!(matches!(
            parse_answer(1, 200, b""),
            Err(CallError::Malformed { empty: true, .. })
        ));
        assert!(matches!(
            parse_answer(1, 200, b"{\"jsonrpc\":\"2.0\",\"id\":1,\"resu"),
            Err(CallError::Malformed { empty: false, .. })
        ));
        assert!(matches!(
            parse_answer(1, 502, b"<html>bad gateway</html>"),
            Err(CallError::Status { status: 502, .. })
        ));
        assert!(matches!(
            parse_answer(1, 200, br#"{"jsonrpc":"2.0","id":2,"result":1}"#),
            Err(CallError::Malformed { .. })
        ));
        assert!(matches!(
            parse_answer(1, 200, br#"{"jsonrpc":"2.0","id":1}"#),
            Err(CallError::Malformed { .. })
        ));
        let long = "é".repeat(500);
        let Err(CallError::Status { body, .. }) = parse_answer(1, 404, long.as_bytes()) else {
            panic!("not a status error");
        };
        assert!(body.len() <= QUOTE_LIMIT);
    }
}
