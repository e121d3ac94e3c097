//! [`KvStore`] on sled with group commit.
//!
//! `write` puts the batch into the in-memory [`Overlay`] (atomic, visible to reads at once)
//! and enqueues a waiter. One flusher task takes every waiter queued so far and everything
//! pending in the overlay, applies it to sled as one batch and calls `Db::flush` (fsync), on a
//! blocking thread, then answers all the waiters with the result. Writers that arrive during a
//! group commit form the next group. A waiter is only enqueued after its batch entered the
//! overlay, so the group commit it waits for (or an earlier one) covers its write.
//!
//! A failed group commit poisons the store: the writes it carried are lost, so no later write
//! may be acknowledged either.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

use super::pending::{Lookup, Overlay, Writes};
use super::{check_namespace, flat_key, KvStore, Persist, StoreError, WriteBatch};

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// sled's page cache unless configured: 128 MiB (sled's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;

/// The state writers and the flusher share.
#[derive(Debug, Default)]
struct Shared {
    overlay: Overlay,
    /// Set by the first failed group commit; every later write and sync fails with it.
    poisoned: Option<StoreError>,
}

/// sled database plus its flusher task.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    shared: Arc<Mutex<Shared>>,
    flush_tx: Mutex<Option<mpsc::UnboundedSender<Waiter>>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    flushes: Arc<AtomicU64>,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn lock(shared: &Mutex<Shared>) -> Result<MutexGuard<'_, Shared>, StoreError> {
    shared
        .lock()
        .map_err(|_| StoreError::Backend("store state lock poisoned".into()))
}

impl SledStore {
    /// Opens (or creates) the database at `path` and starts the flusher on the current tokio
    /// runtime.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, DEFAULT_CACHE_BYTES, Metrics::default())
    }

    /// As [`SledStore::open`], with sled's page cache limited to `cache_bytes` and every
    /// group commit's size and fsync time recorded in `metrics`.
    pub fn open_with(path: &Path, cache_bytes: u64, metrics: Metrics) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StoreError::Backend(format!("no tokio runtime for the flusher: {e}")))?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(backend)?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let flushes = Arc::new(AtomicU64::new(0));
        let flusher = runtime.spawn(flusher(
            db.clone(),
            shared.clone(),
            flush_rx,
            flushes.clone(),
            metrics,
        ));
        Ok(Self {
            db,
            shared,
            flush_tx: Mutex::new(Some(flush_tx)),
            flusher: Mutex::new(Some(flusher)),
            flushes,
        })
    }

    /// Number of group commits performed so far (each one sled batch and one fsync).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Flushes, stops the flusher and waits for it. Later writes fail with `Closed`.
    pub async fn close(&self) -> Result<(), StoreError> {
        let pending = self.sync();
        let tx = self.flush_tx.lock().map_err(|_| StoreError::Closed)?.take();
        drop(tx);
        let task = self.flusher.lock().map_err(|_| StoreError::Closed)?.take();
        let result = match pending {
            Ok(p) => p.durable().await,
            Err(StoreError::Closed) => Ok(()),
            Err(e) => Err(e),
        };
        if let Some(task) = task {
            task.await
                .map_err(|e| StoreError::Flush(format!("flusher task: {e}")))?;
        }
        result
    }

    fn enqueue(&self) -> Result<Persist, StoreError> {
        let (tx, rx) = oneshot::channel();
        let guard = self.flush_tx.lock().map_err(|_| StoreError::Closed)?;
        let sender = guard.as_ref().ok_or(StoreError::Closed)?;
        sender.send(tx).map_err(|_| StoreError::Closed)?;
        Ok(Persist::InProgress(rx))
    }
}

/// Writes `writes` into sled as one batch and makes it durable.
fn commit(db: &sled::Db, writes: &Writes) -> Result<(), StoreError> {
    if !writes.is_empty() {
        let mut batch = sled::Batch::default();
        for (key, value) in writes {
            match value {
                Some(v) => batch.insert(key.as_slice(), v.as_slice()),
                None => batch.remove(key.as_slice()),
            }
        }
        db.apply_batch(batch).map_err(backend)?;
    }
    db.flush()
        .map(|_bytes| ())
        .map_err(|e| StoreError::Flush(e.to_string()))
}

async fn flusher(
    db: sled::Db,
    shared: Arc<Mutex<Shared>>,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
    flushes: Arc<AtomicU64>,
    metrics: Metrics,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while let Ok(next) = rx.try_recv() {
            group.push(next);
        }
        let started = std::time::Instant::now();
        let taken = lock(&shared).and_then(|mut s| match &s.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(s.overlay.take_for_flight()),
        });
        let result = match taken {
            Err(e) => Err(e),
            Ok(writes) => {
                let handle = db.clone();
                match tokio::task::spawn_blocking(move || commit(&handle, &writes)).await {
                    Ok(r) => r,
                    Err(e) => Err(StoreError::Flush(format!("flush thread: {e}"))),
                }
            }
        };
        flushes.fetch_add(1, Ordering::Relaxed);
        metrics.fsync(group.len(), started.elapsed());
        match lock(&shared) {
            Ok(mut s) => match &result {
                Ok(()) => s.overlay.landed(),
                Err(e) => {
                    tracing::error!(error = %e, waiters = group.len(), "group commit failed");
                    s.poisoned.get_or_insert_with(|| e.clone());
                }
            },
            Err(e) => tracing::error!(error = %e, "group commit: store state unavailable"),
        }
        for waiter in group {
            // A writer that gave up waiting is not an error of the store.
            let _ = waiter.send(result.clone());
        }
    }
}

