//! [`EthereumLedger`]: one party's handle on a TokenNetwork contract. Connecting reads the
//! chain id, token, secret registry and settlement timeout from the chain; operations are
//! async methods that check their input against this ledger (`checks`), build the call from
//! `channel-core`'s proofs and send it through `tx`.
//!
//! Layout: this file (config, connect, getters, token and time), `checks` (refusals before
//! sending), `channel` (open, deposit, withdraw, cooperative settle), `closing` (close,
//! update, settle, secrets, unlock).

use std::time::Duration;

use alloy::primitives::{Address as EvmAddress, TxKind};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent};
use channel_core::{Address, Domain, LocalSigner, Signer, H256, U256};

use crate::bindings::{ICustomToken, ITokenNetwork};
use crate::convert::{from_b256, from_evm, to_evm, to_u64};
use crate::error::EthError;
use crate::node::Node;
use crate::rpc::RetryPolicy;
use crate::tx::TxSender;

mod channel;
pub use channel::SignedWithdraw;
mod checks;
mod closing;
pub use closing::Unlocked;

/// Where the ledger lives and how careful to be with it.
#[derive(Clone, Debug)]
pub struct EthConfig {
    pub rpc_url: String,
    pub token_network: Address,
    /// Refuse any transaction whose gas estimate is above this.
    pub gas_cap: u64,
    /// An event counts once its block has this many confirmations (1 = the head block counts).
    pub confirmations: u64,
    /// At most this many blocks per `eth_getLogs` request.
    pub max_log_range: u64,
    pub retry: RetryPolicy,
    /// How long to wait for a sent transaction's receipt.
    pub receipt_timeout: Duration,
}

impl EthConfig {
    pub fn new(rpc_url: impl Into<String>, token_network: Address) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            token_network,
            gas_cap: 3_000_000,
            confirmations: 1,
            max_log_range: 2_000,
            retry: RetryPolicy::default(),
            receipt_timeout: Duration::from_secs(60),
        }
    }
}

/// A mined, successful transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxOutcome {
    pub tx_hash: H256,
    pub block_number: u64,
    pub gas_used: u64,
}

impl TxOutcome {
    fn of(receipt: &TransactionReceipt) -> Self {
        Self {
            tx_hash: from_b256(receipt.transaction_hash),
            block_number: receipt.block_number.unwrap_or(0),
            gas_used: receipt.gas_used,
        }
    }
}

/// `getChannelParticipantInfo` of one participant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantInfo {
    pub deposit: U256,
    pub withdrawn: U256,
    pub is_the_closer: bool,
    pub balance_hash: H256,
    pub nonce: u64,
    pub locksroot: H256,
    pub locked_amount: U256,
}

/// One participant's connection to a TokenNetwork v0.50 deployment.
#[derive(Debug)]
pub struct EthereumLedger {
    pub(crate) node: Node,
    tx: TxSender,
    me: Address,
    domain: Domain,
    pub(crate) token_network: EvmAddress,
    pub(crate) token: EvmAddress,
    pub(crate) secret_registry: EvmAddress,
    pub(crate) settle_timeout: u64,
    pub(crate) confirmations: u64,
    pub(crate) max_log_range: u64,
}

impl EthereumLedger {
    /// Connects as `key` (the same secp256k1 key the party signs its proofs with) and reads
    /// the deployment's parameters from the chain.
    pub async fn connect(config: &EthConfig, key: &LocalSigner) -> Result<Self, EthError> {
        if config.confirmations == 0 {
            return Err(EthError::Config(
                "confirmations must be at least 1 (1 = the head block counts)".into(),
            ));
        }
        let node = Node::connect(&config.rpc_url, config.retry.clone())?;
        let signer = PrivateKeySigner::from_slice(&key.to_bytes())
            .map_err(|e| EthError::Config(format!("signing key: {e}")))?;
        if from_evm(signer.address()) != key.address() {
            return Err(EthError::Config(
                "signing key: alloy and channel-core derive different addresses".into(),
            ));
        }
        let chain_id = node.chain_id().await?;
        let token_network = to_evm(config.token_network);
        let token = node
            .call("token", token_network, &ITokenNetwork::tokenCall {})
            .await?;
        let secret_registry = node
            .call(
                "secret_registry",
                token_network,
                &ITokenNetwork::secret_registryCall {},
            )
            .await?;
        let timeout = node
            .call(
                "settle_timeout",
                token_network,
                &ITokenNetwork::settle_timeoutCall {},
            )
            .await?;
        let tx = TxSender::new(
            node.clone(),
            signer,
            chain_id,
            config.gas_cap,
            config.receipt_timeout,
        );
        Ok(Self {
            node,
            tx,
            me: key.address(),
            domain: Domain {
                chain_id: U256::from(chain_id),
                token_network_address: config.token_network,
            },
            token_network,
            token,
            secret_registry,
            settle_timeout: to_u64("settle_timeout", "settle timeout", timeout)?,
            confirmations: config.confirmations,
            max_log_range: config.max_log_range.max(1),
        })
    }

