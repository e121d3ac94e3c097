//! The device's rules of a mediated payment, as pure functions of their inputs (ledger time
//! `now` is an argument): how long the payer's lock lives, whether a request may be paid
//! (again), at what time a lock the hub pushes is accepted, whether the payee reveals its
//! secret for a lock, and what the janitor does with the device's pending locks. The SDK
//! drives them; the hub drives the same functions where it needs the same rule.

use crate::channel::{Channel, ChannelPhase};
use crate::locks::{HashTimeLock, Secret};
use crate::primitives::{H256, U256};

use super::SignedPaymentRequest;

/// Why no lock expiration fits the hub's quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LockExpirationError {
    /// The ledger time is so large that a later expiration does not fit in 64 bits.
    #[error("ledger time {now} leaves no room for a lock expiration")]
    TimeOverflow { now: u64 },
    /// The quote's window is empty: the lock must expire after `min` and at most at `max`.
    #[error("the hub's quote leaves no lock expiration: it must be after {min} and at most {max}")]
    EmptyWindow { min: u64, max: u64 },
}

/// The expiration of the lock a payer makes at ledger time `now`: `now + lifetime` (at least
/// one second), but never at or before the hub's `min_lock_expiration`, and never after the
/// hub's `max_lock_expiration` when it sets one (its settlement window bounds every lock).
pub fn lock_expiration(
    now: u64,
    lifetime: u64,
    min_lock_expiration: u64,
    max_lock_expiration: Option<u64>,
) -> Result<u64, LockExpirationError> {
    let wanted = now
        .checked_add(lifetime.max(1))
        .ok_or(LockExpirationError::TimeOverflow { now })?;
    let floor = min_lock_expiration
        .checked_add(1)
        .ok_or(LockExpirationError::TimeOverflow {
            now: min_lock_expiration,
        })?;
    let expiration = wanted.max(floor);
    match max_lock_expiration {
        Some(max) if max < floor => Err(LockExpirationError::EmptyWindow {
            min: min_lock_expiration,
            max,
        }),
        Some(max) => Ok(expiration.min(max)),
        None => Ok(expiration),
    }
}

/// The ledger time at which a received lock expiring at `expiration` is accepted at `now`:
/// `now`, or just before the expiry for a lock that expired before it arrived (a stream replay
/// after a long disconnection). Such a lock is worthless to its receiver but still the
/// sender's signed proof with the next nonce: refusing it would leave every later proof of the
/// sender unacceptable. Decisions about the lock itself (revealing) use the real `now`.
pub fn lock_accept_time(now: u64, expiration: u64) -> u64 {
    now.min(expiration.saturating_sub(1))
}

/// What became of an earlier attempt to pay the same request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriorAttempt {
    /// The payee was paid (we know its secret, or our unlock is acknowledged).
    Paid,
    /// It did not happen (refused, failed or expired).
    Failed,
    /// It has no outcome yet.
    UnderWay,
}

/// Why a request may not be paid now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotPayable {
    #[error("the payment request was already paid")]
    AlreadyPaid,
    #[error("the payment request is already being paid")]
    InProgress,
}

/// Whether a request whose earlier attempt is `prior` may be paid now. A request is paid at
/// most once: refused when it was paid, or while an earlier attempt is under way or its lock
/// (`lock_pending` in the payer's channel) is not yet taken back. A request whose earlier
/// attempt failed and whose lock is gone may be paid again.
pub fn check_payable(prior: Option<PriorAttempt>, lock_pending: bool) -> Result<(), NotPayable> {
    match prior {
        None => Ok(()),
        Some(PriorAttempt::Paid) => Err(NotPayable::AlreadyPaid),
        Some(PriorAttempt::Failed) if !lock_pending => Ok(()),
        Some(PriorAttempt::Failed | PriorAttempt::UnderWay) => Err(NotPayable::InProgress),
    }
}

