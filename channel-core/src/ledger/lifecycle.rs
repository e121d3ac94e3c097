//! The channel lifecycle operations: open, deposit, close, update by the non-closer, settle.
//!
//! Each operation first validates everything and builds the new channel record and token plan
//! on the side; only then does it write them back and emit events, so a rejection leaves the
//! ledger untouched.

use crate::primitives::{Address, U256};
use crate::proofs::{participants_hash, BalanceData, SignedBalanceProof};
use crate::settlement::{settle_amounts, SettlementInput};
use crate::Signature;

use super::error::LedgerError;
use super::events::{LedgerEvent, LedgerEventKind};
use super::records::{ChannelPhase, ChannelRecord, SubmittedBalance, UnlockEntry};
use super::{check_signature, index_in, persist::Keyed, Ledger};

/// What `settle_channel` needs, as the TokenNetwork contract's `settleChannel` does: each
/// participant with the balance data of the proof *it signed* that the ledger stores (the
/// empty balance if none was submitted). The ledger keeps only the hash of that data, so
/// whoever settles must know the data behind both hashes; the pair may come in either order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettleTransaction {
    pub channel_id: U256,
    pub balances: [(Address, BalanceData); 2],
}

impl SettleTransaction {
    /// The given balance data in the order of `channel`'s participants, each checked against
    /// the hash the ledger stores for that participant.
    fn balances_in_order_of(
        &self,
        channel: &ChannelRecord,
    ) -> Result<[BalanceData; 2], LedgerError> {
        let [(a, data_a), (b, data_b)] = self.balances;
        let [p1, p2] = [
            channel.participants[0].address,
            channel.participants[1].address,
        ];
        let ordered = if (a, b) == (p1, p2) {
            [data_a, data_b]
        } else if (a, b) == (p2, p1) {
            [data_b, data_a]
        } else {
            return Err(LedgerError::SettleParticipantsMismatch {
                channel_id: channel.id,
                got: format!("{a} and {b}"),
            });
        };
        for (participant, data) in channel.participants.iter().zip(ordered.iter()) {
            let stored = participant.balance_hash();
            let given = data.balance_hash();
            if stored != given {
                return Err(LedgerError::BalanceDataMismatch {
                    participant: participant.address,
                    stored,
                    given,
                });
            }
        }
        Ok(ordered)
    }
}

impl Ledger {
    /// Opens a channel between `caller` and `partner` and returns its identifier (1, 2, 3… per
    /// ledger). One unsettled channel per pair; after settlement the pair may open again.
    pub fn open_channel(
        &mut self,
        caller: Address,
        partner: Address,
        now: u64,
    ) -> Result<U256, LedgerError> {
        if caller == Address::ZERO || partner == Address::ZERO {
            return Err(LedgerError::ZeroAddress);
        }
        if caller == partner {
            return Err(LedgerError::SelfChannel);
        }
        let pair = participants_hash(caller, partner);
        if let Some(existing) = self.unsettled_pairs.get(&pair) {
            return Err(LedgerError::ChannelExists {
                channel_id: *existing,
            });
        }
        let id = self
            .last_channel_id
            .checked_add(U256::from(1u8))
            .ok_or(LedgerError::Overflow("channel identifier"))?;

        self.last_channel_id = id;
        self.channels
            .insert(id, ChannelRecord::new(id, caller, partner, now));
        self.touched.channel(id);
        self.unsettled_pairs.insert(pair, id);
        self.emit(
            now,
            vec![LedgerEventKind::ChannelOpened {
                channel_id: id,
                participant1: caller,
                participant2: partner,
                settlement_timeout: self.config.settlement_timeout,
            }],
        );
        Ok(id)
    }

    /// Opens a channel between `caller` and `partner` and deposits `total_deposit` for
    /// `caller`, all or nothing (`openChannelWithDeposit` of TokenNetwork 0.50). Emits the
    /// open and the deposit events, in that order.
    pub fn open_channel_with_deposit(
        &mut self,
        caller: Address,
        partner: Address,
        total_deposit: U256,
        now: u64,
    ) -> Result<U256, LedgerError> {
        // Every check the deposit makes, before anything changes: a positive amount the
        // caller holds. With those passing, the deposit into the fresh channel cannot fail.
        deposit_increase(U256::ZERO, total_deposit)?;
        let mut check = self.transfers();
        check.pay_in(self, caller, total_deposit)?;
        let id = self.open_channel(caller, partner, now)?;
        self.set_total_deposit(caller, id, caller, total_deposit, now)?;
        Ok(id)
    }

