//! The secret registry and `unlock`: registering a secret records the ledger time it became
//! public; after settlement, the locked amount kept for one direction of a channel is split by
//! the sender's pending locks: a lock pays the receiver iff its secret was registered strictly
//! before the lock's expiration, the rest returns to the sender.

use crate::crypto::keccak256;
use crate::locks::{unpack_locks, Secret};
use crate::primitives::{Address, U256};
use crate::proofs::unlock_identifier;

use super::error::LedgerError;
use super::events::{LedgerEvent, LedgerEventKind};
use super::records::ChannelPhase;
use super::Ledger;

impl Ledger {
    /// Records `now` as the registration time of `secret` (keyed by its sha256). Registering
    /// the same secret twice is an error; the zero secret is refused.
    pub fn register_secret(
        &mut self,
        _caller: Address,
        secret: Secret,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        if secret.0.is_zero() {
            return Err(LedgerError::ZeroSecret);
        }
        let secrethash = secret.hash();
        if let Some(registered_at) = self.secret_registered_at(&secrethash) {
            return Err(LedgerError::SecretAlreadyRegistered {
                secrethash,
                registered_at,
            });
        }
        self.secrets.insert(secrethash, now);
        self.touched.secret(secrethash);
        Ok(self.emit(
            now,
            vec![LedgerEventKind::SecretRegistered { secrethash, secret }],
        ))
    }

    /// Pays out the locked amount kept at settlement for `sender → receiver` in a settled
    /// channel. `packed_locks` are the sender's pending locks in order; their keccak256 must
    /// equal the kept locksroot. Locks whose secret was registered strictly before expiration
    /// go to the receiver (capped by what was kept), the rest back to the sender. The entry is
    /// removed, so it cannot be unlocked twice. Anyone may submit it.
    pub fn unlock(
        &mut self,
        _caller: Address,
        channel_id: U256,
        receiver: Address,
        sender: Address,
        packed_locks: &[u8],
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        self.channel_in(channel_id, ChannelPhase::Settled)?;
        let key = unlock_identifier(&channel_id, sender, receiver);
        let entry = self.unlocks.get(&key).ok_or(LedgerError::NothingToUnlock {
            channel_id,
            sender,
            receiver,
        })?;
        let got = keccak256(packed_locks);
        if got != entry.locksroot {
            return Err(LedgerError::LocksrootMismatch {
                expected: entry.locksroot,
                got,
            });
        }
        let locks = unpack_locks(packed_locks)?;
        // The sender signed these amounts; adding saturates like the contract's total, and the
        // cap below bounds the payout by what was kept anyway.
        let claimable = locks
            .iter()
            .filter(|l| {
                self.secret_registered_at(&l.secrethash)
                    .is_some_and(|at| at < l.expiration)
            })
            .fold(U256::ZERO, |acc, l| acc.saturating_add(l.amount));
        let kept = entry.locked_amount;
        let locksroot = entry.locksroot;
        let unlocked_amount = claimable.min(kept);
        let returned_tokens = kept
            .checked_sub(unlocked_amount)
            .ok_or(LedgerError::Underflow("kept locked amount"))?;
        let mut plan = self.transfers();
        plan.pay_out(self, receiver, unlocked_amount)?;
        plan.pay_out(self, sender, returned_tokens)?;

        self.apply(plan);
        self.unlocks.remove(&key);
        self.touched.unlock(key);
        Ok(self.emit(
            now,
            vec![LedgerEventKind::ChannelUnlocked {
                channel_id,
                receiver,
                sender,
                locksroot,
                unlocked_amount,
                returned_tokens,
            }],
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Signer;
    use crate::ledger::test_support::{domain, funded};
    use crate::locks::{locksroot_of, HashTimeLock};
    use crate::primitives::H256;
    use crate::proofs::{BalanceData, BalanceProof};

    /// a locks 10 toward b with expiration 50; the secret is registered at `registered_at`.
    fn unlocked_with_registration_at(registered_at: u64) -> (U256, U256) {
        let (mut l, a, b) = funded();
        let secret = Secret(H256([4; 32]));
        let lock = HashTimeLock {
            expiration: 50,
            amount: U256::from(10u8),
            secrethash: secret.hash(),
        };
        let ap = BalanceProof {
            domain: domain(),
            channel_identifier: U256::from(1u8),
            nonce: 1,
            balance: BalanceData {
                transferred_amount: U256::ZERO,
                locked_amount: lock.amount,
                locksroot: locksroot_of(&[lock]),
            },
            additional_hash: H256::ZERO,
        }
        .sign(&a)
        .unwrap();
        let sig = ap.counter_sign_close(&b).unwrap();
        let one = U256::from(1u8);
        l.close_channel(b.address(), one, &ap, &sig, 1).unwrap();
        let settle = crate::ledger::SettleTransaction {
            channel_id: one,
            balances: [
                (a.address(), ap.proof.balance),
                (b.address(), crate::proofs::BalanceData::EMPTY),
            ],
        };
        l.settle_channel(b.address(), &settle, 12).unwrap();
        l.register_secret(b.address(), secret, registered_at)
            .unwrap();
        let events = l
            .unlock(b.address(), one, b.address(), a.address(), &lock.pack(), 60)
            .unwrap();
        assert!(l.conservation_holds());
        match &events[0].kind {
            LedgerEventKind::ChannelUnlocked {
                unlocked_amount,
                returned_tokens,
                ..
            } => (*unlocked_amount, *returned_tokens),
            other => panic!("unexpected event {other:?}"),
        }
    }

    #[test]
    fn a_secret_counts_only_if_registered_strictly_before_expiration() {
        let ten = U256::from(10u8);
        assert_eq!(unlocked_with_registration_at(49), (ten, U256::ZERO));
        assert_eq!(unlocked_with_registration_at(50), (U256::ZERO, ten));
    }
}
