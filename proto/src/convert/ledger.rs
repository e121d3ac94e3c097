//! Conversions of ledger state and events: channel records, participants, submitted balances,
//! phases and the event log.

use channel_core::ledger::{
    ChannelPhase, ChannelRecord, LedgerEvent, LedgerEventKind, ParticipantRecord, SubmittedBalance,
};
use channel_core::Secret;

use super::{address, address_bytes, h256, h256_bytes, u256, u256_bytes, FieldError, Rule};
use crate::v1;
use crate::v1::ledger_event::Kind;

impl From<ChannelPhase> for v1::ChannelPhase {
    fn from(p: ChannelPhase) -> Self {
        match p {
            ChannelPhase::Opened => v1::ChannelPhase::Opened,
            ChannelPhase::Closed => v1::ChannelPhase::Closed,
            ChannelPhase::Settled => v1::ChannelPhase::Settled,
        }
    }
}

/// Reads a `ChannelPhase` enum field (`i32` on the wire).
pub fn channel_phase(field: &str, value: i32) -> Result<ChannelPhase, FieldError> {
    match v1::ChannelPhase::try_from(value) {
        Ok(v1::ChannelPhase::Opened) => Ok(ChannelPhase::Opened),
        Ok(v1::ChannelPhase::Closed) => Ok(ChannelPhase::Closed),
        Ok(v1::ChannelPhase::Settled) => Ok(ChannelPhase::Settled),
        Ok(v1::ChannelPhase::Unspecified) => Err(FieldError::new(field, Rule::Unspecified)),
        Err(_) => Err(FieldError::new(field, Rule::UnknownEnum(value))),
    }
}

impl From<&SubmittedBalance> for v1::SubmittedBalance {
    fn from(b: &SubmittedBalance) -> Self {
        v1::SubmittedBalance {
            nonce: b.nonce,
            balance_hash: h256_bytes(&b.balance_hash),
        }
    }
}

impl TryFrom<v1::SubmittedBalance> for SubmittedBalance {
    type Error = FieldError;
    fn try_from(m: v1::SubmittedBalance) -> Result<Self, FieldError> {
        Ok(SubmittedBalance {
            nonce: m.nonce,
            balance_hash: h256("balance_hash", &m.balance_hash)?,
        })
    }
}

