//! The hub's persistence: the shared seam [`voltlane_store`] (namespaced keys, atomic batches,
//! group commit, reads of durable data only), re-exported so the hub's modules name it
//! `crate::store`.

pub use voltlane_store::*;
