//! [`ChannelStateRecord`]: one channel's state machine as the hub (namespace `channels`, one
//! record per channel) and the device (namespace `device`, key `channel`) store it.
//!
//! Version 1 is the layout the derived serde of `channel_core::channel::Channel` wrote up to
//! commit f030e4f, frozen here field by field: amounts as decimal strings, addresses, hashes
//! and signatures as `0x` hex, the phase as serde's externally tagged enum, the partner's key
//! as its address, and the secrets map left out when empty. The protocol's message types inside
//! it (balance and withdraw proofs, locks, the domain) keep the layout of their own serde,
//! which is the protocol's field naming; the tests below pin every byte of it too.

use std::collections::BTreeMap;

use channel_core::channel::{
    Channel, ChannelParts, ChannelPartsError, ChannelPhase, EndState, KnownSecret, PendingWithdraw,
};
use channel_core::primitives::u256_dec;
use channel_core::{
    Address, Domain, HashTimeLock, PendingLocks, Secret, Signature, SignedBalanceProof,
    WithdrawProof, H256, U256,
};
use serde::{Deserialize, Serialize};

use crate::record;
use crate::StoreError;

/// The version [`ChannelStateRecord`] is written with. Version 1 is the only one in the field.
pub const CHANNEL_STATE_VERSION: u8 = 1;

/// One channel, as stored (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStateRecord {
    pub domain: Domain,
    #[serde(with = "u256_dec")]
    pub id: U256,
    pub our: EndStateRecord,
    pub partner: EndStateRecord,
    pub phase: PhaseRecord,
    /// The partner's address again (the core keeps the partner's verifying key, learned from
    /// its signatures, under it); always `partner.address`.
    pub partner_key: Address,
    /// Secrets of pending locks this side knows, by secrethash; absent when there are none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<H256, KnownSecretRecord>,
}

/// One participant's side of the channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndStateRecord {
    pub address: Address,
    #[serde(with = "u256_dec")]
    pub total_deposit: U256,
    #[serde(with = "u256_dec")]
    pub total_withdraw: U256,
    pub pending_withdraw: Option<PendingWithdrawRecord>,
    /// The latest balance proof this participant signed.
    pub latest: Option<SignedBalanceProof>,
    pub locks: PendingLocksRecord,
}

/// The pending locks of one direction, in creation order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLocksRecord {
    pub locks: Vec<HashTimeLock>,
}

/// A withdraw both sides are working on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWithdrawRecord {
    pub proof: WithdrawProof,
    pub participant_signature: Signature,
    pub partner_signature: Option<Signature>,
}

/// Where the channel is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PhaseRecord {
    Open,
    CooperativeSettling { until: u64 },
    Closing,
    Closed { closer: Address, at: u64 },
    Settled,
}

/// A secret this side knows, and when the ledger's registry recorded it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownSecretRecord {
    pub secret: Secret,
    pub registered_at: Option<u64>,
}

/// Why a decoded record is not a channel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChannelRecordError {
    #[error("partner_key {partner_key} is not the partner's address {partner}")]
    PartnerKey {
        partner_key: Address,
        partner: Address,
    },
    #[error(transparent)]
    Parts(#[from] ChannelPartsError),
}

impl ChannelStateRecord {
    /// The record of `channel`.
    pub fn from_channel(channel: &Channel) -> Self {
        let parts = channel.to_parts();
        Self {
            domain: parts.domain,
            id: parts.id,
            partner_key: parts.partner.address,
            our: parts.our.into(),
            partner: parts.partner.into(),
            phase: parts.phase.into(),
            secrets: parts
                .secrets
                .into_iter()
                .map(|(h, k)| (h, k.into()))
                .collect(),
        }
    }

