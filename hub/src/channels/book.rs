//! The hub's channels: one [`Channel`] state machine per device channel, each behind its own
//! lock, persisted before anything is acknowledged or sent.
//!
//! Every change goes through one helper, [`ChannelBook::transition`]: lock the channel, run
//! the core call on a copy, write the copy (and any records that go with it) to the store,
//! wait until that write is durable, install the copy, unlock. So the channel in memory is
//! always exactly what is on disk, writes of one channel reach the store in the order of its
//! lock, and a refused transition or a failed write changes nothing. Concurrent transitions
//! of *different* channels still share fsyncs (group commit).
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use channel_core::channel::{
    locks_behind, Channel, ChannelEvent, ChannelMessage, ChannelPhase, CooperativeCloseAcceptance,
    CooperativeCloseProposal, LedgerAction, LedgerView, LockArchiveChange, LockSetChange,
};
use channel_core::crypto::{LocalSigner, Signature, Signer};
use channel_core::ledger::{ChannelRecord, LedgerEvent, SettleTransaction};
use channel_core::{Address, BalanceData, Domain, SignedBalanceProof, WithdrawProof, H256, U256};
use tokio::sync::{broadcast, Mutex, Notify};

use crate::error::HubError;
use crate::store::records::ChannelStateRecord;
use crate::store::{record, KvStore, WriteBatch};

/// Store namespace of channel states (key: channel id, zero-padded decimal), each a
/// [`ChannelStateRecord`] (its own version, [`voltlane_store::records::CHANNEL_STATE_VERSION`]).
pub const NS_CHANNELS: &str = "channels";
/// Prefix of the store namespaces of the proofs the hub signed toward devices: one namespace
/// per channel ([`hub_sent_namespace`]), keyed by zero-padded nonce, so replaying one
/// channel's payments reads only that channel's records.
pub const NS_HUB_SENT: &str = "hub_sent";

/// The namespace of the hub's signed proofs in channel `id`.
pub fn hub_sent_namespace(id: &U256) -> String {
    format!("{NS_HUB_SENT}_{}", channel_key(id))
}
/// Prefix of the store namespaces of the balance data of every proof the hub signed, one
/// namespace per channel ([`signed_balances_namespace`]) keyed by zero-padded nonce, kept
/// until the channel settles. A device may close with any proof the hub ever signed; the
/// ledger (like the contract) then stores only that proof's hash, and settling needs the
/// data behind it ([`ChannelBook::settle_transaction`]).
pub const NS_SIGNED_BALANCES: &str = "signed_balances";

/// The namespace of the balance data of the hub's signed proofs in channel `id`.
pub fn signed_balances_namespace(id: &U256) -> String {
    format!("{NS_SIGNED_BALANCES}_{}", channel_key(id))
}

/// Prefix of the store namespaces of the log of the hub's lock-set changes, one namespace
/// per channel ([`signed_locks_namespace`]) keyed by zero-padded nonce: each entry is what
/// the hub's proof of that nonce added to and removed from its locks toward the device
/// (`channel_core::channel::LockSetChange`). A device may close with an old proof of the
/// hub's that carried locks; the ledger then keeps their total back under that root, and
/// only the locks behind it, replayed from this log, unlock it. A log and not a snapshot per
/// change: a busy payee has dozens of the hub's locks pending at once.
pub const NS_SIGNED_LOCKS: &str = "signed_locks";

/// The namespace of the lock-set log of the hub's proofs in channel `id`.
pub fn signed_locks_namespace(id: &U256) -> String {
    format!("{NS_SIGNED_LOCKS}_{}", channel_key(id))
}

/// Prefix of the store namespaces of lock sets replayed from that log, packed, keyed by
/// locksroot ([`locksets_namespace`]): at settlement the one set the ledger keeps back
/// replaces the log.
pub const NS_LOCKSETS: &str = "locksets";

/// The namespace of the replayed lock sets of channel `id`.
pub fn locksets_namespace(id: &U256) -> String {
    format!("{NS_LOCKSETS}_{}", channel_key(id))
}

fn nonce_key(nonce: u64) -> String {
    format!("{nonce:020}")
}

/// Store namespace of the book's own progress (key [`KEY_APPLIED_SEQ`]).
pub const NS_BOOK: &str = "book";
pub const KEY_APPLIED_SEQ: &str = "applied_seq";
/// Format version of the records above but the channel states themselves (those are
/// [`ChannelStateRecord`]s, with their own version).
pub const CHANNEL_RECORD_VERSION: u8 = 1;

