//! The payee's (metering side's) view of a session: how much it delivered, how much it was
//! paid, and whether it may keep delivering. It also numbers the readings it publishes.
//!
//! # The credit rule
//! Unpaid units (delivered − paid) may reach the credit window and never pass it. After each
//! [`PayeeSession::record_delivery`] the payee learns its headroom: it may deliver at most
//! that many more units before it records again. With headroom zero it waits for a payment
//! ([`PayeeSession::handle_payment`], then [`PayeeSession::headroom`]); if it ever finds
//! unpaid units beyond the window it must stop, with `LocalOutOfCredit`. A payee that
//! delivers only within its headroom is therefore never owed more than the window.
//!
//! Size the window to cover the units delivered between two readings plus those delivered
//! while a payment travels, or the payee will pause in every interval.

use serde::{Deserialize, Serialize};

use crate::primitives::{u256_dec, H256, U256};

use super::error::SessionError;
use super::offer::{MeterUnit, SessionOffer};
use super::reading::{MeterReading, StopReason};
use super::receipt::SessionReceipt;

/// What the payee may do after recording a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    /// Deliver at most `headroom_units` more before recording again (zero: wait for payment).
    Continue { headroom_units: u64 },
    /// Stop delivering: the session has ended for this reason.
    Stop(StopReason),
}

/// One session as the payee sees it. Serializable: the SDK persists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayeeSession {
    offer: SessionOffer,
    transaction_id: H256,
    meter_start: u64,
    register: u64,
    last_delivery_at: u64,
    next_seq: u64,
    paid_units: u64,
    #[serde(with = "u256_dec")]
    paid_amount: U256,
    ended: Option<StopReason>,
}

impl PayeeSession {
    /// Starts a session on the payee's own offer with the meter reading `meter_start` at
    /// `now`; `transaction_id` is keccak256 of the OCPP transactionId (or zero).
    pub fn start(offer: SessionOffer, transaction_id: H256, meter_start: u64, now: u64) -> Self {
        Self {
            offer,
            transaction_id,
            meter_start,
            register: meter_start,
            last_delivery_at: now,
            next_seq: 0,
            paid_units: 0,
            paid_amount: U256::ZERO,
            ended: None,
        }
    }

    // --- getters ---

    pub fn offer(&self) -> &SessionOffer {
        &self.offer
    }

    pub fn delivered_units(&self) -> u64 {
        self.register.saturating_sub(self.meter_start)
    }

    pub fn paid_units(&self) -> u64 {
        self.paid_units
    }

    pub fn paid_amount(&self) -> U256 {
        self.paid_amount
    }

    /// Delivered and not paid.
    pub fn unpaid_units(&self) -> u64 {
        self.delivered_units().saturating_sub(self.paid_units)
    }

    pub fn ended(&self) -> Option<StopReason> {
        self.ended
    }

    /// How many more units may be delivered now: what the credit window leaves, capped by
    /// the offer's maximum. Zero once ended.
    pub fn headroom(&self) -> u64 {
        if self.ended.is_some() {
            return 0;
        }
        let credit = self
            .offer
            .credit_window_units
            .saturating_sub(self.unpaid_units());
        match self.offer.max_units {
            Some(max) => credit.min(max.saturating_sub(self.delivered_units())),
            None => credit,
        }
    }

    // --- inputs ---

    /// Records the meter's register at `now` and says whether to keep delivering. Refuses a
    /// register or a time going backwards, and any delivery after the end, changing nothing.
    pub fn record_delivery(&mut self, register: u64, now: u64) -> Result<Delivery, SessionError> {
        if let Some(reason) = self.ended {
            return Err(SessionError::Ended(reason));
        }
        if register < self.register {
            return Err(SessionError::RegisterBackwards {
                last: self.register,
                got: register,
            });
        }
        if now < self.last_delivery_at {
            return Err(SessionError::TimestampBackwards {
                last: self.last_delivery_at,
                got: now,
            });
        }
        self.register = register;
        self.last_delivery_at = now;
        if self.unpaid_units() > self.offer.credit_window_units {
            self.ended = Some(StopReason::LocalOutOfCredit);
            return Ok(Delivery::Stop(StopReason::LocalOutOfCredit));
        }
        if let Some(max) = self.offer.max_units {
            if self.delivered_units() >= max {
                let reason = limit_reason(self.offer.unit);
                self.ended = Some(reason);
                return Ok(Delivery::Stop(reason));
            }
        }
        Ok(Delivery::Continue {
            headroom_units: self.headroom(),
        })
    }

