//! The embedded ledger in the store, one record per piece of state: a channel, a token account,
//! a registered secret, a kept unlock entry, the meta record (configuration and counters) and
//! one record per event. An operation writes only what it touched, so its batch does not grow
//! with the number of channels or events.
//!
//! Also owns reading it all back at start-up, and converting a data directory written by the
//! snapshot format (one `ledger/state` record, version 2) on first start.

use channel_core::ledger::{
    ChannelRecord, Ledger, LedgerChanges, LedgerConfig, LedgerCounters, LedgerEvent, LedgerParts,
    UnlockEntry,
};
use channel_core::primitives::{u256_dec, Address, H256, U256};
use channel_core::proofs::unlock_identifier;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::HubError;
use crate::store::{record, KvStore, StoreError, WriteBatch};

/// Namespace of the snapshot format (before per-record storage).
pub const NS_LEDGER: &str = "ledger";
/// Key of the snapshot inside [`NS_LEDGER`].
pub const KEY_STATE: &str = "state";
/// Format version of the snapshot that [`migrate_snapshot`] converts.
pub const SNAPSHOT_VERSION: u8 = 2;

/// Namespace of the event records, keyed by zero-padded seq.
pub const NS_LEDGER_EVENTS: &str = "ledger_events";
/// Format version of event records (unchanged since the snapshot format).
pub const EVENT_RECORD_VERSION: u8 = 2;

/// Namespace of the meta record (configuration and counters), under [`KEY_META`].
pub const NS_LEDGER_META: &str = "ledger_meta";
pub const KEY_META: &str = "meta";
/// One record per channel, keyed by decimal channel id.
pub const NS_LEDGER_CHANNELS: &str = "ledger_channels";
/// One record per token account with a non-zero balance, keyed by address.
pub const NS_LEDGER_ACCOUNTS: &str = "ledger_accounts";
/// One record per registered secret, keyed by secrethash.
pub const NS_LEDGER_SECRETS: &str = "ledger_secrets";
/// One record per kept unlock entry, keyed by unlock identifier.
pub const NS_LEDGER_UNLOCKS: &str = "ledger_unlocks";
/// Format version of the per-record state (meta, channel, account, secret, unlock records).
pub const LEDGER_RECORD_VERSION: u8 = 3;

#[derive(Serialize, Deserialize)]
struct Meta {
    config: LedgerConfig,
    counters: LedgerCounters,
}

#[derive(Serialize, Deserialize)]
struct AccountRecord {
    address: Address,
    #[serde(with = "u256_dec")]
    balance: U256,
}

#[derive(Serialize, Deserialize)]
struct SecretRecord {
    secrethash: H256,
    registered_at: u64,
}

/// Key of the event with `seq` in [`NS_LEDGER_EVENTS`].
pub fn event_key(seq: u64) -> String {
    format!("{seq:020}")
}

fn channel_key(id: U256) -> String {
    id.to_string()
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    record::encode(LEDGER_RECORD_VERSION, value)
}

/// Adds to `batch` the records `changes` names (puts, and deletes for drained accounts and
/// fully unlocked entries) plus the meta record.
pub fn put_changes(
    batch: &mut WriteBatch,
    config: &LedgerConfig,
    changes: &LedgerChanges,
) -> Result<(), StoreError> {
    for channel in &changes.channels {
        batch.put(
            NS_LEDGER_CHANNELS,
            &channel_key(channel.id),
            encode(channel)?,
        );
    }
    for (address, balance) in &changes.accounts {
        let key = address.to_string();
        if balance.is_zero() {
            batch.remove(NS_LEDGER_ACCOUNTS, &key);
        } else {
            let value = AccountRecord {
                address: *address,
                balance: *balance,
            };
            batch.put(NS_LEDGER_ACCOUNTS, &key, encode(&value)?);
        }
    }
    for (secrethash, registered_at) in &changes.secrets {
        let value = SecretRecord {
            secrethash: *secrethash,
            registered_at: *registered_at,
        };
        batch.put(NS_LEDGER_SECRETS, &secrethash.to_string(), encode(&value)?);
    }
    for (key, entry) in &changes.unlocks {
        match entry {
            Some(entry) => batch.put(NS_LEDGER_UNLOCKS, &key.to_string(), encode(entry)?),
            None => batch.remove(NS_LEDGER_UNLOCKS, &key.to_string()),
        };
    }
    let meta = Meta {
        config: config.clone(),
        counters: changes.counters.clone(),
    };
    batch.put(NS_LEDGER_META, KEY_META, encode(&meta)?);
    Ok(())
}

