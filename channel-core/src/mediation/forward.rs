//! The hub's decision to forward: given a lock it has just received from the payer (already
//! validated by [`Channel::handle_locked_transfer`]) and the channel toward the payee, either
//! the outgoing lock to create or a typed [`MediationRefusal`]. A refusal changes nothing.

use crate::channel::{Channel, ChannelEvent, ChannelPhase};
use crate::crypto::Signer;
use crate::locks::HashTimeLock;
use crate::primitives::{Address, H256, U256};

use super::fees::{FeeError, MediationConfig};
use super::record::MediatedTransfer;
use super::MediationError;

/// Why the hub will not forward a lock. The payer's lock stays pending in the incoming
/// channel until it expires and the payer takes it back with a lock-expired message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediationRefusal {
    #[error("payer and payee are the same channel {0}")]
    SameChannel(U256),
    #[error("payer and payee are the same participant {0}")]
    SamePartner(Address),
    #[error("the two channels are on different ledgers")]
    DifferentLedgers,
    #[error("the two channels do not belong to the same hub")]
    NotOneHub,
    #[error("channel with the payer is {0}, not open")]
    PayerChannelNotOpen(&'static str),
    #[error("channel with the payee is {0}, not open")]
    PayeeChannelNotOpen(&'static str),
    #[error("the payer holds no pending lock {0} toward the hub")]
    IncomingLockNotHeld(H256),
    #[error("a transfer with secrethash {0} is already forwarded to the payee")]
    AlreadyForwarded(H256),
    #[error("amount for the payee must be greater than zero")]
    ZeroAmount,
    #[error("mediation fee cannot be computed: {0}")]
    Fee(#[from] FeeError),
    #[error("incoming lock of {locked} does not cover amount {amount} plus fee {fee}")]
    FeeNotCovered {
        locked: U256,
        amount: U256,
        fee: U256,
    },
    #[error(
        "incoming lock expires at {incoming_expiration}: the outgoing lock would expire at \
         {outgoing_expiration}, it must be later than {earliest}"
    )]
    ExpiryTooSoon {
        incoming_expiration: u64,
        outgoing_expiration: u64,
        earliest: u64,
    },
    #[error(
        "incoming lock expires at {expiration}: the latest expiration the hub takes is \
         {latest} (ledger time {now} plus the settlement window {settlement_window} s)"
    )]
    ExpiryTooLate {
        expiration: u64,
        latest: u64,
        now: u64,
        settlement_window: u64,
    },
    #[error("hub has no capacity toward the payee: {available} available, {requested} needed")]
    NoCapacity { available: U256, requested: U256 },
    #[error("channel arithmetic failed: {0}")]
    Arithmetic(&'static str),
}

/// What [`plan_forward`] decided: the lock to send to the payee and the fee it earns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardPlan {
    pub outgoing_lock: HashTimeLock,
    pub fee: U256,
}

