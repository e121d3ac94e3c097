//! The hub's [`MediatedTransfer`] records: one per secrethash, stored in the same write as
//! the channel change that goes with it.
//! - An unfinished transfer lives under [`NS_MEDIATED`] and in memory, behind one lock each.
//! - The write that finishes it moves it to [`NS_MEDIATED_DONE`]. The driver then drops it
//!   from memory (retires it). Finished transfers are the hub's history: they stay on disk,
//!   cost no memory and are not read at start-up, so neither grows with the payments made.
//!
//! Lock order, everywhere: a transfer's record first, then one of its channels. Channel-only
//! paths (direct payments, withdraws) never take a record lock, so no cycle can form.
//! A secrethash is used for one mediated payment only: a second payment with a known
//! secrethash would let the hub take the payer's lock with a secret it already holds. So a
//! secrethash is "used" while its record exists anywhere: in memory or in either namespace.
//! (Data directories from before the split keep finished records under [`NS_MEDIATED`];
//! they are skipped at start-up and still count as used.)

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex, RwLock};

use channel_core::mediation::MediatedTransfer;
use channel_core::H256;
use tokio::sync::Mutex;

use crate::error::HubError;
use crate::store::{KvStore, WriteBatch};

/// Store namespace of the unfinished mediated transfer records (key: secrethash, hex), each a
/// [`MediatedTransferRecord`].
pub const NS_MEDIATED: &str = "mediated";
/// Store namespace of the finished ones (same key).
pub const NS_MEDIATED_DONE: &str = "mediated_done";
pub use super::transfer_record::{MediatedTransferRecord, MEDIATED_RECORD_VERSION};

pub(crate) type SharedRecord = Arc<Mutex<MediatedTransfer>>;

fn key(secrethash: &H256) -> String {
    hex::encode(secrethash.0)
}

