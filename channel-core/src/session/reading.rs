//! Signed meter readings: what the metering side reports and the payer pays against.
//!
//! A reading carries the cumulative register (never a delta), so a lost or coarse reading
//! loses nothing: the next one shows the total. Its [`MeterReading::hash`] is what a payment's
//! `additional_hash` commits to, binding every payment to signed, timestamped metering.
//!
//! # OCPP mapping
//! | OCPP 1.6 / 2.0.1 | reading field |
//! | --- | --- |
//! | `transactionId` (string) | `transaction_id` = keccak256 of its UTF-8 bytes |
//! | `seqNo` (2.0.1 TransactionEvent); 1.6: the charger's MeterValues count | `seq` |
//! | `sampledValue` of `Energy.Active.Import.Register`, unit `Wh` | `register` (Wh) |
//! | `meterStart` (StartTransaction / TransactionEvent `Started`) | `register` of the first reading |
//! | `meterStop` (StopTransaction / TransactionEvent `Ended`) | `register` of the last reading |
//! | `timestamp` (of the meter value) | `timestamp`, unix seconds |
//! | `measurand` | `measurand` ([`MeterUnit`]) |
//! | `reason` / `stoppedReason` | `stopped_reason` ([`StopReason`], every 1.6 and 2.0.1 value) |
//!
//! OCPP values given in kWh convert to Wh exactly when they have at most three decimals,
//! which is what the Wh register resolution is; the meter signs the integer Wh value.

use serde::{Deserialize, Serialize};

use crate::crypto::{eip191_hash, keccak256, verify_signer, Signature, Signer};
use crate::primitives::{Address, H256};

use super::error::SessionError;
use super::offer::MeterUnit;

/// Domain separator at the start of every packed reading.
pub const METER_READING_TAG: &[u8; 25] = b"voltlane.meter-reading.v1";

/// Bytes of a packed reading: tag, session id, transaction id, seq, register, timestamp,
/// measurand, stopped reason (flag + code).
pub const METER_READING_LEN: usize = 25 + 32 + 32 + 8 + 8 + 8 + 1 + 2;

/// Why a session stopped: the union of OCPP 1.6 `Reason` and 2.0.1 `ReasonEnumType`, so
/// either maps onto it without loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StopReason {
    DeAuthorized,
    EmergencyStop,
    EnergyLimitReached,
    EVDisconnected,
    GroundFault,
    HardReset,
    ImmediateReset,
    Local,
    /// The payee stopped because unpaid units went beyond the credit window.
    LocalOutOfCredit,
    MasterPass,
    Other,
    OvercurrentFault,
    PowerLoss,
    PowerQuality,
    Reboot,
    Remote,
    SoftReset,
    SOCLimitReached,
    StoppedByEV,
    TimeLimitReached,
    Timeout,
    UnlockCommand,
}

impl StopReason {
    /// The byte this reason packs as (never zero).
    pub fn code(self) -> u8 {
        match self {
            StopReason::DeAuthorized => 1,
            StopReason::EmergencyStop => 2,
            StopReason::EnergyLimitReached => 3,
            StopReason::EVDisconnected => 4,
            StopReason::GroundFault => 5,
            StopReason::HardReset => 6,
            StopReason::ImmediateReset => 7,
            StopReason::Local => 8,
            StopReason::LocalOutOfCredit => 9,
            StopReason::MasterPass => 10,
            StopReason::Other => 11,
            StopReason::OvercurrentFault => 12,
            StopReason::PowerLoss => 13,
            StopReason::PowerQuality => 14,
            StopReason::Reboot => 15,
            StopReason::Remote => 16,
            StopReason::SoftReset => 17,
            StopReason::SOCLimitReached => 18,
            StopReason::StoppedByEV => 19,
            StopReason::TimeLimitReached => 20,
            StopReason::Timeout => 21,
            StopReason::UnlockCommand => 22,
        }
    }
}

/// One reading of the session's meter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MeterReading {
    pub session_id: H256,
    /// keccak256 of the OCPP `transactionId` string (zero when there is none).
    pub transaction_id: H256,
    /// Strictly increasing within a session.
    pub seq: u64,
    /// The cumulative register in units of `measurand` (for energy: Wh).
    pub register: u64,
    /// When the register was read, unix seconds.
    pub timestamp: u64,
    pub measurand: MeterUnit,
    /// Set on the final reading of a session.
    pub stopped_reason: Option<StopReason>,
}

