//! The payee's signed payment request (an invoice): it binds the payee, the amount it will
//! accept, the hash of a secret only the payee knows, a payment id and an expiry, on one
//! ledger. Packed and EIP-191 signed like every other Voltlane message.
//!
//! Together with the secret (which the payee reveals only once it holds a lock for the
//! amount), a [`SignedPaymentRequest`] is the payer's proof that the payee was paid:
//! [`SignedPaymentRequest::proves_payment`].

use serde::{Deserialize, Serialize};

use crate::crypto::{eip191_hash, verify_signer, CryptoError, Signature, Signer};
use crate::locks::Secret;
use crate::primitives::{u256_dec, u256_to_be, Address, H256, U256};
use crate::proofs::Domain;

/// Domain separator at the start of every packed request, so no other signed message of the
/// protocol can be read as one.
pub const PAYMENT_REQUEST_TAG: &[u8; 27] = b"voltlane.payment-request.v1";

/// Bytes of a packed request: tag, token network, chain id, payee, amount, secrethash,
/// payment id, expiry, memo hash.
pub const PAYMENT_REQUEST_LEN: usize = 27 + 20 + 32 + 20 + 32 + 32 + 8 + 8 + 32;

/// Why a payment request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRequestError {
    #[error("payment request signature rejected: {0}")]
    BadSignature(#[from] CryptoError),
    #[error(
        "payment request is for another ledger (chain {got_chain}, token network {got_network})"
    )]
    WrongDomain {
        got_chain: U256,
        got_network: Address,
    },
    #[error("payment request expired: expires_at {expires_at} is not after ledger time {now}")]
    Expired { expires_at: u64, now: u64 },
    #[error("payment request amount must be greater than zero")]
    ZeroAmount,
    #[error("signer {signer} is not the payee {payee} of the request")]
    NotPayee { payee: Address, signer: Address },
}

/// What the payee asks to be paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub domain: Domain,
    pub payee: Address,
    /// What the payee must receive (the payer adds the hub's fee on top).
    #[serde(with = "u256_dec")]
    pub amount: U256,
    /// sha256 of the payee's secret.
    pub secrethash: H256,
    pub payment_id: u64,
    /// Ledger time after which the payee no longer honours the request.
    pub expires_at: u64,
    /// What is paid for, as a hash (zero: nothing named). A metered session puts the hash of
    /// the meter reading the request bills here, and the payer's balance proofs for the
    /// payment carry it as their `additional_hash`, so the request, the secret and the proofs
    /// all commit to the same signed reading.
    pub memo_hash: H256,
}

impl PaymentRequest {
    /// `tag || token_network (20) || chain_id (32) || payee (20) || amount (32) ||
    /// secrethash (32) || payment_id (8, big-endian) || expires_at (8, big-endian) ||
    /// memo_hash (32)`.
    pub fn pack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(PAYMENT_REQUEST_LEN);
        buf.extend_from_slice(PAYMENT_REQUEST_TAG);
        buf.extend_from_slice(self.domain.token_network_address.as_bytes());
        buf.extend_from_slice(&u256_to_be(&self.domain.chain_id));
        buf.extend_from_slice(self.payee.as_bytes());
        buf.extend_from_slice(&u256_to_be(&self.amount));
        buf.extend_from_slice(self.secrethash.as_bytes());
        buf.extend_from_slice(&self.payment_id.to_be_bytes());
        buf.extend_from_slice(&self.expires_at.to_be_bytes());
        buf.extend_from_slice(self.memo_hash.as_bytes());
        buf
    }

    /// The EIP-191 digest the payee signs.
    pub fn signing_hash(&self) -> H256 {
        eip191_hash(&self.pack())
    }

    /// Signs as the payee; refuses a signer that is not the payee.
    pub fn sign(&self, signer: &dyn Signer) -> Result<SignedPaymentRequest, PaymentRequestError> {
        if signer.address() != self.payee {
            return Err(PaymentRequestError::NotPayee {
                payee: self.payee,
                signer: signer.address(),
            });
        }
        if self.amount.is_zero() {
            return Err(PaymentRequestError::ZeroAmount);
        }
        Ok(SignedPaymentRequest {
            request: *self,
            signature: signer.sign_hash(&self.signing_hash())?,
        })
    }
}

