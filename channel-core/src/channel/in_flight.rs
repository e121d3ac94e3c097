//! [`InFlight`]: the monitor's transactions sent to a ledger whose effect has not been seen
//! yet, so that a level-triggered monitor does not send the same one again on every pass.
//!
//! On the embedded ledger a transaction's effect is visible as soon as it returns, so the
//! next pass no longer asks for it. On a chain it shows only once its block is confirmed and
//! its event mirrored: until then the monitor keeps asking, and resending would pay gas for a
//! transaction the contract then refuses. A driver passes each pass's actions through
//! [`InFlight::to_send`]: an action sent less than `resend_after` seconds of ledger time ago
//! is held back; one the monitor stopped asking for is forgotten (its effect arrived, or it no
//! longer matters); one whose effect never arrived (dropped, reverted, replaced) is sent again
//! once `resend_after` has passed. Nothing here can lose a protective action: the worst case is
//! one `resend_after` of delay, which the driver chooses well inside the reveal timeout and
//! the settlement window.

use std::collections::BTreeMap;

use crate::primitives::{Address, H256, U256};

use super::LedgerAction;

/// What makes two monitor actions "the same transaction".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// An update with the closer's proof of this nonce.
    Update {
        channel_id: U256,
        nonce: u64,
    },
    Settle {
        channel_id: U256,
    },
    Close {
        channel_id: U256,
    },
    RegisterSecret {
        secrethash: H256,
    },
    Unlock {
        channel_id: U256,
        sender: Address,
        receiver: Address,
    },
}

impl Key {
    fn of(action: &LedgerAction) -> Self {
        match action {
            LedgerAction::Update(tx) => Key::Update {
                channel_id: tx.channel_id,
                nonce: tx.closer_proof.proof.nonce,
            },
            LedgerAction::Settle { channel_id } => Key::Settle {
                channel_id: *channel_id,
            },
            LedgerAction::Close { channel_id } => Key::Close {
                channel_id: *channel_id,
            },
            LedgerAction::RegisterSecret { secret } => Key::RegisterSecret {
                secrethash: secret.hash(),
            },
            LedgerAction::Unlock {
                channel_id,
                sender,
                receiver,
                ..
            } => Key::Unlock {
                channel_id: *channel_id,
                sender: *sender,
                receiver: *receiver,
            },
        }
    }

    fn channel(&self) -> Option<U256> {
        match self {
            Key::Update { channel_id, .. }
            | Key::Settle { channel_id }
            | Key::Close { channel_id }
            | Key::Unlock { channel_id, .. } => Some(*channel_id),
            Key::RegisterSecret { .. } => None,
        }
    }
}

/// The monitor's transactions in flight (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InFlight {
    /// When (ledger time) each action was last sent.
    sent_at: BTreeMap<Key, u64>,
    resend_after: u64,
}

impl InFlight {
    /// Holds a sent action back for `resend_after` seconds of ledger time.
    pub fn new(resend_after: u64) -> Self {
        Self {
            sent_at: BTreeMap::new(),
            resend_after,
        }
    }

    /// Of the actions one monitor pass over `channel_id` asks for at ledger time `now`, those
    /// to send now; they count as sent at `now`. Actions of this channel that the pass no
    /// longer asks for are forgotten. (A secret registration serves every channel with a lock
    /// of that secret, so it is only forgotten by [`InFlight::forget_secret`] or resent after
    /// `resend_after`.)
    pub fn to_send(
        &mut self,
        channel_id: U256,
        actions: Vec<LedgerAction>,
        now: u64,
    ) -> Vec<LedgerAction> {
        let asked: Vec<Key> = actions.iter().map(Key::of).collect();
        self.sent_at
            .retain(|key, _| key.channel() != Some(channel_id) || asked.contains(key));
        let resend_after = self.resend_after;
        actions
            .into_iter()
            .zip(asked)
            .filter_map(|(action, key)| {
                let due = self
                    .sent_at
                    .get(&key)
                    .is_none_or(|sent| now >= sent.saturating_add(resend_after));
                due.then(|| {
                    self.sent_at.insert(key, now);
                    action
                })
            })
            .collect()
    }

