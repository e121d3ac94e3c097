//! State shared by the [`Client`](crate::Client) and its background tasks: the channel state
//! machine behind a mutex (never held across an await), the calls waiting for their ack, the
//! queue of signed proofs for the stream task, the store, and the hub's mediation settings.
//!
//! Every channel change goes through [`Shared::transition`]: the transition runs on a copy,
//! the copy (and what else the step records, in the same [`DeviceBatch`]) is written to the
//! store, and only then replaces the live channel, so a refused input or a store error leaves
//! both untouched; the call returns once the write is durable, so nothing a caller sends
//! after it can be lost.
//!
//! Every proof for `Payments.Pay` (direct payment, locked transfer, unlock, lock expired) is
//! signed by [`Shared::enqueue`] under the same lock that assigns its place in the queue, so
//! queue order is nonce order; the queue carries each proof's durability ticket, and the
//! stream task reads the proof from the store (which answers durable data only) after it.
//! The records of mediated payments are read-modified-written under their own async lock
//! ([`Shared::update_outgoing`] and friends), held until the write is durable (the store's
//! reads see durable data only, so a later update reads this one); it is taken before the
//! channel lock, never the other way round.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::ledger::LedgerEvent;
use channel_core::primitives::{H256, U256};
use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::ledger::DeviceLedger;
use crate::mediation::{MediationInfo, MediationOptions};
use crate::rpc::Rpc;
use crate::store::{
    DeviceBatch, DeviceStore, ForwardRecord, HubRecord, IncomingTransfer, OutgoingTransfer,
    PaymentRequestRecord, Persist, QueuedKind, StoreError, UnackedPayment,
};
use crate::sync::{self, EventEffect};
use crate::types::{MediatedPayment, PaymentReceipt, ReceivedPayment};

/// Payments signed but not yet acknowledged, at most (back-pressure on `pay`).
pub const MAX_IN_FLIGHT: usize = 4096;

/// What the hub said when it acknowledged one proof of the Pay stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Acked {
    pub receipt: PaymentReceipt,
    /// Locked transfers: what became of the forward (`Unknown` when the ack itself was lost).
    pub forward: Option<ForwardRecord>,
}

/// One proof queued for the stream task: its nonce and when its write is durable.
pub(crate) type Queued = (u64, Persist);

/// Waits for `persist`: the write it stands for is durable.
pub(crate) async fn durable(persist: Persist) -> Result<(), ClientError> {
    persist.durable().await.map_err(StoreError::from)?;
    Ok(())
}

/// The answer a queued proof waits for.
pub(crate) type AckReply = oneshot::Receiver<Result<Acked, ClientError>>;
type Reply = oneshot::Sender<Result<Acked, ClientError>>;

/// One proof the sign step of [`Shared::enqueue`] made: what it moves and what it does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Signed {
    pub amount: U256,
    pub kind: QueuedKind,
}

