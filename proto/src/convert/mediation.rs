//! Conversions of the mediation messages (`mediation.proto`, and the mediated kinds of
//! `HubPayment`): locks, payment requests, the payer's and payee's requests, and
//! [`HubMessage`], the domain view of one proof the hub pushes on `Payments.ReceivePayments`.

use channel_core::mediation::{PaymentRequest, SignedPaymentRequest};
use channel_core::primitives::{Address, H256, U256};
use channel_core::{HashTimeLock, Secret, SignedBalanceProof};

use super::{
    address, address_bytes, h256, h256_bytes, optional_h256, required, signature, u256, u256_bytes,
};
use super::{FieldError, Rule};
use crate::v1;

impl TryFrom<v1::Lock> for HashTimeLock {
    type Error = FieldError;
    fn try_from(m: v1::Lock) -> Result<Self, FieldError> {
        Ok(HashTimeLock {
            expiration: m.expiration,
            amount: u256("amount", &m.amount)?,
            secrethash: h256("secrethash", &m.secrethash)?,
        })
    }
}

impl From<&HashTimeLock> for v1::Lock {
    fn from(l: &HashTimeLock) -> Self {
        v1::Lock {
            expiration: l.expiration,
            amount: u256_bytes(&l.amount),
            secrethash: h256_bytes(&l.secrethash),
        }
    }
}

impl TryFrom<v1::PaymentRequest> for PaymentRequest {
    type Error = FieldError;
    fn try_from(m: v1::PaymentRequest) -> Result<Self, FieldError> {
        Ok(PaymentRequest {
            domain: required("domain", m.domain)?,
            payee: address("payee", &m.payee)?,
            amount: u256("amount", &m.amount)?,
            secrethash: h256("secrethash", &m.secrethash)?,
            payment_id: m.payment_id,
            expires_at: m.expires_at,
            memo_hash: optional_h256("memo_hash", &m.memo_hash)?,
        })
    }
}

impl From<&PaymentRequest> for v1::PaymentRequest {
    fn from(r: &PaymentRequest) -> Self {
        v1::PaymentRequest {
            domain: Some((&r.domain).into()),
            payee: address_bytes(&r.payee),
            amount: u256_bytes(&r.amount),
            secrethash: h256_bytes(&r.secrethash),
            payment_id: r.payment_id,
            expires_at: r.expires_at,
            memo_hash: if r.memo_hash == H256::ZERO {
                Vec::new()
            } else {
                h256_bytes(&r.memo_hash)
            },
        }
    }
}

impl TryFrom<v1::SignedPaymentRequest> for SignedPaymentRequest {
    type Error = FieldError;
    fn try_from(m: v1::SignedPaymentRequest) -> Result<Self, FieldError> {
        Ok(SignedPaymentRequest {
            request: required("request", m.request)?,
            signature: signature("signature", &m.signature)?,
        })
    }
}

impl From<&SignedPaymentRequest> for v1::SignedPaymentRequest {
    fn from(r: &SignedPaymentRequest) -> Self {
        v1::SignedPaymentRequest {
            request: Some((&r.request).into()),
            signature: r.signature.as_bytes().to_vec(),
        }
    }
}

fn secret(field: &str, bytes: &[u8]) -> Result<Secret, FieldError> {
    h256(field, bytes).map(Secret)
}

/// `Mediation.Quote`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    pub payee: Address,
    pub amount: U256,
}

impl TryFrom<v1::QuoteRequest> for Quote {
    type Error = FieldError;
    fn try_from(m: v1::QuoteRequest) -> Result<Self, FieldError> {
        Ok(Quote {
            payee: address("payee", &m.payee)?,
            amount: u256("amount", &m.amount)?,
        })
    }
}

/// What a proof of `Payments.Pay` does (`PaymentMessage.kind`).
// The locked transfer carries the payment request inline; values are short-lived and moved
// rarely, so boxing would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentKind {
    /// A direct payment to the hub of the message's `amount`.
    Direct,
    /// A new lock toward the hub, paying `payment_request` through it.
    LockedTransfer {
        lock: HashTimeLock,
        payment_request: SignedPaymentRequest,
    },
    /// The payer releases its lock with `secret`.
    Unlock { secret: Secret },
    /// The payer takes back its expired lock.
    LockExpired { secrethash: H256 },
}

