//! Moving value inside an open channel: direct payments, hash-time-locked transfers, unlocks
//! and lock expiry, in both directions.
//!
//! Each outgoing transition builds the next balance proof from our current one, signs it and
//! records it as our latest; each incoming one checks that the partner's proof is exactly the
//! expected successor of its previous one before anything is changed.

use super::{Channel, ChannelError, ChannelEvent, ChannelMessage, EndState};
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

    /// Signs the successor of our latest proof and installs it with its locks.
    fn commit_ours(
        &mut self,
        next: NextBalance,
        additional_hash: H256,
        signer: &dyn Signer,
    ) -> Result<SignedBalanceProof, ChannelError> {
        let proof = self.sign_next(next.balance, additional_hash, signer)?;
        self.our.latest = Some(proof);
        self.our.locks = next.locks;
        self.forget_secrets_of_gone_locks();
        Ok(proof)
    }

    /// Checks the partner's proof against the successor we expect and installs it.
    fn accept_partner(
        &mut self,
        proof: &SignedBalanceProof,
        next: NextBalance,
    ) -> Result<(), ChannelError> {
        self.check_partner_proof(proof, &next.balance)?;
        self.partner.latest = Some(*proof);
        self.partner.locks = next.locks;
        self.forget_secrets_of_gone_locks();
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
        let next = NextBalance::after_payment(&self.our, amount)?;
        let proof = self.commit_ours(next, additional_hash, signer)?;
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
        let next = NextBalance::after_payment(&self.partner, amount)?;
        let transferred_total = next.balance.transferred_amount;
        self.accept_partner(proof, next)?;
        Ok(vec![ChannelEvent::PaymentReceived {
            amount,
            nonce: proof.proof.nonce,
            transferred_total,
        }])
    }

    // ----- locked transfers -----

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
        let next = NextBalance::after_new_lock(&self.our, &lock, now)?;
        let proof = self.commit_ours(next, additional_hash, signer)?;
        Ok(vec![
            ChannelEvent::LockSent(lock),
            ChannelEvent::Send(ChannelMessage::LockedTransfer { proof, lock }),
        ])
    }

    /// Takes back our latest proof, the locked transfer of `lock`, after the partner refused
    /// it without taking it: our side returns to `previous`, the proof we signed before it
    /// (`None` when the refused one was our first), so the next proof reuses the nonce.
    ///
    /// Only for a proof the partner answered with a refusal: a hub refuses a payer's locked
    /// transfer before it enters its channel (taking it only together with its forward), so
    /// it holds nothing of it. Checked, so that nothing but that one lock can be undone:
    /// `lock` is pending in our latest proof, `previous` has the nonce just below it and is
    /// exactly our latest balance without `lock` (same transferred amount, locked amount and
    /// locksroot without it). On any error nothing changes.
    pub fn retract_refused_lock(
        &mut self,
        lock: &HashTimeLock,
        previous: Option<&SignedBalanceProof>,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        let latest = self
            .our
            .latest
            .ok_or(ChannelError::CannotRetract("we have signed no proof"))?;
        if self.our.locks.get(&lock.secrethash) != Some(lock) {
            return Err(ChannelError::UnknownLock(lock.secrethash));
        }
        let (locks, _) = self
            .our
            .locks
            .without(&lock.secrethash)
            .ok_or(ChannelError::UnknownLock(lock.secrethash))?;
        let without = NextBalance::from_locks(locks.clone(), self.our.transferred())?.balance;
        let expected_nonce = latest.proof.nonce.saturating_sub(1);
        match previous {
            None if expected_nonce == 0 => {
                if !without.is_empty() {
                    return Err(ChannelError::CannotRetract(
                        "the refused proof was our first but carries more than the lock",
                    ));
                }
            }
            None => {
                return Err(ChannelError::CannotRetract(
                    "the proof before the refused one is needed",
                ))
            }
            Some(p) => {
                if p.proof.nonce != expected_nonce || p.proof.nonce == 0 {
                    return Err(ChannelError::CannotRetract(
                        "the earlier proof's nonce is not the one just below the refused proof",
                    ));
                }
                if p.proof.balance != without {
                    return Err(ChannelError::CannotRetract(
                        "the earlier proof is not our balance without the refused lock",
                    ));
                }
            }
        }
        self.our.latest = previous.copied();
        self.our.locks = locks;
        self.forget_secrets_of_gone_locks();
        Ok(vec![ChannelEvent::LockRetracted(*lock)])
    }

    pub fn handle_locked_transfer(
        &mut self,
        proof: &SignedBalanceProof,
        lock: &HashTimeLock,
        now: u64,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.ensure_open()?;
        self.check_amount(lock.amount, self.partner_distributable()?)?;
        let next = NextBalance::after_new_lock(&self.partner, lock, now)?;
        self.accept_partner(proof, next)?;
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
        let (next, lock) = NextBalance::after_unlock(&self.our, &secrethash)?;
        let proof = self.commit_ours(next, additional_hash, signer)?;
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
        let (next, lock) =
            NextBalance::after_unlock(&self.partner, &secrethash).map_err(|e| match e {
                // The partner revealed a secret that opens none of its locks.
                ChannelError::UnknownLock(h) => ChannelError::WrongSecret(h),
                other => other,
            })?;
        self.accept_partner(proof, next)?;
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
        self.check_not_claimed(&secrethash)?;
        let (next, lock) = NextBalance::after_expiry(&self.our, &secrethash, now)?;
        let proof = self.commit_ours(next, additional_hash, signer)?;
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
        self.check_not_claimed(secrethash)?;
        let (next, lock) = NextBalance::after_expiry(&self.partner, secrethash, now)?;
        self.accept_partner(proof, next)?;
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

/// What one side's balance proof commits to after a transition: its pending locks and the
/// balance data of the next proof. Computed the same way whether we sign it or check it.
struct NextBalance {
    locks: PendingLocks,
    balance: BalanceData,
}

impl NextBalance {
    fn from_locks(locks: PendingLocks, transferred: U256) -> Result<Self, ChannelError> {
        let balance = BalanceData {
            transferred_amount: transferred,
            locked_amount: locks
                .total()
                .ok_or(ChannelError::Overflow("locked amount"))?,
            locksroot: locks.locksroot(),
        };
        Ok(Self { locks, balance })
    }

    /// `amount` more transferred, locks unchanged.
    fn after_payment(end: &EndState, amount: U256) -> Result<Self, ChannelError> {
        let transferred = end
            .transferred()
            .checked_add(amount)
            .ok_or(ChannelError::Overflow("transferred amount"))?;
        Ok(Self {
            locks: end.locks.clone(),
            balance: BalanceData {
                transferred_amount: transferred,
                ..end.balance_data()
            },
        })
    }

    /// One more pending lock, which must be unexpired and not a duplicate.
    fn after_new_lock(end: &EndState, lock: &HashTimeLock, now: u64) -> Result<Self, ChannelError> {
        if lock.is_expired(now) {
            return Err(ChannelError::LockExpired {
                expiration: lock.expiration,
                now,
            });
        }
        if end.locks.contains(&lock.secrethash) {
            return Err(ChannelError::DuplicateLock(lock.secrethash));
        }
        Self::from_locks(end.locks.with(*lock), end.transferred())
    }

    /// The lock for `secrethash` moves from locked into transferred.
    fn after_unlock(
        end: &EndState,
        secrethash: &H256,
    ) -> Result<(Self, HashTimeLock), ChannelError> {
        let (locks, lock) = end
            .locks
            .without(secrethash)
            .ok_or(ChannelError::UnknownLock(*secrethash))?;
        let transferred = end
            .transferred()
            .checked_add(lock.amount)
            .ok_or(ChannelError::Overflow("transferred amount"))?;
        Ok((Self::from_locks(locks, transferred)?, lock))
    }

    /// The lock for `secrethash`, expired at `now`, is dropped.
    fn after_expiry(
        end: &EndState,
        secrethash: &H256,
        now: u64,
    ) -> Result<(Self, HashTimeLock), ChannelError> {
        let (locks, lock) = end
            .locks
            .without(secrethash)
            .ok_or(ChannelError::UnknownLock(*secrethash))?;
        if !lock.is_expired(now) {
            return Err(ChannelError::LockNotExpired(*secrethash));
        }
        Ok((Self::from_locks(locks, end.transferred())?, lock))
    }
}
