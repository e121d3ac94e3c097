//! Conversions of metered-session messages: offers, meter readings, publications (reading +
//! bill), receipts and receipt signatures, and the request messages of `voltlane.v1.Sessions`.

use channel_core::session::{
    MeterReading, MeterUnit, Publication, SessionOffer, SessionReceipt, SignedMeterReading,
    SignedSessionOffer, StopReason,
};
use channel_core::{Address, Signature, H256};

use super::{
    address, address_bytes, h256, h256_bytes, optional_address, required, signature,
    signature_bytes, u256, u256_bytes, FieldError, Rule,
};
use crate::v1;

/// Reads a `MeterUnit` enum field.
pub fn meter_unit(field: &str, value: i32) -> Result<MeterUnit, FieldError> {
    match v1::MeterUnit::try_from(value) {
        Ok(v1::MeterUnit::WattHour) => Ok(MeterUnit::WattHour),
        Ok(v1::MeterUnit::SecondOfAccess) => Ok(MeterUnit::SecondOfAccess),
        Ok(v1::MeterUnit::Reading) => Ok(MeterUnit::Reading),
        Ok(v1::MeterUnit::Unspecified) => Err(FieldError::new(field, Rule::Unspecified)),
        Err(_) => Err(FieldError::new(field, Rule::UnknownEnum(value))),
    }
}

fn meter_unit_wire(u: MeterUnit) -> i32 {
    (match u {
        MeterUnit::WattHour => v1::MeterUnit::WattHour,
        MeterUnit::SecondOfAccess => v1::MeterUnit::SecondOfAccess,
        MeterUnit::Reading => v1::MeterUnit::Reading,
    }) as i32
}

/// Every stop reason beside its wire value.
const STOP_REASONS: [(StopReason, v1::StopReason); 22] = [
    (StopReason::DeAuthorized, v1::StopReason::DeAuthorized),
    (StopReason::EmergencyStop, v1::StopReason::EmergencyStop),
    (
        StopReason::EnergyLimitReached,
        v1::StopReason::EnergyLimitReached,
    ),
    (StopReason::EVDisconnected, v1::StopReason::EvDisconnected),
    (StopReason::GroundFault, v1::StopReason::GroundFault),
    (StopReason::HardReset, v1::StopReason::HardReset),
    (StopReason::ImmediateReset, v1::StopReason::ImmediateReset),
    (StopReason::Local, v1::StopReason::Local),
    (
        StopReason::LocalOutOfCredit,
        v1::StopReason::LocalOutOfCredit,
    ),
    (StopReason::MasterPass, v1::StopReason::MasterPass),
    (StopReason::Other, v1::StopReason::Other),
    (
        StopReason::OvercurrentFault,
        v1::StopReason::OvercurrentFault,
    ),
    (StopReason::PowerLoss, v1::StopReason::PowerLoss),
    (StopReason::PowerQuality, v1::StopReason::PowerQuality),
    (StopReason::Reboot, v1::StopReason::Reboot),
    (StopReason::Remote, v1::StopReason::Remote),
    (StopReason::SoftReset, v1::StopReason::SoftReset),
    (StopReason::SOCLimitReached, v1::StopReason::SocLimitReached),
    (StopReason::StoppedByEV, v1::StopReason::StoppedByEv),
    (
        StopReason::TimeLimitReached,
        v1::StopReason::TimeLimitReached,
    ),
    (StopReason::Timeout, v1::StopReason::Timeout),
    (StopReason::UnlockCommand, v1::StopReason::UnlockCommand),
];

/// Reads an optional `StopReason` enum field (UNSPECIFIED: none).
pub fn stop_reason(field: &str, value: i32) -> Result<Option<StopReason>, FieldError> {
    if value == v1::StopReason::Unspecified as i32 {
        return Ok(None);
    }
    STOP_REASONS
        .iter()
        .find(|(_, w)| *w as i32 == value)
        .map(|(r, _)| Some(*r))
        .ok_or_else(|| FieldError::new(field, Rule::UnknownEnum(value)))
}

/// The wire value of an optional stop reason.
pub fn stop_reason_wire(r: Option<StopReason>) -> i32 {
    r.and_then(|r| STOP_REASONS.iter().find(|(d, _)| *d == r))
        .map_or(v1::StopReason::Unspecified as i32, |(_, w)| *w as i32)
}

impl TryFrom<v1::SessionOffer> for SessionOffer {
    type Error = FieldError;
    fn try_from(m: v1::SessionOffer) -> Result<Self, FieldError> {
        Ok(SessionOffer {
            domain: required("domain", m.domain)?,
            session_id: h256("session_id", &m.session_id)?,
            payee: address("payee", &m.payee)?,
            meter_key: address("meter_key", &m.meter_key)?,
            unit: meter_unit("unit", m.unit)?,
            price_per_unit: u256("price_per_unit", &m.price_per_unit)?,
            credit_window_units: m.credit_window_units,
            max_units: m.max_units,
            max_units_per_hour: m.max_units_per_hour,
            expires_at: m.expires_at,
        })
    }
}

