//! The channel monitor: what this participant must submit to the ledger to protect its
//! balance, decided from the ledger's *current state* of the channel, not from having seen an
//! event. Level-triggered, as a watchtower is: drivers call [`Channel::poll_ledger_actions`]
//! at start-up, on every timer tick and whenever the ledger moved, and submit what it returns.
//! A submission that turns out to be redundant (someone already updated, settled, registered
//! or unlocked) is refused by the ledger and changes nothing, so calling too often is harmless,
//! while calling too rarely can never lose something that is still possible to save.
//!
//! What it asks for:
//! - **update**: the partner closed, the window is open, and the ledger holds an older proof of
//!   the partner's than the one we hold;
//! - **settle**: the window is over;
//! - **register secret**: a lock the partner sent us is still pending, we know its secret, the
//!   registry does not, it has not expired, and either it expires within `reveal_timeout` or
//!   the channel is no longer open on the ledger (so it can only be claimed there);
//! - **close**: the channel is open on the ledger and a lock the partner sent us is claimed
//!   there (secret registered before its expiration) but has expired without the partner's
//!   off-chain unlock: the partner will not pay it off-chain, so close to claim it on the
//!   ledger (then settle and unlock);
//! - **unlock**: the channel settled and the ledger keeps locked tokens back for a direction
//!   whose locks we hold (the receiver gets the claimed ones, the sender the rest): the
//!   partner's current locks, our current locks, or, when the partner put an old proof of
//!   ours on the ledger, the locks behind it from the driver's archive
//!   (see [`super::lock_archive`]). Only once every lock of that set is decided: expired, or
//!   claimed on the ledger. An unlock sends every lock whose secret is not registered yet
//!   back to its sender, so unlocking a lock that can still be claimed would give away a
//!   lock whose secret may still come (a mediator would then have paid its payee for
//!   nothing). Locks within the settlement window (see
//!   [`MediationConfig::settlement_window`](crate::mediation::MediationConfig)) are all
//!   expired at settlement; the wait matters for longer ones.

use super::{Channel, ChannelError, UpdateTransaction};
use crate::crypto::keccak256;
use crate::crypto::Signer;
use crate::ledger::{ChannelPhase as LedgerPhase, ChannelRecord};
use crate::locks::{pack_locks, Secret};
use crate::primitives::{Address, H256, U256};

/// A transaction the monitor wants on the ledger now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerAction {
    /// The partner closed with an older proof of its own than the one we hold: submit ours,
    /// counter-signed, before the window ends.
    Update(Box<UpdateTransaction>),
    /// The settlement window is over: settle.
    Settle { channel_id: U256 },
    /// A lock owed to us is claimed on the ledger but the partner never unlocked it
    /// off-chain: close the channel (with our latest partner proof) to claim it there.
    Close { channel_id: U256 },
    /// Register this secret so that the lock it opens counts on the ledger.
    RegisterSecret { secret: Secret },
    /// Unlock the tokens kept back at settlement for `sender → receiver`.
    Unlock {
        channel_id: U256,
        receiver: Address,
        sender: Address,
        packed_locks: Vec<u8>,
    },
}

/// Locked tokens the ledger keeps back after settlement for `sender → receiver`, waiting for
/// an unlock with the locks whose root is `locksroot`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingUnlock {
    pub sender: Address,
    pub receiver: Address,
    pub locksroot: H256,
}

/// What the monitor needs to know about the ledger.
#[derive(Clone, Copy, Debug)]
pub struct LedgerView<'a> {
    /// The ledger's record of this channel.
    pub record: &'a ChannelRecord,
    /// Ledger time.
    pub now: u64,
    /// Seconds before a received lock's expiry at which we stop waiting for the partner's
    /// off-chain unlock and register the secret ourselves.
    pub reveal_timeout: u64,
    /// The tokens of this channel still kept back for unlock after settlement.
    pub pending_unlocks: &'a [PendingUnlock],
    /// Packed lock lists from the driver's archive for the roots
    /// [`Channel::archived_locks_wanted`] names (empty when it names none). A list is used
    /// only if it hashes to a root kept back for us, so a wrong one does no harm.
    pub archived_locks: &'a [Vec<u8>],
}

impl Channel {
    /// Everything to submit now, given the ledger's state (see the module docs).
    pub fn poll_ledger_actions(
        &self,
        view: &LedgerView<'_>,
        signer: &dyn Signer,
    ) -> Result<Vec<LedgerAction>, ChannelError> {
        let record = view.record;
        if record.id != self.id {
            return Err(ChannelError::WrongChannel {
                expected: self.id,
                got: record.id,
            });
        }
        let mut actions = Vec::new();
        if let Some(update) = self.contest(record, view.now, signer)? {
            actions.push(update);
        }
        if record.phase == LedgerPhase::Closed && view.now > record.settle_after.unwrap_or(0) {
            actions.push(LedgerAction::Settle {
                channel_id: self.id,
            });
        }
        if record.phase == LedgerPhase::Opened && self.owed_lock_to_claim(view.now) {
            actions.push(LedgerAction::Close {
                channel_id: self.id,
            });
        }
        actions.extend(self.secrets_to_register(view));
        if record.phase == LedgerPhase::Settled {
            actions.extend(self.unlocks(view));
        }
        Ok(actions)
    }

