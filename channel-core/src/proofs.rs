//! The signed messages the Raiden TokenNetwork v0.50 contract accepts, packed byte for byte:
//! balance proofs (212 bytes), counter-signed balance proofs for close and update (277 bytes)
//! and withdraw proofs (200 bytes). Every digest that is signed is the EIP-191 hash of the
//! packed bytes.

use serde::{Deserialize, Serialize};

use crate::crypto::{eip191_hash, keccak256_concat, CryptoError, Signature, Signer};
use crate::locks::EMPTY_LOCKSROOT;
use crate::primitives::{u256_dec, u256_to_be, Address, H256, U256};

/// Message type tags of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum MessageType {
    BalanceProof = 1,
    BalanceProofUpdate = 2,
    Withdraw = 3,
}

impl MessageType {
    fn word(self) -> [u8; 32] {
        let mut w = [0u8; 32];
        w[31] = self as u8;
        w
    }
}

/// Binds a message to one ledger: chain id plus token network contract address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Domain {
    #[serde(with = "u256_dec")]
    pub chain_id: U256,
    pub token_network_address: Address,
}

impl Domain {
    fn write_prefix(&self, buf: &mut Vec<u8>, ty: MessageType, channel_id: &U256) {
        buf.extend_from_slice(self.token_network_address.as_bytes());
        buf.extend_from_slice(&u256_to_be(&self.chain_id));
        buf.extend_from_slice(&ty.word());
        buf.extend_from_slice(&u256_to_be(channel_id));
    }
}

/// What a balance proof commits to about one direction of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BalanceData {
    /// Total ever sent by the signer to the partner (monotonic).
    #[serde(with = "u256_dec")]
    pub transferred_amount: U256,
    /// Sum of the signer's pending locks toward the partner.
    #[serde(with = "u256_dec")]
    pub locked_amount: U256,
    /// keccak256 of the signer's pending locks.
    pub locksroot: H256,
}

impl BalanceData {
    /// Nothing sent, nothing locked.
    pub const EMPTY: BalanceData = BalanceData {
        transferred_amount: U256::ZERO,
        locked_amount: U256::ZERO,
        locksroot: EMPTY_LOCKSROOT,
    };

    /// `keccak256(transferred || locked || locksroot)`, or 32 zero bytes for the empty balance
    /// (as the Raiden client does, so equal states give equal bytes).
    pub fn balance_hash(&self) -> H256 {
        if self.is_empty() {
            return H256::ZERO;
        }
        keccak256_concat(&[
            &u256_to_be(&self.transferred_amount),
            &u256_to_be(&self.locked_amount),
            self.locksroot.as_bytes(),
        ])
    }

    pub fn is_empty(&self) -> bool {
        self.transferred_amount.is_zero()
            && self.locked_amount.is_zero()
            && self.locksroot == EMPTY_LOCKSROOT
    }

    /// transferred + locked, saturating (the settlement ordering key).
    pub fn total(&self) -> U256 {
        self.transferred_amount.saturating_add(self.locked_amount)
    }
}

impl Default for BalanceData {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// Length of a packed balance proof.
pub const BALANCE_PROOF_LEN: usize = 212;
/// Length of a packed counter-signed balance proof.
pub const COUNTER_SIGNED_LEN: usize = 277;
/// Length of a packed withdraw proof.
pub const WITHDRAW_LEN: usize = 200;

/// An unsigned balance proof of one sender in one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BalanceProof {
    pub domain: Domain,
    #[serde(with = "u256_dec")]
    pub channel_identifier: U256,
    pub nonce: u64,
    pub balance: BalanceData,
    pub additional_hash: H256,
}

impl BalanceProof {
    /// The proof used to close a channel when the partner never sent one: nonce 0, all zero.
    pub fn none(domain: Domain, channel_identifier: U256) -> Self {
        Self {
            domain,
            channel_identifier,
            nonce: 0,
            balance: BalanceData::EMPTY,
            additional_hash: H256::ZERO,
        }
    }

    fn pack_into(&self, buf: &mut Vec<u8>, ty: MessageType) {
        self.domain.write_prefix(buf, ty, &self.channel_identifier);
        buf.extend_from_slice(self.balance.balance_hash().as_bytes());
        buf.extend_from_slice(&u256_to_be(&U256::from(self.nonce)));
        buf.extend_from_slice(self.additional_hash.as_bytes());
    }

