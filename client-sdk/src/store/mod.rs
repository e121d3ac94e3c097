//! The device's own durable state: its key, the hub it talks to, the channel state machine,
//! the log of sent-but-unacknowledged payment proofs, the hub's proofs received, the last
//! ledger event seen, the chain follower's state on a hub that settles on Ethereum
//! ([`ChainFollowerRecord`]), and the records of mediated payments ([`transfers`]: the requests we
//! issued with their secrets, the transfers we pay, the locks we receive). With this alone a
//! rebooted device continues with the right nonce, finishes or takes back its mediated
//! payments, and can close or dispute on the ledger without the hub.
//!
//! Built on the shared seam [`voltlane_store`], like the hub: records are versioned
//! ([`record`]) under namespaced keys; the channel is a
//! [`ChannelStateRecord`](voltlane_store::records::ChannelStateRecord), the layout the hub
//! stores its channels in, with its own version; several records that change together go in one
//! [`DeviceBatch`], written atomically. A write returns only once it is durable
//! ([`DeviceStore::commit`]); where the write happens under a lock that cannot be held across
//! an await, [`DeviceStore::write`] hands back the [`Persist`] ticket to await after the lock,
//! and nothing built on the write may leave the device before. Reads see only durable data,
//! so what the payment stream reads from the store to send is durable by construction.

mod layout;
pub mod mirror;
pub mod record;
pub mod sessions;
#[cfg(test)]
mod tests;
pub mod transfers;

use std::path::Path;
use std::sync::Arc;

use channel_core::channel::Channel;
use channel_core::{BalanceData, LocalSigner, H256};
use voltlane_store::{KvStore, MemoryStore, SledStore, WriteBatch};

pub use record::{
    ChainFollowerRecord, DeploymentId, HubPaymentRecord, HubRecord, KeyRecord, QueuedKind,
    UnackedPayment, RECORD_VERSION,
};
pub use transfers::{
    ForwardRecord, IncomingState, IncomingTransfer, OutgoingTransfer, PaymentRequestRecord, Refusal,
};
pub use voltlane_store::records::{ChannelStateRecord, CHANNEL_STATE_VERSION};
pub use voltlane_store::Persist;

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(#[from] voltlane_store::StoreError),
    #[error("record {key:?} has version {version}, this SDK reads version {RECORD_VERSION}")]
    UnsupportedVersion { key: String, version: u8 },
    #[error("record {key:?} is corrupt: {message}")]
    Corrupt { key: String, message: String },
    #[error("record {key:?} cannot be encoded: {message}")]
    Encode { key: String, message: String },
}

/// Namespaces of the device's records.
pub(crate) mod ns {
    /// Single records: key, hub, channel, ledger seq, chain follower.
    pub const DEVICE: &str = "device";
    pub const UNACKED: &str = "unacked";
    pub const HUB_PAYMENT: &str = "hub_payment";
    pub const SIGNED_BALANCE: &str = "signed_balance";
    pub const SIGNED_LOCKS: &str = "signed_locks";
    pub const OUTGOING: &str = "transfer";
    pub const REQUEST: &str = "request";
    pub const INCOMING: &str = "incoming";
    pub const PAYEE_SESSION: &str = "session-payee";
    pub const PAYER_SESSION: &str = "session-payer";
}

const KEY: &str = "key";
const HUB: &str = "hub";
const CHANNEL: &str = "channel";
const LEDGER_SEQ: &str = "ledger_seq";
const CHAIN_FOLLOWER: &str = "chain_follower";

/// A nonce as a key: fixed-width decimal, so key order is nonce order.
pub(crate) fn nonce_key(nonce: u64) -> String {
    format!("{nonce:020}")
}

/// A 32-byte hash (secrethash, lock root, session id) as a key: lowercase hex.
pub(crate) fn hash_key(hash: &H256) -> String {
    hex::encode(hash.as_bytes())
}

/// Records that change together, written atomically by [`DeviceStore::commit`] or
/// [`DeviceStore::write`]. Later changes of the same record replace earlier ones.
#[derive(Debug, Default)]
pub struct DeviceBatch {
    batch: WriteBatch,
}