/// A balance proof the hub signed toward a device, as stored until the device fetched it and
/// as pushed on `Payments.ReceivePayments`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubPayment {
    #[serde(with = "channel_core::primitives::u256_dec")]
    pub channel_id: U256,
    pub proof: SignedBalanceProof,
    /// The direct payment's amount, or the lock's.
    #[serde(with = "channel_core::primitives::u256_dec")]
    pub amount: U256,
    /// What the proof does (records written before mediation existed are direct payments).
    #[serde(default)]
    pub kind: SentKind,
}

/// What a proof the hub signed toward a device does.
#[allow(clippy::large_enum_variant)] // the request rides inline, as on the wire
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SentKind {
    /// A direct payment.
    #[default]
    Payment,
    /// A lock for a payment from another device (`payer`), paying its `payment_request`.
    LockedTransfer {
        lock: channel_core::HashTimeLock,
        payer: Address,
        payment_request: channel_core::mediation::SignedPaymentRequest,
    },
    /// The hub released its lock with this secret.
    Unlock { secret: channel_core::Secret },
    /// The hub took back its expired lock.
    LockExpired { secrethash: H256 },
}

impl HubPayment {
    /// The message the hub signed in `events` (a channel transition's output) toward the
    /// device of channel `channel_id`, with what it does.
    pub fn from_events(
        channel_id: U256,
        events: &[ChannelEvent],
        kind: SentKind,
    ) -> Result<Self, HubError> {
        let (proof, amount) = events
            .iter()
            .find_map(|e| match e {
                ChannelEvent::Send(ChannelMessage::Payment { proof, amount }) => {
                    Some((*proof, *amount))
                }
                ChannelEvent::Send(ChannelMessage::LockedTransfer { proof, lock }) => {
                    Some((*proof, lock.amount))
                }
                _ => None,
            })
            .or_else(|| {
                let proof = events.iter().find_map(|e| match e {
                    ChannelEvent::Send(ChannelMessage::Unlock { proof, .. })
                    | ChannelEvent::Send(ChannelMessage::LockExpired { proof, .. }) => Some(*proof),
                    _ => None,
                })?;
                let amount = events.iter().find_map(|e| match e {
                    ChannelEvent::LockUnlocked { amount, .. }
                    | ChannelEvent::LockDropped { amount, .. } => Some(*amount),
                    _ => None,
                })?;
                Some((proof, amount))
            })
            .ok_or_else(|| HubError::Internal("the transition signed no message".into()))?;
        Ok(Self {
            channel_id,
            proof,
            amount,
            kind,
        })
    }
}

/// A device payment the hub took (durable).
#[derive(Debug)]
pub struct Accepted {
    pub nonce: u64,
    pub transferred_amount: U256,
}

pub(crate) type Shared = Arc<Mutex<Channel>>;

/// The refusal of a channel lookup, once more (for every payment of a run on that channel).
fn same_refusal(e: &HubError) -> HubError {
    match e {
        HubError::UnknownChannel(id) => HubError::UnknownChannel(*id),
        HubError::PermissionDenied(why) => HubError::PermissionDenied(why.clone()),
        other => HubError::Internal(other.to_string()),
    }
}

fn channel_key(id: &U256) -> String {
    format!("{id:0>78}")
}

/// All channels of the hub.
#[derive(Debug)]
pub struct ChannelBook {
    pub(crate) store: Arc<dyn KvStore>,
    pub(super) operator: Arc<LocalSigner>,
    pub(crate) domain: Domain,
    pub(super) channels: RwLock<BTreeMap<U256, Shared>>,
    /// Channel ids by device address (a device may have several channels over time).
    by_partner: RwLock<std::collections::HashMap<Address, Vec<U256>>>,
    /// Serialises the application of ledger events.
    pub(super) ledger_progress: Mutex<u64>,
    /// Woken when applied ledger events touched the hub's channels (the watcher then looks
    /// at once instead of at its next tick).
    pub(super) ledger_moved: Notify,
    /// Channels with pending locks in either direction (the monitor watches them while open).
    with_locks: std::sync::Mutex<std::collections::BTreeSet<U256>>,
    hub_payments: super::fanout::Fanout<HubPayment>,
}

