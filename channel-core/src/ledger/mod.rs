//! A deterministic token-network ledger implementing the Raiden TokenNetwork v0.50 rules
//! (plus its SecretRegistry and a dev token), sans I/O.
//!
//! Every mutating call takes `caller` (the transaction sender, already authenticated by the
//! driver) and `now` (ledger time, seconds); there is no clock, randomness or I/O. A driver
//! persists it record by record ([`Ledger::take_changes`], [`Ledger::from_parts`]); the whole
//! [`Ledger`] also round-trips through serde.
//!
//! Calls come in three groups:
//! - getters on `&self`: [`Ledger::config`], [`Ledger::channel`], [`Ledger::token_balance`], …
//! - operations (`mint`, `open_channel`, `set_total_deposit`, `set_total_withdraw`,
//!   `close_channel`, `update_non_closing_balance_proof`, `settle_channel`, `register_secret`,
//!   `unlock`, `cooperative_settle`): each validates everything first and changes nothing when it
//!   returns an error; on success it appends events to the log and returns them;
//! - the event log, read with [`Ledger::events_since`] after operations. Every event is kept
//!   until the driver releases it ([`Ledger::release_events_through`]) after storing it.
//!
//! Layout: [`records`] (state shapes), [`error`], [`events`], `tokens` (balances, faucet,
//! conservation), `lifecycle` (open, deposit, close, update, settle), `withdraw` (withdraw and
//! cooperative settle), `secrets` (secret registry and unlock), `persist` (serde encoding),
//! [`changes`] (touched records and rebuilding from records).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{verify_signer, Signature};
use crate::primitives::{u256_dec, Address, H256, U256};
use crate::proofs::{participants_hash, unlock_identifier, Domain};

pub mod changes;
pub mod error;
pub mod events;
mod lifecycle;
mod mirror;
mod ops;
mod persist;
pub mod records;
mod secrets;
mod state;
mod tokens;
mod withdraw;

pub use changes::{LedgerChanges, LedgerCounters, LedgerParts};
pub use error::LedgerError;
pub use events::{LedgerEvent, LedgerEventKind};
pub use lifecycle::{deposit_increase, SettleTransaction};
pub use mirror::{KeptBack, LedgerMirror, MirrorError, MirrorParts, MirroredChannel};
pub use ops::{CoSignedWithdraw, LedgerOp};
pub use persist::LEDGER_FORMAT_VERSION;
pub use records::{
    ChannelPhase, ChannelRecord, LedgerConfig, ParticipantRecord, SubmittedBalance, UnlockEntry,
};
pub use state::LedgerState;

use changes::Touched;
use events::EventLog;

/// The whole on-chain state of one token network: token accounts, channels, the secret
/// registry, kept locks and the event log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ledger {
    #[serde(deserialize_with = "persist::version")]
    version: u32,
    config: LedgerConfig,
    /// Token accounts with a non-zero balance.
    #[serde(with = "persist::amount_map")]
    balances: BTreeMap<Address, U256>,
    #[serde(with = "u256_dec")]
    total_supply: U256,
    /// Tokens held by the token network contract.
    #[serde(with = "u256_dec")]
    contract_balance: U256,
    /// Identifier of the last channel opened (0 before the first).
    #[serde(with = "u256_dec")]
    last_channel_id: U256,
    #[serde(with = "persist::keyed_list")]
    channels: BTreeMap<U256, ChannelRecord>,
    /// participants_hash → id of the pair's channel that is not settled yet.
    #[serde(with = "persist::amount_map")]
    unsettled_pairs: BTreeMap<H256, U256>,
    /// secrethash → ledger time of registration.
    #[serde(with = "persist::pair_list")]
    secrets: BTreeMap<H256, u64>,
    /// unlock_identifier → locks kept at settlement.
    #[serde(with = "persist::keyed_list")]
    unlocks: BTreeMap<H256, UnlockEntry>,
    events: EventLog,
    /// Records changed since the last [`Ledger::take_changes`]; not part of the state.
    #[serde(skip)]
    touched: Touched,
}

/// Equal state and event log; which records are waiting to be taken as changes is ignored.
impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
            && self.config == other.config
            && self.balances == other.balances
            && self.total_supply == other.total_supply
            && self.contract_balance == other.contract_balance
            && self.last_channel_id == other.last_channel_id
            && self.channels == other.channels
            && self.unsettled_pairs == other.unsettled_pairs
            && self.secrets == other.secrets
            && self.unlocks == other.unlocks
            && self.events == other.events
    }
}

