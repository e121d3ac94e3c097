//! The write side: one transaction from call data to checked receipt.
//!
//! Order of a send: estimate gas (a revert here is reported with its reason and nothing is
//! sent) → refuse if the estimate is above the gas cap → take the next local nonce → sign once
//! → broadcast, re-sending the *same signed bytes* on transient failures (after checking
//! whether the earlier attempt already got mined) → wait for the receipt → check its status.
//! Because every retry carries the same nonce and signature, the chain can execute the
//! operation at most once however often the connection drops.
//!
//! The nonce is kept locally and advanced only when the node accepted the transaction; when it
//! is unknown whether the node saw it (retries exhausted, "nonce too low") it is re-read from
//! the chain before the next send.

use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::eips::BlockId;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address as EvmAddress, Bytes, TxKind, B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use tokio::sync::Mutex;

use crate::error::EthError;
use crate::node::Node;
use crate::rpc::{attempt, node_error, revert_reason, with_retry, Failure};

/// Signs and submits transactions from one key.
#[derive(Debug)]
pub(crate) struct TxSender {
    node: Node,
    signer: PrivateKeySigner,
    chain_id: u64,
    gas_cap: u64,
    receipt_timeout: Duration,
    /// Next nonce to use; `None` = read it from the chain first.
    nonce: Mutex<Option<u64>>,
}

impl TxSender {
    pub(crate) fn new(
        node: Node,
        signer: PrivateKeySigner,
        chain_id: u64,
        gas_cap: u64,
        receipt_timeout: Duration,
    ) -> Self {
        Self {
            node,
            signer,
            chain_id,
            gas_cap,
            receipt_timeout,
            nonce: Mutex::new(None),
        }
    }

    pub(crate) fn from(&self) -> EvmAddress {
        self.signer.address()
    }

    /// Sends a call to `to` (or a contract creation) and returns its successful receipt.
    pub(crate) async fn send(
        &self,
        step: &'static str,
        to: TxKind,
        input: Vec<u8>,
    ) -> Result<TransactionReceipt, EthError> {
        let input = Bytes::from(input);
        let request = TransactionRequest {
            from: Some(self.from()),
            to: Some(to),
            input: input.clone().into(),
            ..Default::default()
        };
        let estimate = self.estimate(step, &request).await?;
        if estimate > self.gas_cap {
            return Err(EthError::GasCapExceeded {
                step,
                estimate,
                cap: self.gas_cap,
            });
        }
        let gas_limit = estimate.saturating_add(estimate / 5).min(self.gas_cap);
        let node = &self.node;
        let gas_price = with_retry(&node.policy, "eth_gasPrice", || {
            node.provider.get_gas_price()
        })
        .await?
        .saturating_mul(2);

        let mut next = self.nonce.lock().await;
        let nonce = match *next {
            Some(n) => n,
            None => {
                let from = self.from();
                with_retry(&node.policy, "eth_getTransactionCount", || async move {
                    node.provider.get_transaction_count(from).pending().await
                })
                .await?
            }
        };
        let mut tx = TxLegacy {
            chain_id: Some(self.chain_id),
            nonce,
            gas_price,
            gas_limit,
            to,
            value: U256::ZERO,
            input,
        };
        let signature =
            self.signer
                .sign_transaction_sync(&mut tx)
                .map_err(|e| EthError::InvalidInput {
                    step,
                    reason: format!("signing the transaction failed: {e}"),
                })?;
        let signed = tx.into_signed(signature);
        let hash = *signed.hash();
        let raw = TxEnvelope::Legacy(signed).encoded_2718();

        let mined = match self.broadcast(step, &raw, hash).await {
            Ok(mined) => {
                *next = Some(nonce.saturating_add(1));
                mined
            }
            Err(e) => {
                // Whether the node saw it is unknown: ask the chain next time.
                *next = None;
                return Err(e);
            }
        };
        drop(next);

        let receipt = match mined {
            Some(receipt) => receipt,
            None => self.wait_receipt(step, hash).await?,
        };
        if !receipt.status() {
            return Err(EthError::Reverted {
                step,
                reason: self.replay_reason(&request, &receipt).await,
                tx_hash: Some(hash.to_string()),
            });
        }
        Ok(receipt)
    }

