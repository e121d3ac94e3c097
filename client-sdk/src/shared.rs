//! State shared by the [`Client`](crate::Client) and its background tasks: the channel state
//! machine behind a mutex (never held across an await), the calls waiting for their ack, the
//! queue of signed proofs for the stream task, the store, and the hub's mediation settings.
//!
//! Every channel change goes through [`Shared::update_channel`]: the transition runs on a copy,
//! the copy is written to the store, and only then replaces the live channel, so a refused input
//! or a store error leaves both untouched. Callers flush before anything leaves the device.
//!
//! Every proof for `Payments.Pay` (direct payment, locked transfer, unlock, lock expired) is
//! signed by [`Shared::enqueue`] under the same lock that assigns its place in the queue, so
//! queue order is nonce order. The records of mediated payments are read-modified-written
//! under their own lock ([`Shared::update_outgoing`] and friends), which may be taken while
//! the channel lock is held but never the other way round.

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
    DeviceStore, ForwardRecord, HubRecord, IncomingTransfer, OutgoingTransfer,
    PaymentRequestRecord, QueuedKind, UnackedPayment,
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
    pay_queue: mpsc::UnboundedSender<u64>,
    /// Bumped whenever the channel appears or changes phase; tasks wait on it.
    changed: watch::Sender<u64>,
    pub hub_payments: broadcast::Sender<ReceivedPayment>,
    pub mediated_payments: broadcast::Sender<MediatedPayment>,
    /// The hub's mediation settings (from `Hub.GetInfo` at connect).
    pub mediation: MediationInfo,
    options: RwLock<MediationOptions>,
    /// Guards read-modify-write of the mediated-payment records.
    records: Mutex<()>,
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
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<u64>) {
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
            records: Mutex::new(()),
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

    /// Installs a new channel (persisted, not yet flushed).
    pub fn set_channel(&self, channel: Channel) -> Result<(), ClientError> {
        let mut st = self.lock()?;
        self.store.put_channel(&channel)?;
        st.channel = Some(channel);
        st.send_blocked = None;
        st.lock_in_flight = None;
        drop(st);
        self.lock_answered.notify_waiters();
        self.bump();
        Ok(())
    }

    /// Runs a transition on a copy of the channel, persists the copy (not yet flushed) and
    /// installs it. On error nothing changes.
    pub fn update_channel<R>(
        &self,
        f: impl FnOnce(&mut Channel) -> Result<R, ClientError>,
    ) -> Result<R, ClientError> {
        let mut st = self.lock()?;
        let current = st.channel.as_ref().ok_or(ClientError::NoChannel)?;
        let phase = current.phase();
        let mut next = current.clone();
        let out = f(&mut next)?;
        if st.channel.as_ref() != Some(&next) {
            self.store.put_channel(&next)?;
            let phase_changed = next.phase() != phase;
            st.channel = Some(next);
            if phase_changed {
                drop(st);
                self.bump();
            }
        }
        Ok(out)
    }

    /// Applies a ledger event (from the subscription or an op's response) to the channel.
    pub fn apply_ledger_event(&self, ev: &LedgerEvent) -> Result<EventEffect, ClientError> {
        if self.lock()?.channel.is_none() {
            return Ok(EventEffect::default());
        }
        let effect = self.update_channel(|ch| sync::apply_event(ch, ev))?;
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
        self.enqueue(sign, |_| Ok(()))
            .await?
            .ok_or_else(|| ClientError::InvalidState("payment produced no proof".into()))
    }

    /// Signs the next proof for `Payments.Pay` and queues it for the stream task, all under
    /// one lock so queue order is nonce order: `sign` runs the channel transition on a copy
    /// (and may decide there is nothing to do: `None`); the channel and the proof go to the
    /// store (the unacknowledged log, not yet flushed: the stream task flushes before
    /// sending), then `record` writes what else must be stored with the proof, then the copy
    /// is installed. On any error nothing is queued.
    pub async fn enqueue(
        &self,
        sign: impl FnOnce(&mut Channel) -> Result<Option<Signed>, ClientError>,
        record: impl FnOnce(&UnackedPayment) -> Result<(), ClientError>,
    ) -> Result<Option<AckReply>, ClientError> {
        let permit = Arc::clone(&self.inflight)
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Shutdown)?;
        let mut st = loop {
            let answered = self.lock_answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            if let Some(st) = self
                .lock()
                .map(|st| st.lock_in_flight.is_none().then_some(st))?
            {
                break st;
            }
            answered.await;
        };
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
        self.store.put_channel(&next)?;
        self.store.put_unacked(&entry)?;
        record(&entry)?;
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
            .send(expected)
            .map_err(|_| ClientError::Shutdown)?;
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
    /// one with the same nonce. Not flushed here: the stream task flushes before anything
    /// is sent. On error nothing changed.
    pub fn retract_lock(
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
        let mut st = self.lock()?;
        let current = st.channel.as_ref().ok_or(ClientError::NoChannel)?;
        if current.our_latest_proof() != Some(&entry.proof) {
            return Err(ClientError::InvalidState(format!(
                "locked transfer {} is not our latest proof",
                entry.nonce()
            )));
        }
        let mut next = current.clone();
        next.retract_refused_lock(&lock, previous)?;
        self.store.put_channel(&next)?;
        self.store.remove_unacked(entry.nonce())?;
        st.channel = Some(next);
        drop(st);
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

    fn records_lock(&self) -> Result<MutexGuard<'_, ()>, ClientError> {
        self.records.lock().map_err(|_| poisoned())
    }

    /// Writes a new outgoing transfer record (not yet flushed) and wakes its waiters.
    pub fn put_outgoing(&self, t: &OutgoingTransfer) -> Result<(), ClientError> {
        let g = self.records_lock()?;
        self.store.put_outgoing(t)?;
        drop(g);
        self.transfers_changed
            .send_modify(|g| *g = g.wrapping_add(1));
        Ok(())
    }

    /// Read-modify-write of the outgoing transfer `secrethash` (not yet flushed); `None`
    /// when there is no such record. Wakes the waiters when it changed.
    pub fn update_outgoing(
        &self,
        secrethash: &H256,
        f: impl FnOnce(&mut OutgoingTransfer),
    ) -> Result<Option<OutgoingTransfer>, ClientError> {
        let g = self.records_lock()?;
        let Some(current) = self.store.outgoing(secrethash)? else {
            return Ok(None);
        };
        let mut next = current.clone();
        f(&mut next);
        if next != current {
            self.store.put_outgoing(&next)?;
            drop(g);
            self.transfers_changed
                .send_modify(|g| *g = g.wrapping_add(1));
        }
        Ok(Some(next))
    }

    /// A receiver that sees every change of an outgoing transfer record.
    pub fn subscribe_transfers(&self) -> watch::Receiver<u64> {
        self.transfers_changed.subscribe()
    }

    /// Read-modify-write of the incoming transfer `secrethash` (not yet flushed).
    pub fn update_incoming(
        &self,
        secrethash: &H256,
        f: impl FnOnce(&mut IncomingTransfer),
    ) -> Result<Option<IncomingTransfer>, ClientError> {
        let _g = self.records_lock()?;
        let Some(mut t) = self.store.incoming(secrethash)? else {
            return Ok(None);
        };
        f(&mut t);
        self.store.put_incoming(&t)?;
        Ok(Some(t))
    }

    /// Read-modify-write of the payment request `secrethash` (not yet flushed).
    pub fn update_payment_request(
        &self,
        secrethash: &H256,
        f: impl FnOnce(&mut PaymentRequestRecord),
    ) -> Result<Option<PaymentRequestRecord>, ClientError> {
        let _g = self.records_lock()?;
        let Some(mut r) = self.store.payment_request(secrethash)? else {
            return Ok(None);
        };
        f(&mut r);
        self.store.put_payment_request(&r)?;
        Ok(Some(r))
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
