//! The records of metered sessions, one per session id and side:
//! - [`PayeeSessionRecord`]: our signed offer, the core [`PayeeSession`], the payer that
//!   accepted, the latest publication (to publish again after a reconnect) and the final
//!   receipt.
//! - [`PayerSessionRecord`]: the core [`PayerSession`], the bills being paid (to resume them
//!   after a restart) and the final receipt.
//!
//! Written and flushed before anything they record leaves the device.

use channel_core::mediation::SignedPaymentRequest;
use channel_core::primitives::{Address, H256};
use channel_core::session::{
    PayeeSession, PayerSession, Publication, SignedSessionOffer, SignedSessionReceipt,
};
use serde::{Deserialize, Serialize};

use super::{record, DeviceStore, StoreError};

const PAYEE: &str = "session-payee/";
const PAYER: &str = "session-payer/";

fn key(prefix: &str, id: &H256) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// The metering side of one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayeeSessionRecord {
    pub offer: SignedSessionOffer,
    pub session: PayeeSession,
    pub payer: Option<Address>,
    pub latest: Option<Publication>,
    pub receipt: Option<SignedSessionReceipt>,
}

/// The paying side of one session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayerSessionRecord {
    pub offer: SignedSessionOffer,
    pub session: PayerSession,
    /// The bills of the payments in flight (keyed in the session by their secrethash).
    pub bills: Vec<SignedPaymentRequest>,
    pub receipt: Option<SignedSessionReceipt>,
}

impl DeviceStore {
    fn get_session<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &'static str,
        id: &H256,
    ) -> Result<Option<T>, StoreError> {
        self.kv
            .get(&key(prefix, id))?
            .map(|b| record::decode(prefix, &b))
            .transpose()
    }

    fn session_ids(&self, prefix: &'static str) -> Result<Vec<H256>, StoreError> {
        let mut ids = Vec::new();
        for (k, _) in self.kv.scan_prefix(prefix.as_bytes())? {
            let bytes = k.get(prefix.len()..).unwrap_or_default();
            let id = <[u8; 32]>::try_from(bytes).map_err(|_| StoreError::Corrupt {
                key: prefix.to_string(),
                message: format!("session key of {} bytes", bytes.len()),
            })?;
            ids.push(H256(id));
        }
        Ok(ids)
    }

    pub fn payee_session(&self, id: &H256) -> Result<Option<PayeeSessionRecord>, StoreError> {
        self.get_session(PAYEE, id)
    }

    pub fn put_payee_session(&self, r: &PayeeSessionRecord) -> Result<(), StoreError> {
        self.kv.insert(
            &key(PAYEE, &r.offer.offer.session_id),
            record::encode(PAYEE, r)?,
        )
    }

    /// Ids of every session this device meters.
    pub fn payee_session_ids(&self) -> Result<Vec<H256>, StoreError> {
        self.session_ids(PAYEE)
    }

    pub fn payer_session(&self, id: &H256) -> Result<Option<PayerSessionRecord>, StoreError> {
        self.get_session(PAYER, id)
    }

    pub fn put_payer_session(&self, r: &PayerSessionRecord) -> Result<(), StoreError> {
        self.kv.insert(
            &key(PAYER, &r.offer.offer.session_id),
            record::encode(PAYER, r)?,
        )
    }

    /// Ids of every session this device pays.
    pub fn payer_session_ids(&self) -> Result<Vec<H256>, StoreError> {
        self.session_ids(PAYER)
    }
}
