//! The one error type of the SDK, grouped by what the caller should do about it:
//! - the hub or ledger refused a request ([`ClientError::Rpc`], [`ClientError::PaymentRejected`]):
//!   fix the request or the channel state; the gRPC code and the hub's message are kept;
//! - a mediated payment did not happen ([`ClientError::PayeeOffline`],
//!   [`ClientError::NoCapacity`], [`ClientError::MediationRefused`],
//!   [`ClientError::TransferFailed`], [`ClientError::Expired`]): the payee was not paid, and
//!   the lock made for it becomes spendable again by itself once it expires; try later or
//!   another way;
//! - the request cannot be paid ([`ClientError::InvalidPaymentRequest`],
//!   [`ClientError::AlreadyPaid`], [`ClientError::PaymentInProgress`]): nothing was signed;
//! - the hub is unreachable ([`ClientError::Connect`]) or did not answer in time
//!   ([`ClientError::DeadlineExceeded`]): retry later, nothing was lost;
//! - the local command cannot run now ([`ClientError::Channel`], [`ClientError::NoChannel`],
//!   [`ClientError::InvalidState`]): nothing was signed or sent;
//! - the hub sent something malformed or dishonest ([`ClientError::Malformed`],
//!   [`ClientError::HubMisbehaved`], [`ClientError::LedgerTimeOverflow`]): stop trusting it,
//!   close on the ledger;
//! - the device's own chain access is missing, unexpected or does not match the hub
//!   ([`ClientError::ChainAccessRequired`], [`ClientError::ChainAccessUnexpected`],
//!   [`ClientError::Chain`]), or the call exists only on an embedded ledger
//!   ([`ClientError::FaucetEmbeddedOnly`]): fix the connect options or refuse the hub;
//! - local storage failed ([`ClientError::Store`]): the device cannot safely continue;
//! - the device key file cannot be used ([`ClientError::KeyFile`]): fix the file, its mode
//!   or the passphrase.
//!
//! Every error from a hub refusal keeps the hub's machine-readable [`HubReason`]
//! ([`ClientError::hub_reason`]), parsed from the status's `google.rpc.ErrorInfo` or a Pay
//! rejection's `error_reason`; the SDK decides on it, never on the English message.

use channel_core::channel::ChannelError;
use channel_core::mediation::PaymentRequestError;
use channel_core::primitives::{Address, H256, U256};
use channel_core::CryptoError;
use voltlane_proto::v1::ErrorReason;
use voltlane_proto::FieldError;