struct Pending {
    reply: Reply,
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct State {
    channel: Option<Channel>,
    pending: BTreeMap<u64, Pending>,
    /// Why new payments are refused (a final rejection by the hub, a close in progress).
    send_blocked: Option<String>,
    /// The nonce of our locked transfer the hub has not answered yet. Nothing is signed on
    /// top of it until it is acknowledged or taken back after a refusal, so a refused lock
    /// is always our latest proof and can be retracted (see [`Shared::retract_lock`]).
    lock_in_flight: Option<u64>,
}

pub(crate) struct Shared {
    pub rpc: Rpc,
    /// The ledger: the hub's embedded one or the chain (see [`crate::ledger`]).
    pub ledger: DeviceLedger,
    pub store: DeviceStore,
    pub hub: HubRecord,
    state: Mutex<State>,
    pay_queue: mpsc::UnboundedSender<Queued>,
    /// Bumped whenever the channel appears or changes phase; tasks wait on it.
    changed: watch::Sender<u64>,
    pub hub_payments: broadcast::Sender<ReceivedPayment>,
    pub mediated_payments: broadcast::Sender<MediatedPayment>,
    /// The hub's mediation settings (from `Hub.GetInfo` at connect).
    pub mediation: MediationInfo,
    options: RwLock<MediationOptions>,
    /// Guards read-modify-write of the mediated-payment records, until durable.
    records: tokio::sync::Mutex<()>,
    /// Bumped whenever an outgoing transfer record changes; `pay_request` waits on it.
    transfers_changed: watch::Sender<u64>,
    /// Secrethashes whose reveal task is running.
    reveals: Mutex<BTreeSet<H256>>,
    inflight: Arc<Semaphore>,
    /// Woken when `State::lock_in_flight` clears.
    lock_answered: Notify,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

fn poisoned() -> ClientError {
    ClientError::InvalidState("internal state lock poisoned by a panic".into())
}

impl Shared {
    pub fn new(
        rpc: Rpc,
        ledger: DeviceLedger,
        store: DeviceStore,
        hub: HubRecord,
        mediation: MediationInfo,
        channel: Option<Channel>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<Queued>) {
        let (pay_queue, queue_rx) = mpsc::unbounded_channel();
        // A locked transfer still unanswered from before a restart keeps the barrier up.
        let lock_in_flight = store.unacked_all().ok().and_then(|log| {
            log.last()
                .filter(|p| matches!(p.kind, QueuedKind::LockedTransfer { .. }))
                .map(UnackedPayment::nonce)
        });
        let shared = Arc::new(Self {
            rpc,
            ledger,
            store,
            hub,
            state: Mutex::new(State {
                channel,
                lock_in_flight,
                ..State::default()
            }),
            pay_queue,
            changed: watch::Sender::new(0),
            hub_payments: broadcast::channel(1024).0,
            mediated_payments: broadcast::channel(1024).0,
            mediation,
            options: RwLock::new(MediationOptions::default()),
            records: tokio::sync::Mutex::new(()),
            transfers_changed: watch::Sender::new(0),
            reveals: Mutex::new(BTreeSet::new()),
            inflight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            lock_answered: Notify::new(),
            tasks: Mutex::new(Vec::new()),
        });
        (shared, queue_rx)
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, ClientError> {
        self.state.lock().map_err(|_| poisoned())
    }

    // ----- tasks -----

    pub fn spawn<F, Fut>(self: &Arc<Self>, f: F)
    where
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(f(Arc::clone(self)));
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.retain(|t| !t.is_finished());
            tasks.push(handle);
        }
    }

    pub fn abort_all(&self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
    }

