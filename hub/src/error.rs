//! The hub's one error enum and its one mapping onto gRPC statuses.
//!
//! Variants are grouped by what the caller must do: fix the request (INVALID_ARGUMENT),
//! authenticate or stay off other people's channels (UNAUTHENTICATED / PERMISSION_DENIED),
//! accept that the ledger refused (the status follows the rule broken), or retry later because
//! the hub itself failed (UNAVAILABLE / INTERNAL). The message is always the Display of the
//! underlying error, which names the field or rule.

use channel_core::ledger::LedgerError;
use channel_core::mediation::{MediationError, MediationRefusal};
use tonic::{Code, Status};
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
        let code = match &e {
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
            | HubError::Entropy(_)
            | HubError::Io(_)
            | HubError::Transport(_)
            | HubError::Internal(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
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
/// wrong moment or beyond the balance FAILED_PRECONDITION.
fn channel_code(e: &channel_core::channel::ChannelError) -> Code {
    use channel_core::channel::ChannelError as C;
    match e {
        C::StaleNonce { .. } => Code::AlreadyExists,
        C::InsufficientBalance { .. }
        | C::NotOpen(_)
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
