//! [`KvStore`] on sled with group commit.
//!
//! `write` applies the batch to sled's in-memory tree (atomic, visible at once) and enqueues a
//! waiter. One flusher task takes every waiter queued so far, calls `Db::flush` (fsync) once on
//! a blocking thread, and answers all of them with the result. Writers that arrive during a
//! flush form the next group. A waiter is only enqueued after its batch was applied, so the
//! flush it waits for covers its write.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

use super::{check_namespace, flat_key, KvStore, Persist, StoreError, WriteBatch};

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// sled database plus its flusher task.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    flush_tx: Mutex<Option<mpsc::UnboundedSender<Waiter>>>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    flushes: Arc<AtomicU64>,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SledStore {
    /// Opens (or creates) the database at `path` and starts the flusher on the current tokio
    /// runtime.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_metrics(path, Metrics::default())
    }

    /// As [`SledStore::open`], recording every group commit's size and fsync time in
    /// `metrics`.
    pub fn open_with_metrics(path: &Path, metrics: Metrics) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| StoreError::Backend(format!("no tokio runtime for the flusher: {e}")))?;
        let db = sled::Config::new().path(path).open().map_err(backend)?;
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let flushes = Arc::new(AtomicU64::new(0));
        let flusher = runtime.spawn(flusher(db.clone(), flush_rx, flushes.clone(), metrics));
        Ok(Self {
            db,
            flush_tx: Mutex::new(Some(flush_tx)),
            flusher: Mutex::new(Some(flusher)),
            flushes,
        })
    }

    /// Number of fsyncs performed so far (each one acknowledges a whole group of writes).
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

async fn flusher(
    db: sled::Db,
    mut rx: mpsc::UnboundedReceiver<Waiter>,
    flushes: Arc<AtomicU64>,
    metrics: Metrics,
) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while let Ok(next) = rx.try_recv() {
            group.push(next);
        }
        let handle = db.clone();
        let started = std::time::Instant::now();
        let result = match tokio::task::spawn_blocking(move || handle.flush()).await {
            Ok(Ok(_bytes)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Flush(e.to_string())),
            Err(e) => Err(StoreError::Flush(format!("flush thread: {e}"))),
        };
        flushes.fetch_add(1, Ordering::Relaxed);
        metrics.fsync(group.len(), started.elapsed());
        if let Err(e) = &result {
            tracing::error!(error = %e, waiters = group.len(), "sled flush failed");
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
        Ok(self
            .db
            .get(k.as_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        check_namespace(namespace)?;
        let prefix = flat_key(namespace, "")?;
        self.db
            .scan_prefix(prefix.as_bytes())
            .keys()
            .map(|k| {
                let k = k.map_err(backend)?;
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
        let mut sled_batch = sled::Batch::default();
        for op in &batch.ops {
            let k = flat_key(&op.namespace, &op.key)?;
            match &op.value {
                Some(v) => sled_batch.insert(k.as_bytes(), v.as_slice()),
                None => sled_batch.remove(k.as_bytes()),
            }
        }
        self.db.apply_batch(sled_batch).map_err(backend)?;
        self.enqueue()
    }

    fn sync(&self) -> Result<Persist, StoreError> {
        self.enqueue()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

        let reopened = SledStore::open(dir.path()).unwrap();
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
