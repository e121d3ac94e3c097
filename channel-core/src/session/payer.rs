//! The payer's side of a session: it accepts the payee's offer, checks every signed reading
//! against the offer's rules and its own budget, says exactly what is due, and checks each
//! bill (the payee's payment request naming a reading) before anything is paid.
//!
//! # Call order
//! 1. [`PayerSession::accept`] with the signed offer (verified here) and the payer's limits.
//! 2. For each reading from the metering side: [`PayerSession::handle_reading`]. A refusal
//!    changes nothing; on success it returns the [`PaymentDue`]: units the reading shows that
//!    no payment (made or in flight) covers. The first reading is the meter start: nothing is
//!    due for it. [`PayerSession::is_replay`] tells a reading already handled (a relay
//!    replays after reconnects) from a bad one.
//! 3. Paying: through the hub, the payee bills with a payment request whose `memo_hash` is
//!    the reading's hash; [`PayerSession::check_bill`] says how many units it pays for (never
//!    more than are due, at exactly the offer's price). Then [`PayerSession::begin_payment`]
//!    with the payment's key (the request's secrethash; for a direct payment the reading
//!    hash), before signing: the units count as in flight.
//! 4. When the payment completes: [`PayerSession::record_paid`]; if it failed:
//!    [`PayerSession::handle_payment_failed`], and its units are due again. Payments in flight
//!    are independent of each other; none covers a unit another covers.
//! 5. [`PayerSession::receipt`] for the final receipt both sides sign.

use serde::{Deserialize, Serialize};

use crate::mediation::SignedPaymentRequest;
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

/// What an accepted reading leaves to pay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDue {
    /// Metered units no payment (made or in flight) covers. Zero: pay nothing.
    pub units: u64,
    /// `units × price_per_unit`.
    #[serde(with = "u256_dec")]
    pub amount: U256,
    /// The reading's hash: a payment for it commits to this (`additional_hash`, memo).
    pub additional_hash: H256,
    pub reading_seq: u64,
    /// Units the reading shows since the meter start.
    pub metered_units: u64,
}

/// A reading the payer accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Accepted {
    seq: u64,
    register: u64,
    timestamp: u64,
    hash: H256,
}

