//! The hub's channels: one [`Channel`] state machine per device channel, each behind its own
//! lock, persisted before anything is acknowledged or sent.
//!
//! Every change follows the same steps: lock the channel, run the transition on a copy, write
//! the copy to the store (applied at once, durable later), install it, unlock, and only then
//! wait for durability and answer. A refused transition changes nothing, in memory or on disk.
//! Waiting outside the lock lets concurrent payments share one fsync (group commit).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use channel_core::channel::{Channel, ChannelEvent, ChannelMessage};
use channel_core::crypto::{LocalSigner, Signature, Signer};
use channel_core::{Address, Domain, SignedBalanceProof, WithdrawProof, H256, U256};
use tokio::sync::{broadcast, Mutex};

use crate::error::HubError;
use crate::store::{record, KvStore, Persist, WriteBatch};

/// Store namespace of channel states (key: channel id, zero-padded decimal).
pub const NS_CHANNELS: &str = "channels";
/// Prefix of the store namespaces of the proofs the hub signed toward devices: one namespace
/// per channel ([`hub_sent_namespace`]), keyed by zero-padded nonce, so replaying one
/// channel's payments reads only that channel's records.
pub const NS_HUB_SENT: &str = "hub_sent";

/// The namespace of the hub's signed proofs in channel `id`.
pub fn hub_sent_namespace(id: &U256) -> String {
    format!("{NS_HUB_SENT}_{}", channel_key(id))
}
/// Store namespace of the book's own progress (key [`KEY_APPLIED_SEQ`]).
pub const NS_BOOK: &str = "book";
pub const KEY_APPLIED_SEQ: &str = "applied_seq";
/// Format version of the records above.
pub const CHANNEL_RECORD_VERSION: u8 = 1;

/// A payment the hub signed toward a device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubPayment {
    #[serde(with = "channel_core::primitives::u256_dec")]
    pub channel_id: U256,
    pub proof: SignedBalanceProof,
    #[serde(with = "channel_core::primitives::u256_dec")]
    pub amount: U256,
}

/// A device payment the hub took, durable once its ticket completes.
#[derive(Debug)]
pub struct Accepted {
    pub nonce: u64,
    pub transferred_amount: U256,
    /// Await before acknowledging.
    pub persist: Persist,
}

pub(super) type Shared = Arc<Mutex<Channel>>;

/// A change a ledger event makes to one channel.
pub(super) type ChannelChange = Box<dyn FnOnce(&mut Channel) -> Result<(), HubError> + Send>;

fn channel_key(id: &U256) -> String {
    format!("{id:0>78}")
}

/// All channels of the hub.
#[derive(Debug)]
pub struct ChannelBook {
    pub(super) store: Arc<dyn KvStore>,
    pub(super) operator: Arc<LocalSigner>,
    pub(super) domain: Domain,
    pub(super) channels: RwLock<BTreeMap<U256, Shared>>,
    /// Serialises the application of ledger events.
    pub(super) ledger_progress: Mutex<u64>,
    hub_payments: broadcast::Sender<HubPayment>,
}