    async fn estimate(
        &self,
        step: &'static str,
        request: &TransactionRequest,
    ) -> Result<u64, EthError> {
        let provider = &self.node.provider;
        with_retry(&self.node.policy, step, || {
            let req = request.clone();
            async move { provider.estimate_gas(req).await }
        })
        .await
    }

    /// Gets the signed bytes into the node. `Ok(Some(receipt))` when a lost earlier attempt
    /// turns out to be mined already, `Ok(None)` when the node holds the transaction.
    async fn broadcast(
        &self,
        step: &'static str,
        raw: &[u8],
        hash: B256,
    ) -> Result<Option<TransactionReceipt>, EthError> {
        let policy = &self.node.policy;
        let attempts = policy.attempts.max(1);
        let mut last = String::new();
        for n in 0..attempts {
            if n > 0 {
                // An earlier attempt may have reached the node even though its answer got lost.
                if let Ok(Some(receipt)) = self.receipt_once(hash).await {
                    return Ok(Some(receipt));
                }
            }
            match attempt(policy, self.node.provider.send_raw_transaction(raw)).await {
                Ok(_) => return Ok(None),
                Err(Failure::Transient(why)) => {
                    last = why;
                    tokio::time::sleep(policy.backoff(n)).await;
                }
                Err(Failure::Node(payload)) => {
                    let msg = payload.message.to_lowercase();
                    if msg.contains("already known")
                        || msg.contains("known transaction")
                        || msg.contains("already imported")
                    {
                        return Ok(None);
                    }
                    if msg.contains("nonce too low") {
                        // Ours, sent by an attempt whose answer was lost, or someone else's.
                        if let Ok(Some(receipt)) = self.receipt_once(hash).await {
                            return Ok(Some(receipt));
                        }
                    }
                    return Err(match node_error(step, &payload) {
                        EthError::Reverted { reason, .. } => EthError::Reverted {
                            step,
                            reason,
                            tx_hash: Some(hash.to_string()),
                        },
                        other => other,
                    });
                }
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

    async fn receipt_once(&self, hash: B256) -> Result<Option<TransactionReceipt>, Failure> {
        attempt(
            &self.node.policy,
            self.node.provider.get_transaction_receipt(hash),
        )
        .await
    }

    async fn wait_receipt(
        &self,
        step: &'static str,
        hash: B256,
    ) -> Result<TransactionReceipt, EthError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match self.receipt_once(hash).await {
                Ok(Some(receipt)) => return Ok(receipt),
                Ok(None) | Err(Failure::Transient(_)) => {}
                Err(Failure::Node(payload)) => return Err(node_error(step, &payload)),
                Err(Failure::Permanent(why)) => {
                    return Err(EthError::Unavailable {
                        step,
                        attempts: 1,
                        last: why,
                    })
                }
            }
            if started.elapsed() >= self.receipt_timeout {
                return Err(EthError::ReceiptTimeout {
                    step,
                    tx_hash: hash.to_string(),
                    waited_secs: self.receipt_timeout.as_secs(),
                });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    /// Why a mined transaction reverted: the same call replayed on the state before its block.
    async fn replay_reason(
        &self,
        request: &TransactionRequest,
        receipt: &TransactionReceipt,
    ) -> String {
        let parent = receipt
            .block_number
            .map_or(BlockId::latest(), |b| BlockId::number(b.saturating_sub(1)));
        let replay = self.node.provider.call(request.clone()).block(parent).await;
        match replay {
            Err(alloy::transports::RpcError::ErrorResp(payload)) => {
                revert_reason(&payload).unwrap_or_else(|| format!("reverted on chain ({payload})"))
            }
            _ => "reverted on chain (no reason given)".to_string(),
        }
    }
}
