//! What a [`MediatedTransfer`] needs the hub to do next, level-triggered like the channel's
//! ledger monitor: [`MediatedTransfer::poll`] looks at the record and ledger time and lists
//! every action due; doing one moves the record on, so it is not listed again. The driver
//! calls it after every input to the transfer, after a restart, and when
//! [`MediatedTransfer::poll_timeout`] comes.

use crate::locks::Secret;
use crate::primitives::{H256, U256};

use super::record::{Leg, MediatedTransfer};

/// One thing the hub must do for a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediationAction {
    /// Pay the payee: [`MediatedTransfer::unlock_outgoing`].
    UnlockOutgoing { channel: U256, secret: Secret },
    /// Tell the payer the secret so it unlocks toward the hub (repeated until it does;
    /// the driver chooses how often to resend).
    RevealSecretToPayer { channel: U256, secret: Secret },
    /// The payer has not unlocked and the incoming lock gets close to its expiration:
    /// register the secret on the ledger now, strictly before `before`.
    RegisterSecret { secret: Secret, before: u64 },
    /// The outgoing lock expired without the secret: take it back with
    /// [`MediatedTransfer::expire_outgoing`].
    ExpireOutgoing { channel: U256, secrethash: H256 },
    /// The secret is on the ledger in time but the payer never unlocked: close the incoming
    /// channel and unlock the pending lock on the ledger after settlement.
    ClaimOnLedger { channel: U256, secrethash: H256 },
}

/// The window in which the hub must get the secret into the ledger's registry if the payer
/// has not unlocked: from `from` (the outgoing lock's expiration, i.e. incoming expiration
/// minus the reveal timeout) to strictly before `before` (the incoming lock's expiration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterDeadline {
    pub secret: Secret,
    pub from: u64,
    pub before: u64,
}

impl MediatedTransfer {
    /// Whether (and when) the hub must register the secret on the ledger: the secret is
    /// known, the payer has not unlocked, it is not registered yet, and the payee was paid or
    /// is about to be.
    pub fn must_register_secret_by(&self) -> Option<RegisterDeadline> {
        let secret = self.secret()?;
        if self.incoming_leg() != Leg::Locked
            || self.secret_registered_at().is_some()
            || self.outgoing_leg().taken_back()
        {
            return None;
        }
        let before = self.incoming_lock().expiration;
        Some(RegisterDeadline {
            secret,
            from: before.saturating_sub(self.reveal_timeout()),
            before,
        })
    }

    /// Everything due at ledger time `now`, in the order to do it.
    pub fn poll(&self, now: u64) -> Vec<MediationAction> {
        let mut actions = Vec::new();
        let secrethash = self.secrethash();
        if let Some(secret) = self.secret() {
            if self.outgoing_leg() == Leg::Locked && !self.incoming_leg().taken_back() {
                actions.push(MediationAction::UnlockOutgoing {
                    channel: self.outgoing_channel(),
                    secret,
                });
            }
            if self.incoming_leg() == Leg::Locked && !self.outgoing_leg().taken_back() {
                actions.push(MediationAction::RevealSecretToPayer {
                    channel: self.incoming_channel(),
                    secret,
                });
            }
        }
        if let Some(deadline) = self.must_register_secret_by() {
            if now >= deadline.from && now < deadline.before {
                actions.push(MediationAction::RegisterSecret {
                    secret: deadline.secret,
                    before: deadline.before,
                });
            }
        }
        let outgoing_expirable = self.secret().is_none() || self.incoming_leg().taken_back();
        if self.outgoing_leg() == Leg::Locked
            && outgoing_expirable
            && self.outgoing_lock().is_expired(now)
        {
            actions.push(MediationAction::ExpireOutgoing {
                channel: self.outgoing_channel(),
                secrethash,
            });
        }
        if self.incoming_leg() == Leg::Locked
            && self.incoming_claimable_on_ledger()
            && self.incoming_lock().is_expired(now)
        {
            actions.push(MediationAction::ClaimOnLedger {
                channel: self.incoming_channel(),
                secrethash,
            });
        }
        actions
    }

    /// The next ledger time at which [`MediatedTransfer::poll`] will list something new
    /// without any input: the outgoing lock's expiration, the start of the registration
    /// window, or the incoming lock's expiration once the hub must claim on the ledger.
    pub fn poll_timeout(&self) -> Option<u64> {
        let expire = (self.outgoing_leg() == Leg::Locked && self.secret().is_none())
            .then_some(self.outgoing_lock().expiration);
        let register = self.must_register_secret_by().map(|d| d.from);
        let claim = (self.incoming_leg() == Leg::Locked && self.incoming_claimable_on_ledger())
            .then_some(self.incoming_lock().expiration);
        [expire, register, claim].into_iter().flatten().min()
    }
}