    /// Waits until there is an open channel and returns its id.
    pub async fn wait_open_channel(&self) -> U256 {
        let mut rx = self.changed.subscribe();
        loop {
            if let Some(id) = self.open_channel_id() {
                return id;
            }
            // The sender lives in `self`, so this only fails once we are being torn down.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A receiver that sees every channel appearance or phase change.
    pub fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    // ----- channel -----

    pub fn channel(&self) -> Result<Option<Channel>, ClientError> {
        Ok(self.lock()?.channel.clone())
    }

    pub fn require_channel(&self) -> Result<Channel, ClientError> {
        self.channel()?.ok_or(ClientError::NoChannel)
    }

    pub fn open_channel_id(&self) -> Option<U256> {
        let st = self.state.lock().ok()?;
        let ch = st.channel.as_ref()?;
        (ch.phase() == ChannelPhase::Open).then(|| ch.id())
    }

    /// Installs a new channel in place of the old one (whose logs the store forgets in the
    /// same atomic write), durably.
    pub async fn set_channel(&self, channel: Channel) -> Result<(), ClientError> {
        let mut batch = DeviceBatch::new();
        self.store.stage_clear_channel(&mut batch)?;
        batch.channel(&channel)?;
        let persist = {
            let mut st = self.lock()?;
            let persist = self.store.write(batch)?;
            st.channel = Some(channel);
            st.send_blocked = None;
            st.lock_in_flight = None;
            persist
        };
        durable(persist).await?;
        self.lock_answered.notify_waiters();
        self.bump();
        Ok(())
    }

    /// The one way the channel changes: runs `f` on a copy of the channel; `f` may add
    /// records to the batch that must be durable together with it. The copy and the batch are
    /// written in one atomic write and the copy installed; the call returns once the write is
    /// durable. On error nothing changes.
    pub async fn transition<R>(
        &self,
        f: impl FnOnce(&mut Channel, &mut DeviceBatch) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        let (out, persist, phase_changed) = {
            let mut st = self.lock()?;
            let current = st.channel.as_ref().ok_or(ClientError::NoChannel)?;
            let phase = current.phase();
            let mut next = current.clone();
            let mut batch = DeviceBatch::new();
            let out = f(&mut next, &mut batch)?;
            let changed = st.channel.as_ref() != Some(&next);
            if changed {
                batch.channel(&next)?;
            }
            let persist = self.store.write(batch)?;
            let phase_changed = next.phase() != phase;
            if changed {
                st.channel = Some(next);
            }
            (out, persist, phase_changed)
        };
        durable(persist).await?;
        if phase_changed {
            self.bump();
        }
        Ok(out)
    }

    /// [`Shared::transition`] under the records lock, held until the write is durable: `f` may
    /// read-modify-write mediated-payment records into the batch ([`Shared::stage_outgoing_update`]
    /// and friends), atomically with the channel.
    pub async fn transition_recording<R>(
        &self,
        f: impl FnOnce(&mut Channel, &mut DeviceBatch) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        let _records = self.records.lock().await;
        let out = self.transition(f).await?;
        self.transfers_changed
            .send_modify(|g| *g = g.wrapping_add(1));
        Ok(out)
    }

    /// [`Shared::transition`] of the channel alone.
    pub async fn update_channel<R>(
        &self,
        f: impl FnOnce(&mut Channel) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        self.transition(|ch, _| f(ch)).await
    }

    /// Applies a ledger event (from the subscription or an op's response) to the channel,
    /// durably.
    pub async fn apply_ledger_event(&self, ev: &LedgerEvent) -> Result<EventEffect, ClientError> {
        if self.lock()?.channel.is_none() {
            return Ok(EventEffect::default());
        }
        let effect = self.update_channel(|ch| sync::apply_event(ch, ev)).await?;
        if effect.changed && self.open_channel_id().is_none() {
            self.fail_pending("the channel left the open phase before the hub acknowledged");
        }
        Ok(effect)
    }

    // ----- payments -----

    /// Signs the next direct payment of `amount` and queues it (see [`Shared::enqueue`]).
    pub async fn enqueue_payment(&self, amount: U256) -> Result<AckReply, ClientError> {
        let signer = self.rpc.signer().clone();
        let sign = |ch: &mut Channel| {
            ch.send_payment(amount, H256::ZERO, &signer)?;
            Ok(Some(Signed {
                amount,
                kind: QueuedKind::Direct,
            }))
        };
        self.enqueue(sign, |_, _| Ok(()))
            .await?
            .ok_or_else(|| ClientError::InvalidState("payment produced no proof".into()))
    }

    /// Signs the next proof for `Payments.Pay` and queues it for the stream task, all under
    /// one lock so queue order is nonce order: `sign` runs the channel transition on a copy
    /// (and may decide there is nothing to do: `None`); `record` adds to the batch what else
    /// must be stored with the proof (it runs under the records lock: see
    /// [`Shared::stage_outgoing_update`]); the channel, the proof (in the unacknowledged log)
    /// and those records are written in one atomic write, the copy is installed and the proof
    /// queued with the write's durability ticket, which the stream task awaits before it
    /// reads the proof. On any error nothing is queued. Returns once the records (if any)
    /// are durable.
    pub async fn enqueue(
        &self,
        sign: impl FnOnce(&mut Channel) -> Result<Option<Signed>, ClientError>,
        record: impl FnOnce(&UnackedPayment, &mut DeviceBatch) -> Result<(), ClientError>,
    ) -> Result<Option<AckReply>, ClientError> {
        let permit = Arc::clone(&self.inflight)
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Shutdown)?;
        let records = loop {
            let answered = self.lock_answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let records = self.records.lock().await;
            if self.lock()?.lock_in_flight.is_none() {
                break records;
            }
            drop(records);
            answered.await;
        };
        // The barrier cannot rise again meanwhile: only `enqueue` raises it, under the records
        // lock we hold.
        let (rx, records_durable) = {
            let mut st = self.lock()?;
            if st.lock_in_flight.is_some() {
                return Err(ClientError::InvalidState(
                    "a locked transfer is in flight".into(),
                ));
            }
            if let Some(why) = &st.send_blocked {
                return Err(ClientError::InvalidState(why.clone()));
            }
            let current = st.channel.as_ref().ok_or(ClientError::NoChannel)?;
            let expected = current.our().next_nonce()?;
            let mut next = current.clone();
            let Some(signed) = sign(&mut next)? else {
                return Ok(None);
            };
            let proof = *next
                .our_latest_proof()
                .filter(|p| p.proof.nonce == expected)
                .ok_or_else(|| {
                    ClientError::InvalidState(format!(
                        "signing produced no proof with nonce {expected}"
                    ))
                })?;
            let entry = UnackedPayment {
                proof,
                amount: signed.amount,
                kind: signed.kind,
            };
            let mut batch = DeviceBatch::new();
            record(&entry, &mut batch)?;
            let records_changed = !batch.is_empty();
            batch.channel(&next)?.unacked(&entry)?;
            let persist = self.store.write(batch)?;
            let (persist, records_durable) = if records_changed {
                // The stream and this call both wait for the one write: the stream through the
                // store's sync, which covers it.
                (self.store.sync()?, Some(persist))
            } else {
                (persist, None)
            };
            st.channel = Some(next);
            if matches!(entry.kind, QueuedKind::LockedTransfer { .. }) {
                st.lock_in_flight = Some(expected);
            }
            let (reply, rx) = oneshot::channel();
            st.pending.insert(
                expected,
                Pending {
                    reply,
                    _permit: permit,
                },
            );
            self.pay_queue
                .send((expected, persist))
                .map_err(|_| ClientError::Shutdown)?;
            (rx, records_durable)
        };
        if let Some(persist) = records_durable {
            durable(persist).await?;
            drop(records);
            self.transfers_changed
                .send_modify(|g| *g = g.wrapping_add(1));
        }
        Ok(Some(rx))
    }

    /// The hub answered our locked transfer `nonce`: later proofs may be signed.
    fn lock_answered(&self, nonce: u64) {
        if let Ok(mut st) = self.state.lock() {
            if st.lock_in_flight == Some(nonce) {
                st.lock_in_flight = None;
                drop(st);
                self.lock_answered.notify_waiters();
            }
        }
    }

    /// Takes back our locked transfer `entry` after the hub refused it (it holds nothing of
    /// it): the channel returns to `previous` (checked by the core), then the entry leaves
    /// the unacknowledged log (in that order: a crash in between leaves an entry above our
    /// nonce, which the next resync drops), and new proofs may be signed again, the next
    /// one with the same nonce. Returns once durable. On error nothing changed.
    pub async fn retract_lock(
        &self,
        entry: &UnackedPayment,
        previous: Option<&channel_core::SignedBalanceProof>,
    ) -> Result<(), ClientError> {
        let QueuedKind::LockedTransfer { lock, .. } = entry.kind else {
            return Err(ClientError::InvalidState(format!(
                "proof {} is not a locked transfer",
                entry.nonce()
            )));
        };
        self.transition(|ch, batch| {
            if ch.our_latest_proof() != Some(&entry.proof) {
                return Err(ClientError::InvalidState(format!(
                    "locked transfer {} is not our latest proof",
                    entry.nonce()
                )));
            }
            ch.retract_refused_lock(&lock, previous)?;
            batch.remove_unacked(entry.nonce());
            Ok(())
        })
        .await?;
        self.lock_answered(entry.nonce());
        Ok(())
    }

    pub fn resolve(&self, nonce: u64, result: Result<Acked, ClientError>) {
        let pending = self
            .state
            .lock()
            .ok()
            .and_then(|mut st| st.pending.remove(&nonce));
        if let Some(p) = pending {
            let _ = p.reply.send(result);
        }
    }

    /// Resolves the calls waiting for `acked` (which the hub holds); `forward` is the hub's
    /// answer for the proof with nonce `forward.0`.
    pub fn resolve_acked(&self, acked: &[UnackedPayment], forward: Option<(u64, &ForwardRecord)>) {
        for p in acked {
            if matches!(p.kind, QueuedKind::LockedTransfer { .. }) {
                self.lock_answered(p.nonce());
            }
            let forward = match (&p.kind, forward) {
                (QueuedKind::LockedTransfer { .. }, Some((n, f))) if n == p.nonce() => {
                    Some(f.clone())
                }
                (QueuedKind::LockedTransfer { .. }, _) => Some(ForwardRecord::Unknown),
                _ => None,
            };
            let receipt = sync::receipt(p);
            self.resolve(p.nonce(), Ok(Acked { receipt, forward }));
        }
    }

    /// Fails every call waiting for an ack (the channel left the open phase): nothing more
    /// will be answered, so the barrier behind an unanswered locked transfer drops too (any
    /// proof signed now is refused by the channel itself).
    pub fn fail_pending(&self, why: &str) {
        let pending = match self.state.lock() {
            Ok(mut st) => {
                st.lock_in_flight = None;
                std::mem::take(&mut st.pending)
            }
            Err(_) => return,
        };
        self.lock_answered.notify_waiters();
        for (_, p) in pending {
            let _ = p
                .reply
                .send(Err(ClientError::InvalidState(why.to_string())));
        }
    }

    pub fn pending_count(&self) -> usize {
        self.state.lock().map(|st| st.pending.len()).unwrap_or(0)
    }

    /// Refuses (`Some`) or allows (`None`) new payments.
    pub fn set_send_blocked(&self, why: Option<String>) -> Result<(), ClientError> {
        self.lock()?.send_blocked = why;
        Ok(())
    }

    /// Blocks new payments for `why` if there is nothing in flight; fails otherwise.
    pub fn block_sends_when_idle(&self, why: &str) -> Result<(), ClientError> {
        let mut st = self.lock()?;
        if !st.pending.is_empty() {
            return Err(ClientError::InvalidState(format!(
                "{} payments are still waiting for the hub's acknowledgement",
                st.pending.len()
            )));
        }
        st.send_blocked = Some(why.to_string());
        Ok(())
    }
}

impl Shared {
    // ----- mediation options -----

