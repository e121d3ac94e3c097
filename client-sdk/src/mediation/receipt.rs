//! The payer's proof of payment: the payee's signed request and the secret the payee revealed
//! only against a lock that paid it. Anyone holding it can check it with the payee's address
//! and the ledger's domain; no hub and no channel state are needed.

use channel_core::crypto::verify_signer;
use channel_core::mediation::SignedPaymentRequest;
use channel_core::primitives::{Address, U256};
use channel_core::{CryptoError, Domain, Secret};

/// A completed mediated payment, from the payer's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediatedReceipt {
    /// The payee's signed request that was paid.
    pub request: SignedPaymentRequest,
    /// The payee's secret: `sha256(secret) == request.secrethash`.
    pub secret: Secret,
    /// What the hub kept.
    pub fee: U256,
    /// What the payer locked and then released to the hub (`request.amount + fee`).
    pub lock_amount: U256,
    /// Nonce of the payer's unlock proof (acknowledged by the hub).
    pub unlock_nonce: u64,
}

/// Why a receipt does not prove a payment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("the request is for another ledger")]
    WrongDomain,
    #[error("the request is not signed by its payee {payee}: {source}")]
    BadSignature {
        payee: Address,
        #[source]
        source: CryptoError,
    },
    #[error("the secret does not match the request's secrethash")]
    WrongSecret,
}

impl MediatedReceipt {
    /// The payee who was paid.
    pub fn payee(&self) -> Address {
        self.request.request.payee
    }

    /// Checks, as a third party, that this receipt proves the payee was paid on the ledger
    /// `domain`: the request is for that ledger and signed by the payee it names, and the
    /// secret opens its secrethash. The request's own expiry does not matter here: it bounds
    /// when a payment could start, not how long its proof is valid.
    pub fn verify(&self, domain: &Domain) -> Result<(), ReceiptError> {
        let r = &self.request.request;
        if r.domain != *domain {
            return Err(ReceiptError::WrongDomain);
        }
        verify_signer(&r.signing_hash(), &self.request.signature, r.payee).map_err(|source| {
            ReceiptError::BadSignature {
                payee: r.payee,
                source,
            }
        })?;
        if !self.request.proves_payment(&self.secret) {
            return Err(ReceiptError::WrongSecret);
        }
        Ok(())
    }
}
