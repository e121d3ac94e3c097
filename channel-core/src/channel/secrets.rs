//! Secrets of the channel's pending locks, and whether the ledger's secret registry has them.
//!
//! A lock is worth its amount to the receiver only if the receiver can prove the secret on the
//! ledger *strictly before* the lock expires. So the channel remembers:
//! - secrets the driver learned ([`Channel::learn_secret`]): the payee's own invoice secret, a
//!   reveal from the next hop, an unlock message;
//! - the ledger time at which a secret was registered, from `SecretRegistered` events
//!   (through [`Channel::handle_ledger_event`](super::Channel::handle_ledger_event)).
//!
//! Once a lock's secret is registered before its expiration the lock can no longer expire:
//! a lock-expired message for it is refused in either direction (the receiver will claim it
//! with `unlock` after settlement), which is what lets a mediator whose payer withholds the
//! unlock get its money on the ledger. The monitor (`poll_ledger_actions`) uses the same
//! records to register secrets in time and to unlock after settlement.

use super::{Channel, ChannelError, ChannelEvent};
use crate::locks::{HashTimeLock, Secret};
use crate::primitives::H256;

/// A secret this side knows, and when (ledger time) the registry recorded it, if it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KnownSecret {
    pub secret: Secret,
    pub registered_at: Option<u64>,
}

impl Channel {
    /// The pending lock (either direction) with `secrethash`.
    pub(super) fn pending_lock(&self, secrethash: &H256) -> Option<&HashTimeLock> {
        self.partner
            .locks
            .get(secrethash)
            .or_else(|| self.our.locks.get(secrethash))
    }

    /// Records `secret` if it opens one of the channel's pending locks (either direction).
    /// Idempotent; a secret for no pending lock is refused.
    pub fn learn_secret(&mut self, secret: Secret) -> Result<Vec<ChannelEvent>, ChannelError> {
        let secrethash = secret.hash();
        if self.pending_lock(&secrethash).is_none() {
            return Err(ChannelError::UnknownLock(secrethash));
        }
        if self.secrets.contains_key(&secrethash) {
            return Ok(Vec::new());
        }
        self.secrets.insert(
            secrethash,
            KnownSecret {
                secret,
                registered_at: None,
            },
        );
        Ok(vec![ChannelEvent::SecretLearned { secrethash }])
    }

    /// Drops the secrets of locks that are no longer pending in either direction (unlocked
    /// or expired off-chain): only pending locks can still be claimed or contested on the
    /// ledger, and keeping every secret ever seen would grow each channel's state (and the
    /// cost of every transition) with every mediated payment.
    pub(super) fn forget_secrets_of_gone_locks(&mut self) {
        let (ours, theirs) = (&self.our.locks, &self.partner.locks);
        self.secrets
            .retain(|h, _| ours.contains(h) || theirs.contains(h));
    }

    /// How many secrets the channel keeps (those of its pending locks).
    pub fn known_secrets(&self) -> usize {
        self.secrets.len()
    }

    /// The secret behind `secrethash`, if known.
    pub fn known_secret(&self, secrethash: &H256) -> Option<&KnownSecret> {
        self.secrets.get(secrethash)
    }

    /// The ledger registered `secret` at ledger time `at`. Recorded (with the earliest time)
    /// when it opens a pending lock of this channel; ignored otherwise.
    pub(super) fn handle_secret_registered(
        &mut self,
        secret: Secret,
        at: u64,
    ) -> Vec<ChannelEvent> {
        let secrethash = secret.hash();
        if self.pending_lock(&secrethash).is_none() {
            return Vec::new();
        }
        let entry = self.secrets.entry(secrethash).or_insert(KnownSecret {
            secret,
            registered_at: None,
        });
        if entry.registered_at.is_some_and(|t| t <= at) {
            return Vec::new();
        }
        entry.registered_at = Some(at);
        vec![ChannelEvent::SecretRegisteredOnLedger { secrethash, at }]
    }

    /// Whether `lock` was claimed on the ledger: its secret registered strictly before it
    /// expired. Such a lock never expires.
    pub fn claimed_on_ledger(&self, lock: &HashTimeLock) -> bool {
        self.secrets
            .get(&lock.secrethash)
            .and_then(|k| k.registered_at)
            .is_some_and(|at| at < lock.expiration)
    }

    /// Refuses to drop a lock the ledger already counts as claimed.
    pub(super) fn check_not_claimed(&self, secrethash: &H256) -> Result<(), ChannelError> {
        match self.pending_lock(secrethash) {
            Some(lock) if self.claimed_on_ledger(lock) => {
                Err(ChannelError::LockClaimedOnLedger(*secrethash))
            }
            _ => Ok(()),
        }
    }
}