    pub fn options(&self) -> MediationOptions {
        self.options.read().map(|o| *o).unwrap_or_default()
    }

    pub fn set_options(&self, options: MediationOptions) {
        if let Ok(mut o) = self.options.write() {
            *o = options;
        }
    }

    // ----- mediated-payment records -----

    /// Read-modify-write of the outgoing transfer `secrethash` into `batch`, for a caller that
    /// holds the records lock until `batch` is durable ([`Shared::enqueue`]'s `record`).
    /// `None` when there is no such record.
    pub fn stage_outgoing_update(
        &self,
        batch: &mut DeviceBatch,
        secrethash: &H256,
        f: impl FnOnce(&mut OutgoingTransfer),
    ) -> Result<Option<OutgoingTransfer>, ClientError> {
        let Some(current) = self.store.outgoing(secrethash)? else {
            return Ok(None);
        };
        let mut next = current.clone();
        f(&mut next);
        if next != current {
            batch.outgoing(&next)?;
        }
        Ok(Some(next))
    }

    /// Read-modify-write of the outgoing transfer `secrethash`, durable when this returns;
    /// `None` when there is no such record. Wakes the waiters when it changed.
    pub async fn update_outgoing(
        &self,
        secrethash: &H256,
        f: impl FnOnce(&mut OutgoingTransfer),
    ) -> Result<Option<OutgoingTransfer>, ClientError> {
        let _g = self.records.lock().await;
        let mut batch = DeviceBatch::new();
        let next = self.stage_outgoing_update(&mut batch, secrethash, f)?;
        if !batch.is_empty() {
            self.store.commit(batch).await?;
            self.transfers_changed
                .send_modify(|g| *g = g.wrapping_add(1));
        }
        Ok(next)
    }

