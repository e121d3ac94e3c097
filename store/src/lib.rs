//! The one persistence seam of every Voltlane process (hub, device SDK, and the daemons
//! after them), LDK style: values are bytes under `namespace/key`, every record starts with a
//! version byte ([`record`]), and nothing is acknowledged before it is durable.
//!
//! A [`KvStore::write`] applies a batch atomically and returns a [`Persist`] ticket:
//! `Completed` when already durable, `InProgress` until the backend's fsync covering it
//! finished. Callers apply under their own lock (so the order of writes is the order of state
//! changes) and await the ticket outside it (so concurrent writers share one flush).
//! [`Pending`] ties a value that must not leave the process before its write is durable (a
//! signed proof) to that write's ticket: the value is only handed out once durable.
//!
//! **Reads see only durable data.** A write is invisible to [`KvStore::read`] and
//! [`KvStore::list`] until the group commit carrying it has been fsynced; until then they
//! answer what was durable before. So nothing read from a store (and then sent to a peer) can
//! be lost in a crash: a process restarted after `kill -9` finds at least what any reader saw.
//! A process keeps its own not-yet-durable state in memory (the hub's channel book, the SDK's
//! channel) and writes the same record keys only under its own per-record lock.
//!
//! Implementations: [`sled_store::SledStore`] (group commit: one sled batch and one fsync per
//! group, on one flusher thread, so concurrent flushes of sled never race) and
//! [`memory::MemoryStore`] (tests). A backend on a server database (PostgreSQL for a standby
//! hub) implements the same four methods: a batch is one transaction, `Persist` resolves at its
//! commit, reads go to committed rows.

pub mod keyfile;
pub mod memory;
mod pending;
pub mod record;
pub mod records;
pub mod sled_store;

use std::fmt;

use tokio::sync::oneshot;

pub use memory::MemoryStore;
pub use sled_store::{SledOptions, SledStore, DEFAULT_GROUP_COMMIT_INTERVAL_US};

/// Told about every group commit (a process's metrics).
pub trait CommitObserver: Send + Sync + fmt::Debug + 'static {
    /// One group commit acknowledged `writes` waiters with an fsync that took `fsync`.
    fn group_commit(&self, writes: usize, fsync: std::time::Duration);
}

/// Why the store failed. Every variant means "not persisted": the caller must not acknowledge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("backend: {0}")]
    Backend(String),
    #[error("flush (fsync) failed: {0}")]
    Flush(String),
    #[error("the store is closed")]
    Closed,
    #[error("invalid namespace {0:?}: must be non-empty and must not contain '/'")]
    Namespace(String),
    #[error("record {namespace}/{key} has format version {found}, this build reads {supported}")]
    Version {
        namespace: String,
        key: String,
        found: u8,
        supported: u8,
    },
    #[error("record {namespace}/{key} is corrupt: {reason}")]
    Corrupt {
        namespace: String,
        key: String,
        reason: String,
    },
}

/// One change of a batch: set `namespace/key` to `Some(value)` or remove it (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteOp {
    pub namespace: String,
    pub key: String,
    pub value: Option<Vec<u8>>,
}

/// Changes applied atomically together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, namespace: &str, key: &str, value: Vec<u8>) -> &mut Self {
        self.ops.push(WriteOp {
            namespace: namespace.to_string(),
            key: key.to_string(),
            value: Some(value),
        });
        self
    }

    pub fn remove(&mut self, namespace: &str, key: &str) -> &mut Self {
        self.ops.push(WriteOp {
            namespace: namespace.to_string(),
            key: key.to_string(),
            value: None,
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Durability of an applied write.
#[derive(Debug)]
pub enum Persist {
    /// Already durable.
    Completed,
    /// Durable once the receiver yields `Ok(())`.
    InProgress(oneshot::Receiver<Result<(), StoreError>>),
}

impl Persist {
    /// Waits until the write is durable.
    pub async fn durable(self) -> Result<(), StoreError> {
        match self {
            Persist::Completed => Ok(()),
            Persist::InProgress(rx) => rx.await.map_err(|_| StoreError::Closed)?,
        }
    }
}

/// Namespaced, versioned, durable key-value storage.
pub trait KvStore: Send + Sync + fmt::Debug + 'static {
    /// The value under `namespace/key`, if any.
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// All keys of `namespace`, in byte order.
    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError>;

    /// Applies `batch` atomically; the returned ticket says when it is durable.
    fn write(&self, batch: WriteBatch) -> Result<Persist, StoreError>;

    /// A ticket for "everything applied so far is durable" (used at shutdown).
    fn sync(&self) -> Result<Persist, StoreError>;
}

pub(crate) fn check_namespace(namespace: &str) -> Result<(), StoreError> {
    if namespace.is_empty() || namespace.contains('/') {
        return Err(StoreError::Namespace(namespace.to_string()));
    }
    Ok(())
}

/// The flat key `namespace/key` both backends use.
pub(crate) fn flat_key(namespace: &str, key: &str) -> Result<String, StoreError> {
    check_namespace(namespace)?;
    Ok(format!("{namespace}/{key}"))
}
