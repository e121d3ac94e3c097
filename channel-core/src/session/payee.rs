//! The payee's (metering side's) view of a session: how much it delivered, published, billed
//! and was paid, and whether it may keep delivering. It also numbers the readings it
//! publishes.
//!
//! # The credit rule
//! Unpaid units (delivered − paid; billed and not yet paid counts as unpaid) may reach the
//! credit window and never pass it. After each [`PayeeSession::record_delivery`] the payee
//! learns its headroom: it may deliver at most that many more units before it records again.
//! With headroom zero it waits for a payment ([`PayeeSession::handle_bill_paid`], then
//! [`PayeeSession::headroom`]); if it ever finds unpaid units beyond the window it must
//! stop, with `LocalOutOfCredit`. A payee that delivers only within its headroom is
//! therefore never owed more than the window.
//!
//! Size the window to cover the units delivered between two readings plus those delivered
//! while a payment travels, or the payee will pause in every interval.
//!
//! # Bills
//! After publishing a reading ([`PayeeSession::publish_reading`]) the payee bills the units
//! it shows that no outstanding bill covers ([`PayeeSession::unbilled_units`]): a payment
//! request for exactly units × price whose `memo_hash` is the reading's hash, recorded with
//! [`PayeeSession::record_bill`]. A bill is paid ([`PayeeSession::handle_bill_paid`]) or
//! fails or expires ([`PayeeSession::handle_bill_failed`], [`PayeeSession::expired_bills`]),
//! and then its units are billed again with the next reading.

use serde::{Deserialize, Serialize};

use crate::primitives::{u256_dec, Address, H256, U256};

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

/// A bill sent and not yet paid or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bill {
    /// The payment request's secrethash.
    pub secrethash: H256,
    pub units: u64,
    #[serde(with = "u256_dec")]
    pub amount: U256,
    /// The reading billed (the request's memo).
    pub reading_seq: u64,
    pub reading_hash: H256,
    /// The request's expiry, ledger time.
    pub expires_at: u64,
}