    /// Raises `participant`'s cumulative deposit to `total_deposit`; `caller` pays the
    /// difference from its token balance. Only while the channel is Opened.
    pub fn set_total_deposit(
        &mut self,
        caller: Address,
        channel_id: U256,
        participant: Address,
        total_deposit: U256,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        let mut channel = self.channel_in(channel_id, ChannelPhase::Opened)?.clone();
        let i = index_in(&channel, participant)?;
        let added = deposit_increase(channel.participants[i].total_deposit, total_deposit)?;
        channel.participants[i].total_deposit = total_deposit;
        channel
            .total_deposit()
            .ok_or(LedgerError::Overflow("channel total deposit"))?;
        let mut plan = self.transfers();
        plan.pay_in(self, caller, added)?;

        self.apply(plan);
        self.channels.insert(channel_id, channel);
        self.touched.channel(channel_id);
        Ok(self.emit(
            now,
            vec![LedgerEventKind::Deposit {
                channel_id,
                participant,
                total_deposit,
            }],
        ))
    }

    /// Closes the channel. `caller` is the closing participant; `partner_proof` is the
    /// partner's latest balance proof (or [`SignedBalanceProof::none`]), and
    /// `closing_signature` is the caller's signature over `partner_proof.closing_hash()`.
    /// Starts the settlement window: settle is allowed once `now > closed_at + timeout`.
    pub fn close_channel(
        &mut self,
        caller: Address,
        channel_id: U256,
        partner_proof: &SignedBalanceProof,
        closing_signature: &Signature,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        let mut channel = self.channel_in(channel_id, ChannelPhase::Opened)?.clone();
        let closer_index = index_in(&channel, caller)?;
        let partner_index = 1 - closer_index;
        let partner = channel.participants[partner_index].address;
        let proof = &partner_proof.proof;
        self.check_binding(&proof.domain, proof.channel_identifier, channel_id)?;
        let settle_after = now
            .checked_add(self.config.settlement_timeout)
            .ok_or(LedgerError::Overflow("settlement window end"))?;
        let submitted = if proof.nonce == 0 {
            if !partner_proof.is_none() || !proof.balance.is_empty() {
                return Err(LedgerError::MalformedEmptyProof);
            }
            None
        } else {
            check_signature(
                &proof.signing_hash(),
                &partner_proof.signature,
                partner,
                "partner balance proof",
            )?;
            Some(SubmittedBalance::from_proof(proof))
        };
        check_signature(
            &partner_proof.closing_hash(),
            closing_signature,
            caller,
            "closing participant",
        )?;

        channel.participants[partner_index].balance = submitted;
        channel.phase = ChannelPhase::Closed;
        channel.closer = Some(caller);
        channel.closed_at = Some(now);
        channel.settle_after = Some(settle_after);
        self.channels.insert(channel_id, channel);
        self.touched.channel(channel_id);
        Ok(self.emit(
            now,
            vec![LedgerEventKind::ChannelClosed {
                channel_id,
                closing_participant: caller,
                nonce: proof.nonce,
                balance_hash: proof.balance.balance_hash(),
            }],
        ))
    }

