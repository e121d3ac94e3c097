//! Moving value inside an open channel: direct payments, hash-time-locked transfers, unlocks
//! and lock expiry, in both directions.
//!
//! Each outgoing transition builds the next balance proof from our current one, signs it and
//! records it as our latest; each incoming one checks that the partner's proof is exactly the
//! expected successor of its previous one before anything is changed.

use super::{Channel, ChannelError, ChannelEvent, ChannelMessage};
use crate::crypto::Signer;
use crate::locks::{HashTimeLock, PendingLocks, Secret};
use crate::primitives::{H256, U256};
use crate::proofs::{BalanceData, BalanceProof, SignedBalanceProof};

impl Channel {
    fn sign_next(
        &self,
        balance: BalanceData,
        additional_hash: H256,
        signer: &dyn Signer,
    ) -> Result<SignedBalanceProof, ChannelError> {
        if signer.address() != self.our.address {
            return Err(ChannelError::WrongParticipant {
                expected: self.our.address,
                got: signer.address(),
            });
        }
        let proof = BalanceProof {
            domain: self.domain,
            channel_identifier: self.id,
            nonce: self.our.next_nonce()?,
            balance,
            additional_hash,
        };
        Ok(proof.sign(signer)?)
    }

    fn check_amount(&self, amount: U256, available: U256) -> Result<(), ChannelError> {
        if amount.is_zero() {
            return Err(ChannelError::ZeroAmount);
        }
        if amount > available {
            return Err(ChannelError::InsufficientBalance {
                available,
                requested: amount,
            });
        }
        Ok(())
    }

    // ----- direct payments -----

    /// Pays `amount` to the partner.
    pub fn send_payment(
        &mut self,
        amount: U256,
        additional_hash: H256,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        self.check_amount(amount, self.our_distributable()?)?;
        let mut balance = self.our.balance_data();
        balance.transferred_amount = balance
            .transferred_amount
            .checked_add(amount)
            .ok_or(ChannelError::Overflow("transferred amount"))?;
        let proof = self.sign_next(balance, additional_hash, signer)?;
        self.our.latest = Some(proof);
        Ok(vec![
            ChannelEvent::PaymentSent {
                amount,
                nonce: proof.proof.nonce,
            },
            ChannelEvent::Send(ChannelMessage::Payment { proof, amount }),
        ])
    }

    /// Takes a payment of `amount` from the partner.
    pub fn handle_payment(
        &mut self,
        proof: &SignedBalanceProof,
        amount: U256,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        self.check_amount(amount, self.partner_distributable()?)?;
        let mut expected = self.partner.balance_data();
        expected.transferred_amount = expected
            .transferred_amount
            .checked_add(amount)
            .ok_or(ChannelError::Overflow("transferred amount"))?;
        self.check_partner_proof(proof, &expected)?;
        self.partner.latest = Some(*proof);
        Ok(vec![ChannelEvent::PaymentReceived {
            amount,
            nonce: proof.proof.nonce,
            transferred_total: expected.transferred_amount,
        }])
    }

    // ----- locked transfers -----

    fn balance_with_locks(
        locks: &PendingLocks,
        transferred: U256,
    ) -> Result<BalanceData, ChannelError> {
        Ok(BalanceData {
            transferred_amount: transferred,
            locked_amount: locks
                .total()
                .ok_or(ChannelError::Overflow("locked amount"))?,
            locksroot: locks.locksroot(),
        })
    }

    fn check_new_lock(
        &self,
        pending: &PendingLocks,
        lock: &HashTimeLock,
        now: u64,
    ) -> Result<(), ChannelError> {
        if lock.is_expired(now) {
            return Err(ChannelError::LockExpired {
                expiration: lock.expiration,
                now,
            });
        }
        if pending.contains(&lock.secrethash) {
            return Err(ChannelError::DuplicateLock(lock.secrethash));
        }
        Ok(())
    }

    /// Locks `lock.amount` toward the partner until `lock.expiration`, claimable with the
    /// secret behind `lock.secrethash`.
    pub fn send_locked_transfer(
        &mut self,
        lock: HashTimeLock,
        now: u64,
        additional_hash: H256,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        self.check_amount(lock.amount, self.our_distributable()?)?;
        self.check_new_lock(&self.our.locks, &lock, now)?;
        let locks = self.our.locks.with(lock);
        let current = self.our.balance_data();
        let balance = Self::balance_with_locks(&locks, current.transferred_amount)?;
        let proof = self.sign_next(balance, additional_hash, signer)?;
        self.our.latest = Some(proof);
        self.our.locks = locks;
        Ok(vec![
            ChannelEvent::LockSent(lock),
            ChannelEvent::Send(ChannelMessage::LockedTransfer { proof, lock }),
        ])
    }

