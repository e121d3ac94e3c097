//! [`KvStore`] on sled with group commit.
//!
//! `write` puts the batch into the in-memory [`Overlay`] (atomic, visible to reads at once)
//! and enqueues a waiter. One flusher thread takes every waiter queued so far and everything
//! pending in the overlay, applies it to sled as one batch and calls `Db::flush` (fsync), then
//! answers all the waiters with the result. Writers that arrive during a group commit form the
//! next group. A waiter is only enqueued after its batch entered the overlay, so the group
//! commit it waits for (or an earlier one) covers its write.
//!
//! Group commits start at most once per `group_commit_interval` while writers come
//! concurrently: after a group commit that carried more than one waiter, a writer arriving
//! sooner than the interval after it started waits out the rest, and so do the writers that
//! join it meanwhile. Each flush costs the same system time however little it carries (sled's
//! I/O threads, `sync_file_range`, `fsync`, the wake-ups), so under a load of many small
//! writes that arrive one by one this trades a bounded wait for far fewer flushes. Under a
//! heavy load a flush takes longer than the interval anyway and nobody waits for it; a lone
//! writer (one waiter per flush) is never held back.
//!
//! A failed group commit poisons the store: the writes it carried are lost, so no later write
//! may be acknowledged either.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::pending::{Lookup, Overlay, Writes};
use crate::{check_namespace, flat_key, CommitObserver, KvStore, Persist, StoreError, WriteBatch};

type Waiter = oneshot::Sender<Result<(), StoreError>>;

/// sled's page cache unless configured: 128 MiB (sled's own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;

/// Shortest time between the starts of two group commits unless configured, microseconds.
pub const DEFAULT_GROUP_COMMIT_INTERVAL_US: u64 = 2000;

/// How the store is tuned; [`SledStore::open`] takes the defaults.
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache, bytes.
    pub cache_bytes: u64,
    /// Shortest time between the starts of two group commits while writers come
    /// concurrently (zero: flush back to back).
    pub group_commit_interval: Duration,
    /// Told every group commit's size and fsync time (the hub's metrics), if set.
    pub observer: Option<Arc<dyn CommitObserver>>,
}

impl Default for SledOptions {
    fn default() -> Self {
        Self {
            cache_bytes: DEFAULT_CACHE_BYTES,
            group_commit_interval: Duration::from_micros(DEFAULT_GROUP_COMMIT_INTERVAL_US),
            observer: None,
        }
    }
}

/// The state writers and the flusher share.
#[derive(Debug, Default)]
struct Shared {
    overlay: Overlay,
    /// Set by the first failed group commit; every later write and sync fails with it.
    poisoned: Option<StoreError>,
}

/// sled database plus its flusher thread.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    shared: Arc<Mutex<Shared>>,
    flush_tx: Mutex<Option<mpsc::UnboundedSender<Waiter>>>,
    /// Answered by the flusher thread once it has stopped and let go of the database.
    flusher_done: Mutex<Option<oneshot::Receiver<()>>>,
    flushes: Arc<AtomicU64>,
    /// Only a test build can hold it ([`SledStore::hold_fsyncs`]).
    #[cfg_attr(not(any(test, feature = "testing")), allow(dead_code))]
    gate: Arc<FsyncGate>,
}

/// Where the flusher waits between handing a group to sled and its fsync, while a test holds
/// it ([`SledStore::hold_fsyncs`], feature `testing`): the window in which a write is in sled
/// but not durable. Never held in a production build (nothing there can hold it).
#[derive(Debug, Default)]
struct FsyncGate {
    held: Mutex<bool>,
    opened: std::sync::Condvar,
}

impl FsyncGate {
    fn wait_open(&self) {
        let Ok(mut held) = self.held.lock() else {
            return;
        };
        while *held {
            held = match self.opened.wait(held) {
                Ok(h) => h,
                Err(_) => return,
            };
        }
    }

    #[cfg(any(test, feature = "testing"))]
    fn set(&self, hold: bool) {
        if let Ok(mut held) = self.held.lock() {
            *held = hold;
        }
        self.opened.notify_all();
    }
}

/// While alive, group commits stop after writing to sled and before their fsync (tests of
/// what readers see in that window). Dropping it lets them go on.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug)]
pub struct FsyncHold {
    gate: Arc<FsyncGate>,
}

