//! The payer's side of a session: it accepts the payee's offer, checks every signed reading
//! against the offer's rules and its own budget, and says exactly what is due for it.
//!
//! # Call order
//! 1. [`PayerSession::accept`] with the signed offer (verified here) and the payer's limits.
//! 2. For each reading from the metering side: [`PayerSession::handle_reading`]. A refusal
//!    changes nothing; on success pay the returned [`PaymentDue`] (units > 0), with its
//!    `additional_hash` in the balance proof. The first reading is the meter start: nothing
//!    is due for it.
//! 3. When the payment is acknowledged: [`PayerSession::record_paid`]; if it failed:
//!    [`PayerSession::handle_payment_failed`], and the next reading's due covers the units
//!    again. Several payments may be in flight; each due covers only units no earlier due
//!    covers, so the payer never pays twice for a unit.
//! 4. [`PayerSession::receipt`] for the final receipt both sides sign.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::primitives::{u256_dec, Address, H256, U256};
use crate::proofs::Domain;

use super::error::SessionError;
use super::offer::{SessionOffer, SignedSessionOffer};
use super::reading::{SignedMeterReading, StopReason};
use super::receipt::SessionReceipt;

/// What the payer is prepared to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerLimits {
    /// The most the payer pays in this session, token units.
    #[serde(with = "u256_dec")]
    pub budget: U256,
    /// How far past `now` a reading's timestamp may lie (clocks drift).
    pub clock_tolerance_secs: u64,
}

/// What to pay for an accepted reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDue {
    /// Metered units no earlier payment (made or in flight) covers. Zero: pay nothing.
    pub units: u64,
    /// `units × price_per_unit`.
    #[serde(with = "u256_dec")]
    pub amount: U256,
    /// The reading's hash, for the balance proof's `additional_hash`.
    pub additional_hash: H256,
    pub reading_seq: u64,
    /// Units the reading shows since the meter start.
    pub metered_units: u64,
}

/// The last reading the payer accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Accepted {
    seq: u64,
    register: u64,
    timestamp: u64,
    hash: H256,
}

/// One session as the payer sees it. Serializable: the SDK persists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerSession {
    offer: SessionOffer,
    payer: Address,
    limits: PayerLimits,
    /// The most units the offer and the budget allow.
    budget_units: u64,
    transaction_id: H256,
    meter_start: Option<u64>,
    first: Option<Accepted>,
    last: Option<Accepted>,
    paid_units: u64,
    #[serde(with = "u256_dec")]
    paid_amount: U256,
    last_paid_reading: Option<H256>,
    /// Dues handed out and not yet acknowledged, oldest first.
    in_flight: VecDeque<PaymentDue>,
    ended: Option<StopReason>,
}

impl PayerSession {
    /// Accepts a signed offer on `domain` at `now` (verifying it) for `payer`.
    pub fn accept(
        signed: &SignedSessionOffer,
        domain: &Domain,
        payer: Address,
        limits: PayerLimits,
        now: u64,
    ) -> Result<Self, SessionError> {
        signed.verify(domain, now)?;
        let offer = signed.offer;
        let affordable = if offer.price_per_unit.is_zero() {
            u64::MAX
        } else {
            u64::try_from(limits.budget / offer.price_per_unit).unwrap_or(u64::MAX)
        };
        let budget_units = offer.max_units.map_or(affordable, |m| m.min(affordable));
        Ok(Self {
            offer,
            payer,
            limits,
            budget_units,
            transaction_id: H256::ZERO,
            meter_start: None,
            first: None,
            last: None,
            paid_units: 0,
            paid_amount: U256::ZERO,
            last_paid_reading: None,
            in_flight: VecDeque::new(),
            ended: None,
        })
    }

    // --- getters ---

    pub fn offer(&self) -> &SessionOffer {
        &self.offer
    }

    /// The most units this session will pay for (offer cap and budget).
    pub fn budget_units(&self) -> u64 {
        self.budget_units
    }

    /// Units the latest accepted reading shows since the meter start.
    pub fn metered_units(&self) -> u64 {
        match (self.meter_start, self.last) {
            (Some(start), Some(last)) => last.register.saturating_sub(start),
            _ => 0,
        }
    }

    /// Units paid and acknowledged.
    pub fn paid_units(&self) -> u64 {
        self.paid_units
    }

    pub fn paid_amount(&self) -> U256 {
        self.paid_amount
    }

    /// Units covered by payments handed out and not yet acknowledged.
    pub fn in_flight_units(&self) -> u64 {
        self.in_flight
            .iter()
            .fold(0u64, |sum, d| sum.saturating_add(d.units))
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.last.map(|a| a.seq)
    }

    pub fn ended(&self) -> Option<StopReason> {
        self.ended
    }

    // --- inputs ---

