//! Money in and out of the channel: top-up deposit, withdraw, cooperative close, unilateral
//! close and settle. Each signs with the channel state machine, persists durably before
//! anything leaves the device, then talks to the ledger directly through [`crate::ledger`]
//! (the hub's channel logic is needed only to co-sign a withdraw or a cooperative close).

use std::time::Duration;

use channel_core::channel::{ChannelEvent, ChannelMessage};
use channel_core::ledger::{ChannelPhase as LedgerPhase, ChannelRecord, LedgerEvent, LedgerOp};
use channel_core::liquidity::{deposit_target, DepositAmount};
use channel_core::primitives::U256;
use channel_core::Signer;
use voltlane_proto::convert::{required, u256_bytes, CoSignedWithdraw};
use voltlane_proto::v1;

use crate::error::ClientError;
use crate::ledger;
use crate::shared::Shared;
use crate::types::Settlement;

/// How long (ledger seconds) a withdraw proof we sign stays valid.
pub const WITHDRAW_VALIDITY: u64 = 120;

/// The `withdrawable_until` of a withdraw signed at ledger time `now` (which the hub
/// supplies: a time too close to `u64::MAX` is refused rather than wrapped).
fn withdraw_deadline(now: u64) -> Result<u64, ClientError> {
    now.checked_add(WITHDRAW_VALIDITY)
        .ok_or(ClientError::LedgerTimeOverflow { now })
}

/// Applies the events a ledger operation returned, durably. Returns the
/// settlement if one of them settled our channel.
pub(crate) async fn apply_events(
    shared: &Shared,
    events: Vec<LedgerEvent>,
) -> Result<Option<Settlement>, ClientError> {
    let mut settled = None;
    for ev in events {
        let effect = shared.apply_ledger_event(&ev).await?;
        settled = settled.or(effect.settled);
    }
    Ok(settled)
}

/// Raises the device's deposit in its open channel by `additional` tokens from its ledger
/// account. The device's view of the channel is first brought up to the ledger's record (a
/// deposit whose answer was lost counts), then the new total is checked by the core's deposit
/// rule and submitted; the events the ledger returns are applied durably before this
/// returns. Returns the new cumulative deposit.
pub(crate) async fn deposit(shared: &Shared, additional: U256) -> Result<U256, ClientError> {
    let channel_id = shared.open_channel_id().ok_or_else(|| {
        ClientError::InvalidState("no open channel to deposit into: call open_channel".into())
    })?;
    let rec = caught_up_with_ledger(shared, channel_id).await?;
    let me = shared.rpc.signer().address();
    let tokens = ledger::token_balance(shared, me).await?;
    let planned = deposit_target(&rec, me, DepositAmount::Additional(additional), tokens)
        .map_err(|e| ClientError::InvalidState(format!("deposit refused: {e}")))?;
    let op = LedgerOp::SetTotalDeposit {
        channel_id,
        participant: me,
        total_deposit: planned.total_deposit,
    };
    apply_events(shared, ledger::execute(shared, &op).await?).await?;
    Ok(planned.total_deposit)
}

/// Brings the device's view of `channel_id`'s deposits and withdraws up to the ledger's record
/// now, durably, and returns the record. Anything that computes balances from the channel
/// (a deposit target, a withdraw, a cooperative close's whole-balance split) does this first:
/// the background watcher may not have applied a deposit made while the device was offline
/// (an operator deposit, or our own whose answer was lost), and a split computed from older
/// deposits would be refused by the hub, or leave tokens out.
async fn caught_up_with_ledger(
    shared: &Shared,
    channel_id: U256,
) -> Result<ChannelRecord, ClientError> {
    let rec = ledger::channel(shared, channel_id).await?;
    shared
        .update_channel(|ch| crate::sync::apply_record(ch, &rec))
        .await?;
    Ok(rec)
}

