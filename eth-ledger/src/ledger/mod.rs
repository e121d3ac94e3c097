//! [`EthereumLedger`]: one party's handle on a TokenNetwork contract. Connecting reads the
//! chain id, token, secret registry and settlement timeout from the chain; operations are
//! async methods that check their input against this ledger (`checks`), build the call from
//! `channel-core`'s proofs and send it through `tx`.
//!
//! Layout: this file (config, connect, getters, token and time), `checks` (refusals before
//! sending), `channel` (open, deposit, withdraw, cooperative settle), `closing` (close,
//! update, settle, secrets, unlock), `ops` (`channel-core`'s `LedgerOp`s mapped onto those).

use std::time::Duration;

use channel_core::{Address, Domain, LocalSigner, Signer, H256, U256};

use crate::abi::{AbiError, Decoded, Event, Function, Value};
use crate::bindings::{custom_token, token_network};
use crate::error::EthError;
use crate::fees::DEFAULT_MAX_FEE_PER_GAS;
use crate::node::Node;
use crate::rpc::RetryPolicy;
use crate::tx::{Caps, TxSender};
use crate::wire::Receipt;

mod channel;
pub use channel::SignedWithdraw;
mod checks;
mod closing;
pub use closing::Unlocked;
mod ops;

/// Where the ledger lives and how careful to be with it.
#[derive(Clone, Debug)]
pub struct EthConfig {
    pub rpc_url: String,
    pub token_network: Address,
    /// Refuse any transaction whose gas estimate is above this.
    pub gas_cap: u64,
    /// Most wei per gas a transaction may pay (`maxFeePerGas` and the tip are capped by it;
    /// a base fee above it is refused).
    pub max_fee_per_gas: U256,
    /// An event counts once its block has this many confirmations (1 = the head block counts).
    pub confirmations: u64,
    /// At most this many blocks per `eth_getLogs` request.
    pub max_log_range: u64,
    /// No channel of this deployment was opened before this block (e.g. the deployment's
    /// block): lookups of a channel's `ChannelOpened` log search no further back.
    pub first_block: u64,
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
            max_fee_per_gas: DEFAULT_MAX_FEE_PER_GAS,
            confirmations: 1,
            max_log_range: 2_000,
            first_block: 0,
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
    fn of(receipt: &Receipt) -> Self {
        Self {
            tx_hash: receipt.transaction_hash,
            block_number: receipt.block_number,
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
    pub(crate) token_network: Address,
    pub(crate) token: Address,
    pub(crate) secret_registry: Address,
    pub(crate) settle_timeout: u64,
    pub(crate) confirmations: u64,
    pub(crate) max_log_range: u64,
    pub(crate) first_block: u64,
    /// The two participants of each channel looked up so far (they never change).
    pub(crate) participants: std::sync::Mutex<std::collections::HashMap<U256, [Address; 2]>>,
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
        let chain_id = node.chain_id().await?;
        let network = config.token_network;
        // An address without the contract answers calls with nothing: say so plainly.
        let raw = node
            .call_data("token", network, &token_network::TOKEN.selector())
            .await?;
        if raw.is_empty() {
            return Err(EthError::Config(format!(
                "no TokenNetwork contract at {network} on chain {chain_id} (token() returned nothing)"
            )));
        }
        let token = token_network::TOKEN
            .decode_output(&raw)
            .and_then(|d| d.address("token"))
            .map_err(decoded("token"))?;
        let read = |step: &'static str, f: Function| {
            let node = &node;
            async move { node.call(step, network, &f, &[]).await }
        };
        let secret_registry = read("secret_registry", token_network::SECRET_REGISTRY)
            .await?
            .address("secret_registry")
            .map_err(decoded("secret_registry"))?;
        let settle_timeout = read("settle_timeout", token_network::SETTLE_TIMEOUT)
            .await?
            .u64("settle_timeout")
            .map_err(decoded("settle_timeout"))?;
        let caps = Caps {
            gas: config.gas_cap,
            fee_per_gas: config.max_fee_per_gas,
        };
        let tx = TxSender::new(
            node.clone(),
            key.clone(),
            chain_id,
            caps,
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
            token_network: network,
            token,
            secret_registry,
            settle_timeout,
            confirmations: config.confirmations,
            max_log_range: config.max_log_range.max(1),
            first_block: config.first_block,
            participants: Default::default(),
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
        self.token
    }

    pub fn secret_registry(&self) -> Address {
        self.secret_registry
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
        const STEP: &str = "balanceOf";
        self.node
            .call(STEP, self.token, &custom_token::BALANCE_OF, &[who.into()])
            .await?
            .uint("balance")
            .map_err(decoded(STEP))
    }

    /// The identifier of the pair's current channel (0 if none).
    pub async fn channel_identifier(&self, a: Address, b: Address) -> Result<U256, EthError> {
        const STEP: &str = "getChannelIdentifier";
        self.node
            .call(
                STEP,
                self.token_network,
                &token_network::GET_CHANNEL_IDENTIFIER,
                &[a.into(), b.into()],
            )
            .await?
            .uint("channel_identifier")
            .map_err(decoded(STEP))
    }

    pub async fn participant_info(
        &self,
        channel_id: U256,
        participant: Address,
        partner: Address,
    ) -> Result<ParticipantInfo, EthError> {
        const STEP: &str = "getChannelParticipantInfo";
        let r = self
            .node
            .call(
                STEP,
                self.token_network,
                &token_network::GET_CHANNEL_PARTICIPANT_INFO,
                &[channel_id.into(), participant.into(), partner.into()],
            )
            .await?;
        let read = || -> Result<ParticipantInfo, AbiError> {
            Ok(ParticipantInfo {
                deposit: r.uint("deposit")?,
                withdrawn: r.uint("withdrawn_amount")?,
                is_the_closer: r.bool("is_the_closer")?,
                balance_hash: r.bytes32("balance_hash")?,
                nonce: r.u64("nonce")?,
                locksroot: r.bytes32("locksroot")?,
                locked_amount: r.uint("locked_amount")?,
            })
        };
        read().map_err(decoded(STEP))
    }

    /// Ledger time after which a closed channel can be settled (0 if not closed).
    pub async fn settleable_after(&self, channel_id: U256) -> Result<u64, EthError> {
        const STEP: &str = "settleable_after";
        self.node
            .call(
                STEP,
                self.token_network,
                &token_network::SETTLEABLE_AFTER,
                &[channel_id.into()],
            )
            .await?
            .u64("timestamp")
            .map_err(decoded(STEP))
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
        let receipt = self
            .send_call("mint", self.token, &custom_token::MINT, &[amount.into()])
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    // ----- sending -----

    /// Encodes a call of `function` on `to` and sends it as a transaction.
    pub(crate) async fn send_call(
        &self,
        step: &'static str,
        to: Address,
        function: &Function,
        args: &[Value],
    ) -> Result<Receipt, EthError> {
        let input = function
            .encode_call(args)
            .map_err(|e| EthError::InvalidInput {
                step,
                reason: format!("encoding {}: {e}", function.signature()),
            })?;
        self.tx.send(step, Some(to), input).await
    }

    async fn send_to_network(
        &self,
        step: &'static str,
        function: &Function,
        args: &[Value],
    ) -> Result<Receipt, EthError> {
        self.send_call(step, self.token_network, function, args)
            .await
    }

    /// Lets the token network take `amount` of our tokens (for a deposit).
    async fn approve(&self, amount: U256) -> Result<TxOutcome, EthError> {
        let receipt = self
            .send_call(
                "approve",
                self.token,
                &custom_token::APPROVE,
                &[self.token_network.into(), amount.into()],
            )
            .await?;
        Ok(TxOutcome::of(&receipt))
    }
}

/// A signature as the contracts take it: 65 bytes `r || s || v`.
fn sig_value(s: &channel_core::Signature) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

/// An ABI value of the wrong shape in the node's answer.
pub(crate) fn decoded(step: &'static str) -> impl Fn(AbiError) -> EthError {
    move |e| EthError::Decode {
        step,
        what: "contract answer",
        reason: e.to_string(),
    }
}

/// The first `event` emitted by `emitter` in `receipt`.
fn event_in(
    step: &'static str,
    receipt: &Receipt,
    emitter: Address,
    event: &Event,
) -> Result<Decoded, EthError> {
    let topic = event.topic0();
    receipt
        .logs
        .iter()
        .filter(|l| l.address == emitter && l.topic0() == Some(&topic))
        .find_map(|l| event.decode_log(&l.topics, &l.data).ok())
        .ok_or(EthError::Decode {
            step,
            what: "receipt",
            reason: format!("no {} event in the receipt", event.signature()),
        })
}
