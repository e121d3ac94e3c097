//! The records of metered sessions, one per session id and side:
//! - [`PayeeSessionRecord`]: our signed offer, the core [`PayeeSession`], the payer that
//!   accepted, the latest publication (to publish again after a reconnect) and the final
//!   receipt.
//! - [`PayerSessionRecord`]: the core [`PayerSession`], the bills being paid (to resume them
//!   after a restart) and the final receipt.
//!
//! Durable before anything they record leaves the device.

use channel_core::mediation::SignedPaymentRequest;
use channel_core::primitives::{Address, H256};
use channel_core::session::{
    PayeeSession, PayerSession, Publication, SignedSessionOffer, SignedSessionReceipt,
};
use serde::{Deserialize, Serialize};

use super::{hash_key, ns, DeviceBatch, DeviceStore, StoreError};

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

impl DeviceBatch {
    pub fn payee_session(&mut self, r: &PayeeSessionRecord) -> Result<&mut Self, StoreError> {
        self.put(ns::PAYEE_SESSION, &hash_key(&r.offer.offer.session_id), r)
    }

    pub fn payer_session(&mut self, r: &PayerSessionRecord) -> Result<&mut Self, StoreError> {
        self.put(ns::PAYER_SESSION, &hash_key(&r.offer.offer.session_id), r)
    }
}

impl DeviceStore {
    fn session_ids(&self, namespace: &'static str) -> Result<Vec<H256>, StoreError> {
        let mut ids = Vec::new();
        for key in self.kv.list(namespace)? {
            let bytes = hex::decode(&key).ok();
            let id = bytes
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    key: format!("{namespace}/{key}"),
                    message: "a session key is 32 bytes in hex".into(),
                })?;
            ids.push(H256(id));
        }
        Ok(ids)
    }

    pub fn payee_session(&self, id: &H256) -> Result<Option<PayeeSessionRecord>, StoreError> {
        self.get(ns::PAYEE_SESSION, &hash_key(id))
    }

    /// Stores the payee session record, durably.
    pub async fn put_payee_session(&self, r: &PayeeSessionRecord) -> Result<(), StoreError> {
        let mut batch = DeviceBatch::new();
        batch.payee_session(r)?;
        self.commit(batch).await
    }

    pub fn payee_session_ids(&self) -> Result<Vec<H256>, StoreError> {
        self.session_ids(ns::PAYEE_SESSION)
    }

    pub fn payer_session(&self, id: &H256) -> Result<Option<PayerSessionRecord>, StoreError> {
        self.get(ns::PAYER_SESSION, &hash_key(id))
    }

    /// Stores the payer session record, durably.
    pub async fn put_payer_session(&self, r: &PayerSessionRecord) -> Result<(), StoreError> {
        let mut batch = DeviceBatch::new();
        batch.payer_session(r)?;
        self.commit(batch).await
    }

    pub fn payer_session_ids(&self) -> Result<Vec<H256>, StoreError> {
        self.session_ids(ns::PAYER_SESSION)
    }
}
