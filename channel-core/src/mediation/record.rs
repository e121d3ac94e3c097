//! [`MediatedTransfer`]: the hub's durable record of one transfer it mediates, from the lock
//! it received from the payer (incoming) to the lock it sent to the payee (outgoing), and the
//! transitions that move each leg to its end. The record is what the hub must keep next to its
//! two [`Channel`]s; nothing else is needed to resume after a crash.
//!
//! Every transition that touches a channel checks the record first, then runs the channel's
//! own transition, and only then updates the record, so a refusal leaves both unchanged.
//! **Persist the channel and the record together before sending what a transition returns.**

use serde::{Deserialize, Deserializer, Serialize};

use crate::channel::{Channel, ChannelEvent};
use crate::crypto::Signer;
use crate::locks::{HashTimeLock, Secret};
use crate::primitives::{u256_dec, Address, H256, U256};
use crate::proofs::SignedBalanceProof;

mod parts;
pub use parts::{MediatedTransferParts, MediatedTransferPartsError};

use super::fees::MediationConfig;
use super::forward::ForwardPlan;
use super::MediationError;

/// Format version of [`MediatedTransfer`] records; readers refuse any other.
pub const MEDIATED_TRANSFER_VERSION: u32 = 1;

fn known_version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if v == MEDIATED_TRANSFER_VERSION {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "mediated transfer record version {v} is not supported (expected {MEDIATED_TRANSFER_VERSION})"
        )))
    }
}

/// Where one lock of the transfer stands in its channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Leg {
    /// Pending in the channel.
    Locked,
    /// Unlocked off-chain: its amount is transferred.
    Unlocked,
    /// Dropped with a lock-expired message: its amount is the sender's again.
    Expired,
    /// Still pending when its channel settled, and the ledger counts it for the receiver:
    /// its secret was registered strictly before its expiration. Final.
    SettledToReceiver,
    /// Still pending when its channel settled, and the ledger will not pay the receiver: its
    /// secret was not registered in time (or, for a lock still unexpired at settlement,
    /// not yet, and anyone may unlock it back to the sender at any moment). Final.
    SettledToSender,
}

impl Leg {
    /// The receiver has (or will get from the ledger) the lock's amount.
    pub fn paid(self) -> bool {
        matches!(self, Leg::Unlocked | Leg::SettledToReceiver)
    }

    /// The sender has (or will get from the ledger) the lock's amount back.
    pub fn taken_back(self) -> bool {
        matches!(self, Leg::Expired | Leg::SettledToSender)
    }
}

/// The transfer as a whole, derived from its two legs and what the hub knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Both locks pending, the secret unknown to the hub.
    Forwarded,
    /// The payee revealed the secret; the hub must unlock toward it.
    SecretKnown,
    /// The hub paid the payee and waits for the payer's unlock.
    OutgoingUnlocked,
    /// The payer paid the hub first; the hub must still unlock toward the payee.
    IncomingUnlocked,
    /// The payer has not unlocked, but the secret is on the ledger in time: the hub claims
    /// the incoming lock on the ledger if the payer never unlocks.
    SecretRegistered,
    /// Both unlocked: payee paid, hub paid plus its fee.
    Completed,
    /// One lock expired and was taken back, the other still has to be.
    Refunding,
    /// Both locks expired and were taken back: the payment failed, nobody lost anything.
    Refunded,
    /// The hub paid the payee but the payer's lock expired unclaimed. The rules exist so this
    /// never happens to a hub that follows [`MediatedTransfer::poll`].
    HubLost,
    /// The payer unlocked although the payee was refunded (the payer's own choice).
    PayeeRefundedPayerPaid,
}

/// One transfer the hub mediates between the payer's channel and the payee's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediatedTransfer {
    #[serde(deserialize_with = "known_version")]
    version: u32,
    #[serde(with = "u256_dec")]
    incoming_channel: U256,
    payer: Address,
    incoming_lock: HashTimeLock,
    #[serde(with = "u256_dec")]
    outgoing_channel: U256,
    payee: Address,
    outgoing_lock: HashTimeLock,
    /// The fee the policy asked for; the hub earns `incoming - outgoing` (at least this).
    #[serde(with = "u256_dec")]
    fee: U256,
    reveal_timeout: u64,
    secret: Option<Secret>,
    /// Ledger time at which the secret was registered in the secret registry, if it was.
    secret_registered_at: Option<u64>,
    incoming: Leg,
    outgoing: Leg,
}

