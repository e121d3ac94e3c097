//! The lock lists behind our old proofs: what a driver must keep so that locked tokens the
//! ledger keeps back for us after settlement can always be unlocked.
//!
//! The partner chooses which of our proofs the ledger holds: it submits one on its close, or
//! on its update when we closed, and it may pick an old one. If that proof carried pending
//! locks, the ledger keeps their total back at settlement under the proof's locksroot and
//! releases it only to an unlock that presents the locks behind that root. The locks may be
//! long gone from the channel (unlocked off-chain, expired), so without a copy the tokens
//! are stuck for good. Hence the archive, which the driver keeps in its store:
//! - each time our lock set changes, [`Channel::our_signed_locks`] gives the packed locks
//!   of our new proof and their root; the driver keeps them under that root, durable with
//!   the channel (so before the proof can leave);
//! - when settled tokens are kept back for us, [`Channel::archived_locks_wanted`] names the
//!   roots to look up, and the driver hands what it finds to the monitor in
//!   [`LedgerView::archived_locks`](super::LedgerView::archived_locks), which checks each
//!   against its root and asks for the unlock;
//! - [`Channel::lock_archive_after`] says, for each ledger event, when part or all of the
//!   archive is no longer needed: at settlement every root but the one kept back, and once
//!   that direction is unlocked (or nothing was kept back) the rest.

use super::{Channel, PendingUnlock};
use crate::ledger::{LedgerEvent, LedgerEventKind};
use crate::locks::{pack_locks, EMPTY_LOCKSROOT};
use crate::primitives::H256;

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
