//! Following the ledger: the contracts' logs read with `eth_getLogs` from a block cursor,
//! decoded into `channel-core`'s [`LedgerEventKind`].
//!
//! An event counts only once its block has the configured number of confirmations (1 = the
//! head block counts; 12 = eleven blocks on top of it), so a shallow reorganisation cannot
//! take back an event the caller already acted on. The cursor is the next block to read: the
//! caller persists it with whatever it did about the events, and each event is returned by
//! exactly one poll.

use std::collections::BTreeMap;

use channel_core::ledger::LedgerEventKind;
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
