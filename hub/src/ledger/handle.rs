//! [`LedgerHandle`]: the ledger state machine plus persistence and event fan-out.
//!
//! Call order for an operation ([`LedgerHandle::apply`]): under the lock, run the ledger call
//! with `now`, and on success apply one store batch (the records it touched + its new event
//! records, see [`super::records`]); outside the lock, await durability; then publish every
//! newly durable event to subscribers, in order, and release it from memory. Because batches
//! are applied in lock order and a flush covers everything applied before it, "my batch is
//! durable" implies "all earlier batches are durable".
//!
//! Memory holds only events not yet durable; [`LedgerHandle::subscribe`] replays older ones
//! from the store.

use std::sync::{Arc, Mutex, MutexGuard};

use channel_core::ledger::{Ledger, LedgerConfig, LedgerError, LedgerEvent, LedgerOp};
use channel_core::primitives::Address;
use tokio::sync::{broadcast, watch};

use super::records;
use crate::error::HubError;
use crate::store::{KvStore, WriteBatch};

pub use super::records::{KEY_STATE, NS_LEDGER, NS_LEDGER_EVENTS};

/// Capacity of the live event channel; a subscriber further behind is told to resubscribe.
const EVENT_CHANNEL_CAPACITY: usize = 4096;

/// A durable event as broadcast to subscribers, with the participants of its channel
/// resolved once when it is published, so that a subscriber filtering by participant
/// (`Ledger.Subscribe` for one device) never needs the ledger lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedEvent {
    pub event: LedgerEvent,
    /// The participants of the event's channel, for channel events.
    pub parties: Option<[Address; 2]>,
}

impl PublishedEvent {
    /// Whether the event concerns `who` (see `LedgerEventKind::concerns`).
    pub fn concerns(&self, who: Address) -> bool {
        self.event.kind.concerns(who, self.parties)
    }
}

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

struct Inner {
    ledger: Ledger,
    /// Highest event seq known durable (and published).
    durable_seq: u64,
    /// Last `now` handed to the ledger; ledger time never goes backwards.
    last_now: u64,
    /// Set after a storage failure: in-memory state may be ahead of disk.
    failed: bool,
}

/// Shared handle to the embedded ledger.
pub struct LedgerHandle {
    inner: Mutex<Inner>,
    store: Arc<dyn KvStore>,
    events: broadcast::Sender<Arc<PublishedEvent>>,
    /// Mirrors `Inner::failed` for watchers (health): `true` once a store failure was seen.
    failed: watch::Sender<bool>,
    clock: Clock,
}

impl std::fmt::Debug for LedgerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerHandle").finish_non_exhaustive()
    }
}