    // ----- getters -----

    /// Our address (the sender of every transaction).
    pub fn address(&self) -> Address {
        self.me
    }

    /// Chain id and token network: what every proof for this ledger must be bound to.
    pub fn domain(&self) -> Domain {
        self.domain
    }

    pub fn token(&self) -> Address {
        from_evm(self.token)
    }

    pub fn secret_registry(&self) -> Address {
        from_evm(self.secret_registry)
    }

    /// Seconds between close and the first moment settle is allowed.
    pub fn settle_timeout(&self) -> u64 {
        self.settle_timeout
    }

    /// The node this ledger talks to (reads and dev-chain controls).
    pub fn node(&self) -> &Node {
        &self.node
    }

    // ----- chain reads -----

    /// Ledger time: the latest block's timestamp (seconds).
    pub async fn ledger_time(&self) -> Result<u64, EthError> {
        self.node.block_timestamp(None).await
    }

    pub async fn token_balance(&self, who: Address) -> Result<U256, EthError> {
        self.node
            .call(
                "balanceOf",
                self.token,
                &ICustomToken::balanceOfCall {
                    _owner: to_evm(who),
                },
            )
            .await
    }

    /// The identifier of the pair's current channel (0 if none).
    pub async fn channel_identifier(&self, a: Address, b: Address) -> Result<U256, EthError> {
        self.node
            .call(
                "getChannelIdentifier",
                self.token_network,
                &ITokenNetwork::getChannelIdentifierCall {
                    participant: to_evm(a),
                    partner: to_evm(b),
                },
            )
            .await
    }

    pub async fn participant_info(
        &self,
        channel_id: U256,
        participant: Address,
        partner: Address,
    ) -> Result<ParticipantInfo, EthError> {
        let r = self
            .node
            .call(
                "getChannelParticipantInfo",
                self.token_network,
                &ITokenNetwork::getChannelParticipantInfoCall {
                    channel_identifier: channel_id,
                    participant: to_evm(participant),
                    partner: to_evm(partner),
                },
            )
            .await?;
        Ok(ParticipantInfo {
            deposit: r.deposit,
            withdrawn: r.withdrawn_amount,
            is_the_closer: r.is_the_closer,
            balance_hash: from_b256(r.balance_hash),
            nonce: to_u64("getChannelParticipantInfo", "nonce", r.nonce)?,
            locksroot: from_b256(r.locksroot),
            locked_amount: r.locked_amount,
        })
    }

    /// Ledger time after which a closed channel can be settled (0 if not closed).
    pub async fn settleable_after(&self, channel_id: U256) -> Result<u64, EthError> {
        let v = self
            .node
            .call(
                "settleable_after",
                self.token_network,
                &ITokenNetwork::settleable_afterCall {
                    channel_identifier: channel_id,
                },
            )
            .await?;
        to_u64("settleable_after", "timestamp", v)
    }

    // ----- dev token -----

    /// Mints `amount` dev tokens to ourselves (CustomToken's open faucet).
    pub async fn mint(&self, amount: U256) -> Result<TxOutcome, EthError> {
        if amount.is_zero() {
            return Err(EthError::InvalidInput {
                step: "mint",
                reason: "amount is zero".into(),
            });
        }
        self.send_to_token("mint", ICustomToken::mintCall { num: amount })
            .await
    }

    // ----- sending -----

    async fn send_to_token<C: SolCall>(
        &self,
        step: &'static str,
        call: C,
    ) -> Result<TxOutcome, EthError> {
        let receipt = self
            .tx
            .send(step, TxKind::Call(self.token), call.abi_encode())
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    async fn send_to_network<C: SolCall>(
        &self,
        step: &'static str,
        call: C,
    ) -> Result<TransactionReceipt, EthError> {
        self.tx
            .send(step, TxKind::Call(self.token_network), call.abi_encode())
            .await
    }

    /// Lets the token network take `amount` of our tokens (for a deposit).
    async fn approve(&self, amount: U256) -> Result<TxOutcome, EthError> {
        self.send_to_token(
            "approve",
            ICustomToken::approveCall {
                _spender: self.token_network,
                _value: amount,
            },
        )
        .await
    }
}

/// The first event of type `E` emitted by `emitter` in `receipt`.
fn event_in<E: SolEvent>(
    step: &'static str,
    receipt: &TransactionReceipt,
    emitter: EvmAddress,
) -> Result<E, EthError> {
    receipt
        .inner
        .logs()
        .iter()
        .filter(|l| l.address() == emitter && l.topic0() == Some(&E::SIGNATURE_HASH))
        .find_map(|l| E::decode_log(&l.inner).ok())
        .map(|l| l.data)
        .ok_or(EthError::Decode {
            step,
            what: "receipt",
            reason: format!("no {} event in the receipt", E::SIGNATURE),
        })
}
