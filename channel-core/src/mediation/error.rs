//! Why a transition of a [`MediatedTransfer`](super::MediatedTransfer) was refused. Grouped
//! by consequence, like the channel's errors: the partner's input is wrong (reject it), the
//! step is not due or not allowed in this stage (do something else), or the channel refused
//! (its own error says why). A refused transition changes neither the record nor the channel.

use crate::channel::ChannelError;
use crate::primitives::{H256, U256};

use super::forward::MediationRefusal;
use super::record::Stage;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediationError {
    // --- the hub will not forward ---
    #[error("forward refused: {0}")]
    Refused(#[from] MediationRefusal),

    // --- the input does not belong to this transfer ---
    #[error("wrong channel for this transfer: expected {expected}, got {got}")]
    WrongChannel { expected: U256, got: U256 },
    #[error("secret does not match the transfer: sha256(secret) is {got}, expected {expected}")]
    WrongSecret { expected: H256, got: H256 },

    // --- not allowed in the transfer's stage ---
    #[error("the hub does not know the secret yet: it unlocks to the payee only against it")]
    SecretUnknown,
    #[error("the outgoing lock is no longer pending (transfer is {0:?})")]
    OutgoingNotPending(Stage),
    #[error("the incoming lock is no longer pending (transfer is {0:?})")]
    IncomingNotPending(Stage),
    #[error("the outgoing lock already expired and was taken back: the payment failed")]
    OutgoingExpired,
    #[error("the incoming lock expired unclaimed: the hub cannot claim it any more")]
    IncomingExpired,
    #[error(
        "the payer's channel no longer holds the incoming lock {0} as forwarded: the hub \
         cannot claim it"
    )]
    IncomingNotHeld(H256),
    #[error(
        "the payer's channel settled before the secret was registered on the ledger (the lock \
         expires at {expiration}): anyone may unlock it back to the payer, so the hub will not \
         pay the payee"
    )]
    IncomingSettled { expiration: u64 },
    #[error("the hub knows the secret: it must unlock to the payee, not expire the lock")]
    SecretKnown,
    #[error(
        "the secret was registered on the ledger at {registered_at}, before the lock's \
         expiration {expiration}: the lock is the hub's, it does not expire"
    )]
    ClaimableOnLedger { registered_at: u64, expiration: u64 },
    #[error("the lock has not expired at ledger time {now} (expiration {expiration})")]
    NotExpired { expiration: u64, now: u64 },

    // --- the channel refused ---
    #[error("channel refused: {0}")]
    Channel(#[from] ChannelError),
}