/// Withdraws `amount` from the channel to the device's ledger account, keeping it open.
/// Returns the new cumulative total withdraw.
pub(crate) async fn withdraw(shared: &Shared, amount: U256) -> Result<U256, ClientError> {
    if let Some(id) = shared.open_channel_id() {
        caught_up_with_ledger(shared, id).await?;
    }
    let now = ledger::now(shared).await?;
    let until = withdraw_deadline(now)?;
    let signer = shared.rpc.signer().clone();
    let (proof, signature) = shared
        .update_channel(|ch| {
            ch.handle_timeout(now);
            let total = ch
                .our()
                .total_withdraw
                .checked_add(amount)
                .ok_or_else(|| ClientError::InvalidState("withdraw total overflows".into()))?;
            let events = ch.request_withdraw(total, until, now, &signer)?;
            events
                .into_iter()
                .find_map(|e| match e {
                    ChannelEvent::Send(ChannelMessage::WithdrawRequest { proof, signature }) => {
                        Some((proof, signature))
                    }
                    _ => None,
                })
                .ok_or_else(|| {
                    ClientError::InvalidState("withdraw request produced no proof".into())
                })
        })
        .await?;

    let req = v1::RequestWithdrawRequest {
        withdraw: Some((&proof).into()),
        participant_signature: signature.as_bytes().to_vec(),
    };
    let cosigned = shared
        .rpc
        .call("Channels.RequestWithdraw", move |mut c| {
            let req = req.clone();
            async move { c.channels.request_withdraw(req).await }
        })
        .await?;
    let cosigned = CoSignedWithdraw::try_from(cosigned)?;
    if cosigned.proof != proof {
        return Err(ClientError::HubMisbehaved(
            "co-signed withdraw differs from the one requested".into(),
        ));
    }
    shared
        .update_channel(|ch| {
            Ok(ch.handle_withdraw_confirmation(&proof, &cosigned.partner_signature)?)
        })
        .await?;

    let submit = CoSignedWithdraw {
        proof,
        participant_signature: signature,
        partner_signature: cosigned.partner_signature,
    };
    let events = ledger::execute(shared, &LedgerOp::SetTotalWithdraw(submit)).await?;
    apply_events(shared, events).await?;
    Ok(proof.total_withdraw)
}

/// Both sides withdraw their whole balance and the channel settles at once.
pub(crate) async fn cooperative_close(shared: &Shared) -> Result<Settlement, ClientError> {
    shared.block_sends_when_idle("a cooperative close is in progress")?;
    let result = cooperative_close_inner(shared).await;
    if result.is_err() {
        // Not settled: reopen the channel for payments unless it left the open ledger phase.
        let resumed = shared
            .update_channel(|ch| {
                ch.resume_payments();
                Ok(())
            })
            .await;
        if let Err(e) = resumed {
            tracing::warn!(error = %e, "could not resume payments after a failed cooperative close");
        }
        if shared.open_channel_id().is_some() {
            shared.set_send_blocked(None)?;
        }
    }
    result
}