    /// The 212 packed bytes the sender signs.
    pub fn pack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(BALANCE_PROOF_LEN);
        self.pack_into(&mut buf, MessageType::BalanceProof);
        buf
    }

    /// EIP-191 digest of [`Self::pack`].
    pub fn signing_hash(&self) -> H256 {
        eip191_hash(&self.pack())
    }

    pub fn sign(&self, signer: &dyn Signer) -> Result<SignedBalanceProof, CryptoError> {
        Ok(SignedBalanceProof {
            proof: *self,
            signature: signer.sign_hash(&self.signing_hash())?,
        })
    }

    /// The 277 bytes the partner counter-signs: the proof packed with `ty` (1 for close,
    /// 2 for update) followed by the sender's signature.
    pub fn pack_counter_signed(&self, ty: MessageType, partner_signature: &Signature) -> Vec<u8> {
        let mut buf = Vec::with_capacity(COUNTER_SIGNED_LEN);
        self.pack_into(&mut buf, ty);
        buf.extend_from_slice(partner_signature.as_bytes());
        buf
    }
}

/// A balance proof with the sender's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignedBalanceProof {
    pub proof: BalanceProof,
    pub signature: Signature,
}

impl SignedBalanceProof {
    /// The "no proof" placeholder for a close without any proof from the partner.
    pub fn none(domain: Domain, channel_identifier: U256) -> Self {
        Self {
            proof: BalanceProof::none(domain, channel_identifier),
            signature: Signature::EMPTY,
        }
    }

    pub fn is_none(&self) -> bool {
        self.proof.nonce == 0 && self.signature.is_empty()
    }

    /// Recovers the signer's address.
    pub fn signer(&self) -> Result<Address, CryptoError> {
        self.signature.recover(&self.proof.signing_hash())
    }

    /// Digest the closer signs: the partner's proof with type 1 plus its signature.
    pub fn closing_hash(&self) -> H256 {
        eip191_hash(
            &self
                .proof
                .pack_counter_signed(MessageType::BalanceProof, &self.signature),
        )
    }

    /// Digest the non-closer signs when updating: the closer's proof with type 2.
    pub fn update_hash(&self) -> H256 {
        eip191_hash(
            &self
                .proof
                .pack_counter_signed(MessageType::BalanceProofUpdate, &self.signature),
        )
    }

    pub fn counter_sign_close(&self, signer: &dyn Signer) -> Result<Signature, CryptoError> {
        signer.sign_hash(&self.closing_hash())
    }

    pub fn counter_sign_update(&self, signer: &dyn Signer) -> Result<Signature, CryptoError> {
        signer.sign_hash(&self.update_hash())
    }
}

/// A withdraw request or confirmation: `participant` may take out `total_withdraw`
/// (cumulative) until ledger time `withdrawable_until`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WithdrawProof {
    pub domain: Domain,
    #[serde(with = "u256_dec")]
    pub channel_identifier: U256,
    pub participant: Address,
    #[serde(with = "u256_dec")]
    pub total_withdraw: U256,
    pub withdrawable_until: u64,
}

impl WithdrawProof {
    /// The 200 packed bytes both participants sign.
    pub fn pack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(WITHDRAW_LEN);
        self.domain
            .write_prefix(&mut buf, MessageType::Withdraw, &self.channel_identifier);
        buf.extend_from_slice(self.participant.as_bytes());
        buf.extend_from_slice(&u256_to_be(&self.total_withdraw));
        buf.extend_from_slice(&u256_to_be(&U256::from(self.withdrawable_until)));
        buf
    }

    pub fn signing_hash(&self) -> H256 {
        eip191_hash(&self.pack())
    }

    pub fn sign(&self, signer: &dyn Signer) -> Result<Signature, CryptoError> {
        signer.sign_hash(&self.signing_hash())
    }
}

/// `keccak256(lower address || higher address)`: the contract's key for a participant pair.
pub fn participants_hash(a: Address, b: Address) -> H256 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    keccak256_concat(&[lo.as_bytes(), hi.as_bytes()])
}

/// `keccak256(channel_identifier || sender || receiver)`: the key of pending locks to unlock.
pub fn unlock_identifier(channel_identifier: &U256, sender: Address, receiver: Address) -> H256 {
    keccak256_concat(&[
        &u256_to_be(channel_identifier),
        sender.as_bytes(),
        receiver.as_bytes(),
    ])
}
