//! The decisions of mediated payments over the device's records. The rules themselves (the
//! payer's lock expiration, whether a request may be paid again, whether the payee reveals,
//! what the janitor does) are `channel_core::mediation`'s; this module adapts the SDK's
//! records to them, reads a refusal by the hub's typed reason, and says what a transfer
//! record means for the waiting `pay_request`.

use channel_core::mediation::{self as rules, NotPayable, OwnRequest, PriorAttempt};
use channel_core::{HashTimeLock, Secret};
use voltlane_proto::v1::{self, ErrorReason};

use super::MediatedReceipt;
use crate::error::{ClientError, HubReason};
use crate::store::{
    ForwardRecord, OutgoingTransfer, PaymentRequestRecord, QueuedKind, Refusal, UnackedPayment,
};

#[cfg(test)]
pub use channel_core::mediation::JanitorPlan;
pub use channel_core::mediation::{janitor_plan, NoReveal};

/// The expiration of the lock a payer makes at ledger time `now`
/// ([`channel_core::mediation::lock_expiration`]).
pub fn lock_expiration(
    now: u64,
    lifetime: u64,
    min_lock_expiration: u64,
    max_lock_expiration: Option<u64>,
) -> Result<u64, ClientError> {
    rules::lock_expiration(now, lifetime, min_lock_expiration, max_lock_expiration).map_err(|e| {
        match e {
            rules::LockExpirationError::TimeOverflow { now } => {
                ClientError::LedgerTimeOverflow { now }
            }
            rules::LockExpirationError::EmptyWindow { .. } => {
                ClientError::HubMisbehaved(e.to_string())
            }
        }
    })
}

/// The error for a refused forward or quote: by the hub's typed reason (PAYEE_OFFLINE,
/// NO_CAPACITY), never by its message.
pub fn refusal_error(
    code: tonic::Code,
    hub_reason: Option<HubReason>,
    reason: String,
) -> ClientError {
    match &hub_reason {
        Some(r) if r.is(ErrorReason::PayeeOffline) => ClientError::PayeeOffline { reason },
        Some(r) if r.is(ErrorReason::NoCapacity) => ClientError::NoCapacity { reason },
        _ => ClientError::MediationRefused {
            code,
            hub_reason,
            reason,
        },
    }
}

/// The record of the hub's rejection `r`. The store's [`Refusal`] has no field of its own for
/// the typed reason, so it is kept as a `[REASON] ` prefix of the stored text, which
/// [`refusal_parts`] takes apart again (a record without the prefix, e.g. from an older SDK,
/// reads as having no reason).
pub(crate) fn refusal_record(r: &v1::PaymentRejected) -> Refusal {
    let reason = match HubReason::from_wire(r.error_reason) {
        Some(hub_reason) => format!("[{hub_reason}] {}", r.reason),
        None => r.reason.clone(),
    };
    Refusal {
        code: r.code,
        reason,
    }
}

/// The code, typed reason and message of a refusal record (see [`refusal_record`]).
pub(crate) fn refusal_parts(r: &Refusal) -> (tonic::Code, Option<HubReason>, String) {
    let code = tonic::Code::from_i32(r.code);
    let tagged = r
        .reason
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "));
    match tagged {
        Some((name, message))
            if !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') =>
        {
            (code, Some(HubReason::from_name(name)), message.to_string())
        }
        _ => (code, None, r.reason.clone()),
    }
}

/// The error a refusal record reads as, when it refused the lock itself or its forward.
fn refusal_record_error(r: &Refusal) -> ClientError {
    let (code, hub_reason, message) = refusal_parts(r);
    refusal_error(code, hub_reason, message)
}

