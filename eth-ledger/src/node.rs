//! The node: typed JSON-RPC methods (contract calls, blocks, logs, fees, receipts and anvil's
//! dev methods), each retried under the [`RetryPolicy`]. Owns the JSON-RPC client; the write
//! side (`tx`) uses its single-attempt methods to control retries itself.

use std::sync::Arc;

use channel_core::{Address, H256, U256};
use serde_json::{json, Value};

use crate::abi::{Decoded, Function, Value as AbiValue};
use crate::error::EthError;
use crate::http::{Endpoint, HttpClient};
use crate::jsonrpc::JsonRpc;
use crate::rpc::{attempt, with_retry, Failure, RetryPolicy};
use crate::wire::{self, Log, LogFilter, Receipt};

/// A JSON-RPC endpoint (`http://` only) with a retry policy. Clones share the connection.
#[derive(Clone, Debug)]
pub struct Node {
    rpc: Arc<JsonRpc>,
    pub(crate) policy: RetryPolicy,
}

/// An answer that does not have the expected shape.
fn malformed(step: &'static str, what: &'static str) -> impl Fn(String) -> EthError {
    move |reason| EthError::Decode { step, what, reason }
}

impl Node {
    /// Checks the URL; connects lazily on the first request. `https://` URLs are refused
    /// ([`EthError::HttpsNotSupported`]).
    pub fn connect(rpc_url: &str, policy: RetryPolicy) -> Result<Self, EthError> {
        let endpoint = Endpoint::parse(rpc_url)?;
        Ok(Self {
            rpc: Arc::new(JsonRpc::new(HttpClient::new(endpoint))),
            policy,
        })
    }

    /// One attempt of `method` under the policy's timeout, failure classified.
    pub(crate) async fn request_once(&self, method: &str, params: Value) -> Result<Value, Failure> {
        attempt(&self.policy, self.rpc.call(method, &params)).await
    }

    /// `method`, retried while the failure is transient.
    pub(crate) async fn request(
        &self,
        step: &'static str,
        method: &str,
        params: Value,
    ) -> Result<Value, EthError> {
        with_retry(&self.policy, step, || self.rpc.call(method, &params)).await
    }

    async fn request_u64(&self, method: &'static str, params: Value) -> Result<u64, EthError> {
        let v = self.request(method, method, params).await?;
        wire::parse_u64(&v, "result").map_err(malformed(method, "quantity"))
    }

    pub async fn chain_id(&self) -> Result<u64, EthError> {
        self.request_u64("eth_chainId", json!([])).await
    }

    pub async fn block_number(&self) -> Result<u64, EthError> {
        self.request_u64("eth_blockNumber", json!([])).await
    }

    /// Block `number` (or the latest) without its transactions.
    async fn block(&self, number: Option<u64>) -> Result<Value, EthError> {
        const STEP: &str = "eth_getBlockByNumber";
        let tag = number.map_or_else(|| "latest".to_string(), wire::quantity_u64);
        let block = self.request(STEP, STEP, json!([tag, false])).await?;
        if block.is_null() {
            return Err(EthError::Decode {
                step: STEP,
                what: "block",
                reason: format!("node has no block {tag}"),
            });
        }
        Ok(block)
    }

    /// Timestamp (seconds) of block `number`, or of the latest block.
    pub async fn block_timestamp(&self, number: Option<u64>) -> Result<u64, EthError> {
        let block = self.block(number).await?;
        wire::parse_u64(&block["timestamp"], "timestamp")
            .map_err(malformed("eth_getBlockByNumber", "block"))
    }

    /// The latest block's base fee (EIP-1559).
    pub async fn base_fee(&self) -> Result<U256, EthError> {
        let block = self.block(None).await?;
        if block.get("baseFeePerGas").is_none_or(Value::is_null) {
            return Err(EthError::Config(
                "the node's latest block has no baseFeePerGas: the chain does not support \
                 EIP-1559 transactions"
                    .into(),
            ));
        }
        wire::parse_u256(&block["baseFeePerGas"], "baseFeePerGas")
            .map_err(malformed("eth_getBlockByNumber", "block"))
    }

