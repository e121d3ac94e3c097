//! Metered sessions: paying for energy, access time or data as it is delivered, each payment
//! bound to a signed meter reading. Pure rules, no clock (every time-dependent call takes
//! `now`, unix seconds), no wire, no disk; the drivers carry the messages and persist the
//! serializable session states.
//!
//! - [`offer`]: the payee's signed [`SessionOffer`] (unit, price per unit, credit window,
//!   optional cap, maximum rate, meter key).
//! - [`reading`]: the meter's signed [`MeterReading`] and its OCPP mapping; its hash is a
//!   payment's `additional_hash`.
//! - [`payer`]: [`PayerSession`], which checks readings and says what is due.
//! - [`payee`]: [`PayeeSession`], which tracks delivered against paid and enforces the credit
//!   window.
//! - [`receipt`]: the [`SignedSessionReceipt`] both sides sign at the end.
//! - [`error`]: [`SessionError`], every refusal.
//!
//! # Flow
//! ```text
//! payee → payer   SignedSessionOffer                 payer: PayerSession::accept
//! payee           PayeeSession::start(meter_start)
//! payee → payer   SignedMeterReading seq 0 (start)   payer: handle_reading → nothing due
//! payee           record_delivery(register) → Continue { headroom } | Stop(reason)
//! payee → payer   SignedMeterReading seq n           payer: handle_reading → PaymentDue
//! payer → payee   payment(units × price, additional_hash = reading.hash())
//! payee           handle_payment(units, amount)      payer: record_paid on the ack
//! both            SessionReceipt, signed by payer and payee
//! ```
//!
//! # OCPP
//! A charger's OCPP 1.6 `StartTransaction` / `MeterValues` / `StopTransaction` or 2.0.1
//! `TransactionEvent` (`Started`, `Updated`, `Ended`) each become one reading: the
//! transaction's `meterStart` is the register of reading 0, every `MeterValues` sample of
//! `Energy.Active.Import.Register` (Wh) a later reading with the next seq (2.0.1: `seqNo`),
//! and `meterStop` with its `stoppedReason` the last one. The table is in [`reading`].
//!
//! # Payments
//! A direct payment carries the reading's hash as the balance proof's `additional_hash`. A
//! mediated payment carries it the same way in the payer's locked transfer and unlock to
//! the hub (both take an `additional_hash`); binding it into the payee's payment request as
//! well is left to the mediation API of the next part of issue 8.

pub mod error;
pub mod offer;
pub mod payee;
pub mod payer;
pub mod reading;
pub mod receipt;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod payee_tests;
#[cfg(test)]
mod payer_tests;
#[cfg(test)]
mod receipt_tests;

pub use error::SessionError;
pub use offer::{MeterUnit, SessionOffer, SignedSessionOffer};
pub use payee::{Delivery, PayeeSession};
pub use payer::{PayerLimits, PayerSession, PaymentDue};
pub use reading::{MeterReading, SignedMeterReading, StopReason};
pub use receipt::{SessionReceipt, SignedSessionReceipt};
