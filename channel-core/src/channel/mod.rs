//! One payment channel as one participant sees it: a plain state machine with no I/O.
//!
//! # Using a [`Channel`]
//! Methods come in four groups, as in quinn-proto's `Connection`:
//! - getters on `&self` (`our_balance`, `partner_distributable`, `our_latest_proof`, …);
//! - commands of the local application (`send_payment`, `send_locked_transfer`, `send_unlock`,
//!   `send_lock_expired`, `request_withdraw`, `close`), which sign with the given
//!   [`Signer`](crate::crypto::Signer) and return [`ChannelEvent`]s, among them
//!   [`ChannelEvent::Send`] with the message to deliver;
//! - `handle_*` for inputs: the partner's messages, what the ledger reports (one idempotent
//!   [`Channel::handle_ledger_event`]) and the passing of time ([`Channel::handle_timeout`],
//!   armed from [`Channel::poll_timeout`]);
//! - `poll_*` for what to do next: [`Channel::poll_timeout`], and
//!   [`Channel::poll_ledger_action`], the level-triggered monitor that says which update or
//!   settle to submit given the ledger's current record of the channel;
//! - transactions for the ledger (`close`, `update_transaction`, the cooperative close of
//!   [`Channel::propose_cooperative_close`] / [`Channel::accept_cooperative_close`]).
//!
//! Every call either succeeds and returns the events it caused, or returns a
//! [`ChannelError`] and leaves the channel exactly as it was.
//!
//! **Persist before you send or acknowledge.** A command that returns `Send` has already
//! recorded the signed proof in the channel; the driver must make the channel durable before
//! the message leaves, and after a restart must resend the stored proof rather than sign a new
//! one, so no two different proofs ever carry the same nonce. Likewise a received proof may be
//! acknowledged only once the updated channel is durable.

mod close;
pub use close::{CloseTransaction, UpdateTransaction};
mod cooperative;
pub use cooperative::{
    CooperativeCloseAcceptance, CooperativeCloseProposal, CooperativeCloseRefusal,
};
mod end_state;
mod error;
mod in_flight;
pub use in_flight::InFlight;
mod ledger_input;
mod lock_archive;
pub use lock_archive::{keeps_tokens_back, locks_behind, LockArchiveChange, LockSetChange};
mod monitor;
pub use monitor::{pending_unlocks, LedgerAction, LedgerView, PendingUnlock};
mod parts;
pub use parts::{ChannelEnd, ChannelParts, ChannelPartsError};
mod restore;
mod secrets;
pub use secrets::KnownSecret;
mod timers;
mod transfer;
mod withdraw;

use serde::{Deserialize, Serialize};

pub use end_state::{EndState, PendingWithdraw};
pub use error::ChannelError;

use crate::crypto::{PeerKey, Signature};
use crate::locks::{HashTimeLock, Secret};
use crate::primitives::{u256_dec, Address, H256, U256};
use crate::proofs::{BalanceData, Domain, SignedBalanceProof, WithdrawProof};

/// Where the channel is in its life, as this side knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelPhase {
    Open,
    /// Payments stopped for a cooperative close whose withdraws the ledger accepts until
    /// `until`; the ledger channel is still open. [`Channel::resume_payments`] reopens it if
    /// the cooperative settle fails, and [`Channel::handle_timeout`] does at `until`.
    CooperativeSettling {
        until: u64,
    },
    /// We submitted (or are about to submit) a close; no more payments.
    Closing,
    /// The ledger reports the channel closed by `closer` at ledger time `at`.
    Closed {
        closer: Address,
        at: u64,
    },
    Settled,
}

impl ChannelPhase {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelPhase::Open => "open",
            ChannelPhase::CooperativeSettling { .. } => "settling cooperatively",
            ChannelPhase::Closing => "closing",
            ChannelPhase::Closed { .. } => "closed",
            ChannelPhase::Settled => "settled",
        }
    }
}

