//! Mediation: the rules a hub follows when it forwards a hash-time-locked transfer from a
//! payer's channel to a payee's channel, both channels with the hub. Pure functions and a
//! per-transfer record over the two [`Channel`](crate::channel::Channel)s as the hub sees
//! them; no wire, no disk, no clock.
//!
//! # Where the secret is born: the payee
//! The payee makes the secret and hands the payer a [`SignedPaymentRequest`] (payee, amount,
//! `sha256(secret)`, payment id, expiry), as a Lightning invoice does. We chose this over
//! Raiden's payer-born secret because:
//! - the payer's proof of payment falls out for free: the payee signed that it will accept
//!   `amount` against `secrethash`, and it reveals the secret only once it holds a lock for
//!   the amount, so (signed request, secret) proves the payee was paid. With a payer-born
//!   secret the payer knows the secret from the start, so the secret proves nothing and a
//!   separate payee receipt would be needed;
//! - it saves Raiden's secret-request round trip (payee asks the payer for the secret);
//! - devices that sell (chargers, meters) naturally issue requests for what they sell.
//!
//! # Message flow
//! ```text
//! payee → payer    SignedPaymentRequest { amount, secrethash, … }   (out of band or via hub)
//! payer → hub      LockedTransfer(amount + fee, expiration E)        hub: handle_locked_transfer
//! hub              plan_forward / forward → MediatedTransfer record  (persist, then send)
//! hub → payee      LockedTransfer(amount, expiration E - reveal_timeout)
//! payee → hub      secret                                            handle_secret_reveal
//! hub → payee      Unlock(secret)                                    unlock_outgoing
//! hub → payer      secret                                            poll: RevealSecretToPayer
//! payer → hub      Unlock(secret)                                    handle_incoming_unlock
//! ```
//!
//! # Rules that hold
//! - The hub forwards only a lock it holds from the payer that covers amount + fee
//!   ([`FeePolicy::fee_for`], rounded up), with an outgoing expiration `reveal_timeout`
//!   earlier and still at least `min_outgoing_lifetime` away, within its capacity toward the
//!   payee; otherwise a [`MediationRefusal`], and nothing changes.
//! - The hub unlocks toward the payee only against the secret, and only while it can still
//!   claim the incoming lock. The payee can reveal up to the outgoing expiration; from then
//!   on the hub has `reveal_timeout` to register the secret on the ledger
//!   ([`MediatedTransfer::must_register_secret_by`], [`MediationAction::RegisterSecret`]),
//!   after which the incoming lock is the hub's even if the payer never unlocks; the hub
//!   refuses the payer's lock-expired for it and claims it after settlement
//!   ([`MediationAction::ClaimOnLedger`]). A secret that reaches the ledger only after the
//!   incoming lock expired is recorded but never makes the hub pay.
//! - A transfer that cannot complete never rots: a refused forward leaves the payer's lock to
//!   expire (the payer's channel reports it via `handle_timeout`, the payer sends lock-expired,
//!   the hub accepts it with [`Channel::handle_lock_expired`](crate::channel::Channel::handle_lock_expired));
//!   a forwarded one whose payee never reveals has its outgoing lock taken back at expiry
//!   ([`MediationAction::ExpireOutgoing`]) and the incoming one expires later the same way
//!   ([`MediatedTransfer::handle_incoming_expired`]).
//!
//! # Durability and call order
//! The hub keeps, per transfer, the [`MediatedTransfer`] record next to its two channels (its
//! own record type, converted through [`MediatedTransfer::to_parts`] /
//! [`MediatedTransfer::from_parts`]). A transition that changes a channel and the record must be
//! persisted as one before its message is sent. After a restart, [`MediatedTransfer::poll`]
//! on every unfinished record says what is still due; it reads nothing but the record and
//! `now`. Call order per input: the channel-level `handle_*` for the payer's locked transfer,
//! then [`forward`]; for every later input the record's transition (which runs the channel's);
//! then `poll` and carry out its actions.
//!
//! # The device's side
//! [`lock_expiration`], [`check_payable`], [`lock_accept_time`], [`reveal_decision`] and
//! [`janitor_plan`] are the payer's and payee's rules (module `device`), driven by the SDK.
//!
//! Not here: the wire messages, the hub's store and routing table (which record belongs to
//! which secrethash), refund transfers back to the payer (a failed payment is released by
//! lock expiry), and multi-hop routes (one hub between payer and payee).

mod claim;
mod device;
mod error;
mod fees;
mod forward;
mod poll;
mod record;
mod request;

pub use claim::check_incoming_claimable;
pub use device::{
    check_payable, janitor_plan, lock_accept_time, lock_expiration, reveal_decision, JanitorPlan,
    LockExpirationError, NoReveal, NotPayable, OwnRequest, PriorAttempt,
};
pub use error::MediationError;
pub use fees::{FeeError, FeePolicy, MediationConfig, PPM};
pub use forward::{forward, plan_forward, take_and_forward, ForwardPlan, MediationRefusal};
pub use poll::{MediationAction, RegisterDeadline};
pub use record::{
    Leg, MediatedTransfer, MediatedTransferParts, MediatedTransferPartsError, Stage,
    MEDIATED_TRANSFER_VERSION,
};
pub use request::{
    PaymentRequest, PaymentRequestError, SignedPaymentRequest, PAYMENT_REQUEST_LEN,
    PAYMENT_REQUEST_TAG,
};