    fn contest(
        &self,
        record: &ChannelRecord,
        now: u64,
        signer: &dyn Signer,
    ) -> Result<Option<LedgerAction>, ChannelError> {
        let partner = self.partner.address;
        if record.phase != LedgerPhase::Closed
            || record.closer != Some(partner)
            || now > record.settle_after.unwrap_or(0)
        {
            return Ok(None);
        }
        let on_ledger = record
            .participant(partner)
            .ok_or(ChannelError::NotParticipant(partner))?
            .nonce();
        let Some(closer_proof) = self.partner.latest else {
            return Ok(None);
        };
        if closer_proof.proof.nonce <= on_ledger {
            return Ok(None);
        }
        Ok(Some(LedgerAction::Update(Box::new(UpdateTransaction {
            channel_id: self.id,
            closer_proof,
            non_closing_signature: closer_proof.counter_sign_update(signer)?,
        }))))
    }

    /// A partner lock claimed on the ledger whose expiration passed without an unlock.
    fn owed_lock_to_claim(&self, now: u64) -> bool {
        self.partner
            .locks
            .as_slice()
            .iter()
            .any(|lock| lock.is_expired(now) && self.claimed_on_ledger(lock))
    }

    fn secrets_to_register(&self, view: &LedgerView<'_>) -> Vec<LedgerAction> {
        let off_chain_possible = view.record.phase == LedgerPhase::Opened;
        self.partner
            .locks
            .as_slice()
            .iter()
            .filter(|lock| !lock.is_expired(view.now))
            .filter(|lock| {
                !off_chain_possible
                    || view.now.saturating_add(view.reveal_timeout) >= lock.expiration
            })
            .filter_map(|lock| self.secrets.get(&lock.secrethash))
            .filter(|known| known.registered_at.is_none())
            .map(|known| LedgerAction::RegisterSecret {
                secret: known.secret,
            })
            .collect()
    }

    fn unlocks(&self, view: &LedgerView<'_>) -> Vec<LedgerAction> {
        let (us, partner) = (self.our.address, self.partner.address);
        let current = [(&self.partner, partner, us), (&self.our, us, partner)]
            .into_iter()
            .filter(|(end, _, _)| !end.locks.is_empty())
            .map(|(end, sender, receiver)| {
                (
                    PendingUnlock {
                        sender,
                        receiver,
                        locksroot: end.locks.locksroot(),
                    },
                    pack_locks(end.locks.as_slice()),
                )
            });
        let archived = view.archived_locks.iter().map(|packed| {
            (
                PendingUnlock {
                    sender: us,
                    receiver: partner,
                    locksroot: keccak256(packed),
                },
                packed.clone(),
            )
        });
        let mut actions: Vec<LedgerAction> = Vec::new();
        for (pending, packed_locks) in current.chain(archived) {
            if !self.all_decided(&packed_locks, view.now) {
                continue;
            }
            let unlock = LedgerAction::Unlock {
                channel_id: self.id,
                receiver: pending.receiver,
                sender: pending.sender,
                packed_locks,
            };
            if view.pending_unlocks.contains(&pending) && !actions.contains(&unlock) {
                actions.push(unlock);
            }
        }
        actions
    }

    /// Every lock of `packed_locks` is decided at ledger time `now`: expired, or claimed on
    /// the ledger (its secret registered before its expiration). A list that does not unpack
    /// counts as decided: the ledger refuses its unlock anyway.
    fn all_decided(&self, packed_locks: &[u8], now: u64) -> bool {
        crate::locks::unpack_locks(packed_locks).map_or(true, |locks| {
            locks
                .iter()
                .all(|l| l.is_expired(now) || self.claimed_on_ledger(l))
        })
    }

    /// The earliest ledger time at which [`Channel::poll_ledger_actions`] will have something
    /// new to say without the ledger changing: settling, a received lock whose secret we
    /// know entering its reveal timeout, or a received lock claimed on the ledger expiring
    /// (then we close to claim it).
    pub fn poll_ledger_timeout(&self, record: &ChannelRecord, reveal_timeout: u64) -> Option<u64> {
        if record.id != self.id {
            return None;
        }
        let settle = (record.phase == LedgerPhase::Closed)
            .then(|| record.settle_after.map(|t| t.saturating_add(1)))
            .flatten();
        let reveal = self
            .partner
            .locks
            .as_slice()
            .iter()
            .filter(|l| {
                self.secrets
                    .get(&l.secrethash)
                    .is_some_and(|k| k.registered_at.is_none())
            })
            .map(|l| l.expiration.saturating_sub(reveal_timeout));
        let claim = (record.phase == LedgerPhase::Opened)
            .then(|| {
                self.partner
                    .locks
                    .as_slice()
                    .iter()
                    .filter(|l| self.claimed_on_ledger(l))
                    .map(|l| l.expiration)
                    .min()
            })
            .flatten();
        // A settled channel unlocks a set once its last undecided lock expires.
        let decided = (record.phase == LedgerPhase::Settled)
            .then(|| {
                [&self.partner.locks, &self.our.locks]
                    .into_iter()
                    .filter_map(|set| {
                        set.as_slice()
                            .iter()
                            .filter(|l| !self.claimed_on_ledger(l))
                            .map(|l| l.expiration)
                            .max()
                    })
                    .min()
            })
            .flatten();
        settle
            .into_iter()
            .chain(reveal)
            .chain(claim)
            .chain(decided)
            .min()
    }
}

/// The tokens `ledger` keeps back for unlock in the channel of `record`, both directions:
/// what a driver with the embedded ledger puts in [`LedgerView::pending_unlocks`].
pub fn pending_unlocks(
    ledger: &crate::ledger::Ledger,
    record: &ChannelRecord,
) -> Vec<PendingUnlock> {
    let [a, b] = [
        record.participants[0].address,
        record.participants[1].address,
    ];
    [(a, b), (b, a)]
        .into_iter()
        .filter_map(|(sender, receiver)| {
            ledger
                .pending_unlock(record.id, sender, receiver)
                .map(|e| PendingUnlock {
                    sender,
                    receiver,
                    locksroot: e.locksroot,
                })
        })
        .collect()
}