impl From<&ParticipantRecord> for v1::LedgerParticipant {
    fn from(p: &ParticipantRecord) -> Self {
        v1::LedgerParticipant {
            address: address_bytes(&p.address),
            total_deposit: u256_bytes(&p.total_deposit),
            total_withdraw: u256_bytes(&p.total_withdraw),
            balance: p.balance.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<v1::LedgerParticipant> for ParticipantRecord {
    type Error = FieldError;
    fn try_from(m: v1::LedgerParticipant) -> Result<Self, FieldError> {
        Ok(ParticipantRecord {
            address: address("address", &m.address)?,
            total_deposit: u256("total_deposit", &m.total_deposit)?,
            total_withdraw: u256("total_withdraw", &m.total_withdraw)?,
            balance: m
                .balance
                .map(|b| SubmittedBalance::try_from(b).map_err(|e| e.within("balance")))
                .transpose()?,
        })
    }
}

impl From<&ChannelRecord> for v1::LedgerChannel {
    fn from(c: &ChannelRecord) -> Self {
        v1::LedgerChannel {
            channel_id: u256_bytes(&c.id),
            participants: c.participants.iter().map(Into::into).collect(),
            phase: v1::ChannelPhase::from(c.phase).into(),
            opened_at: c.opened_at,
            closer: c.closer.as_ref().map(address_bytes).unwrap_or_default(),
            closed_at: c.closed_at,
            settle_after: c.settle_after,
        }
    }
}

impl TryFrom<v1::LedgerChannel> for ChannelRecord {
    type Error = FieldError;
    fn try_from(m: v1::LedgerChannel) -> Result<Self, FieldError> {
        let got = m.participants.len();
        let [p0, p1]: [v1::LedgerParticipant; 2] = m
            .participants
            .try_into()
            .map_err(|_| FieldError::new("participants", Rule::Count { expected: 2, got }))?;
        let p0 = ParticipantRecord::try_from(p0).map_err(|e| e.within("participants[0]"))?;
        let p1 = ParticipantRecord::try_from(p1).map_err(|e| e.within("participants[1]"))?;
        let closer = if m.closer.is_empty() {
            None
        } else {
            Some(address("closer", &m.closer)?)
        };
        Ok(ChannelRecord {
            id: u256("channel_id", &m.channel_id)?,
            participants: [p0, p1],
            phase: channel_phase("phase", m.phase)?,
            opened_at: m.opened_at,
            closer,
            closed_at: m.closed_at,
            settle_after: m.settle_after,
        })
    }
}

impl From<&LedgerEvent> for v1::LedgerEvent {
    fn from(e: &LedgerEvent) -> Self {
        v1::LedgerEvent {
            seq: e.seq,
            time: e.time,
            kind: Some(kind_to_wire(&e.kind)),
        }
    }
}

fn kind_to_wire(k: &LedgerEventKind) -> Kind {
    use LedgerEventKind as K;
    match k {
        K::Minted { to, amount } => Kind::Minted(v1::Minted {
            to: address_bytes(to),
            amount: u256_bytes(amount),
        }),
        K::ChannelOpened {
            channel_id,
            participant1,
            participant2,
            settlement_timeout,
        } => Kind::ChannelOpened(v1::ChannelOpened {
            channel_id: u256_bytes(channel_id),
            participant1: address_bytes(participant1),
            participant2: address_bytes(participant2),
            settlement_timeout: *settlement_timeout,
        }),
        K::Deposit {
            channel_id,
            participant,
            total_deposit,
        } => Kind::Deposit(v1::Deposited {
            channel_id: u256_bytes(channel_id),
            participant: address_bytes(participant),
            total_deposit: u256_bytes(total_deposit),
        }),
        K::Withdraw {
            channel_id,
            participant,
            total_withdraw,
        } => Kind::Withdraw(v1::Withdrawn {
            channel_id: u256_bytes(channel_id),
            participant: address_bytes(participant),
            total_withdraw: u256_bytes(total_withdraw),
        }),
        K::ChannelClosed {
            channel_id,
            closing_participant,
            nonce,
            balance_hash,
        } => Kind::ChannelClosed(v1::ChannelClosed {
            channel_id: u256_bytes(channel_id),
            closing_participant: address_bytes(closing_participant),
            nonce: *nonce,
            balance_hash: h256_bytes(balance_hash),
        }),
        K::NonClosingBalanceProofUpdated {
            channel_id,
            closing_participant,
            nonce,
            balance_hash,
        } => Kind::NonClosingBalanceProofUpdated(v1::NonClosingBalanceProofUpdated {
            channel_id: u256_bytes(channel_id),
            closing_participant: address_bytes(closing_participant),
            nonce: *nonce,
            balance_hash: h256_bytes(balance_hash),
        }),
        K::ChannelSettled {
            channel_id,
            participant1,
            participant1_amount,
            participant1_locksroot,
            participant2,
            participant2_amount,
            participant2_locksroot,
        } => Kind::ChannelSettled(v1::ChannelSettled {
            channel_id: u256_bytes(channel_id),
            participant1: address_bytes(participant1),
            participant1_amount: u256_bytes(participant1_amount),
            participant1_locksroot: h256_bytes(participant1_locksroot),
            participant2: address_bytes(participant2),
            participant2_amount: u256_bytes(participant2_amount),
            participant2_locksroot: h256_bytes(participant2_locksroot),
        }),
        K::SecretRegistered { secrethash, secret } => {
            Kind::SecretRegistered(v1::SecretRegistered {
                secrethash: h256_bytes(secrethash),
                secret: h256_bytes(&secret.0),
            })
        }
        K::ChannelUnlocked {
            channel_id,
            receiver,
            sender,
            locksroot,
            unlocked_amount,
            returned_tokens,
        } => Kind::ChannelUnlocked(v1::ChannelUnlocked {
            channel_id: u256_bytes(channel_id),
            receiver: address_bytes(receiver),
            sender: address_bytes(sender),
            locksroot: h256_bytes(locksroot),
            unlocked_amount: u256_bytes(unlocked_amount),
            returned_tokens: u256_bytes(returned_tokens),
        }),
    }
}

impl TryFrom<v1::LedgerEvent> for LedgerEvent {
    type Error = FieldError;
    fn try_from(m: v1::LedgerEvent) -> Result<Self, FieldError> {
        let kind = m
            .kind
            .ok_or_else(|| FieldError::new("kind", Rule::Missing))?;
        Ok(LedgerEvent {
            seq: m.seq,
            time: m.time,
            kind: kind_from_wire(kind)?,
        })
    }
}

fn kind_from_wire(k: Kind) -> Result<LedgerEventKind, FieldError> {
    use LedgerEventKind as K;
    Ok(match k {
        Kind::Minted(m) => K::Minted {
            to: address("minted.to", &m.to)?,
            amount: u256("minted.amount", &m.amount)?,
        },
        Kind::ChannelOpened(m) => K::ChannelOpened {
            channel_id: u256("channel_opened.channel_id", &m.channel_id)?,
            participant1: address("channel_opened.participant1", &m.participant1)?,
            participant2: address("channel_opened.participant2", &m.participant2)?,
            settlement_timeout: m.settlement_timeout,
        },
        Kind::Deposit(m) => K::Deposit {
            channel_id: u256("deposit.channel_id", &m.channel_id)?,
            participant: address("deposit.participant", &m.participant)?,
            total_deposit: u256("deposit.total_deposit", &m.total_deposit)?,
        },
        Kind::Withdraw(m) => K::Withdraw {
            channel_id: u256("withdraw.channel_id", &m.channel_id)?,
            participant: address("withdraw.participant", &m.participant)?,
            total_withdraw: u256("withdraw.total_withdraw", &m.total_withdraw)?,
        },
        Kind::ChannelClosed(m) => K::ChannelClosed {
            channel_id: u256("channel_closed.channel_id", &m.channel_id)?,
            closing_participant: address(
                "channel_closed.closing_participant",
                &m.closing_participant,
            )?,
            nonce: m.nonce,
            balance_hash: h256("channel_closed.balance_hash", &m.balance_hash)?,
        },
        Kind::NonClosingBalanceProofUpdated(m) => K::NonClosingBalanceProofUpdated {
            channel_id: u256(
                "non_closing_balance_proof_updated.channel_id",
                &m.channel_id,
            )?,
            closing_participant: address(
                "non_closing_balance_proof_updated.closing_participant",
                &m.closing_participant,
            )?,
            nonce: m.nonce,
            balance_hash: h256(
                "non_closing_balance_proof_updated.balance_hash",
                &m.balance_hash,
            )?,
        },
        Kind::ChannelSettled(m) => K::ChannelSettled {
            channel_id: u256("channel_settled.channel_id", &m.channel_id)?,
            participant1: address("channel_settled.participant1", &m.participant1)?,
            participant1_amount: u256(
                "channel_settled.participant1_amount",
                &m.participant1_amount,
            )?,
            participant1_locksroot: h256(
                "channel_settled.participant1_locksroot",
                &m.participant1_locksroot,
            )?,
            participant2: address("channel_settled.participant2", &m.participant2)?,
            participant2_amount: u256(
                "channel_settled.participant2_amount",
                &m.participant2_amount,
            )?,
            participant2_locksroot: h256(
                "channel_settled.participant2_locksroot",
                &m.participant2_locksroot,
            )?,
        },
        Kind::SecretRegistered(m) => K::SecretRegistered {
            secrethash: h256("secret_registered.secrethash", &m.secrethash)?,
            secret: Secret(h256("secret_registered.secret", &m.secret)?),
        },
        Kind::ChannelUnlocked(m) => K::ChannelUnlocked {
            channel_id: u256("channel_unlocked.channel_id", &m.channel_id)?,
            receiver: address("channel_unlocked.receiver", &m.receiver)?,
            sender: address("channel_unlocked.sender", &m.sender)?,
            locksroot: h256("channel_unlocked.locksroot", &m.locksroot)?,
            unlocked_amount: u256("channel_unlocked.unlocked_amount", &m.unlocked_amount)?,
            returned_tokens: u256("channel_unlocked.returned_tokens", &m.returned_tokens)?,
        },
    })
}