    /// Replaces the closer's stored balance proof with a newer one. `closer_proof` is signed by
    /// the closer, `non_closing_signature` is the non-closer's signature over
    /// `closer_proof.update_hash()`. Anyone may submit it (e.g. a monitoring service), while
    /// `now <= settle_after`; the nonce must exceed the stored one.
    pub fn update_non_closing_balance_proof(
        &mut self,
        _caller: Address,
        channel_id: U256,
        closer_proof: &SignedBalanceProof,
        non_closing_signature: &Signature,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        let mut channel = self.channel_in(channel_id, ChannelPhase::Closed)?.clone();
        let settle_after = channel.settle_after.unwrap_or(0);
        if now > settle_after {
            return Err(LedgerError::SettlementWindowClosed { settle_after, now });
        }
        let closer = channel
            .closer
            .ok_or(LedgerError::Underflow("closed channel without closer"))?;
        let closer_index = index_in(&channel, closer)?;
        let non_closer = channel.participants[1 - closer_index].address;
        let proof = &closer_proof.proof;
        self.check_binding(&proof.domain, proof.channel_identifier, channel_id)?;
        let stored = channel.participants[closer_index].nonce();
        if proof.nonce <= stored {
            return Err(LedgerError::NonceNotIncreasing {
                stored,
                got: proof.nonce,
            });
        }
        check_signature(
            &proof.signing_hash(),
            &closer_proof.signature,
            closer,
            "closing participant balance proof",
        )?;
        check_signature(
            &closer_proof.update_hash(),
            non_closing_signature,
            non_closer,
            "non-closing participant",
        )?;

        let submitted = SubmittedBalance::from_proof(proof);
        let balance_hash = submitted.balance_hash;
        channel.participants[closer_index].balance = Some(submitted);
        self.channels.insert(channel_id, channel);
        self.touched.channel(channel_id);
        Ok(self.emit(
            now,
            vec![LedgerEventKind::NonClosingBalanceProofUpdated {
                channel_id,
                closing_participant: closer,
                nonce: proof.nonce,
                balance_hash,
            }],
        ))
    }

    /// Settles a closed channel once `now > settle_after`: pays each participant what
    /// [`settle_amounts`] gives from the proofs they signed (empty if none was submitted) and
    /// keeps each side's locked part for `unlock`. The pair may open a new channel afterwards.
    pub fn settle_channel(
        &mut self,
        _caller: Address,
        settle: &SettleTransaction,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        let channel_id = settle.channel_id;
        let mut channel = self.channel_in(channel_id, ChannelPhase::Closed)?.clone();
        let settle_after = channel.settle_after.unwrap_or(0);
        if now <= settle_after {
            return Err(LedgerError::SettlementWindowOpen { settle_after, now });
        }
        let [b1, b2] = settle.balances_in_order_of(&channel)?;
        let [p1, p2] = &channel.participants;
        let outcome = settle_amounts(
            &SettlementInput::new(p1.total_deposit, p1.total_withdraw, &b1),
            &SettlementInput::new(p2.total_deposit, p2.total_withdraw, &b2),
        );
        let (a1, a2) = (p1.address, p2.address);
        let kept = [
            UnlockEntry {
                channel_id,
                sender: a1,
                receiver: a2,
                locksroot: b1.locksroot,
                locked_amount: outcome.p1_locked_kept,
            },
            UnlockEntry {
                channel_id,
                sender: a2,
                receiver: a1,
                locksroot: b2.locksroot,
                locked_amount: outcome.p2_locked_kept,
            },
        ];
        let mut plan = self.transfers();
        plan.pay_out(self, a1, outcome.p1_amount)?;
        plan.pay_out(self, a2, outcome.p2_amount)?;

        self.apply(plan);
        for entry in kept {
            if !entry.locked_amount.is_zero() {
                self.touched.unlock(entry.key());
                self.unlocks.insert(entry.key(), entry);
            }
        }
        self.unsettled_pairs.remove(&channel.participants_hash());
        channel.phase = ChannelPhase::Settled;
        self.channels.insert(channel_id, channel);
        self.touched.channel(channel_id);
        Ok(self.emit(
            now,
            vec![LedgerEventKind::ChannelSettled {
                channel_id,
                participant1: a1,
                participant1_amount: outcome.p1_amount,
                participant1_locksroot: b1.locksroot,
                participant2: a2,
                participant2_amount: outcome.p2_amount,
                participant2_locksroot: b2.locksroot,
            }],
        ))
    }
}

