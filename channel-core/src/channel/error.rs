//! Why the channel state machine refused an input. Variants are grouped by what the caller
//! should do: reject the peer's message (it is invalid or stale), refuse the local command
//! (not enough funds, wrong phase), or stop (internal overflow that valid inputs cannot cause).
//! A refused input never changes the channel.

use crate::crypto::CryptoError;
use crate::primitives::{Address, H256, U256};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    // --- the peer's message is invalid: reject it, keep the channel ---
    #[error("signature rejected: {0}")]
    BadSignature(#[from] CryptoError),
    #[error("wrong chain id: channel is on chain {expected}, message says {got}")]
    WrongChain { expected: U256, got: U256 },
    #[error("wrong token network: channel is on {expected}, message says {got}")]
    WrongTokenNetwork { expected: Address, got: Address },
    #[error("wrong channel: this is channel {expected}, message is for channel {got}")]
    WrongChannel { expected: U256, got: U256 },
    #[error("wrong participant: expected {expected}, message names {got}")]
    WrongParticipant { expected: Address, got: Address },
    #[error("stale or replayed proof: nonce {got} is not above the latest nonce {latest}")]
    StaleNonce { latest: u64, got: u64 },
    #[error("nonce gap: expected nonce {expected}, got {got}")]
    NonceGap { expected: u64, got: u64 },
    #[error("transferred amount went down from {previous} to {got}")]
    TransferredAmountDecreased { previous: U256, got: U256 },
    #[error("balance proof does not match the transition: {field} is {got}, expected {expected}")]
    BalanceMismatch {
        field: &'static str,
        expected: String,
        got: String,
    },
    #[error("lock expired: expiration {expiration} is not after ledger time {now}")]
    LockExpired { expiration: u64, now: u64 },
    #[error("lock {0} has not expired yet")]
    LockNotExpired(H256),
    #[error("no pending lock with secrethash {0}")]
    UnknownLock(H256),
    #[error("a lock with secrethash {0} is already pending")]
    DuplicateLock(H256),
    #[error(
        "lock {0} was claimed on the ledger (secret registered before expiry); it cannot expire"
    )]
    LockClaimedOnLedger(H256),
    #[error("secret does not match the lock: sha256(secret) is {0}")]
    WrongSecret(H256),
    #[error("withdraw proof does not match the pending withdraw request")]
    WithdrawMismatch,
    #[error("withdraw expired: withdrawable_until {until} is not after ledger time {now}")]
    WithdrawExpired { until: u64, now: u64 },
    #[error("total withdraw must grow: current {current}, requested {requested}")]
    WithdrawNotIncreasing { current: U256, requested: U256 },

    #[error("cooperative close refused: {0}")]
    CooperativeClose(#[from] super::CooperativeCloseRefusal),

    // --- the command cannot be carried out now ---
    #[error("amount must be greater than zero")]
    ZeroAmount,
    #[error("insufficient balance: {available} available, {requested} requested")]
    InsufficientBalance { available: U256, requested: U256 },
    #[error("channel is {0}, not open")]
    NotOpen(&'static str),
    #[error("a withdraw is already pending")]
    WithdrawPending,
    #[error("no withdraw is pending")]
    NoPendingWithdraw,
    #[error("deposit can only grow: current {current}, new {new}")]
    DepositDecreased { current: U256, new: U256 },
    #[error("address {0} is not a participant of this channel")]
    NotParticipant(Address),

    // --- arithmetic limits ---
    #[error("arithmetic overflow in {0}")]
    Overflow(&'static str),
    #[error("cannot settle: the ledger stores {signer}'s proof with nonce {nonce} and balance hash {balance_hash}, and its balance data is not known here")]
    BalanceDataUnknown {
        signer: Address,
        nonce: u64,
        balance_hash: H256,
    },
    #[error("cannot retract: {0}")]
    CannotRetract(&'static str),
    #[error("nonce space exhausted")]
    NonceExhausted,
}