/// Decides whether the hub forwards `incoming_lock` (the payer's, pending in `incoming`) as a
/// lock of `amount` toward the payee over `outgoing`, at ledger time `now`.
///
/// Accepts only if all hold, checked in this order:
/// 1. two different open channels of the same hub on one ledger, with two different
///    partners;
/// 2. the payer's lock is pending in `incoming` exactly as given, and no lock with its
///    secrethash is already pending toward the payee;
/// 3. `incoming_lock.amount >= amount + fee_for(amount)`, with `amount > 0`;
/// 4. the outgoing expiration `incoming.expiration - reveal_timeout` is later than
///    `now + min_outgoing_lifetime`, and the incoming expiration is at most
///    `now + settlement_window` ([`MediationConfig::latest_lock_expiration`]; the outgoing
///    one, `reveal_timeout` earlier, is then within it too);
/// 5. the hub can lock `amount` toward the payee (its distributable balance there).
///
/// Any excess of the incoming lock over amount + fee is kept by the hub: the payer chose it.
pub fn plan_forward(
    incoming: &Channel,
    incoming_lock: &HashTimeLock,
    amount: U256,
    outgoing: &Channel,
    config: &MediationConfig,
    now: u64,
) -> Result<ForwardPlan, MediationRefusal> {
    if incoming.id() == outgoing.id() {
        return Err(MediationRefusal::SameChannel(incoming.id()));
    }
    if incoming.partner_address() == outgoing.partner_address() {
        return Err(MediationRefusal::SamePartner(incoming.partner_address()));
    }
    if incoming.domain() != outgoing.domain() || incoming.our_address() != outgoing.our_address() {
        return Err(MediationRefusal::DifferentLedgers);
    }
    if incoming.phase() != ChannelPhase::Open {
        return Err(MediationRefusal::PayerChannelNotOpen(
            incoming.phase().name(),
        ));
    }
    if outgoing.phase() != ChannelPhase::Open {
        return Err(MediationRefusal::PayeeChannelNotOpen(
            outgoing.phase().name(),
        ));
    }
    let secrethash = incoming_lock.secrethash;
    if incoming.partner().locks.get(&secrethash) != Some(incoming_lock) {
        return Err(MediationRefusal::IncomingLockNotHeld(secrethash));
    }
    if outgoing.our().locks.contains(&secrethash) {
        return Err(MediationRefusal::AlreadyForwarded(secrethash));
    }
    if amount.is_zero() {
        return Err(MediationRefusal::ZeroAmount);
    }
    let fee = config.fees.fee_for(amount)?;
    let needed = config.fees.gross_amount(amount)?;
    if incoming_lock.amount < needed {
        return Err(MediationRefusal::FeeNotCovered {
            locked: incoming_lock.amount,
            amount,
            fee,
        });
    }
    let earliest = now.saturating_add(config.min_outgoing_lifetime);
    let outgoing_expiration = incoming_lock
        .expiration
        .saturating_sub(config.reveal_timeout);
    if outgoing_expiration <= earliest {
        return Err(MediationRefusal::ExpiryTooSoon {
            incoming_expiration: incoming_lock.expiration,
            outgoing_expiration,
            earliest,
        });
    }
    let latest = config.latest_lock_expiration(now);
    if incoming_lock.expiration > latest {
        return Err(MediationRefusal::ExpiryTooLate {
            expiration: incoming_lock.expiration,
            latest,
            now,
            settlement_window: config.settlement_window,
        });
    }
    let available = outgoing
        .our_distributable()
        .map_err(|_| MediationRefusal::Arithmetic("hub distributable toward the payee"))?;
    if available < amount {
        return Err(MediationRefusal::NoCapacity {
            available,
            requested: amount,
        });
    }
    Ok(ForwardPlan {
        outgoing_lock: HashTimeLock {
            expiration: outgoing_expiration,
            amount,
            secrethash,
        },
        fee,
    })
}

/// Plans and, if accepted, carries out the forward: signs the locked transfer toward the payee
/// in `outgoing` and returns the new [`MediatedTransfer`] record with the channel's events
/// (among them the `Send` of the locked transfer).
///
/// **Persist `outgoing` and the record together before sending the message.** On any error
/// `outgoing` is unchanged and there is no record.
#[allow(clippy::too_many_arguments)] // the plan's inputs plus what signing needs
pub fn forward(
    incoming: &Channel,
    incoming_lock: &HashTimeLock,
    amount: U256,
    outgoing: &mut Channel,
    config: &MediationConfig,
    now: u64,
    additional_hash: H256,
    signer: &dyn Signer,
) -> Result<(MediatedTransfer, Vec<ChannelEvent>), MediationError> {
    let plan = plan_forward(incoming, incoming_lock, amount, outgoing, config, now)?;
    let events = outgoing.send_locked_transfer(plan.outgoing_lock, now, additional_hash, signer)?;
    let record = MediatedTransfer::new(incoming, *incoming_lock, outgoing, plan, config);
    Ok((record, events))
}

/// Takes the payer's locked transfer (`proof` carrying `lock`, judged by the payer's channel
/// `incoming` at `now`) **only together with** its forward to the payee over `outgoing`:
/// both channels change and the record is returned, or neither changes. The rule that a
/// mediator never holds (and so can never claim) a lock it did not forward; a refusal
/// answers the payer's message, which the payer then takes back
/// ([`Channel::retract_refused_lock`]).
///
/// **Persist both channels and the record in one write before acknowledging the proof or
/// sending the forward.**
#[allow(clippy::too_many_arguments)] // the forward's inputs plus the payer's proof
pub fn take_and_forward(
    incoming: &mut Channel,
    proof: &crate::proofs::SignedBalanceProof,
    lock: &HashTimeLock,
    amount: U256,
    outgoing: &mut Channel,
    config: &MediationConfig,
    now: u64,
    additional_hash: H256,
    signer: &dyn Signer,
) -> Result<(MediatedTransfer, Vec<ChannelEvent>), MediationError> {
    let mut taken = incoming.clone();
    taken.handle_locked_transfer(proof, lock, now)?;
    let (record, events) = forward(
        &taken,
        lock,
        amount,
        outgoing,
        config,
        now,
        additional_hash,
        signer,
    )?;
    *incoming = taken;
    Ok((record, events))
}
