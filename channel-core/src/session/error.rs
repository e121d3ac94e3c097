//! Why a session input was refused. One enum for the whole session module, grouped by what
//! the caller does about it: a signed message is not what it claims (drop it), a reading
//! breaks the metering rules (refuse it and do not pay), a payment or receipt does not add up
//! (refuse it), or the session has ended. A refused input never changes a session.

use crate::crypto::CryptoError;
use crate::mediation::PaymentRequestError;
use crate::primitives::{Address, H256, U256};

use super::offer::MeterUnit;
use super::reading::StopReason;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    // --- a signed message is not what it claims ---
    #[error("session offer signature rejected: {0}")]
    BadOfferSignature(CryptoError),
    #[error("meter reading signature rejected: {0}")]
    BadReadingSignature(CryptoError),
    #[error("session receipt signature of the {role} rejected: {source}")]
    BadReceiptSignature {
        role: &'static str,
        source: CryptoError,
    },
    #[error("signer {signer} may not sign this message (expected {expected})")]
    NotSigner { expected: Address, signer: Address },
    #[error("signing failed: {0}")]
    Signing(CryptoError),

    // --- the offer cannot be accepted ---
    #[error(
        "session offer is for another ledger (chain {got_chain}, token network {got_network})"
    )]
    WrongDomain {
        got_chain: U256,
        got_network: Address,
    },
    #[error("session offer expired: expires_at {expires_at} is not after {now}")]
    OfferExpired { expires_at: u64, now: u64 },
    #[error("session offer max_units_per_hour must be greater than zero")]
    ZeroRate,

    // --- a reading breaks the metering rules ---
    #[error("reading is for session {got}, this session is {expected}")]
    WrongSession { expected: H256, got: H256 },
    #[error("reading is for OCPP transaction {got}, this session is transaction {expected}")]
    WrongTransaction { expected: H256, got: H256 },
    #[error("reading measures {got:?}, the session is metered in {expected:?}")]
    WrongUnit { expected: MeterUnit, got: MeterUnit },
    #[error("reading seq {got} does not follow the last accepted seq {last}")]
    SeqNotIncreasing { last: u64, got: u64 },
    #[error("register went backwards from {last} to {got}")]
    RegisterBackwards { last: u64, got: u64 },
    #[error("reading timestamp {got} is before the last accepted timestamp {last}")]
    TimestampBackwards { last: u64, got: u64 },
    #[error(
        "reading timestamp {timestamp} is in the future (now {now}, tolerance {tolerance_secs} s)"
    )]
    FromTheFuture {
        timestamp: u64,
        now: u64,
        tolerance_secs: u64,
    },
    #[error(
        "register rose by {units} units in {elapsed_secs} s, more than the maximum rate of {max_units_per_hour} units per hour allows"
    )]
    TooFast {
        units: u64,
        elapsed_secs: u64,
        max_units_per_hour: u64,
    },
    #[error("reading shows {metered} units, beyond the budget of {budget_units} units")]
    BudgetExceeded { metered: u64, budget_units: u64 },
    #[error("amount for {units} units at price {price} overflows uint256")]
    AmountOverflow { units: u64, price: U256 },

    // --- a payment does not add up ---
    #[error("no payment {key} of this session is in flight")]
    UnknownPayment { key: H256 },
    #[error("a payment {key} of this session is already in flight")]
    PaymentExists { key: H256 },
    #[error("cannot pay for {units} units: {uncovered} metered units are not yet paid for")]
    NothingDue { units: u64, uncovered: u64 },

    // --- a bill (the payee's payment request for a reading) does not add up ---
    #[error("bill rejected: {0}")]
    BadBill(PaymentRequestError),
    #[error("bill names {memo_hash}, which is not the latest accepted reading of this session")]
    BillForUnknownReading { memo_hash: H256 },
    #[error("bill of {amount} is not a whole number of units at the price {price}")]
    BillNotWholeUnits { amount: U256, price: U256 },
    #[error("bill of {amount} asks for more than the {uncovered} metered units not yet paid for")]
    BillBeyondMetered { amount: U256, uncovered: u64 },
    #[error("cannot bill {units} units: {unbilled} delivered units are published and unbilled")]
    NothingToBill { units: u64, unbilled: u64 },
    #[error("bill {secrethash} is already outstanding")]
    BillExists { secrethash: H256 },
    #[error("no bill {secrethash} of this session is outstanding")]
    UnknownBill { secrethash: H256 },

    // --- a receipt does not add up ---
    #[error("receipt says {field} is {got}, this session says {expected}")]
    ReceiptMismatch {
        field: &'static str,
        expected: String,
        got: String,
    },

    // --- the session is over ---
    #[error("the session has ended ({0:?})")]
    Ended(StopReason),
}