/// Adds the record of event `e` to `batch`.
pub fn put_event(batch: &mut WriteBatch, e: &LedgerEvent) -> Result<(), StoreError> {
    batch.put(
        NS_LEDGER_EVENTS,
        &event_key(e.seq),
        record::encode(EVENT_RECORD_VERSION, e)?,
    );
    Ok(())
}

/// The stored event with `seq`, if any; a record holding another seq is corrupt.
pub fn read_event(store: &dyn KvStore, seq: u64) -> Result<Option<LedgerEvent>, StoreError> {
    read_event_in(store, NS_LEDGER_EVENTS, seq)
}

/// Stored events `from..=to`, oldest first; a missing one is an error (the log has no gaps).
pub fn read_events(
    store: &dyn KvStore,
    from: u64,
    to: u64,
) -> Result<Vec<LedgerEvent>, StoreError> {
    read_events_in(store, NS_LEDGER_EVENTS, from, to)
}

/// [`read_event`] from the event log in `namespace` (the embedded ledger's, or the chain
/// follower's, which uses the same key and record format).
pub fn read_event_in(
    store: &dyn KvStore,
    namespace: &str,
    seq: u64,
) -> Result<Option<LedgerEvent>, StoreError> {
    let key = event_key(seq);
    let Some(bytes) = store.read(namespace, &key)? else {
        return Ok(None);
    };
    let event: LedgerEvent = record::decode(namespace, &key, EVENT_RECORD_VERSION, &bytes)?;
    if event.seq != seq {
        return Err(corrupt(
            namespace,
            &key,
            format!("holds event {}", event.seq),
        ));
    }
    Ok(Some(event))
}

/// [`read_events`] from the event log in `namespace`.
pub fn read_events_in(
    store: &dyn KvStore,
    namespace: &str,
    from: u64,
    to: u64,
) -> Result<Vec<LedgerEvent>, StoreError> {
    let mut out = Vec::new();
    for seq in from.max(1)..=to {
        let event = read_event_in(store, namespace, seq)?
            .ok_or_else(|| corrupt(namespace, &event_key(seq), "event is missing".into()))?;
        out.push(event);
    }
    Ok(out)
}

fn corrupt(namespace: &str, key: &str, reason: String) -> StoreError {
    StoreError::Corrupt {
        namespace: namespace.to_string(),
        key: key.to_string(),
        reason,
    }
}

/// Every record of `namespace`, decoded, each checked to sit under the key it names.
fn read_all<T: DeserializeOwned>(
    store: &dyn KvStore,
    namespace: &str,
    key_of: impl Fn(&T) -> String,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for key in store.list(namespace)? {
        let Some(bytes) = store.read(namespace, &key)? else {
            continue;
        };
        let value: T = record::decode(namespace, &key, LEDGER_RECORD_VERSION, &bytes)?;
        let expected = key_of(&value);
        if expected != key {
            return Err(corrupt(
                namespace,
                &key,
                format!("record belongs under key {expected}"),
            ));
        }
        out.push(value);
    }
    Ok(out)
}