impl Eq for Ledger {}

impl Ledger {
    pub fn new(config: LedgerConfig) -> Self {
        Self {
            version: LEDGER_FORMAT_VERSION,
            config,
            balances: BTreeMap::new(),
            total_supply: U256::ZERO,
            contract_balance: U256::ZERO,
            last_channel_id: U256::ZERO,
            channels: BTreeMap::new(),
            unsettled_pairs: BTreeMap::new(),
            secrets: BTreeMap::new(),
            unlocks: BTreeMap::new(),
            events: EventLog::default(),
            touched: Touched::default(),
        }
    }

    /// Runs `f` on the ledger with its event log detached (e.g. to serialize the state
    /// without the ever-growing log, for drivers that store each event as its own record).
    /// The log is back in place when this returns.
    pub fn with_events_detached<R>(&mut self, f: impl FnOnce(&Ledger) -> R) -> R {
        let events = std::mem::take(&mut self.events);
        let result = f(self);
        self.events = events;
        result
    }

    /// Puts back an event log stored apart from a state saved with
    /// [`Ledger::with_events_detached`]. Refused unless the ledger has no events yet and the
    /// events are numbered 1, 2, 3… without gaps.
    pub fn restore_events(&mut self, events: Vec<LedgerEvent>) -> Result<(), LedgerError> {
        if self.events.last_seq() != 0 {
            return Err(LedgerError::EventLog(
                "the ledger already has events".into(),
            ));
        }
        self.events = EventLog::try_from(events).map_err(LedgerError::EventLog)?;
        Ok(())
    }

    /// Continues numbering after `last_seq` events stored apart (not loaded into memory).
    /// Refused unless the ledger has no events yet.
    pub fn resume_events_after(&mut self, last_seq: u64) -> Result<(), LedgerError> {
        if self.events.last_seq() != 0 {
            return Err(LedgerError::EventLog(
                "the ledger already has events".into(),
            ));
        }
        self.events = EventLog::after(last_seq);
        Ok(())
    }

    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    pub fn channel(&self, id: U256) -> Option<&ChannelRecord> {
        self.channels.get(&id)
    }

    /// The pair's channel that is not settled yet (Opened or Closed), if any.
    pub fn open_channel_between(&self, a: Address, b: Address) -> Option<&ChannelRecord> {
        self.unsettled_pairs
            .get(&participants_hash(a, b))
            .and_then(|id| self.channels.get(id))
    }

    /// The two participants of channel `id` (opener first).
    pub fn participants_of(&self, id: U256) -> Option<[Address; 2]> {
        self.channels
            .get(&id)
            .map(|c| [c.participants[0].address, c.participants[1].address])
    }

    /// Every channel `who` participates in, any phase, in identifier order.
    pub fn channels_of(&self, who: Address) -> Vec<&ChannelRecord> {
        self.channels
            .values()
            .filter(|c| c.index_of(who).is_some())
            .collect()
    }

    /// Ledger time at which the secret with this hash was registered.
    pub fn secret_registered_at(&self, secrethash: &H256) -> Option<u64> {
        self.secrets.get(secrethash).copied()
    }

    /// Every entry of locks kept at settlement and not unlocked yet.
    pub fn unlock_entries(&self) -> impl Iterator<Item = &UnlockEntry> {
        self.unlocks.values()
    }

    /// Locks of `sender` toward `receiver` kept at settlement and not unlocked yet.
    pub fn pending_unlock(
        &self,
        channel_id: U256,
        sender: Address,
        receiver: Address,
    ) -> Option<&UnlockEntry> {
        self.unlocks
            .get(&unlock_identifier(&channel_id, sender, receiver))
    }

    /// Events in memory with `seq > after_seq`, oldest first (all of them for 0). Events are
    /// kept until released with [`Self::release_events_through`]; released ones are not
    /// returned (for `after_seq` below [`Self::released_event_seq`] this starts after it).
    pub fn events_since(&self, after_seq: u64) -> &[LedgerEvent] {
        self.events.since(after_seq)
    }

    /// Drops the events with `seq <= seq` from memory, once the driver has stored them.
    pub fn release_events_through(&mut self, seq: u64) {
        self.events.release_through(seq);
    }

    /// Sequence number of the newest event no longer in memory (0 if none was released).
    pub fn released_event_seq(&self) -> u64 {
        self.events.released()
    }

