//! The payee's signed session offer: what it meters, at what price, how far it delivers ahead
//! of payment, how fast its meter can physically rise, and which key signs its readings.
//! Packed with a domain tag and the ledger [`Domain`], EIP-191 signed like every Voltlane
//! message.

use serde::{Deserialize, Serialize};

use crate::crypto::{eip191_hash, verify_signer, Signature, Signer};
use crate::primitives::{u256_dec, u256_to_be, Address, H256, U256};
use crate::proofs::Domain;

use super::error::SessionError;

/// Domain separator at the start of every packed offer.
pub const SESSION_OFFER_TAG: &[u8; 25] = b"voltlane.session-offer.v1";

/// Bytes of a packed offer: tag, token network, chain id, session id, payee, meter key, unit,
/// price, credit window, max units (flag + value), max units per hour, expiry.
pub const SESSION_OFFER_LEN: usize = 25 + 20 + 32 + 32 + 20 + 20 + 1 + 32 + 8 + 9 + 8 + 8;

/// What one metered unit is. Also the OCPP measurand of a reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MeterUnit {
    /// One Wh of energy (OCPP measurand `Energy.Active.Import.Register`, unit `Wh`).
    WattHour,
    /// One second of access (a lock held open).
    SecondOfAccess,
    /// One published reading (a data feed sold per reading).
    Reading,
}

impl MeterUnit {
    /// The byte this unit packs as.
    pub fn code(self) -> u8 {
        match self {
            MeterUnit::WattHour => 1,
            MeterUnit::SecondOfAccess => 2,
            MeterUnit::Reading => 3,
        }
    }
}

/// Packs an optional u64 as a presence byte and the value (zero when absent), so that
/// `None` and `Some(0)` sign differently.
pub(crate) fn pack_opt_u64(buf: &mut Vec<u8>, v: Option<u64>) {
    buf.push(u8::from(v.is_some()));
    buf.extend_from_slice(&v.unwrap_or(0).to_be_bytes());
}

/// The payee's terms for one session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionOffer {
    pub domain: Domain,
    pub session_id: H256,
    /// Who is paid (and signs the offer).
    pub payee: Address,
    /// The key that signs meter readings; may be the payee itself.
    pub meter_key: Address,
    pub unit: MeterUnit,
    /// Token units per metered unit: per Wh when `unit` is `WattHour`, per second when
    /// `SecondOfAccess`, per reading when `Reading`.
    #[serde(with = "u256_dec")]
    pub price_per_unit: U256,
    /// How many units the payee delivers ahead of payment.
    pub credit_window_units: u64,
    /// The most units the payee will deliver in this session, if capped.
    pub max_units: Option<u64>,
    /// The physical ceiling on how fast the register can rise, in units per hour (for energy:
    /// the maximum power in W). A reading rising faster is refused as impossible.
    pub max_units_per_hour: u64,
    /// Time (unix seconds) after which the offer can no longer be accepted.
    pub expires_at: u64,
}

impl SessionOffer {
    /// `tag || token_network (20) || chain_id (32) || session_id (32) || payee (20) ||
    /// meter_key (20) || unit (1) || price_per_unit (32) || credit_window_units (8) ||
    /// max_units (1 + 8) || max_units_per_hour (8) || expires_at (8)`, integers big-endian.
    pub fn pack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(SESSION_OFFER_LEN);
        buf.extend_from_slice(SESSION_OFFER_TAG);
        buf.extend_from_slice(self.domain.token_network_address.as_bytes());
        buf.extend_from_slice(&u256_to_be(&self.domain.chain_id));
        buf.extend_from_slice(self.session_id.as_bytes());
        buf.extend_from_slice(self.payee.as_bytes());
        buf.extend_from_slice(self.meter_key.as_bytes());
        buf.push(self.unit.code());
        buf.extend_from_slice(&u256_to_be(&self.price_per_unit));
        buf.extend_from_slice(&self.credit_window_units.to_be_bytes());
        pack_opt_u64(&mut buf, self.max_units);
        buf.extend_from_slice(&self.max_units_per_hour.to_be_bytes());
        buf.extend_from_slice(&self.expires_at.to_be_bytes());
        buf
    }

    /// The EIP-191 digest the payee signs.
    pub fn signing_hash(&self) -> H256 {
        eip191_hash(&self.pack())
    }

    /// Signs as the payee; refuses another signer and an offer no reading could satisfy.
    pub fn sign(&self, signer: &dyn Signer) -> Result<SignedSessionOffer, SessionError> {
        if signer.address() != self.payee {
            return Err(SessionError::NotSigner {
                expected: self.payee,
                signer: signer.address(),
            });
        }
        if self.max_units_per_hour == 0 {
            return Err(SessionError::ZeroRate);
        }
        let signature = signer
            .sign_hash(&self.signing_hash())
            .map_err(SessionError::Signing)?;
        Ok(SignedSessionOffer {
            offer: *self,
            signature,
        })
    }
}

