//! State shared by the [`Client`](crate::Client) and its background tasks: the channel state
//! machine behind a mutex (never held across an await), the `pay` calls waiting for their ack,
//! the queue of signed payments for the stream task, and the store.
//!
//! Every channel change goes through [`Shared::update_channel`]: the transition runs on a copy,
//! the copy is written to the store, and only then replaces the live channel, so a refused input
//! or a store error leaves both untouched. Callers flush before anything leaves the device.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::ledger::LedgerEvent;
use channel_core::primitives::{H256, U256};
use tokio::sync::{broadcast, mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::error::ClientError;
use crate::rpc::Rpc;
use crate::store::{DeviceStore, HubRecord, UnackedPayment};
use crate::sync::{self, EventEffect};
use crate::types::{PaymentReceipt, ReceivedPayment};

/// Payments signed but not yet acknowledged, at most (back-pressure on `pay`).
pub const MAX_IN_FLIGHT: usize = 4096;

type Reply = oneshot::Sender<Result<PaymentReceipt, ClientError>>;

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
}

pub(crate) struct Shared {
    pub rpc: Rpc,
    pub store: DeviceStore,
    pub hub: HubRecord,
    state: Mutex<State>,
    pay_queue: mpsc::UnboundedSender<u64>,
    /// Bumped whenever the channel appears or changes phase; tasks wait on it.
    changed: watch::Sender<u64>,
    pub hub_payments: broadcast::Sender<ReceivedPayment>,
    inflight: Arc<Semaphore>,
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
        store: DeviceStore,
        hub: HubRecord,
        channel: Option<Channel>,
    ) -> (Arc<Self>, mpsc::UnboundedReceiver<u64>) {
        let (pay_queue, queue_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Self {
            rpc,
            store,
            hub,
            state: Mutex::new(State {
                channel,
                ..State::default()
            }),
            pay_queue,
            changed: watch::Sender::new(0),
            hub_payments: broadcast::channel(1024).0,
            inflight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
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
        drop(st);
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

    /// Signs the next payment, records it (channel + unacknowledged log, not yet flushed) and
    /// queues it for the stream task, all under one lock so queue order is nonce order.
    pub async fn enqueue_payment(
        &self,
        amount: U256,
    ) -> Result<oneshot::Receiver<Result<PaymentReceipt, ClientError>>, ClientError> {
        let permit = Arc::clone(&self.inflight)
            .acquire_owned()
            .await
            .map_err(|_| ClientError::Shutdown)?;
        let mut st = self.lock()?;
        if let Some(why) = &st.send_blocked {
            return Err(ClientError::InvalidState(why.clone()));
        }
        let current = st.channel.as_ref().ok_or(ClientError::NoChannel)?;
        let mut next = current.clone();
        next.send_payment(amount, H256::ZERO, self.rpc.signer())?;
        let proof = *next
            .our_latest_proof()
            .ok_or_else(|| ClientError::InvalidState("payment produced no proof".into()))?;
        let nonce = proof.proof.nonce;
        self.store.put_channel(&next)?;
        self.store.put_unacked(&UnackedPayment { proof, amount })?;
        st.channel = Some(next);
        let (reply, rx) = oneshot::channel();
        st.pending.insert(
            nonce,
            Pending {
                reply,
                _permit: permit,
            },
        );
        self.pay_queue
            .send(nonce)
            .map_err(|_| ClientError::Shutdown)?;
        Ok(rx)
    }

    pub fn resolve(&self, nonce: u64, result: Result<PaymentReceipt, ClientError>) {
        let pending = self
            .state
            .lock()
            .ok()
            .and_then(|mut st| st.pending.remove(&nonce));
        if let Some(p) = pending {
            let _ = p.reply.send(result);
        }
    }

    pub fn resolve_acked(&self, acked: &[UnackedPayment]) {
        for p in acked {
            self.resolve(p.nonce(), Ok(sync::receipt(p)));
        }
    }

    pub fn fail_pending(&self, why: &str) {
        let pending = match self.state.lock() {
            Ok(mut st) => std::mem::take(&mut st.pending),
            Err(_) => return,
        };
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
