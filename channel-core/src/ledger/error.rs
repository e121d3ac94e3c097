//! Every reason the ledger refuses an operation, one variant per rule.
//!
//! A rejected operation changes no state, so the caller's only consequence is "this transaction
//! failed"; the variants are grouped by the rule they enforce (what is named, money, proofs,
//! time, secrets, arithmetic) and each message names the rule that was broken.

use crate::crypto::CryptoError;
use crate::locks::LockDecodeError;
use crate::primitives::{Address, H256, U256};
use crate::proofs::Domain;

use super::records::ChannelPhase;

/// Why a ledger operation was rejected. The ledger state is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    // --- what the request names -------------------------------------------------------------
    #[error("no channel with identifier {0}")]
    UnknownChannel(U256),
    #[error("{address} is not a participant of channel {channel_id}")]
    NotParticipant { channel_id: U256, address: Address },
    #[error("only one channel per participant pair: channel {channel_id} is not settled yet")]
    ChannelExists { channel_id: U256 },
    #[error("cannot open a channel with yourself")]
    SelfChannel,
    #[error("the zero address cannot be a channel participant")]
    ZeroAddress,
    #[error("channel {channel_id} is {actual:?} but this operation needs it {expected:?}")]
    WrongPhase {
        channel_id: U256,
        expected: ChannelPhase,
        actual: ChannelPhase,
    },

    // --- money ---------------------------------------------------------------------------
    #[error("tokens cannot be minted to the zero address")]
    MintToZeroAddress,
    #[error("a mint must create at least one token, got zero")]
    ZeroMint,
    #[error("one dev-faucet mint is at most {max} tokens (the faucet cap), got {requested}")]
    FaucetCapExceeded { requested: U256, max: U256 },
    #[error("{who} holds {available} tokens but {needed} are needed")]
    InsufficientTokens {
        who: Address,
        needed: U256,
        available: U256,
    },
    #[error("total deposit must grow: current {current}, requested {requested}")]
    DepositNotIncreasing { current: U256, requested: U256 },
    #[error("total withdraw must grow: current {current}, requested {requested}")]
    WithdrawNotIncreasing { current: U256, requested: U256 },
    #[error("total withdraw of both participants ({total_withdraw}) exceeds their total deposit ({total_deposit})")]
    WithdrawExceedsDeposit {
        total_withdraw: U256,
        total_deposit: U256,
    },
    #[error("withdraw proof expired: valid while now < {until}, now is {now}")]
    WithdrawExpired { until: u64, now: u64 },
    #[error("cooperative settle withdraws ({total_withdraw}) must add up exactly to the total deposit ({total_deposit})")]
    CooperativeSettleNotWhole {
        total_deposit: U256,
        total_withdraw: U256,
    },
    #[error("cooperative settle needs one withdraw per participant, got two for {participant}")]
    CooperativeSettleSameParticipant { participant: Address },
    #[error("cooperative settle cannot lower {participant}'s total withdraw from {withdrawn} to {total_withdraw}")]
    CooperativeWithdrawDecreasing {
        participant: Address,
        withdrawn: U256,
        total_withdraw: U256,
    },

    // --- proofs --------------------------------------------------------------------------
    #[error(
        "settle needs the balance data of both participants of channel {channel_id}, got {got}"
    )]
    SettleParticipantsMismatch { channel_id: U256, got: String },
    #[error("the balance data given for {participant} hashes to {given}, but the ledger stores {stored}: settle needs the data of the proof that was submitted")]
    BalanceDataMismatch {
        participant: Address,
        stored: H256,
        given: H256,
    },
    #[error("proof is for another ledger: expected {expected:?}, got {got:?}")]
    WrongDomain { expected: Domain, got: Domain },
    #[error("proof is for channel {got}, expected channel {expected}")]
    WrongChannel { expected: U256, got: U256 },
    #[error("bad {role} signature: {source}")]
    BadSignature {
        role: &'static str,
        source: CryptoError,
    },
    #[error("a proof with nonce 0 must be the empty proof (no balance, zero signature)")]
    MalformedEmptyProof,
    #[error("balance proof nonce must strictly increase: stored {stored}, got {got}")]
    NonceNotIncreasing { stored: u64, got: u64 },

    // --- time ----------------------------------------------------------------------------
    #[error(
        "settlement window still open: settle allowed when now > {settle_after}, now is {now}"
    )]
    SettlementWindowOpen { settle_after: u64, now: u64 },
    #[error(
        "settlement window is over: updates allowed while now <= {settle_after}, now is {now}"
    )]
    SettlementWindowClosed { settle_after: u64, now: u64 },

    // --- secrets and unlock --------------------------------------------------------------
    #[error("the zero secret cannot be registered")]
    ZeroSecret,
    #[error("secret {secrethash} was already registered at {registered_at}")]
    SecretAlreadyRegistered {
        secrethash: H256,
        registered_at: u64,
    },
    #[error("nothing to unlock in channel {channel_id} from {sender} to {receiver}")]
    NothingToUnlock {
        channel_id: U256,
        sender: Address,
        receiver: Address,
    },
    #[error("keccak256 of the packed locks is {got}, the kept locksroot is {expected}")]
    LocksrootMismatch { expected: H256, got: H256 },
    #[error("packed locks are malformed: {0}")]
    BadLocks(#[from] LockDecodeError),

    // --- arithmetic ----------------------------------------------------------------------
    #[error("amount overflow in {0}")]
    Overflow(&'static str),
    #[error("amount underflow in {0} (ledger accounts are inconsistent)")]
    Underflow(&'static str),
    #[error("event log cannot be restored: {0}")]
    EventLog(String),
    #[error("stored ledger records are inconsistent: {0}")]
    Records(String),
}

impl LedgerError {
    /// Wraps a signature failure with the role of the signature that failed.
    pub(crate) fn signature(role: &'static str) -> impl FnOnce(CryptoError) -> LedgerError {
        move |source| LedgerError::BadSignature { role, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_rule() {
        let e = LedgerError::NonceNotIncreasing { stored: 3, got: 2 };
        assert_eq!(
            e.to_string(),
            "balance proof nonce must strictly increase: stored 3, got 2"
        );
        let e = LedgerError::WrongPhase {
            channel_id: U256::from(1u8),
            expected: ChannelPhase::Opened,
            actual: ChannelPhase::Closed,
        };
        assert_eq!(
            e.to_string(),
            "channel 1 is Closed but this operation needs it Opened"
        );
        let e = LedgerError::signature("partner")(CryptoError::HighS);
        assert!(e.to_string().starts_with("bad partner signature: "));
        assert!(std::error::Error::source(&e).is_some());
    }
}
