//! A device's unilateral close and what the ledger made of it: closing as the device (with
//! no proof of the hub's, or with an older hub proof it holds), reading the ledger's record
//! of the channel and the settled amounts, and comparing both with what the off-chain state
//! says they must be ([`CloseExpectation::check`]).
//!
//! Call order: [`TestDevice::close_on_ledger`], then [`wait_settled`] (the hub's watcher
//! contests and settles), then [`settlements`] and [`CloseExpectation::check`] per channel.
//! Every ledger call here is a query or an operation of the caller's own session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use channel_core::primitives::{Address, H256, U256};
use channel_core::{BalanceData, SignedBalanceProof, EMPTY_LOCKSROOT};

use futures::StreamExt;
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;
use voltlane_proto::v1::ledger_client::LedgerClient;

use crate::device::{Authed, TestDevice};
use crate::error::HarnessError;

/// Pause between ledger polls.
const POLL: Duration = Duration::from_millis(100);

impl TestDevice {
    /// `Ledger.CloseChannel` as the device: with `hub_proof` (a proof the hub signed, possibly
    /// older than the hub's latest) or, for `None`, with the "no proof" placeholder.
    /// Counter-signs the proof's closing hash with the device key.
    pub async fn close_on_ledger(
        &self,
        hub_proof: Option<&SignedBalanceProof>,
    ) -> Result<(), HarnessError> {
        let id = self.channel_id()?;
        let none = SignedBalanceProof::none(*self.channel()?.domain(), id);
        let proof = hub_proof.unwrap_or(&none);
        let closing_signature = proof
            .counter_sign_close(self.key())
            .map_err(|e| HarnessError::Channel(e.to_string()))?;
        self.ledger()
            .close_channel(v1::CloseChannelRequest {
                channel_id: u256_bytes(&id),
                partner_proof: Some(proof.into()),
                closing_signature: closing_signature.as_bytes().to_vec(),
            })
            .await?;
        Ok(())
    }

    /// Token balance of `who` on the ledger.
    pub async fn token_balance(&self, who: Address) -> Result<U256, HarnessError> {
        token_balance(&mut self.ledger(), who).await
    }
}

/// Token balance of `who` on the ledger.
pub async fn token_balance(
    ledger: &mut LedgerClient<Authed>,
    who: Address,
) -> Result<U256, HarnessError> {
    let b = ledger
        .get_token_balance(v1::GetTokenBalanceRequest {
            address: address_bytes(&who),
        })
        .await?
        .into_inner();
    u256(&b.balance, "TokenBalance.balance")
}

/// The ledger's record of one device channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerOutcome {
    pub phase: v1::ChannelPhase,
    /// Who closed it (None while open).
    pub closer: Option<Address>,
    /// Nonce of the device's proof on the ledger (submitted by the hub's contest when the
    /// device closed); None when no proof of the device's was submitted.
    pub device_nonce: Option<u64>,
    /// Balance hash of that proof (the ledger keeps only the hash, as the contract does).
    pub device_balance_hash: Option<H256>,
    /// Nonce of the hub's proof on the ledger (the one the device closed with).
    pub hub_nonce: Option<u64>,
}

/// `Ledger.GetChannel` of channel `id`, read from the side of `device`.
pub async fn ledger_outcome(
    ledger: &mut LedgerClient<Authed>,
    id: U256,
    device: Address,
) -> Result<LedgerOutcome, HarnessError> {
    let ch = ledger
        .get_channel(v1::GetLedgerChannelRequest {
            channel_id: u256_bytes(&id),
        })
        .await?
        .into_inner();
    let phase = v1::ChannelPhase::try_from(ch.phase)
        .map_err(|_| HarnessError::protocol(format!("unknown channel phase {}", ch.phase)))?;
    let closer = if ch.closer.is_empty() {
        None
    } else {
        Some(
            Address::from_slice(&ch.closer)
                .map_err(|_| HarnessError::protocol("LedgerChannel.closer is not 20 bytes"))?,
        )
    };
    let mut outcome = LedgerOutcome {
        phase,
        closer,
        device_nonce: None,
        device_balance_hash: None,
        hub_nonce: None,
    };
    for p in &ch.participants {
        let Some(b) = p.balance.as_ref() else {
            continue;
        };
        if p.address == address_bytes(&device) {
            outcome.device_nonce = Some(b.nonce);
            outcome.device_balance_hash =
                Some(H256::from_slice(&b.balance_hash).map_err(|_| {
                    HarnessError::protocol("SubmittedBalance.balance_hash is not 32 bytes")
                })?);
        } else {
            outcome.hub_nonce = Some(b.nonce);
        }
    }
    Ok(outcome)
}

