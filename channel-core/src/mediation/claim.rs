//! The mediator's first rule: **never pay out on the outgoing side unless the incoming side
//! is still claimable.** [`check_incoming_claimable`] says whether the hub, knowing the secret
//! at a given ledger time, can still get the payer's lock: off-chain from the payer, or on
//! the ledger by registering the secret before the lock expires and unlocking after
//! settlement. [`MediatedTransfer::handle_secret_reveal`](super::MediatedTransfer::handle_secret_reveal)
//! and [`MediatedTransfer::unlock_outgoing`](super::MediatedTransfer::unlock_outgoing) call
//! it, so a driver cannot pay the payee without it.
//!
//! The second rule, **never claim an incoming lock you did not forward**, is kept by taking a
//! payer's lock only together with its forward: the hub runs
//! [`forward`](super::forward) on the payer's channel with the lock taken and keeps both or
//! neither, so no lock enters a payer's channel without a record that forwarded it.

use crate::channel::{Channel, ChannelPhase};
use crate::locks::HashTimeLock;

use super::MediationError;

/// Whether the hub, learning the secret of `lock` at ledger time `now`, can still claim it
/// from the payer's channel `incoming` (as the hub holds it):
/// - the lock is pending there exactly as forwarded;
/// - it is already claimed on the ledger (secret registered strictly before its
///   expiration): the ledger pays it to the hub whatever happens next; otherwise
/// - it has not expired, and the channel has not settled: after settlement anyone may
///   unlock the kept-back tokens, and an unlock before the secret is registered sends them
///   back to the payer, so from then on only a registration that already happened counts.
///
/// The reveal timeout between the two locks is what gives the hub time to register the
/// secret once it learns it just before the outgoing lock expires; that margin is checked
/// where the reveal is taken (the outgoing lock must not have expired).
pub fn check_incoming_claimable(
    incoming: &Channel,
    lock: &HashTimeLock,
    now: u64,
) -> Result<(), MediationError> {
    if incoming.partner().locks.get(&lock.secrethash) != Some(lock) {
        return Err(MediationError::IncomingNotHeld(lock.secrethash));
    }
    if incoming.claimed_on_ledger(lock) {
        return Ok(());
    }
    if lock.is_expired(now) {
        return Err(MediationError::IncomingExpired);
    }
    if incoming.phase() == ChannelPhase::Settled {
        return Err(MediationError::IncomingSettled {
            expiration: lock.expiration,
        });
    }
    Ok(())
}
