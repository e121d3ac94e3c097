//! Following the ledger: the contracts' logs read with `eth_getLogs` from a block cursor,
//! decoded into `channel-core`'s [`LedgerEventKind`].
//!
//! An event counts only once its block has the configured number of confirmations (1 = the
//! head block counts; 12 = eleven blocks on top of it), so a shallow reorganisation cannot
//! take back an event the caller already acted on. The cursor is the next block to read: the
//! caller persists it with whatever it did about the events, and each event is returned by
//! exactly one poll.

use std::collections::BTreeMap;

use alloy::primitives::{Address as EvmAddress, B256};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use channel_core::ledger::LedgerEventKind;
use channel_core::{Secret, H256};
use serde::{Deserialize, Serialize};

use crate::bindings::{ICustomToken, ISecretRegistry, ITokenNetwork};
use crate::convert::{from_b256, from_evm, to_u64};
use crate::error::EthError;
use crate::ledger::EthereumLedger;

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

fn topics() -> Vec<B256> {
    vec![
        ITokenNetwork::ChannelOpened::SIGNATURE_HASH,
        ITokenNetwork::ChannelNewDeposit::SIGNATURE_HASH,
        ITokenNetwork::ChannelWithdraw::SIGNATURE_HASH,
        ITokenNetwork::ChannelClosed::SIGNATURE_HASH,
        ITokenNetwork::NonClosingBalanceProofUpdated::SIGNATURE_HASH,
        ITokenNetwork::ChannelSettled::SIGNATURE_HASH,
        ITokenNetwork::ChannelUnlocked::SIGNATURE_HASH,
        ISecretRegistry::SecretRevealed::SIGNATURE_HASH,
        ICustomToken::Minted::SIGNATURE_HASH,
    ]
}

fn decode<E: SolEvent>(log: &Log) -> Result<E, EthError> {
    E::decode_log(&log.inner)
        .map(|l| l.data)
        .map_err(|e| EthError::Decode {
            step: STEP,
            what: "event",
            reason: format!("{}: {e}", E::SIGNATURE),
        })
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
        let Some(confirmed) = (head + 1).checked_sub(self.confirmations) else {
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
        let filter = Filter::new()
            .address(vec![self.token_network, self.secret_registry, self.token])
            .event_signature(topics())
            .from_block(cursor.next_block)
            .to_block(last);
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
                tx_hash: log.transaction_hash.map(from_b256).unwrap_or(H256::ZERO),
                time,
                kind,
            });
        }
        Ok((
            events,
            EventCursor {
                next_block: last + 1,
            },
        ))
    }

    fn decode_kind(&self, log: &Log) -> Result<Option<LedgerEventKind>, EthError> {
        use ITokenNetwork as TN;
        let emitter: EvmAddress = log.address();
        let Some(topic) = log.topic0().copied() else {
            return Ok(None);
        };
        let kind = if emitter == self.token_network {
            match topic {
                TN::ChannelOpened::SIGNATURE_HASH => {
                    let e: TN::ChannelOpened = decode(log)?;
                    LedgerEventKind::ChannelOpened {
                        channel_id: e.channel_identifier,
                        participant1: from_evm(e.participant1),
                        participant2: from_evm(e.participant2),
                        settlement_timeout: self.settle_timeout,
                    }
                }
                TN::ChannelNewDeposit::SIGNATURE_HASH => {
                    let e: TN::ChannelNewDeposit = decode(log)?;
                    LedgerEventKind::Deposit {
                        channel_id: e.channel_identifier,
                        participant: from_evm(e.participant),
                        total_deposit: e.total_deposit,
                    }
                }
                TN::ChannelWithdraw::SIGNATURE_HASH => {
                    let e: TN::ChannelWithdraw = decode(log)?;
                    LedgerEventKind::Withdraw {
                        channel_id: e.channel_identifier,
                        participant: from_evm(e.participant),
                        total_withdraw: e.total_withdraw,
                    }
                }
                TN::ChannelClosed::SIGNATURE_HASH => {
                    let e: TN::ChannelClosed = decode(log)?;
                    LedgerEventKind::ChannelClosed {
                        channel_id: e.channel_identifier,
                        closing_participant: from_evm(e.closing_participant),
                        nonce: to_u64(STEP, "nonce", e.nonce)?,
                        balance_hash: from_b256(e.balance_hash),
                    }
                }
                TN::NonClosingBalanceProofUpdated::SIGNATURE_HASH => {
                    let e: TN::NonClosingBalanceProofUpdated = decode(log)?;
                    LedgerEventKind::NonClosingBalanceProofUpdated {
                        channel_id: e.channel_identifier,
                        closing_participant: from_evm(e.closing_participant),
                        nonce: to_u64(STEP, "nonce", e.nonce)?,
                        balance_hash: from_b256(e.balance_hash),
                    }
                }
                TN::ChannelSettled::SIGNATURE_HASH => {
                    let e: TN::ChannelSettled = decode(log)?;
                    LedgerEventKind::ChannelSettled {
                        channel_id: e.channel_identifier,
                        participant1: from_evm(e.participant1),
                        participant1_amount: e.participant1_amount,
                        participant1_locksroot: from_b256(e.participant1_locksroot),
                        participant2: from_evm(e.participant2),
                        participant2_amount: e.participant2_amount,
                        participant2_locksroot: from_b256(e.participant2_locksroot),
                    }
                }
                TN::ChannelUnlocked::SIGNATURE_HASH => {
                    let e: TN::ChannelUnlocked = decode(log)?;
                    LedgerEventKind::ChannelUnlocked {
                        channel_id: e.channel_identifier,
                        receiver: from_evm(e.receiver),
                        sender: from_evm(e.sender),
                        locksroot: from_b256(e.locksroot),
                        unlocked_amount: e.unlocked_amount,
                        returned_tokens: e.returned_tokens,
                    }
                }
                _ => return Ok(None),
            }
        } else if emitter == self.secret_registry
            && topic == ISecretRegistry::SecretRevealed::SIGNATURE_HASH
        {
            let e: ISecretRegistry::SecretRevealed = decode(log)?;
            LedgerEventKind::SecretRegistered {
                secrethash: from_b256(e.secrethash),
                secret: Secret(from_b256(e.secret)),
            }
        } else if emitter == self.token && topic == ICustomToken::Minted::SIGNATURE_HASH {
            let e: ICustomToken::Minted = decode(log)?;
            LedgerEventKind::Minted {
                to: from_evm(e._to),
                amount: e._num,
            }
        } else {
            return Ok(None);
        };
        Ok(Some(kind))
    }
}
