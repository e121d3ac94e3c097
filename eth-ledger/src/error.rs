//! The crate's one error type. Variants are grouped by what the caller must do: fix its input
//! (nothing was sent), accept the chain's refusal (the contract reverted), or retry later /
//! look at the node (RPC and configuration trouble). Every variant names the step that failed.

use channel_core::{Address, Domain, U256};
use thiserror::Error;

/// Errors of the Ethereum ledger backend.
#[derive(Debug, Error)]
pub enum EthError {
    // ----- refused before sending: the input is wrong -----
    /// A proof is bound to another chain or token network than this ledger's.
    #[error(
        "{step}: {what} is for chain {} / token network {}, but this ledger is chain {} / \
         token network {}",
        got.chain_id,
        got.token_network_address,
        expected.chain_id,
        expected.token_network_address
    )]
    WrongDomain {
        step: &'static str,
        what: &'static str,
        expected: Box<Domain>,
        got: Box<Domain>,
    },
    /// A signature recovers to someone other than who must have signed.
    #[error("{step}: {what} is signed by {got}, expected {expected}")]
    WrongSigner {
        step: &'static str,
        what: &'static str,
        expected: Address,
        got: Address,
    },
    /// A signature does not recover at all (malformed, high-s, bad v).
    #[error("{step}: {what} signature is invalid: {reason}")]
    BadSignature {
        step: &'static str,
        what: &'static str,
        reason: String,
    },
    /// Any other input that cannot be right (wrong channel, amounts, ordering, zero secret).
    #[error("{step}: {reason}")]
    InvalidInput { step: &'static str, reason: String },

    // ----- the chain refused -----
    /// The contract reverted, while estimating gas or in a mined transaction.
    #[error("{step}: the contract reverted: {reason}{}", tx_hash.as_ref().map(|h| format!(" (tx {h})")).unwrap_or_default())]
    Reverted {
        step: &'static str,
        reason: String,
        tx_hash: Option<String>,
    },
    /// The gas estimate is above the configured cap; nothing was sent.
    #[error("{step}: estimated gas {estimate} exceeds the gas cap {cap}; not sent")]
    GasCapExceeded {
        step: &'static str,
        estimate: u64,
        cap: u64,
    },
    /// The chain's base fee is above the configured maximum fee per gas; nothing was sent.
    #[error(
        "{step}: the latest base fee {base_fee} wei/gas exceeds the fee cap {cap} wei/gas; not sent"
    )]
    FeeCapExceeded {
        step: &'static str,
        base_fee: U256,
        cap: U256,
    },
    /// The node answered with an error that is not a revert (e.g. refused the transaction).
    #[error("{step}: the node refused: {message}")]
    NodeRefused { step: &'static str, message: String },

    // ----- transport and node trouble -----
    /// The node could not be reached within the retry budget.
    #[error("{step}: RPC unavailable after {attempts} attempts: {last}")]
    Unavailable {
        step: &'static str,
        attempts: u32,
        last: String,
    },
    /// A sent transaction did not get a receipt in time (it may still be mined later).
    #[error("{step}: no receipt for transaction {tx_hash} within {waited_secs} s")]
    ReceiptTimeout {
        step: &'static str,
        tx_hash: String,
        waited_secs: u64,
    },
    /// The node's answer does not have the expected shape.
    #[error("{step}: cannot decode {what}: {reason}")]
    Decode {
        step: &'static str,
        what: &'static str,
        reason: String,
    },

    // ----- configuration and files -----
    #[error("configuration: {0}")]
    Config(String),
    /// The client speaks plain HTTP only.
    #[error(
        "RPC URL {url}: https RPC URLs are not supported yet; put a local TLS-terminating \
         proxy in front and use its http://127.0.0.1 URL"
    )]
    HttpsNotSupported { url: String },
    #[error("contract artifacts: {0}")]
    Artifacts(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

impl EthError {
    /// Whether the error left the chain untouched because the input was refused up front.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Self::WrongDomain { .. }
                | Self::WrongSigner { .. }
                | Self::BadSignature { .. }
                | Self::InvalidInput { .. }
        )
    }
}