/// An offer with the payee's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedSessionOffer {
    pub offer: SessionOffer,
    pub signature: Signature,
}

impl SignedSessionOffer {
    /// Checks, as the payer before accepting: same ledger, a usable rate, not expired at
    /// `now`, and signed by the payee it names. Cheap checks first.
    pub fn verify(&self, domain: &Domain, now: u64) -> Result<(), SessionError> {
        let o = &self.offer;
        if now >= o.expires_at {
            return Err(SessionError::OfferExpired {
                expires_at: o.expires_at,
                now,
            });
        }
        self.verify_terms(domain)
    }

    /// As [`Self::verify`] without the expiry: for a session already accepted (the expiry
    /// bounds acceptance, not the session), e.g. one resumed after a restart.
    pub fn verify_terms(&self, domain: &Domain) -> Result<(), SessionError> {
        let o = &self.offer;
        if o.domain != *domain {
            return Err(SessionError::WrongDomain {
                got_chain: o.domain.chain_id,
                got_network: o.domain.token_network_address,
            });
        }
        if o.max_units_per_hour == 0 {
            return Err(SessionError::ZeroRate);
        }
        verify_signer(&o.signing_hash(), &self.signature, o.payee)
            .map_err(SessionError::BadOfferSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{test_domain, test_signer};

    pub(crate) fn offer() -> SessionOffer {
        SessionOffer {
            domain: test_domain(),
            session_id: H256([7; 32]),
            payee: test_signer(3).address(),
            meter_key: test_signer(4).address(),
            unit: MeterUnit::WattHour,
            price_per_unit: U256::from(3u8),
            credit_window_units: 500,
            max_units: Some(20_000),
            max_units_per_hour: 11_000,
            expires_at: 5_000,
        }
    }

    #[test]
    fn packs_every_field_at_its_place() {
        let o = offer();
        let p = o.pack();
        assert_eq!(p.len(), SESSION_OFFER_LEN);
        assert_eq!(&p[..25], SESSION_OFFER_TAG);
        assert_eq!(&p[25..45], o.domain.token_network_address.as_bytes());
        assert_eq!(&p[77..109], o.session_id.as_bytes());
        assert_eq!(&p[109..129], o.payee.as_bytes());
        assert_eq!(&p[129..149], o.meter_key.as_bytes());
        assert_eq!(p[149], 1);
        assert_eq!(p[181], 3);
        assert_eq!(&p[182..190], &500u64.to_be_bytes());
        assert_eq!(p[190], 1);
        assert_eq!(&p[191..199], &20_000u64.to_be_bytes());
        assert_eq!(&p[199..207], &11_000u64.to_be_bytes());
        assert_eq!(&p[207..], &5_000u64.to_be_bytes());
        let mut uncapped = o;
        uncapped.max_units = None;
        let mut zero_cap = o;
        zero_cap.max_units = Some(0);
        assert_ne!(uncapped.pack(), zero_cap.pack());
    }

    #[test]
    fn signed_offer_verifies() {
        let signed = offer().sign(&test_signer(3)).unwrap();
        assert_eq!(signed.verify(&test_domain(), 4_999), Ok(()));
    }

    #[test]
    fn refuses_wrong_signer_tampering_expiry_and_other_ledgers() {
        assert_eq!(
            offer().sign(&test_signer(4)),
            Err(SessionError::NotSigner {
                expected: test_signer(3).address(),
                signer: test_signer(4).address()
            })
        );
        let signed = offer().sign(&test_signer(3)).unwrap();
        let mut cheaper = signed;
        cheaper.offer.price_per_unit = U256::from(2u8);
        assert!(matches!(
            cheaper.verify(&test_domain(), 1_000),
            Err(SessionError::BadOfferSignature(_))
        ));
        let mut forged = signed;
        forged.signature = offer().sign(&test_signer(3)).unwrap().signature;
        forged.offer.payee = test_signer(4).address();
        assert!(matches!(
            forged.verify(&test_domain(), 1_000),
            Err(SessionError::BadOfferSignature(_))
        ));
        assert_eq!(
            signed.verify(&test_domain(), 5_000),
            Err(SessionError::OfferExpired {
                expires_at: 5_000,
                now: 5_000
            })
        );
        let mut other = test_domain();
        other.chain_id = U256::from(1u8);
        assert!(matches!(
            signed.verify(&other, 1_000),
            Err(SessionError::WrongDomain { .. })
        ));
        let mut still = offer();
        still.max_units_per_hour = 0;
        assert_eq!(still.sign(&test_signer(3)), Err(SessionError::ZeroRate));
    }

    #[test]
    fn serde_round_trip() {
        let signed = offer().sign(&test_signer(3)).unwrap();
        let json = serde_json::to_string(&signed).unwrap();
        let back: SignedSessionOffer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signed);
        assert_eq!(back.verify(&test_domain(), 1_000), Ok(()));
    }
}
