//! The records the ledger keeps: its configuration, one record per channel (with one record per
//! participant and the balance proofs submitted for them), and the locked amounts kept after
//! settlement for `unlock`.
//!
//! Owns the shape of ledger state and simple derived queries on it; the rules that change it
//! live in the operation modules.

use serde::{Deserialize, Serialize};

use crate::primitives::{u256_dec, Address, H256, U256};
use crate::proofs::{participants_hash, unlock_identifier, BalanceProof, Domain};

use super::persist::Keyed;

/// What a ledger is: which proofs it accepts (domain) and how long the settlement window is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerConfig {
    pub domain: Domain,
    /// Seconds between close and the first moment settle is allowed.
    pub settlement_timeout: u64,
}

/// Where a channel is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelPhase {
    /// Deposits and withdraws allowed; no balance proof submitted yet.
    Opened,
    /// Closed by one participant; the settlement window runs.
    Closed,
    /// Paid out (by settle or cooperative settle). Kept locks may still be unlocked.
    Settled,
}

/// A balance proof as the ledger stores it: like the contract, only its nonce and balance
/// hash. Whoever settles or unlocks brings the balance data and locks behind the hash.
/// (Records written before this keep a `balance` field, which is ignored.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmittedBalance {
    pub nonce: u64,
    pub balance_hash: H256,
}

impl SubmittedBalance {
    pub fn from_proof(proof: &BalanceProof) -> Self {
        Self {
            nonce: proof.nonce,
            balance_hash: proof.balance.balance_hash(),
        }
    }
}

/// One participant's side of a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantRecord {
    pub address: Address,
    #[serde(with = "u256_dec")]
    pub total_deposit: U256,
    #[serde(with = "u256_dec")]
    pub total_withdraw: U256,
    /// The balance proof OF THIS participant (signed by them) as submitted by the partner
    /// (close) or via update.
    pub balance: Option<SubmittedBalance>,
}

impl ParticipantRecord {
    pub fn new(address: Address) -> Self {
        Self {
            address,
            total_deposit: U256::ZERO,
            total_withdraw: U256::ZERO,
            balance: None,
        }
    }

    /// The stored balance hash: all the contract keeps of a submitted proof's balance (32
    /// zero bytes if none was submitted).
    pub fn balance_hash(&self) -> H256 {
        self.balance.as_ref().map_or(H256::ZERO, |b| b.balance_hash)
    }

    /// Nonce of the stored proof, 0 if none.
    pub fn nonce(&self) -> u64 {
        self.balance.as_ref().map_or(0, |b| b.nonce)
    }
}

/// One channel of the token network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRecord {
    #[serde(with = "u256_dec")]
    pub id: U256,
    /// `[0]` = opener, `[1]` = partner.
    pub participants: [ParticipantRecord; 2],
    pub phase: ChannelPhase,
    pub opened_at: u64,
    pub closer: Option<Address>,
    pub closed_at: Option<u64>,
    /// Settle is allowed when `now > settle_after` (= closed_at + settlement_timeout); updates
    /// are allowed while `now <= settle_after`.
    pub settle_after: Option<u64>,
}

impl ChannelRecord {
    pub(crate) fn new(id: U256, opener: Address, partner: Address, now: u64) -> Self {
        Self {
            id,
            participants: [
                ParticipantRecord::new(opener),
                ParticipantRecord::new(partner),
            ],
            phase: ChannelPhase::Opened,
            opened_at: now,
            closer: None,
            closed_at: None,
            settle_after: None,
        }
    }

    /// Position of `a` in [`Self::participants`].
    pub fn index_of(&self, a: Address) -> Option<usize> {
        self.participants.iter().position(|p| p.address == a)
    }

    pub fn participant(&self, a: Address) -> Option<&ParticipantRecord> {
        self.participants.iter().find(|p| p.address == a)
    }

    pub fn partner_of(&self, a: Address) -> Option<Address> {
        self.index_of(a).map(|i| self.participants[1 - i].address)
    }

    pub fn participants_hash(&self) -> H256 {
        participants_hash(self.participants[0].address, self.participants[1].address)
    }

    /// Sum of both deposits; `None` if it does not fit (the ledger never lets that happen).
    pub fn total_deposit(&self) -> Option<U256> {
        self.participants[0]
            .total_deposit
            .checked_add(self.participants[1].total_deposit)
    }

    /// Sum of both withdraws; `None` if it does not fit.
    pub fn total_withdraw(&self) -> Option<U256> {
        self.participants[0]
            .total_withdraw
            .checked_add(self.participants[1].total_withdraw)
    }

    /// Tokens the channel itself still holds: deposits minus withdraws until it is settled,
    /// zero afterwards (kept locks are tracked as [`UnlockEntry`]s).
    pub fn held(&self) -> Option<U256> {
        match self.phase {
            ChannelPhase::Settled => Some(U256::ZERO),
            ChannelPhase::Opened | ChannelPhase::Closed => {
                self.total_deposit()?.checked_sub(self.total_withdraw()?)
            }
        }
    }
}

impl Keyed for ChannelRecord {
    type Key = U256;
    fn key(&self) -> U256 {
        self.id
    }
}

/// Locked tokens of `sender` toward `receiver` kept back at settlement, waiting for `unlock`.
/// Stored under `unlock_identifier(channel_id, sender, receiver)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnlockEntry {
    #[serde(with = "u256_dec")]
    pub channel_id: U256,
    pub sender: Address,
    pub receiver: Address,
    /// The sender's locksroot from the balance proof used at settlement.
    pub locksroot: H256,
    #[serde(with = "u256_dec")]
    pub locked_amount: U256,
}

impl Keyed for UnlockEntry {
    type Key = H256;
    fn key(&self) -> H256 {
        unlock_identifier(&self.channel_id, self.sender, self.receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> Address {
        Address([n; 20])
    }

    #[test]
    fn participant_lookup_and_held_amount() {
        let mut ch = ChannelRecord::new(U256::from(1u8), addr(1), addr(2), 5);
        assert_eq!(ch.partner_of(addr(1)), Some(addr(2)));
        assert_eq!(ch.partner_of(addr(2)), Some(addr(1)));
        assert_eq!(ch.partner_of(addr(3)), None);
        assert_eq!(ch.index_of(addr(2)), Some(1));
        assert!(ch.participant(addr(3)).is_none());
        ch.participants[0].total_deposit = U256::from(10u8);
        ch.participants[1].total_deposit = U256::from(5u8);
        ch.participants[1].total_withdraw = U256::from(3u8);
        assert_eq!(ch.held(), Some(U256::from(12u8)));
        ch.phase = ChannelPhase::Settled;
        assert_eq!(ch.held(), Some(U256::ZERO));
        assert_eq!(ch.participants_hash(), participants_hash(addr(2), addr(1)));
    }

    #[test]
    fn missing_balance_reads_as_empty() {
        let p = ParticipantRecord::new(addr(1));
        assert_eq!(p.balance_hash(), H256::ZERO);
        assert_eq!(p.nonce(), 0);
    }

    #[test]
    fn a_record_written_with_balance_data_still_loads() {
        let old = r#"{"nonce":3,"balance":{"transferred_amount":"5","locked_amount":"0","locksroot":"0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"},"balance_hash":"0x1111111111111111111111111111111111111111111111111111111111111111"}"#;
        let b: SubmittedBalance = serde_json::from_str(old).unwrap();
        assert_eq!(b.nonce, 3);
        assert_eq!(b.balance_hash, H256([0x11; 32]));
    }
}