/// A message between the two participants of a channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelMessage {
    /// A direct payment of `amount`: the proof's transferred amount grew by it.
    Payment {
        proof: SignedBalanceProof,
        #[serde(with = "u256_dec")]
        amount: U256,
    },
    /// A new hash-time lock toward the receiver.
    LockedTransfer {
        proof: SignedBalanceProof,
        lock: HashTimeLock,
    },
    /// The sender releases a lock whose secret it learned: locked moves into transferred.
    Unlock {
        proof: SignedBalanceProof,
        secret: Secret,
    },
    /// The sender drops a lock that expired unclaimed.
    LockExpired {
        proof: SignedBalanceProof,
        secrethash: H256,
    },
    WithdrawRequest {
        proof: WithdrawProof,
        signature: Signature,
    },
    WithdrawConfirmation {
        proof: WithdrawProof,
        signature: Signature,
    },
}

/// What a transition caused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChannelEvent {
    /// Deliver this to the partner, after the channel is durable.
    Send(ChannelMessage),
    PaymentSent {
        amount: U256,
        nonce: u64,
    },
    PaymentReceived {
        amount: U256,
        nonce: u64,
        transferred_total: U256,
    },
    LockSent(HashTimeLock),
    /// Our refused locked transfer was taken back ([`Channel::retract_refused_lock`]).
    LockRetracted(HashTimeLock),
    LockReceived(HashTimeLock),
    /// A lock turned into a transfer; `to_us` tells the direction.
    LockUnlocked {
        secrethash: H256,
        amount: U256,
        to_us: bool,
    },
    LockDropped {
        secrethash: H256,
        amount: U256,
        ours: bool,
    },
    /// Both signatures are here: the participant can submit the withdraw to the ledger.
    WithdrawReady {
        proof: WithdrawProof,
        participant_signature: Signature,
        partner_signature: Signature,
    },
    /// A pending withdraw passed its `withdrawable_until` unused; its amount is spendable again.
    WithdrawExpired {
        participant: Address,
        total_withdraw: U256,
    },
    /// We learned the secret of one of the channel's pending locks.
    SecretLearned {
        secrethash: H256,
    },
    /// The ledger's secret registry recorded the secret of one of our pending locks.
    SecretRegisteredOnLedger {
        secrethash: H256,
        at: u64,
    },
    /// A cooperative close did not reach the ledger in time; payments are possible again.
    PaymentsResumed,
    /// One of our locks expired unclaimed: send a lock-expired message to take it back.
    LockExpirable {
        secrethash: H256,
        amount: U256,
    },
    DepositChanged {
        participant: Address,
        total_deposit: U256,
    },
    WithdrawChanged {
        participant: Address,
        total_withdraw: U256,
    },
    Closed {
        closer: Address,
    },
    Settled,
}

/// The channel between us and one partner.
///
/// Not serde: drivers store it through their own record types, by way of
/// [`Channel::to_parts`] and [`Channel::from_parts`] (see [`ChannelParts`]), so the fields
/// here can change without changing anything on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    domain: Domain,
    id: U256,
    our: EndState,
    partner: EndState,
    phase: ChannelPhase,
    /// The partner's address and, once learned from a signature, its verifying key.
    partner_key: PeerKey,
    /// Secrets of pending locks that this side knows, by secrethash.
    secrets: std::collections::BTreeMap<H256, KnownSecret>,
}

impl Channel {
    /// A freshly opened channel on the ledger, before any deposit.
    pub fn new(domain: Domain, id: U256, us: Address, partner: Address) -> Self {
        Self {
            domain,
            id,
            our: EndState::new(us),
            partner: EndState::new(partner),
            phase: ChannelPhase::Open,
            partner_key: PeerKey::new(partner),
            secrets: Default::default(),
        }
    }

    // ----- getters -----