/// Polls the ledger until every channel of `channels` (id, device) is settled; returns their
/// outcomes. A timeout names each channel that did not settle, with its state.
pub async fn wait_settled(
    ledger: &mut LedgerClient<Authed>,
    channels: &[(U256, Address)],
    limit: Duration,
) -> Result<HashMap<U256, LedgerOutcome>, HarnessError> {
    let started = Instant::now();
    loop {
        let mut outcomes = HashMap::new();
        let mut pending = Vec::new();
        for (id, device) in channels {
            let outcome = ledger_outcome(ledger, *id, *device).await?;
            if outcome.phase != v1::ChannelPhase::Settled {
                pending.push(format!("channel {id}: {outcome:?}"));
            }
            outcomes.insert(*id, outcome);
        }
        if pending.is_empty() {
            return Ok(outcomes);
        }
        if started.elapsed() >= limit {
            return Err(HarnessError::Timeout {
                what: format!(
                    "{} channel(s) to settle:\n{}",
                    pending.len(),
                    pending.join("\n")
                ),
                after: started.elapsed(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What a `ChannelSettled` event paid out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    pub amounts: Vec<(Address, U256)>,
}

impl Settled {
    /// The amount paid to `who`, if a participant.
    pub fn amount_of(&self, who: Address) -> Option<U256> {
        self.amounts
            .iter()
            .find_map(|(a, amount)| (*a == who).then_some(*amount))
    }
}

/// Every `ChannelSettled` event up to the ledger's last durable event, by channel id (the
/// ledger's event log replayed through `Ledger.Subscribe`).
pub async fn settlements(
    ledger: &mut LedgerClient<Authed>,
    limit: Duration,
) -> Result<HashMap<U256, Settled>, HarnessError> {
    let last = ledger
        .get_time(v1::GetTimeRequest {})
        .await?
        .into_inner()
        .last_event_seq;
    let mut out = HashMap::new();
    if last == 0 {
        return Ok(out);
    }
    let mut events = ledger
        .subscribe(v1::SubscribeRequest {
            from_seq: 1,
            participant: Vec::new(),
        })
        .await?
        .into_inner();
    let read = async {
        while let Some(event) = events.next().await {
            let event = event?;
            if let Some(v1::ledger_event::Kind::ChannelSettled(s)) = &event.kind {
                let id = u256(&s.channel_id, "ChannelSettled.channel_id")?;
                let party = |a: &[u8]| {
                    Address::from_slice(a)
                        .map_err(|_| HarnessError::protocol("ChannelSettled participant"))
                };
                out.insert(
                    id,
                    Settled {
                        amounts: vec![
                            (
                                party(&s.participant1)?,
                                u256(&s.participant1_amount, "participant1_amount")?,
                            ),
                            (
                                party(&s.participant2)?,
                                u256(&s.participant2_amount, "participant2_amount")?,
                            ),
                        ],
                    },
                );
            }
            if event.seq >= last {
                return Ok(());
            }
        }
        Err(HarnessError::protocol(format!(
            "ledger event stream ended before seq {last}"
        )))
    };
    crate::within(limit, "the ledger's event log replay", read).await??;
    Ok(out)
}

/// What the ledger must show after a device closed its channel unilaterally and the hub
/// contested: the device's proof with the nonce the hub acknowledged last, and a settlement
/// that pays exactly the off-chain balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseExpectation {
    pub channel_id: U256,
    pub device: Address,
    pub hub: Address,
    pub device_deposit: U256,
    /// The device's last acknowledged proof: nonce and transferred amount.
    pub device_nonce: u64,
    pub device_transferred: U256,
    /// Transferred amount of the hub proof the device closed with (zero for no proof).
    pub hub_transferred: U256,
    /// The device's token balance before settlement.
    pub device_tokens_before: U256,
}

impl CloseExpectation {
    /// What settlement must pay the device: deposit - sent + received.
    pub fn device_amount(&self) -> Option<U256> {
        self.device_deposit
            .checked_sub(self.device_transferred)?
            .checked_add(self.hub_transferred)
    }

    /// What settlement must pay the hub: received - sent (the hub deposited nothing).
    pub fn hub_amount(&self) -> Option<U256> {
        self.device_transferred.checked_sub(self.hub_transferred)
    }

    /// Every way the ledger differs from the expectation, one line each, naming the channel
    /// with the nonces and amounts (empty when all is exact).
    pub fn check(
        &self,
        outcome: &LedgerOutcome,
        settled: Option<&Settled>,
        device_tokens_now: U256,
    ) -> Vec<String> {
        let id = self.channel_id;
        let mut problems = Vec::new();
        if outcome.phase != v1::ChannelPhase::Settled {
            problems.push(format!(
                "channel {id}: phase {:?}, expected Settled",
                outcome.phase
            ));
        }
        if outcome.closer != Some(self.device) {
            problems.push(format!(
                "channel {id}: closer {:?}, expected the device {}",
                outcome.closer, self.device
            ));
        }
        // Direct payments only: the device's proof locks nothing.
        let device_balance_hash = BalanceData {
            transferred_amount: self.device_transferred,
            locked_amount: U256::ZERO,
            locksroot: EMPTY_LOCKSROOT,
        }
        .balance_hash();
        if outcome.device_nonce != Some(self.device_nonce)
            || outcome.device_balance_hash != Some(device_balance_hash)
        {
            problems.push(format!(
                "channel {id}: NOT CONTESTED: the ledger holds device nonce {:?} (balance hash {:?}), \
                 the hub acknowledged nonce {} (transferred {}, balance hash {device_balance_hash})",
                outcome.device_nonce,
                outcome.device_balance_hash,
                self.device_nonce,
                self.device_transferred
            ));
        }
        let (Some(device_amount), Some(hub_amount)) = (self.device_amount(), self.hub_amount())
        else {
            problems.push(format!("channel {id}: inconsistent expectation {self:?}"));
            return problems;
        };
        match settled {
            None => problems.push(format!("channel {id}: no ChannelSettled event")),
            Some(s) => {
                let (got_device, got_hub) = (s.amount_of(self.device), s.amount_of(self.hub));
                if got_device != Some(device_amount) || got_hub != Some(hub_amount) {
                    problems.push(format!(
                        "channel {id}: settled device {got_device:?} / hub {got_hub:?}, \
                         expected device {device_amount} (deposit {} - sent {} + received {}) / hub {hub_amount}",
                        self.device_deposit, self.device_transferred, self.hub_transferred
                    ));
                }
            }
        }
        let expected_tokens = self.device_tokens_before.saturating_add(device_amount);
        if device_tokens_now != expected_tokens {
            problems.push(format!(
                "channel {id}: device {} holds {device_tokens_now} tokens, expected {expected_tokens} \
                 ({} before + {device_amount} settled)",
                self.device, self.device_tokens_before
            ));
        }
        problems
    }
}

fn u256(bytes: &[u8], what: &str) -> Result<U256, HarnessError> {
    U256::try_from_be_slice(bytes)
        .ok_or_else(|| HarnessError::protocol(format!("{what} is not a uint256")))
}