impl From<&SessionOffer> for v1::SessionOffer {
    fn from(o: &SessionOffer) -> Self {
        v1::SessionOffer {
            domain: Some((&o.domain).into()),
            session_id: h256_bytes(&o.session_id),
            payee: address_bytes(&o.payee),
            meter_key: address_bytes(&o.meter_key),
            unit: meter_unit_wire(o.unit),
            price_per_unit: u256_bytes(&o.price_per_unit),
            credit_window_units: o.credit_window_units,
            max_units: o.max_units,
            max_units_per_hour: o.max_units_per_hour,
            expires_at: o.expires_at,
        }
    }
}

impl TryFrom<v1::SignedSessionOffer> for SignedSessionOffer {
    type Error = FieldError;
    fn try_from(m: v1::SignedSessionOffer) -> Result<Self, FieldError> {
        Ok(SignedSessionOffer {
            offer: required("offer", m.offer)?,
            signature: signature("signature", &m.signature)?,
        })
    }
}

impl From<&SignedSessionOffer> for v1::SignedSessionOffer {
    fn from(o: &SignedSessionOffer) -> Self {
        v1::SignedSessionOffer {
            offer: Some((&o.offer).into()),
            signature: signature_bytes(&o.signature),
        }
    }
}

impl TryFrom<v1::MeterReading> for MeterReading {
    type Error = FieldError;
    fn try_from(m: v1::MeterReading) -> Result<Self, FieldError> {
        Ok(MeterReading {
            session_id: h256("session_id", &m.session_id)?,
            transaction_id: h256("transaction_id", &m.transaction_id)?,
            seq: m.seq,
            register: m.register,
            timestamp: m.timestamp,
            measurand: meter_unit("measurand", m.measurand)?,
            stopped_reason: stop_reason("stopped_reason", m.stopped_reason)?,
        })
    }
}

impl From<&MeterReading> for v1::MeterReading {
    fn from(r: &MeterReading) -> Self {
        v1::MeterReading {
            session_id: h256_bytes(&r.session_id),
            transaction_id: h256_bytes(&r.transaction_id),
            seq: r.seq,
            register: r.register,
            timestamp: r.timestamp,
            measurand: meter_unit_wire(r.measurand),
            stopped_reason: stop_reason_wire(r.stopped_reason),
        }
    }
}

impl TryFrom<v1::SignedMeterReading> for SignedMeterReading {
    type Error = FieldError;
    fn try_from(m: v1::SignedMeterReading) -> Result<Self, FieldError> {
        Ok(SignedMeterReading {
            reading: required("reading", m.reading)?,
            signature: signature("signature", &m.signature)?,
        })
    }
}

impl From<&SignedMeterReading> for v1::SignedMeterReading {
    fn from(r: &SignedMeterReading) -> Self {
        v1::SignedMeterReading {
            reading: Some((&r.reading).into()),
            signature: signature_bytes(&r.signature),
        }
    }
}

impl TryFrom<v1::SessionPublication> for Publication {
    type Error = FieldError;
    fn try_from(m: v1::SessionPublication) -> Result<Self, FieldError> {
        Ok(Publication {
            reading: required("reading", m.reading)?,
            bill: m
                .bill
                .map(|b| b.try_into().map_err(|e: FieldError| e.within("bill")))
                .transpose()?,
        })
    }
}

impl From<&Publication> for v1::SessionPublication {
    fn from(p: &Publication) -> Self {
        v1::SessionPublication {
            reading: Some((&p.reading).into()),
            bill: p.bill.as_ref().map(Into::into),
        }
    }
}

impl TryFrom<v1::SessionReceipt> for SessionReceipt {
    type Error = FieldError;
    fn try_from(m: v1::SessionReceipt) -> Result<Self, FieldError> {
        Ok(SessionReceipt {
            domain: required("domain", m.domain)?,
            session_id: h256("session_id", &m.session_id)?,
            payer: address("payer", &m.payer)?,
            payee: address("payee", &m.payee)?,
            unit: meter_unit("unit", m.unit)?,
            price_per_unit: u256("price_per_unit", &m.price_per_unit)?,
            total_units: m.total_units,
            total_paid: u256("total_paid", &m.total_paid)?,
            first_reading_hash: h256("first_reading_hash", &m.first_reading_hash)?,
            last_reading_hash: h256("last_reading_hash", &m.last_reading_hash)?,
        })
    }
}

