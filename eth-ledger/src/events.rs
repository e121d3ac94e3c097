//! Following the ledger: the contracts' logs read with `eth_getLogs` from a block cursor,
//! decoded into `channel-core`'s [`LedgerEventKind`].
//!
//! An event counts only once its block has the configured number of confirmations (1 = the
//! head block counts; 12 = eleven blocks on top of it), so a shallow reorganisation cannot
//! take back an event the caller already acted on. The cursor is the next block to read: the
//! caller persists it with whatever it did about the events, and each event is returned by
//! exactly one poll.
//!
//! A driver that feeds these to `channel-core`'s [`channel_core::ledger::LedgerMirror`] numbers
//! them as the embedded ledger numbers its own events: consecutive seqs 1, 2, 3… in chain order
//! ([`number_events`], [`ChainEvent::into_ledger_event`]). It persists the last seq together
//! with the cursor (in one store batch, with the mirror): a poll from the same cursor returns
//! the same events in the same order, so a replay after a crash gives them the same seqs and
//! the mirror skips those it already applied.

use std::collections::BTreeMap;

use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::{Secret, H256};
use serde::{Deserialize, Serialize};

use crate::abi::{AbiError, Decoded, Event};
use crate::bindings::{custom_token, secret_registry, token_network as tn};
use crate::error::EthError;
use crate::ledger::EthereumLedger;
use crate::wire::{Log, LogFilter};

/// Where to continue reading: the first block not read yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventCursor {
    pub next_block: u64,
}

impl EventCursor {
    pub fn from_block(block: u64) -> Self {
        Self { next_block: block }
    }
}

/// One confirmed contract event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainEvent {
    pub block_number: u64,
    pub log_index: u64,
    pub tx_hash: H256,
    /// Ledger time: the block's timestamp.
    pub time: u64,
    pub kind: LedgerEventKind,
}

impl ChainEvent {
    /// This event as the ledger event numbered `seq`, at ledger time = its block's timestamp.
    /// The block, log index and transaction hash are dropped: the seq takes their place as
    /// the event's position.
    pub fn into_ledger_event(self, seq: u64) -> LedgerEvent {
        LedgerEvent {
            seq,
            time: self.time,
            kind: self.kind,
        }
    }
}

/// Numbers the events of one poll (in the order [`EthereumLedger::poll_events`] returned them)
/// with the seqs right after `last_seq`, the seq of the last event the driver numbered before
/// (0 before the first). The new last seq is the last event's, or `last_seq` if there are
/// none. Refused only if the seqs would run past `u64::MAX`.
pub fn number_events(events: Vec<ChainEvent>, last_seq: u64) -> Result<Vec<LedgerEvent>, EthError> {
    let mut seq = last_seq;
    events
        .into_iter()
        .map(|e| {
            seq = seq.checked_add(1).ok_or_else(|| EthError::InvalidInput {
                step: "number_events",
                reason: format!("event seqs after {last_seq} run past u64::MAX"),
            })?;
            Ok(e.into_ledger_event(seq))
        })
        .collect()
}

const STEP: &str = "eth_getLogs";

/// The TokenNetwork events that become ledger events.
const NETWORK_EVENTS: [Event; 7] = [
    tn::CHANNEL_OPENED,
    tn::CHANNEL_NEW_DEPOSIT,
    tn::CHANNEL_WITHDRAW,
    tn::CHANNEL_CLOSED,
    tn::NON_CLOSING_BALANCE_PROOF_UPDATED,
    tn::CHANNEL_SETTLED,
    tn::CHANNEL_UNLOCKED,
];

fn topics() -> Vec<H256> {
    NETWORK_EVENTS
        .iter()
        .chain([&secret_registry::SECRET_REVEALED, &custom_token::MINTED])
        .map(Event::topic0)
        .collect()
}

fn decode(event: &Event, log: &Log) -> Result<Decoded, EthError> {
    event
        .decode_log(&log.topics, &log.data)
        .map_err(|e| EthError::Decode {
            step: STEP,
            what: "event",
            reason: e.to_string(),
        })
}

/// A field of a decoded event that is not what the declaration promised.
fn field_error(event: &Event) -> impl Fn(AbiError) -> EthError + '_ {
    move |e| EthError::Decode {
        step: STEP,
        what: "event",
        reason: format!("{}: {e}", event.signature()),
    }
}