impl ChannelBook {
    /// Loads every stored channel.
    pub fn load(
        store: Arc<dyn KvStore>,
        operator: Arc<LocalSigner>,
        domain: Domain,
    ) -> Result<Self, HubError> {
        let mut channels = BTreeMap::new();
        for key in store.list(NS_CHANNELS)? {
            if let Some(bytes) = store.read(NS_CHANNELS, &key)? {
                let ch: Channel =
                    record::decode(NS_CHANNELS, &key, CHANNEL_RECORD_VERSION, &bytes)?;
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
        let (hub_payments, _) = broadcast::channel(4096);
        Ok(Self {
            store,
            operator,
            domain,
            channels: RwLock::new(channels),
            ledger_progress: Mutex::new(applied),
            hub_payments,
        })
    }

    pub fn operator_address(&self) -> Address {
        self.operator.address()
    }

    pub(super) fn get(&self, id: &U256) -> Result<Option<Shared>, HubError> {
        let map = self
            .channels
            .read()
            .map_err(|_| HubError::Internal("channel map lock poisoned".into()))?;
        Ok(map.get(id).cloned())
    }

    /// The channel, if `caller` is its device.
    async fn for_device(&self, caller: Address, id: &U256) -> Result<Shared, HubError> {
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
            record::encode(CHANNEL_RECORD_VERSION, ch)?,
        );
        Ok(())
    }

    /// Snapshot of one channel for `caller` (who must be its device).
    pub async fn snapshot(&self, caller: Address, id: &U256) -> Result<Channel, HubError> {
        let shared = self.for_device(caller, id).await?;
        let ch = shared.lock().await.clone();
        Ok(ch)
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

    /// A payment from the device `caller`. Applied (or refused, changing nothing) at once;
    /// the returned ticket says when it is durable. The exact proof the hub already holds is
    /// acknowledged again (a retransmission after a lost ack), any older one is refused.
    pub async fn take_payment(
        &self,
        caller: Address,
        proof: &SignedBalanceProof,
        amount: U256,
    ) -> Result<Accepted, HubError> {
        let id = proof.proof.channel_identifier;
        let shared = self.for_device(caller, &id).await?;
        let mut ch = shared.lock().await;
        if ch.partner_latest_proof() == Some(proof) {
            return Ok(Accepted {
                nonce: proof.proof.nonce,
                transferred_amount: proof.proof.balance.transferred_amount,
                persist: self.store.sync()?,
            });
        }
        let mut next = ch.clone();
        next.handle_payment(proof, amount)?;
        let mut batch = WriteBatch::new();
        Self::put(&mut batch, &next)?;
        let persist = self.store.write(batch)?;
        *ch = next;
        Ok(Accepted {
            nonce: proof.proof.nonce,
            transferred_amount: proof.proof.balance.transferred_amount,
            persist,
        })
    }

    /// The hub pays `amount` to the device of channel `id` (operator command). Returns once
    /// the signed proof is durable; then it is published to the device's stream.
    pub async fn pay_device(&self, id: &U256, amount: U256) -> Result<HubPayment, HubError> {
        let shared = self.get(id)?.ok_or(HubError::UnknownChannel(*id))?;
        let (payment, persist) = {
            let mut ch = shared.lock().await;
            let mut next = ch.clone();
            let events = next.send_payment(amount, H256::ZERO, self.operator.as_ref())?;
            let proof = events
                .iter()
                .find_map(|e| match e {
                    ChannelEvent::Send(ChannelMessage::Payment { proof, .. }) => Some(*proof),
                    _ => None,
                })
                .ok_or_else(|| HubError::Internal("send_payment emitted no proof".into()))?;
            let payment = HubPayment {
                channel_id: *id,
                proof,
                amount,
            };
            let mut batch = WriteBatch::new();
            Self::put(&mut batch, &next)?;
            batch.put(
                &hub_sent_namespace(id),
                &format!("{:020}", proof.proof.nonce),
                record::encode(CHANNEL_RECORD_VERSION, &payment)?,
            );
            let persist = self.store.write(batch)?;
            *ch = next;
            (payment, persist)
        };
        persist.durable().await?;
        // Nobody listening is fine: the device replays from the store when it connects.
        let _ = self.hub_payments.send(payment.clone());
        Ok(payment)
    }

    /// Hub payments of channel `id` with nonce above `after_nonce` (from the store), plus a
    /// receiver of later ones. Subscribe before replaying so nothing falls in between.
    pub async fn hub_payments_since(
        &self,
        caller: Address,
        id: &U256,
        after_nonce: u64,
    ) -> Result<(Vec<HubPayment>, broadcast::Receiver<HubPayment>), HubError> {
        self.for_device(caller, id).await?;
        let rx = self.hub_payments.subscribe();
        let namespace = hub_sent_namespace(id);
        let mut out = Vec::new();
        for key in self.store.list(&namespace)? {
            if let Some(bytes) = self.store.read(&namespace, &key)? {
                let p: HubPayment =
                    record::decode(&namespace, &key, CHANNEL_RECORD_VERSION, &bytes)?;
                if p.proof.proof.nonce > after_nonce {
                    out.push(p);
                }
            }
        }
        Ok((out, rx))
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
        let persist = {
            let mut ch = shared.lock().await;
            let mut next = ch.clone();
            next.expire_withdraws(now);
            let events =
                next.handle_withdraw_request(proof, signature, now, self.operator.as_ref())?;
            let ours = events.iter().find_map(|e| match e {
                ChannelEvent::Send(ChannelMessage::WithdrawConfirmation { signature, .. }) => {
                    Some(*signature)
                }
                _ => None,
            });
            let ours = ours.ok_or_else(|| HubError::Internal("no withdraw confirmation".into()))?;
            let mut batch = WriteBatch::new();
            Self::put(&mut batch, &next)?;
            let persist = self.store.write(batch)?;
            *ch = next;
            (persist, ours)
        };
        persist.0.durable().await?;
        Ok(persist.1)
    }

    /// Checks a cooperative close proposed by the device `caller` and co-signs both withdraws:
    /// each must pay its participant exactly its whole balance, with no locks pending. The
    /// channel takes no more payments afterwards. Returns the hub's signatures on (the
    /// device's withdraw, the hub's withdraw).
    pub async fn cosign_cooperative_close(
        &self,
        caller: Address,
        device_withdraw: &WithdrawProof,
        device_signature: &Signature,
        hub_withdraw: &WithdrawProof,
        hub_partner_signature: &Signature,
    ) -> Result<(Signature, Signature), HubError> {
        let id = device_withdraw.channel_identifier;
        let shared = self.for_device(caller, &id).await?;
        let mut ch = shared.lock().await;
        let refuse = |why: String| Err(HubError::CooperativeClose(why));
        if hub_withdraw.channel_identifier != id {
            return refuse("hub_withdraw.channel_identifier differs from the device's".into());
        }
        for (name, w) in [
            ("device_withdraw", device_withdraw),
            ("hub_withdraw", hub_withdraw),
        ] {
            if w.domain != self.domain {
                return refuse(format!("{name}.domain is not this hub's ledger"));
            }
        }
        if device_withdraw.participant != caller {
            return refuse("device_withdraw.participant must be the caller".into());
        }
        if hub_withdraw.participant != self.operator.address() {
            return refuse("hub_withdraw.participant must be the hub".into());
        }
        if !ch.our().locks.is_empty() || !ch.partner().locks.is_empty() {
            return refuse("locks are pending; unlock or let them expire first".into());
        }
        let device_total = ch.partner().total_withdraw + ch.partner_balance()?;
        let hub_total = ch.our().total_withdraw + ch.our_balance()?;
        if device_withdraw.total_withdraw != device_total {
            return refuse(format!(
                "device_withdraw.total_withdraw must be {device_total} (the device's whole balance), got {}",
                device_withdraw.total_withdraw
            ));
        }
        if hub_withdraw.total_withdraw != hub_total {
            return refuse(format!(
                "hub_withdraw.total_withdraw must be {hub_total} (the hub's whole balance), got {}",
                hub_withdraw.total_withdraw
            ));
        }
        channel_core::crypto::verify_signer(
            &device_withdraw.signing_hash(),
            device_signature,
            caller,
        )
        .map_err(|e| HubError::CooperativeClose(format!("device_withdraw_signature: {e}")))?;
        channel_core::crypto::verify_signer(
            &hub_withdraw.signing_hash(),
            hub_partner_signature,
            caller,
        )
        .map_err(|e| HubError::CooperativeClose(format!("hub_withdraw_partner_signature: {e}")))?;
        let on_device = device_withdraw.sign(self.operator.as_ref())?;
        let on_hub = hub_withdraw.sign(self.operator.as_ref())?;
        let mut next = ch.clone();
        next.stop_payments();
        let mut batch = WriteBatch::new();
        Self::put(&mut batch, &next)?;
        let persist = self.store.write(batch)?;
        *ch = next;
        drop(ch);
        persist.durable().await?;
        Ok((on_device, on_hub))
    }
}