impl TryFrom<Option<v1::payment_message::Kind>> for PaymentKind {
    type Error = FieldError;
    fn try_from(m: Option<v1::payment_message::Kind>) -> Result<Self, FieldError> {
        use v1::payment_message::Kind;
        Ok(match m {
            None => PaymentKind::Direct,
            Some(Kind::LockedTransfer(t)) => {
                let lock: HashTimeLock = required("locked_transfer.lock", t.lock)?;
                let payment_request: SignedPaymentRequest =
                    required("locked_transfer.payment_request", t.payment_request)?;
                if payment_request.request.secrethash != lock.secrethash {
                    return Err(FieldError::new(
                        "locked_transfer.payment_request.request.secrethash",
                        Rule::Invalid("must equal locked_transfer.lock.secrethash".into()),
                    ));
                }
                PaymentKind::LockedTransfer {
                    lock,
                    payment_request,
                }
            }
            Some(Kind::Unlock(u)) => PaymentKind::Unlock {
                secret: secret("unlock.secret", &u.secret)?,
            },
            Some(Kind::LockExpired(e)) => PaymentKind::LockExpired {
                secrethash: h256("lock_expired.secrethash", &e.secrethash)?,
            },
        })
    }
}

impl From<&PaymentKind> for Option<v1::payment_message::Kind> {
    fn from(k: &PaymentKind) -> Self {
        use v1::payment_message::Kind;
        match k {
            PaymentKind::Direct => None,
            PaymentKind::LockedTransfer {
                lock,
                payment_request,
            } => Some(Kind::LockedTransfer(v1::MediatedLock {
                lock: Some(lock.into()),
                payment_request: Some(payment_request.into()),
            })),
            PaymentKind::Unlock { secret } => Some(Kind::Unlock(v1::PayerUnlock {
                secret: h256_bytes(&secret.0),
            })),
            PaymentKind::LockExpired { secrethash } => {
                Some(Kind::LockExpired(v1::PayerLockExpired {
                    secrethash: h256_bytes(secrethash),
                }))
            }
        }
    }
}

/// `Mediation.PayerEvents`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayerEvents {
    pub channel_id: U256,
}

impl TryFrom<v1::PayerEventsRequest> for PayerEvents {
    type Error = FieldError;
    fn try_from(m: v1::PayerEventsRequest) -> Result<Self, FieldError> {
        Ok(PayerEvents {
            channel_id: u256("channel_id", &m.channel_id)?,
        })
    }
}

/// `Mediation.RevealSecret`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevealSecret {
    pub channel_id: U256,
    pub secret: Secret,
}

impl TryFrom<v1::RevealSecretRequest> for RevealSecret {
    type Error = FieldError;
    fn try_from(m: v1::RevealSecretRequest) -> Result<Self, FieldError> {
        Ok(RevealSecret {
            channel_id: u256("channel_id", &m.channel_id)?,
            secret: secret("secret", &m.secret)?,
        })
    }
}

/// What one proof the hub pushes toward a device does.
#[allow(clippy::large_enum_variant)] // as PaymentKind
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubMessageKind {
    /// A direct payment of the message's `amount`.
    Payment,
    /// A lock toward the device for a payment from `payer`.
    LockedTransfer {
        lock: HashTimeLock,
        payer: Address,
        payment_request: SignedPaymentRequest,
    },
    /// The hub released its lock with `secret`.
    Unlock { secret: Secret },
    /// The hub took back its expired lock.
    LockExpired { secrethash: H256 },
}

/// One `HubPayment` of `Payments.ReceivePayments`, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubMessage {
    pub channel_id: U256,
    pub balance_proof: SignedBalanceProof,
    /// The payment's amount, or the lock's.
    pub amount: U256,
    pub kind: HubMessageKind,
}

impl TryFrom<v1::HubPayment> for HubMessage {
    type Error = FieldError;
    fn try_from(m: v1::HubPayment) -> Result<Self, FieldError> {
        use v1::hub_payment::Kind;
        let kind = match m.kind {
            None => HubMessageKind::Payment,
            Some(Kind::LockedTransfer(t)) => HubMessageKind::LockedTransfer {
                lock: required("locked_transfer.lock", t.lock)?,
                payer: address("locked_transfer.payer", &t.payer)?,
                payment_request: required("locked_transfer.payment_request", t.payment_request)?,
            },
            Some(Kind::Unlock(u)) => HubMessageKind::Unlock {
                secret: secret("unlock.secret", &u.secret)?,
            },
            Some(Kind::LockExpired(e)) => HubMessageKind::LockExpired {
                secrethash: h256("lock_expired.secrethash", &e.secrethash)?,
            },
        };
        Ok(HubMessage {
            channel_id: u256("channel_id", &m.channel_id)?,
            balance_proof: required("balance_proof", m.balance_proof)?,
            amount: u256("amount", &m.amount)?,
            kind,
        })
    }
}