    /// The node's suggested tip, or `None` when it does not offer `eth_maxPriorityFeePerGas`.
    pub async fn max_priority_fee(&self) -> Result<Option<U256>, EthError> {
        const STEP: &str = "eth_maxPriorityFeePerGas";
        match self.request(STEP, STEP, json!([])).await {
            Ok(v) => wire::parse_u256(&v, "result")
                .map(Some)
                .map_err(malformed(STEP, "quantity")),
            Err(EthError::NodeRefused { .. } | EthError::Reverted { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Calls a view function of `to` and decodes its return value.
    pub async fn call(
        &self,
        step: &'static str,
        to: Address,
        function: &Function,
        args: &[AbiValue],
    ) -> Result<Decoded, EthError> {
        let input = function
            .encode_call(args)
            .map_err(|e| EthError::InvalidInput {
                step,
                reason: format!("encoding {}: {e}", function.signature()),
            })?;
        let out = self.call_data(step, to, &input).await?;
        function.decode_output(&out).map_err(|e| EthError::Decode {
            step,
            what: "return value",
            reason: format!("{}: {e}", function.signature()),
        })
    }

    /// `eth_call` with raw call data at the latest block.
    pub async fn call_data(
        &self,
        step: &'static str,
        to: Address,
        input: &[u8],
    ) -> Result<Vec<u8>, EthError> {
        let request = wire::call_request(None, Some(to), input);
        let out = self
            .request(step, "eth_call", json!([request, "latest"]))
            .await?;
        wire::parse_data(&out, "result").map_err(malformed(step, "return value"))
    }

    /// Gas that `input` sent from `from` to `to` (or creating a contract) would use.
    pub async fn estimate_gas(
        &self,
        step: &'static str,
        from: Address,
        to: Option<Address>,
        input: &[u8],
    ) -> Result<u64, EthError> {
        let request = wire::call_request(Some(from), to, input);
        let v = self
            .request(step, "eth_estimateGas", json!([request]))
            .await?;
        wire::parse_u64(&v, "result").map_err(malformed(step, "gas estimate"))
    }

    pub async fn logs(&self, filter: &LogFilter) -> Result<Vec<Log>, EthError> {
        const STEP: &str = "eth_getLogs";
        let v = self.request(STEP, STEP, json!([filter.to_json()])).await?;
        parse_logs(STEP, &v)
    }

    /// As [`Node::logs`], asked once: a refusal comes back at once, also one that would
    /// count as "try again" (hosted providers answer a query over their block-range cap with
    /// a "limit exceeded" error).
    pub(crate) async fn logs_once(&self, filter: &LogFilter) -> Result<Vec<Log>, EthError> {
        const STEP: &str = "eth_getLogs";
        let once = RetryPolicy {
            attempts: 1,
            ..self.policy.clone()
        };
        let params = json!([filter.to_json()]);
        let v = with_retry(&once, STEP, || self.rpc.call(STEP, &params)).await?;
        parse_logs(STEP, &v)
    }

    /// Number of transactions `who` sent that are mined (its next nonce).
    pub async fn transaction_count(&self, who: Address) -> Result<u64, EthError> {
        self.request_u64(
            "eth_getTransactionCount",
            json!([wire::data_hex(&who.0), "latest"]),
        )
        .await
    }

    /// `who`'s next nonce counting transactions the node holds but has not mined.
    pub(crate) async fn pending_transaction_count(&self, who: Address) -> Result<u64, EthError> {
        self.request_u64(
            "eth_getTransactionCount",
            json!([wire::data_hex(&who.0), "pending"]),
        )
        .await
    }

    pub async fn eth_balance(&self, who: Address) -> Result<U256, EthError> {
        const STEP: &str = "eth_getBalance";
        let v = self
            .request(STEP, STEP, json!([wire::data_hex(&who.0), "latest"]))
            .await?;
        wire::parse_u256(&v, "result").map_err(malformed(STEP, "balance"))
    }

    /// The receipt of `hash`, one attempt: `None` while it is not mined.
    pub(crate) async fn receipt_once(&self, hash: &H256) -> Result<Option<Receipt>, Failure> {
        let v = self
            .request_once("eth_getTransactionReceipt", json!([hash.to_string()]))
            .await?;
        if v.is_null() {
            return Ok(None);
        }
        Receipt::from_json(&v)
            .map(Some)
            .map_err(|e| Failure::Permanent(format!("receipt of {hash}: {e}")))
    }

    /// A dev-node method (anvil's `evm_*` / `anvil_*`), with JSON parameters.
    pub async fn dev_request(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<Value, EthError> {
        self.request(method, method, params).await
    }

    /// Moves the dev chain's clock forward by `seconds` and mines a block.
    pub async fn increase_time(&self, seconds: u64) -> Result<(), EthError> {
        self.dev_request("evm_increaseTime", json!([seconds]))
            .await?;
        self.mine(1).await
    }

    /// Mines `blocks` empty blocks on the dev chain.
    pub async fn mine(&self, blocks: u64) -> Result<(), EthError> {
        for _ in 0..blocks {
            self.dev_request("evm_mine", json!([])).await?;
        }
        Ok(())
    }
}

fn parse_logs(step: &'static str, v: &Value) -> Result<Vec<Log>, EthError> {
    v.as_array()
        .ok_or_else(|| format!("expected an array, got {v}"))
        .and_then(|logs| logs.iter().map(Log::from_json).collect())
        .map_err(malformed(step, "logs"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    #[test]
    fn https_urls_are_refused_up_front() {
        let err = Node::connect("https://rpc.example", RetryPolicy::default()).unwrap_err();
        assert!(matches!(err, EthError::HttpsNotSupported { .. }), "{err:?}");
        assert!(Node::connect("http://127.0.0.1:8545", RetryPolicy::default()).is_ok());
    }

    /// What the fake node answers to a method: a result or an error object.
    type Handler = fn(&str) -> Result<Value, Value>;

    /// Reads one HTTP request (headers, then a body of content-length bytes) off `socket`.
    async fn read_request(socket: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Value> {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())?;
                if buf.len() >= end + 4 + len {
                    let body: Vec<u8> = buf.drain(..end + 4 + len).skip(end + 4).collect();
                    return serde_json::from_slice(&body).ok();
                }
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A loopback JSON-RPC node that answers every request with `handler`.
    async fn fake_node(handler: Handler) -> Node {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    while let Some(req) = read_request(&mut socket, &mut buf).await {
                        let method = req["method"].as_str().unwrap_or("");
                        let mut answer = json!({"jsonrpc": "2.0", "id": req["id"]});
                        match handler(method) {
                            Ok(result) => answer["result"] = result,
                            Err(error) => answer["error"] = error,
                        }
                        let body = answer.to_string();
                        let http = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(http.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let policy = RetryPolicy {
            attempts: 2,
            request_timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        Node::connect(&url, policy).unwrap()
    }

    fn method_not_found(method: &str) -> Value {
        json!({"code": -32601, "message": format!("the method {method} does not exist")})
    }

    #[tokio::test]
    async fn a_node_without_a_tip_suggestion_gives_none_and_one_with_it_its_value() {
        let lacking = fake_node(|m| match m {
            "eth_maxPriorityFeePerGas" => Err(method_not_found(m)),
            _ => Ok(json!("0x1")),
        })
        .await;
        assert_eq!(lacking.max_priority_fee().await.unwrap(), None);

        let suggesting = fake_node(|m| match m {
            "eth_maxPriorityFeePerGas" => Ok(json!("0x3b9aca00")),
            _ => Err(method_not_found(m)),
        })
        .await;
        assert_eq!(
            suggesting.max_priority_fee().await.unwrap(),
            Some(U256::from(1_000_000_000u64))
        );
        // Many requests share the kept connection and each gets its own answer.
        for _ in 0..5 {
            assert!(suggesting.max_priority_fee().await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn a_chain_without_base_fee_is_refused_with_the_reason() {
        let legacy = fake_node(|m| match m {
            "eth_getBlockByNumber" => Ok(json!({"number": "0x5", "timestamp": "0x10"})),
            _ => Err(method_not_found(m)),
        })
        .await;
        assert_eq!(legacy.block_timestamp(None).await.unwrap(), 16);
        let err = legacy.base_fee().await.unwrap_err();
        assert!(err.to_string().contains("EIP-1559"), "{err}");
    }

    #[tokio::test]
    async fn a_malformed_answer_names_the_step() {
        let odd = fake_node(|m| match m {
            "eth_chainId" => Ok(json!(31337)),
            _ => Ok(Value::Null),
        })
        .await;
        let err = odd.chain_id().await.unwrap_err();
        assert!(
            matches!(
                err,
                EthError::Decode {
                    step: "eth_chainId",
                    ..
                }
            ),
            "{err:?}"
        );
        let err = odd.block_timestamp(Some(9)).await.unwrap_err();
        assert!(err.to_string().contains("no block 0x9"), "{err}");
    }
}
