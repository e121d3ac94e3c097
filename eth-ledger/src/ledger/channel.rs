//! Operations on an open channel: open (with a first deposit), raise a deposit, withdraw with
//! both signatures, and cooperative settle (both participants' withdraws of everything).

use channel_core::ledger::deposit_increase;
use channel_core::{Address, U256};

use super::checks::check_signer;
use super::{decoded, event_in, sig_value, EthereumLedger, TxOutcome};
use crate::abi::Value;
use crate::bindings::token_network as tn;
use crate::error::EthError;

/// A withdraw proof with both participants' signatures (what `setTotalWithdraw` and each side
/// of `cooperativeSettle` take): `channel-core`'s own type, under the name this crate used
/// before it moved there.
pub use channel_core::ledger::CoSignedWithdraw as SignedWithdraw;

impl EthereumLedger {
    /// Opens a channel with `partner`, depositing `deposit` of our tokens in the same
    /// transaction when it is not zero (after approving it). Returns the channel identifier.
    pub async fn open_channel(
        &self,
        partner: Address,
        deposit: U256,
    ) -> Result<(U256, TxOutcome), EthError> {
        const STEP: &str = "openChannel";
        if partner == self.me || partner == Address::ZERO {
            return Err(EthError::InvalidInput {
                step: STEP,
                reason: format!("cannot open a channel with {partner}"),
            });
        }
        let receipt = if deposit.is_zero() {
            self.send_to_network(STEP, &tn::OPEN_CHANNEL, &[self.me.into(), partner.into()])
                .await?
        } else {
            self.approve(deposit).await?;
            self.send_to_network(
                "openChannelWithDeposit",
                &tn::OPEN_CHANNEL_WITH_DEPOSIT,
                &[self.me.into(), partner.into(), deposit.into()],
            )
            .await?
        };
        let id = event_in(STEP, &receipt, self.token_network, &tn::CHANNEL_OPENED)?
            .uint("channel_identifier")
            .map_err(decoded(STEP))?;
        Ok((id, TxOutcome::of(&receipt)))
    }

    /// Raises our cumulative deposit in `channel_id` to `total_deposit`, approving the
    /// increase first.
    pub async fn set_total_deposit(
        &self,
        channel_id: U256,
        partner: Address,
        total_deposit: U256,
    ) -> Result<TxOutcome, EthError> {
        self.set_total_deposit_for(channel_id, self.me, partner, total_deposit)
            .await
    }

    /// Raises `participant`'s cumulative deposit in `channel_id` (with `partner`) to
    /// `total_deposit`. We pay the increase from our tokens (approving it first), whoever
    /// `participant` is: the contract lets anyone top up a participant's deposit.
    pub async fn set_total_deposit_for(
        &self,
        channel_id: U256,
        participant: Address,
        partner: Address,
        total_deposit: U256,
    ) -> Result<TxOutcome, EthError> {
        const STEP: &str = "setTotalDeposit";
        if participant == partner {
            return Err(EthError::InvalidInput {
                step: STEP,
                reason: format!("participant and partner are both {participant}"),
            });
        }
        let current = self
            .participant_info(channel_id, participant, partner)
            .await?;
        let added = deposit_increase(current.deposit, total_deposit).map_err(|e| {
            EthError::InvalidInput {
                step: STEP,
                reason: e.to_string(),
            }
        })?;
        self.approve(added).await?;
        let receipt = self
            .send_to_network(
                STEP,
                &tn::SET_TOTAL_DEPOSIT,
                &[
                    channel_id.into(),
                    participant.into(),
                    total_deposit.into(),
                    partner.into(),
                ],
            )
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Pays out a withdraw both participants signed (`partner` is the channel partner of
    /// `w.proof.participant`). Anyone may submit it.
    pub async fn set_total_withdraw(
        &self,
        partner: Address,
        w: &SignedWithdraw,
    ) -> Result<TxOutcome, EthError> {
        const STEP: &str = "setTotalWithdraw";
        self.check_withdraw(STEP, w, partner)?;
        let channel = self
            .channel_identifier(w.proof.participant, partner)
            .await?;
        Self::check_channel(STEP, "withdraw proof", channel, w.proof.channel_identifier)?;
        let receipt = self
            .send_to_network(
                STEP,
                &tn::SET_TOTAL_WITHDRAW,
                &[
                    w.proof.channel_identifier.into(),
                    w.proof.participant.into(),
                    w.proof.total_withdraw.into(),
                    w.proof.withdrawable_until.into(),
                    sig_value(&w.participant_signature),
                    sig_value(&w.partner_signature),
                ],
            )
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Settles an open channel at once: each participant withdraws its whole balance
    /// (`w1`, `w2`, each signed by both). The totals must add up to the channel's deposit.
    pub async fn cooperative_settle(
        &self,
        w1: &SignedWithdraw,
        w2: &SignedWithdraw,
    ) -> Result<TxOutcome, EthError> {
        const STEP: &str = "cooperativeSettle";
        let (p1, p2) = (w1.proof.participant, w2.proof.participant);
        if p1 == p2 {
            return Err(EthError::InvalidInput {
                step: STEP,
                reason: format!("both withdraws are for {p1}"),
            });
        }
        Self::check_channel(
            STEP,
            "second withdraw",
            w1.proof.channel_identifier,
            w2.proof.channel_identifier,
        )?;
        self.check_withdraw(STEP, w1, p2)?;
        self.check_withdraw(STEP, w2, p1)?;
        // One side as `cooperativeSettle` takes it (`tn::WITHDRAW_INPUT`).
        let input = |w: &SignedWithdraw| {
            Value::Tuple(vec![
                w.proof.participant.into(),
                w.proof.total_withdraw.into(),
                w.proof.withdrawable_until.into(),
                sig_value(&w.participant_signature),
                sig_value(&w.partner_signature),
            ])
        };
        let receipt = self
            .send_to_network(
                STEP,
                &tn::COOPERATIVE_SETTLE,
                &[w1.proof.channel_identifier.into(), input(w1), input(w2)],
            )
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    fn check_withdraw(
        &self,
        step: &'static str,
        w: &SignedWithdraw,
        partner: Address,
    ) -> Result<(), EthError> {
        self.check_domain(step, "withdraw proof", &w.proof.domain)?;
        let hash = w.proof.signing_hash();
        check_signer(
            step,
            "withdraw participant signature",
            &hash,
            &w.participant_signature,
            w.proof.participant,
        )?;
        check_signer(
            step,
            "withdraw partner signature",
            &hash,
            &w.partner_signature,
            partner,
        )
    }
}