/// A payment begun and not yet completed or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInFlight {
    /// The payment's key: a mediated payment's secrethash, a direct one's reading hash.
    pub key: H256,
    pub units: u64,
    #[serde(with = "u256_dec")]
    pub amount: U256,
    /// The reading the payment commits to.
    pub reading_seq: u64,
    pub reading_hash: H256,
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
    /// The highest-seq reading a completed payment committed to.
    last_paid_reading: Option<(u64, H256)>,
    in_flight: Vec<PaymentInFlight>,
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
            in_flight: Vec::new(),
            ended: None,
        })
    }

    // --- getters ---

    pub fn offer(&self) -> &SessionOffer {
        &self.offer
    }

    pub fn payer(&self) -> Address {
        self.payer
    }

    pub fn limits(&self) -> &PayerLimits {
        &self.limits
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

    /// Units paid (completed payments).
    pub fn paid_units(&self) -> u64 {
        self.paid_units
    }

    pub fn paid_amount(&self) -> U256 {
        self.paid_amount
    }

    /// Units covered by payments begun and not yet completed or failed.
    pub fn in_flight_units(&self) -> u64 {
        self.in_flight
            .iter()
            .fold(0u64, |sum, p| sum.saturating_add(p.units))
    }

    /// The payments begun and not yet completed or failed.
    pub fn in_flight(&self) -> &[PaymentInFlight] {
        &self.in_flight
    }

    /// Metered units no payment covers: what the next payment may pay for.
    pub fn uncovered_units(&self) -> u64 {
        self.metered_units()
            .saturating_sub(self.paid_units.saturating_add(self.in_flight_units()))
    }

    pub fn last_seq(&self) -> Option<u64> {
        self.last.map(|a| a.seq)
    }

    /// The hash of the latest accepted reading.
    pub fn last_reading_hash(&self) -> Option<H256> {
        self.last.map(|a| a.hash)
    }

    pub fn ended(&self) -> Option<StopReason> {
        self.ended
    }

    /// Whether `signed` is the first or the latest reading already accepted (a replay to
    /// skip, not a reading to refuse).
    pub fn is_replay(&self, signed: &SignedMeterReading) -> bool {
        let hash = signed.reading.hash();
        self.first.is_some_and(|a| a.hash == hash) || self.last.is_some_and(|a| a.hash == hash)
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
        // Every check passed: record.
        if self.first.is_none() {
            self.first = Some(accepted);
            self.transaction_id = r.transaction_id;
            self.meter_start = Some(meter_start);
        }
        self.last = Some(accepted);
        if let Some(reason) = r.stopped_reason {
            self.ended = Some(reason);
        }
        Ok(PaymentDue {
            units,
            amount,
            additional_hash: accepted.hash,
            reading_seq: r.seq,
            metered_units: metered,
        })
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

    /// Checks the payee's bill for the latest reading (verified: this ledger, the session's
    /// payee, not expired at ledger time `now`) and returns the units it pays for: a whole
    /// number of units at the offer's price, more than zero and no more than are uncovered.
    /// Changes nothing.
    pub fn check_bill(&self, bill: &SignedPaymentRequest, now: u64) -> Result<u64, SessionError> {
        let request = &bill.request;
        if request.payee != self.offer.payee {
            return Err(SessionError::NotSigner {
                expected: self.offer.payee,
                signer: request.payee,
            });
        }
        bill.verify(&self.offer.domain, now)
            .map_err(SessionError::BadBill)?;
        let Some(last) = self.last else {
            return Err(SessionError::BillForUnknownReading {
                memo_hash: request.memo_hash,
            });
        };
        if request.memo_hash != last.hash {
            return Err(SessionError::BillForUnknownReading {
                memo_hash: request.memo_hash,
            });
        }
        let price = self.offer.price_per_unit;
        if price.is_zero() {
            return Err(SessionError::BillNotWholeUnits {
                amount: request.amount,
                price,
            });
        }
        let (units, rest) = request.amount.div_rem(price);
        if !rest.is_zero() {
            return Err(SessionError::BillNotWholeUnits {
                amount: request.amount,
                price,
            });
        }
        let uncovered = self.uncovered_units();
        match u64::try_from(units) {
            Ok(units) if units <= uncovered => Ok(units),
            _ => Err(SessionError::BillBeyondMetered {
                amount: request.amount,
                uncovered,
            }),
        }
    }

    /// Counts `units` against the latest reading as in flight under `key`, before the
    /// payment is signed. Refuses more units than are uncovered, zero units, or a key
    /// already in flight.
    pub fn begin_payment(&mut self, key: H256, units: u64) -> Result<PaymentDue, SessionError> {
        let Some(last) = self.last else {
            return Err(SessionError::NothingDue {
                units,
                uncovered: 0,
            });
        };
        let uncovered = self.uncovered_units();
        if units == 0 || units > uncovered {
            return Err(SessionError::NothingDue { units, uncovered });
        }
        if self.in_flight.iter().any(|p| p.key == key) {
            return Err(SessionError::PaymentExists { key });
        }
        let amount = self.amount_for(units)?;
        self.in_flight.push(PaymentInFlight {
            key,
            units,
            amount,
            reading_seq: last.seq,
            reading_hash: last.hash,
        });
        Ok(PaymentDue {
            units,
            amount,
            additional_hash: last.hash,
            reading_seq: last.seq,
            metered_units: self.metered_units(),
        })
    }

    /// The payment `key` completed: its units are paid.
    pub fn record_paid(&mut self, key: H256) -> Result<PaymentInFlight, SessionError> {
        let at = self.position(key)?;
        let p = self.in_flight.remove(at);
        self.paid_units = self.paid_units.saturating_add(p.units);
        self.paid_amount = self.paid_amount.saturating_add(p.amount);
        if self
            .last_paid_reading
            .is_none_or(|(seq, _)| p.reading_seq > seq)
        {
            self.last_paid_reading = Some((p.reading_seq, p.reading_hash));
        }
        Ok(p)
    }

    /// The payment `key` failed: its units are uncovered again, for the next bill.
    pub fn handle_payment_failed(&mut self, key: H256) -> Result<PaymentInFlight, SessionError> {
        let at = self.position(key)?;
        Ok(self.in_flight.remove(at))
    }

    fn position(&self, key: H256) -> Result<usize, SessionError> {
        self.in_flight
            .iter()
            .position(|p| p.key == key)
            .ok_or(SessionError::UnknownPayment { key })
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
            last_reading_hash: self.last_paid_reading.map_or(first.hash, |(_, h)| h),
        })
    }
}