impl LedgerHandle {
    /// Loads the ledger from `store`, or starts a new one with `config`. A stored ledger for
    /// another domain or settlement window is refused rather than silently reused.
    pub fn load(
        store: Arc<dyn KvStore>,
        config: LedgerConfig,
        clock: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Result<Self, HubError> {
        let ledger = match records::load(store.as_ref())? {
            Some(ledger) => {
                if *ledger.config() != config {
                    return Err(HubError::Config(format!(
                        "the data directory holds a ledger with {:?}, but the hub is configured with {:?}",
                        ledger.config(),
                        config
                    )));
                }
                ledger
            }
            None => Ledger::new(config),
        };
        let durable_seq = ledger.last_event_seq();
        let last_now = records::read_event(store.as_ref(), durable_seq)?.map_or(0, |e| e.time);
        tracing::info!(events = durable_seq, "ledger loaded");
        let (events, _) = broadcast::channel(EVENT_CHANNEL_CAPACITY);
        Ok(Self {
            inner: Mutex::new(Inner {
                ledger,
                durable_seq,
                last_now,
                failed: false,
            }),
            store,
            events,
            failed: watch::Sender::new(false),
            clock: Arc::new(clock),
        })
    }

    /// A receiver that turns `true` (once, for good) when a store failure made the ledger
    /// refuse further operations.
    pub fn failed(&self) -> watch::Receiver<bool> {
        self.failed.subscribe()
    }

    /// Records a store failure: further operations are refused and watchers are told.
    fn mark_failed(&self, inner: &mut Inner) {
        inner.failed = true;
        self.failed.send_replace(true);
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, HubError> {
        self.inner
            .lock()
            .map_err(|_| HubError::Internal("ledger lock poisoned".into()))
    }

    /// Current ledger time: the wall clock, never below the time of the last operation.
    pub fn now(&self) -> Result<u64, HubError> {
        let inner = self.lock()?;
        Ok((self.clock)().max(inner.last_now))
    }

    /// Runs a query on the current state.
    pub fn read<R>(&self, f: impl FnOnce(&Ledger) -> R) -> Result<R, HubError> {
        let inner = self.lock()?;
        Ok(f(&inner.ledger))
    }

    /// Highest durable event seq.
    /// Makes every event the ledger has emitted so far durable and published, and returns
    /// its seq. Readers that use durable events only (the channel book) call it to see what
    /// the ledger already shows. An operation writes its events under the same lock as it
    /// emits them, so a store sync covers them; publishing here also covers an operation
    /// whose caller went away before it published its own events.
    pub async fn settled_seq(&self) -> Result<u64, HubError> {
        let target = self.read(|l| l.last_event_seq())?;
        self.make_durable(target).await?;
        Ok(target)
    }

    /// Reads the ledger and answers once everything the read saw is durable, so no reader
    /// (a device asking for its channel, the chaos test, a watcher) is shown a state that a
    /// `kill -9` would take back. Every state change emits an event under the ledger lock,
    /// so the read's last event seq covers all it saw.
    pub async fn read_durable<R>(&self, f: impl FnOnce(&Ledger) -> R) -> Result<R, HubError> {
        let (value, seen) = self.read(|l| (f(l), l.last_event_seq()))?;
        self.make_durable(seen).await?;
        Ok(value)
    }

    /// Waits until every event up to `target` is durable (one store sync covers all writes
    /// queued before it) and published.
    async fn make_durable(&self, target: u64) -> Result<(), HubError> {
        if self.durable_seq()? >= target {
            return Ok(());
        }
        self.store.sync()?.durable().await?;
        if self.lock()?.failed {
            return Err(HubError::LedgerFailed);
        }
        self.publish_up_to(target)
    }

    pub fn durable_seq(&self) -> Result<u64, HubError> {
        Ok(self.lock()?.durable_seq)
    }

    /// Runs `op(ledger, now)`; on success persists the new state and its events and returns
    /// once they are durable. On a ledger error nothing changed and nothing is written.
    pub async fn apply<T>(
        &self,
        op: impl FnOnce(&mut Ledger, u64) -> Result<T, LedgerError>,
    ) -> Result<(T, Vec<LedgerEvent>), HubError> {
        let (value, events, persist) = {
            let mut inner = self.lock()?;
            if inner.failed {
                return Err(HubError::LedgerFailed);
            }
            let now = (self.clock)().max(inner.last_now);
            let before = inner.ledger.last_event_seq();
            let value = op(&mut inner.ledger, now)?;
            inner.last_now = now;
            let events = inner.ledger.events_since(before).to_vec();
            let persist = match self.persist(&mut inner.ledger, &events) {
                Ok(p) => p,
                Err(e) => {
                    self.mark_failed(&mut inner);
                    tracing::error!(error = %e, "ledger write failed; refusing further ledger operations");
                    return Err(e);
                }
            };
            (value, events, persist)
        };
        if let Err(e) = persist.durable().await {
            match self.lock() {
                Ok(mut inner) => self.mark_failed(&mut inner),
                Err(_) => {
                    self.failed.send_replace(true);
                }
            }
            tracing::error!(error = %e, "ledger flush failed; refusing further ledger operations");
            return Err(e.into());
        }
        if let Some(last) = events.last() {
            self.publish_up_to(last.seq)?;
        }
        Ok((value, events))
    }

    fn persist(
        &self,
        ledger: &mut Ledger,
        events: &[LedgerEvent],
    ) -> Result<crate::store::Persist, HubError> {
        let batch = Self::batch_for(ledger, events)?;
        Ok(self.store.write(batch)?)
    }

    /// The batch persisting an operation: the records it touched and its events (O(1) in the
    /// number of channels and events).
    fn batch_for(ledger: &mut Ledger, events: &[LedgerEvent]) -> Result<WriteBatch, HubError> {
        let changes = ledger.take_changes();
        let mut batch = WriteBatch::new();
        records::put_changes(&mut batch, ledger.config(), &changes)?;
        for e in events {
            records::put_event(&mut batch, e)?;
        }
        Ok(batch)
    }

    /// Marks everything up to `seq` durable, broadcasts what was not yet published and drops
    /// it from memory (it is in the store).
    fn publish_up_to(&self, seq: u64) -> Result<(), HubError> {
        let mut inner = self.lock()?;
        if seq <= inner.durable_seq {
            return Ok(());
        }
        let from = inner.durable_seq;
        for e in inner
            .ledger
            .events_since(from)
            .iter()
            .take_while(|e| e.seq <= seq)
        {
            let parties = e
                .kind
                .channel_id()
                .and_then(|id| inner.ledger.participants_of(id));
            // No receivers is fine: nobody subscribed.
            let _ = self.events.send(Arc::new(PublishedEvent {
                event: e.clone(),
                parties,
            }));
        }
        inner.durable_seq = seq;
        inner.ledger.release_events_through(seq);
        Ok(())
    }

    /// Durable events with `seq >= from_seq` (read from the store) plus a receiver for every
    /// later one. The receiver and the durable seq are taken under the same lock as publishing,
    /// so the receiver gets exactly the events after the replayed ones: nothing is missed or
    /// doubled when the caller skips live events with `seq <=` the last replayed one.
    pub fn subscribe(
        &self,
        from_seq: u64,
    ) -> Result<(Vec<LedgerEvent>, broadcast::Receiver<Arc<PublishedEvent>>), HubError> {
        let (rx, durable) = {
            let inner = self.lock()?;
            (self.events.subscribe(), inner.durable_seq)
        };
        // Everything up to `durable` is in the store already: read it without the lock.
        let replay = records::read_events(self.store.as_ref(), from_seq, durable)?;
        Ok((replay, rx))
    }

    /// `events` with the participants of their channels, resolved under one lock (for
    /// filtering a replay the way live events are filtered).
    pub fn published(&self, events: Vec<LedgerEvent>) -> Result<Vec<PublishedEvent>, HubError> {
        let inner = self.lock()?;
        Ok(events
            .into_iter()
            .map(|event| {
                let parties = event
                    .kind
                    .channel_id()
                    .and_then(|id| inner.ledger.participants_of(id));
                PublishedEvent { event, parties }
            })
            .collect())
    }

    /// Executes the ledger operation `op` sent by `caller` (see [`LedgerOp`]): its events,
    /// durable when this returns.
    pub async fn execute(
        &self,
        caller: Address,
        op: &LedgerOp,
    ) -> Result<Vec<LedgerEvent>, HubError> {
        let (events, _) = self
            .apply(|ledger, now| ledger.execute(caller, op, now))
            .await?;
        Ok(events)
    }

    /// Convenience for callers acting as `caller` (the authenticated transaction sender).
    pub async fn submit<T>(
        &self,
        caller: Address,
        op: impl FnOnce(&mut Ledger, Address, u64) -> Result<T, LedgerError>,
    ) -> Result<(T, Vec<LedgerEvent>), HubError> {
        self.apply(|ledger, now| op(ledger, caller, now)).await
    }
}

#[cfg(test)]
mod tests {
    use channel_core::primitives::U256;
    use channel_core::Domain;

    use super::*;
    use crate::store::MemoryStore;

    fn config() -> LedgerConfig {
        LedgerConfig {
            domain: Domain {
                chain_id: U256::from(1u8),
                token_network_address: Address([1; 20]),
            },
            settlement_timeout: 10,
        }
    }

    #[tokio::test]
    async fn persists_replays_and_refuses_foreign_config() {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let handle = LedgerHandle::load(store.clone(), config(), || 100).unwrap();
        let (_, mut live) = handle.subscribe(0).unwrap();
        let a = Address([0xa; 20]);
        let b = Address([0xb; 20]);
        handle
            .apply(|l, now| l.mint_with_events(a, U256::from(50u8), now))
            .await
            .unwrap();
        let (id, events) = handle
            .submit(a, |l, caller, now| l.open_channel(caller, b, now))
            .await
            .unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(live.recv().await.unwrap().event.seq, 1);
        assert_eq!(live.recv().await.unwrap().event.seq, 2);

        let err = handle
            .submit(a, |l, caller, now| l.open_channel(caller, b, now))
            .await
            .unwrap_err();
        assert!(matches!(err, HubError::Ledger(_)), "{err}");
        assert_eq!(handle.durable_seq().unwrap(), 2);
        assert_eq!(store.list(NS_LEDGER_EVENTS).unwrap().len(), 2);

        let reloaded = LedgerHandle::load(store.clone(), config(), || 50).unwrap();
        assert!(reloaded.read(|l| l.channel(id).is_some()).unwrap());
        assert_eq!(reloaded.now().unwrap(), 100, "time never goes backwards");
        let (replay, _) = reloaded.subscribe(2).unwrap();
        assert_eq!(replay.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2]);

        let mut other = config();
        other.settlement_timeout = 11;
        assert!(matches!(
            LedgerHandle::load(store, other, || 0),
            Err(HubError::Config(_))
        ));
    }
}