    /// Sequence number of the newest event, 0 before the first.
    pub fn last_event_seq(&self) -> u64 {
        self.events.last_seq()
    }

    // --- helpers shared by the operation modules ---------------------------------------------

    fn emit(&mut self, now: u64, kinds: Vec<LedgerEventKind>) -> Vec<LedgerEvent> {
        self.events.append(now, kinds)
    }

    /// The channel, which must exist and be in `phase`.
    fn channel_in(&self, id: U256, phase: ChannelPhase) -> Result<&ChannelRecord, LedgerError> {
        let channel = self
            .channels
            .get(&id)
            .ok_or(LedgerError::UnknownChannel(id))?;
        if channel.phase != phase {
            return Err(LedgerError::WrongPhase {
                channel_id: id,
                expected: phase,
                actual: channel.phase,
            });
        }
        Ok(channel)
    }

    /// A proof must be for this ledger and for `channel_id`.
    fn check_binding(
        &self,
        domain: &Domain,
        proof_channel: U256,
        channel_id: U256,
    ) -> Result<(), LedgerError> {
        if *domain != self.config.domain {
            return Err(LedgerError::WrongDomain {
                expected: self.config.domain,
                got: *domain,
            });
        }
        if proof_channel != channel_id {
            return Err(LedgerError::WrongChannel {
                expected: channel_id,
                got: proof_channel,
            });
        }
        Ok(())
    }
}

/// `sig` over `hash` must recover to `expected`; `role` names the signature in the error.
fn check_signature(
    hash: &H256,
    sig: &Signature,
    expected: Address,
    role: &'static str,
) -> Result<(), LedgerError> {
    verify_signer(hash, sig, expected).map_err(LedgerError::signature(role))
}

fn index_in(channel: &ChannelRecord, who: Address) -> Result<usize, LedgerError> {
    channel.index_of(who).ok_or(LedgerError::NotParticipant {
        channel_id: channel.id,
        address: who,
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Keys and a funded two-party ledger for the unit tests of the operation modules.

    use super::*;
    use crate::crypto::{LocalSigner, Signer};

    pub(crate) fn key(n: u8) -> LocalSigner {
        crate::testing::test_signer(n)
    }

    pub(crate) fn domain() -> Domain {
        Domain {
            chain_id: U256::from(5u8),
            token_network_address: Address([0xbb; 20]),
        }
    }

    /// Timeout 10; `a` and `b` minted 100 each and share channel 1 with deposits 40 and 20.
    pub(crate) fn funded() -> (Ledger, LocalSigner, LocalSigner) {
        let (a, b) = (key(1), key(2));
        let mut l = Ledger::new(LedgerConfig {
            domain: domain(),
            settlement_timeout: 10,
        });
        let one = U256::from(1u8);
        for k in [&a, &b] {
            l.mint(k.address(), U256::from(100u8), 0).unwrap();
        }
        l.open_channel(a.address(), b.address(), 0).unwrap();
        for (k, deposit) in [(&a, 40u8), (&b, 20)] {
            let (who, total) = (k.address(), U256::from(deposit));
            l.set_total_deposit(who, one, who, total, 0).unwrap();
        }
        (l, a, b)
    }
}

#[cfg(test)]
mod detached_events_tests {
    use super::*;

    #[test]
    fn state_without_events_plus_events_restores_the_ledger() {
        let config = LedgerConfig {
            domain: Domain {
                chain_id: U256::from(1u8),
                token_network_address: Address([7; 20]),
            },
            settlement_timeout: 10,
        };
        let mut ledger = Ledger::new(config);
        ledger.mint(Address([1; 20]), U256::from(5u8), 1).unwrap();
        ledger.mint(Address([2; 20]), U256::from(6u8), 2).unwrap();
        let state = ledger.with_events_detached(|l| l.clone());
        assert_eq!(state.last_event_seq(), 0);
        assert_eq!(ledger.last_event_seq(), 2, "the log is back");
        let mut restored = state;
        restored
            .restore_events(ledger.events_since(0).to_vec())
            .unwrap();
        assert_eq!(restored, ledger);
        assert!(matches!(
            restored.restore_events(vec![]),
            Err(LedgerError::EventLog(_))
        ));
        let mut gap = ledger.with_events_detached(|l| l.clone());
        assert!(gap.restore_events(ledger.events_since(1).to_vec()).is_err());
    }
}
