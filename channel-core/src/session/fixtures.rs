//! Shared test fixtures: one EV-charging offer and its keys.

use crate::crypto::{keccak256, LocalSigner, Signer};
use crate::primitives::{H256, U256};
use crate::testing::{test_domain, test_signer};

use super::{MeterReading, MeterUnit, PayerLimits, PayerSession, SessionOffer, SignedMeterReading};

pub fn payee_key() -> LocalSigner {
    test_signer(3)
}

pub fn meter_key() -> LocalSigner {
    test_signer(4)
}

pub fn payer_key() -> LocalSigner {
    test_signer(5)
}

/// 3 tokens per Wh, 500 Wh of credit, at most 20 kWh, at most 11 kW.
pub fn offer() -> SessionOffer {
    SessionOffer {
        domain: test_domain(),
        session_id: H256([7; 32]),
        payee: payee_key().address(),
        meter_key: meter_key().address(),
        unit: MeterUnit::WattHour,
        price_per_unit: U256::from(3u8),
        credit_window_units: 500,
        max_units: Some(20_000),
        max_units_per_hour: 11_000,
        expires_at: 5_000,
    }
}

pub fn limits(budget: u64) -> PayerLimits {
    PayerLimits {
        budget: U256::from(budget),
        clock_tolerance_secs: 5,
    }
}

pub fn payer(budget: u64) -> PayerSession {
    let signed = offer().sign(&payee_key()).unwrap();
    PayerSession::accept(
        &signed,
        &test_domain(),
        payer_key().address(),
        limits(budget),
        1_000,
    )
    .unwrap()
}

pub fn raw(seq: u64, register: u64, timestamp: u64) -> MeterReading {
    MeterReading {
        session_id: offer().session_id,
        transaction_id: keccak256(b"tx-1"),
        seq,
        register,
        timestamp,
        measurand: MeterUnit::WattHour,
        stopped_reason: None,
    }
}

pub fn reading(seq: u64, register: u64, timestamp: u64) -> SignedMeterReading {
    raw(seq, register, timestamp).sign(&meter_key()).unwrap()
}