/// Every mediated transfer the hub knows.
#[derive(Debug)]
pub struct RecordBook {
    store: Arc<dyn KvStore>,
    /// The unfinished transfers, and finished ones the driver has not retired yet.
    records: RwLock<HashMap<H256, SharedRecord>>,
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
    /// Loads the unfinished records (finished ones stay on disk).
    pub fn load(store: Arc<dyn KvStore>) -> Result<Self, HubError> {
        let mut records = HashMap::new();
        for k in store.list(NS_MEDIATED)? {
            if let Some(bytes) = store.read(NS_MEDIATED, &k)? {
                let r = MediatedTransferRecord::decode(NS_MEDIATED, &k, &bytes)?;
                if !r.is_finished() {
                    records.insert(r.secrethash(), Arc::new(Mutex::new(r)));
                }
            }
        }
        Ok(Self {
            store,
            records: RwLock::new(records),
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

    /// Whether a mediated transfer with `secrethash` exists or existed (see the module docs).
    pub fn is_used(&self, secrethash: &H256) -> Result<bool, HubError> {
        if self.get(secrethash)?.is_some() {
            return Ok(true);
        }
        let k = key(secrethash);
        Ok(self.store.read(NS_MEDIATED_DONE, &k)?.is_some()
            || self.store.read(NS_MEDIATED, &k)?.is_some())
    }

    /// Drops a finished transfer from memory; it stays stored, its secrethash used.
    pub(crate) fn retire(&self, secrethash: H256) -> Result<(), HubError> {
        self.records
            .write()
            .map_err(|_| Self::poisoned())?
            .remove(&secrethash);
        Ok(())
    }

    /// Reserves `secrethash` for a new forward: refused if a record or another forward has it.
    pub(crate) fn reserve(&self, secrethash: H256) -> Result<Reservation<'_>, HubError> {
        if self.is_used(&secrethash)? {
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

    /// Puts `r` into `batch`: under [`NS_MEDIATED`] while unfinished; the write that finishes
    /// it moves it to [`NS_MEDIATED_DONE`].
    pub(crate) fn put(batch: &mut WriteBatch, r: &MediatedTransfer) -> Result<(), HubError> {
        let k = key(&r.secrethash());
        let bytes = MediatedTransferRecord::encode(r)?;
        if r.is_finished() {
            batch.remove(NS_MEDIATED, &k);
            batch.put(NS_MEDIATED_DONE, &k, bytes);
        } else {
            batch.put(NS_MEDIATED, &k, bytes);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use channel_core::channel::Channel;
    use channel_core::crypto::Signer;
    use channel_core::mediation::{ForwardPlan, MediationConfig};
    use channel_core::testing::{test_domain, test_signer};
    use channel_core::{HashTimeLock, Secret, U256};

    use super::*;
    use crate::store::MemoryStore;

    /// A transfer with secret `n`; finished (both locks expired) if `finished`.
    fn transfer(n: u8, finished: bool) -> MediatedTransfer {
        let hub = test_signer(200).address();
        let incoming = Channel::new(
            test_domain(),
            U256::from(1u8),
            hub,
            test_signer(1).address(),
        );
        let outgoing = Channel::new(
            test_domain(),
            U256::from(2u8),
            hub,
            test_signer(2).address(),
        );
        let lock = HashTimeLock {
            expiration: 100,
            amount: U256::from(10u8),
            secrethash: Secret(H256([n; 32])).hash(),
        };
        let plan = ForwardPlan {
            outgoing_lock: HashTimeLock {
                expiration: 90,
                amount: U256::from(9u8),
                ..lock
            },
            fee: U256::from(1u8),
        };
        let r = MediatedTransfer::new(
            &incoming,
            lock,
            &outgoing,
            plan,
            &MediationConfig::default(),
        );
        if !finished {
            return r;
        }
        let mut json = serde_json::to_value(&r).unwrap();
        json["incoming"] = serde_json::json!("Expired");
        json["outgoing"] = serde_json::json!("Expired");
        let done: MediatedTransfer = serde_json::from_value(json).unwrap();
        assert!(done.is_finished());
        done
    }

    async fn write(store: &Arc<dyn KvStore>, r: &MediatedTransfer) {
        let mut batch = WriteBatch::new();
        RecordBook::put(&mut batch, r).unwrap();
        store.write(batch).unwrap().durable().await.unwrap();
    }

    #[tokio::test]
    async fn finished_transfers_leave_memory_and_start_up_but_stay_used() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let (open, done) = (transfer(1, false), transfer(2, false));
        write(&store, &open).await;
        write(&store, &done).await;
        let book = RecordBook::load(store.clone()).unwrap();
        assert_eq!(book.len(), 2);

        // The write that finishes a transfer moves it; the driver retires it from memory.
        let finished = transfer(2, true);
        write(&store, &finished).await;
        book.retire(finished.secrethash()).unwrap();
        assert_eq!(book.len(), 1);
        assert_eq!(
            store.list(NS_MEDIATED).unwrap(),
            vec![key(&open.secrethash())]
        );
        assert_eq!(
            store.list(NS_MEDIATED_DONE).unwrap(),
            vec![key(&finished.secrethash())]
        );
        assert!(book.is_used(&finished.secrethash()).unwrap());
        assert!(matches!(
            book.reserve(finished.secrethash()),
            Err(HubError::SecretHashUsed(_))
        ));
        assert!(!book.is_used(&transfer(3, false).secrethash()).unwrap());

        // A restart loads only the unfinished one; the finished one is still used.
        let book = RecordBook::load(store.clone()).unwrap();
        assert_eq!(book.len(), 1);
        assert!(book.get(&open.secrethash()).unwrap().is_some());
        assert!(book.is_used(&finished.secrethash()).unwrap());
    }

    #[tokio::test]
    async fn finished_transfers_stored_before_the_split_are_skipped_and_stay_used() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let old = transfer(4, true);
        let mut batch = WriteBatch::new();
        batch.put(
            NS_MEDIATED,
            &key(&old.secrethash()),
            MediatedTransferRecord::encode(&old).unwrap(),
        );
        store.write(batch).unwrap().durable().await.unwrap();
        let book = RecordBook::load(store).unwrap();
        assert!(book.is_empty());
        assert!(book.is_used(&old.secrethash()).unwrap());
    }
}