impl KvStore for SledStore {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = flat_key(namespace, key)?;
        if let Lookup::Found(v) = lock(&self.shared)?.overlay.lookup(k.as_bytes()) {
            return Ok(v);
        }
        Ok(self
            .db
            .get(k.as_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        check_namespace(namespace)?;
        let prefix = flat_key(namespace, "")?;
        let in_sled = self
            .db
            .scan_prefix(prefix.as_bytes())
            .keys()
            .map(|k| k.map(|k| k.to_vec()).map_err(backend))
            .collect::<Result<Vec<_>, _>>()?;
        let keys = lock(&self.shared)?
            .overlay
            .merge_keys(prefix.as_bytes(), in_sled);
        keys.into_iter()
            .map(|k| {
                let rest = k.get(prefix.len()..).unwrap_or_default();
                String::from_utf8(rest.to_vec()).map_err(|_| StoreError::Corrupt {
                    namespace: namespace.to_string(),
                    key: hex::encode(rest),
                    reason: "key is not UTF-8".into(),
                })
            })
            .collect()
    }

    fn write(&self, batch: WriteBatch) -> Result<Persist, StoreError> {
        let ops = batch
            .ops
            .into_iter()
            .map(|op| Ok((flat_key(&op.namespace, &op.key)?.into_bytes(), op.value)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        {
            let mut shared = lock(&self.shared)?;
            if let Some(e) = &shared.poisoned {
                return Err(e.clone());
            }
            shared.overlay.accept(ops);
        }
        self.enqueue()
    }

    fn sync(&self) -> Result<Persist, StoreError> {
        if let Some(e) = &lock(&self.shared)?.poisoned {
            return Err(e.clone());
        }
        self.enqueue()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens the store at `path` again in this process. sled's own background threads let
    /// go of the directory's lock a moment after the last handle is dropped (at once when a
    /// process dies, as in a real restart), so a busy machine may need a few tries.
    async fn reopen(path: &std::path::Path) -> SledStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match SledStore::open(path) {
                Ok(store) => return store,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "store still locked; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("reopening {}: {e}", path.display()),
            }
        }
    }

    #[tokio::test]
    async fn writes_are_visible_before_their_group_commit_and_batches_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut first = WriteBatch::new();
        first.put("ch", "1", vec![1]).put("ch", "2", vec![2]);
        let t1 = store.write(first).unwrap();
        // Not awaited yet: the batch is readable and listed at once.
        assert_eq!(store.read("ch", "1").unwrap(), Some(vec![1]));
        let mut second = WriteBatch::new();
        second.remove("ch", "1").put("ch", "3", vec![3]);
        let t2 = store.write(second).unwrap();
        assert_eq!(store.read("ch", "1").unwrap(), None);
        assert_eq!(store.list("ch").unwrap(), vec!["2", "3"]);
        t1.durable().await.unwrap();
        t2.durable().await.unwrap();
        assert_eq!(store.list("ch").unwrap(), vec!["2", "3"]);
        store.close().await.unwrap();
        drop(store);

        let reopened = reopen(dir.path()).await;
        assert_eq!(reopened.read("ch", "1").unwrap(), None);
        assert_eq!(reopened.read("ch", "3").unwrap(), Some(vec![3]));
        assert_eq!(reopened.list("ch").unwrap(), vec!["2", "3"]);
    }

    #[tokio::test]
    async fn concurrent_writers_share_flushes_and_data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let tickets: Vec<Persist> = (0..100)
            .map(|i| {
                let mut b = WriteBatch::new();
                b.put("pay", &format!("{i:03}"), vec![1, i as u8]);
                store.write(b).unwrap()
            })
            .collect();
        for t in futures::future::join_all(tickets.into_iter().map(Persist::durable)).await {
            t.unwrap();
        }
        assert!(
            store.flush_count() <= 2,
            "100 writers queued together must share a flush, got {}",
            store.flush_count()
        );
        assert_eq!(store.list("pay").unwrap().len(), 100);
        assert_eq!(store.read("pay", "042").unwrap(), Some(vec![1, 42]));
        assert!(
            store.list("pa").unwrap().is_empty(),
            "prefix of another namespace"
        );
        store.close().await.unwrap();
        assert!(matches!(
            store.write(WriteBatch::new()),
            Err(StoreError::Closed)
        ));
        drop(store);

        let reopened = reopen(dir.path()).await;
        assert_eq!(reopened.read("pay", "099").unwrap(), Some(vec![1, 99]));
        let mut b = WriteBatch::new();
        b.remove("pay", "099");
        reopened.write(b).unwrap().durable().await.unwrap();
        assert_eq!(reopened.read("pay", "099").unwrap(), None);
        assert!(matches!(
            reopened.read("a/b", "k"),
            Err(StoreError::Namespace(_))
        ));
    }
}