/// Reads the ledger back from its records; `None` when the store has none.
fn load_records(store: &dyn KvStore) -> Result<Option<Ledger>, HubError> {
    let Some(bytes) = store.read(NS_LEDGER_META, KEY_META)? else {
        return Ok(None);
    };
    let meta: Meta = record::decode(NS_LEDGER_META, KEY_META, LEDGER_RECORD_VERSION, &bytes)?;
    let channels = read_all(store, NS_LEDGER_CHANNELS, |c: &ChannelRecord| {
        channel_key(c.id)
    })?;
    let accounts = read_all(store, NS_LEDGER_ACCOUNTS, |a: &AccountRecord| {
        a.address.to_string()
    })?;
    let secrets = read_all(store, NS_LEDGER_SECRETS, |s: &SecretRecord| {
        s.secrethash.to_string()
    })?;
    let unlocks = read_all(store, NS_LEDGER_UNLOCKS, |u: &UnlockEntry| {
        unlock_identifier(&u.channel_id, u.sender, u.receiver).to_string()
    })?;
    let last_event_seq = meta.counters.last_event_seq;
    if last_event_seq > 0 && read_event(store, last_event_seq)?.is_none() {
        return Err(corrupt(
            NS_LEDGER_EVENTS,
            &event_key(last_event_seq),
            "the newest event named by the meta record is missing".into(),
        )
        .into());
    }
    let ledger = Ledger::from_parts(LedgerParts {
        config: meta.config,
        counters: meta.counters,
        channels,
        accounts: accounts
            .into_iter()
            .map(|a| (a.address, a.balance))
            .collect(),
        secrets: secrets
            .into_iter()
            .map(|s| (s.secrethash, s.registered_at))
            .collect(),
        unlocks,
    })?;
    Ok(Some(ledger))
}

/// Converts a snapshot-format data directory: writes every record and deletes the snapshot in
/// one atomic batch (a crash before it is flushed leaves the snapshot, and the next start
/// converts again). `None` when there is no snapshot.
fn migrate_snapshot(store: &dyn KvStore) -> Result<Option<Ledger>, HubError> {
    let Some(bytes) = store.read(NS_LEDGER, KEY_STATE)? else {
        return Ok(None);
    };
    let mut ledger: Ledger = record::decode(NS_LEDGER, KEY_STATE, SNAPSHOT_VERSION, &bytes)
        .map_err(|e| match e {
            StoreError::Version { found, .. } => HubError::Config(format!(
                "the data directory holds a ledger snapshot of format version {found}; this hub \
                 converts only version {SNAPSHOT_VERSION} snapshots to per-record storage. Start \
                 it once with the hub release that wrote version {SNAPSHOT_VERSION} snapshots, \
                 then with this one"
            )),
            other => other.into(),
        })?;
    let keys = store.list(NS_LEDGER_EVENTS)?;
    let last_seq = u64::try_from(keys.len()).unwrap_or(u64::MAX);
    if let Some(last) = keys.last() {
        if *last != event_key(last_seq) {
            return Err(corrupt(
                NS_LEDGER_EVENTS,
                last,
                format!("{last_seq} event records but the newest is not event {last_seq}"),
            )
            .into());
        }
    }
    ledger.resume_events_after(last_seq)?;
    ledger.touch_everything();
    let changes = ledger.take_changes();
    let mut batch = WriteBatch::new();
    put_changes(&mut batch, ledger.config(), &changes)?;
    batch.remove(NS_LEDGER, KEY_STATE);
    // Durable with the next flush (the first operation's, or shutdown's); nothing depends on it
    // before then.
    drop(store.write(batch)?);
    tracing::info!(
        channels = changes.channels.len(),
        events = last_seq,
        "converted the ledger snapshot to per-record storage"
    );
    Ok(Some(ledger))
}

/// The stored ledger (converting a snapshot on first start), or `None` for a fresh store.
pub fn load(store: &dyn KvStore) -> Result<Option<Ledger>, HubError> {
    match load_records(store)? {
        Some(ledger) => Ok(Some(ledger)),
        None => migrate_snapshot(store),
    }
}