impl ChannelBook {
    /// Loads every stored channel.
    pub fn load(
        store: Arc<dyn KvStore>,
        operator: Arc<LocalSigner>,
        domain: Domain,
    ) -> Result<Self, HubError> {
        let mut channels = BTreeMap::new();
        let mut with_locks = std::collections::BTreeSet::new();
        let mut by_partner: std::collections::HashMap<Address, Vec<U256>> = Default::default();
        for key in store.list(NS_CHANNELS)? {
            if let Some(bytes) = store.read(NS_CHANNELS, &key)? {
                let ch = ChannelStateRecord::decode(NS_CHANNELS, &key, &bytes)?;
                if !ch.our().locks.is_empty() || !ch.partner().locks.is_empty() {
                    with_locks.insert(ch.id());
                }
                by_partner
                    .entry(ch.partner_address())
                    .or_default()
                    .push(ch.id());
                channels.insert(ch.id(), Arc::new(Mutex::new(ch)));
            }
        }
        let applied = match store.read(NS_BOOK, KEY_APPLIED_SEQ)? {
            Some(bytes) => {
                record::decode(NS_BOOK, KEY_APPLIED_SEQ, CHANNEL_RECORD_VERSION, &bytes)?
            }
            None => 0u64,
        };
        tracing::info!(
            channels = channels.len(),
            applied_seq = applied,
            "channels loaded"
        );
        let hub_payments = super::fanout::Fanout::new(crate::channels::fanout::FANOUT_BUFFER);
        Ok(Self {
            store,
            operator,
            domain,
            channels: RwLock::new(channels),
            by_partner: RwLock::new(by_partner),
            ledger_progress: Mutex::new(applied),
            ledger_moved: Notify::new(),
            with_locks: std::sync::Mutex::new(with_locks),
            hub_payments,
        })
    }

    pub fn operator_address(&self) -> Address {
        self.operator.address()
    }

