//! [`LedgerMirror`]: the ledger's channels, secret registry and kept-back locks as a party
//! rebuilds them from the ledger's events alone.
//!
//! A driver on the embedded ledger can read the ledger itself; a driver on a real chain sees
//! only confirmed events (and can call a few view functions). Both feed the same events into
//! a mirror and read channel records, secret registrations and pending unlocks from it, so
//! the channel monitor ([`crate::channel::Channel::poll_ledger_actions`]) decides the same
//! way on either ledger. Like the contract's storage, a mirrored record keeps only the nonce
//! and balance hash of a submitted proof; whoever settles brings the balance data
//! ([`super::SettleTransaction`]).
//!
//! Feeding is idempotent and ordered: an event at or below the last applied seq is skipped,
//! so a driver that persists the mirror together with its event cursor can replay from the
//! cursor after a crash. The mirror trusts the order and content of the events (they come
//! from the ledger); an event that contradicts what it mirrors (a deposit in a channel it
//! never saw opened) is refused with a [`MirrorError`] and changes nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::channel::PendingUnlock;
use crate::primitives::{u256_dec, Address, H256, U256};

use super::events::{LedgerEvent, LedgerEventKind};
use super::records::{ChannelPhase, ChannelRecord, SubmittedBalance};

/// Why an event cannot be mirrored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    #[error("event {seq} concerns channel {channel_id}, which the mirror never saw opened")]
    UnknownChannel { seq: u64, channel_id: U256 },
    #[error("event {seq} names {address}, who is not a participant of channel {channel_id}")]
    NotParticipant {
        seq: u64,
        channel_id: U256,
        address: Address,
    },
    #[error("event {seq} opens channel {channel_id}, which the mirror already has")]
    ChannelExists { seq: u64, channel_id: U256 },
    #[error("event {seq}: the end of channel {channel_id}'s settlement window overflows")]
    Overflow { seq: u64, channel_id: U256 },
}

/// One channel as mirrored: its record plus its settlement timeout (from its opening).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirroredChannel {
    pub record: ChannelRecord,
    pub settlement_timeout: u64,
}

/// Locked tokens kept back at settlement for `sender → receiver`, until an unlock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptBack {
    #[serde(with = "u256_dec")]
    pub channel_id: U256,
    pub sender: Address,
    pub receiver: Address,
    pub locksroot: H256,
}

/// A mirror taken apart, for a driver that persists its pieces as separate records (one per
/// channel and per secret), so that applying an event rewrites what it touched only
/// ([`LedgerMirror::from_parts`], [`LedgerMirror::mirrored_channel`],
/// [`LedgerMirror::kept_back_all`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorParts {
    pub channels: Vec<MirroredChannel>,
    /// Secret hash and registration time.
    pub secrets: Vec<(H256, u64)>,
    pub kept_back: Vec<KeptBack>,
    pub last_seq: u64,
    pub last_time: u64,
}

/// The ledger as its events describe it (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMirror {
    channels: BTreeMap<String, MirroredChannel>,
    secrets: BTreeMap<H256, u64>,
    kept_back: Vec<KeptBack>,
    last_seq: u64,
    last_time: u64,
}

fn channel_key(id: &U256) -> String {
    format!("{id:0>78}")
}

impl LedgerMirror {
    pub fn new() -> Self {
        Self::default()
    }

    /// A mirror put together from its stored pieces (see [`MirrorParts`]).
    pub fn from_parts(parts: MirrorParts) -> Self {
        Self {
            channels: parts
                .channels
                .into_iter()
                .map(|c| (channel_key(&c.record.id), c))
                .collect(),
            secrets: parts.secrets.into_iter().collect(),
            kept_back: parts.kept_back,
            last_seq: parts.last_seq,
            last_time: parts.last_time,
        }
    }

    /// This mirror taken apart (the inverse of [`LedgerMirror::from_parts`]).
    pub fn to_parts(&self) -> MirrorParts {
        MirrorParts {
            channels: self.channels.values().cloned().collect(),
            secrets: self.secrets.iter().map(|(h, t)| (*h, *t)).collect(),
            kept_back: self.kept_back.clone(),
            last_seq: self.last_seq,
            last_time: self.last_time,
        }
    }

    /// Channel `id` with its settlement timeout, as a driver stores it.
    pub fn mirrored_channel(&self, id: U256) -> Option<&MirroredChannel> {
        self.channels.get(&channel_key(&id))
    }

    /// Every kept-back entry, as a driver stores it.
    pub fn kept_back_all(&self) -> &[KeptBack] {
        &self.kept_back
    }

    /// The seq of the last event applied (0 = none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The ledger time of the last event applied.
    pub fn last_time(&self) -> u64 {
        self.last_time
    }

    pub fn channel(&self, id: U256) -> Option<&ChannelRecord> {
        self.channels.get(&channel_key(&id)).map(|c| &c.record)
    }

    /// Every channel `who` takes part in, by identifier.
    pub fn channels_of(&self, who: Address) -> Vec<&ChannelRecord> {
        self.channels
            .values()
            .map(|c| &c.record)
            .filter(|r| r.index_of(who).is_some())
            .collect()
    }

    /// When the secret of `secrethash` was registered, if it was.
    pub fn secret_registered_at(&self, secrethash: &H256) -> Option<u64> {
        self.secrets.get(secrethash).copied()
    }

    /// The tokens of channel `id` still kept back for an unlock, both directions: what a
    /// driver puts in [`crate::channel::LedgerView::pending_unlocks`].
    pub fn pending_unlocks(&self, id: U256) -> Vec<PendingUnlock> {
        self.kept_back
            .iter()
            .filter(|k| k.channel_id == id)
            .map(|k| PendingUnlock {
                sender: k.sender,
                receiver: k.receiver,
                locksroot: k.locksroot,
            })
            .collect()
    }

