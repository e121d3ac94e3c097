//! The lock lists behind our old proofs: what a driver must keep so that locked tokens the
//! ledger keeps back for us after settlement can always be unlocked.
//!
//! The partner chooses which of our proofs the ledger holds: it submits one on its close, or
//! on its update when we closed, and it may pick an old one. If that proof carried pending
//! locks, the ledger keeps their total back at settlement under the proof's locksroot and
//! releases it only to an unlock that presents the locks behind that root. The locks may be
//! long gone from the channel (unlocked off-chain, expired), so without a copy the tokens
//! are stuck for good.
//!
//! Hence the archive, which the driver keeps in its store, in one of two forms:
//! - **snapshots**: each time our lock set changes, [`Channel::our_signed_locks`] gives the
//!   packed locks of our new proof and their root, kept under that root. Simple, and right
//!   when few locks are pending at once (a device);
//! - **a log**: [`Channel::our_lock_change`] gives only what changed ([`LockSetChange`]: the
//!   locks added, the ones removed, the root after), kept under the nonce of the proof that
//!   made it, and [`locks_behind`] replays the log to the set behind a root. A snapshot costs
//!   the whole set per change, which for a hub paying a busy payee (dozens of locks pending
//!   at once) is kilobytes per payment; a log entry costs one lock.
//!
//! Either way the archive is durable with the channel (so before the proof can leave), and:
//! - when settled tokens are kept back for us, [`Channel::archived_locks_wanted`] names the
//!   roots to look up, and the driver hands what it finds to the monitor in
//!   [`LedgerView::archived_locks`](super::LedgerView::archived_locks), which checks each
//!   against its root and asks for the unlock;
//! - [`Channel::lock_archive_after`] says, for each ledger event, when part or all of the
//!   archive is no longer needed: at settlement every root but the one kept back, and once
//!   that direction is unlocked (or nothing was kept back) the rest.

use serde::{Deserialize, Serialize};

use super::{Channel, PendingUnlock};
use crate::ledger::{LedgerEvent, LedgerEventKind};
use crate::locks::{pack_locks, HashTimeLock, PendingLocks, EMPTY_LOCKSROOT};
use crate::primitives::H256;

/// One change of our lock set, made by one proof of ours: an entry of the log form of the
/// archive (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockSetChange {
    /// The secrethashes of the locks the proof dropped (unlocked or expired).
    pub removed: Vec<H256>,
    /// The locks the proof added, in order (they go at the end of the set).
    pub added: Vec<HashTimeLock>,
    /// The locksroot of the proof: the set's root after the change.
    pub root: H256,
}

/// The packed locks behind `root`, replayed from a channel's log of [`LockSetChange`]s in
/// nonce order: the set after the first change whose root is `root`, checked against it.
/// `None` if no change has that root (or the log does not add up to it).
pub fn locks_behind(root: &H256, log: impl IntoIterator<Item = LockSetChange>) -> Option<Vec<u8>> {
    let mut set = PendingLocks::new();
    for change in log {
        for secrethash in &change.removed {
            set = set.without(secrethash)?.0;
        }
        for lock in change.added {
            set = set.with(lock);
        }
        if change.root == *root {
            return (set.locksroot() == *root).then(|| pack_locks(set.as_slice()));
        }
    }
    None
}

/// What a ledger event means for the driver's archive of our lock lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockArchiveChange {
    /// Nothing: keep everything.
    Unchanged,
    /// The channel settled keeping our locked tokens back under this root: every other
    /// archived list can go.
    KeepOnly(H256),
    /// Nothing is (or is any longer) kept back for our locks: the archive can go.
    Release,
}

/// Whether a locksroot named at settlement keeps tokens back: the empty root and 32 zero
/// bytes (what a cooperative settle names) keep nothing.
pub fn keeps_tokens_back(locksroot: &H256) -> bool {
    *locksroot != EMPTY_LOCKSROOT && !locksroot.is_zero()
}

impl Channel {
    /// Our latest proof's locks, packed, with their root, when it carries any: what a driver
    /// archives under that root each time the root changes (see the module docs).
    pub fn our_signed_locks(&self) -> Option<(H256, Vec<u8>)> {
        (!self.our.locks.is_empty()).then(|| {
            (
                self.our.locks.locksroot(),
                pack_locks(self.our.locks.as_slice()),
            )
        })
    }

