//! The device's own durable state: its key, the hub it talks to, the channel state machine,
//! the log of sent-but-unacknowledged payment proofs, the hub's proofs received, the last
//! ledger event seen, the chain follower's state on a hub that settles on Ethereum
//! ([`ChainFollowerRecord`]), and the records of mediated payments ([`transfers`]: the requests we
//! issued with their secrets, the transfers we pay, the locks we receive). With this alone a
//! rebooted device continues with the right nonce, finishes or takes back its mediated
//! payments, and can close or dispute on the ledger without the hub.
//!
//! Every record is versioned ([`record`]). Writes become durable at [`DeviceStore::flush`]; the
//! client flushes before any proof leaves the device.

mod backend;
pub mod record;
pub mod sessions;
#[cfg(test)]
mod tests;
pub mod transfers;

use std::path::Path;
use std::sync::Arc;

use channel_core::channel::Channel;
use channel_core::{BalanceData, LocalSigner, H256};

pub use backend::{Entries, KvBackend, MemoryBackend, SledBackend};
pub use record::{
    ChainFollowerRecord, DeploymentId, HubPaymentRecord, HubRecord, KeyRecord, QueuedKind,
    UnackedPayment, RECORD_VERSION,
};
pub use transfers::{
    ForwardRecord, IncomingState, IncomingTransfer, OutgoingTransfer, PaymentRequestRecord, Refusal,
};

/// Why the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("record {key:?} has version {version}, this SDK reads version {RECORD_VERSION}")]
    UnsupportedVersion { key: String, version: u8 },
    #[error("record {key:?} is corrupt: {message}")]
    Corrupt { key: String, message: String },
    #[error("record {key:?} cannot be encoded: {message}")]
    Encode { key: String, message: String },
}

const KEY: &str = "key";
const HUB: &str = "hub";
const CHANNEL: &str = "channel";
const LEDGER_SEQ: &str = "ledger_seq";
const CHAIN_FOLLOWER: &str = "chain_follower";
const UNACKED: &str = "unacked/";
const HUB_PAYMENT: &str = "hub_payment/";
const SIGNED_BALANCE: &str = "signed_balance/";
const SIGNED_LOCKS: &str = "signed_locks/";

fn locks_key(root: &H256) -> Vec<u8> {
    let mut k = SIGNED_LOCKS.as_bytes().to_vec();
    k.extend_from_slice(root.as_bytes());
    k
}

fn nonce_key(prefix: &str, nonce: u64) -> Vec<u8> {
    let mut k = prefix.as_bytes().to_vec();
    k.extend_from_slice(&nonce.to_be_bytes());
    k
}

/// Typed records over a [`KvBackend`]. Cheap to clone (shares the backend).
#[derive(Debug, Clone)]
pub struct DeviceStore {
    kv: Arc<dyn KvBackend>,
}

