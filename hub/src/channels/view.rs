//! The wire view of the hub's channels: `Channel` and hub payments as `voltlane.v1` messages.

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::crypto::Signature;
use channel_core::WithdrawProof;
use voltlane_proto::convert::{address_bytes, signature_bytes, u256_bytes};
use voltlane_proto::v1;

use voltlane_proto::convert::mediation::{HubMessage, HubMessageKind};

use super::book::{HubPayment, SentKind};
use crate::error::HubError;

/// `ChannelState` of a hub channel (the device is the partner). The capacities are what each
/// side can still send the other: its balance less its pending locks and requested withdraw.
pub fn channel_state(ch: &Channel) -> Result<v1::ChannelState, HubError> {
    let phase = match ch.phase() {
        ChannelPhase::Open => v1::ChannelPhase::Opened,
        ChannelPhase::CooperativeSettling { .. }
        | ChannelPhase::Closing
        | ChannelPhase::Closed { .. } => v1::ChannelPhase::Closed,
        ChannelPhase::Settled => v1::ChannelPhase::Settled,
    };
    Ok(v1::ChannelState {
        channel_id: u256_bytes(&ch.id()),
        domain: Some(ch.domain().into()),
        device: address_bytes(&ch.partner_address()),
        hub: address_bytes(&ch.our_address()),
        phase: phase as i32,
        device_deposit: u256_bytes(&ch.partner().total_deposit),
        hub_deposit: u256_bytes(&ch.our().total_deposit),
        device_withdraw: u256_bytes(&ch.partner().total_withdraw),
        hub_withdraw: u256_bytes(&ch.our().total_withdraw),
        device_proof: ch.partner_latest_proof().map(Into::into),
        hub_proof: ch.our_latest_proof().map(Into::into),
        device_balance: u256_bytes(&ch.partner_balance()?),
        hub_balance: u256_bytes(&ch.our_balance()?),
        hub_capacity: u256_bytes(&ch.our_distributable()?),
        device_capacity: u256_bytes(&ch.partner_distributable()?),
    })
}

/// A withdraw proof with both signatures.
pub fn cosigned(
    proof: &WithdrawProof,
    participant: &Signature,
    partner: &Signature,
) -> v1::CoSignedWithdraw {
    v1::CoSignedWithdraw {
        proof: Some(proof.into()),
        participant_signature: signature_bytes(participant),
        partner_signature: signature_bytes(partner),
    }
}

pub fn hub_payment(p: &HubPayment) -> v1::HubPayment {
    let kind = match &p.kind {
        SentKind::Payment => HubMessageKind::Payment,
        SentKind::LockedTransfer {
            lock,
            payer,
            payment_request,
        } => HubMessageKind::LockedTransfer {
            lock: *lock,
            payer: *payer,
            payment_request: *payment_request,
        },
        SentKind::Unlock { secret } => HubMessageKind::Unlock { secret: *secret },
        SentKind::LockExpired { secrethash } => HubMessageKind::LockExpired {
            secrethash: *secrethash,
        },
    };
    (&HubMessage {
        channel_id: p.channel_id,
        balance_proof: p.proof,
        amount: p.amount,
        kind,
    })
        .into()
}