impl MediatedTransfer {
    /// The record of a forward just carried out (see [`super::forward`]).
    pub fn new(
        incoming: &Channel,
        incoming_lock: HashTimeLock,
        outgoing: &Channel,
        plan: ForwardPlan,
        config: &MediationConfig,
    ) -> Self {
        Self {
            version: MEDIATED_TRANSFER_VERSION,
            incoming_channel: incoming.id(),
            payer: incoming.partner_address(),
            incoming_lock,
            outgoing_channel: outgoing.id(),
            payee: outgoing.partner_address(),
            outgoing_lock: plan.outgoing_lock,
            fee: plan.fee,
            reveal_timeout: config.reveal_timeout,
            secret: None,
            secret_registered_at: None,
            incoming: Leg::Locked,
            outgoing: Leg::Locked,
        }
    }

    // ----- getters -----

    pub fn secrethash(&self) -> H256 {
        self.incoming_lock.secrethash
    }

    pub fn incoming_channel(&self) -> U256 {
        self.incoming_channel
    }

    pub fn outgoing_channel(&self) -> U256 {
        self.outgoing_channel
    }

    pub fn payer(&self) -> Address {
        self.payer
    }

    pub fn payee(&self) -> Address {
        self.payee
    }

    pub fn incoming_lock(&self) -> &HashTimeLock {
        &self.incoming_lock
    }

    pub fn outgoing_lock(&self) -> &HashTimeLock {
        &self.outgoing_lock
    }

    pub fn fee(&self) -> U256 {
        self.fee
    }

    pub fn secret(&self) -> Option<Secret> {
        self.secret
    }

    /// The reveal timeout the hub forwarded with: how long before the incoming lock's
    /// expiration it starts registering the secret on the ledger.
    pub fn reveal_timeout(&self) -> u64 {
        self.reveal_timeout
    }

    pub fn secret_registered_at(&self) -> Option<u64> {
        self.secret_registered_at
    }

    pub fn incoming_leg(&self) -> Leg {
        self.incoming
    }

    pub fn outgoing_leg(&self) -> Leg {
        self.outgoing
    }

    /// The secret was registered on the ledger strictly before the incoming lock's expiration,
    /// so the ledger pays the incoming lock to the hub at unlock.
    pub fn incoming_claimable_on_ledger(&self) -> bool {
        self.secret_registered_at
            .is_some_and(|at| at < self.incoming_lock.expiration)
    }

    pub fn stage(&self) -> Stage {
        // A leg decided at settlement counts as unlocked or expired off-chain would.
        let plain = |leg: Leg| match leg {
            Leg::SettledToReceiver => Leg::Unlocked,
            Leg::SettledToSender => Leg::Expired,
            other => other,
        };
        match (plain(self.incoming), plain(self.outgoing)) {
            (Leg::Locked, Leg::Locked) if self.secret.is_none() => Stage::Forwarded,
            (Leg::Locked, Leg::Locked) => Stage::SecretKnown,
            (Leg::Locked, Leg::Unlocked) if self.incoming_claimable_on_ledger() => {
                Stage::SecretRegistered
            }
            (Leg::Locked, Leg::Unlocked) => Stage::OutgoingUnlocked,
            (Leg::Unlocked, Leg::Locked) => Stage::IncomingUnlocked,
            (Leg::Unlocked, Leg::Unlocked) => Stage::Completed,
            (Leg::Locked, Leg::Expired) | (Leg::Expired, Leg::Locked) => Stage::Refunding,
            (Leg::Expired, Leg::Expired) => Stage::Refunded,
            (Leg::Expired, Leg::Unlocked) => Stage::HubLost,
            (Leg::Unlocked, Leg::Expired) => Stage::PayeeRefundedPayerPaid,
            // `plain` leaves no settled leg.
            (Leg::SettledToReceiver | Leg::SettledToSender, _)
            | (_, Leg::SettledToReceiver | Leg::SettledToSender) => Stage::Refunding,
        }
    }

    /// Nothing is left to do off-chain: neither lock is pending. (A registered incoming lock
    /// the payer never unlocks stays pending until the hub claims it on the ledger.)
    pub fn is_finished(&self) -> bool {
        self.incoming != Leg::Locked && self.outgoing != Leg::Locked
    }