impl EthereumLedger {
    /// The confirmed events from `cursor` on (at most `max_log_range` blocks per call) and
    /// the cursor to continue from. Returns no events and the same cursor while nothing new
    /// is confirmed.
    pub async fn poll_events(
        &self,
        cursor: EventCursor,
    ) -> Result<(Vec<ChainEvent>, EventCursor), EthError> {
        let head = self.node.block_number().await?;
        let Some(confirmed) = head.saturating_add(1).checked_sub(self.confirmations) else {
            return Ok((Vec::new(), cursor));
        };
        if cursor.next_block > confirmed {
            return Ok((Vec::new(), cursor));
        }
        let last = confirmed.min(
            cursor
                .next_block
                .saturating_add(self.max_log_range.saturating_sub(1)),
        );
        let filter = LogFilter {
            addresses: vec![self.token_network, self.secret_registry, self.token],
            topic0: topics(),
            topic1: Vec::new(),
            from_block: cursor.next_block,
            to_block: last,
        };
        let mut logs = self.node.logs(&filter).await?;
        logs.retain(|l| !l.removed);
        logs.sort_by_key(|l| (l.block_number, l.log_index));

        let mut times: BTreeMap<u64, u64> = BTreeMap::new();
        let mut events = Vec::with_capacity(logs.len());
        for log in &logs {
            let Some(kind) = self.decode_kind(log)? else {
                continue;
            };
            let block_number = log.block_number.ok_or(EthError::Decode {
                step: STEP,
                what: "log",
                reason: "log without a block number".into(),
            })?;
            let time = match (log.block_timestamp, times.get(&block_number)) {
                (Some(t), _) => t,
                (None, Some(t)) => *t,
                (None, None) => {
                    let t = self.node.block_timestamp(Some(block_number)).await?;
                    times.insert(block_number, t);
                    t
                }
            };
            events.push(ChainEvent {
                block_number,
                log_index: log.log_index.unwrap_or(0),
                tx_hash: log.transaction_hash.unwrap_or(H256::ZERO),
                time,
                kind,
            });
        }
        Ok((
            events,
            EventCursor {
                next_block: last.saturating_add(1),
            },
        ))
    }

    fn decode_kind(&self, log: &Log) -> Result<Option<LedgerEventKind>, EthError> {
        let Some(topic) = log.topic0().copied() else {
            return Ok(None);
        };
        if log.address == self.token_network {
            let Some(event) = NETWORK_EVENTS.iter().find(|e| e.topic0() == topic) else {
                return Ok(None);
            };
            let e = decode(event, log)?;
            return self
                .network_kind(event, &e)
                .map(Some)
                .map_err(field_error(event));
        }
        if log.address == self.secret_registry && topic == secret_registry::SECRET_REVEALED.topic0()
        {
            let event = &secret_registry::SECRET_REVEALED;
            let e = decode(event, log)?;
            let kind = (|| {
                Ok(LedgerEventKind::SecretRegistered {
                    secrethash: e.bytes32("secrethash")?,
                    secret: Secret(e.bytes32("secret")?),
                })
            })();
            return kind.map(Some).map_err(field_error(event));
        }
        if log.address == self.token && topic == custom_token::MINTED.topic0() {
            let event = &custom_token::MINTED;
            let e = decode(event, log)?;
            let kind = (|| {
                Ok(LedgerEventKind::Minted {
                    to: e.address("_to")?,
                    amount: e.uint("_num")?,
                })
            })();
            return kind.map(Some).map_err(field_error(event));
        }
        Ok(None)
    }