async fn cooperative_close_inner(shared: &Shared) -> Result<Settlement, ClientError> {
    if let Some(id) = shared.open_channel_id() {
        caught_up_with_ledger(shared, id).await?;
    }
    let now = ledger::now(shared).await?;
    let until = withdraw_deadline(now)?;
    let signer = shared.rpc.signer().clone();
    // The core builds and signs both whole-balance withdraws and stops payments; durable
    // before the proposal leaves the device.
    let proposal = shared
        .update_channel(|ch| Ok(ch.propose_cooperative_close(until, now, &signer)?))
        .await?;
    let channel_id = proposal.proposer_withdraw.channel_identifier;
    let device_withdraw = proposal.proposer_withdraw;
    let hub_withdraw = proposal.partner_withdraw;
    let req = v1::CooperativeCloseRequest {
        channel_id: u256_bytes(&channel_id),
        device_withdraw: Some((&device_withdraw).into()),
        device_withdraw_signature: proposal.proposer_signature.as_bytes().to_vec(),
        hub_withdraw: Some((&hub_withdraw).into()),
        hub_withdraw_partner_signature: proposal
            .partner_withdraw_proposer_signature
            .as_bytes()
            .to_vec(),
        // On the embedded ledger the hub submits at once. On a chain the device sends the
        // transaction itself: a receipt and its confirmations can take longer than a gRPC
        // request may, and the device should not depend on the hub's node.
        submit: shared.ledger.chain().is_none(),
    };
    let resp = shared
        .rpc
        .call("Channels.CooperativeClose", move |mut c| {
            let req = req.clone();
            async move { c.channels.cooperative_close(req).await }
        })
        .await?;
    let events = resp
        .events
        .into_iter()
        .map(LedgerEvent::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(s) = apply_events(shared, events).await? {
        return Ok(s);
    }
    // The hub co-signed but did not submit: submit cooperative settle ourselves.
    let w1: CoSignedWithdraw = required("device_withdraw", resp.device_withdraw)?;
    let w2: CoSignedWithdraw = required("hub_withdraw", resp.hub_withdraw)?;
    if w1.proof != device_withdraw || w2.proof != hub_withdraw {
        return Err(ClientError::HubMisbehaved(
            "co-signed cooperative withdraws differ from the ones proposed".into(),
        ));
    }
    let op = LedgerOp::CooperativeSettle {
        channel_id,
        withdraws: [w1, w2],
    };
    let events = ledger::execute(shared, &op).await?;
    apply_events(shared, events).await?.ok_or_else(|| {
        ClientError::HubMisbehaved("cooperative settle reported no settlement".into())
    })
}

/// Closes unilaterally with the hub's latest proof counter-signed. Returns the ledger time
/// after which [`settle`] can succeed.
pub(crate) async fn close(shared: &Shared) -> Result<u64, ClientError> {
    shared.set_send_blocked(Some("the channel is being closed".into()))?;
    let signer = shared.rpc.signer().clone();
    let tx = shared.update_channel(|ch| Ok(ch.close(&signer)?)).await?;
    let channel_id = tx.channel_id;
    let events = ledger::execute(shared, &LedgerOp::Close(tx)).await?;
    apply_events(shared, events).await?;
    let rec = ledger::channel(shared, channel_id).await?;
    rec.settle_after.ok_or_else(|| {
        ClientError::HubMisbehaved("ledger reports a closed channel without settle_after".into())
    })
}

/// Submits `SettleChannel` once for the closed channel `record` and applies the events it
/// returns. The ledger wants the balance data of both stored proofs: the hub's is the latest
/// we hold (we submitted it), ours may be any proof we signed (the hub chose it), from the
/// store's archive.
pub(crate) async fn submit_settle(
    shared: &Shared,
    record: &ChannelRecord,
) -> Result<Option<Settlement>, ClientError> {
    let channel = shared.require_channel()?;
    let mut lookup = Ok(());
    let settle = channel.settle_transaction(record, |nonce| {
        shared.store.signed_balance(nonce).unwrap_or_else(|e| {
            lookup = Err(e);
            None
        })
    });
    lookup?;
    let events = ledger::execute(shared, &LedgerOp::Settle(settle?)).await?;
    apply_events(shared, events).await
}

/// Waits for the settlement window to end, then settles. `None` when someone else settled
/// the channel first.
pub(crate) async fn settle(shared: &Shared) -> Result<Option<Settlement>, ClientError> {
    let channel_id = shared.require_channel()?.id();
    loop {
        let rec = ledger::channel(shared, channel_id).await?;
        match rec.phase {
            LedgerPhase::Settled => {
                if shared.require_channel()?.phase() != channel_core::channel::ChannelPhase::Settled
                {
                    shared
                        .update_channel(|ch| {
                            ch.handle_ledger_settled();
                            Ok(())
                        })
                        .await?;
                }
                return Ok(None);
            }
            LedgerPhase::Opened => {
                return Err(ClientError::InvalidState(
                    "the channel is open on the ledger: close it first".into(),
                ))
            }
            LedgerPhase::Closed => {}
        }
        let settle_after = rec.settle_after.unwrap_or(0);
        let now = ledger::now(shared).await?;
        if now <= settle_after {
            let wait = (settle_after - now + 1).min(5);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        match submit_settle(shared, &rec).await {
            Ok(settled) => return Ok(settled),
            // Someone (the hub, our watcher) may have settled in between: look again.
            Err(e) if e.is_ledger_refusal() => {
                let rec = ledger::channel(shared, channel_id).await?;
                if rec.phase != LedgerPhase::Settled {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_ledger_time_is_refused_not_wrapped() {
        assert_eq!(
            withdraw_deadline(1_000).ok(),
            Some(1_000 + WITHDRAW_VALIDITY)
        );
        let last = u64::MAX - WITHDRAW_VALIDITY;
        assert_eq!(withdraw_deadline(last).ok(), Some(u64::MAX));
        for now in [last + 1, u64::MAX] {
            let err = withdraw_deadline(now).unwrap_err();
            assert!(
                matches!(err, ClientError::LedgerTimeOverflow { now: n } if n == now),
                "{err}"
            );
            assert!(err.to_string().contains(&now.to_string()), "{err}");
        }
    }
}