/// The latest reading published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Published {
    seq: u64,
    hash: H256,
    metered: u64,
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
    first_reading_hash: Option<H256>,
    published: Option<Published>,
    bills: Vec<Bill>,
    paid_units: u64,
    #[serde(with = "u256_dec")]
    paid_amount: U256,
    /// The highest-seq reading a paid bill named.
    last_paid_reading: Option<(u64, H256)>,
    ended: Option<StopReason>,
    /// The reading that told the payer the session ended; published again, never changed.
    final_reading: Option<MeterReading>,
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
            first_reading_hash: None,
            published: None,
            bills: Vec::new(),
            paid_units: 0,
            paid_amount: U256::ZERO,
            last_paid_reading: None,
            ended: None,
            final_reading: None,
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

    /// The bills sent and not yet paid or failed.
    pub fn bills(&self) -> &[Bill] {
        &self.bills
    }

    /// Units the latest published reading shows that neither a payment nor an outstanding
    /// bill covers: what the next bill asks for.
    pub fn unbilled_units(&self) -> u64 {
        let billed = self
            .bills
            .iter()
            .fold(0u64, |sum, b| sum.saturating_add(b.units));
        self.published.map_or(0, |p| {
            p.metered
                .saturating_sub(self.paid_units.saturating_add(billed))
        })
    }

    pub fn ended(&self) -> Option<StopReason> {
        self.ended
    }

    /// Whether everything published is paid and nothing is billed: a stopped session with
    /// this is complete.
    pub fn settled(&self) -> bool {
        self.bills.is_empty() && self.published.is_none_or(|p| p.metered == self.paid_units)
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
        Ok(self.delivery())
    }

    /// Whether to keep delivering, by the credit window and the offer's cap; ends the
    /// session when either is reached.
    fn delivery(&mut self) -> Delivery {
        if let Some(reason) = self.ended {
            return Delivery::Stop(reason);
        }
        if self.unpaid_units() > self.offer.credit_window_units {
            self.ended = Some(StopReason::LocalOutOfCredit);
            return Delivery::Stop(StopReason::LocalOutOfCredit);
        }
        if let Some(max) = self.offer.max_units {
            if self.delivered_units() >= max {
                let reason = limit_reason(self.offer.unit);
                self.ended = Some(reason);
                return Delivery::Stop(reason);
            }
        }
        Delivery::Continue {
            headroom_units: self.headroom(),
        }
    }

    /// The next reading to sign and publish: the current register at the last delivery
    /// time, numbered after the previous one, carrying the stop reason once ended. Once that
    /// final reading is published, the same reading again (late bills name it).
    pub fn publish_reading(&mut self) -> MeterReading {
        if let Some(last) = self.final_reading {
            return last;
        }
        let reading = MeterReading {
            session_id: self.offer.session_id,
            transaction_id: self.transaction_id,
            seq: self.next_seq,
            register: self.register,
            timestamp: self.last_delivery_at,
            measurand: self.offer.unit,
            stopped_reason: self.ended,
        };
        let hash = reading.hash();
        self.first_reading_hash.get_or_insert(hash);
        self.published = Some(Published {
            seq: reading.seq,
            hash,
            metered: self.delivered_units(),
        });
        self.next_seq = self.next_seq.saturating_add(1);
        if self.ended.is_some() {
            self.final_reading = Some(reading);
        }
        reading
    }

    /// The reading that ended the session, once published.
    pub fn final_reading(&self) -> Option<&MeterReading> {
        self.final_reading.as_ref()
    }

    /// Records a bill of `units` for the latest published reading under the request's
    /// `secrethash`, expiring at ledger time `expires_at`; returns its amount. Refuses zero
    /// units, more than are unbilled, or a secrethash already billed.
    pub fn record_bill(
        &mut self,
        secrethash: H256,
        units: u64,
        expires_at: u64,
    ) -> Result<U256, SessionError> {
        let unbilled = self.unbilled_units();
        let Some(published) = self.published else {
            return Err(SessionError::NothingToBill { units, unbilled });
        };
        if units == 0 || units > unbilled {
            return Err(SessionError::NothingToBill { units, unbilled });
        }
        if self.bills.iter().any(|b| b.secrethash == secrethash) {
            return Err(SessionError::BillExists { secrethash });
        }
        let price = self.offer.price_per_unit;
        let amount = price
            .checked_mul(U256::from(units))
            .ok_or(SessionError::AmountOverflow { units, price })?;
        self.bills.push(Bill {
            secrethash,
            units,
            amount,
            reading_seq: published.seq,
            reading_hash: published.hash,
            expires_at,
        });
        Ok(amount)
    }

    /// The bill `secrethash` was paid (the payee holds a lock for its amount and revealed
    /// the secret). Accepted after the end too: late payments for delivered units.
    pub fn handle_bill_paid(&mut self, secrethash: H256) -> Result<Bill, SessionError> {
        let at = self.bill_position(secrethash)?;
        let bill = self.bills.remove(at);
        self.paid_units = self.paid_units.saturating_add(bill.units);
        self.paid_amount = self.paid_amount.saturating_add(bill.amount);
        if self
            .last_paid_reading
            .is_none_or(|(seq, _)| bill.reading_seq > seq)
        {
            self.last_paid_reading = Some((bill.reading_seq, bill.reading_hash));
        }
        Ok(bill)
    }

    /// The bill `secrethash` will not be paid: its units are billed again.
    pub fn handle_bill_failed(&mut self, secrethash: H256) -> Result<Bill, SessionError> {
        let at = self.bill_position(secrethash)?;
        Ok(self.bills.remove(at))
    }

    /// The bills whose requests expired at ledger time `now` (the driver fails them once it
    /// knows no lock for them is pending).
    pub fn expired_bills(&self, now: u64) -> Vec<H256> {
        self.bills
            .iter()
            .filter(|b| now >= b.expires_at)
            .map(|b| b.secrethash)
            .collect()
    }

    fn bill_position(&self, secrethash: H256) -> Result<usize, SessionError> {
        self.bills
            .iter()
            .position(|b| b.secrethash == secrethash)
            .ok_or(SessionError::UnknownBill { secrethash })
    }

    /// Ends the session from the payee's side (the car unplugged, the operator stopped it).
    pub fn stop(&mut self, reason: StopReason) {
        self.ended.get_or_insert(reason);
    }

    /// The receipt of what was paid so far, as this side counts it; `None` before the
    /// first reading.
    pub fn receipt(&self, payer: Address) -> Option<SessionReceipt> {
        let first = self.first_reading_hash?;
        let o = &self.offer;
        Some(SessionReceipt {
            domain: o.domain,
            session_id: o.session_id,
            payer,
            payee: o.payee,
            unit: o.unit,
            price_per_unit: o.price_per_unit,
            total_units: self.paid_units,
            total_paid: self.paid_amount,
            first_reading_hash: first,
            last_reading_hash: self.last_paid_reading.map_or(first, |(_, h)| h),
        })
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