    /// Checks a reading against the offer, the budget and the readings before it; on
    /// success records it and returns what is now due. A refusal changes nothing.
    pub fn handle_reading(
        &mut self,
        signed: &SignedMeterReading,
        now: u64,
    ) -> Result<PaymentDue, SessionError> {
        if let Some(reason) = self.ended {
            return Err(SessionError::Ended(reason));
        }
        let r = &signed.reading;
        if r.session_id != self.offer.session_id {
            return Err(SessionError::WrongSession {
                expected: self.offer.session_id,
                got: r.session_id,
            });
        }
        signed.verify(self.offer.meter_key)?;
        if r.measurand != self.offer.unit {
            return Err(SessionError::WrongUnit {
                expected: self.offer.unit,
                got: r.measurand,
            });
        }
        let tolerance_secs = self.limits.clock_tolerance_secs;
        if r.timestamp > now.saturating_add(tolerance_secs) {
            return Err(SessionError::FromTheFuture {
                timestamp: r.timestamp,
                now,
                tolerance_secs,
            });
        }
        if self.first.is_some() && r.transaction_id != self.transaction_id {
            return Err(SessionError::WrongTransaction {
                expected: self.transaction_id,
                got: r.transaction_id,
            });
        }
        if let Some(last) = self.last {
            self.check_follows(&last, r.seq, r.register, r.timestamp)?;
        }
        let meter_start = self.meter_start.unwrap_or(r.register);
        let metered = r.register.saturating_sub(meter_start);
        if metered > self.budget_units {
            return Err(SessionError::BudgetExceeded {
                metered,
                budget_units: self.budget_units,
            });
        }
        let covered = self.paid_units.saturating_add(self.in_flight_units());
        let units = metered.saturating_sub(covered);
        let amount = self.amount_for(units)?;
        let accepted = Accepted {
            seq: r.seq,
            register: r.register,
            timestamp: r.timestamp,
            hash: r.hash(),
        };
        let due = PaymentDue {
            units,
            amount,
            additional_hash: accepted.hash,
            reading_seq: r.seq,
            metered_units: metered,
        };
        // Every check passed: record.
        if self.first.is_none() {
            self.first = Some(accepted);
            self.transaction_id = r.transaction_id;
            self.meter_start = Some(meter_start);
        }
        self.last = Some(accepted);
        if units > 0 {
            self.in_flight.push_back(due);
        }
        if let Some(reason) = r.stopped_reason {
            self.ended = Some(reason);
        }
        Ok(due)
    }

    /// Seq, register and time only grow, and the register no faster than the offer's
    /// maximum rate. Timestamps are whole seconds, so the true time between two readings is
    /// less than one second more than their difference: the rate gets that second.
    fn check_follows(
        &self,
        last: &Accepted,
        seq: u64,
        register: u64,
        timestamp: u64,
    ) -> Result<(), SessionError> {
        if seq <= last.seq {
            return Err(SessionError::SeqNotIncreasing {
                last: last.seq,
                got: seq,
            });
        }
        if register < last.register {
            return Err(SessionError::RegisterBackwards {
                last: last.register,
                got: register,
            });
        }
        if timestamp < last.timestamp {
            return Err(SessionError::TimestampBackwards {
                last: last.timestamp,
                got: timestamp,
            });
        }
        let units = register - last.register;
        let elapsed_secs = timestamp - last.timestamp;
        let allowed = u128::from(self.offer.max_units_per_hour) * (u128::from(elapsed_secs) + 1);
        if u128::from(units) * 3_600 > allowed {
            return Err(SessionError::TooFast {
                units,
                elapsed_secs,
                max_units_per_hour: self.offer.max_units_per_hour,
            });
        }
        Ok(())
    }

    fn amount_for(&self, units: u64) -> Result<U256, SessionError> {
        self.offer
            .price_per_unit
            .checked_mul(U256::from(units))
            .ok_or(SessionError::AmountOverflow {
                units,
                price: self.offer.price_per_unit,
            })
    }

    /// Records that the oldest payment in flight (for `units` against the reading
    /// `reading_hash`) was acknowledged. Payments on a channel complete in order.
    pub fn record_paid(&mut self, units: u64, reading_hash: H256) -> Result<(), SessionError> {
        match self.in_flight.front() {
            Some(due) if due.units == units && due.additional_hash == reading_hash => {
                self.paid_units = self.paid_units.saturating_add(due.units);
                self.paid_amount = self.paid_amount.saturating_add(due.amount);
                self.last_paid_reading = Some(reading_hash);
                self.in_flight.pop_front();
                Ok(())
            }
            _ => Err(SessionError::UnknownPayment {
                units,
                reading_hash,
            }),
        }
    }

    /// The payment against `reading_hash` failed: it and every later payment in flight are
    /// dropped (they cannot complete before it), and the next reading's due covers their
    /// units again.
    pub fn handle_payment_failed(&mut self, reading_hash: H256) -> Result<u64, SessionError> {
        let Some(at) = self
            .in_flight
            .iter()
            .position(|d| d.additional_hash == reading_hash)
        else {
            return Err(SessionError::UnknownPayment {
                units: 0,
                reading_hash,
            });
        };
        let released = self.in_flight.drain(at..).map(|d| d.units).sum();
        Ok(released)
    }

    /// Ends the session from the payer's side; later readings are refused.
    pub fn stop(&mut self, reason: StopReason) {
        self.ended.get_or_insert(reason);
    }

    /// The receipt of what was paid so far, for both sides to sign; `None` before the first
    /// reading.
    pub fn receipt(&self) -> Option<SessionReceipt> {
        let first = self.first?;
        Some(SessionReceipt {
            domain: self.offer.domain,
            session_id: self.offer.session_id,
            payer: self.payer,
            payee: self.offer.payee,
            unit: self.offer.unit,
            price_per_unit: self.offer.price_per_unit,
            total_units: self.paid_units,
            total_paid: self.paid_amount,
            first_reading_hash: first.hash,
            last_reading_hash: self.last_paid_reading.unwrap_or(first.hash),
        })
    }
}