#[cfg(any(test, feature = "testing"))]
impl Drop for FsyncHold {
    fn drop(&mut self) {
        self.gate.set(false);
    }
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
    /// Opens (or creates) the database at `path` with the default options and starts the
    /// flusher thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SledOptions::default())
    }

    /// As [`SledStore::open`], tuned by `options`.
    pub fn open_with(path: &Path, options: SledOptions) -> Result<Self, StoreError> {
        let db = open_db(path, options.cache_bytes)?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (flush_tx, flush_rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = oneshot::channel();
        let flushes = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(FsyncGate::default());
        let flusher = Flusher {
            gate: gate.clone(),
            db: db.clone(),
            shared: shared.clone(),
            flushes: flushes.clone(),
            interval: options.group_commit_interval,
            observer: options.observer,
        };
        std::thread::Builder::new()
            .name("store-flusher".into())
            .spawn(move || {
                flusher.run(flush_rx);
                let _ = done_tx.send(());
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the flusher thread: {e}")))?;
        Ok(Self {
            db,
            shared,
            flush_tx: Mutex::new(Some(flush_tx)),
            flusher_done: Mutex::new(Some(done_rx)),
            flushes,
            gate,
        })
    }

    /// Number of group commits performed so far (each one sled batch and one fsync).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// Moves every record whose raw sled key `rename` maps to a (namespace, key) there, in one
    /// sled batch made durable before this returns: the upgrade of a store written with an
    /// older key layout. Call before any other use of the store. Returns how many moved.
    pub fn rename_legacy_keys(
        &self,
        rename: impl Fn(&[u8]) -> Option<(String, String)>,
    ) -> Result<usize, StoreError> {
        let mut batch = sled::Batch::default();
        let mut moved = 0;
        for entry in self.db.iter() {
            let (raw, value) = entry.map_err(backend)?;
            if let Some((namespace, key)) = rename(&raw) {
                let to = flat_key(&namespace, &key)?;
                batch.insert(to.as_bytes(), value);
                batch.remove(raw);
                moved += 1;
            }
        }
        if moved > 0 {
            self.db.apply_batch(batch).map_err(backend)?;
            self.db
                .flush()
                .map_err(|e| StoreError::Flush(e.to_string()))?;
            tracing::info!(records = moved, "store moved to the namespaced key layout");
        }
        Ok(moved)
    }

    /// Holds every group commit between its write into sled and its fsync until the returned
    /// guard is dropped (tests: the window a crash would lose).
    #[cfg(any(test, feature = "testing"))]
    pub fn hold_fsyncs(&self) -> FsyncHold {
        self.gate.set(true);
        FsyncHold {
            gate: self.gate.clone(),
        }
    }

    /// Flushes, stops the flusher and waits for it. Later writes fail with `Closed`.
    pub async fn close(&self) -> Result<(), StoreError> {
        let pending = self.sync();
        let tx = self.flush_tx.lock().map_err(|_| StoreError::Closed)?.take();
        drop(tx);
        let done = self
            .flusher_done
            .lock()
            .map_err(|_| StoreError::Closed)?
            .take();
        let result = match pending {
            Ok(p) => p.durable().await,
            Err(StoreError::Closed) => Ok(()),
            Err(e) => Err(e),
        };
        if let Some(done) = done {
            done.await
                .map_err(|_| StoreError::Flush("the flusher thread died".into()))?;
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

/// sled 0.34 reports a held file lock as an `Other` I/O error with this message (the OS's
/// `WouldBlock` only appears inside the text).
fn is_busy_lock(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("could not acquire lock")
}

/// How long [`SledStore::open`] waits for a database file lock that is still held.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens the database. sled's own threads can hold a just-closed database's file lock for a
/// moment after its last handle is dropped (finishing a flush), so a busy lock is retried for
/// up to [`LOCK_WAIT`]; a database another process keeps open still fails, with sled's error.
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open();
        match opened {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if is_busy_lock(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

/// Writes `writes` into sled as one batch and makes it durable.
fn commit(db: &sled::Db, writes: &Writes, gate: &FsyncGate) -> Result<(), StoreError> {
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
    gate.wait_open();
    db.flush()
        .map(|_bytes| ())
        .map_err(|e| StoreError::Flush(e.to_string()))
}

/// The flusher thread's side of the store.
struct Flusher {
    db: sled::Db,
    shared: Arc<Mutex<Shared>>,
    flushes: Arc<AtomicU64>,
    interval: Duration,
    observer: Option<Arc<dyn CommitObserver>>,
    gate: Arc<FsyncGate>,
}

impl Flusher {
    /// Group commits until every sender of `rx` is gone.
    fn run(self, mut rx: mpsc::UnboundedReceiver<Waiter>) {
        // When the last group commit started, if it had company: a lone writer (one waiter
        // per flush, e.g. a single device paying one payment at a time) is not held back.
        let mut paced_from: Option<Instant> = None;
        while let Some(first) = rx.blocking_recv() {
            if let Some(wait) = paced_from
                .map(|last| last + self.interval)
                .and_then(|next| next.checked_duration_since(Instant::now()))
            {
                std::thread::sleep(wait);
            }
            let mut group = vec![first];
            while let Ok(next) = rx.try_recv() {
                group.push(next);
            }
            let started = Instant::now();
            paced_from = (group.len() > 1).then_some(started);
            let result = self.commit_pending();
            self.flushes.fetch_add(1, Ordering::Relaxed);
            if let Some(observer) = &self.observer {
                observer.group_commit(group.len(), started.elapsed());
            }
            for waiter in group {
                // A writer that gave up waiting is not an error of the store.
                let _ = waiter.send(result.clone());
            }
        }
    }

    /// Takes everything pending in the overlay, commits it, and records the outcome: the
    /// overlay lets go of what landed, or the store is poisoned.
    fn commit_pending(&self) -> Result<(), StoreError> {
        let taken = lock(&self.shared).and_then(|mut s| match &s.poisoned {
            Some(e) => Err(e.clone()),
            None => Ok(s.overlay.take_for_flight()),
        });
        let result = taken.and_then(|writes| commit(&self.db, &writes, &self.gate));
        match lock(&self.shared) {
            Ok(mut s) => match &result {
                Ok(()) => s.overlay.landed(),
                Err(e) => {
                    tracing::error!(error = %e, "group commit failed");
                    s.poisoned.get_or_insert_with(|| e.clone());
                }
            },
            Err(e) => tracing::error!(error = %e, "group commit: store state unavailable"),
        }
        result
    }
}

impl KvStore for SledStore {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = flat_key(namespace, key)?;
        // Under the lock: with no write of `k` pending or in flight, none can start before
        // sled answers, so sled's value is the durable one.
        let shared = lock(&self.shared)?;
        if let Lookup::Found(v) = shared.overlay.lookup(k.as_bytes()) {
            return Ok(v);
        }
        let value = self.db.get(k.as_bytes()).map_err(backend)?;
        drop(shared);
        Ok(value.map(|v| v.to_vec()))
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
            let db = &self.db;
            shared.overlay.accept(ops, |key| {
                db.get(key).map(|v| v.map(|v| v.to_vec())).map_err(backend)
            })?;
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
    async fn writes_are_invisible_until_durable_and_batches_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut base = WriteBatch::new();
        base.put("ch", "1", vec![0]);
        store.write(base).unwrap().durable().await.unwrap();

        let hold = store.hold_fsyncs();
        let mut first = WriteBatch::new();
        first.put("ch", "1", vec![1]).put("ch", "2", vec![2]);
        let t1 = store.write(first).unwrap();
        // Let the flusher write the group into sled and stop before its fsync.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            store.read("ch", "1").unwrap(),
            Some(vec![0]),
            "not durable yet"
        );
        assert_eq!(store.read("ch", "2").unwrap(), None, "not durable yet");
        assert_eq!(store.list("ch").unwrap(), vec!["1"]);
        let mut second = WriteBatch::new();
        second.remove("ch", "1").put("ch", "3", vec![3]);
        let t2 = store.write(second).unwrap();
        assert_eq!(store.read("ch", "1").unwrap(), Some(vec![0]));
        assert_eq!(store.list("ch").unwrap(), vec!["1"]);
        drop(hold);
        t1.durable().await.unwrap();
        t2.durable().await.unwrap();
        assert_eq!(store.read("ch", "1").unwrap(), None);
        assert_eq!(store.list("ch").unwrap(), vec!["2", "3"]);
        store.close().await.unwrap();
        drop(store);

        let reopened = reopen(dir.path()).await;
        assert_eq!(reopened.read("ch", "1").unwrap(), None);
        assert_eq!(reopened.read("ch", "3").unwrap(), Some(vec![3]));
        assert_eq!(reopened.list("ch").unwrap(), vec!["2", "3"]);
    }

    #[tokio::test]
    async fn writes_arriving_one_by_one_within_the_interval_share_one_flush() {
        let dir = tempfile::tempdir().unwrap();
        let interval = Duration::from_millis(400);
        let options = SledOptions {
            group_commit_interval: interval,
            ..SledOptions::default()
        };
        let store = SledStore::open_with(dir.path(), options).unwrap();
        let put = |key: &str| {
            let mut b = WriteBatch::new();
            b.put("t", key, key.as_bytes().to_vec());
            store.write(b).unwrap()
        };
        // A lone writer is not paced: each of its writes is flushed at once.
        let lone = Instant::now();
        put("lone 1").durable().await.unwrap();
        put("lone 2").durable().await.unwrap();
        assert!(
            lone.elapsed() < interval,
            "a lone writer waited for the interval"
        );
        assert_eq!(store.flush_count(), 2);
        // Two writers at once, until one flush carries both: from then on flushes are paced.
        let mut shared_flush = false;
        for _ in 0..100 {
            let before = store.flush_count();
            let (t1, t2) = (put("first 1"), put("first 2"));
            t1.durable().await.unwrap();
            t2.durable().await.unwrap();
            if store.flush_count() == before + 1 {
                shared_flush = true;
                break;
            }
        }
        assert!(shared_flush, "two writes at once never shared a flush");
        let first_flushed = Instant::now();
        let after_first = store.flush_count();
        let mut tickets = Vec::new();
        for key in ["a", "b", "c"] {
            tickets.push(put(key));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for t in tickets {
            t.durable().await.unwrap();
        }
        assert_eq!(
            store.flush_count(),
            after_first + 1,
            "three writes within the interval, one flush"
        );
        // The second flush started no sooner than one interval after the first one started
        // (which was before `first_flushed`), minus the scheduler's slack.
        assert!(first_flushed.elapsed() >= interval - Duration::from_millis(100));
        store.close().await.unwrap();
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
        // The flusher runs beside the writing loop and may take a group or two before the
        // loop is done; the rest wait for one flush together.
        assert!(
            store.flush_count() <= 10,
            "100 writers queued together must share flushes, got {}",
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
