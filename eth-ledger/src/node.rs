//! The read side of the node: contract calls (`eth_call`), blocks, logs and anvil's dev
//! methods, each retried under the [`RetryPolicy`]. Owns the provider; the write side (`tx`)
//! borrows it.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address as EvmAddress, Bytes};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, Log, TransactionRequest};
use alloy::sol_types::SolCall;
use alloy::transports::http::reqwest::Url;

use crate::error::EthError;
use crate::rpc::{with_retry, RetryPolicy};

/// A JSON-RPC endpoint with a retry policy.
#[derive(Clone, Debug)]
pub struct Node {
    pub(crate) provider: RootProvider,
    pub(crate) policy: RetryPolicy,
}

impl Node {
    pub fn connect(rpc_url: &str, policy: RetryPolicy) -> Result<Self, EthError> {
        let url: Url = rpc_url
            .parse()
            .map_err(|e| EthError::Config(format!("RPC URL {rpc_url:?}: {e}")))?;
        Ok(Self {
            provider: RootProvider::new_http(url),
            policy,
        })
    }

    pub async fn chain_id(&self) -> Result<u64, EthError> {
        with_retry(&self.policy, "eth_chainId", || self.provider.get_chain_id()).await
    }

    pub async fn block_number(&self) -> Result<u64, EthError> {
        with_retry(&self.policy, "eth_blockNumber", || {
            self.provider.get_block_number()
        })
        .await
    }

    /// Timestamp (seconds) of block `number`, or of the latest block.
    pub async fn block_timestamp(&self, number: Option<u64>) -> Result<u64, EthError> {
        let tag = number.map_or(BlockNumberOrTag::Latest, BlockNumberOrTag::Number);
        let block = with_retry(&self.policy, "eth_getBlockByNumber", || async move {
            self.provider.get_block_by_number(tag).await
        })
        .await?;
        block.map(|b| b.header.timestamp).ok_or(EthError::Decode {
            step: "eth_getBlockByNumber",
            what: "block",
            reason: format!("node has no block {tag}"),
        })
    }

    /// Calls a view function of `to` and decodes its return value.
    pub async fn call<C: SolCall>(
        &self,
        step: &'static str,
        to: EvmAddress,
        call: &C,
    ) -> Result<C::Return, EthError> {
        let req = TransactionRequest::default()
            .to(to)
            .input(Bytes::from(call.abi_encode()).into());
        let out = with_retry(&self.policy, step, || {
            let req = req.clone();
            async move { self.provider.call(req).await }
        })
        .await?;
        C::abi_decode_returns(&out).map_err(|e| EthError::Decode {
            step,
            what: "return value",
            reason: e.to_string(),
        })
    }

    pub async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, EthError> {
        with_retry(&self.policy, "eth_getLogs", || {
            self.provider.get_logs(filter)
        })
        .await
    }

    /// Number of transactions `who` sent that are mined (its next nonce).
    pub async fn transaction_count(&self, who: EvmAddress) -> Result<u64, EthError> {
        with_retry(&self.policy, "eth_getTransactionCount", || async move {
            self.provider.get_transaction_count(who).latest().await
        })
        .await
    }

    pub async fn eth_balance(&self, who: EvmAddress) -> Result<alloy::primitives::U256, EthError> {
        with_retry(&self.policy, "eth_getBalance", || async move {
            self.provider.get_balance(who).await
        })
        .await
    }

    /// A dev-node method (anvil's `evm_*` / `anvil_*`), with JSON parameters.
    pub async fn dev_request(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, EthError> {
        with_retry(&self.policy, method, || {
            let params = params.clone();
            async move { self.provider.raw_request(method.into(), params).await }
        })
        .await
    }

    /// Moves the dev chain's clock forward by `seconds` and mines a block.
    pub async fn increase_time(&self, seconds: u64) -> Result<(), EthError> {
        self.dev_request("evm_increaseTime", serde_json::json!([seconds]))
            .await?;
        self.mine(1).await
    }

    /// Mines `blocks` empty blocks on the dev chain.
    pub async fn mine(&self, blocks: u64) -> Result<(), EthError> {
        for _ in 0..blocks {
            self.dev_request("evm_mine", serde_json::json!([])).await?;
        }
        Ok(())
    }
}
