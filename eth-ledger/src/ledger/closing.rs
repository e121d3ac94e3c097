//! The end of a channel on chain: close with the partner's proof, the non-closer's update,
//! settle after the window, secrets registered in the SecretRegistry, and `unlock` of the
//! pending locks kept at settlement.

use channel_core::channel::{CloseTransaction, UpdateTransaction};
use channel_core::locks::{pack_locks, unpack_locks};
use channel_core::{Address, BalanceData, HashTimeLock, Secret, H256, U256};

use super::checks::check_signer;
use super::{decoded, event_in, sig_value, EthereumLedger, TxOutcome};
use crate::abi::{AbiError, Value};
use crate::bindings::{secret_registry as sr, token_network as tn};
use crate::error::EthError;

/// What `unlock` paid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unlocked {
    /// To the receiver: locks whose secret was registered before expiry.
    pub unlocked_amount: U256,
    /// Back to the sender: the rest.
    pub returned_tokens: U256,
    pub outcome: TxOutcome,
}

impl EthereumLedger {
    /// Closes the channel as the closing participant (us), submitting `partner`'s latest
    /// balance proof counter-signed by us (`channel_core`'s [`CloseTransaction`]).
    pub async fn close_channel(
        &self,
        partner: Address,
        close: &CloseTransaction,
    ) -> Result<TxOutcome, EthError> {
        const STEP: &str = "closeChannel";
        let signed = &close.partner_proof;
        let proof = &signed.proof;
        self.check_domain(STEP, "partner balance proof", &proof.domain)?;
        Self::check_channel(
            STEP,
            "partner balance proof",
            close.channel_id,
            proof.channel_identifier,
        )?;
        check_signer(
            STEP,
            "closing signature",
            &signed.closing_hash(),
            &close.closing_signature,
            self.me,
        )?;
        if !signed.is_none() {
            check_signer(
                STEP,
                "partner balance proof",
                &proof.signing_hash(),
                &signed.signature,
                partner,
            )?;
        }
        let receipt = self
            .send_to_network(
                STEP,
                &tn::CLOSE_CHANNEL,
                &[
                    close.channel_id.into(),
                    partner.into(),
                    self.me.into(),
                    proof.balance.balance_hash().into(),
                    proof.nonce.into(),
                    proof.additional_hash.into(),
                    sig_value(&signed.signature),
                    sig_value(&close.closing_signature),
                ],
            )
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Replaces the closer's stored proof with a newer one during the settlement window:
    /// `update.closer_proof` signed by `closer`, counter-signed by `non_closer`. Anyone may
    /// submit it.
    pub async fn update_non_closing_balance_proof(
        &self,
        closer: Address,
        non_closer: Address,
        update: &UpdateTransaction,
    ) -> Result<TxOutcome, EthError> {
        const STEP: &str = "updateNonClosingBalanceProof";
        let signed = &update.closer_proof;
        let proof = &signed.proof;
        self.check_domain(STEP, "closer balance proof", &proof.domain)?;
        Self::check_channel(
            STEP,
            "closer balance proof",
            update.channel_id,
            proof.channel_identifier,
        )?;
        if proof.nonce == 0 {
            return Err(EthError::InvalidInput {
                step: STEP,
                reason: "the closer's proof has nonce 0 (there is nothing to update)".into(),
            });
        }
        check_signer(
            STEP,
            "closer balance proof",
            &proof.signing_hash(),
            &signed.signature,
            closer,
        )?;
        check_signer(
            STEP,
            "non-closing signature",
            &signed.update_hash(),
            &update.non_closing_signature,
            non_closer,
        )?;
        let receipt = self
            .send_to_network(
                STEP,
                &tn::UPDATE_NON_CLOSING_BALANCE_PROOF,
                &[
                    update.channel_id.into(),
                    closer.into(),
                    non_closer.into(),
                    proof.balance.balance_hash().into(),
                    proof.nonce.into(),
                    proof.additional_hash.into(),
                    sig_value(&signed.signature),
                    sig_value(&update.non_closing_signature),
                ],
            )
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Settles a closed channel after its window. Each participant comes with the balance
    /// data of the proof *it signed* that is stored on chain (empty if none was submitted);
    /// the pair is put in the order the contract wants (smaller transferred + locked first).
    pub async fn settle_channel(
        &self,
        channel_id: U256,
        a: (Address, BalanceData),
        b: (Address, BalanceData),
    ) -> Result<TxOutcome, EthError> {
        const STEP: &str = "settleChannel";
        if a.0 == b.0 {
            return Err(EthError::InvalidInput {
                step: STEP,
                reason: format!("both participants are {}", a.0),
            });
        }
        let (p1, p2) = if a.1.total() <= b.1.total() {
            (a, b)
        } else {
            (b, a)
        };
        let receipt = self
            .send_to_network(
                STEP,
                &tn::SETTLE_CHANNEL,
                &[
                    channel_id.into(),
                    p1.0.into(),
                    p1.1.transferred_amount.into(),
                    p1.1.locked_amount.into(),
                    p1.1.locksroot.into(),
                    p2.0.into(),
                    p2.1.transferred_amount.into(),
                    p2.1.locked_amount.into(),
                    p2.1.locksroot.into(),
                ],
            )
            .await?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Registers `secret` in the SecretRegistry at the current block time. A secret that is
    /// already registered is refused (the contract would silently keep the first time).
    pub async fn register_secret(&self, secret: Secret) -> Result<TxOutcome, EthError> {
        const STEP: &str = "registerSecret";
        if secret.0.is_zero() {
            return Err(EthError::InvalidInput {
                step: STEP,
                reason: "the zero secret cannot be registered".into(),
            });
        }
        let secrethash = secret.hash();
        if let Some(at) = self.secret_registered_at(&secrethash).await? {
            return Err(EthError::InvalidInput {
                step: STEP,
                reason: format!("secret {secrethash} is already registered (at {at})"),
            });
        }
        let receipt = self
            .send_call(
                STEP,
                self.secret_registry,
                &sr::REGISTER_SECRET,
                &[secret.0.into()],
            )
            .await?;
        event_in(STEP, &receipt, self.secret_registry, &sr::SECRET_REVEALED)?;
        Ok(TxOutcome::of(&receipt))
    }

    /// Ledger time at which the secret behind `secrethash` was registered.
    pub async fn secret_registered_at(&self, secrethash: &H256) -> Result<Option<u64>, EthError> {
        const STEP: &str = "getSecretRevealBlockTime";
        let at = self
            .node
            .call(
                STEP,
                self.secret_registry,
                &sr::GET_SECRET_REVEAL_BLOCK_TIME,
                &[(*secrethash).into()],
            )
            .await?
            .u64("block_time")
            .map_err(decoded(STEP))?;
        Ok((at > 0).then_some(at))
    }

    /// After settlement, pays out `sender`'s pending locks toward `receiver` (all of them, in
    /// creation order, as `channel_core` packs them): registered-in-time locks to the
    /// receiver, the rest back to the sender. Anyone may submit it.
    pub async fn unlock(
        &self,
        channel_id: U256,
        receiver: Address,
        sender: Address,
        locks: &[HashTimeLock],
    ) -> Result<Unlocked, EthError> {
        self.unlock_packed(channel_id, receiver, sender, &pack_locks(locks))
            .await
    }

    /// [`Self::unlock`] with the locks already packed (`channel_core::locks::pack_locks`):
    /// refused unless they are whole locks, at least one.
    pub async fn unlock_packed(
        &self,
        channel_id: U256,
        receiver: Address,
        sender: Address,
        packed_locks: &[u8],
    ) -> Result<Unlocked, EthError> {
        const STEP: &str = "unlock";
        let locks = unpack_locks(packed_locks).map_err(|e| EthError::InvalidInput {
            step: STEP,
            reason: format!("packed locks: {e}"),
        })?;
        if locks.is_empty() {
            return Err(EthError::InvalidInput {
                step: STEP,
                reason: "no locks to unlock".into(),
            });
        }
        let receipt = self
            .send_to_network(
                STEP,
                &tn::UNLOCK,
                &[
                    channel_id.into(),
                    receiver.into(),
                    sender.into(),
                    Value::Bytes(packed_locks.to_vec()),
                ],
            )
            .await?;
        let ev = event_in(STEP, &receipt, self.token_network, &tn::CHANNEL_UNLOCKED)?;
        let amounts = || -> Result<(U256, U256), AbiError> {
            Ok((ev.uint("unlocked_amount")?, ev.uint("returned_tokens")?))
        };
        let (unlocked_amount, returned_tokens) = amounts().map_err(decoded(STEP))?;
        Ok(Unlocked {
            unlocked_amount,
            returned_tokens,
            outcome: TxOutcome::of(&receipt),
        })
    }
}