    /// The channels whose device is `partner`, newest last.
    pub fn channels_of(&self, partner: &Address) -> Result<Vec<(U256, Shared)>, HubError> {
        let ids = self
            .by_partner
            .read()
            .map_err(|_| HubError::Internal("partner index lock poisoned".into()))?
            .get(partner)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(shared) = self.get(&id)? {
                out.push((id, shared));
            }
        }
        Ok(out)
    }

    pub(crate) fn get(&self, id: &U256) -> Result<Option<Shared>, HubError> {
        let map = self
            .channels
            .read()
            .map_err(|_| HubError::Internal("channel map lock poisoned".into()))?;
        Ok(map.get(id).cloned())
    }

    /// The channel, if `caller` is its device.
    pub(crate) async fn for_device(&self, caller: Address, id: &U256) -> Result<Shared, HubError> {
        let shared = self.get(id)?.ok_or(HubError::UnknownChannel(*id))?;
        let partner = shared.lock().await.partner_address();
        if partner != caller {
            return Err(HubError::PermissionDenied(format!(
                "{caller} is not a participant of channel {id}"
            )));
        }
        Ok(shared)
    }

    pub(super) fn put(batch: &mut WriteBatch, ch: &Channel) -> Result<(), HubError> {
        batch.put(
            NS_CHANNELS,
            &channel_key(&ch.id()),
            ChannelStateRecord::encode(ch)?,
        );
        Ok(())
    }

    /// Snapshot of one channel for `caller` (who must be its device).
    pub async fn snapshot(&self, caller: Address, id: &U256) -> Result<Channel, HubError> {
        let shared = self.for_device(caller, id).await?;
        let ch = shared.lock().await.clone();
        Ok(ch)
    }

    /// Snapshot of one channel, whoever its device is (for the operator).
    pub async fn snapshot_any(&self, id: &U256) -> Result<Channel, HubError> {
        let shared = self.get(id)?.ok_or(HubError::UnknownChannel(*id))?;
        let ch = shared.lock().await.clone();
        Ok(ch)
    }

    /// Snapshots of up to `limit` channels with ids above `after` (all for `None`), in id
    /// order, and whether more follow.
    pub async fn snapshots_page(
        &self,
        after: Option<U256>,
        limit: usize,
    ) -> Result<(Vec<Channel>, bool), HubError> {
        let mut page: Vec<Shared> = {
            let map = self
                .channels
                .read()
                .map_err(|_| HubError::Internal("channel map lock poisoned".into()))?;
            let from = match after {
                Some(a) => std::ops::Bound::Excluded(a),
                None => std::ops::Bound::Unbounded,
            };
            map.range((from, std::ops::Bound::Unbounded))
                .take(limit.saturating_add(1))
                .map(|(_, shared)| shared.clone())
                .collect()
        };
        let more = page.len() > limit;
        page.truncate(limit);
        let mut out = Vec::with_capacity(page.len());
        for shared in page {
            out.push(shared.lock().await.clone());
        }
        Ok((out, more))
    }

    /// Snapshots of every channel whose device is `caller`.
    pub async fn snapshots_of(&self, caller: Address) -> Result<Vec<Channel>, HubError> {
        let all: Vec<Shared> = {
            let map = self
                .channels
                .read()
                .map_err(|_| HubError::Internal("channel map lock poisoned".into()))?;
            map.values().cloned().collect()
        };
        let mut out = Vec::new();
        for shared in all {
            let ch = shared.lock().await;
            if ch.partner_address() == caller {
                out.push(ch.clone());
            }
        }
        Ok(out)
    }

    /// Every channel id the hub knows.
    pub fn channel_ids(&self) -> Result<Vec<U256>, HubError> {
        let map = self
            .channels
            .read()
            .map_err(|_| HubError::Internal("channel map lock poisoned".into()))?;
        Ok(map.keys().copied().collect())
    }

    /// The one way a channel changes (see the module docs). `f` runs on a copy of the
    /// channel and may add records to the batch that must be durable together with it; the
    /// copy is installed only once everything is durable. Returns what `f` returned.
    pub(crate) async fn transition<R>(
        &self,
        shared: &Shared,
        f: impl FnOnce(&mut Channel, &mut WriteBatch) -> Result<R, HubError>,
    ) -> Result<R, HubError> {
        let mut ch = shared.lock().await;
        let mut next = ch.clone();
        let mut batch = WriteBatch::new();
        let out = f(&mut next, &mut batch)?;
        if next == *ch && batch.is_empty() {
            return Ok(out);
        }
        if next != *ch {
            Self::put(&mut batch, &next)?;
            self.archive_signed_balance(&mut batch, &ch, &next)?;
        }
        self.store.write(batch)?.durable().await?;
        self.note_locks(&next);
        *ch = next;
        Ok(out)
    }

    /// Keeps the balance data of a proof the hub just signed, and what it changed in the
    /// hub's locks (durable with the channel, so before the proof can leave); forgets the
    /// balance data once the channel settled (the locks: [`Self::prune_lock_archive`]).
    fn archive_signed_balance(
        &self,
        batch: &mut WriteBatch,
        before: &Channel,
        after: &Channel,
    ) -> Result<(), HubError> {
        // The archives keep one entry per transition, so a transition may sign one proof of
        // the hub's at most: the data behind one signed in between would be lost.
        let (from, to) = (before.our().nonce(), after.our().nonce());
        if to > from.saturating_add(1) {
            return Err(HubError::Internal(format!(
                "one transition signed the hub's proofs {}..={to}; the archives need one per \
                 transition",
                from.saturating_add(1)
            )));
        }
        let namespace = signed_balances_namespace(&after.id());
        if after.phase() == ChannelPhase::Settled {
            if before.phase() != ChannelPhase::Settled {
                for key in self.store.list(&namespace)? {
                    batch.remove(&namespace, &key);
                }
            }
            return Ok(());
        }
        if let Some((nonce, balance)) = after.our_signed_balance() {
            if before.our_signed_balance().map(|(n, _)| n) != Some(nonce) {
                batch.put(
                    &namespace,
                    &nonce_key(nonce),
                    record::encode(CHANNEL_RECORD_VERSION, &balance)?,
                );
            }
        }
        if let Some((nonce, change)) = after.our_lock_change(before) {
            batch.put(
                &signed_locks_namespace(&after.id()),
                &nonce_key(nonce),
                record::encode(CHANNEL_RECORD_VERSION, &change)?,
            );
        }
        Ok(())
    }

    /// Forgets the lock archive of channel `id` as far as `change` allows (in `batch`, durable
    /// with the event that allowed it): at settlement the set kept back is replayed from the
    /// log and kept alone; once nothing is kept back, everything goes.
    pub(super) fn prune_lock_archive(
        &self,
        batch: &mut WriteBatch,
        id: &U256,
        change: LockArchiveChange,
    ) -> Result<(), HubError> {
        let keep = match change {
            LockArchiveChange::Unchanged => return Ok(()),
            LockArchiveChange::KeepOnly(root) => Some(root),
            LockArchiveChange::Release => None,
        };
        let (log, sets) = (signed_locks_namespace(id), locksets_namespace(id));
        if let Some(root) = keep {
            if let Some(packed) = self.replay_locks(id, &root)? {
                batch.put(&sets, &root.to_string(), packed);
            }
        }
        for key in self.store.list(&log)? {
            batch.remove(&log, &key);
        }
        let keep = keep.map(|root| root.to_string());
        for key in self.store.list(&sets)? {
            if keep.as_deref() != Some(key.as_str()) {
                batch.remove(&sets, &key);
            }
        }
        Ok(())
    }

    /// The packed locks behind `root` in channel `id`, replayed from its lock-set log.
    fn replay_locks(&self, id: &U256, root: &H256) -> Result<Option<Vec<u8>>, HubError> {
        let namespace = signed_locks_namespace(id);
        let mut log = Vec::new();
        for key in self.store.list(&namespace)? {
            if let Some(bytes) = self.store.read(&namespace, &key)? {
                let change: LockSetChange =
                    record::decode(&namespace, &key, CHANNEL_RECORD_VERSION, &bytes)?;
                log.push(change);
            }
        }
        Ok(locks_behind(root, log))
    }

    /// The packed lock sets of channel `id` behind `roots`, those the hub can find: kept
    /// alone since settlement, or (the book has not seen the settlement yet) replayed.
    fn archived_locks(&self, id: &U256, roots: &[H256]) -> Result<Vec<Vec<u8>>, HubError> {
        let sets = locksets_namespace(id);
        let mut found = Vec::new();
        for root in roots {
            match self.store.read(&sets, &root.to_string())? {
                Some(packed) => found.push(packed),
                None => found.extend(self.replay_locks(id, root)?),
            }
        }
        Ok(found)
    }

    /// The balance data of the proof with `nonce` the hub signed in channel `id`, if kept.
    fn signed_balance(&self, id: &U256, nonce: u64) -> Result<Option<BalanceData>, HubError> {
        let namespace = signed_balances_namespace(id);
        let key = nonce_key(nonce);
        match self.store.read(&namespace, &key)? {
            Some(bytes) => Ok(Some(record::decode(
                &namespace,
                &key,
                CHANNEL_RECORD_VERSION,
                &bytes,
            )?)),
            None => Ok(None),
        }
    }

    fn note_locks(&self, ch: &Channel) {
        if let Ok(mut set) = self.with_locks.lock() {
            if ch.our().locks.is_empty() && ch.partner().locks.is_empty() {
                set.remove(&ch.id());
            } else {
                set.insert(ch.id());
            }
        }
    }

    /// Channels that have pending locks.
    pub fn channels_with_locks(&self) -> Vec<U256> {
        self.with_locks
            .lock()
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Creates the channel `id` with `partner` if the book does not have it yet (a replayed
    /// `ChannelOpened` leaves an existing channel untouched), with `then` (the channel's next
    /// ledger events, e.g. the deposit of an `openChannelWithDeposit`) already applied, so the
    /// new channel costs one durable write. Durable before it is visible.
    pub(super) async fn create_channel(
        &self,
        id: U256,
        partner: Address,
        then: &[&LedgerEvent],
    ) -> Result<bool, HubError> {
        if self.get(&id)?.is_some() {
            return Ok(false);
        }
        let mut ch = Channel::new(self.domain, id, self.operator.address(), partner);
        for event in then {
            if let Err(e) = ch.handle_ledger_event(event) {
                // The ledger is the authority; a disagreement is logged, not fatal.
                tracing::warn!(channel = %id, error = %e, "ledger event not applicable to channel");
            }
        }
        let mut batch = WriteBatch::new();
        Self::put(&mut batch, &ch)?;
        self.store.write(batch)?.durable().await?;
        let mut map = self
            .channels
            .write()
            .map_err(|_| HubError::Internal("channel map lock poisoned".into()))?;
        map.entry(id).or_insert_with(|| Arc::new(Mutex::new(ch)));
        drop(map);
        self.by_partner
            .write()
            .map_err(|_| HubError::Internal("partner index lock poisoned".into()))?
            .entry(partner)
            .or_default()
            .push(id);
        Ok(true)
    }

    /// A payment from the device `caller`, durable when this returns. The exact proof the hub
    /// already holds is acknowledged again (a retransmission after a lost ack), any older one
    /// is refused.
    pub async fn take_payment(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        amount: U256,
    ) -> Result<Accepted, HubError> {
        let mut results = self.take_payments(caller, &[(*proof, amount)]).await?;
        results
            .pop()
            .unwrap_or_else(|| Err(HubError::Internal("no result for a payment".into())))
    }

    /// Payments from the device `caller`, in order, each judged as [`Self::take_payment`]
    /// would: consecutive payments on one channel are applied in one transition, so they share
    /// one write and one fsync, and each is acknowledged only once all of that run is durable.
    /// A refused payment changes nothing; later ones are judged on the state before it.
    /// The outer error is a failure of the store (nothing of the failed run was accepted).
    pub async fn take_payments(
        &self,
        caller: Address,
        payments: &[(SignedBalanceProof, U256)],
    ) -> Result<Vec<Result<Accepted, HubError>>, HubError> {
        let mut results = Vec::with_capacity(payments.len());
        for run in
            payments.chunk_by(|a, b| a.0.proof.channel_identifier == b.0.proof.channel_identifier)
        {
            let id = run[0].0.proof.channel_identifier;
            let shared = match self.for_device(caller, &id).await {
                Ok(shared) => shared,
                Err(e) => {
                    for _ in 1..run.len() {
                        results.push(Err(same_refusal(&e)));
                    }
                    results.push(Err(e));
                    continue;
                }
            };
            let outcomes = self
                .transition(&shared, |ch, _| {
                    Ok(run
                        .iter()
                        .map(|(proof, amount)| {
                            if ch.partner_latest_proof() != Some(proof) {
                                ch.handle_payment(proof, *amount)?;
                            }
                            Ok(Accepted {
                                nonce: proof.proof.nonce,
                                transferred_amount: proof.proof.balance.transferred_amount,
                            })
                        })
                        .collect::<Vec<Result<Accepted, HubError>>>())
                })
                .await?;
            results.extend(outcomes);
        }
        Ok(results)
    }

    /// The hub pays `amount` to the device of channel `id` (operator command). Returns once
    /// the signed proof is durable; then it is published to the device's stream.
    pub async fn pay_device(&self, id: &U256, amount: U256) -> Result<HubPayment, HubError> {
        let shared = self.get(id)?.ok_or(HubError::UnknownChannel(*id))?;
        let (payment, _) = self
            .transition_and_store(&shared, |ch, _| {
                let events = ch.send_payment(amount, H256::ZERO, self.operator.as_ref())?;
                Ok((Some((events, SentKind::Payment)), ()))
            })
            .await?;
        let payment =
            payment.ok_or_else(|| HubError::Internal("send_payment signed nothing".into()))?;
        self.publish(&payment);
        Ok(payment)
    }

    /// Pushes a durable message to the device's live stream. Nobody listening is fine: the
    /// device replays from the store when it connects.
    pub(crate) fn publish(&self, message: &HubPayment) {
        self.hub_payments
            .publish(message.channel_id, message.clone());
    }

    /// A [`Self::transition`] in which the hub may sign one message toward the device: `f`
    /// returns the transition's events with what the message does (or `None`). The message is
    /// stored for the device in the same write as the channel (so it is replayed until the
    /// device fetched it); the caller [`Self::publish`]es it once it did its own bookkeeping.
    pub(crate) async fn transition_and_store<R>(
        &self,
        shared: &Shared,
        f: impl FnOnce(
            &mut Channel,
            &mut WriteBatch,
        ) -> Result<(Option<(Vec<ChannelEvent>, SentKind)>, R), HubError>,
    ) -> Result<(Option<HubPayment>, R), HubError> {
        let (sent, out) = self
            .transition(shared, |ch, batch| {
                let (signed, out) = f(ch, batch)?;
                let sent = Self::store_sent(batch, ch.id(), signed)?;
                Ok((sent, out))
            })
            .await?;
        Ok((sent, out))
    }

    /// The message the hub signed toward the device of channel `id` (from the transition's
    /// events), put in `batch` so it is durable with the channel and replayed until the
    /// device fetched it.
    fn store_sent(
        batch: &mut WriteBatch,
        id: U256,
        signed: Option<(Vec<ChannelEvent>, SentKind)>,
    ) -> Result<Option<HubPayment>, HubError> {
        let Some((events, kind)) = signed else {
            return Ok(None);
        };
        let message = HubPayment::from_events(id, &events, kind)?;
        batch.put(
            &hub_sent_namespace(&message.channel_id),
            &nonce_key(message.proof.proof.nonce),
            record::encode(CHANNEL_RECORD_VERSION, &message)?,
        );
        Ok(Some(message))
    }

    /// A [`Self::transition_and_store`] over two channels at once, durable in one write: `f`
    /// runs on copies of `first` and `second` and may sign one message toward `second`'s
    /// device. Both copies are installed once the write is durable, or neither (a refusal, a
    /// failed write). The two channel locks are taken in channel-id order, so two of these
    /// over the same pair never wait on each other. Used where two channels must change
    /// together: a payer's lock is taken only with its forward to the payee, and the secret
    /// goes into the payer's channel in the write that pays the payee.
    pub(crate) async fn transition_pair<R>(
        &self,
        first: &Shared,
        second: &Shared,
        f: impl FnOnce(
            &mut Channel,
            &mut Channel,
            &mut WriteBatch,
        ) -> Result<(Option<(Vec<ChannelEvent>, SentKind)>, R), HubError>,
    ) -> Result<(Option<HubPayment>, R), HubError> {
        if Arc::ptr_eq(first, second) {
            return Err(HubError::Internal(
                "a two-channel transition was given one channel twice".into(),
            ));
        }
        let first_id = first.lock().await.id();
        let second_id = second.lock().await.id();
        let (mut a, mut b) = if first_id < second_id {
            let a = first.lock().await;
            (a, second.lock().await)
        } else {
            let b = second.lock().await;
            (first.lock().await, b)
        };
        let (mut next_a, mut next_b) = (a.clone(), b.clone());
        let mut batch = WriteBatch::new();
        let (signed, out) = f(&mut next_a, &mut next_b, &mut batch)?;
        let sent = Self::store_sent(&mut batch, next_b.id(), signed)?;
        for (before, after) in [(&*a, &next_a), (&*b, &next_b)] {
            if after != before {
                Self::put(&mut batch, after)?;
                self.archive_signed_balance(&mut batch, before, after)?;
            }
        }
        if !batch.is_empty() {
            self.store.write(batch)?.durable().await?;
        }
        self.note_locks(&next_a);
        self.note_locks(&next_b);
        *a = next_a;
        *b = next_b;
        Ok((sent, out))
    }

    /// Hub payments of channel `id` with nonce above `after_nonce` (from the store), plus a
    /// receiver of later ones. Subscribe before replaying so nothing falls in between.
    ///
    /// Asking for payments after `after_nonce` says the device holds every hub proof up to it,
    /// so the stored ones up to it are deleted: the hub keeps only what a device may still need
    /// replayed (its own latest proof stays in the channel state), and storage per channel is
    /// bounded by what the device has not fetched yet.
    pub async fn hub_payments_since(
        &self,
        caller: Address,
        id: &U256,
        after_nonce: u64,
    ) -> Result<(Vec<HubPayment>, broadcast::Receiver<HubPayment>), HubError> {
        self.for_device(caller, id).await?;
        let rx = self.hub_payments.subscribe(*id);
        let namespace = hub_sent_namespace(id);
        let mut out = Vec::new();
        let mut fetched = WriteBatch::new();
        for key in self.store.list(&namespace)? {
            if let Some(bytes) = self.store.read(&namespace, &key)? {
                let p: HubPayment =
                    record::decode(&namespace, &key, CHANNEL_RECORD_VERSION, &bytes)?;
                if p.proof.proof.nonce > after_nonce {
                    out.push(p);
                } else {
                    fetched.remove(&namespace, &key);
                }
            }
        }
        if !fetched.is_empty() {
            // Not awaited: losing the deletion in a crash only keeps a record longer.
            drop(self.store.write(fetched)?);
        }
        Ok((out, rx))
    }

    /// The hub payments of channel `id` stored with a nonce above `after_nonce`, in nonce
    /// order, read without deleting anything (a stream filling a gap in what it sent).
    pub fn stored_hub_payments(
        &self,
        id: &U256,
        after_nonce: u64,
    ) -> Result<Vec<HubPayment>, HubError> {
        let namespace = hub_sent_namespace(id);
        let first = format!("{:020}", after_nonce.saturating_add(1));
        let mut out = Vec::new();
        for key in self.store.list(&namespace)? {
            if key < first {
                continue;
            }
            if let Some(bytes) = self.store.read(&namespace, &key)? {
                let p: HubPayment =
                    record::decode(&namespace, &key, CHANNEL_RECORD_VERSION, &bytes)?;
                if p.proof.proof.nonce > after_nonce {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    /// The device asks to withdraw; the hub co-signs if the channel allows it.
    pub async fn cosign_withdraw(
        &self,
        caller: Address,
        proof: &WithdrawProof,
        signature: &Signature,
        now: u64,
    ) -> Result<Signature, HubError> {
        let shared = self.for_device(caller, &proof.channel_identifier).await?;
        self.transition(&shared, |ch, _| {
            ch.handle_timeout(now);
            let events =
                ch.handle_withdraw_request(proof, signature, now, self.operator.as_ref())?;
            events
                .iter()
                .find_map(|e| match e {
                    ChannelEvent::Send(ChannelMessage::WithdrawConfirmation {
                        signature, ..
                    }) => Some(*signature),
                    _ => None,
                })
                .ok_or_else(|| HubError::Internal("no withdraw confirmation".into()))
        })
        .await
    }

    /// The device `caller` proposes a cooperative close: the core checks every rule (see
    /// `channel_core::channel::Channel::accept_cooperative_close`) at ledger time `now` and
    /// only then co-signs and stops payments, durably, before the signatures leave.
    pub async fn accept_cooperative_close(
        &self,
        caller: Address,
        proposal: &CooperativeCloseProposal,
        now: u64,
    ) -> Result<CooperativeCloseAcceptance, HubError> {
        let shared = self
            .for_device(caller, &proposal.proposer_withdraw.channel_identifier)
            .await?;
        self.transition(&shared, |ch, _| {
            Ok(ch.accept_cooperative_close(proposal, now, self.operator.as_ref())?)
        })
        .await
    }

    /// What the channel monitor wants submitted, given the ledger's `view` of one of the
    /// hub's channels. A channel the book does not know is only settled.
    pub async fn ledger_actions(
        &self,
        view: &LedgerView<'_>,
    ) -> Result<Vec<LedgerAction>, HubError> {
        let record = view.record;
        match self.get(&record.id)? {
            Some(shared) => {
                let ch = shared.lock().await;
                let wanted = ch.archived_locks_wanted(view.pending_unlocks);
                let archived = self.archived_locks(&record.id, &wanted)?;
                let view = LedgerView {
                    archived_locks: &archived,
                    ..*view
                };
                Ok(ch.poll_ledger_actions(&view, self.operator.as_ref())?)
            }
            // Without the channel the hub knows neither side's balance data: nothing it can
            // submit (the device, which holds the channel, can still settle).
            None => Ok(Vec::new()),
        }
    }

    /// The hub's settle of the closed channel `record`: both stored proofs' balance data, the
    /// hub's own looked up among every proof it signed if the device closed with an old one.
    pub async fn settle_transaction(
        &self,
        record: &ChannelRecord,
    ) -> Result<SettleTransaction, HubError> {
        let shared = self
            .get(&record.id)?
            .ok_or(HubError::UnknownChannel(record.id))?;
        let ch = shared.lock().await;
        let mut lookup = Ok(());
        let settle = ch.settle_transaction(record, |nonce| {
            self.signed_balance(&record.id, nonce).unwrap_or_else(|e| {
                lookup = Err(e);
                None
            })
        });
        lookup?;
        Ok(settle?)
    }

    /// The hub's close of channel `id` (the device's latest proof, counter-signed), durable
    /// before it is returned: from here on the channel takes no payments. Asking again (after
    /// a crash, or a refused submission) gives the same close.
    pub async fn close_transaction(
        &self,
        id: &U256,
    ) -> Result<channel_core::channel::CloseTransaction, HubError> {
        let shared = self.get(id)?.ok_or(HubError::UnknownChannel(*id))?;
        self.transition(&shared, |ch, _| Ok(ch.close(self.operator.as_ref())?))
            .await
    }

    /// Reopens channel `id` for payments after a cooperative close that did not reach the
    /// ledger.
    pub async fn resume_payments(&self, id: &U256) -> Result<(), HubError> {
        let shared = self.get(id)?.ok_or(HubError::UnknownChannel(*id))?;
        self.transition(&shared, |ch, _| {
            ch.resume_payments();
            Ok(())
        })
        .await
    }
}