impl DeviceBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    pub(crate) fn put<T: serde::Serialize>(
        &mut self,
        namespace: &str,
        key: &str,
        value: &T,
    ) -> Result<&mut Self, StoreError> {
        let bytes = record::encode(&format!("{namespace}/{key}"), value)?;
        self.batch.put(namespace, key, bytes);
        Ok(self)
    }

    pub(crate) fn put_raw(&mut self, namespace: &str, key: &str, bytes: Vec<u8>) -> &mut Self {
        self.batch.put(namespace, key, bytes);
        self
    }

    pub(crate) fn remove(&mut self, namespace: &str, key: &str) -> &mut Self {
        self.batch.remove(namespace, key);
        self
    }

    /// The channel, and with it the balance data of its latest proof of ours under that
    /// proof's nonce and the proof's locks (packed, as the contract's unlock takes them) under
    /// their root: every proof we sign is kept until the channel is cleared, since the hub may
    /// close with any of them, and settling then needs its data
    /// ([`DeviceStore::signed_balance`]) and unlocking what the ledger keeps back its locks
    /// ([`DeviceStore::archived_locks`]).
    pub fn channel(&mut self, channel: &Channel) -> Result<&mut Self, StoreError> {
        if let Some((nonce, balance)) = channel.our_signed_balance() {
            self.put(ns::SIGNED_BALANCE, &nonce_key(nonce), &balance)?;
        }
        if let Some((root, packed)) = channel.our_signed_locks() {
            self.put_raw(ns::SIGNED_LOCKS, &hash_key(&root), packed);
        }
        let bytes = ChannelStateRecord::encode(channel).map_err(|e| StoreError::Encode {
            key: format!("{}/{CHANNEL}", ns::DEVICE),
            message: e.to_string(),
        })?;
        Ok(self.put_raw(ns::DEVICE, CHANNEL, bytes))
    }

    pub fn unacked(&mut self, p: &UnackedPayment) -> Result<&mut Self, StoreError> {
        self.put(ns::UNACKED, &nonce_key(p.nonce()), p)
    }

    /// Drops the unacknowledged payment with `nonce` (a locked transfer taken back).
    pub fn remove_unacked(&mut self, nonce: u64) -> &mut Self {
        self.remove(ns::UNACKED, &nonce_key(nonce))
    }

    pub fn hub_payment(&mut self, p: &HubPaymentRecord) -> Result<&mut Self, StoreError> {
        self.put(ns::HUB_PAYMENT, &nonce_key(p.proof.proof.nonce), p)
    }

    pub fn hub(&mut self, hub: &HubRecord) -> Result<&mut Self, StoreError> {
        self.put(ns::DEVICE, HUB, hub)
    }

    pub fn ledger_seq(&mut self, seq: u64) -> Result<&mut Self, StoreError> {
        self.put(ns::DEVICE, LEDGER_SEQ, &seq)
    }

    /// The chain follower's state, as one record.
    pub fn chain_follower(&mut self, r: &ChainFollowerRecord) -> Result<&mut Self, StoreError> {
        self.put(ns::DEVICE, CHAIN_FOLLOWER, r)
    }

    fn signer(&mut self, signer: &LocalSigner) -> Result<&mut Self, StoreError> {
        let rec = KeyRecord {
            secret_hex: hex::encode(signer.to_bytes()),
        };
        self.put(ns::DEVICE, KEY, &rec)
    }
}

/// Typed records over a [`KvStore`]. Cheap to clone (shares the store).
#[derive(Debug, Clone)]
pub struct DeviceStore {
    kv: Arc<dyn KvStore>,
}