    // ----- checks shared by the transitions -----

    fn check_channel(&self, expected: U256, channel: &Channel) -> Result<(), MediationError> {
        if channel.id() == expected {
            Ok(())
        } else {
            Err(MediationError::WrongChannel {
                expected,
                got: channel.id(),
            })
        }
    }

    fn check_secret(&self, secret: &Secret) -> Result<(), MediationError> {
        let got = secret.hash();
        if got == self.secrethash() {
            Ok(())
        } else {
            Err(MediationError::WrongSecret {
                expected: self.secrethash(),
                got,
            })
        }
    }

    // ----- inputs -----

    /// The payee revealed the secret (off-chain) at ledger time `now`; `incoming` is the
    /// payer's channel as the hub holds it now. Accepted only while the outgoing lock is
    /// pending and unexpired (the payee could still claim it on the ledger) and the hub can
    /// still claim the incoming lock ([`super::check_incoming_claimable`]); after that the
    /// payment has failed and the outgoing lock is left to expire. Returns whether the secret
    /// is new to the hub; then [`MediatedTransfer::poll`] asks to unlock toward the payee.
    pub fn handle_secret_reveal(
        &mut self,
        secret: Secret,
        incoming: &Channel,
        now: u64,
    ) -> Result<bool, MediationError> {
        self.check_secret(&secret)?;
        self.check_channel(self.incoming_channel, incoming)?;
        if self.secret.is_some() {
            return Ok(false);
        }
        if self.outgoing.taken_back() || self.outgoing_lock.is_expired(now) {
            return Err(MediationError::OutgoingExpired);
        }
        self.check_incoming(incoming, now)?;
        self.secret = Some(secret);
        Ok(true)
    }

    /// The hub can still get the incoming lock: the payer paid it (off-chain or at
    /// settlement), or it is pending and [`super::check_incoming_claimable`] holds.
    fn check_incoming(&self, incoming: &Channel, now: u64) -> Result<(), MediationError> {
        match self.incoming {
            Leg::Unlocked | Leg::SettledToReceiver => Ok(()),
            Leg::Expired | Leg::SettledToSender => Err(MediationError::IncomingExpired),
            Leg::Locked => super::check_incoming_claimable(incoming, &self.incoming_lock, now),
        }
    }

    /// The ledger reports `secret` registered at ledger time `at` (by the hub, or by the payee
    /// claiming on its own). The first registration time is kept; idempotent.
    ///
    /// The secret becomes the hub's to act on (unlock toward the payee) only if the
    /// registration came before the incoming lock's expiration, so that the hub can claim
    /// what it pays out; a later registration is recorded but changes nothing else.
    pub fn handle_secret_registered(
        &mut self,
        secret: Secret,
        at: u64,
    ) -> Result<(), MediationError> {
        self.check_secret(&secret)?;
        if self.secret_registered_at.is_none() {
            self.secret_registered_at = Some(at);
        }
        if self.incoming_claimable_on_ledger() {
            self.secret = Some(secret);
        }
        Ok(())
    }