/// Whether a request whose transfer record is `existing` may be paid now
/// ([`channel_core::mediation::check_payable`]; `lock_pending`: its lock is in our channel).
pub fn check_payable(
    existing: Option<&OutgoingTransfer>,
    lock_pending: bool,
) -> Result<(), ClientError> {
    let Some(t) = existing else { return Ok(()) };
    let secrethash = t.secrethash();
    let prior = if t.secret.is_some() {
        PriorAttempt::Paid
    } else {
        match t.outcome() {
            Some(Ok(_)) => PriorAttempt::Paid,
            Some(Err(_)) => PriorAttempt::Failed,
            None => PriorAttempt::UnderWay,
        }
    };
    rules::check_payable(Some(prior), lock_pending).map_err(|e| match e {
        NotPayable::AlreadyPaid => ClientError::AlreadyPaid { secrethash },
        NotPayable::InProgress => ClientError::PaymentInProgress { secrethash },
    })
}

impl OutgoingTransfer {
    /// What this record means for the payer: `None` while the transfer is under way, the
    /// receipt once our unlock is acknowledged, or why it did not happen.
    pub fn outcome(&self) -> Option<Result<MediatedReceipt, ClientError>> {
        if let Some((nonce, r)) = &self.rejected {
            if *nonce == self.lock_nonce {
                // The hub refused the lock itself (and holds nothing of it): what the
                // refusal says, as a refused forward reads.
                return Some(Err(refusal_record_error(r)));
            }
            let (code, hub_reason, reason) = refusal_parts(r);
            return Some(Err(ClientError::PaymentRejected {
                nonce: *nonce,
                code,
                hub_reason,
                reason,
            }));
        }
        if let Some(secret) = self.secret {
            let unlock_nonce = self.unlock_nonce.filter(|_| self.unlock_acked)?;
            return Some(Ok(MediatedReceipt {
                request: self.request,
                secret,
                fee: self.fee,
                lock_amount: self.lock.amount,
                unlock_nonce,
            }));
        }
        if let Some(ForwardRecord::NotForwarded(r)) = &self.forward {
            return Some(Err(refusal_record_error(r)));
        }
        if let Some(reason) = &self.failure {
            return Some(Err(ClientError::TransferFailed(reason.clone())));
        }
        if self.expired_nonce.is_some() {
            return Some(Err(ClientError::Expired));
        }
        None
    }
}

/// What the hub's acknowledgement of `entry` (one of our proofs for transfer `t`) means for
/// it: the forward answer of our locked transfer (`Unknown` when the answer was lost), or
/// our unlock done. Acks of proofs other than the record's own are ignored (a retry of the
/// request replaced the record).
pub fn record_ack(
    t: &mut OutgoingTransfer,
    entry: &UnackedPayment,
    forward: Option<&ForwardRecord>,
) {
    let nonce = entry.nonce();
    match &entry.kind {
        QueuedKind::LockedTransfer { .. } if t.lock_nonce == nonce && t.forward.is_none() => {
            t.forward = Some(forward.cloned().unwrap_or(ForwardRecord::Unknown));
        }
        QueuedKind::Unlock { .. } if t.unlock_nonce == Some(nonce) => t.unlock_acked = true,
        _ => {}
    }
}

/// The hub refused `entry`, one of our proofs for transfer `t`, for good.
pub fn record_rejection(t: &mut OutgoingTransfer, entry: &UnackedPayment, refusal: Refusal) {
    let nonce = entry.nonce();
    let ours =
        t.lock_nonce == nonce || t.unlock_nonce == Some(nonce) || t.expired_nonce == Some(nonce);
    if ours && t.rejected.is_none() {
        t.rejected = Some((nonce, refusal));
    }
}

/// Whether the payee reveals the secret of `request` for `lock` (received at ledger time
/// `now`; [`channel_core::mediation::reveal_decision`]). Returns the secret to reveal.
pub fn reveal_decision(
    request: Option<&PaymentRequestRecord>,
    lock: &HashTimeLock,
    now: u64,
    margin: u64,
) -> Result<Secret, NoReveal> {
    let own = request.map(|r| OwnRequest {
        request: &r.request,
        secret: r.secret,
        paid_nonce: r.paid_nonce,
    });
    rules::reveal_decision(own, lock, now, margin)
}