    pub fn id(&self) -> U256 {
        self.id
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    pub fn phase(&self) -> ChannelPhase {
        self.phase
    }

    pub fn our(&self) -> &EndState {
        &self.our
    }

    pub fn partner(&self) -> &EndState {
        &self.partner
    }

    pub fn our_address(&self) -> Address {
        self.our.address
    }

    pub fn partner_address(&self) -> Address {
        self.partner.address
    }

    /// What we own in the channel, our pending locks included.
    pub fn our_balance(&self) -> Result<U256, ChannelError> {
        self.our.balance(&self.partner)
    }

    pub fn partner_balance(&self) -> Result<U256, ChannelError> {
        self.partner.balance(&self.our)
    }

    /// What we can still send.
    pub fn our_distributable(&self) -> Result<U256, ChannelError> {
        self.our.distributable(&self.partner)
    }

    /// What the partner can still send us.
    pub fn partner_distributable(&self) -> Result<U256, ChannelError> {
        self.partner.distributable(&self.our)
    }

    /// The latest proof we signed (what the partner would use to close).
    pub fn our_latest_proof(&self) -> Option<&SignedBalanceProof> {
        self.our.latest.as_ref()
    }

    /// The latest proof the partner signed (what we use to close or update).
    pub fn partner_latest_proof(&self) -> Option<&SignedBalanceProof> {
        self.partner.latest.as_ref()
    }

    /// Total deposits of both sides minus what the ledger has paid out by withdraws.
    pub fn total_available(&self) -> Result<U256, ChannelError> {
        self.our
            .total_deposit
            .checked_add(self.partner.total_deposit)
            .and_then(|v| v.checked_sub(self.our.total_withdraw))
            .and_then(|v| v.checked_sub(self.partner.total_withdraw))
            .ok_or(ChannelError::Overflow("total available"))
    }

    // ----- shared checks -----

    fn ensure_open(&self) -> Result<(), ChannelError> {
        match self.phase {
            ChannelPhase::Open => Ok(()),
            other => Err(ChannelError::NotOpen(other.name())),
        }
    }

    fn check_domain(&self, domain: &Domain, channel_id: &U256) -> Result<(), ChannelError> {
        if domain.chain_id != self.domain.chain_id {
            return Err(ChannelError::WrongChain {
                expected: self.domain.chain_id,
                got: domain.chain_id,
            });
        }
        if domain.token_network_address != self.domain.token_network_address {
            return Err(ChannelError::WrongTokenNetwork {
                expected: self.domain.token_network_address,
                got: domain.token_network_address,
            });
        }
        if *channel_id != self.id {
            return Err(ChannelError::WrongChannel {
                expected: self.id,
                got: *channel_id,
            });
        }
        Ok(())
    }

    /// Checks a proof the partner signed against the balance the transition expects, cheap
    /// checks first and the signature last. Mutates nothing but the cached partner key.
    fn check_partner_proof(
        &mut self,
        signed: &SignedBalanceProof,
        expected: &BalanceData,
    ) -> Result<(), ChannelError> {
        let proof = &signed.proof;
        self.check_domain(&proof.domain, &proof.channel_identifier)?;
        let latest = self.partner.nonce();
        if proof.nonce <= latest {
            return Err(ChannelError::StaleNonce {
                latest,
                got: proof.nonce,
            });
        }
        let next = self.partner.next_nonce()?;
        if proof.nonce != next {
            return Err(ChannelError::NonceGap {
                expected: next,
                got: proof.nonce,
            });
        }
        let previous = self.partner.transferred();
        if proof.balance.transferred_amount < previous {
            return Err(ChannelError::TransferredAmountDecreased {
                previous,
                got: proof.balance.transferred_amount,
            });
        }
        check_field(
            "transferred_amount",
            &expected.transferred_amount,
            &proof.balance.transferred_amount,
        )?;
        check_field(
            "locked_amount",
            &expected.locked_amount,
            &proof.balance.locked_amount,
        )?;
        check_field("locksroot", &expected.locksroot, &proof.balance.locksroot)?;
        self.partner_key
            .verify(&proof.signing_hash(), &signed.signature)?;
        Ok(())
    }
}

fn check_field<T: PartialEq + std::fmt::Display>(
    field: &'static str,
    expected: &T,
    got: &T,
) -> Result<(), ChannelError> {
    if expected == got {
        Ok(())
    } else {
        Err(ChannelError::BalanceMismatch {
            field,
            expected: expected.to_string(),
            got: got.to_string(),
        })
    }
}

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