    /// Pays the payee: unlocks the outgoing lock in `outgoing` with the secret, at ledger time
    /// `now`, with the payer's channel `incoming` as the hub holds it. Only against the
    /// secret, and only while the incoming lock can still be claimed: the rule that a
    /// mediator never pays out what it cannot claim.
    pub fn unlock_outgoing(
        &mut self,
        outgoing: &mut Channel,
        incoming: &Channel,
        now: u64,
        additional_hash: H256,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, MediationError> {
        self.check_channel(self.outgoing_channel, outgoing)?;
        self.check_channel(self.incoming_channel, incoming)?;
        if self.outgoing != Leg::Locked {
            return Err(MediationError::OutgoingNotPending(self.stage()));
        }
        let secret = self.secret.ok_or(MediationError::SecretUnknown)?;
        self.check_incoming(incoming, now)?;
        let events = outgoing.send_unlock(secret, additional_hash, signer)?;
        self.outgoing = Leg::Unlocked;
        Ok(events)
    }

    /// The payer's unlock of the incoming lock arrived: the hub is paid (and learns the
    /// secret, if it did not know it).
    pub fn handle_incoming_unlock(
        &mut self,
        incoming: &mut Channel,
        proof: &SignedBalanceProof,
        secret: &Secret,
    ) -> Result<Vec<ChannelEvent>, MediationError> {
        self.check_channel(self.incoming_channel, incoming)?;
        self.check_secret(secret)?;
        if self.incoming != Leg::Locked {
            return Err(MediationError::IncomingNotPending(self.stage()));
        }
        let events = incoming.handle_unlock(proof, secret)?;
        self.incoming = Leg::Unlocked;
        self.secret = Some(*secret);
        Ok(events)
    }

    /// Takes back the outgoing lock after it expired at `now` without the hub learning the
    /// secret (payee offline or refusing): signs the lock-expired message toward the payee.
    pub fn expire_outgoing(
        &mut self,
        outgoing: &mut Channel,
        now: u64,
        additional_hash: H256,
        signer: &dyn Signer,
    ) -> Result<Vec<ChannelEvent>, MediationError> {
        self.check_channel(self.outgoing_channel, outgoing)?;
        if self.outgoing != Leg::Locked {
            return Err(MediationError::OutgoingNotPending(self.stage()));
        }
        if !self.outgoing_lock.is_expired(now) {
            return Err(MediationError::NotExpired {
                expiration: self.outgoing_lock.expiration,
                now,
            });
        }
        if self.secret.is_some() && !self.incoming.taken_back() {
            return Err(MediationError::SecretKnown);
        }
        let events = outgoing.send_lock_expired(self.secrethash(), now, additional_hash, signer)?;
        self.outgoing = Leg::Expired;
        Ok(events)
    }

    /// The payer's lock-expired message for the incoming lock arrived at `now`. Refused while
    /// the secret is registered on the ledger in time: then the lock is the hub's to claim.
    pub fn handle_incoming_expired(
        &mut self,
        incoming: &mut Channel,
        proof: &SignedBalanceProof,
        now: u64,
    ) -> Result<Vec<ChannelEvent>, MediationError> {
        self.check_channel(self.incoming_channel, incoming)?;
        if self.incoming != Leg::Locked {
            return Err(MediationError::IncomingNotPending(self.stage()));
        }
        if let Some(registered_at) = self
            .secret_registered_at
            .filter(|_| self.incoming_claimable_on_ledger())
        {
            return Err(MediationError::ClaimableOnLedger {
                registered_at,
                expiration: self.incoming_lock.expiration,
            });
        }
        let events = incoming.handle_lock_expired(proof, &self.secrethash(), now)?;
        self.incoming = Leg::Expired;
        Ok(events)
    }

    /// Brings the legs up to a settlement of their channels, at ledger time `now`: a lock
    /// still pending in a settled channel is decided by the ledger. Either lock counts for
    /// its receiver if it was claimed on the ledger (secret registered before its
    /// expiration), for its sender once it expired unclaimed; until then it stays pending. Pass the channels as the hub holds them (either may be any state).
    /// Returns whether the record changed; a decided record [`is_finished`](Self::is_finished)
    /// once both legs are.
    pub fn handle_settlement(&mut self, incoming: &Channel, outgoing: &Channel, now: u64) -> bool {
        let mut changed = false;
        if self.incoming == Leg::Locked
            && incoming.id() == self.incoming_channel
            && incoming.phase() == crate::channel::ChannelPhase::Settled
        {
            let claimed = incoming.claimed_on_ledger(&self.incoming_lock)
                || self.incoming_claimable_on_ledger();
            // Decided once the registry's answer is final: claimed, or expired unclaimed. A
            // lock still alive at settlement (only one taken beyond the settlement window)
            // stays pending here; `check_incoming_claimable` already refuses to pay for it.
            if claimed {
                self.incoming = Leg::SettledToReceiver;
                changed = true;
            } else if self.incoming_lock.is_expired(now) {
                self.incoming = Leg::SettledToSender;
                changed = true;
            }
        }
        if self.outgoing == Leg::Locked
            && outgoing.id() == self.outgoing_channel
            && outgoing.phase() == crate::channel::ChannelPhase::Settled
        {
            if outgoing.claimed_on_ledger(&self.outgoing_lock) {
                self.outgoing = Leg::SettledToReceiver;
                changed = true;
            } else if self.outgoing_lock.is_expired(now) {
                self.outgoing = Leg::SettledToSender;
                changed = true;
            }
        }
        changed
    }
}