    /// The channel this record holds, once the core accepts its parts.
    pub fn into_channel(self) -> Result<Channel, ChannelRecordError> {
        if self.partner_key != self.partner.address {
            return Err(ChannelRecordError::PartnerKey {
                partner_key: self.partner_key,
                partner: self.partner.address,
            });
        }
        Ok(Channel::from_parts(ChannelParts {
            domain: self.domain,
            id: self.id,
            our: self.our.into(),
            partner: self.partner.into(),
            phase: self.phase.into(),
            secrets: self
                .secrets
                .into_iter()
                .map(|(h, k)| (h, k.into()))
                .collect(),
        })?)
    }

    /// `channel` as stored: `[CHANNEL_STATE_VERSION] ++ JSON`.
    pub fn encode(channel: &Channel) -> Result<Vec<u8>, StoreError> {
        record::encode(CHANNEL_STATE_VERSION, &Self::from_channel(channel))
    }

    /// The channel stored as `bytes` under `namespace/key`, of any version still in the field;
    /// an unknown version is refused with [`StoreError::Version`].
    pub fn decode(namespace: &str, key: &str, bytes: &[u8]) -> Result<Channel, StoreError> {
        let (version, payload) = record::split(namespace, key, bytes)?;
        let rec: Self = match version {
            1 => record::json(namespace, key, payload)?,
            found => {
                return Err(record::unknown_version(
                    namespace,
                    key,
                    found,
                    CHANNEL_STATE_VERSION,
                ))
            }
        };
        rec.into_channel()
            .map_err(|e| record::corrupt(namespace, key, e))
    }
}

impl From<EndState> for EndStateRecord {
    fn from(e: EndState) -> Self {
        Self {
            address: e.address,
            total_deposit: e.total_deposit,
            total_withdraw: e.total_withdraw,
            pending_withdraw: e.pending_withdraw.map(Into::into),
            latest: e.latest,
            locks: PendingLocksRecord {
                locks: e.locks.as_slice().to_vec(),
            },
        }
    }
}

impl From<EndStateRecord> for EndState {
    fn from(r: EndStateRecord) -> Self {
        Self {
            address: r.address,
            total_deposit: r.total_deposit,
            total_withdraw: r.total_withdraw,
            pending_withdraw: r.pending_withdraw.map(Into::into),
            latest: r.latest,
            locks: PendingLocks::from(r.locks.locks),
        }
    }
}

impl From<PendingWithdraw> for PendingWithdrawRecord {
    fn from(w: PendingWithdraw) -> Self {
        Self {
            proof: w.proof,
            participant_signature: w.participant_signature,
            partner_signature: w.partner_signature,
        }
    }
}

impl From<PendingWithdrawRecord> for PendingWithdraw {
    fn from(r: PendingWithdrawRecord) -> Self {
        Self {
            proof: r.proof,
            participant_signature: r.participant_signature,
            partner_signature: r.partner_signature,
        }
    }
}

impl From<ChannelPhase> for PhaseRecord {
    fn from(p: ChannelPhase) -> Self {
        match p {
            ChannelPhase::Open => Self::Open,
            ChannelPhase::CooperativeSettling { until } => Self::CooperativeSettling { until },
            ChannelPhase::Closing => Self::Closing,
            ChannelPhase::Closed { closer, at } => Self::Closed { closer, at },
            ChannelPhase::Settled => Self::Settled,
        }
    }
}

impl From<PhaseRecord> for ChannelPhase {
    fn from(r: PhaseRecord) -> Self {
        match r {
            PhaseRecord::Open => Self::Open,
            PhaseRecord::CooperativeSettling { until } => Self::CooperativeSettling { until },
            PhaseRecord::Closing => Self::Closing,
            PhaseRecord::Closed { closer, at } => Self::Closed { closer, at },
            PhaseRecord::Settled => Self::Settled,
        }
    }
}

impl From<KnownSecret> for KnownSecretRecord {
    fn from(k: KnownSecret) -> Self {
        Self {
            secret: k.secret,
            registered_at: k.registered_at,
        }
    }
}

impl From<KnownSecretRecord> for KnownSecret {
    fn from(r: KnownSecretRecord) -> Self {
        Self {
            secret: r.secret,
            registered_at: r.registered_at,
        }
    }
}

#[cfg(test)]
mod tests;