    /// How our lock set changed from `before` to this channel, with the nonce of our proof
    /// that changed it; `None` when it did not change (see [`LockSetChange`]).
    pub fn our_lock_change(&self, before: &Channel) -> Option<(u64, LockSetChange)> {
        let (old, new) = (&before.our.locks, &self.our.locks);
        if old == new {
            return None;
        }
        let proof = self.our.latest.as_ref()?;
        let removed = old
            .as_slice()
            .iter()
            .filter(|l| !new.contains(&l.secrethash))
            .map(|l| l.secrethash)
            .collect();
        let added = new
            .as_slice()
            .iter()
            .filter(|l| !old.contains(&l.secrethash))
            .copied()
            .collect();
        Some((
            proof.proof.nonce,
            LockSetChange {
                removed,
                added,
                root: proof.proof.balance.locksroot,
            },
        ))
    }

    /// The roots of our locked tokens the ledger keeps back (`pending`, as in
    /// [`LedgerView::pending_unlocks`](super::LedgerView::pending_unlocks)) whose locks the
    /// channel no longer holds: the driver looks these up in its archive.
    pub fn archived_locks_wanted(&self, pending: &[PendingUnlock]) -> Vec<H256> {
        let current = (!self.our.locks.is_empty()).then(|| self.our.locks.locksroot());
        pending
            .iter()
            .filter(|p| p.sender == self.our.address && p.receiver == self.partner.address)
            .map(|p| p.locksroot)
            .filter(|root| Some(*root) != current)
            .collect()
    }