use crate::ledger::ChainError;
use crate::store::StoreError;

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    // --- the hub or ledger refused ---
    /// A gRPC call failed; `code`, `hub_reason` and `message` are what the hub answered.
    #[error("{op} failed: {code:?}: {message}")]
    Rpc {
        op: &'static str,
        code: tonic::Code,
        hub_reason: Option<HubReason>,
        message: String,
    },
    /// The hub rejected one payment of the stream.
    #[error("payment with nonce {nonce} rejected by the hub: {code:?}: {reason}")]
    PaymentRejected {
        nonce: u64,
        code: tonic::Code,
        hub_reason: Option<HubReason>,
        reason: String,
    },

    // --- a mediated payment did not happen (its lock is taken back after expiry) ---
    /// The payee has no payment stream open with the hub.
    #[error("payee offline: {reason}")]
    PayeeOffline { reason: String },
    /// The hub cannot lock the amount toward the payee.
    #[error("hub has no capacity toward the payee: {reason}")]
    NoCapacity { reason: String },
    /// The hub refused to mediate for another reason (payee unknown, fee not covered,
    /// expiry too soon, secrethash already used, ...).
    #[error("hub refused to mediate: {code:?}: {reason}")]
    MediationRefused {
        code: tonic::Code,
        hub_reason: Option<HubReason>,
        reason: String,
    },
    /// The hub forwarded the lock but the transfer failed (e.g. the payee did not claim it).
    #[error("mediated transfer failed: {0}")]
    TransferFailed(String),
    /// Our lock expired before the payee revealed its secret.
    #[error("mediated transfer expired before the payee claimed it")]
    Expired,

    // --- the request cannot be paid ---
    #[error("payment request refused: {0}")]
    InvalidPaymentRequest(#[from] PaymentRequestError),
    /// This store already paid the request with this secrethash.
    #[error("payment request {secrethash} was already paid")]
    AlreadyPaid { secrethash: H256 },
    /// A payment of the request with this secrethash is under way (or its lock is still
    /// pending after a failure).
    #[error("payment request {secrethash} is already being paid")]
    PaymentInProgress { secrethash: H256 },

    // --- the hub is unreachable ---
    #[error("cannot connect to the hub at {endpoint}: {message}")]
    Connect { endpoint: String, message: String },
    /// A unary call got no complete answer within its deadline
    /// (`ConnectOptions::call_timeout`); the SDK applied nothing of it.
    #[error("{op}: no answer from the hub within the {after:?} call deadline")]
    DeadlineExceeded {
        op: &'static str,
        after: std::time::Duration,
    },

    // --- the local command cannot run now ---
    #[error("channel refused the command: {0}")]
    Channel(#[from] ChannelError),
    #[error("no channel with the hub yet: call open_channel first")]
    NoChannel,
    #[error("{0}")]
    InvalidState(String),

    // --- the hub sent something malformed or dishonest ---
    #[error("malformed message from the hub: {0}")]
    Malformed(#[from] FieldError),
    #[error("hub misbehaved: {0}")]
    HubMisbehaved(String),
    /// The hub's ledger time is so large that a deadline after it does not fit in 64 bits.
    #[error("hub misbehaved: ledger time {now} leaves no room for a withdraw deadline")]
    LedgerTimeOverflow { now: u64 },

    // --- the ledger the device uses ---
    /// The hub settles on Ethereum, so the device must reach the chain itself.
    #[error(
        "hub {hub} settles on Ethereum (chain {chain_id}, token network {token_network}): \
         the device needs its own RPC URL to that chain (ConnectOptions::chain_access)"
    )]
    ChainAccessRequired {
        hub: Address,
        chain_id: U256,
        token_network: Address,
    },
    /// Chain access was configured, but the hub uses its embedded ledger.
    #[error(
        "chain access was configured, but hub {hub} uses its embedded ledger (no chain to \
         reach): remove ConnectOptions::chain_access or connect to the Ethereum hub"
    )]
    ChainAccessUnexpected { hub: Address },
    /// The device's chain ledger failed, or the chain is not the one the hub announces.
    #[error("chain ledger: {0}")]
    Chain(#[from] ChainError),
    /// `mint` on a chain: the dev faucet is `Ledger.Mint` of an embedded-ledger hub.
    #[error(
        "the dev faucet (Ledger.Mint) exists only on a hub with an embedded ledger; this hub \
         settles on chain {chain_id}: get tokens of {token} there"
    )]
    FaucetEmbeddedOnly { chain_id: U256, token: Address },

    // --- local failures ---
    #[error("device store: {0}")]
    Store(#[from] StoreError),
    #[error("signing failed: {0}")]
    Crypto(#[from] CryptoError),
    /// The device key file of `ConnectOptions::key_file` cannot be used (missing, shared
    /// with group or others, wrong passphrase, ...).
    #[error("device key file: {0}")]
    KeyFile(#[from] voltlane_store::keyfile::KeyFileError),
    #[error("the client's background tasks have stopped")]
    Shutdown,

    // --- metered sessions ---
    #[error("session: {0}")]
    Session(#[from] channel_core::session::SessionError),
    #[error("no session {0} in this device's store")]
    UnknownSession(H256),
    #[error("session {session}: {what}")]
    SessionTimeout { session: H256, what: String },
}

impl ClientError {
    /// Wraps a gRPC status returned by `op`.
    pub fn rpc(op: &'static str, status: tonic::Status) -> Self {
        ClientError::Rpc {
            op,
            code: status.code(),
            hub_reason: HubReason::from_status(&status),
            message: status.message().to_string(),
        }
    }

    /// The hub's machine-readable reason, if this error is a hub refusal that named one.
    pub fn hub_reason(&self) -> Option<&HubReason> {
        match self {
            ClientError::Rpc { hub_reason, .. }
            | ClientError::PaymentRejected { hub_reason, .. }
            | ClientError::MediationRefused { hub_reason, .. } => hub_reason.as_ref(),
            ClientError::PayeeOffline { .. } => Some(&HubReason::Known(ErrorReason::PayeeOffline)),
            ClientError::NoCapacity { .. } => Some(&HubReason::Known(ErrorReason::NoCapacity)),
            _ => None,
        }
    }

    /// Whether the ledger refused the transaction (the hub's ledger answered with a code, or
    /// the chain reverted): someone else may have done it first.
    pub fn is_ledger_refusal(&self) -> bool {
        match self {
            ClientError::Chain(e) => e.is_refusal(),
            _ => self.code().is_some(),
        }
    }

    /// The gRPC code the hub answered with, if this error came from the hub.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            ClientError::Rpc { code, .. }
            | ClientError::PaymentRejected { code, .. }
            | ClientError::MediationRefused { code, .. } => Some(*code),
            ClientError::PayeeOffline { .. } => Some(tonic::Code::FailedPrecondition),
            ClientError::NoCapacity { .. } => Some(tonic::Code::ResourceExhausted),
            ClientError::DeadlineExceeded { .. } => Some(tonic::Code::DeadlineExceeded),
            _ => None,
        }
    }
}

/// Why the hub refused: a reason of the `voltlane.v1.ErrorReason` vocabulary (errors.proto;
/// docs/errors.md), or one this SDK does not know (a newer hub's), kept as the hub named it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubReason {
    Known(ErrorReason),
    Other(String),
}

impl HubReason {
    /// The reason in `status`'s `google.rpc.ErrorInfo` (domain `voltlane.hub`); `None` when it
    /// has none (a hub before reasons, or a status made by the transport).
    pub fn from_status(status: &tonic::Status) -> Option<Self> {
        voltlane_proto::errors::status_reason(status).map(|name| Self::from_name(&name))
    }

    /// The reason named `name` on the wire (e.g. `"PAYEE_OFFLINE"`).
    pub fn from_name(name: &str) -> Self {
        match voltlane_proto::errors::parse_reason(name) {
            Some(r) => HubReason::Known(r),
            None => HubReason::Other(name.to_string()),
        }
    }

    /// The reason of a Pay-stream rejection (`PaymentRejected.error_reason`); `None` for
    /// UNSPECIFIED (a hub before reasons), a number this SDK does not know as `Other`.
    pub fn from_wire(value: i32) -> Option<Self> {
        match ErrorReason::try_from(value) {
            Ok(ErrorReason::Unspecified) => None,
            Ok(r) => Some(HubReason::Known(r)),
            Err(_) => Some(HubReason::Other(value.to_string())),
        }
    }

    /// Whether this is the known reason `reason`.
    pub fn is(&self, reason: ErrorReason) -> bool {
        matches!(self, HubReason::Known(r) if *r == reason)
    }

    /// The wire name, e.g. `"PAYEE_OFFLINE"`.
    pub fn name(&self) -> &str {
        match self {
            HubReason::Known(r) => voltlane_proto::errors::reason_name(*r),
            HubReason::Other(name) => name,
        }
    }
}

impl std::fmt::Display for HubReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
