//! Metered sessions on the device: a payee (a charger, a lock, a meter) sells units as it
//! delivers them, a payer (a car, a renter, a buyer) pays for each signed reading. The rules
//! are `channel_core::session`'s; the hub relays the messages (`voltlane.v1.Sessions`), and
//! every payment is a mediated payment of a bill: the payee's payment request whose
//! `memo_hash` is the reading's hash.
//!
//! # Payee ([`PayeeHandle`])
//! [`Client::offer_session`](crate::Client::offer_session) signs an offer and opens it on the
//! hub. Once a payer accepts ([`PayeeHandle::wait_accepted`]) the meter start is published.
//! The app's metering loop then calls [`PayeeHandle::record`] with the meter's register: the
//! reading is signed with the meter key, the unbilled units are billed, both are stored and
//! published, and the answer says whether to keep delivering and how far
//! ([`Delivery`]): never more than the credit window ahead of payment.
//! [`PayeeHandle::finish`] stops, publishes the final reading and exchanges the receipt.
//!
//! # Payer ([`PayerHandle`])
//! [`Client::accept_session`](crate::Client::accept_session) claims the session and checks the
//! offer. From then on the SDK checks every reading (signature, seq, register, time, rate,
//! budget) and every bill, and pays exactly the units a valid reading shows and nothing else;
//! the app watches [`PayerHandle::updates`] and calls [`PayerHandle::finish`] to end.
//!
//! # Restarts
//! Both sides keep their session in the device store (durable before anything leaves the
//! device) and resume with `Client::resume_payee_session` / `Client::resume_payer_session`:
//! the payee reopens and republishes its latest reading, the payer re-accepts and finishes
//! the payments it had begun. A hub restart is a reconnect for both.
//!
//! # Receipts
//! Each side computes the receipt from its own state and signs it; the hub passes the
//! signatures across, and each side accepts the other's only over an equal receipt. The
//! result, a [`SignedSessionReceipt`], exports as JSON ([`receipt_json`]) and verifies
//! offline ([`verify_receipt_json`]).

mod payee;
mod payer;
mod receipt;
mod watch;

use channel_core::primitives::U256;
use channel_core::session::MeterUnit;

pub use channel_core::session::{
    Delivery, PayerLimits, SessionError, SignedSessionReceipt, StopReason,
};
pub use payee::{PayeeHandle, PayeeStatus};
pub use payer::{PayerHandle, PayerStatus, PayerUpdate};
pub use receipt::{receipt_json, verify_receipt_json};

/// What a payee offers. Units are the offer's `unit`: prices are token units per Wh, per
/// second of access or per reading accordingly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTerms {
    pub unit: MeterUnit,
    /// Token units per `unit`.
    pub price_per_unit: U256,
    /// Units delivered ahead of payment, at most.
    pub credit_window_units: u64,
    /// The session's cap, if any.
    pub max_units: Option<u64>,
    /// The physical ceiling, in units per hour (energy: the maximum power in W).
    pub max_units_per_hour: u64,
    /// How long (ledger seconds) a payer may take to accept.
    pub offer_valid_secs: u64,
    /// How long (ledger seconds) each bill can be paid.
    pub bill_valid_secs: u64,
    /// The meter's register at the start (OCPP meterStart).
    pub meter_start: u64,
    /// The OCPP transactionId, if the session is an OCPP transaction.
    pub transaction_id: Option<String>,
}

impl SessionTerms {
    /// Terms with a 5-minute offer and 10-minute bills, starting at register 0.
    pub fn new(
        unit: MeterUnit,
        price_per_unit: U256,
        credit_window_units: u64,
        max_units_per_hour: u64,
    ) -> Self {
        Self {
            unit,
            price_per_unit,
            credit_window_units,
            max_units: None,
            max_units_per_hour,
            offer_valid_secs: 300,
            bill_valid_secs: 600,
            meter_start: 0,
            transaction_id: None,
        }
    }
}

/// Wall-clock unix seconds: the time readings are stamped with and checked against.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl crate::Client {
    /// Payee: offers a metered session on `terms`, its readings signed by `meter` (the
    /// device key itself, or the meter's own key), and opens it on the hub. Give the payer
    /// [`PayeeHandle::id`] (e.g. as a QR code).
    pub async fn offer_session(
        &self,
        terms: SessionTerms,
        meter: channel_core::LocalSigner,
    ) -> Result<PayeeHandle, crate::ClientError> {
        PayeeHandle::create(self.shared.clone(), terms, meter).await
    }

    /// Payee: resumes session `id` from the store after a restart (`meter` must be the key
    /// its offer names), billing with `bill_valid_secs` from now on.
    pub async fn resume_payee_session(
        &self,
        id: channel_core::H256,
        meter: channel_core::LocalSigner,
        bill_valid_secs: u64,
    ) -> Result<PayeeHandle, crate::ClientError> {
        PayeeHandle::resume(self.shared.clone(), id, meter, bill_valid_secs).await
    }

    /// Payer: accepts session `id` within `limits` and pays for its readings from now on.
    pub async fn accept_session(
        &self,
        id: channel_core::H256,
        limits: PayerLimits,
    ) -> Result<PayerHandle, crate::ClientError> {
        PayerHandle::accept(self.shared.clone(), id, limits).await
    }

    /// Payer: resumes session `id` from the store after a restart.
    pub async fn resume_payer_session(
        &self,
        id: channel_core::H256,
    ) -> Result<PayerHandle, crate::ClientError> {
        PayerHandle::resume(self.shared.clone(), id).await
    }

    /// Ids of the sessions in this device's store: `(metered here, paid from here)`.
    pub fn session_ids(
        &self,
    ) -> Result<(Vec<channel_core::H256>, Vec<channel_core::H256>), crate::ClientError> {
        Ok((
            self.shared.store.payee_session_ids()?,
            self.shared.store.payer_session_ids()?,
        ))
    }
}
