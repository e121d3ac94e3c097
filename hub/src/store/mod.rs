//! Persistence behind a small trait, LDK style: values are bytes under `namespace/key`, every
//! record starts with a version byte ([`record`]), and nothing is acknowledged before it is
//! durable.
//!
//! A [`KvStore::write`] applies a batch atomically (visible to reads at once) and returns a
//! [`Persist`] ticket: `Completed` when already durable, `InProgress` until the backend's fsync
//! covering it finished. Callers apply under their own lock (so the order of writes is the order
//! of state changes) and await the ticket outside it (so concurrent writers share one flush).
//!
//! Implementations: [`sled_store::SledStore`] (group commit: one sled batch and one fsync per
//! group) and [`memory::MemoryStore`]
//! (tests).

pub mod memory;
mod pending;
pub mod record;
pub mod sled_store;

use std::fmt;

use tokio::sync::oneshot;

pub use memory::MemoryStore;
pub use sled_store::{SledOptions, SledStore, DEFAULT_GROUP_COMMIT_INTERVAL_US};

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
    #[error("record {namespace}/{key} has format version {found}, this hub reads {supported}")]
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