    /// The registration of `secrethash` was seen on the ledger.
    pub fn forget_secret(&mut self, secrethash: &H256) {
        self.sent_at.remove(&Key::RegisterSecret {
            secrethash: *secrethash,
        });
    }

    /// Forgets the actions of every channel `watched` says the monitor no longer looks at
    /// (settled and done with): their effect arrived, or nothing is left to do.
    pub fn retain_channels(&mut self, watched: impl Fn(U256) -> bool) {
        self.sent_at
            .retain(|key, _| key.channel().is_none_or(&watched));
    }

    /// How many actions are in flight.
    pub fn len(&self) -> usize {
        self.sent_at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sent_at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::locks::Secret;

    fn settle(id: u64) -> LedgerAction {
        LedgerAction::Settle {
            channel_id: U256::from(id),
        }
    }

    fn register(n: u8) -> LedgerAction {
        LedgerAction::RegisterSecret {
            secret: Secret(H256([n; 32])),
        }
    }

    #[test]
    fn a_sent_action_is_held_back_until_resend_after_then_sent_again() {
        let mut f = InFlight::new(30);
        let one = U256::from(1u8);
        assert_eq!(f.to_send(one, vec![settle(1)], 100), vec![settle(1)]);
        // Still asked for (its event has not arrived): held back.
        assert_eq!(f.to_send(one, vec![settle(1)], 110), vec![]);
        assert_eq!(f.to_send(one, vec![settle(1)], 129), vec![]);
        // Never took effect: sent again, and held back from then.
        assert_eq!(f.to_send(one, vec![settle(1)], 130), vec![settle(1)]);
        assert_eq!(f.to_send(one, vec![settle(1)], 131), vec![]);
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn an_action_no_longer_asked_for_is_forgotten_per_channel() {
        let mut f = InFlight::new(30);
        let (one, two) = (U256::from(1u8), U256::from(2u8));
        f.to_send(one, vec![settle(1)], 100);
        f.to_send(two, vec![settle(2)], 100);
        // Channel 1 settled: its pass asks for nothing; channel 2's entry stays.
        assert_eq!(f.to_send(one, vec![], 105), vec![]);
        assert_eq!(f.len(), 1);
        assert_eq!(f.to_send(two, vec![settle(2)], 105), vec![]);
        // If channel 1 ever needs a settle again, it goes out at once.
        assert_eq!(f.to_send(one, vec![settle(1)], 106), vec![settle(1)]);
        // A channel the monitor stops watching is forgotten; a secret is not a channel's.
        f.to_send(one, vec![settle(1), register(9)], 107);
        f.retain_channels(|id| id == one);
        assert_eq!(f.len(), 2, "channel 1's settle and the secret stay");
        f.retain_channels(|_| false);
        assert_eq!(f.len(), 1, "only the secret registration stays");
    }

    #[test]
    fn a_secret_registration_is_shared_by_channels_until_seen() {
        let mut f = InFlight::new(30);
        let (one, two) = (U256::from(1u8), U256::from(2u8));
        assert_eq!(f.to_send(one, vec![register(7)], 100), vec![register(7)]);
        // Another channel with a lock of the same secret asks too: already in flight.
        assert_eq!(f.to_send(two, vec![register(7)], 101), vec![]);
        // A pass over channel 1 that asks for nothing does not forget it...
        f.to_send(one, vec![], 102);
        assert_eq!(f.to_send(two, vec![register(7)], 103), vec![]);
        // ...the registration event does.
        f.forget_secret(&Secret(H256([7; 32])).hash());
        assert!(f.is_empty());
        assert_eq!(f.to_send(two, vec![register(7)], 104), vec![register(7)]);
    }
}