impl DeviceStore {
    /// Opens (or creates) a sled store at `path`; a store written by an SDK before the shared
    /// seam (raw keys) is moved to the namespaced layout first, in one durable batch.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let sled = SledStore::open(path.as_ref()).map_err(StoreError::Backend)?;
        sled.rename_legacy_keys(layout::legacy_key)
            .map_err(StoreError::Backend)?;
        Ok(Self::with_store(Arc::new(sled)))
    }

    /// A store that lives in memory only (tests). Clones share it, so a test can hand the
    /// same store to a second client to simulate a device restart.
    pub fn in_memory() -> Self {
        Self::with_store(Arc::new(MemoryStore::new()))
    }

    pub fn with_store(kv: Arc<dyn KvStore>) -> Self {
        Self { kv }
    }

    pub(crate) fn get<T: serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.kv
            .read(namespace, key)?
            .map(|b| record::decode(&format!("{namespace}/{key}"), &b))
            .transpose()
    }

    /// Every record of `namespace`, in key order.
    pub(crate) fn all<T: serde::de::DeserializeOwned>(
        &self,
        namespace: &str,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let mut out = Vec::new();
        for key in self.kv.list(namespace)? {
            if let Some(v) = self.get(namespace, &key)? {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// Applies `batch` atomically and returns its durability ticket: for writes under a lock
    /// that cannot be held across an await. Await the ticket before anything built on the
    /// write leaves the device.
    pub fn write(&self, batch: DeviceBatch) -> Result<Persist, StoreError> {
        if batch.is_empty() {
            return Ok(Persist::Completed);
        }
        Ok(self.kv.write(batch.batch)?)
    }

    /// A ticket for "every write applied so far is durable".
    pub fn sync(&self) -> Result<Persist, StoreError> {
        Ok(self.kv.sync()?)
    }

    /// Applies `batch` atomically and returns once it is durable.
    pub async fn commit(&self, batch: DeviceBatch) -> Result<(), StoreError> {
        Ok(self.write(batch)?.durable().await?)
    }

    /// Commits a batch of the one change `f` makes.
    async fn commit_one(
        &self,
        f: impl FnOnce(&mut DeviceBatch) -> Result<&mut DeviceBatch, StoreError>,
    ) -> Result<(), StoreError> {
        let mut batch = DeviceBatch::new();
        f(&mut batch)?;
        self.commit(batch).await
    }

    // ----- key -----

    /// The stored device key, if any.
    pub fn signer(&self) -> Result<Option<LocalSigner>, StoreError> {
        let Some(rec) = self.get::<KeyRecord>(ns::DEVICE, KEY)? else {
            return Ok(None);
        };
        let corrupt = |message: String| StoreError::Corrupt {
            key: KEY.into(),
            message,
        };
        let bytes = hex::decode(rec.secret_hex.trim_start_matches("0x"))
            .map_err(|e| corrupt(e.to_string()))?;
        LocalSigner::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Stores `signer`'s key, durably.
    pub async fn put_signer(&self, signer: &LocalSigner) -> Result<(), StoreError> {
        self.commit_one(|b| b.signer(signer)).await
    }

    /// The stored key, or a fresh one from OS randomness (stored durably) on first use.
    pub async fn load_or_create_signer(&self) -> Result<LocalSigner, StoreError> {
        if let Some(s) = self.signer()? {
            return Ok(s);
        }
        let signer = loop {
            let mut secret = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
            // A uniformly random 32-byte value is a valid key except with negligible chance.
            if let Ok(s) = LocalSigner::from_bytes(&secret) {
                break s;
            }
        };
        self.put_signer(&signer).await?;
        Ok(signer)
    }

    // ----- hub -----

    pub fn hub(&self) -> Result<Option<HubRecord>, StoreError> {
        self.get(ns::DEVICE, HUB)
    }

    pub async fn put_hub(&self, hub: &HubRecord) -> Result<(), StoreError> {
        self.commit_one(|b| b.hub(hub)).await
    }

    // ----- channel -----

    pub fn channel(&self) -> Result<Option<Channel>, StoreError> {
        self.kv
            .read(ns::DEVICE, CHANNEL)?
            .map(|b| {
                ChannelStateRecord::decode(ns::DEVICE, CHANNEL, &b)
                    .map_err(|e| record::from_shared(&format!("{}/{CHANNEL}", ns::DEVICE), e))
            })
            .transpose()
    }

    /// Stores the channel (see [`DeviceBatch::channel`]), durably.
    pub async fn put_channel(&self, channel: &Channel) -> Result<(), StoreError> {
        self.commit_one(|b| b.channel(channel)).await
    }

    /// The packed locks of our proofs in the current channel under `roots`, those kept.
    pub fn archived_locks(&self, roots: &[H256]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut found = Vec::new();
        for root in roots {
            if let Some(packed) = self.kv.read(ns::SIGNED_LOCKS, &hash_key(root))? {
                found.push(packed);
            }
        }
        Ok(found)
    }

    /// The balance data of the proof with `nonce` we signed in the current channel, if kept.
    pub fn signed_balance(&self, nonce: u64) -> Result<Option<BalanceData>, StoreError> {
        self.get(ns::SIGNED_BALANCE, &nonce_key(nonce))
    }

    /// Forgets the channel and its payment logs (after it settled), durably. The records of
    /// mediated payments stay: they are the payment history (and keep a request from being
    /// paid twice).
    pub async fn clear_channel(&self) -> Result<(), StoreError> {
        let mut batch = DeviceBatch::new();
        self.stage_clear_channel(&mut batch)?;
        self.commit(batch).await
    }

    /// Adds [`DeviceStore::clear_channel`]'s removals to `batch` (a new channel written in the
    /// same batch after them replaces the old one atomically).
    pub fn stage_clear_channel(&self, batch: &mut DeviceBatch) -> Result<(), StoreError> {
        batch.remove(ns::DEVICE, CHANNEL);
        for namespace in [
            ns::UNACKED,
            ns::HUB_PAYMENT,
            ns::SIGNED_BALANCE,
            ns::SIGNED_LOCKS,
        ] {
            for key in self.kv.list(namespace)? {
                batch.remove(namespace, &key);
            }
        }
        Ok(())
    }

    // ----- unacknowledged payments -----

    pub fn unacked(&self, nonce: u64) -> Result<Option<UnackedPayment>, StoreError> {
        self.get(ns::UNACKED, &nonce_key(nonce))
    }

    /// Every unacknowledged payment, lowest nonce first.
    pub fn unacked_all(&self) -> Result<Vec<UnackedPayment>, StoreError> {
        Ok(self.all(ns::UNACKED)?.into_iter().map(|(_, p)| p).collect())
    }

    /// Drops the unacknowledged payment with `nonce` (a locked transfer taken back), durably.
    pub async fn remove_unacked(&self, nonce: u64) -> Result<(), StoreError> {
        self.commit_one(|b| Ok(b.remove_unacked(nonce))).await
    }

    /// Drops every unacknowledged payment with nonce `<= nonce` (the hub has them), durably,
    /// and returns them, lowest nonce first.
    pub async fn prune_unacked(&self, nonce: u64) -> Result<Vec<UnackedPayment>, StoreError> {
        let mut batch = DeviceBatch::new();
        let mut pruned = Vec::new();
        for p in self.unacked_all()? {
            if p.nonce() > nonce {
                break;
            }
            batch.remove_unacked(p.nonce());
            pruned.push(p);
        }
        self.commit(batch).await?;
        Ok(pruned)
    }

    // ----- hub payments -----

    /// Every payment received from the hub, lowest nonce first.
    pub fn hub_payments(&self) -> Result<Vec<HubPaymentRecord>, StoreError> {
        Ok(self
            .all(ns::HUB_PAYMENT)?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    // ----- ledger -----

    /// The highest ledger event seq already applied (0 = none).
    pub fn ledger_seq(&self) -> Result<u64, StoreError> {
        Ok(self.get(ns::DEVICE, LEDGER_SEQ)?.unwrap_or(0))
    }

    pub async fn put_ledger_seq(&self, seq: u64) -> Result<(), StoreError> {
        self.commit_one(|b| b.ledger_seq(seq)).await
    }

    // ----- chain follower (Ethereum hubs only) -----

    /// The chain follower's state, if this store follows a chain.
    pub fn chain_follower(&self) -> Result<Option<ChainFollowerRecord>, StoreError> {
        self.get(ns::DEVICE, CHAIN_FOLLOWER)
    }

    /// Replaces the chain follower's state in one durable write.
    pub async fn put_chain_follower(&self, record: &ChainFollowerRecord) -> Result<(), StoreError> {
        self.commit_one(|b| b.chain_follower(record)).await
    }
}