    /// Applies `event` if it is newer than the last one applied. `Ok(false)` for an event
    /// already applied; on error nothing changes.
    pub fn apply(&mut self, event: &LedgerEvent) -> Result<bool, MirrorError> {
        if event.seq <= self.last_seq {
            return Ok(false);
        }
        let seq = event.seq;
        let time = event.time;
        match &event.kind {
            LedgerEventKind::Minted { .. } => {}
            LedgerEventKind::ChannelOpened {
                channel_id,
                participant1,
                participant2,
                settlement_timeout,
            } => {
                let key = channel_key(channel_id);
                if self.channels.contains_key(&key) {
                    return Err(MirrorError::ChannelExists {
                        seq,
                        channel_id: *channel_id,
                    });
                }
                let record = ChannelRecord::new(*channel_id, *participant1, *participant2, time);
                self.channels.insert(
                    key,
                    MirroredChannel {
                        record,
                        settlement_timeout: *settlement_timeout,
                    },
                );
            }
            LedgerEventKind::Deposit {
                channel_id,
                participant,
                total_deposit,
            } => {
                let ch = self.channel_mut(seq, channel_id)?;
                participant_mut(seq, &mut ch.record, *participant)?.total_deposit = *total_deposit;
            }
            LedgerEventKind::Withdraw {
                channel_id,
                participant,
                total_withdraw,
            } => {
                let ch = self.channel_mut(seq, channel_id)?;
                participant_mut(seq, &mut ch.record, *participant)?.total_withdraw =
                    *total_withdraw;
            }
            LedgerEventKind::ChannelClosed {
                channel_id,
                closing_participant,
                nonce,
                balance_hash,
            } => {
                let ch = self.channel_mut(seq, channel_id)?;
                let settle_after =
                    time.checked_add(ch.settlement_timeout)
                        .ok_or(MirrorError::Overflow {
                            seq,
                            channel_id: *channel_id,
                        })?;
                let partner = ch.record.partner_of(*closing_participant).ok_or(
                    MirrorError::NotParticipant {
                        seq,
                        channel_id: *channel_id,
                        address: *closing_participant,
                    },
                )?;
                // The closer submitted the partner's proof; nonce 0 is "no proof".
                let submitted = (*nonce != 0).then_some(SubmittedBalance {
                    nonce: *nonce,
                    balance_hash: *balance_hash,
                });
                participant_mut(seq, &mut ch.record, partner)?.balance = submitted;
                let record = &mut ch.record;
                record.phase = ChannelPhase::Closed;
                record.closer = Some(*closing_participant);
                record.closed_at = Some(time);
                record.settle_after = Some(settle_after);
            }
            LedgerEventKind::NonClosingBalanceProofUpdated {
                channel_id,
                closing_participant,
                nonce,
                balance_hash,
            } => {
                let ch = self.channel_mut(seq, channel_id)?;
                participant_mut(seq, &mut ch.record, *closing_participant)?.balance =
                    Some(SubmittedBalance {
                        nonce: *nonce,
                        balance_hash: *balance_hash,
                    });
            }
            // On chain a cooperative settle also emits both `Withdraw`s (cumulative totals);
            // the embedded ledger's does not, and its settled records keep the totals anyway.
            LedgerEventKind::ChannelSettled {
                channel_id,
                participant1,
                participant1_locksroot,
                participant2,
                participant2_locksroot,
                ..
            } => {
                let ch = self.channel_mut(seq, channel_id)?;
                for who in [*participant1, *participant2] {
                    participant_mut(seq, &mut ch.record, who)?;
                }
                ch.record.phase = ChannelPhase::Settled;
                // A locksroot of pending locks at settlement means locked tokens were kept
                // back for an unlock (the event does not carry the amount; an unlock of a
                // direction that kept nothing is refused by the ledger and changes nothing).
                // The empty locksroot and 32 zero bytes (what the contract's cooperative
                // settle names) keep nothing.
                for (sender, receiver, locksroot) in [
                    (*participant1, *participant2, *participant1_locksroot),
                    (*participant2, *participant1, *participant2_locksroot),
                ] {
                    if crate::channel::keeps_tokens_back(&locksroot) {
                        self.kept_back.push(KeptBack {
                            channel_id: *channel_id,
                            sender,
                            receiver,
                            locksroot,
                        });
                    }
                }
            }
            LedgerEventKind::SecretRegistered { secrethash, .. } => {
                self.secrets.entry(*secrethash).or_insert(time);
            }
            LedgerEventKind::ChannelUnlocked {
                channel_id,
                receiver,
                sender,
                ..
            } => {
                self.channel_mut(seq, channel_id)?;
                self.kept_back.retain(|k| {
                    !(k.channel_id == *channel_id && k.sender == *sender && k.receiver == *receiver)
                });
            }
        }
        self.last_seq = seq;
        self.last_time = self.last_time.max(time);
        Ok(true)
    }

    fn channel_mut(&mut self, seq: u64, id: &U256) -> Result<&mut MirroredChannel, MirrorError> {
        self.channels
            .get_mut(&channel_key(id))
            .ok_or(MirrorError::UnknownChannel {
                seq,
                channel_id: *id,
            })
    }
}

fn participant_mut(
    seq: u64,
    record: &mut ChannelRecord,
    who: Address,
) -> Result<&mut super::records::ParticipantRecord, MirrorError> {
    let channel_id = record.id;
    record
        .participants
        .iter_mut()
        .find(|p| p.address == who)
        .ok_or(MirrorError::NotParticipant {
            seq,
            channel_id,
            address: who,
        })
}