    pub fn handle_locked_transfer(
        &mut self,
        proof: &SignedBalanceProof,
        lock: &HashTimeLock,
        now: u64,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        self.check_amount(lock.amount, self.partner_distributable()?)?;
        self.check_new_lock(&self.partner.locks, lock, now)?;
        let locks = self.partner.locks.with(*lock);
        let current = self.partner.balance_data();
        let expected = Self::balance_with_locks(&locks, current.transferred_amount)?;
        self.check_partner_proof(proof, &expected)?;
        self.partner.latest = Some(*proof);
        self.partner.locks = locks;
        Ok(vec![ChannelEvent::LockReceived(*lock)])
    }

    // ----- unlock -----

    /// Releases our lock whose secret we learned: its amount becomes transferred.
    pub fn send_unlock(
        &mut self,
        secret: Secret,
        additional_hash: H256,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        let secrethash = secret.hash();
        let (locks, lock) = self
            .our
            .locks
            .without(&secrethash)
            .ok_or(ChannelError::UnknownLock(secrethash))?;
        let current = self.our.balance_data();
        let transferred = current
            .transferred_amount
            .checked_add(lock.amount)
            .ok_or(ChannelError::Overflow("transferred amount"))?;
        let balance = Self::balance_with_locks(&locks, transferred)?;
        let proof = self.sign_next(balance, additional_hash, signer)?;
        self.our.latest = Some(proof);
        self.our.locks = locks;
        Ok(vec![
            ChannelEvent::LockUnlocked {
                secrethash,
                amount: lock.amount,
                to_us: false,
            },
            ChannelEvent::Send(ChannelMessage::Unlock { proof, secret }),
        ])
    }

    pub fn handle_unlock(
        &mut self,
        proof: &SignedBalanceProof,
        secret: &Secret,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        let secrethash = secret.hash();
        let (locks, lock) = self
            .partner
            .locks
            .without(&secrethash)
            .ok_or(ChannelError::WrongSecret(secrethash))?;
        let current = self.partner.balance_data();
        let transferred = current
            .transferred_amount
            .checked_add(lock.amount)
            .ok_or(ChannelError::Overflow("transferred amount"))?;
        let expected = Self::balance_with_locks(&locks, transferred)?;
        self.check_partner_proof(proof, &expected)?;
        self.partner.latest = Some(*proof);
        self.partner.locks = locks;
        Ok(vec![ChannelEvent::LockUnlocked {
            secrethash,
            amount: lock.amount,
            to_us: true,
        }])
    }

    // ----- lock expiry -----

    /// Drops our lock that expired unclaimed at ledger time `now`, freeing its amount.
    pub fn send_lock_expired(
        &mut self,
        secrethash: H256,
        now: u64,
        additional_hash: H256,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        let (locks, lock) = self
            .our
            .locks
            .without(&secrethash)
            .ok_or(ChannelError::UnknownLock(secrethash))?;
        if !lock.is_expired(now) {
            return Err(ChannelError::LockNotExpired(secrethash));
        }
        let current = self.our.balance_data();
        let balance = Self::balance_with_locks(&locks, current.transferred_amount)?;
        let proof = self.sign_next(balance, additional_hash, signer)?;
        self.our.latest = Some(proof);
        self.our.locks = locks;
        Ok(vec![
            ChannelEvent::LockDropped {
                secrethash,
                amount: lock.amount,
                ours: true,
            },
            ChannelEvent::Send(ChannelMessage::LockExpired { proof, secrethash }),
        ])
    }

    pub fn handle_lock_expired(
        &mut self,
        proof: &SignedBalanceProof,
        secrethash: &H256,
        now: u64,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        let (locks, lock) = self
            .partner
            .locks
            .without(secrethash)
            .ok_or(ChannelError::UnknownLock(*secrethash))?;
        if !lock.is_expired(now) {
            return Err(ChannelError::LockNotExpired(*secrethash));
        }
        let current = self.partner.balance_data();
        let expected = Self::balance_with_locks(&locks, current.transferred_amount)?;
        self.check_partner_proof(proof, &expected)?;
        self.partner.latest = Some(*proof);
        self.partner.locks = locks;
        Ok(vec![ChannelEvent::LockDropped {
            secrethash: *secrethash,
            amount: lock.amount,
            ours: false,
        }])
    }

    /// Feeds any message from the partner to the matching `handle_*` transition.
    /// Withdraw requests need our signer to confirm them.
    pub fn handle_message(
        &mut self,
        message: &ChannelMessage,
        now: u64,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        match message {
            ChannelMessage::Payment { proof, amount } => self.handle_payment(proof, *amount),
            ChannelMessage::LockedTransfer { proof, lock } => {
                self.handle_locked_transfer(proof, lock, now)
            }
            ChannelMessage::Unlock { proof, secret } => self.handle_unlock(proof, secret),
            ChannelMessage::LockExpired { proof, secrethash } => {
                self.handle_lock_expired(proof, secrethash, now)
            }
            ChannelMessage::WithdrawRequest { proof, signature } => {
                self.handle_withdraw_request(proof, signature, now, signer)
            }
            ChannelMessage::WithdrawConfirmation { proof, signature } => {
                self.handle_withdraw_confirmation(proof, signature)
            }
        }
    }
}
