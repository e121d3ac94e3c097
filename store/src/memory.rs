//! In-memory [`KvStore`] for tests: every write is `Completed` at once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::{flat_key, KvStore, Persist, StoreError, WriteBatch};

/// A map behind a mutex.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn map(&self) -> Result<std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>>, StoreError> {
        self.map
            .lock()
            .map_err(|_| StoreError::Backend("memory store lock poisoned".into()))
    }
}

impl KvStore for MemoryStore {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = flat_key(namespace, key)?;
        Ok(self.map()?.get(&k).cloned())
    }

    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        let prefix = flat_key(namespace, "")?;
        Ok(self
            .map()?
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k[prefix.len()..].to_string())
            .collect())
    }

    fn write(&self, batch: WriteBatch) -> Result<Persist, StoreError> {
        let keys = batch
            .ops
            .iter()
            .map(|op| flat_key(&op.namespace, &op.key))
            .collect::<Result<Vec<_>, _>>()?;
        let mut map = self.map()?;
        for (k, op) in keys.into_iter().zip(batch.ops) {
            match op.value {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(Persist::Completed)
    }

    fn sync(&self) -> Result<Persist, StoreError> {
        Ok(Persist::Completed)
    }
}
