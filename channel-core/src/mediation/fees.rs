//! What the hub charges for mediating and how long it keeps between its two locks: the
//! [`FeePolicy`] arithmetic (checked, rounded up) and the [`MediationConfig`] the mediator
//! rules read.

use serde::{Deserialize, Serialize};

use crate::primitives::{u256_dec, U256};

/// Parts per million: the denominator of [`FeePolicy::proportional_ppm`].
pub const PPM: u32 = 1_000_000;

/// Why a fee could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeeError {
    #[error("mediation fee for amount {amount} does not fit in 256 bits")]
    Overflow { amount: U256 },
}

/// The hub's mediation fee: `flat + ceil(amount × proportional_ppm / 1_000_000)`, in integer
/// token units.
///
/// The proportional part is rounded **up**, so the hub is never short by a fraction of a
/// unit: an amount of 1 at 1 ppm costs 1. `proportional_ppm` may exceed one million (a fee
/// larger than the amount); that is the operator's choice, not an error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeePolicy {
    #[serde(with = "u256_dec")]
    pub flat: U256,
    pub proportional_ppm: u32,
}

impl FeePolicy {
    /// No fee at all.
    pub const FREE: FeePolicy = FeePolicy {
        flat: U256::ZERO,
        proportional_ppm: 0,
    };

    /// The fee for forwarding `amount` to the payee.
    ///
    /// Computed without an intermediate product that could overflow where the result does
    /// not: `amount = q × 10⁶ + r`, so `ceil(amount × ppm / 10⁶) = q × ppm + ceil(r × ppm / 10⁶)`
    /// and `r × ppm < 10⁶ × 2³²` always fits.
    pub fn fee_for(&self, amount: U256) -> Result<U256, FeeError> {
        let overflow = FeeError::Overflow { amount };
        let million = U256::from(PPM);
        let ppm = U256::from(self.proportional_ppm);
        let (q, r) = (amount / million, amount % million);
        let whole = q.checked_mul(ppm).ok_or(overflow.clone())?;
        // r × ppm < 10⁶ × 2³², so neither the product nor the rounding addition can overflow.
        let part = (r * ppm).div_ceil(million);
        whole
            .checked_add(part)
            .and_then(|p| p.checked_add(self.flat))
            .ok_or(overflow)
    }

    /// What the payer must lock toward the hub so that the payee receives `amount`:
    /// `amount + fee_for(amount)`.
    pub fn gross_amount(&self, amount: U256) -> Result<U256, FeeError> {
        amount
            .checked_add(self.fee_for(amount)?)
            .ok_or(FeeError::Overflow { amount })
    }
}

/// The mediator's parameters (ledger time in seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediationConfig {
    pub fees: FeePolicy,
    /// How much earlier the outgoing lock expires than the incoming one. Once the payee has
    /// revealed the secret (at the latest just before the outgoing lock expires), the hub has
    /// at least this long to register it on the ledger before its incoming lock expires. Must
    /// cover the time to get a ledger transaction in, with margin.
    pub reveal_timeout: u64,
    /// The outgoing lock must still live at least this long when it is created, so the payee
    /// has time to see it and reveal the secret; otherwise the forward is refused.
    pub min_outgoing_lifetime: u64,
    /// The ledger's settlement window: the longest a lock may live, counted from when the hub
    /// takes it (Raiden bounds a lock's expiry by the settle timeout the same way). A lock
    /// within it has expired by the time any close made after it was taken can settle, so
    /// at settlement every lock's fate is already fixed by the secret registry and nobody can
    /// unlock it early on the ledger while its secret may still come. A longer lock would
    /// also hold the hub's capacity toward the payee for that long.
    pub settlement_window: u64,
}

impl MediationConfig {
    /// The latest expiration a lock taken at ledger time `now` may have: `now +
    /// settlement_window` (saturating).
    pub fn latest_lock_expiration(&self, now: u64) -> u64 {
        now.saturating_add(self.settlement_window)
    }