/// A payment request of the payee's with its secret, as the payee's store keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnRequest<'a> {
    pub request: &'a SignedPaymentRequest,
    pub secret: Secret,
    /// The nonce of the hub's unlock that paid it, once paid.
    pub paid_nonce: Option<u64>,
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
    request: Option<OwnRequest<'_>>,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::crypto::{LocalSigner, Signer};
    use crate::ledger::{LedgerEvent, LedgerEventKind};
    use crate::mediation::PaymentRequest;
    use crate::testing::{test_domain, test_signer};

    /// `us`'s open channel with `them`, both sides funded with 1,000.
    fn channel(us: &LocalSigner, them: &LocalSigner) -> Channel {
        let mut ch = Channel::new(test_domain(), U256::from(5u8), us.address(), them.address());
        ch.handle_ledger_deposit(us.address(), U256::from(1_000u32))
            .unwrap();
        ch.handle_ledger_deposit(them.address(), U256::from(1_000u32))
            .unwrap();
        ch
    }

    fn lock(amount: u64, expiration: u64, secret: &Secret) -> HashTimeLock {
        HashTimeLock {
            expiration,
            amount: U256::from(amount),
            secrethash: secret.hash(),
        }
    }

    fn request(amount: u64, expires_at: u64, secret: &Secret) -> SignedPaymentRequest {
        let payee = test_signer(7);
        PaymentRequest {
            domain: test_domain(),
            payee: payee.address(),
            amount: U256::from(amount),
            secrethash: secret.hash(),
            payment_id: 1,
            expires_at,
            memo_hash: H256::default(),
        }
        .sign(&payee)
        .unwrap()
    }

    #[test]
    fn lock_expiration_respects_the_quote_window() {
        // now + lifetime when it fits.
        assert_eq!(lock_expiration(100, 30, 110, Some(200)), Ok(130));
        // Never at or before the hub's minimum.
        assert_eq!(lock_expiration(100, 5, 110, None), Ok(111));
        // Never after the hub's maximum.
        assert_eq!(lock_expiration(100, 500, 110, Some(150)), Ok(150));
        // A zero lifetime still lives a second.
        assert_eq!(lock_expiration(100, 0, 0, None), Ok(101));
        assert_eq!(
            lock_expiration(100, 30, 150, Some(150)),
            Err(LockExpirationError::EmptyWindow { min: 150, max: 150 })
        );
        assert_eq!(
            lock_expiration(u64::MAX, 1, 0, None),
            Err(LockExpirationError::TimeOverflow { now: u64::MAX })
        );
        assert_eq!(
            lock_expiration(1, 1, u64::MAX, None),
            Err(LockExpirationError::TimeOverflow { now: u64::MAX })
        );
    }

    #[test]
    fn a_late_lock_is_accepted_as_of_just_before_its_expiry() {
        assert_eq!(lock_accept_time(100, 200), 100);
        assert_eq!(lock_accept_time(199, 200), 199);
        assert_eq!(lock_accept_time(200, 200), 199);
        assert_eq!(lock_accept_time(5_000, 200), 199);
        assert_eq!(lock_accept_time(0, 0), 0);
    }

    #[test]
    fn a_request_is_paid_at_most_once() {
        assert_eq!(check_payable(None, false), Ok(()));
        assert_eq!(
            check_payable(Some(PriorAttempt::Paid), false),
            Err(NotPayable::AlreadyPaid)
        );
        assert_eq!(
            check_payable(Some(PriorAttempt::UnderWay), false),
            Err(NotPayable::InProgress)
        );
        // A failed attempt may be retried once its lock is gone, not before.
        assert_eq!(check_payable(Some(PriorAttempt::Failed), false), Ok(()));
        assert_eq!(
            check_payable(Some(PriorAttempt::Failed), true),
            Err(NotPayable::InProgress)
        );
    }

    #[test]
    fn the_payee_reveals_only_for_a_lock_that_pays_an_open_request_in_time() {
        let secret = Secret(H256([3; 32]));
        let req = request(100, 1_000, &secret);
        let own = OwnRequest {
            request: &req,
            secret,
            paid_nonce: None,
        };
        let margin = 10;
        assert_eq!(
            reveal_decision(Some(own), &lock(100, 500, &secret), 400, margin),
            Ok(secret)
        );
        assert_eq!(
            reveal_decision(None, &lock(100, 500, &secret), 400, margin),
            Err(NoReveal::UnknownRequest)
        );
        let other = Secret(H256([4; 32]));
        assert_eq!(
            reveal_decision(Some(own), &lock(100, 500, &other), 400, margin),
            Err(NoReveal::UnknownRequest)
        );
        let paid = OwnRequest {
            paid_nonce: Some(7),
            ..own
        };
        assert_eq!(
            reveal_decision(Some(paid), &lock(100, 500, &secret), 400, margin),
            Err(NoReveal::AlreadyPaid { paid_nonce: 7 })
        );
        assert_eq!(
            reveal_decision(Some(own), &lock(99, 500, &secret), 400, margin),
            Err(NoReveal::AmountTooLow {
                locked: U256::from(99u8),
                wanted: U256::from(100u8)
            })
        );
        assert_eq!(
            reveal_decision(Some(own), &lock(100, 2_000, &secret), 1_000, margin),
            Err(NoReveal::RequestExpired {
                expires_at: 1_000,
                now: 1_000
            })
        );
        // Expiring at now + margin is too close; one second later is not.
        assert_eq!(
            reveal_decision(Some(own), &lock(100, 410, &secret), 400, margin),
            Err(NoReveal::TooCloseToExpiry {
                expiration: 410,
                now: 400,
                margin
            })
        );
        assert_eq!(
            reveal_decision(Some(own), &lock(100, 411, &secret), 400, margin),
            Ok(secret)
        );
    }

    #[test]
    fn the_janitor_unlocks_known_secrets_and_takes_back_expired_unknown_ones() {
        let (payer, hub) = (test_signer(1), test_signer(2));
        let (a, b, c) = (
            Secret(H256([1; 32])),
            Secret(H256([2; 32])),
            Secret(H256([3; 32])),
        );
        let mut ch = channel(&payer, &hub);
        for (s, exp) in [(&a, 100), (&b, 100), (&c, 300)] {
            ch.send_locked_transfer(lock(10, exp, s), 10, H256::ZERO, &payer)
                .unwrap();
        }
        let none = |_: &H256| None;
        assert_eq!(janitor_plan(&ch, 99, none), JanitorPlan::default());
        assert_eq!(
            janitor_plan(&ch, 100, none),
            JanitorPlan {
                unlock: vec![],
                expire: vec![a.hash(), b.hash()],
            }
        );
        let known = |h: &H256| (*h == b.hash()).then_some(b);
        assert_eq!(
            janitor_plan(&ch, 100, known),
            JanitorPlan {
                unlock: vec![b],
                expire: vec![a.hash()],
            }
        );
        // A secret that does not open the lock is not used.
        let wrong = |h: &H256| (*h == b.hash()).then_some(c);
        assert_eq!(janitor_plan(&ch, 100, wrong).unlock, vec![]);
        // Registered on the ledger before it expired: claimed, never expired; we unlock it.
        ch.handle_ledger_event(&LedgerEvent {
            seq: 1,
            time: 50,
            kind: LedgerEventKind::SecretRegistered {
                secrethash: a.hash(),
                secret: a,
            },
        })
        .unwrap();
        assert_eq!(
            janitor_plan(&ch, 100, none),
            JanitorPlan {
                unlock: vec![a],
                expire: vec![b.hash()],
            }
        );
        // A channel that is no longer open is the ledger's.
        ch.handle_ledger_event(&LedgerEvent {
            seq: 2,
            time: 150,
            kind: LedgerEventKind::ChannelClosed {
                channel_id: U256::from(5u8),
                closing_participant: hub.address(),
                nonce: 0,
                balance_hash: H256::ZERO,
            },
        })
        .unwrap();
        assert_eq!(janitor_plan(&ch, 200, none), JanitorPlan::default());
    }
}