    /// What `event` means for the archive of our lock lists (see [`LockArchiveChange`]).
    pub fn lock_archive_after(&self, event: &LedgerEvent) -> LockArchiveChange {
        let us = self.our.address;
        match &event.kind {
            LedgerEventKind::ChannelSettled {
                channel_id,
                participant1,
                participant1_locksroot,
                participant2_locksroot,
                ..
            } if *channel_id == self.id => {
                let ours = if *participant1 == us {
                    participant1_locksroot
                } else {
                    participant2_locksroot
                };
                if keeps_tokens_back(ours) {
                    LockArchiveChange::KeepOnly(*ours)
                } else {
                    LockArchiveChange::Release
                }
            }
            LedgerEventKind::ChannelUnlocked {
                channel_id, sender, ..
            } if *channel_id == self.id && *sender == us => LockArchiveChange::Release,
            _ => LockArchiveChange::Unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::crypto::{LocalSigner, Signer};
    use crate::ledger::LedgerEvent;
    use crate::locks::{HashTimeLock, Secret};
    use crate::primitives::{Address, U256};
    use crate::testing::{test_domain, test_signer};

    fn lock(n: u8, expiration: u64) -> HashTimeLock {
        HashTimeLock {
            expiration,
            amount: U256::from(n),
            secrethash: Secret(H256([n; 32])).hash(),
        }
    }

    fn channel() -> (Channel, LocalSigner) {
        let (a, b) = (test_signer(1), test_signer(2));
        let mut ch = Channel::new(test_domain(), U256::from(7u8), a.address(), b.address());
        ch.handle_ledger_deposit(a.address(), U256::from(100u8))
            .unwrap();
        (ch, a)
    }

    fn event(kind: LedgerEventKind) -> LedgerEvent {
        LedgerEvent {
            seq: 1,
            time: 1,
            kind,
        }
    }

    /// The settlement of channel `id` (ours or another) as `ch`'s partner and we see it.
    fn settled(ch: &Channel, id: U256, ours: H256, theirs: H256) -> LedgerEvent {
        event(LedgerEventKind::ChannelSettled {
            channel_id: id,
            participant1: ch.partner_address(),
            participant1_amount: U256::ZERO,
            participant1_locksroot: theirs,
            participant2: ch.our_address(),
            participant2_amount: U256::ZERO,
            participant2_locksroot: ours,
        })
    }

    #[test]
    fn our_signed_locks_follow_our_lock_set() {
        let (mut ch, a) = channel();
        assert_eq!(ch.our_signed_locks(), None);
        ch.send_locked_transfer(lock(5, 100), 1, H256::ZERO, &a)
            .unwrap();
        let (root, packed) = ch.our_signed_locks().unwrap();
        assert_eq!(root, ch.our().locks.locksroot());
        assert_eq!(packed, pack_locks(&[lock(5, 100)]));
        ch.send_locked_transfer(lock(6, 100), 1, H256::ZERO, &a)
            .unwrap();
        let (second, packed) = ch.our_signed_locks().unwrap();
        assert_ne!(second, root);
        assert_eq!(packed.len(), 2 * crate::locks::LOCK_LEN);
    }

    #[test]
    fn a_log_of_lock_changes_replays_to_the_set_behind_any_root() {
        let (mut ch, a) = channel();
        let mut log = Vec::new();
        let mut snapshots = Vec::new();
        let mut step = |ch: &mut Channel, f: &dyn Fn(&mut Channel)| {
            let before = ch.clone();
            f(ch);
            let (nonce, change) = ch.our_lock_change(&before).unwrap();
            assert_eq!(nonce, ch.our().nonce());
            log.push(change);
            snapshots.push(ch.our_signed_locks());
        };
        for n in 1..=3u8 {
            step(&mut ch, &|ch| {
                ch.send_locked_transfer(lock(n, 100), 1, H256::ZERO, &a)
                    .map(|_| ())
                    .unwrap()
            });
        }
        step(&mut ch, &|ch| {
            ch.send_unlock(Secret(H256([2; 32])), H256::ZERO, &a)
                .map(|_| ())
                .unwrap()
        });
        step(&mut ch, &|ch| {
            ch.send_locked_transfer(lock(4, 100), 1, H256::ZERO, &a)
                .map(|_| ())
                .unwrap()
        });
        let before = ch.clone();
        ch.send_payment(U256::from(1u8), H256::ZERO, &a).unwrap();
        assert_eq!(
            ch.our_lock_change(&before),
            None,
            "a payment changes no lock"
        );
        // Every set the log went through, the middle one (locks 1 and 3) included.
        for (root, packed) in snapshots.into_iter().flatten() {
            assert_eq!(locks_behind(&root, log.clone()), Some(packed));
        }
        assert_eq!(locks_behind(&H256([9; 32]), log.clone()), None);
        // A log that does not add up to the root it names gives nothing.
        let mut forged = log.clone();
        forged[1].added[0].amount = U256::from(99u8);
        assert_eq!(locks_behind(&log[1].root, forged), None);
    }

    #[test]
    fn only_our_kept_back_roots_we_no_longer_hold_are_wanted() {
        let (mut ch, a) = channel();
        ch.send_locked_transfer(lock(5, 100), 1, H256::ZERO, &a)
            .unwrap();
        let current = ch.our().locks.locksroot();
        let old = H256([9; 32]);
        let (us, them) = (ch.our_address(), ch.partner_address());
        let pending = [
            PendingUnlock {
                sender: us,
                receiver: them,
                locksroot: old,
            },
            PendingUnlock {
                sender: us,
                receiver: them,
                locksroot: current,
            },
            PendingUnlock {
                sender: them,
                receiver: us,
                locksroot: H256([8; 32]),
            },
            PendingUnlock {
                sender: us,
                receiver: Address([3; 20]),
                locksroot: H256([7; 32]),
            },
        ];
        assert_eq!(ch.archived_locks_wanted(&pending), vec![old]);
    }

    #[test]
    fn the_archive_shrinks_at_settlement_and_goes_once_our_locks_are_unlocked() {
        let (ch, _) = channel();
        let root = H256([9; 32]);
        assert_eq!(
            ch.lock_archive_after(&settled(&ch, ch.id(), root, EMPTY_LOCKSROOT)),
            LockArchiveChange::KeepOnly(root)
        );
        for nothing in [EMPTY_LOCKSROOT, H256::ZERO] {
            assert_eq!(
                ch.lock_archive_after(&settled(&ch, ch.id(), nothing, root)),
                LockArchiveChange::Release
            );
        }
        let unlocked = |sender: Address, channel_id: U256| {
            event(LedgerEventKind::ChannelUnlocked {
                channel_id,
                receiver: Address([4; 20]),
                sender,
                locksroot: root,
                unlocked_amount: U256::ZERO,
                returned_tokens: U256::from(5u8),
            })
        };
        assert_eq!(
            ch.lock_archive_after(&unlocked(ch.our_address(), ch.id())),
            LockArchiveChange::Release
        );
        assert_eq!(
            ch.lock_archive_after(&unlocked(ch.partner_address(), ch.id())),
            LockArchiveChange::Unchanged
        );
        assert_eq!(
            ch.lock_archive_after(&unlocked(ch.our_address(), U256::from(8u8))),
            LockArchiveChange::Unchanged
        );
        let other_settled = settled(&ch, U256::from(8u8), root, root);
        assert_eq!(
            ch.lock_archive_after(&other_settled),
            LockArchiveChange::Unchanged
        );
    }
}
