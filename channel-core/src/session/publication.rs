//! What the metering side publishes to its payer after each reading: the signed reading and,
//! when it shows units nobody has billed yet, the bill for them. A relay (the hub) checks a
//! publication against the session's offer before passing it on, so a payer only ever sees
//! readings signed by the offer's meter key and bills signed by its payee for that reading.

use serde::{Deserialize, Serialize};

use crate::mediation::SignedPaymentRequest;

use super::error::SessionError;
use super::offer::SessionOffer;
use super::reading::SignedMeterReading;

/// A reading and its bill, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub reading: SignedMeterReading,
    pub bill: Option<SignedPaymentRequest>,
}

impl Publication {
    /// Checks the publication against `offer` at ledger time `now`: the reading is for this
    /// session, in its unit, signed by its meter key; the bill is signed by its payee, on its
    /// ledger, not expired, and names this reading. Cheap checks first.
    pub fn verify(&self, offer: &SessionOffer, now: u64) -> Result<(), SessionError> {
        let r = &self.reading.reading;
        if r.session_id != offer.session_id {
            return Err(SessionError::WrongSession {
                expected: offer.session_id,
                got: r.session_id,
            });
        }
        if r.measurand != offer.unit {
            return Err(SessionError::WrongUnit {
                expected: offer.unit,
                got: r.measurand,
            });
        }
        let Some(bill) = &self.bill else {
            return self.reading.verify(offer.meter_key);
        };
        if bill.request.payee != offer.payee {
            return Err(SessionError::NotSigner {
                expected: offer.payee,
                signer: bill.request.payee,
            });
        }
        if bill.request.memo_hash != r.hash() {
            return Err(SessionError::BillForUnknownReading {
                memo_hash: bill.request.memo_hash,
            });
        }
        bill.verify(&offer.domain, now)
            .map_err(SessionError::BadBill)?;
        self.reading.verify(offer.meter_key)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::crypto::Signer as _;
    use crate::locks::Secret;
    use crate::mediation::PaymentRequest;
    use crate::primitives::{H256, U256};

    fn bill(memo_hash: H256) -> SignedPaymentRequest {
        PaymentRequest {
            domain: offer().domain,
            payee: payee_key().address(),
            amount: U256::from(30u8),
            secrethash: Secret(H256([1; 32])).hash(),
            payment_id: 1,
            expires_at: 2_000,
            memo_hash,
        }
        .sign(&payee_key())
        .unwrap()
    }

    #[test]
    fn accepts_a_reading_with_its_bill_and_refuses_each_mismatch() {
        let r = reading(1, 1_010, 1_010);
        let good = Publication {
            reading: r,
            bill: Some(bill(r.reading.hash())),
        };
        assert_eq!(good.verify(&offer(), 1_010), Ok(()));
        assert_eq!(
            Publication {
                reading: r,
                bill: None
            }
            .verify(&offer(), 1_010),
            Ok(())
        );
        let other = Publication {
            bill: Some(bill(H256([3; 32]))),
            ..good
        };
        assert_eq!(
            other.verify(&offer(), 1_010),
            Err(SessionError::BillForUnknownReading {
                memo_hash: H256([3; 32])
            })
        );
        let by_payee = Publication {
            reading: raw(1, 1_010, 1_010).sign(&payee_key()).unwrap(),
            bill: None,
        };
        assert!(matches!(
            by_payee.verify(&offer(), 1_010),
            Err(SessionError::BadReadingSignature(_))
        ));
        assert!(matches!(
            good.verify(&offer(), 2_000),
            Err(SessionError::BadBill(_))
        ));
        let mut foreign = raw(1, 1_010, 1_010);
        foreign.session_id = H256([9; 32]);
        let foreign = Publication {
            reading: foreign.sign(&meter_key()).unwrap(),
            bill: None,
        };
        assert!(matches!(
            foreign.verify(&offer(), 1_010),
            Err(SessionError::WrongSession { .. })
        ));
    }
}