impl From<&SessionReceipt> for v1::SessionReceipt {
    fn from(r: &SessionReceipt) -> Self {
        v1::SessionReceipt {
            domain: Some((&r.domain).into()),
            session_id: h256_bytes(&r.session_id),
            payer: address_bytes(&r.payer),
            payee: address_bytes(&r.payee),
            unit: meter_unit_wire(r.unit),
            price_per_unit: u256_bytes(&r.price_per_unit),
            total_units: r.total_units,
            total_paid: u256_bytes(&r.total_paid),
            first_reading_hash: h256_bytes(&r.first_reading_hash),
            last_reading_hash: h256_bytes(&r.last_reading_hash),
        }
    }
}

/// One side's signature on the receipt it computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiptPart {
    pub receipt: SessionReceipt,
    pub signature: Signature,
}

impl TryFrom<v1::ReceiptSignature> for ReceiptPart {
    type Error = FieldError;
    fn try_from(m: v1::ReceiptSignature) -> Result<Self, FieldError> {
        Ok(ReceiptPart {
            receipt: required("receipt", m.receipt)?,
            signature: signature("signature", &m.signature)?,
        })
    }
}

impl From<&ReceiptPart> for v1::ReceiptSignature {
    fn from(p: &ReceiptPart) -> Self {
        v1::ReceiptSignature {
            receipt: Some((&p.receipt).into()),
            signature: signature_bytes(&p.signature),
        }
    }
}

/// `OpenSessionRequest`: the offer and the payer it is reserved for, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenSession {
    pub offer: SignedSessionOffer,
    pub payer: Option<Address>,
}

impl TryFrom<v1::OpenSessionRequest> for OpenSession {
    type Error = FieldError;
    fn try_from(m: v1::OpenSessionRequest) -> Result<Self, FieldError> {
        Ok(OpenSession {
            offer: required("offer", m.offer)?,
            payer: optional_address("payer", &m.payer)?,
        })
    }
}

/// A session id field (`AcceptSessionRequest`, `WatchSessionRequest`).
pub fn session_id(bytes: &[u8]) -> Result<H256, FieldError> {
    h256("session_id", bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use channel_core::crypto::{keccak256, LocalSigner, Signer as _};
    use channel_core::{Domain, U256};

    use super::*;

    fn key(n: u8) -> LocalSigner {
        LocalSigner::from_bytes(&[n; 32]).unwrap()
    }

    fn offer() -> SignedSessionOffer {
        SessionOffer {
            domain: Domain {
                chain_id: U256::from(1u8),
                token_network_address: Address([9; 20]),
            },
            session_id: H256([7; 32]),
            payee: key(3).address(),
            meter_key: key(4).address(),
            unit: MeterUnit::WattHour,
            price_per_unit: U256::from(3u8),
            credit_window_units: 500,
            max_units: None,
            max_units_per_hour: 11_000,
            expires_at: 5_000,
        }
        .sign(&key(3))
        .unwrap()
    }

    #[test]
    fn offers_readings_and_receipts_round_trip() {
        let o = offer();
        let wire = v1::SignedSessionOffer::from(&o);
        assert_eq!(SignedSessionOffer::try_from(wire).unwrap(), o);
        let mut capped = o;
        capped.offer.max_units = Some(0);
        let wire = v1::SignedSessionOffer::from(&capped);
        assert_eq!(SignedSessionOffer::try_from(wire).unwrap(), capped);
        for (reason, _) in STOP_REASONS {
            let r = MeterReading {
                session_id: H256([7; 32]),
                transaction_id: keccak256(b"tx"),
                seq: 3,
                register: 1_234,
                timestamp: 99,
                measurand: MeterUnit::WattHour,
                stopped_reason: Some(reason),
            }
            .sign(&key(4))
            .unwrap();
            let p = Publication {
                reading: r,
                bill: None,
            };
            assert_eq!(
                Publication::try_from(v1::SessionPublication::from(&p)).unwrap(),
                p
            );
        }
    }

    #[test]
    fn errors_name_the_field() {
        let mut wire = v1::SignedSessionOffer::from(&offer());
        if let Some(o) = wire.offer.as_mut() {
            o.unit = 0;
        }
        assert_eq!(
            SignedSessionOffer::try_from(wire).unwrap_err().to_string(),
            "offer.unit: must not be UNSPECIFIED"
        );
        let mut wire = v1::SignedSessionOffer::from(&offer());
        if let Some(o) = wire.offer.as_mut() {
            o.price_per_unit.pop();
        }
        assert_eq!(
            SignedSessionOffer::try_from(wire).unwrap_err().to_string(),
            "offer.price_per_unit: must be 32 bytes (big-endian uint256), got 31"
        );
        assert_eq!(
            stop_reason("reading.stopped_reason", 99)
                .unwrap_err()
                .to_string(),
            "reading.stopped_reason: unknown enum value 99"
        );
    }
}