    /// A receiver that sees every change of an outgoing transfer record.
    pub fn subscribe_transfers(&self) -> watch::Receiver<u64> {
        self.transfers_changed.subscribe()
    }

    /// Read-modify-write of the incoming transfer `secrethash` into `batch` (the caller holds
    /// the records lock: [`Shared::transition_recording`]).
    pub fn stage_incoming_update(
        &self,
        batch: &mut DeviceBatch,
        secrethash: &H256,
        f: impl FnOnce(&mut IncomingTransfer),
    ) -> Result<Option<IncomingTransfer>, ClientError> {
        let Some(mut t) = self.store.incoming(secrethash)? else {
            return Ok(None);
        };
        f(&mut t);
        batch.incoming(&t)?;
        Ok(Some(t))
    }

    /// Read-modify-write of the payment request `secrethash` into `batch` (the caller holds
    /// the records lock: [`Shared::transition_recording`]).
    pub fn stage_payment_request_update(
        &self,
        batch: &mut DeviceBatch,
        secrethash: &H256,
        f: impl FnOnce(&mut PaymentRequestRecord),
    ) -> Result<Option<PaymentRequestRecord>, ClientError> {
        let Some(mut r) = self.store.payment_request(secrethash)? else {
            return Ok(None);
        };
        f(&mut r);
        batch.payment_request(&r)?;
        Ok(Some(r))
    }

