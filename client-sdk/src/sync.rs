//! The decisions of the background tasks as pure functions, so they can be tested without a
//! hub: which unacknowledged proofs to re-send after a reconnect, how to read an ack, and how a
//! ledger event changes the channel.

use channel_core::channel::{Channel, ChannelEvent};
use channel_core::ledger::{ChannelRecord, LedgerEvent, LedgerEventKind};
use channel_core::primitives::U256;

use crate::error::ClientError;
use crate::store::UnackedPayment;
use crate::types::{PaymentReceipt, Settlement};

/// What to do with the unacknowledged log once the hub said which device nonce it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResyncPlan {
    /// Proofs the hub already has: prune them and resolve their `pay` calls.
    pub acked: Vec<UnackedPayment>,
    /// Proofs to send again, in nonce order, starting right after the hub's nonce.
    pub resend: Vec<UnackedPayment>,
    /// Left-overs of locked transfers taken back after a refusal (above our own nonce): drop
    /// them.
    pub retracted: Vec<UnackedPayment>,
}

/// Splits the unacknowledged log (lowest nonce first) at `hub_nonce`. Fails if the hub claims
/// a nonce the device never signed, or if the proofs to re-send do not continue the hub's
/// nonce without a gap (the hub would refuse them all).
pub fn plan_resync(
    unacked: Vec<UnackedPayment>,
    hub_nonce: u64,
    our_nonce: u64,
) -> Result<ResyncPlan, ClientError> {
    if hub_nonce > our_nonce {
        return Err(ClientError::HubMisbehaved(format!(
            "hub claims device nonce {hub_nonce}, but the device signed only up to {our_nonce}"
        )));
    }
    // Entries above our own nonce are locked transfers we took back after the hub refused
    // them (the channel was written first, the entry's removal did not make it to disk).
    let (unacked, retracted): (Vec<_>, Vec<_>) =
        unacked.into_iter().partition(|p| p.nonce() <= our_nonce);
    let (acked, resend): (Vec<_>, Vec<_>) =
        unacked.into_iter().partition(|p| p.nonce() <= hub_nonce);
    let mut expected = hub_nonce;
    for p in &resend {
        expected += 1;
        if p.nonce() != expected {
            return Err(ClientError::InvalidState(format!(
                "hub holds device nonce {hub_nonce} but the unacknowledged log continues at \
                 {} instead of {expected}: the device store lost proofs",
                p.nonce()
            )));
        }
    }
    if expected != our_nonce {
        return Err(ClientError::InvalidState(format!(
            "hub holds device nonce {hub_nonce}, the device signed up to {our_nonce}, but only \
             proofs up to {expected} are in the unacknowledged log"
        )));
    }
    Ok(ResyncPlan {
        acked,
        resend,
        retracted,
    })
}

/// The receipt for a payment the hub holds.
pub fn receipt(p: &UnackedPayment) -> PaymentReceipt {
    PaymentReceipt {
        nonce: p.nonce(),
        amount: p.amount,
        transferred_amount: p.proof.proof.balance.transferred_amount,
    }
}

/// Checks an acceptance against the proof that was sent with that nonce.
pub fn check_accepted(
    sent: &UnackedPayment,
    nonce: u64,
    transferred: U256,
) -> Result<(), ClientError> {
    let ours = sent.proof.proof.balance.transferred_amount;
    if nonce != sent.nonce() || transferred != ours {
        return Err(ClientError::HubMisbehaved(format!(
            "ack for nonce {nonce} with transferred amount {transferred} does not match the sent \
             proof (nonce {}, transferred {ours})",
            sent.nonce()
        )));
    }
    Ok(())
}

/// Whether a per-payment rejection code is worth a resync and re-send (the hub could not
/// store it, or already has it) rather than a final answer.
pub fn rejection_is_transient(code: tonic::Code) -> bool {
    use tonic::Code as C;
    matches!(
        code,
        C::Unavailable
            | C::Internal
            | C::ResourceExhausted
            | C::Aborted
            | C::DeadlineExceeded
            | C::Unknown
            | C::AlreadyExists
    )
}

/// How a ledger event affected our channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventEffect {
    /// The channel changed and must be persisted.
    pub changed: bool,
    /// The hub closed the channel: contest with our latest hub proof, then settle.
    pub hub_closed: bool,
    /// The channel settled with this split.
    pub settled: Option<Settlement>,
}

/// Applies `ev` to `channel` if it concerns it (the core's idempotent
/// `Channel::handle_ledger_event`): replays of events already reflected in the channel are
/// no-ops, so op responses and the subscription may both deliver an event.
pub fn apply_event(channel: &mut Channel, ev: &LedgerEvent) -> Result<EventEffect, ClientError> {
    let events = channel.handle_ledger_event(ev)?;
    let hub = channel.partner_address();
    let mut effect = EventEffect {
        changed: !events.is_empty(),
        hub_closed: events
            .iter()
            .any(|e| matches!(e, ChannelEvent::Closed { closer } if *closer == hub)),
        settled: None,
    };
    if let LedgerEventKind::ChannelSettled {
        channel_id,
        participant1,
        participant1_amount,
        participant2_amount,
        ..
    } = &ev.kind
    {
        if *channel_id == channel.id() {
            let (device_amount, hub_amount) = if *participant1 == channel.our_address() {
                (*participant1_amount, *participant2_amount)
            } else {
                (*participant2_amount, *participant1_amount)
            };
            effect.settled = Some(Settlement {
                channel_id: *channel_id,
                device_amount,
                hub_amount,
            });
        }
    }
    Ok(effect)
}

/// Brings the channel's deposits and withdraws up to the ledger's record (they only grow).
pub fn apply_record(channel: &mut Channel, rec: &ChannelRecord) -> Result<(), ClientError> {
    if rec.id != channel.id() {
        return Err(ClientError::HubMisbehaved(format!(
            "ledger returned channel {} for channel {}",
            rec.id,
            channel.id()
        )));
    }
    channel.handle_ledger_record(rec)?;
    Ok(())
}

#[cfg(test)]
mod tests;
