//! EIP-1559 fee choice: the tip is what the node suggests (`eth_maxPriorityFeePerGas`, or
//! [`FALLBACK_PRIORITY_FEE`] when the node lacks the method), and the fee cap is twice the
//! latest base fee plus the tip, which survives six full blocks of base-fee growth (12.5 %
//! each). Both are capped by the configured maximum fee per gas; a base fee already above
//! that maximum is refused, since such a transaction could not be mined.

use channel_core::U256;

/// Tip used when the node does not suggest one: 1 gwei.
pub const FALLBACK_PRIORITY_FEE: U256 = U256::from_limbs([1_000_000_000, 0, 0, 0]);

/// Default cap on `maxFeePerGas`: 1000 gwei.
pub const DEFAULT_MAX_FEE_PER_GAS: U256 = U256::from_limbs([1_000_000_000_000, 0, 0, 0]);

/// The two fee fields of an EIP-1559 transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fees {
    pub max_priority_fee_per_gas: U256,
    pub max_fee_per_gas: U256,
}

/// Fees for the next transaction, or `Err(base_fee)` when the base fee alone is above `cap`.
pub fn choose(base_fee: U256, suggested_tip: Option<U256>, cap: U256) -> Result<Fees, U256> {
    if base_fee > cap {
        return Err(base_fee);
    }
    let tip = suggested_tip.unwrap_or(FALLBACK_PRIORITY_FEE).min(cap);
    let max_fee = base_fee
        .saturating_mul(U256::from(2u8))
        .saturating_add(tip)
        .min(cap);
    Ok(Fees {
        max_priority_fee_per_gas: tip.min(max_fee),
        max_fee_per_gas: max_fee,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gwei(n: u64) -> U256 {
        U256::from(n) * U256::from(1_000_000_000u64)
    }

    #[test]
    fn twice_the_base_fee_plus_the_suggested_tip() {
        let f = choose(gwei(10), Some(gwei(2)), DEFAULT_MAX_FEE_PER_GAS).unwrap();
        assert_eq!(f.max_priority_fee_per_gas, gwei(2));
        assert_eq!(f.max_fee_per_gas, gwei(22));
    }

    #[test]
    fn a_node_without_a_suggestion_gets_the_fallback_tip() {
        assert_eq!(FALLBACK_PRIORITY_FEE, gwei(1));
        let f = choose(gwei(3), None, DEFAULT_MAX_FEE_PER_GAS).unwrap();
        assert_eq!(f.max_priority_fee_per_gas, gwei(1));
        assert_eq!(f.max_fee_per_gas, gwei(7));
    }

    #[test]
    fn both_fees_stay_under_the_cap() {
        assert_eq!(DEFAULT_MAX_FEE_PER_GAS, gwei(1000));
        let f = choose(gwei(40), Some(gwei(5)), gwei(50)).unwrap();
        assert_eq!(f.max_fee_per_gas, gwei(50));
        assert_eq!(f.max_priority_fee_per_gas, gwei(5));
        let greedy = choose(gwei(1), Some(gwei(500)), gwei(50)).unwrap();
        assert_eq!(greedy.max_priority_fee_per_gas, gwei(50));
        assert_eq!(greedy.max_fee_per_gas, gwei(50));
        // No overflow with absurd numbers from a node.
        let f = choose(U256::MAX, Some(U256::MAX), U256::MAX).unwrap();
        assert_eq!(f.max_fee_per_gas, U256::MAX);
    }

    #[test]
    fn a_base_fee_above_the_cap_is_refused() {
        assert_eq!(choose(gwei(51), Some(gwei(1)), gwei(50)), Err(gwei(51)));
    }
}