impl DeviceStore {
    /// Opens (or creates) a sled store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self::with_backend(SledBackend::open(path)?))
    }

    /// A store that lives in memory only (tests).
    pub fn in_memory() -> Self {
        Self::with_backend(MemoryBackend::new())
    }

    pub fn with_backend(kv: impl KvBackend) -> Self {
        Self { kv: Arc::new(kv) }
    }

    fn get<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.kv
            .get(key.as_bytes())?
            .map(|b| record::decode(key, &b))
            .transpose()
    }

    fn put<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        self.kv.insert(key.as_bytes(), record::encode(key, value)?)
    }

    /// Makes every earlier write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.kv.flush().await
    }

    // ----- key -----

    /// The stored device key, if any.
    pub fn signer(&self) -> Result<Option<LocalSigner>, StoreError> {
        let Some(rec) = self.get::<KeyRecord>(KEY)? else {
            return Ok(None);
        };
        let bytes = hex::decode(rec.secret_hex.trim_start_matches("0x")).map_err(|e| {
            StoreError::Corrupt {
                key: KEY.into(),
                message: e.to_string(),
            }
        })?;
        LocalSigner::from_bytes(&bytes)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                key: KEY.into(),
                message: e.to_string(),
            })
    }

    /// Stores `signer`'s key and flushes.
    pub async fn put_signer(&self, signer: &LocalSigner) -> Result<(), StoreError> {
        let rec = KeyRecord {
            secret_hex: hex::encode(signer.to_bytes()),
        };
        self.put(KEY, &rec)?;
        self.flush().await
    }

    /// The stored key, or a fresh one from OS randomness (stored and flushed) on first use.
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
        self.get(HUB)
    }

    pub fn put_hub(&self, hub: &HubRecord) -> Result<(), StoreError> {
        self.put(HUB, hub)
    }

    // ----- channel -----

    pub fn channel(&self) -> Result<Option<Channel>, StoreError> {
        self.get(CHANNEL)
    }

    /// Stores the channel, and with it the balance data of its latest proof of ours under
    /// that proof's nonce and the proof's locks (packed, as the contract's unlock takes them)
    /// under their root: every proof we sign is kept until the channel is cleared, since the
    /// hub may close with any of them, and settling then needs its data
    /// ([`DeviceStore::signed_balance`]) and unlocking what the ledger keeps back its locks
    /// ([`DeviceStore::archived_locks`]).
    pub fn put_channel(&self, channel: &Channel) -> Result<(), StoreError> {
        if let Some((nonce, balance)) = channel.our_signed_balance() {
            self.kv.insert(
                &nonce_key(SIGNED_BALANCE, nonce),
                record::encode(SIGNED_BALANCE, &balance)?,
            )?;
        }
        if let Some((root, packed)) = channel.our_signed_locks() {
            self.kv.insert(&locks_key(&root), packed)?;
        }
        self.put(CHANNEL, channel)
    }

    /// The packed locks of our proofs in the current channel under `roots`, those kept.
    pub fn archived_locks(&self, roots: &[H256]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut found = Vec::new();
        for root in roots {
            if let Some(packed) = self.kv.get(&locks_key(root))? {
                found.push(packed);
            }
        }
        Ok(found)
    }

    /// The balance data of the proof with `nonce` we signed in the current channel, if kept.
    pub fn signed_balance(&self, nonce: u64) -> Result<Option<BalanceData>, StoreError> {
        self.kv
            .get(&nonce_key(SIGNED_BALANCE, nonce))?
            .map(|b| record::decode(SIGNED_BALANCE, &b))
            .transpose()
    }

    /// Forgets the channel and its payment logs (after it settled). The records of mediated
    /// payments stay: they are the payment history (and keep a request from being paid twice).
    pub fn clear_channel(&self) -> Result<(), StoreError> {
        self.kv.remove(CHANNEL.as_bytes())?;
        for prefix in [UNACKED, HUB_PAYMENT, SIGNED_BALANCE, SIGNED_LOCKS] {
            for (k, _) in self.kv.scan_prefix(prefix.as_bytes())? {
                self.kv.remove(&k)?;
            }
        }
        Ok(())
    }

    // ----- unacknowledged payments -----

    pub fn put_unacked(&self, p: &UnackedPayment) -> Result<(), StoreError> {
        let key = nonce_key(UNACKED, p.nonce());
        self.kv.insert(&key, record::encode(UNACKED, p)?)
    }

    pub fn unacked(&self, nonce: u64) -> Result<Option<UnackedPayment>, StoreError> {
        self.kv
            .get(&nonce_key(UNACKED, nonce))?
            .map(|b| record::decode(UNACKED, &b))
            .transpose()
    }

    /// Every unacknowledged payment, lowest nonce first.
    pub fn unacked_all(&self) -> Result<Vec<UnackedPayment>, StoreError> {
        self.kv
            .scan_prefix(UNACKED.as_bytes())?
            .iter()
            .map(|(_, v)| record::decode(UNACKED, v))
            .collect()
    }

    /// Drops the unacknowledged payment with `nonce` (a locked transfer taken back).
    pub fn remove_unacked(&self, nonce: u64) -> Result<(), StoreError> {
        self.kv.remove(&nonce_key(UNACKED, nonce))
    }

    /// Drops every unacknowledged payment with nonce `<= nonce` (the hub has them) and returns
    /// them, lowest nonce first.
    pub fn prune_unacked(&self, nonce: u64) -> Result<Vec<UnackedPayment>, StoreError> {
        let mut pruned = Vec::new();
        for (k, v) in self.kv.scan_prefix(UNACKED.as_bytes())? {
            let p: UnackedPayment = record::decode(UNACKED, &v)?;
            if p.nonce() > nonce {
                break;
            }
            self.kv.remove(&k)?;
            pruned.push(p);
        }
        Ok(pruned)
    }

    // ----- hub payments -----

    pub fn put_hub_payment(&self, p: &HubPaymentRecord) -> Result<(), StoreError> {
        let key = nonce_key(HUB_PAYMENT, p.proof.proof.nonce);
        self.kv.insert(&key, record::encode(HUB_PAYMENT, p)?)
    }

    /// Every payment received from the hub, lowest nonce first.
    pub fn hub_payments(&self) -> Result<Vec<HubPaymentRecord>, StoreError> {
        self.kv
            .scan_prefix(HUB_PAYMENT.as_bytes())?
            .iter()
            .map(|(_, v)| record::decode(HUB_PAYMENT, v))
            .collect()
    }

    // ----- ledger -----

    /// The highest ledger event seq already applied (0 = none).
    pub fn ledger_seq(&self) -> Result<u64, StoreError> {
        Ok(self.get(LEDGER_SEQ)?.unwrap_or(0))
    }

    pub fn put_ledger_seq(&self, seq: u64) -> Result<(), StoreError> {
        self.put(LEDGER_SEQ, &seq)
    }

    // ----- chain follower (Ethereum hubs only) -----

    /// The chain follower's state, if this store follows a chain.
    pub fn chain_follower(&self) -> Result<Option<ChainFollowerRecord>, StoreError> {
        self.get(CHAIN_FOLLOWER)
    }

    /// Replaces the chain follower's state in one write (not yet flushed).
    pub fn put_chain_follower(&self, record: &ChainFollowerRecord) -> Result<(), StoreError> {
        self.put(CHAIN_FOLLOWER, record)
    }
}