    /// Whether any lock can be forwarded at all: one must expire after
    /// [`Self::min_lock_expiration`] and at or before [`Self::latest_lock_expiration`], so
    /// the settlement window must exceed the reveal timeout plus the outgoing lock's shortest
    /// life. A hub whose settings fail this refuses every forward (`ExpiryTooSoon` or
    /// `ExpiryTooLate`); it should say so when it starts.
    pub fn can_forward(&self) -> bool {
        self.min_lock_expiration(0) < self.latest_lock_expiration(0)
    }

    /// The earliest expiration the payer's lock may have at ledger time `now`: strictly
    /// after this (the outgoing lock, `reveal_timeout` earlier, must outlive
    /// `min_outgoing_lifetime`).
    pub fn min_lock_expiration(&self, now: u64) -> u64 {
        now.saturating_add(self.min_outgoing_lifetime)
            .saturating_add(self.reveal_timeout)
    }
}

impl Default for MediationConfig {
    /// No fee, a reveal timeout of 60 s, at least 10 s for the payee and a settlement window
    /// of 600 s.
    fn default() -> Self {
        Self {
            fees: FeePolicy::FREE,
            reveal_timeout: 60,
            min_outgoing_lifetime: 10,
            settlement_window: 600,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(flat: u64, ppm: u32) -> FeePolicy {
        FeePolicy {
            flat: U256::from(flat),
            proportional_ppm: ppm,
        }
    }

    #[test]
    fn proportional_part_rounds_up() {
        let p = policy(0, 1);
        assert_eq!(p.fee_for(U256::from(1u8)), Ok(U256::from(1u8)));
        assert_eq!(p.fee_for(U256::from(1_000_000u32)), Ok(U256::from(1u8)));
        assert_eq!(p.fee_for(U256::from(1_000_001u32)), Ok(U256::from(2u8)));
        assert_eq!(p.fee_for(U256::ZERO), Ok(U256::ZERO));
        // 2.5 % of 3 is 0.075 → 1.
        assert_eq!(
            policy(0, 25_000).fee_for(U256::from(3u8)),
            Ok(U256::from(1u8))
        );
        // Exact multiples are not rounded: 1 % of 500 is 5.
        assert_eq!(
            policy(0, 10_000).fee_for(U256::from(500u16)),
            Ok(U256::from(5u8))
        );
    }

    #[test]
    fn flat_is_added_and_free_is_free() {
        assert_eq!(
            policy(7, 10_000).fee_for(U256::from(500u16)),
            Ok(U256::from(12u8))
        );
        assert_eq!(FeePolicy::FREE.fee_for(U256::MAX), Ok(U256::ZERO));
        assert_eq!(
            policy(3, 0).gross_amount(U256::from(10u8)),
            Ok(U256::from(13u8))
        );
    }

    #[test]
    fn large_amounts_do_not_overflow_in_the_product() {
        // amount × ppm overflows 256 bits, the fee itself does not.
        let p = policy(0, 500_000);
        let fee = p.fee_for(U256::MAX).unwrap();
        assert_eq!(fee, U256::MAX / U256::from(2u8) + U256::from(1u8));
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(
            policy(0, 2_000_000).fee_for(U256::MAX),
            Err(FeeError::Overflow { amount: U256::MAX })
        );
        assert_eq!(
            policy(1, 0).fee_for(U256::MAX),
            Ok(U256::from(1u8)),
            "the fee alone fits"
        );
        assert!(policy(1, 0).gross_amount(U256::MAX).is_err());
        assert!(policy(u64::MAX, 0)
            .fee_for(U256::MAX - U256::from(u64::MAX) + U256::from(1u8))
            .is_ok());
        let max_flat = FeePolicy {
            flat: U256::MAX,
            proportional_ppm: 1,
        };
        assert!(max_flat.fee_for(U256::from(1u8)).is_err());
        assert_eq!(max_flat.fee_for(U256::ZERO), Ok(U256::MAX));
    }
}
