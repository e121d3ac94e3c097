//! Writes the sled store has accepted but not yet handed to sled.
//!
//! sled makes every `apply_batch` its own log transaction: it seals and writes the current
//! log buffer, takes a global write lock and writes a batch manifest, so a thousand small
//! batches cost a thousand buffer writes and their thread wake-ups. Instead, a write lands here
//! (visible to reads at once), and the flusher takes everything pending as one sled batch per
//! group commit: one transaction and one fsync for the whole group, atomic as a whole, so each
//! caller's batch stays atomic too.
//!
//! Reads look in `pending` (newest), then `in_flight` (taken by the running group commit, not
//! yet in sled), then sled.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A key's newest accepted value: `Some(bytes)` or `None` (removed).
pub(super) type Value = Option<Vec<u8>>;

/// Writes not yet in sled, by flat key.
pub(super) type Writes = BTreeMap<Vec<u8>, Value>;

/// What a read of the overlay finds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Lookup {
    /// The overlay decides: this value, or removed.
    Found(Value),
    /// Not in the overlay: ask sled.
    Miss,
}

/// The overlay: accepted writes and the group commit's writes in flight.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    pending: Writes,
    in_flight: Arc<Writes>,
}

impl Overlay {
    /// Accepts one batch: later writes of the same key replace earlier ones.
    pub(super) fn accept(&mut self, ops: impl IntoIterator<Item = (Vec<u8>, Value)>) {
        for (key, value) in ops {
            self.pending.insert(key, value);
        }
    }

    /// The newest value of `key` the overlay knows.
    pub(super) fn lookup(&self, key: &[u8]) -> Lookup {
        if let Some(v) = self.pending.get(key) {
            return Lookup::Found(v.clone());
        }
        match self.in_flight.get(key) {
            Some(v) => Lookup::Found(v.clone()),
            None => Lookup::Miss,
        }
    }

    /// Moves everything pending into flight and returns it (for the group commit to write).
    pub(super) fn take_for_flight(&mut self) -> Arc<Writes> {
        self.in_flight = Arc::new(std::mem::take(&mut self.pending));
        self.in_flight.clone()
    }

    /// The group commit wrote its writes into sled: reads go there now.
    pub(super) fn landed(&mut self) {
        self.in_flight = Arc::new(Writes::new());
    }

    /// `keys` (the flat keys sled has under `prefix`) corrected by the overlay: keys written
    /// in the overlay are added, keys removed in it are dropped. In byte order.
    pub(super) fn merge_keys(&self, prefix: &[u8], keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut all: BTreeSet<Vec<u8>> = keys.into_iter().collect();
        for layer in [&*self.in_flight, &self.pending] {
            for (key, value) in layer.range(prefix.to_vec()..) {
                if !key.starts_with(prefix) {
                    break;
                }
                match value {
                    Some(_) => all.insert(key.clone()),
                    None => all.remove(key),
                };
            }
        }
        all.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> (Vec<u8>, Value) {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    fn del(k: &str) -> (Vec<u8>, Value) {
        (k.as_bytes().to_vec(), None)
    }

    #[test]
    fn newest_write_wins_across_pending_and_flight() {
        let mut o = Overlay::default();
        assert_eq!(o.lookup(b"a/1"), Lookup::Miss);
        o.accept([put("a/1", "x"), put("a/2", "y")]);
        let flight = o.take_for_flight();
        assert_eq!(flight.len(), 2);
        assert_eq!(o.lookup(b"a/1"), Lookup::Found(Some(b"x".to_vec())));
        o.accept([del("a/1")]);
        assert_eq!(
            o.lookup(b"a/1"),
            Lookup::Found(None),
            "pending shadows flight"
        );
        o.landed();
        assert_eq!(
            o.lookup(b"a/2"),
            Lookup::Miss,
            "landed writes are read from sled"
        );
        assert_eq!(o.lookup(b"a/1"), Lookup::Found(None));
    }

    #[test]
    fn key_lists_add_overlay_writes_and_drop_overlay_removals() {
        let mut o = Overlay::default();
        o.accept([put("a/3", "x"), del("a/1"), put("b/1", "other namespace")]);
        o.take_for_flight();
        o.accept([put("a/0", "y"), del("a/3")]);
        let sled_keys = vec![b"a/1".to_vec(), b"a/2".to_vec()];
        let merged = o.merge_keys(b"a/", sled_keys);
        assert_eq!(merged, vec![b"a/0".to_vec(), b"a/2".to_vec()]);
    }
}
