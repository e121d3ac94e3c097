//! Tests of per-record ledger persistence through [`LedgerHandle`]: an operation's batch does
//! not grow with the number of channels, a restart rebuilds the same ledger, subscribers replay
//! from the store, and a snapshot-format data directory is converted once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use channel_core::ledger::{Ledger, LedgerConfig, LedgerEvent};
use channel_core::primitives::{Address, U256};
use channel_core::testing::{test_domain, test_signer};
use channel_core::{BalanceData, Secret, SignedBalanceProof, Signer, H256};

use super::handle::LedgerHandle;
use super::records::{self, KEY_STATE, NS_LEDGER, NS_LEDGER_EVENTS};
use crate::error::HubError;
use crate::store::{record, KvStore, MemoryStore, Persist, StoreError, WriteBatch};

/// A memory store that remembers how many bytes (keys + values) the last batch wrote.
#[derive(Debug, Default)]
struct CountingStore {
    inner: MemoryStore,
    last_batch_bytes: AtomicUsize,
}

impl KvStore for CountingStore {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read(namespace, key)
    }

    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(namespace)
    }

    fn write(&self, batch: WriteBatch) -> Result<Persist, StoreError> {
        let bytes = batch
            .ops
            .iter()
            .map(|op| op.namespace.len() + op.key.len() + op.value.as_ref().map_or(0, Vec::len))
            .sum();
        self.last_batch_bytes.store(bytes, Ordering::SeqCst);
        self.inner.write(batch)
    }

    fn sync(&self) -> Result<Persist, StoreError> {
        self.inner.sync()
    }
}

fn config() -> LedgerConfig {
    LedgerConfig {
        domain: test_domain(),
        settlement_timeout: 10,
    }
}

fn device(n: u32) -> Address {
    let mut a = [0x55; 20];
    a[16..].copy_from_slice(&n.to_be_bytes());
    Address(a)
}

/// `hub` minted plenty and opened a channel with each of `n` devices.
async fn hub_with_channels(store: Arc<dyn KvStore>, hub: Address, n: u32) -> LedgerHandle {
    let handle = LedgerHandle::load(store, config(), || 1).unwrap();
    handle
        .apply(|l, now| l.mint_with_events(hub, U256::from(u64::MAX), now))
        .await
        .unwrap();
    for i in 0..n {
        handle
            .submit(hub, |l, caller, now| l.open_channel(caller, device(i), now))
            .await
            .unwrap();
    }
    handle
}

async fn deposit_bytes(n: u32) -> usize {
    let store = Arc::new(CountingStore::default());
    let hub = Address([0x11; 20]);
    let handle = hub_with_channels(store.clone(), hub, n).await;
    let id = U256::from(n / 2 + 1);
    handle
        .submit(hub, |l, caller, now| {
            l.set_total_deposit(caller, id, caller, U256::from(7u8), now)
        })
        .await
        .unwrap();
    store.last_batch_bytes.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_deposit_writes_as_many_bytes_with_2000_channels_as_with_10() {
    let small = deposit_bytes(10).await;
    let large = deposit_bytes(2_000).await;
    assert!(small > 0);
    // Only the digits of a larger channel id may differ.
    assert!(
        large <= small + 16,
        "one deposit wrote {small} bytes at 10 channels but {large} at 2,000"
    );
}

/// A ledger with every kind of record: accounts, open, closed and settled channels, a
/// registered secret.
async fn busy_handle(store: Arc<dyn KvStore>, clock: Arc<AtomicU64>) -> LedgerHandle {
    let time = clock.clone();
    let handle = LedgerHandle::load(store, config(), move || time.load(Ordering::SeqCst)).unwrap();
    let (a, b) = (test_signer(1), test_signer(2));
    let (aa, ba) = (a.address(), b.address());
    for who in [aa, ba] {
        handle
            .apply(|l, now| l.mint_with_events(who, U256::from(100u8), now))
            .await
            .unwrap();
    }
    for partner in [ba, device(1), device(2)] {
        handle
            .submit(aa, |l, caller, now| l.open_channel(caller, partner, now))
            .await
            .unwrap();
    }
    let one = U256::from(1u8);
    handle
        .submit(aa, |l, caller, now| {
            l.set_total_deposit(caller, one, caller, U256::from(30u8), now)
        })
        .await
        .unwrap();
    let none = SignedBalanceProof::none(test_domain(), one);
    let sig = none.counter_sign_close(&a).unwrap();
    handle
        .submit(aa, |l, caller, now| {
            l.close_channel(caller, one, &none, &sig, now)
        })
        .await
        .unwrap();
    clock.fetch_add(11, Ordering::SeqCst);
    handle
        .submit(ba, |l, caller, now| {
            let settle = channel_core::ledger::SettleTransaction {
                channel_id: one,
                balances: [(aa, BalanceData::EMPTY), (ba, BalanceData::EMPTY)],
            };
            l.settle_channel(caller, &settle, now)
        })
        .await
        .unwrap();
    handle
        .submit(ba, |l, caller, now| {
            l.register_secret(caller, Secret(H256([9; 32])), now)
        })
        .await
        .unwrap();
    handle
}

fn snapshot(handle: &LedgerHandle) -> Ledger {
    handle.read(Ledger::clone).unwrap()
}

#[tokio::test]
async fn a_restart_rebuilds_the_same_ledger_from_its_records() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let clock = Arc::new(AtomicU64::new(100));
    let handle = busy_handle(store.clone(), clock.clone()).await;
    let before = snapshot(&handle);
    assert!(before.last_event_seq() >= 8);
    assert_eq!(
        store.read(NS_LEDGER, KEY_STATE).unwrap(),
        None,
        "no snapshot"
    );

    let reloaded = LedgerHandle::load(store.clone(), config(), || 0).unwrap();
    assert_eq!(snapshot(&reloaded), before);
    assert_eq!(reloaded.durable_seq().unwrap(), before.last_event_seq());
    assert_eq!(
        reloaded.now().unwrap(),
        111,
        "time resumes from the last event"
    );

    // Both go on the same way.
    let hub = test_signer(1).address();
    let mut next = Vec::new();
    for h in [&handle, &reloaded] {
        let (id, events) = h
            .submit(hub, |l, caller, now| l.open_channel(caller, device(3), now))
            .await
            .unwrap();
        next.push((id, events[0].seq));
    }
    assert_eq!(next[0], next[1]);
    assert_eq!(snapshot(&handle), snapshot(&reloaded));
}

