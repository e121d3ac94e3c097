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
//! - [`publication`]: the [`Publication`] (reading + bill) a relay checks and passes on.
//! - [`receipt`]: the [`SignedSessionReceipt`] both sides sign at the end.
//! - [`error`]: [`SessionError`], every refusal.
//!
//! # Flow
//! ```text
//! payee → payer   SignedSessionOffer                  payer: PayerSession::accept
//! payee           PayeeSession::start(meter_start)
//! payee → payer   reading seq 0 (the meter start)     payer: handle_reading → nothing due
//! payee           record_delivery(register) → Continue { headroom } | Stop(reason)
//! payee           publish_reading → reading n; record_bill(secrethash, unbilled units)
//! payee → payer   reading n + bill (a payment request, memo_hash = reading hash)
//! payer           handle_reading → PaymentDue; check_bill → units; begin_payment
//! payer → payee   mediated payment of the bill        payee: handle_bill_paid
//!                                                      payer: record_paid
//! both            SessionReceipt, computed by each side, signed by both
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
//! A mediated payment (payee = a device) pays a bill: the payee's payment request whose
//! `memo_hash` is the hash of the reading it bills. The payer's locked transfer and unlock
//! carry the same hash as their balance proofs' `additional_hash`, so the request, the
//! secret that proves payment, and the payer's signed proofs all commit to one signed,
//! timestamped reading. A direct payment to the hub would carry the reading hash as its
//! `additional_hash` the same way ([`PayerSession::begin_payment`] with the reading hash as
//! the key); the hub does not meter today, so the drivers use bills.

pub mod error;
pub mod offer;
pub mod payee;
pub mod payer;
pub mod publication;
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
pub use payee::{Bill, Delivery, PayeeSession};
pub use payer::{PayerLimits, PayerSession, PaymentDue, PaymentInFlight};
pub use publication::Publication;
pub use reading::{MeterReading, SignedMeterReading, StopReason};
pub use receipt::{SessionReceipt, SignedSessionReceipt};
