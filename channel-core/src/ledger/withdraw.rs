//! Operations driven by withdraw proofs signed by both participants: a withdraw from an open
//! channel, and cooperative settle (both participants' withdraws of everything at once).
//!
//! A withdraw proof is valid while `now < withdrawable_until`, must carry this ledger's domain
//! and is signed first by the participant who withdraws and then by the partner (both sign the
//! same `signing_hash`).

use crate::crypto::Signature;
use crate::locks::EMPTY_LOCKSROOT;
use crate::primitives::{Address, U256};
use crate::proofs::WithdrawProof;

use super::error::LedgerError;
use super::events::{LedgerEvent, LedgerEventKind};
use super::records::{ChannelPhase, ChannelRecord};
use super::{check_signature, index_in, Ledger};

impl Ledger {
    /// Raises `withdraw.participant`'s cumulative withdraw to `withdraw.total_withdraw` and pays
    /// the difference to them. Needs both signatures, an unexpired proof, and the channel
    /// Opened (no balance proof submitted yet); the two participants' withdraws together may not
    /// exceed their deposits. Anyone may submit it.
    pub fn set_total_withdraw(
        &mut self,
        _caller: Address,
        withdraw: &WithdrawProof,
        participant_signature: &Signature,
        partner_signature: &Signature,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        let channel_id = withdraw.channel_identifier;
        let mut channel = self.channel_in(channel_id, ChannelPhase::Opened)?.clone();
        let i = self.check_withdraw_proof(&channel, withdraw, now)?;
        let current = channel.participants[i].total_withdraw;
        let added = withdraw
            .total_withdraw
            .checked_sub(current)
            .filter(|a| !a.is_zero())
            .ok_or(LedgerError::WithdrawNotIncreasing {
                current,
                requested: withdraw.total_withdraw,
            })?;
        channel.participants[i].total_withdraw = withdraw.total_withdraw;
        let total_withdraw = channel
            .total_withdraw()
            .ok_or(LedgerError::Overflow("channel total withdraw"))?;
        let total_deposit = channel
            .total_deposit()
            .ok_or(LedgerError::Overflow("channel total deposit"))?;
        if total_withdraw > total_deposit {
            return Err(LedgerError::WithdrawExceedsDeposit {
                total_withdraw,
                total_deposit,
            });
        }
        check_withdraw_signatures(
            &channel,
            i,
            withdraw,
            participant_signature,
            partner_signature,
        )?;
        let mut plan = self.transfers();
        plan.pay_out(self, withdraw.participant, added)?;

        self.apply(plan);
        self.channels.insert(channel_id, channel);
        self.touched.channel(channel_id);
        Ok(self.emit(
            now,
            vec![LedgerEventKind::Withdraw {
                channel_id,
                participant: withdraw.participant,
                total_withdraw: withdraw.total_withdraw,
            }],
        ))
    }

    /// Settles an Opened channel at once from two fully signed withdraw proofs, one per
    /// participant; signatures are (participant's, partner's). The totals are cumulative: they
    /// must add up exactly to the channel's total deposit (so together they take out the whole
    /// remaining deposit and no locks can be pending), and neither may be below what that
    /// participant already withdrew. Pays both, marks the channel Settled and emits
    /// `ChannelSettled` with the amounts paid now and empty locksroots. Anyone may submit it.
    #[allow(clippy::too_many_arguments)]
    pub fn cooperative_settle(
        &mut self,
        _caller: Address,
        channel_id: U256,
        w1: &WithdrawProof,
        w1_sigs: (&Signature, &Signature),
        w2: &WithdrawProof,
        w2_sigs: (&Signature, &Signature),
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        let mut channel = self.channel_in(channel_id, ChannelPhase::Opened)?.clone();
        let i1 = self.check_withdraw_proof(&channel, w1, now)?;
        let i2 = self.check_withdraw_proof(&channel, w2, now)?;
        if i1 == i2 {
            return Err(LedgerError::CooperativeSettleSameParticipant {
                participant: w1.participant,
            });
        }
        let total_deposit = channel
            .total_deposit()
            .ok_or(LedgerError::Overflow("channel total deposit"))?;
        let total_withdraw = w1
            .total_withdraw
            .checked_add(w2.total_withdraw)
            .ok_or(LedgerError::Overflow("cooperative settle total withdraw"))?;
        if total_withdraw != total_deposit {
            return Err(LedgerError::CooperativeSettleNotWhole {
                total_deposit,
                total_withdraw,
            });
        }
        let mut payouts = [U256::ZERO; 2];
        for (i, w) in [(i1, w1), (i2, w2)] {
            let withdrawn = channel.participants[i].total_withdraw;
            payouts[i] = w.total_withdraw.checked_sub(withdrawn).ok_or(
                LedgerError::CooperativeWithdrawDecreasing {
                    participant: w.participant,
                    withdrawn,
                    total_withdraw: w.total_withdraw,
                },
            )?;
        }
        check_withdraw_signatures(&channel, i1, w1, w1_sigs.0, w1_sigs.1)?;
        check_withdraw_signatures(&channel, i2, w2, w2_sigs.0, w2_sigs.1)?;
        let mut plan = self.transfers();
        for (p, amount) in channel.participants.iter().zip(payouts) {
            plan.pay_out(self, p.address, amount)?;
        }

        self.apply(plan);
        channel.participants[i1].total_withdraw = w1.total_withdraw;
        channel.participants[i2].total_withdraw = w2.total_withdraw;
        channel.phase = ChannelPhase::Settled;
        self.unsettled_pairs.remove(&channel.participants_hash());
        let kind = LedgerEventKind::ChannelSettled {
            channel_id,
            participant1: channel.participants[0].address,
            participant1_amount: payouts[0],
            participant1_locksroot: EMPTY_LOCKSROOT,
            participant2: channel.participants[1].address,
            participant2_amount: payouts[1],
            participant2_locksroot: EMPTY_LOCKSROOT,
        };
        self.channels.insert(channel_id, channel);
        self.touched.channel(channel_id);
        Ok(self.emit(now, vec![kind]))
    }

    /// Domain, participant and expiry of one withdraw proof; returns the participant's index.
    fn check_withdraw_proof(
        &self,
        channel: &ChannelRecord,
        withdraw: &WithdrawProof,
        now: u64,
    ) -> Result<usize, LedgerError> {
        self.check_binding(&withdraw.domain, withdraw.channel_identifier, channel.id)?;
        let i = index_in(channel, withdraw.participant)?;
        if now >= withdraw.withdrawable_until {
            return Err(LedgerError::WithdrawExpired {
                until: withdraw.withdrawable_until,
                now,
            });
        }
        Ok(i)
    }
}

/// Both participants must have signed the withdraw of participant `i`.
fn check_withdraw_signatures(
    channel: &ChannelRecord,
    i: usize,
    withdraw: &WithdrawProof,
    participant_signature: &Signature,
    partner_signature: &Signature,
) -> Result<(), LedgerError> {
    let hash = withdraw.signing_hash();
    check_signature(
        &hash,
        participant_signature,
        channel.participants[i].address,
        "withdrawing participant",
    )?;
    check_signature(
        &hash,
        partner_signature,
        channel.participants[1 - i].address,
        "withdraw partner",
    )
}
