//! Writes the sled store has accepted but not yet made durable, and what was durable before
//! them.
//!
//! sled makes every `apply_batch` its own log transaction: it seals and writes the current
//! log buffer, takes a global write lock and writes a batch manifest, so a thousand small
//! batches cost a thousand buffer writes and their thread wake-ups. Instead, a write lands here,
//! and the flusher takes everything pending as one sled batch per group commit: one transaction
//! and one fsync for the whole group, atomic as a whole, so each caller's batch stays atomic
//! too.
//!
//! Reads must not see a write before it is durable, yet sled shows a batch as soon as it is
//! applied, before its fsync. So for every key with a write pending or in flight the overlay
//! keeps the key's last *durable* value (`durable`), captured from sled when the key is first
//! written (sled then holds only durable data for that key: nothing of it is in flight), and
//! reads of such keys answer it. When a group commit has landed (fsynced), its keys' durable
//! values become what it wrote, and keys with nothing newer pending are read from sled again.

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

/// The overlay: accepted writes, the group commit's writes in flight, and the durable
/// values of the keys they touch.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    pending: Writes,
    in_flight: Arc<Writes>,
    /// For every key in `pending` or `in_flight`: its value as of the last fsync.
    durable: Writes,
}

impl Overlay {
    /// Accepts one batch: later writes of the same key replace earlier ones. `durable_now`
    /// reads a key's value from the backend; it is asked only for keys with nothing pending or
    /// in flight, whose backend value is durable.
    pub(super) fn accept<E>(
        &mut self,
        ops: impl IntoIterator<Item = (Vec<u8>, Value)>,
        mut durable_now: impl FnMut(&[u8]) -> Result<Value, E>,
    ) -> Result<(), E> {
        let ops: Vec<_> = ops.into_iter().collect();
        let mut captured = Vec::new();
        for (key, _) in &ops {
            if !self.durable.contains_key(key) && !captured.iter().any(|(k, _)| k == key) {
                captured.push((key.clone(), durable_now(key)?));
            }
        }
        self.durable.extend(captured);
        for (key, value) in ops {
            self.pending.insert(key, value);
        }
        Ok(())
    }

    /// What a read of `key` answers if the overlay decides it: its durable value.
    pub(super) fn lookup(&self, key: &[u8]) -> Lookup {
        match self.durable.get(key) {
            Some(v) => Lookup::Found(v.clone()),
            None => Lookup::Miss,
        }
    }

    /// The newest value of `key` accepted, durable or not: only for the store's own
    /// bookkeeping, never for a reader.
    #[cfg(test)]
    fn newest(&self, key: &[u8]) -> Lookup {
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

    /// The group commit's writes are in sled and fsynced: they are the durable values now.
    /// Keys with nothing newer pending are read from sled again.
    pub(super) fn landed(&mut self) {
        let landed = std::mem::take(&mut self.in_flight);
        for (key, value) in landed.iter() {
            if self.pending.contains_key(key) {
                self.durable.insert(key.clone(), value.clone());
            } else {
                self.durable.remove(key);
            }
        }
    }

    /// `keys` (the flat keys sled has under `prefix`) corrected to the durable view: keys the
    /// overlay decides are added if durably present and dropped if durably absent. In byte
    /// order.
    pub(super) fn merge_keys(&self, prefix: &[u8], keys: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut all: BTreeSet<Vec<u8>> = keys.into_iter().collect();
        for (key, value) in self.durable.range(prefix.to_vec()..) {
            if !key.starts_with(prefix) {
                break;
            }
            match value {
                Some(_) => all.insert(key.clone()),
                None => all.remove(key),
            };
        }
        all.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn put(k: &str, v: &str) -> (Vec<u8>, Value) {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    fn del(k: &str) -> (Vec<u8>, Value) {
        (k.as_bytes().to_vec(), None)
    }

    /// A stand-in for sled: what it holds, durable or applied-not-yet-fsynced.
    fn backend(entries: &[(&str, &str)]) -> BTreeMap<Vec<u8>, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn accept(o: &mut Overlay, sled: &BTreeMap<Vec<u8>, Vec<u8>>, ops: Vec<(Vec<u8>, Value)>) {
        o.accept(ops, |k| Ok::<_, ()>(sled.get(k).cloned()))
            .unwrap();
    }

    #[test]
    fn reads_answer_the_durable_value_until_the_write_landed() {
        let mut sled = backend(&[("a/1", "old")]);
        let mut o = Overlay::default();
        assert_eq!(o.lookup(b"a/1"), Lookup::Miss);
        accept(&mut o, &sled, vec![put("a/1", "x"), put("a/2", "y")]);
        assert_eq!(o.lookup(b"a/1"), Lookup::Found(Some(b"old".to_vec())));
        assert_eq!(o.lookup(b"a/2"), Lookup::Found(None), "not durable yet");
        let flight = o.take_for_flight();
        assert_eq!(flight.len(), 2);
        // The group commit applied its batch to sled; the fsync has not returned.
        for (k, v) in flight.iter() {
            sled.insert(k.clone(), v.clone().unwrap_or_default());
        }
        assert_eq!(o.lookup(b"a/1"), Lookup::Found(Some(b"old".to_vec())));
        accept(&mut o, &sled, vec![del("a/1")]);
        assert_eq!(
            o.newest(b"a/1"),
            Lookup::Found(None),
            "pending shadows flight"
        );
        assert_eq!(o.lookup(b"a/1"), Lookup::Found(Some(b"old".to_vec())));
        o.landed();
        assert_eq!(o.lookup(b"a/2"), Lookup::Miss, "landed: read from sled");
        assert_eq!(
            o.lookup(b"a/1"),
            Lookup::Found(Some(b"x".to_vec())),
            "the landed value is durable; the removal after it is not yet"
        );
        o.take_for_flight();
        o.landed();
        assert_eq!(o.lookup(b"a/1"), Lookup::Miss);
    }

    #[test]
    fn key_lists_show_the_durable_keys_only() {
        let sled = backend(&[("a/1", "d"), ("a/2", "d")]);
        let mut o = Overlay::default();
        accept(
            &mut o,
            &sled,
            vec![put("a/3", "x"), del("a/1"), put("b/1", "other namespace")],
        );
        o.take_for_flight();
        accept(&mut o, &sled, vec![put("a/0", "y"), del("a/3")]);
        let sled_keys = vec![b"a/1".to_vec(), b"a/2".to_vec()];
        let merged = o.merge_keys(b"a/", sled_keys.clone());
        assert_eq!(merged, sled_keys, "nothing written is durable yet");
        o.landed();
        // a/3 landed (durable) and its removal is pending; a/1's removal landed.
        let merged = o.merge_keys(b"a/", vec![b"a/2".to_vec(), b"a/3".to_vec()]);
        assert_eq!(merged, vec![b"a/2".to_vec(), b"a/3".to_vec()]);
    }
}
