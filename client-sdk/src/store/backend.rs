//! Key/value backends of the device store: sled on disk, and an in-memory map for tests.
//!
//! Writes are buffered until [`KvBackend::flush`] returns; callers flush before any message
//! that depends on the write leaves the device.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use futures::future::BoxFuture;

use super::StoreError;

/// Key/value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;
type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// A byte-oriented key/value store with an explicit durability point.
pub trait KvBackend: Send + Sync + std::fmt::Debug + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
    fn remove(&self, key: &[u8]) -> Result<(), StoreError>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError>;
    /// Resolves once every earlier write is durable.
    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>>;
}

fn sled_err(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// sled database at a path the application chooses.
#[derive(Debug, Clone)]
pub struct SledBackend {
    db: sled::Db,
}

/// sled 0.34 reports a held file lock as an `Other` I/O error with this message (the OS's
/// `WouldBlock` only appears inside the text).
fn is_busy_lock(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// How long [`SledBackend::open`] waits for a database file lock that is still held.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl SledBackend {
    /// Opens (or creates) the database at `path`. sled's own threads can hold a just-closed
    /// database's file lock for a moment after its last handle is dropped (finishing a
    /// flush), so a lock that is busy is retried for up to two seconds; a database another
    /// process keeps open still fails, with sled's lock error.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match sled::open(path.as_ref()) {
                Ok(db) => return Ok(Self { db }),
                Err(sled::Error::Io(e))
                    if is_busy_lock(&e) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(sled_err(e)),
            }
        }
    }
}

impl KvBackend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key).map_err(sled_err)?.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.db.insert(key, value).map_err(sled_err)?;
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.db.remove(key).map_err(sled_err)?;
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.db
            .scan_prefix(prefix)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(sled_err))
            .collect()
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.db.flush_async().await.map_err(sled_err)?;
            Ok(())
        })
    }
}

/// A map in memory: durable "forever" as far as tests are concerned. Clones share the map, so
/// a test can hand the same store to a second client to simulate a device restart.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    map: std::sync::Arc<Mutex<Map>>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Map>, StoreError> {
        self.map
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

impl KvBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock()?.get(key).cloned())
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.lock()?.insert(key.to_vec(), value);
        Ok(())
    }

    fn remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.lock()?.remove(key);
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        Ok(self
            .lock()?
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}
