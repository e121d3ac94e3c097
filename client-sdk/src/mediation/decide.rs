//! The decisions of mediated payments as pure functions over records, the channel and the
//! ledger time, so they are tested without a hub: the payer's lock expiration, whether a
//! request may be paid (again), how a refusal reads, what a transfer record means for the
//! waiting `pay_request`, whether the payee reveals, and what the janitor does.

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::primitives::{H256, U256};
use channel_core::{HashTimeLock, Secret};

use super::MediatedReceipt;
use crate::error::ClientError;
use crate::store::{
    ForwardRecord, OutgoingTransfer, PaymentRequestRecord, QueuedKind, Refusal, UnackedPayment,
};

/// The expiration of the lock a payer makes at ledger time `now`: `now + lifetime`, but never
/// at or before the hub's `min_lock_expiration`, nor at or before `now`, and never after the
/// hub's `max_lock_expiration` (when it sets one: its settlement window bounds every lock).
pub fn lock_expiration(
    now: u64,
    lifetime: u64,
    min_lock_expiration: u64,
    max_lock_expiration: Option<u64>,
) -> Result<u64, ClientError> {
    let wanted = now
        .checked_add(lifetime.max(1))
        .ok_or(ClientError::LedgerTimeOverflow { now })?;
    let floor = min_lock_expiration
        .checked_add(1)
        .ok_or(ClientError::LedgerTimeOverflow {
            now: min_lock_expiration,
        })?;
    let expiration = wanted.max(floor);
    match max_lock_expiration {
        Some(max) if max < floor => Err(ClientError::HubMisbehaved(format!(
            "the hub's quote leaves no lock expiration: it must be after {min_lock_expiration} \
             and at most {max}"
        ))),
        Some(max) => Ok(expiration.min(max)),
        None => Ok(expiration),
    }
}

/// The error for a refused forward or quote, by the hub's code and reason.
pub fn refusal_error(code: tonic::Code, reason: String) -> ClientError {
    let lower = reason.to_ascii_lowercase();
    match code {
        tonic::Code::FailedPrecondition if lower.contains("offline") => {
            ClientError::PayeeOffline { reason }
        }
        tonic::Code::ResourceExhausted if lower.contains("capacity") => {
            ClientError::NoCapacity { reason }
        }
        _ => ClientError::MediationRefused { code, reason },
    }
}

/// Whether a request whose transfer record is `existing` may be paid now. A request is paid
/// at most once: refused when it was paid (or its secret is known), or while an earlier
/// attempt is under way or its lock (`lock_pending` in our channel) is not yet taken back.
/// A request whose earlier attempt failed and whose lock is gone may be paid again.
pub fn check_payable(
    existing: Option<&OutgoingTransfer>,
    lock_pending: bool,
) -> Result<(), ClientError> {
    let Some(t) = existing else { return Ok(()) };
    let secrethash = t.secrethash();
    if t.secret.is_some() {
        return Err(ClientError::AlreadyPaid { secrethash });
    }
    match t.outcome() {
        Some(Err(_)) if !lock_pending => Ok(()),
        Some(Ok(_)) => Err(ClientError::AlreadyPaid { secrethash }),
        _ => Err(ClientError::PaymentInProgress { secrethash }),
    }
}

impl OutgoingTransfer {
    /// What this record means for the payer: `None` while the transfer is under way, the
    /// receipt once our unlock is acknowledged, or why it did not happen.
    pub fn outcome(&self) -> Option<Result<MediatedReceipt, ClientError>> {
        if let Some((nonce, r)) = &self.rejected {
            if *nonce == self.lock_nonce {
                // The hub refused the lock itself (and holds nothing of it): what the
                // refusal says, as a refused forward reads.
                return Some(Err(refusal_error(
                    tonic::Code::from_i32(r.code),
                    r.reason.clone(),
                )));
            }
            return Some(Err(ClientError::PaymentRejected {
                nonce: *nonce,
                code: tonic::Code::from_i32(r.code),
                reason: r.reason.clone(),
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
            return Some(Err(refusal_error(
                tonic::Code::from_i32(r.code),
                r.reason.clone(),
            )));
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

/// Why the payee does not reveal its secret for a lock.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoReveal {
    #[error("no payment request of ours has this secrethash")]
    UnknownRequest,
    #[error("the payment request was already paid (unlock nonce {paid_nonce})")]
    AlreadyPaid { paid_nonce: u64 },
    #[error("the lock of {locked} does not pay the requested {wanted}")]
    AmountTooLow { locked: U256, wanted: U256 },
    #[error("the payment request expired at {expires_at}; ledger time is {now}")]
    RequestExpired { expires_at: u64, now: u64 },
    #[error(
        "the lock expires at {expiration}: not enough time left after ledger time {now} \
         (margin {margin} s)"
    )]
    TooCloseToExpiry {
        expiration: u64,
        now: u64,
        margin: u64,
    },
}

/// Whether the payee reveals the secret of `request` for `lock` (received at ledger time
/// `now`): the lock must pay a request of ours that is unpaid and unexpired, at least the
/// requested amount, and expire later than `now + margin`. Returns the secret to reveal.
pub fn reveal_decision(
    request: Option<&PaymentRequestRecord>,
    lock: &HashTimeLock,
    now: u64,
    margin: u64,
) -> Result<Secret, NoReveal> {
    let Some(r) = request.filter(|r| r.secret.hash() == lock.secrethash) else {
        return Err(NoReveal::UnknownRequest);
    };
    if let Some(paid_nonce) = r.paid_nonce {
        return Err(NoReveal::AlreadyPaid { paid_nonce });
    }
    let wanted = r.request.request.amount;
    if lock.amount < wanted {
        return Err(NoReveal::AmountTooLow {
            locked: lock.amount,
            wanted,
        });
    }
    let expires_at = r.request.request.expires_at;
    if now >= expires_at {
        return Err(NoReveal::RequestExpired { expires_at, now });
    }
    if lock.expiration <= now.saturating_add(margin) {
        return Err(NoReveal::TooCloseToExpiry {
            expiration: lock.expiration,
            now,
            margin,
        });
    }
    Ok(r.secret)
}

/// What the janitor does for our pending locks at ledger time `now`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JanitorPlan {
    /// Locks whose secret we know but which are still pending: unlock them.
    pub unlock: Vec<Secret>,
    /// Locks that expired unclaimed and whose secret we do not know: take them back.
    pub expire: Vec<H256>,
}

/// The janitor's plan for `channel` (open only) at `now`; `secret_of` gives the secret we
/// learned for one of our locks from the transfer records. A secret the channel learned from
/// the ledger's registry counts too: the payee was paid, so we unlock (and a lock claimed on
/// the ledger never expires anyway).
pub fn janitor_plan(
    channel: &Channel,
    now: u64,
    secret_of: impl Fn(&H256) -> Option<Secret>,
) -> JanitorPlan {
    let mut plan = JanitorPlan::default();
    if channel.phase() != ChannelPhase::Open {
        return plan;
    }
    for lock in channel.our().locks.as_slice() {
        let known = secret_of(&lock.secrethash)
            .or_else(|| channel.known_secret(&lock.secrethash).map(|k| k.secret))
            .filter(|s| s.hash() == lock.secrethash);
        match known {
            Some(secret) => plan.unlock.push(secret),
            None if lock.is_expired(now) && !channel.claimed_on_ledger(lock) => {
                plan.expire.push(lock.secrethash)
            }
            None => {}
        }
    }
    plan
}
