//! The hub's one error enum and its one mapping onto gRPC statuses.
//!
//! Variants are grouped by what the caller must do: fix the request (INVALID_ARGUMENT),
//! authenticate or stay off other people's channels (UNAUTHENTICATED / PERMISSION_DENIED),
//! accept that the ledger refused (the status follows the rule broken), or retry later because
//! the hub itself failed (UNAVAILABLE / INTERNAL). The message is always the Display of the
//! underlying error, which names the field or rule (for people); the status also carries the
//! machine-readable [`v1::ErrorReason`] as a `google.rpc.ErrorInfo` (see
//! `voltlane_proto::errors`), which is what clients decide on. [`HubError::reason`] is the one
//! mapping from an error to its reason, [`HubError::code`] the one to its code;
//! docs/errors.md lists both per RPC.
//!
//! Codes by meaning: a valid request refused because of the channel's state or the time
//! (settle inside the settlement window, pay on a closed channel, withdraw while closing, a
//! lock or withdraw already expired) is FAILED_PRECONDITION; an argument that could never be
//! valid (malformed bytes, a bad signature, another chain or domain) INVALID_ARGUMENT.

use channel_core::ledger::LedgerError;
use channel_core::mediation::{MediationError, MediationRefusal};
use tonic::{Code, Status};
use voltlane_proto::v1::ErrorReason;
use voltlane_proto::FieldError;

use crate::auth::AuthError;
use crate::store::StoreError;