    /// Takes a payment of `amount` for `units`: the amount must be exactly units × price and
    /// the units must have been delivered. Accepted after the end too (late payments for
    /// delivered units).
    pub fn handle_payment(&mut self, units: u64, amount: U256) -> Result<(), SessionError> {
        let price = self.offer.price_per_unit;
        let expected = price
            .checked_mul(U256::from(units))
            .ok_or(SessionError::AmountOverflow { units, price })?;
        if amount != expected {
            return Err(SessionError::WrongAmount {
                units,
                amount,
                expected,
            });
        }
        let total = self.paid_units.saturating_add(units);
        if total > self.delivered_units() {
            return Err(SessionError::PaidBeyondDelivery {
                units,
                total,
                delivered: self.delivered_units(),
            });
        }
        self.paid_units = total;
        self.paid_amount = self.paid_amount.saturating_add(amount);
        Ok(())
    }

    /// The next reading to sign and publish: the current register at the last delivery
    /// time, numbered after the previous one, carrying the stop reason once ended.
    pub fn next_reading(&mut self) -> MeterReading {
        let reading = MeterReading {
            session_id: self.offer.session_id,
            transaction_id: self.transaction_id,
            seq: self.next_seq,
            register: self.register,
            timestamp: self.last_delivery_at,
            measurand: self.offer.unit,
            stopped_reason: self.ended,
        };
        self.next_seq = self.next_seq.saturating_add(1);
        reading
    }

    /// Ends the session from the payee's side (the car unplugged, the operator stopped it).
    pub fn stop(&mut self, reason: StopReason) {
        self.ended.get_or_insert(reason);
    }

    /// Checks a receipt the payer proposes against what this side was paid, before signing.
    pub fn check_receipt(&self, receipt: &SessionReceipt) -> Result<(), SessionError> {
        let o = &self.offer;
        let mismatch = |field: &'static str, expected: String, got: String| {
            Err(SessionError::ReceiptMismatch {
                field,
                expected,
                got,
            })
        };
        if receipt.session_id != o.session_id {
            return mismatch(
                "session_id",
                o.session_id.to_string(),
                receipt.session_id.to_string(),
            );
        }
        if receipt.domain != o.domain {
            return mismatch(
                "domain",
                format!("{:?}", o.domain),
                format!("{:?}", receipt.domain),
            );
        }
        if receipt.payee != o.payee {
            return mismatch("payee", o.payee.to_string(), receipt.payee.to_string());
        }
        if receipt.unit != o.unit {
            return mismatch(
                "unit",
                format!("{:?}", o.unit),
                format!("{:?}", receipt.unit),
            );
        }
        if receipt.price_per_unit != o.price_per_unit {
            return mismatch(
                "price_per_unit",
                o.price_per_unit.to_string(),
                receipt.price_per_unit.to_string(),
            );
        }
        if receipt.total_units != self.paid_units {
            return mismatch(
                "total_units",
                self.paid_units.to_string(),
                receipt.total_units.to_string(),
            );
        }
        if receipt.total_paid != self.paid_amount {
            return mismatch(
                "total_paid",
                self.paid_amount.to_string(),
                receipt.total_paid.to_string(),
            );
        }
        Ok(())
    }
}

/// The OCPP reason for reaching the offer's maximum, by unit.
fn limit_reason(unit: MeterUnit) -> StopReason {
    match unit {
        MeterUnit::WattHour => StopReason::EnergyLimitReached,
        MeterUnit::SecondOfAccess => StopReason::TimeLimitReached,
        MeterUnit::Reading => StopReason::Other,
    }
}
