//! Liquidity requests: `Channels.OperatorDeposit` into its checked arguments.

use channel_core::liquidity::DepositAmount;
use channel_core::primitives::U256;

use super::{u256, FieldError, Rule};
use crate::v1;
use crate::v1::operator_deposit_request::Amount;

/// `Channels.OperatorDeposit`: which channel, and the hub's new total or its increase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorDeposit {
    pub channel_id: U256,
    pub amount: DepositAmount,
}

impl TryFrom<v1::OperatorDepositRequest> for OperatorDeposit {
    type Error = FieldError;
    fn try_from(m: v1::OperatorDepositRequest) -> Result<Self, FieldError> {
        let channel_id = u256("channel_id", &m.channel_id)?;
        let amount = match m.amount {
            Some(Amount::TotalDeposit(b)) => DepositAmount::Total(u256("total_deposit", &b)?),
            Some(Amount::Additional(b)) => DepositAmount::Additional(u256("additional", &b)?),
            None => {
                return Err(FieldError::new(
                    "amount",
                    Rule::Invalid("is required: set total_deposit or additional".into()),
                ))
            }
        };
        Ok(OperatorDeposit { channel_id, amount })
    }
}

impl From<&OperatorDeposit> for v1::OperatorDepositRequest {
    fn from(d: &OperatorDeposit) -> Self {
        let amount = match d.amount {
            DepositAmount::Total(t) => Amount::TotalDeposit(super::u256_bytes(&t)),
            DepositAmount::Additional(a) => Amount::Additional(super::u256_bytes(&a)),
        };
        v1::OperatorDepositRequest {
            channel_id: super::u256_bytes(&d.channel_id),
            amount: Some(amount),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_round_trip_and_errors_name_the_field() {
        for amount in [
            DepositAmount::Total(U256::from(500u32)),
            DepositAmount::Additional(U256::from(7u8)),
        ] {
            let d = OperatorDeposit {
                channel_id: U256::from(3u8),
                amount,
            };
            let wire = v1::OperatorDepositRequest::from(&d);
            assert_eq!(OperatorDeposit::try_from(wire), Ok(d));
        }
        let missing = v1::OperatorDepositRequest {
            channel_id: vec![0; 32],
            amount: None,
        };
        let err = OperatorDeposit::try_from(missing).unwrap_err();
        assert_eq!(err.field, "amount");
        assert!(
            err.to_string().contains("total_deposit or additional"),
            "{err}"
        );
        let short = v1::OperatorDepositRequest {
            channel_id: vec![0; 32],
            amount: Some(Amount::Additional(vec![1; 31])),
        };
        assert_eq!(
            OperatorDeposit::try_from(short).unwrap_err().to_string(),
            "additional: must be 32 bytes (big-endian uint256), got 31"
        );
        let bad_id = v1::OperatorDepositRequest {
            channel_id: vec![],
            amount: Some(Amount::TotalDeposit(vec![0; 32])),
        };
        assert_eq!(
            OperatorDeposit::try_from(bad_id).unwrap_err().field,
            "channel_id"
        );
    }
}
