//! Refusals before anything is sent: a proof must be bound to this ledger's chain id and
//! token network, and every signature must recover to the participant who has to sign it.
//! The contract would revert on most of these too, but only after we paid for the gas and
//! with a less precise reason; these checks name the exact problem and cost nothing.

use channel_core::{Address, Domain, Signature, H256, U256};

use super::EthereumLedger;
use crate::error::EthError;

impl EthereumLedger {
    pub(super) fn check_domain(
        &self,
        step: &'static str,
        what: &'static str,
        domain: &Domain,
    ) -> Result<(), EthError> {
        if *domain != self.domain {
            return Err(EthError::WrongDomain {
                step,
                what,
                expected: Box::new(self.domain),
                got: Box::new(*domain),
            });
        }
        Ok(())
    }

    pub(super) fn check_channel(
        step: &'static str,
        what: &'static str,
        expected: U256,
        got: U256,
    ) -> Result<(), EthError> {
        if expected != got {
            return Err(EthError::InvalidInput {
                step,
                reason: format!("{what} is for channel {got}, not channel {expected}"),
            });
        }
        Ok(())
    }
}

/// Who signed `hash`.
pub(super) fn recover(
    step: &'static str,
    what: &'static str,
    hash: &H256,
    sig: &Signature,
) -> Result<Address, EthError> {
    sig.recover(hash).map_err(|e| EthError::BadSignature {
        step,
        what,
        reason: e.to_string(),
    })
}

/// `sig` over `hash` must come from `expected`.
pub(super) fn check_signer(
    step: &'static str,
    what: &'static str,
    hash: &H256,
    sig: &Signature,
    expected: Address,
) -> Result<(), EthError> {
    let got = recover(step, what, hash, sig)?;
    if got != expected {
        return Err(EthError::WrongSigner {
            step,
            what,
            expected,
            got,
        });
    }
    Ok(())
}