/// What raising a cumulative deposit from `current` to `requested` adds; refused unless it
/// grows. The one statement of the rule, for the ledger and for drivers predicting it.
pub fn deposit_increase(current: U256, requested: U256) -> Result<U256, LedgerError> {
    requested
        .checked_sub(current)
        .filter(|a| !a.is_zero())
        .ok_or(LedgerError::DepositNotIncreasing { current, requested })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Signer;
    use crate::ledger::test_support::{domain, funded};
    use crate::primitives::H256;
    use crate::proofs::BalanceProof;

    #[test]
    fn ids_count_from_one_and_a_settled_pair_may_reopen() {
        let (mut l, a, b) = funded();
        let (a, b) = (a.address(), b.address());
        assert_eq!(
            l.channel(U256::from(1u8)).map(|c| c.id),
            Some(U256::from(1u8))
        );
        assert_eq!(
            l.open_channel(b, a, 1),
            Err(LedgerError::ChannelExists {
                channel_id: U256::from(1u8)
            })
        );
        let none = SignedBalanceProof::none(domain(), U256::from(1u8));
        let (mut l2, ka, _) = funded();
        let sig = none.counter_sign_close(&ka).unwrap();
        l2.close_channel(a, U256::from(1u8), &none, &sig, 5)
            .unwrap();
        // The window is 5..=15: settle at 15 is too early, at 16 it pays deposits back.
        let settle = SettleTransaction {
            channel_id: U256::from(1u8),
            balances: [(a, BalanceData::EMPTY), (b, BalanceData::EMPTY)],
        };
        assert!(l2.settle_channel(a, &settle, 15).is_err());
        l2.settle_channel(a, &settle, 16).unwrap();
        assert_eq!(l2.token_balance(a), U256::from(100u8));
        assert_eq!(l2.open_channel(b, a, 17), Ok(U256::from(2u8)));
        assert!(l2.conservation_holds());
        assert_eq!(l.last_event_seq(), 5);
    }

    #[test]
    fn open_with_deposit_is_all_or_nothing() {
        let (mut l, a, _) = funded();
        let c = crate::ledger::test_support::key(3).address();
        let a = a.address();
        // a holds 60 after depositing 40 in channel 1.
        let before = (l.last_event_seq(), l.token_balance(a));
        assert!(matches!(
            l.open_channel_with_deposit(a, c, U256::from(61u8), 7),
            Err(LedgerError::InsufficientTokens { .. })
        ));
        assert_eq!(
            l.open_channel_with_deposit(a, c, U256::ZERO, 7),
            Err(LedgerError::DepositNotIncreasing {
                current: U256::ZERO,
                requested: U256::ZERO
            })
        );
        assert_eq!((l.last_event_seq(), l.token_balance(a)), before);
        assert!(l.open_channel_between(a, c).is_none(), "nothing opened");

        let id = l
            .open_channel_with_deposit(a, c, U256::from(60u8), 7)
            .unwrap();
        assert_eq!(id, U256::from(2u8));
        let ch = l.channel(id).unwrap();
        assert_eq!(ch.participant(a).unwrap().total_deposit, U256::from(60u8));
        assert_eq!(l.token_balance(a), U256::ZERO);
        let kinds: Vec<_> = l
            .events_since(before.0)
            .iter()
            .map(|e| e.kind.clone())
            .collect();
        assert!(matches!(
            kinds.as_slice(),
            [
                LedgerEventKind::ChannelOpened { .. },
                LedgerEventKind::Deposit { .. }
            ]
        ));
        assert!(l.conservation_holds());
    }

    #[test]
    fn close_stores_the_partners_proof_under_the_partner() {
        let (mut l, a, b) = funded();
        let bp = BalanceProof {
            domain: domain(),
            channel_identifier: U256::from(1u8),
            nonce: 1,
            balance: BalanceData {
                transferred_amount: U256::from(3u8),
                ..BalanceData::EMPTY
            },
            additional_hash: H256::ZERO,
        }
        .sign(&b)
        .unwrap();
        let sig = bp.counter_sign_close(&a).unwrap();
        l.close_channel(a.address(), U256::from(1u8), &bp, &sig, 5)
            .unwrap();
        let ch = l.channel(U256::from(1u8)).unwrap();
        assert_eq!(ch.participant(b.address()).unwrap().nonce(), 1);
        assert!(ch.participant(a.address()).unwrap().balance.is_none());
        assert_eq!(ch.settle_after, Some(15));
    }
}
