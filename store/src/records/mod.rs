//! Record types shared by more than one process: plain structs with public fields whose serde
//! names are frozen, each with its own format version, converted to and from the core's types.
//! The core may rename its private fields; what is on disk changes only when a record type here
//! gets a new version (and then the old version still decodes).
//!
//! | namespace / key                         | record type              | version |
//! |-----------------------------------------|--------------------------|---------|
//! | hub `channels` / channel id (78 digits) | [`ChannelStateRecord`]   | [`CHANNEL_STATE_VERSION`] |
//! | device `device` / `channel`             | [`ChannelStateRecord`]   | [`CHANNEL_STATE_VERSION`] |
//!
//! Every record is `[version] ++ JSON` ([`crate::record`]). A reader matches on the version
//! byte and refuses one it does not know with [`crate::StoreError::Version`]. Records only one
//! process writes have their types in that process (the hub's lock-set log, the device's chain
//! follower).

pub mod channel;

pub use channel::{
    ChannelRecordError, ChannelStateRecord, EndStateRecord, KnownSecretRecord, PendingLocksRecord,
    PendingWithdrawRecord, PhaseRecord, CHANNEL_STATE_VERSION,
};