    /// A TokenNetwork event as a ledger event.
    fn network_kind(&self, event: &Event, e: &Decoded) -> Result<LedgerEventKind, AbiError> {
        let channel_id = e.uint("channel_identifier")?;
        Ok(match event.name {
            "ChannelOpened" => LedgerEventKind::ChannelOpened {
                channel_id,
                participant1: e.address("participant1")?,
                participant2: e.address("participant2")?,
                settlement_timeout: self.settle_timeout,
            },
            "ChannelNewDeposit" => LedgerEventKind::Deposit {
                channel_id,
                participant: e.address("participant")?,
                total_deposit: e.uint("total_deposit")?,
            },
            "ChannelWithdraw" => LedgerEventKind::Withdraw {
                channel_id,
                participant: e.address("participant")?,
                total_withdraw: e.uint("total_withdraw")?,
            },
            "ChannelClosed" => LedgerEventKind::ChannelClosed {
                channel_id,
                closing_participant: e.address("closing_participant")?,
                nonce: e.u64("nonce")?,
                balance_hash: e.bytes32("balance_hash")?,
            },
            "NonClosingBalanceProofUpdated" => LedgerEventKind::NonClosingBalanceProofUpdated {
                channel_id,
                closing_participant: e.address("closing_participant")?,
                nonce: e.u64("nonce")?,
                balance_hash: e.bytes32("balance_hash")?,
            },
            "ChannelSettled" => LedgerEventKind::ChannelSettled {
                channel_id,
                participant1: e.address("participant1")?,
                participant1_amount: e.uint("participant1_amount")?,
                participant1_locksroot: e.bytes32("participant1_locksroot")?,
                participant2: e.address("participant2")?,
                participant2_amount: e.uint("participant2_amount")?,
                participant2_locksroot: e.bytes32("participant2_locksroot")?,
            },
            "ChannelUnlocked" => LedgerEventKind::ChannelUnlocked {
                channel_id,
                receiver: e.address("receiver")?,
                sender: e.address("sender")?,
                locksroot: e.bytes32("locksroot")?,
                unlocked_amount: e.uint("unlocked_amount")?,
                returned_tokens: e.uint("returned_tokens")?,
            },
            _ => {
                return Err(AbiError::Log {
                    event: event.signature(),
                    reason: "not a ledger event".into(),
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use channel_core::{Address, U256};

    use super::*;

    fn event(block_number: u64, time: u64, n: u8) -> ChainEvent {
        ChainEvent {
            block_number,
            log_index: u64::from(n),
            tx_hash: H256([n; 32]),
            time,
            kind: LedgerEventKind::Minted {
                to: Address([n; 20]),
                amount: U256::from(n),
            },
        }
    }

    #[test]
    fn a_chain_event_keeps_its_kind_and_block_time_under_the_given_seq() {
        let e = event(7, 1_700, 3);
        let kind = e.kind.clone();
        let le = e.into_ledger_event(42);
        assert_eq!(
            le,
            LedgerEvent {
                seq: 42,
                time: 1_700,
                kind
            }
        );
    }

    #[test]
    fn polls_are_numbered_consecutively_after_the_last_seq() {
        let first = number_events(vec![event(5, 100, 1), event(5, 100, 2)], 0).unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
        let second = number_events(vec![event(9, 130, 3)], 2).unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!((second[0].seq, second[0].time), (3, 130));
        assert_eq!(second[0].kind, event(9, 130, 3).kind);
        assert!(number_events(Vec::new(), 2).unwrap().is_empty());
    }

    #[test]
    fn numbering_past_the_last_seq_is_refused() {
        let ok = number_events(vec![event(1, 1, 1)], u64::MAX - 1).unwrap();
        assert_eq!(ok[0].seq, u64::MAX);
        let err = number_events(vec![event(1, 1, 1)], u64::MAX).unwrap_err();
        assert!(err.is_input_error(), "{err}");
        assert!(err.to_string().contains("u64::MAX"), "{err}");
    }

    #[test]
    fn numbered_events_feed_a_mirror_and_a_replay_changes_nothing() {
        use channel_core::ledger::LedgerMirror;
        let (p1, p2) = (Address([1; 20]), Address([2; 20]));
        let opened = ChainEvent {
            kind: LedgerEventKind::ChannelOpened {
                channel_id: U256::from(1u8),
                participant1: p1,
                participant2: p2,
                settlement_timeout: 100,
            },
            ..event(3, 50, 1)
        };
        let deposit = ChainEvent {
            kind: LedgerEventKind::Deposit {
                channel_id: U256::from(1u8),
                participant: p2,
                total_deposit: U256::from(9u8),
            },
            ..event(4, 60, 2)
        };
        let poll = vec![opened, deposit];
        let mut mirror = LedgerMirror::new();
        for e in number_events(poll.clone(), mirror.last_seq()).unwrap() {
            assert!(mirror.apply(&e).unwrap());
        }
        let once = mirror.clone();
        // A crash before the cursor moved: the same poll, numbered from the persisted seq 0.
        for e in number_events(poll, 0).unwrap() {
            assert!(!mirror.apply(&e).unwrap());
        }
        assert_eq!(mirror, once);
        let record = mirror.channel(U256::from(1u8)).unwrap();
        assert_eq!(record.opened_at, 50);
        assert_eq!(record.participants[1].total_deposit, U256::from(9u8));
        assert_eq!(mirror.last_seq(), 2);
    }
}