impl From<&HubMessage> for v1::HubPayment {
    fn from(m: &HubMessage) -> Self {
        use v1::hub_payment::Kind;
        let kind = match &m.kind {
            HubMessageKind::Payment => None,
            HubMessageKind::LockedTransfer {
                lock,
                payer,
                payment_request,
            } => Some(Kind::LockedTransfer(v1::IncomingTransfer {
                lock: Some(lock.into()),
                payer: address_bytes(payer),
                payment_request: Some(payment_request.into()),
            })),
            HubMessageKind::Unlock { secret } => Some(Kind::Unlock(v1::HubUnlock {
                secret: h256_bytes(&secret.0),
            })),
            HubMessageKind::LockExpired { secrethash } => {
                Some(Kind::LockExpired(v1::HubLockExpired {
                    secrethash: h256_bytes(secrethash),
                }))
            }
        };
        v1::HubPayment {
            channel_id: u256_bytes(&m.channel_id),
            balance_proof: Some((&m.balance_proof).into()),
            amount: u256_bytes(&m.amount),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use channel_core::crypto::LocalSigner;
    use channel_core::proofs::{BalanceData, BalanceProof, Domain};
    use channel_core::Signer;

    fn signer() -> LocalSigner {
        LocalSigner::from_bytes(&[7u8; 32]).unwrap()
    }

    fn request(payee: &LocalSigner) -> SignedPaymentRequest {
        PaymentRequest {
            domain: Domain {
                chain_id: U256::from(1u64),
                token_network_address: Address([9; 20]),
            },
            payee: payee.address(),
            amount: U256::from(100u64),
            secrethash: Secret(H256([5; 32])).hash(),
            payment_id: 42,
            expires_at: 1_000,
            memo_hash: H256::ZERO,
        }
        .sign(payee)
        .unwrap()
    }

    fn proof(s: &LocalSigner) -> SignedBalanceProof {
        BalanceProof {
            domain: Domain {
                chain_id: U256::from(1u64),
                token_network_address: Address([9; 20]),
            },
            channel_identifier: U256::from(3u64),
            nonce: 1,
            balance: BalanceData::default(),
            additional_hash: H256::ZERO,
        }
        .sign(s)
        .unwrap()
    }

    #[test]
    fn hub_messages_round_trip_every_kind() {
        let s = signer();
        let req = request(&s);
        let lock = HashTimeLock {
            expiration: 77,
            amount: U256::from(100u64),
            secrethash: req.request.secrethash,
        };
        for kind in [
            HubMessageKind::Payment,
            HubMessageKind::LockedTransfer {
                lock,
                payer: Address([1; 20]),
                payment_request: req,
            },
            HubMessageKind::Unlock {
                secret: Secret(H256([5; 32])),
            },
            HubMessageKind::LockExpired {
                secrethash: lock.secrethash,
            },
        ] {
            let m = HubMessage {
                channel_id: U256::from(3u64),
                balance_proof: proof(&s),
                amount: U256::from(100u64),
                kind,
            };
            let wire = v1::HubPayment::from(&m);
            assert_eq!(HubMessage::try_from(wire).unwrap(), m);
        }
    }

    #[test]
    fn payment_kinds_round_trip_and_name_the_bad_field() {
        let s = signer();
        let req = request(&s);
        let lock = HashTimeLock {
            expiration: 77,
            amount: U256::from(100u64),
            secrethash: req.request.secrethash,
        };
        for kind in [
            PaymentKind::Direct,
            PaymentKind::LockedTransfer {
                lock,
                payment_request: req,
            },
            PaymentKind::Unlock {
                secret: Secret(H256([5; 32])),
            },
            PaymentKind::LockExpired {
                secrethash: lock.secrethash,
            },
        ] {
            let wire: Option<v1::payment_message::Kind> = (&kind).into();
            assert_eq!(PaymentKind::try_from(wire).unwrap(), kind);
        }
        let other_hash = v1::Lock::from(&HashTimeLock {
            secrethash: H256([6; 32]),
            ..lock
        });
        let wire = Some(v1::payment_message::Kind::LockedTransfer(
            v1::MediatedLock {
                lock: Some(other_hash),
                payment_request: Some((&req).into()),
            },
        ));
        let err = PaymentKind::try_from(wire).unwrap_err();
        assert_eq!(
            err.field,
            "locked_transfer.payment_request.request.secrethash"
        );
        let mut short = v1::Lock::from(&lock);
        short.amount = vec![1; 31];
        let wire = Some(v1::payment_message::Kind::LockedTransfer(
            v1::MediatedLock {
                lock: Some(short),
                payment_request: Some((&req).into()),
            },
        ));
        let err = PaymentKind::try_from(wire).unwrap_err();
        assert_eq!(err.field, "locked_transfer.lock.amount");
        assert!(err.to_string().contains("must be 32 bytes"), "{err}");
    }
}