/// Everything that can go wrong in the hub.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    // --- the request is wrong -----------------------------------------------------------
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("unauthenticated: {0}")]
    Auth(#[from] AuthError),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("the dev faucet is disabled on this hub (start it with --dev-faucet true)")]
    FaucetDisabled,
    #[error("subscriber fell behind the event stream; resubscribe with from_seq = {next_seq}")]
    SubscriberLagged { next_seq: u64 },
    #[error("{0}")]
    Unimplemented(&'static str),
    #[error("unknown channel {0}")]
    UnknownChannel(channel_core::U256),
    #[error("{0}")]
    Channel(#[from] channel_core::channel::ChannelError),
    #[error("cooperative close refused: {0}")]
    CooperativeClose(String),
    #[error("signing: {0}")]
    Crypto(#[from] channel_core::CryptoError),
    #[error("{0}")]
    Mediation(#[from] MediationError),
    #[error("payment request refused: {0}")]
    PaymentRequest(#[from] channel_core::mediation::PaymentRequestError),
    #[error("payee {0} has no open channel with this hub")]
    NoPayeeChannel(channel_core::Address),
    #[error("payee offline: {0} has no receive stream open (Payments.ReceivePayments)")]
    PayeeOffline(channel_core::Address),
    #[error("secrethash {0} was already used for a mediated payment through this hub")]
    SecretHashUsed(channel_core::H256),
    #[error(
        "the hub holds this locked transfer ({0}) from before it took locks only with their \
         forward, and never forwarded it: take it back with PayerLockExpired once it expires"
    )]
    NotForwardedBefore(channel_core::H256),
    #[error("no mediated transfer with secrethash {0} toward this channel")]
    UnknownTransfer(channel_core::H256),
    #[error("the lock with secrethash {0} is already unlocked")]
    AlreadyUnlocked(channel_core::H256),
    #[error("session refused: {0}")]
    Session(#[from] channel_core::session::SessionError),
    #[error("unknown session {0} (never opened, or the hub restarted and its payee has not reopened it yet)")]
    UnknownSession(channel_core::H256),
    #[error("session id {0} is already open with a different offer")]
    SessionExists(channel_core::H256),
    #[error("session {session} is held by payer {payer}")]
    SessionTaken {
        session: channel_core::H256,
        payer: channel_core::Address,
    },
    #[error("the hub relays at most {0} sessions; try again later")]
    TooManySessions(usize),
    #[error(
        "opening a session needs an open channel with a deposit of the caller's: {0} has none \
         with this hub"
    )]
    SessionUnfunded(channel_core::Address),
    #[error(
        "per-key cap reached: {key} already has {max} sessions relayed, the most one key may \
         have (--max-sessions-per-key); one makes room once unused for the idle timeout"
    )]
    TooManySessionsForKey {
        key: channel_core::Address,
        max: usize,
    },

    // --- the hub failed -----------------------------------------------------------------
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the hub is shutting down")]
    ShuttingDown,
    #[error("ledger state is unavailable after a storage failure; restart the hub")]
    LedgerFailed,
    #[error("configuration: {0}")]
    Config(String),
    #[error("operator key: {0}")]
    OperatorKey(String),
    /// The operator key file (plain or keystore) or its passphrase file cannot be used: names
    /// the path, and for a file others may access, its mode.
    #[error("operator key: {0}")]
    KeyFile(#[from] voltlane_store::keyfile::KeyFileError),
    #[error("OS randomness unavailable: {0}")]
    Entropy(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<HubError> for Status {
    fn from(e: HubError) -> Status {
        voltlane_proto::errors::status(e.code(), e.reason(), e.to_string())
    }
}

impl HubError {
    /// The gRPC code of this refusal (see the module docs).
    pub fn code(&self) -> Code {
        match self {
            HubError::Field(_) => Code::InvalidArgument,
            HubError::Auth(_) => Code::Unauthenticated,
            HubError::PermissionDenied(_) => Code::PermissionDenied,
            HubError::Ledger(l) => ledger_code(l),
            HubError::FaucetDisabled => Code::FailedPrecondition,
            HubError::SubscriberLagged { .. } => Code::Aborted,
            HubError::Unimplemented(_) => Code::Unimplemented,
            HubError::UnknownChannel(_) => Code::NotFound,
            HubError::Channel(c) => channel_code(c),
            HubError::CooperativeClose(_) => Code::FailedPrecondition,
            HubError::Crypto(_) => Code::Internal,
            HubError::Mediation(m) => mediation_code(m),
            HubError::PaymentRequest(r) => match r {
                channel_core::mediation::PaymentRequestError::Expired { .. } => {
                    Code::FailedPrecondition
                }
                _ => Code::InvalidArgument,
            },
            HubError::NoPayeeChannel(_) | HubError::UnknownTransfer(_) => Code::NotFound,
            HubError::PayeeOffline(_) | HubError::NotForwardedBefore(_) => Code::FailedPrecondition,
            HubError::SecretHashUsed(_) | HubError::AlreadyUnlocked(_) => Code::AlreadyExists,
            HubError::Session(e) => session_code(e),
            HubError::UnknownSession(_) => Code::NotFound,
            HubError::SessionExists(_) => Code::AlreadyExists,
            HubError::SessionTaken { .. } => Code::FailedPrecondition,
            HubError::TooManySessions(_) | HubError::TooManySessionsForKey { .. } => {
                Code::ResourceExhausted
            }
            HubError::SessionUnfunded(_) => Code::FailedPrecondition,
            HubError::Store(_) | HubError::ShuttingDown | HubError::LedgerFailed => {
                Code::Unavailable
            }
            HubError::Config(_)
            | HubError::OperatorKey(_)
            | HubError::KeyFile(_)
            | HubError::Entropy(_)
            | HubError::Io(_)
            | HubError::Transport(_)
            | HubError::Internal(_) => Code::Internal,
        }
    }

    /// This error as the rejection of one Pay-stream message (or a lock's `not_forwarded`):
    /// the same code, message and reason as its status.
    pub fn rejection(&self) -> voltlane_proto::v1::PaymentRejected {
        voltlane_proto::v1::PaymentRejected {
            code: self.code() as i32,
            reason: self.to_string(),
            error_reason: self.reason() as i32,
        }
    }

    /// The machine-readable reason of this refusal: one per variant, the nested errors of
    /// `channel_core` by the rule they name.
    pub fn reason(&self) -> ErrorReason {
        use ErrorReason as R;
        match self {
            HubError::Field(_) => R::MalformedField,
            HubError::Auth(_) => R::Unauthenticated,
            HubError::PermissionDenied(_) => R::PermissionDenied,
            HubError::Ledger(l) => ledger_reason(l),
            HubError::FaucetDisabled => R::FaucetDisabled,
            HubError::SubscriberLagged { .. } => R::StreamLagged,
            HubError::Unimplemented(_) => R::Unimplemented,
            HubError::UnknownChannel(_) => R::UnknownChannel,
            HubError::Channel(c) => channel_reason(c),
            HubError::CooperativeClose(_) => R::CooperativeCloseRefused,
            HubError::Mediation(m) => mediation_reason(m),
            HubError::PaymentRequest(r) => payment_request_reason(r),
            HubError::NoPayeeChannel(_) => R::NoPayeeChannel,
            HubError::PayeeOffline(_) => R::PayeeOffline,
            HubError::SecretHashUsed(_) => R::SecrethashUsed,
            HubError::NotForwardedBefore(_) => R::NotForwardedBefore,
            HubError::UnknownTransfer(_) => R::UnknownTransfer,
            HubError::AlreadyUnlocked(_) => R::AlreadyUnlocked,
            HubError::Session(e) => session_reason(e),
            HubError::UnknownSession(_) => R::UnknownSession,
            HubError::SessionExists(_) => R::SessionExists,
            HubError::SessionTaken { .. } => R::SessionTaken,
            HubError::TooManySessions(_) => R::TooManySessions,
            HubError::TooManySessionsForKey { .. } => R::TooManySessionsForKey,
            HubError::SessionUnfunded(_) => R::SessionUnfunded,
            HubError::Store(_) | HubError::LedgerFailed => R::StorageFailed,
            HubError::ShuttingDown => R::ShuttingDown,
            HubError::Crypto(_)
            | HubError::Config(_)
            | HubError::OperatorKey(_)
            | HubError::KeyFile(_)
            | HubError::Entropy(_)
            | HubError::Io(_)
            | HubError::Transport(_)
            | HubError::Internal(_) => R::Internal,
        }
    }
}

fn payment_request_reason(e: &channel_core::mediation::PaymentRequestError) -> ErrorReason {
    match e {
        channel_core::mediation::PaymentRequestError::Expired { .. } => {
            ErrorReason::PaymentRequestExpired
        }
        _ => ErrorReason::InvalidPaymentRequest,
    }
}

/// The reason of a session refusal.
fn session_reason(e: &channel_core::session::SessionError) -> ErrorReason {
    use channel_core::session::SessionError as S;
    use ErrorReason as R;
    match e {
        S::BadOfferSignature(_)
        | S::BadReadingSignature(_)
        | S::BadReceiptSignature { .. }
        | S::NotSigner { .. } => R::BadSignature,
        S::Signing(_) => R::Internal,
        S::WrongDomain { .. } => R::WrongDomain,
        S::OfferExpired { .. } => R::OfferExpired,
        S::Ended(_) => R::SessionEnded,
        S::SeqNotIncreasing { .. } => R::StaleSeq,
        S::AmountOverflow { .. } => R::AmountOverflow,
        S::BadBill(r) => payment_request_reason(r),
        _ => R::SessionMessageInvalid,
    }
}

/// The reason of a ledger rejection: by the rule broken.
fn ledger_reason(e: &LedgerError) -> ErrorReason {
    use channel_core::ledger::ChannelPhase as P;
    use ErrorReason as R;
    use LedgerError as L;
    match e {
        L::UnknownChannel(_) => R::UnknownChannel,
        L::NotParticipant { .. } => R::NotParticipant,
        L::ChannelExists { .. } => R::ChannelExists,
        L::SelfChannel | L::ZeroAddress => R::InvalidParticipant,
        L::WrongPhase { expected, .. } => match expected {
            P::Opened => R::ChannelNotOpen,
            P::Closed => R::ChannelNotClosed,
            P::Settled => R::ChannelNotSettled,
        },
        L::MintToZeroAddress | L::ZeroMint | L::FaucetCapExceeded { .. } => R::InvalidMint,
        L::InsufficientTokens { .. } => R::InsufficientTokens,
        L::DepositNotIncreasing { .. } => R::DepositNotIncreasing,
        L::WithdrawNotIncreasing { .. } => R::WithdrawNotIncreasing,
        L::WithdrawExceedsDeposit { .. } => R::WithdrawExceedsDeposit,
        L::WithdrawExpired { .. } => R::WithdrawExpired,
        L::CooperativeSettleNotWhole { .. }
        | L::CooperativeSettleSameParticipant { .. }
        | L::CooperativeWithdrawDecreasing { .. } => R::CooperativeSettleInvalid,
        L::SettleParticipantsMismatch { .. } | L::BalanceDataMismatch { .. } => {
            R::SettleDataMismatch
        }
        L::WrongDomain { .. } => R::WrongDomain,
        L::WrongChannel { .. } => R::WrongChannel,
        L::BadSignature { .. } => R::BadSignature,
        L::MalformedEmptyProof => R::MalformedProof,
        L::NonceNotIncreasing { .. } => R::StaleNonce,
        L::SettlementWindowOpen { .. } => R::SettleWindowOpen,
        L::SettlementWindowClosed { .. } => R::SettleWindowClosed,
        L::ZeroSecret => R::InvalidSecret,
        L::SecretAlreadyRegistered { .. } => R::SecretAlreadyRegistered,
        L::NothingToUnlock { .. } => R::NothingToUnlock,
        L::LocksrootMismatch { .. } | L::BadLocks(_) => R::LocksMismatch,
        L::Overflow(_) => R::AmountOverflow,
        L::Underflow(_) | L::EventLog(_) | L::Records(_) => R::Internal,
    }
}

/// The reason of a refused channel transition: by the rule broken.
fn channel_reason(e: &channel_core::channel::ChannelError) -> ErrorReason {
    use channel_core::channel::ChannelError as C;
    use ErrorReason as R;
    match e {
        C::BadSignature(_) => R::BadSignature,
        C::WrongChain { .. } | C::WrongTokenNetwork { .. } => R::WrongDomain,
        C::WrongChannel { .. } => R::WrongChannel,
        C::WrongParticipant { .. } => R::WrongParticipant,
        C::StaleNonce { .. } => R::StaleNonce,
        C::NonceGap { .. } => R::NonceGap,
        C::TransferredAmountDecreased { .. } | C::BalanceMismatch { .. } => R::BalanceMismatch,
        C::LockExpired { .. } => R::LockExpired,
        C::LockNotExpired(_) => R::LockNotExpired,
        C::UnknownLock(_) => R::UnknownLock,
        C::DuplicateLock(_) => R::DuplicateLock,
        C::LockClaimedOnLedger(_) => R::LockClaimedOnLedger,
        C::WrongSecret(_) => R::WrongSecret,
        C::WithdrawMismatch => R::WithdrawMismatch,
        C::WithdrawExpired { .. } => R::WithdrawExpired,
        C::WithdrawNotIncreasing { .. } => R::WithdrawNotIncreasing,
        C::CooperativeClose(_) => R::CooperativeCloseRefused,
        C::ZeroAmount => R::ZeroAmount,
        C::InsufficientBalance { .. } => R::InsufficientBalance,
        C::NotOpen(_) => R::ChannelNotOpen,
        C::WithdrawPending => R::WithdrawPending,
        C::NoPendingWithdraw => R::NoPendingWithdraw,
        C::DepositDecreased { .. } => R::BalanceMismatch,
        C::NotParticipant(_) => R::NotParticipant,
        C::Overflow(_) => R::AmountOverflow,
        C::BalanceDataUnknown { .. } => R::BalanceDataUnknown,
        C::CannotRetract(_) => R::CannotRetract,
        C::NonceExhausted => R::NonceExhausted,
    }
}

/// The reason of a refused mediation step.
fn mediation_reason(e: &MediationError) -> ErrorReason {
    use ErrorReason as R;
    use MediationError as M;
    use MediationRefusal as F;
    match e {
        M::Refused(r) => match r {
            F::SameChannel(_) | F::SamePartner(_) => R::SameParticipant,
            F::DifferentLedgers | F::NotOneHub => R::WrongLedger,
            F::PayerChannelNotOpen(_) | F::PayeeChannelNotOpen(_) => R::ChannelNotOpen,
            F::IncomingLockNotHeld(_) => R::LockNotHeld,
            F::AlreadyForwarded(_) => R::AlreadyForwarded,
            F::ZeroAmount => R::ZeroAmount,
            F::Fee(_) => R::FeeInvalid,
            F::FeeNotCovered { .. } => R::FeeNotCovered,
            F::ExpiryTooSoon { .. } => R::ExpiryTooSoon,
            F::ExpiryTooLate { .. } => R::ExpiryTooLate,
            F::NoCapacity { .. } => R::NoCapacity,
            F::Arithmetic(_) => R::AmountOverflow,
        },
        M::WrongChannel { .. } => R::WrongChannel,
        M::WrongSecret { .. } => R::WrongSecret,
        M::SecretUnknown => R::SecretUnknown,
        M::OutgoingNotPending(_) | M::IncomingNotPending(_) => R::TransferNotPending,
        M::OutgoingExpired | M::IncomingExpired | M::IncomingSettled { .. } => R::LockExpired,
        M::IncomingNotHeld(_) => R::LockNotHeld,
        M::SecretKnown => R::SecretKnown,
        M::ClaimableOnLedger { .. } => R::LockClaimedOnLedger,
        M::NotExpired { .. } => R::LockNotExpired,
        M::Channel(c) => channel_reason(c),
    }
}

/// The status of a session refusal: a stale or out-of-time message is a wrong moment, the
/// rest is a bad message.
fn session_code(e: &channel_core::session::SessionError) -> Code {
    use channel_core::session::SessionError as S;
    match e {
        S::OfferExpired { .. } | S::Ended(_) | S::SeqNotIncreasing { .. } => {
            Code::FailedPrecondition
        }
        S::BadBill(channel_core::mediation::PaymentRequestError::Expired { .. }) => {
            Code::FailedPrecondition
        }
        S::AmountOverflow { .. } => Code::OutOfRange,
        _ => Code::InvalidArgument,
    }
}

/// The status of a ledger rejection: by the kind of rule broken.
fn ledger_code(e: &LedgerError) -> Code {
    use LedgerError as L;
    match e {
        L::UnknownChannel(_) | L::NothingToUnlock { .. } => Code::NotFound,
        L::NotParticipant { .. } => Code::PermissionDenied,
        L::ChannelExists { .. } | L::SecretAlreadyRegistered { .. } => Code::AlreadyExists,
        L::SelfChannel
        | L::ZeroAddress
        | L::ZeroSecret
        | L::WrongDomain { .. }
        | L::WrongChannel { .. }
        | L::BadSignature { .. }
        | L::MalformedEmptyProof
        | L::LocksrootMismatch { .. }
        | L::BadLocks(_)
        | L::CooperativeSettleNotWhole { .. }
        | L::CooperativeSettleSameParticipant { .. }
        | L::SettleParticipantsMismatch { .. } => Code::InvalidArgument,
        L::Overflow(_) => Code::OutOfRange,
        L::Underflow(_) => Code::Internal,
        // Phase, balance, nonce and time rules: valid request, wrong moment or state.
        _ => Code::FailedPrecondition,
    }
}

/// The status of a refused channel transition: malformed or forged proofs are the caller's
/// fault (INVALID_ARGUMENT), a replayed or stale one ALREADY_EXISTS, a valid request at the
/// wrong moment (a lock or withdraw already expired, a nonce ahead of the channel's) or
/// beyond the balance FAILED_PRECONDITION.
fn channel_code(e: &channel_core::channel::ChannelError) -> Code {
    use channel_core::channel::ChannelError as C;
    match e {
        C::StaleNonce { .. } => Code::AlreadyExists,
        C::InsufficientBalance { .. }
        | C::NotOpen(_)
        | C::NonceGap { .. }
        | C::LockExpired { .. }
        | C::WithdrawExpired { .. }
        | C::WithdrawPending
        | C::NoPendingWithdraw
        | C::LockNotExpired(_)
        | C::LockClaimedOnLedger(_)
        | C::DepositDecreased { .. }
        | C::BalanceDataUnknown { .. } => Code::FailedPrecondition,
        C::CooperativeClose(r) => {
            use channel_core::channel::CooperativeCloseRefusal as R;
            match r {
                R::Expired { .. } | R::LocksPending | R::WithdrawPending => {
                    Code::FailedPrecondition
                }
                _ => Code::InvalidArgument,
            }
        }
        C::NotParticipant(_) => Code::PermissionDenied,
        C::Overflow(_) | C::NonceExhausted => Code::OutOfRange,
        _ => Code::InvalidArgument,
    }
}

/// The status of a refused mediation step: no capacity is RESOURCE_EXHAUSTED, a lock or
/// secret that does not fit the transfer INVALID_ARGUMENT, a valid step at the wrong moment
/// (expired, not yet expired, channel not open) FAILED_PRECONDITION.
fn mediation_code(e: &MediationError) -> Code {
    use MediationError as M;
    use MediationRefusal as R;
    match e {
        M::Refused(r) => match r {
            R::NoCapacity { .. } => Code::ResourceExhausted,
            R::AlreadyForwarded(_) => Code::AlreadyExists,
            R::PayerChannelNotOpen(_)
            | R::PayeeChannelNotOpen(_)
            | R::ExpiryTooSoon { .. }
            | R::FeeNotCovered { .. } => Code::FailedPrecondition,
            R::Fee(_) | R::Arithmetic(_) => Code::OutOfRange,
            _ => Code::InvalidArgument,
        },
        M::WrongChannel { .. } | M::WrongSecret { .. } => Code::InvalidArgument,
        M::Channel(c) => channel_code(c),
        _ => Code::FailedPrecondition,
    }
}

#[cfg(test)]
mod tests {
    use channel_core::channel::ChannelError;
    use channel_core::mediation::MediationRefusal;
    use channel_core::{Address, U256};
    use voltlane_proto::errors::status_reason;

    use super::*;

    fn answer(e: impl Into<HubError>) -> (Code, Option<String>) {
        let status = Status::from(e.into());
        (status.code(), status_reason(&status))
    }

    fn is(code: Code, reason: &str) -> (Code, Option<String>) {
        (code, Some(reason.to_string()))
    }

    #[test]
    fn a_settle_inside_the_window_is_the_channels_state_not_a_bad_argument() {
        let e = LedgerError::SettlementWindowOpen {
            settle_after: 100,
            now: 50,
        };
        assert_eq!(
            answer(e),
            is(Code::FailedPrecondition, "SETTLE_WINDOW_OPEN")
        );
        assert_eq!(
            answer(LedgerError::WrongPhase {
                channel_id: U256::from(1u8),
                expected: channel_core::ledger::ChannelPhase::Closed,
                actual: channel_core::ledger::ChannelPhase::Opened,
            }),
            is(Code::FailedPrecondition, "CHANNEL_NOT_CLOSED")
        );
    }

    #[test]
    fn codes_follow_the_meaning_and_reasons_name_the_rule() {
        // State and time: FAILED_PRECONDITION.
        assert_eq!(
            answer(ChannelError::NotOpen("closed")),
            is(Code::FailedPrecondition, "CHANNEL_NOT_OPEN")
        );
        assert_eq!(
            answer(ChannelError::LockExpired {
                expiration: 10,
                now: 11
            }),
            is(Code::FailedPrecondition, "LOCK_EXPIRED")
        );
        assert_eq!(
            answer(ChannelError::WithdrawExpired { until: 10, now: 11 }),
            is(Code::FailedPrecondition, "WITHDRAW_EXPIRED")
        );
        assert_eq!(
            answer(HubError::PayeeOffline(Address([1; 20]))),
            is(Code::FailedPrecondition, "PAYEE_OFFLINE")
        );
        // Arguments that can never be valid: INVALID_ARGUMENT.
        assert_eq!(
            answer(ChannelError::BadSignature(channel_core::CryptoError::HighS)),
            is(Code::InvalidArgument, "BAD_SIGNATURE")
        );
        assert_eq!(
            answer(ChannelError::WrongChain {
                expected: U256::from(1u8),
                got: U256::from(2u8)
            }),
            is(Code::InvalidArgument, "WRONG_DOMAIN")
        );
        assert_eq!(
            answer(FieldError::new("to", voltlane_proto::Rule::Missing)),
            is(Code::InvalidArgument, "MALFORMED_FIELD")
        );
        // The rest by its kind.
        assert_eq!(
            answer(ChannelError::StaleNonce { latest: 3, got: 2 }),
            is(Code::AlreadyExists, "STALE_NONCE")
        );
        assert_eq!(
            answer(MediationError::Refused(MediationRefusal::NoCapacity {
                available: U256::ZERO,
                requested: U256::from(5u8),
            })),
            is(Code::ResourceExhausted, "NO_CAPACITY")
        );
        assert_eq!(
            answer(HubError::ShuttingDown),
            is(Code::Unavailable, "SHUTTING_DOWN")
        );
        assert_eq!(
            answer(HubError::Internal("bug".into())),
            is(Code::Internal, "INTERNAL")
        );
    }

    #[test]
    fn a_pay_rejection_carries_the_same_code_message_and_reason_as_the_status() {
        let e = HubError::PayeeOffline(Address([1; 20]));
        let r = e.rejection();
        assert_eq!(r.code, Code::FailedPrecondition as i32);
        assert_eq!(r.reason, e.to_string());
        assert_eq!(r.error_reason, ErrorReason::PayeeOffline as i32);
    }
}
