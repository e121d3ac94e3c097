//! The hub's [`MediatedTransfer`] records: one per secrethash, stored under
//! [`NS_MEDIATED`] in the same write as the channel change that goes with it, and kept in
//! memory behind one lock each.
//!
//! Lock order, everywhere: a transfer's record first, then one of its channels. Channel-only
//! paths (direct payments, withdraws) never take a record lock, so no cycle can form.
//! A secrethash is used for one mediated payment only: a second payment with a known
//! secrethash would let the hub take the payer's lock with a secret it already holds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex, RwLock};

use channel_core::mediation::MediatedTransfer;
use channel_core::H256;
use tokio::sync::Mutex;

use crate::error::HubError;
use crate::store::{record, KvStore, WriteBatch};

/// Store namespace of the mediated transfer records (key: secrethash, hex).
pub const NS_MEDIATED: &str = "mediated";
/// Format version of the stored records (the record carries its own version too).
pub const MEDIATED_RECORD_VERSION: u8 = 1;

pub(crate) type SharedRecord = Arc<Mutex<MediatedTransfer>>;

fn key(secrethash: &H256) -> String {
    hex::encode(secrethash.0)
}

/// Every mediated transfer the hub knows.
#[derive(Debug, Default)]
pub struct RecordBook {
    records: RwLock<HashMap<H256, SharedRecord>>,
    /// Secrethashes of finished transfers, dropped from memory (their records stay stored).
    retired: RwLock<HashSet<H256>>,
    /// Secrethashes being forwarded right now (before their record exists).
    reserved: StdMutex<HashSet<H256>>,
}

/// A secrethash reserved for one forward; released when dropped.
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    book: &'a RecordBook,
    secrethash: H256,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.book.reserved.lock() {
            set.remove(&self.secrethash);
        }
    }
}

impl RecordBook {
    /// Loads every stored record.
    pub fn load(store: &dyn KvStore) -> Result<Self, HubError> {
        let mut records = HashMap::new();
        let mut retired = HashSet::new();
        for k in store.list(NS_MEDIATED)? {
            if let Some(bytes) = store.read(NS_MEDIATED, &k)? {
                let r: MediatedTransfer =
                    record::decode(NS_MEDIATED, &k, MEDIATED_RECORD_VERSION, &bytes)?;
                if r.is_finished() {
                    retired.insert(r.secrethash());
                } else {
                    records.insert(r.secrethash(), Arc::new(Mutex::new(r)));
                }
            }
        }
        Ok(Self {
            records: RwLock::new(records),
            retired: RwLock::new(retired),
            reserved: StdMutex::new(HashSet::new()),
        })
    }

    fn poisoned() -> HubError {
        HubError::Internal("mediation record map lock poisoned".into())
    }

    pub(crate) fn get(&self, secrethash: &H256) -> Result<Option<SharedRecord>, HubError> {
        Ok(self
            .records
            .read()
            .map_err(|_| Self::poisoned())?
            .get(secrethash)
            .cloned())
    }

    /// Every record in memory: the unfinished ones, and finished ones not yet retired.
    pub(crate) fn all(&self) -> Result<Vec<SharedRecord>, HubError> {
        Ok(self
            .records
            .read()
            .map_err(|_| Self::poisoned())?
            .values()
            .cloned()
            .collect())
    }

    /// Records in memory (not retired).
    pub fn len(&self) -> usize {
        self.records.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Transfers in memory that are not finished (finished ones wait for the driver to
    /// retire them).
    pub async fn unfinished(&self) -> usize {
        let Ok(all) = self.all() else { return 0 };
        let mut n = 0;
        for rec in all {
            if !rec.lock().await.is_finished() {
                n += 1;
            }
        }
        n
    }

    /// Whether `secrethash` belongs to a finished transfer.
    pub fn is_retired(&self, secrethash: &H256) -> bool {
        self.retired
            .read()
            .map(|set| set.contains(secrethash))
            .unwrap_or(true)
    }

    /// Drops a finished transfer from memory; its secrethash stays used.
    pub(crate) fn retire(&self, secrethash: H256) -> Result<(), HubError> {
        self.retired
            .write()
            .map_err(|_| Self::poisoned())?
            .insert(secrethash);
        self.records
            .write()
            .map_err(|_| Self::poisoned())?
            .remove(&secrethash);
        Ok(())
    }

    /// Reserves `secrethash` for a new forward: refused if a record or another forward has it.
    pub(crate) fn reserve(&self, secrethash: H256) -> Result<Reservation<'_>, HubError> {
        if self.get(&secrethash)?.is_some() || self.is_retired(&secrethash) {
            return Err(HubError::SecretHashUsed(secrethash));
        }
        let mut set = self.reserved.lock().map_err(|_| Self::poisoned())?;
        if !set.insert(secrethash) {
            return Err(HubError::SecretHashUsed(secrethash));
        }
        Ok(Reservation {
            book: self,
            secrethash,
        })
    }

    /// Adds a record made durable under `reservation`.
    pub(crate) fn insert(
        &self,
        _reservation: Reservation<'_>,
        r: MediatedTransfer,
    ) -> Result<SharedRecord, HubError> {
        let shared = Arc::new(Mutex::new(r));
        let secrethash = shared.try_lock().map(|r| r.secrethash());
        let secrethash =
            secrethash.map_err(|_| HubError::Internal("new record already locked".into()))?;
        self.records
            .write()
            .map_err(|_| Self::poisoned())?
            .insert(secrethash, shared.clone());
        Ok(shared)
    }

    /// Puts `r` into `batch`.
    pub(crate) fn put(batch: &mut WriteBatch, r: &MediatedTransfer) -> Result<(), HubError> {
        batch.put(
            NS_MEDIATED,
            &key(&r.secrethash()),
            record::encode(MEDIATED_RECORD_VERSION, r)?,
        );
        Ok(())
    }
}