/// A payment request with the payee's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPaymentRequest {
    pub request: PaymentRequest,
    pub signature: Signature,
}

impl SignedPaymentRequest {
    /// Checks, as the payer before paying: same ledger, a positive amount, not expired at
    /// ledger time `now`, and signed by the payee it names. Cheap checks first.
    pub fn verify(&self, domain: &Domain, now: u64) -> Result<(), PaymentRequestError> {
        let r = &self.request;
        if r.domain != *domain {
            return Err(PaymentRequestError::WrongDomain {
                got_chain: r.domain.chain_id,
                got_network: r.domain.token_network_address,
            });
        }
        if r.amount.is_zero() {
            return Err(PaymentRequestError::ZeroAmount);
        }
        if now >= r.expires_at {
            return Err(PaymentRequestError::Expired {
                expires_at: r.expires_at,
                now,
            });
        }
        verify_signer(&r.signing_hash(), &self.signature, r.payee)?;
        Ok(())
    }

    /// Whether `secret` together with this (verified) request proves that the payee was
    /// paid: the payee only reveals the secret against a lock for the amount.
    pub fn proves_payment(&self, secret: &Secret) -> bool {
        secret.hash() == self.request.secrethash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{test_domain, test_signer};

    fn request() -> PaymentRequest {
        PaymentRequest {
            domain: test_domain(),
            payee: test_signer(3).address(),
            amount: U256::from(25u8),
            secrethash: Secret(H256([9; 32])).hash(),
            payment_id: 77,
            expires_at: 2_000,
            memo_hash: H256([5; 32]),
        }
    }

    #[test]
    fn packs_every_field_at_its_place() {
        let r = request();
        let packed = r.pack();
        assert_eq!(packed.len(), PAYMENT_REQUEST_LEN);
        assert_eq!(&packed[..27], PAYMENT_REQUEST_TAG);
        assert_eq!(&packed[27..47], r.domain.token_network_address.as_bytes());
        assert_eq!(&packed[79..99], r.payee.as_bytes());
        assert_eq!(packed[130], 25);
        assert_eq!(&packed[131..163], r.secrethash.as_bytes());
        assert_eq!(&packed[163..171], &77u64.to_be_bytes());
        assert_eq!(&packed[171..179], &2_000u64.to_be_bytes());
        assert_eq!(&packed[179..], &[5; 32]);
    }

    #[test]
    fn signed_request_verifies_and_proves_payment() {
        let signed = request().sign(&test_signer(3)).unwrap();
        assert_eq!(signed.verify(&test_domain(), 1_999), Ok(()));
        assert!(signed.proves_payment(&Secret(H256([9; 32]))));
        assert!(!signed.proves_payment(&Secret(H256([8; 32]))));
    }

    #[test]
    fn refuses_tampering_expiry_other_ledgers_and_other_signers() {
        let signed = request().sign(&test_signer(3)).unwrap();
        let mut more = signed;
        more.request.amount = U256::from(26u8);
        assert!(matches!(
            more.verify(&test_domain(), 1_000),
            Err(PaymentRequestError::BadSignature(_))
        ));
        let mut other_memo = signed;
        other_memo.request.memo_hash = H256([6; 32]);
        assert!(matches!(
            other_memo.verify(&test_domain(), 1_000),
            Err(PaymentRequestError::BadSignature(_))
        ));
        assert_eq!(
            signed.verify(&test_domain(), 2_000),
            Err(PaymentRequestError::Expired {
                expires_at: 2_000,
                now: 2_000
            })
        );
        let mut other = test_domain();
        other.chain_id = U256::from(1u8);
        assert!(matches!(
            signed.verify(&other, 1_000),
            Err(PaymentRequestError::WrongDomain { .. })
        ));
        assert!(matches!(
            request().sign(&test_signer(4)),
            Err(PaymentRequestError::NotPayee { .. })
        ));
        let mut zero = request();
        zero.amount = U256::ZERO;
        assert_eq!(
            zero.sign(&test_signer(3)),
            Err(PaymentRequestError::ZeroAmount)
        );
    }
}