impl MeterReading {
    /// `tag || session_id (32) || transaction_id (32) || seq (8) || register (8) ||
    /// timestamp (8) || measurand (1) || stopped (1: 0 none, 1 some) || reason code (1)`,
    /// integers big-endian.
    pub fn pack(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(METER_READING_LEN);
        buf.extend_from_slice(METER_READING_TAG);
        buf.extend_from_slice(self.session_id.as_bytes());
        buf.extend_from_slice(self.transaction_id.as_bytes());
        buf.extend_from_slice(&self.seq.to_be_bytes());
        buf.extend_from_slice(&self.register.to_be_bytes());
        buf.extend_from_slice(&self.timestamp.to_be_bytes());
        buf.push(self.measurand.code());
        buf.push(u8::from(self.stopped_reason.is_some()));
        buf.push(self.stopped_reason.map_or(0, StopReason::code));
        buf
    }

    /// keccak256 of the packing: the `additional_hash` of a payment made against it.
    pub fn hash(&self) -> H256 {
        keccak256(&self.pack())
    }

    /// The EIP-191 digest the meter key signs.
    pub fn signing_hash(&self) -> H256 {
        eip191_hash(&self.pack())
    }

    /// Signs with the meter key. Whether that is the session's meter key is the payer's
    /// check ([`SignedMeterReading::verify`]).
    pub fn sign(&self, meter: &dyn Signer) -> Result<SignedMeterReading, SessionError> {
        let signature = meter
            .sign_hash(&self.signing_hash())
            .map_err(SessionError::Signing)?;
        Ok(SignedMeterReading {
            reading: *self,
            signature,
        })
    }
}

/// A reading with the meter key's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedMeterReading {
    pub reading: MeterReading,
    pub signature: Signature,
}

impl SignedMeterReading {
    /// Checks that `meter_key` signed exactly this reading.
    pub fn verify(&self, meter_key: Address) -> Result<(), SessionError> {
        verify_signer(&self.reading.signing_hash(), &self.signature, meter_key)
            .map_err(SessionError::BadReadingSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test_signer;

    fn reading() -> MeterReading {
        MeterReading {
            session_id: H256([7; 32]),
            transaction_id: keccak256(b"tx-42"),
            seq: 5,
            register: 12_345,
            timestamp: 1_700,
            measurand: MeterUnit::WattHour,
            stopped_reason: Some(StopReason::EVDisconnected),
        }
    }

    #[test]
    fn packs_every_field_at_its_place() {
        let r = reading();
        let p = r.pack();
        assert_eq!(p.len(), METER_READING_LEN);
        assert_eq!(&p[..25], METER_READING_TAG);
        assert_eq!(&p[25..57], r.session_id.as_bytes());
        assert_eq!(&p[57..89], r.transaction_id.as_bytes());
        assert_eq!(&p[89..97], &5u64.to_be_bytes());
        assert_eq!(&p[97..105], &12_345u64.to_be_bytes());
        assert_eq!(&p[105..113], &1_700u64.to_be_bytes());
        assert_eq!(&p[113..], &[1, 1, 4]);
        assert_eq!(r.hash(), keccak256(&p));
        let mut running = r;
        running.stopped_reason = None;
        assert_eq!(&running.pack()[113..], &[1, 0, 0]);
    }

    #[test]
    fn every_field_changes_the_hash() {
        let r = reading();
        let mut variants = vec![r];
        let mut v = r;
        v.session_id = H256([8; 32]);
        variants.push(v);
        v = r;
        v.transaction_id = H256::ZERO;
        variants.push(v);
        v = r;
        v.seq += 1;
        variants.push(v);
        v = r;
        v.register += 1;
        variants.push(v);
        v = r;
        v.timestamp += 1;
        variants.push(v);
        v = r;
        v.measurand = MeterUnit::Reading;
        variants.push(v);
        v = r;
        v.stopped_reason = Some(StopReason::Other);
        variants.push(v);
        v = r;
        v.stopped_reason = None;
        variants.push(v);
        let hashes: std::collections::BTreeSet<_> = variants.iter().map(|r| r.hash()).collect();
        assert_eq!(hashes.len(), variants.len());
    }

    #[test]
    fn verify_refuses_other_keys_and_tampering() {
        let signed = reading().sign(&test_signer(4)).unwrap();
        assert_eq!(signed.verify(test_signer(4).address()), Ok(()));
        assert!(matches!(
            signed.verify(test_signer(3).address()),
            Err(SessionError::BadReadingSignature(_))
        ));
        let mut more = signed;
        more.reading.register += 1;
        assert!(matches!(
            more.verify(test_signer(4).address()),
            Err(SessionError::BadReadingSignature(_))
        ));
        let json = serde_json::to_string(&signed).unwrap();
        let back: SignedMeterReading = serde_json::from_str(&json).unwrap();
        assert_eq!(back, signed);
    }
}
