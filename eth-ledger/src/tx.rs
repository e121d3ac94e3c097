//! The write side: one transaction from call data to checked receipt.
//!
//! Order of a send: estimate gas (a revert here is reported with its reason and nothing is
//! sent) → refuse if the estimate is above the gas cap → choose the EIP-1559 fees (`fees`) →
//! take the next local nonce → sign once (`transaction`) → broadcast, re-sending the *same
//! signed bytes* on transient failures (after checking whether the earlier attempt already got
//! mined) → wait for the receipt → check its status. Because every retry carries the same
//! nonce and signature, the chain can execute the operation at most once however often the
//! connection drops.
//!
//! The nonce is kept locally and advanced only when the node accepted the transaction; when it
//! is unknown whether the node saw it (retries exhausted, "nonce too low") it is re-read from
//! the chain before the next send.

use std::time::{Duration, Instant};

use channel_core::{Address, LocalSigner, Signer, H256, U256};
use serde_json::json;
use tokio::sync::Mutex;

use crate::error::EthError;
use crate::fees;
use crate::node::Node;
use crate::rpc::{node_error, revert_reason, Failure};
use crate::transaction::{Eip1559Tx, SignedTx};
use crate::wire::{self, Receipt};

/// Limits on what one transaction may cost.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    /// Most gas a transaction may use (its estimate above this is refused).
    pub gas: u64,
    /// Most wei per gas (`maxFeePerGas` and the tip are capped by it).
    pub fee_per_gas: U256,
}

/// Signs and submits transactions from one key.
#[derive(Debug)]
pub(crate) struct TxSender {
    node: Node,
    signer: LocalSigner,
    chain_id: u64,
    caps: Caps,
    receipt_timeout: Duration,
    /// Next nonce to use; `None` = read it from the chain first.
    nonce: Mutex<Option<u64>>,
}

impl TxSender {
    pub(crate) fn new(
        node: Node,
        signer: LocalSigner,
        chain_id: u64,
        caps: Caps,
        receipt_timeout: Duration,
    ) -> Self {
        Self {
            node,
            signer,
            chain_id,
            caps,
            receipt_timeout,
            nonce: Mutex::new(None),
        }
    }

    pub(crate) fn from(&self) -> Address {
        self.signer.address()
    }

    /// Sends `input` to `to` (or creates a contract when `to` is `None`) and returns its
    /// successful receipt.
    pub(crate) async fn send(
        &self,
        step: &'static str,
        to: Option<Address>,
        input: Vec<u8>,
    ) -> Result<Receipt, EthError> {
        let node = &self.node;
        let estimate = node.estimate_gas(step, self.from(), to, &input).await?;
        if estimate > self.caps.gas {
            return Err(EthError::GasCapExceeded {
                step,
                estimate,
                cap: self.caps.gas,
            });
        }
        let gas_limit = estimate.saturating_add(estimate / 5).min(self.caps.gas);
        let base_fee = node.base_fee().await?;
        let tip = node.max_priority_fee().await?;
        let fees = fees::choose(base_fee, tip, self.caps.fee_per_gas).map_err(|base_fee| {
            EthError::FeeCapExceeded {
                step,
                base_fee,
                cap: self.caps.fee_per_gas,
            }
        })?;

        let mut next = self.nonce.lock().await;
        let nonce = match *next {
            Some(n) => n,
            None => node.pending_transaction_count(self.from()).await?,
        };
        let tx = Eip1559Tx {
            chain_id: self.chain_id,
            nonce,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            max_fee_per_gas: fees.max_fee_per_gas,
            gas_limit,
            to,
            value: U256::ZERO,
            input,
        };
        let signed = tx.sign(&self.signer)?;
        let hash = signed.hash();

        let mined = match self.broadcast(step, &signed).await {
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
            None => self.wait_receipt(step, &hash).await?,
        };
        if !receipt.status {
            return Err(EthError::Reverted {
                step,
                reason: self.replay_reason(&signed, &receipt).await,
                tx_hash: Some(hash.to_string()),
            });
        }
        Ok(receipt)
    }

    /// Gets the signed bytes into the node. `Ok(Some(receipt))` when a lost earlier attempt
    /// turns out to be mined already, `Ok(None)` when the node holds the transaction.
    async fn broadcast(
        &self,
        step: &'static str,
        signed: &SignedTx,
    ) -> Result<Option<Receipt>, EthError> {
        let hash = signed.hash();
        let raw = json!([wire::data_hex(signed.raw())]);
        let policy = &self.node.policy;
        let attempts = policy.attempts.max(1);
        let mut last = String::new();
        for n in 0..attempts {
            if n > 0 {
                // An earlier attempt may have reached the node even though its answer got lost.
                if let Ok(Some(receipt)) = self.node.receipt_once(&hash).await {
                    return Ok(Some(receipt));
                }
            }
            match self
                .node
                .request_once("eth_sendRawTransaction", raw.clone())
                .await
            {
                Ok(_) => return Ok(None),
                Err(Failure::Transient(why)) => {
                    last = why;
                    tokio::time::sleep(policy.backoff(n)).await;
                }
                Err(Failure::Node(e)) => {
                    let msg = e.message.to_lowercase();
                    if msg.contains("already known")
                        || msg.contains("known transaction")
                        || msg.contains("already imported")
                    {
                        return Ok(None);
                    }
                    if msg.contains("nonce too low") {
                        // Ours, sent by an attempt whose answer was lost, or someone else's.
                        if let Ok(Some(receipt)) = self.node.receipt_once(&hash).await {
                            return Ok(Some(receipt));
                        }
                    }
                    return Err(match node_error(step, &e) {
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

    async fn wait_receipt(&self, step: &'static str, hash: &H256) -> Result<Receipt, EthError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(10);
        loop {
            match self.node.receipt_once(hash).await {
                Ok(Some(receipt)) => return Ok(receipt),
                Ok(None) | Err(Failure::Transient(_)) => {}
                Err(Failure::Node(e)) => return Err(node_error(step, &e)),
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
    async fn replay_reason(&self, signed: &SignedTx, receipt: &Receipt) -> String {
        let tx = signed.tx();
        let request = wire::call_request(Some(self.from()), tx.to, &tx.input);
        let parent = wire::quantity_u64(receipt.block_number.saturating_sub(1));
        match self
            .node
            .request_once("eth_call", json!([request, parent]))
            .await
        {
            Err(Failure::Node(e)) => {
                revert_reason(&e).unwrap_or_else(|| format!("reverted on chain ({e})"))
            }
            _ => "reverted on chain (no reason given)".to_string(),
        }
    }
}