#[tokio::test]
async fn subscribers_replay_from_the_store_what_memory_no_longer_holds() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let handle = busy_handle(store.clone(), Arc::new(AtomicU64::new(100))).await;
    let last = handle.durable_seq().unwrap();
    assert!(
        handle.read(|l| l.events_since(0).is_empty()).unwrap(),
        "durable events left memory"
    );
    let stored = records::read_events(store.as_ref(), 1, last).unwrap();
    assert_eq!(stored.len() as u64, last);

    let (replay, mut live) = handle.subscribe(3).unwrap();
    assert_eq!(replay.as_slice(), &stored[2..]);
    let (_, events) = handle
        .apply(|l, now| l.mint_with_events(device(7), U256::from(1u8), now))
        .await
        .unwrap();
    let next: LedgerEvent = live.recv().await.unwrap().event.clone();
    assert_eq!(next, events[0]);
    assert_eq!(next.seq, last + 1, "no gap, no duplicate");
    let (all, _) = handle.subscribe(0).unwrap();
    assert_eq!(all.len() as u64, last + 1);
}

/// Writes `ledger` the way the snapshot format did: the state without its events under
/// `ledger/state` (version 2, events as a plain empty list) and one record per event.
fn write_snapshot_format(store: &dyn KvStore, ledger: &mut Ledger, version: u8) {
    let events = ledger.events_since(0).to_vec();
    let state = ledger.with_events_detached(|l| serde_json::to_string(l).unwrap());
    let old_log = r#""events":{"released":0,"events":[]}"#;
    assert!(state.contains(old_log), "{state}");
    let state = state.replace(old_log, r#""events":[]"#);
    let mut bytes = vec![version];
    bytes.extend_from_slice(state.as_bytes());
    let mut batch = WriteBatch::new();
    batch.put(NS_LEDGER, KEY_STATE, bytes);
    for e in &events {
        batch.put(
            NS_LEDGER_EVENTS,
            &records::event_key(e.seq),
            record::encode(2, e).unwrap(),
        );
    }
    drop(store.write(batch).unwrap());
}

fn small_ledger() -> Ledger {
    let mut l = Ledger::new(config());
    let (a, b) = (Address([0xa; 20]), Address([0xb; 20]));
    l.mint(a, U256::from(50u8), 5).unwrap();
    l.open_channel(a, b, 6).unwrap();
    l.set_total_deposit(a, U256::from(1u8), a, U256::from(20u8), 7)
        .unwrap();
    l
}

#[tokio::test]
async fn a_snapshot_data_directory_is_converted_on_first_start() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut old = small_ledger();
    write_snapshot_format(store.as_ref(), &mut old, 2);

    let handle = LedgerHandle::load(store.clone(), config(), || 0).unwrap();
    assert_eq!(
        store.read(NS_LEDGER, KEY_STATE).unwrap(),
        None,
        "snapshot gone"
    );
    old.release_events_through(3);
    assert_eq!(snapshot(&handle), old);
    assert_eq!(handle.now().unwrap(), 7);
    let (replay, _) = handle.subscribe(1).unwrap();
    assert_eq!(
        replay.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let (_, events) = handle
        .apply(|l, now| l.mint_with_events(device(1), U256::from(1u8), now))
        .await
        .unwrap();
    assert_eq!(events[0].seq, 4);

    // From now on it loads from records.
    let again = LedgerHandle::load(store, config(), || 0).unwrap();
    assert_eq!(snapshot(&again), snapshot(&handle));
}

#[test]
fn an_older_snapshot_format_is_refused_with_what_to_do() {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    write_snapshot_format(store.as_ref(), &mut small_ledger(), 1);
    let err = LedgerHandle::load(store.clone(), config(), || 0).unwrap_err();
    let HubError::Config(msg) = err else {
        panic!("expected a configuration error, got {err}");
    };
    assert!(
        msg.contains("version 1") && msg.contains("version 2"),
        "{msg}"
    );
    assert!(
        store.read(NS_LEDGER, KEY_STATE).unwrap().is_some(),
        "nothing changed"
    );
}