    /// Read-modify-write of the incoming transfer `secrethash`, durable when this returns.
    pub async fn update_incoming(
        &self,
        secrethash: &H256,
        f: impl FnOnce(&mut IncomingTransfer),
    ) -> Result<Option<IncomingTransfer>, ClientError> {
        let _g = self.records.lock().await;
        let Some(mut t) = self.store.incoming(secrethash)? else {
            return Ok(None);
        };
        f(&mut t);
        let mut batch = DeviceBatch::new();
        batch.incoming(&t)?;
        self.store.commit(batch).await?;
        Ok(Some(t))
    }

    /// Writes a new payment request record, durably.
    pub async fn put_payment_request(&self, r: &PaymentRequestRecord) -> Result<(), ClientError> {
        let _g = self.records.lock().await;
        let mut batch = DeviceBatch::new();
        batch.payment_request(r)?;
        Ok(self.store.commit(batch).await?)
    }

    // ----- reveal tasks -----

    /// Marks a reveal task for `secrethash` as running; `false` if one already is.
    pub fn start_reveal(&self, secrethash: H256) -> bool {
        self.reveals
            .lock()
            .map(|mut r| r.insert(secrethash))
            .unwrap_or(false)
    }

    pub fn end_reveal(&self, secrethash: &H256) {
        if let Ok(mut r) = self.reveals.lock() {
            r.remove(secrethash);
        }
    }
}
