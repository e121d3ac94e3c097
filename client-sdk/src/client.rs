//! The public [`Client`]: connect and authenticate, open a channel, pay the hub, pay other
//! devices through the hub and be paid by them, read balances, and the ways out (withdraw,
//! cooperative close, unilateral close, settle).
//!
//! Background tasks run for the client's lifetime and stop when it is dropped: the payment
//! stream ([`crate::payments`]), the hub-payment receiver ([`crate::receiver`]), the ledger
//! watcher and monitor ([`crate::watcher`]), the payer-event subscription
//! ([`crate::mediation::events`]) and the lock janitor ([`crate::mediation::janitor`]).

use std::sync::Arc;

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::ledger::{ChannelPhase as LedgerPhase, LedgerOp};
use channel_core::mediation::{FeePolicy, SignedPaymentRequest};
use channel_core::primitives::{Address, H256, U256};
use channel_core::{Domain, LocalSigner, Signer};
use tokio::sync::broadcast;
use voltlane_proto::convert::{address, u256};
use voltlane_proto::v1;
use voltlane_store::keyfile::KeySource;

use crate::error::ClientError;
use crate::export::ExportedProofs;
use crate::ledger::{ChainDeployment, ChainLedger, DeployedContracts, DeviceLedger, HubLedger};
use crate::mediation::{self, MediatedReceipt, MediationInfo, MediationOptions, Quote};
use crate::rpc::{ConnectOptions, Rpc};
use crate::shared::Shared;
use crate::store::{DeviceStore, HubRecord};
use crate::types::{
    Balances, LinkState, MediatedPayment, PaymentReceipt, ReceivedPayment, Settlement,
};
use crate::{ops, payments, receiver, restore, sync, watcher};

/// A device's connection to one hub, with its channel and its own durable state.
#[derive(Debug)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.abort_all();
    }
}

/// Where the hub settles, as `Hub.GetInfo` announces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnnouncedLedger {
    /// The hub's own ledger, behind its `Ledger` service (also what an old hub means).
    Embedded,
    /// An EVM chain the device must reach itself.
    Ethereum(ChainDeployment),
}

async fn hub_info(rpc: &Rpc) -> Result<(HubRecord, MediationInfo, AnnouncedLedger), ClientError> {
    let info = rpc
        .clients()
        .hub
        .get_info(v1::GetInfoRequest {})
        .await
        .map_err(|s| rpc.status_error("Hub.GetInfo", s))?
        .into_inner();
    let hub = HubRecord {
        hub_address: address("hub_address", &info.hub_address)?,
        domain: Domain {
            chain_id: u256("chain_id", &info.chain_id)?,
            token_network_address: address("token_network_address", &info.token_network_address)?,
        },
        settlement_timeout: info.settlement_timeout,
    };
    // A hub from before mediation leaves the fee fields empty: no fee.
    let flat = if info.mediation_fee_flat.is_empty() {
        U256::ZERO
    } else {
        u256("mediation_fee_flat", &info.mediation_fee_flat)?
    };
    let mediation = MediationInfo {
        fees: FeePolicy {
            flat,
            proportional_ppm: info.mediation_fee_ppm,
        },
        reveal_timeout: info.reveal_timeout,
    };
    let ledger = match v1::LedgerKind::try_from(info.ledger_kind) {
        Ok(v1::LedgerKind::Unspecified | v1::LedgerKind::Embedded) => AnnouncedLedger::Embedded,
        Ok(v1::LedgerKind::Ethereum) => AnnouncedLedger::Ethereum(ChainDeployment {
            contracts: DeployedContracts {
                domain: hub.domain,
                token: address("token_address", &info.token_address)?,
                secret_registry: address("secret_registry_address", &info.secret_registry_address)?,
                settlement_timeout: info.settlement_timeout,
            },
            start_block: info.start_block,
            confirmations: info.confirmations,
        }),
        Err(_) => {
            return Err(ClientError::HubMisbehaved(format!(
                "Hub.GetInfo names ledger kind {}, which this SDK does not know",
                info.ledger_kind
            )))
        }
    };
    Ok((hub, mediation, ledger))
}

/// Refuses options that do not fit the hub's ledger: an Ethereum hub needs the device's own
/// chain access, a hub with an embedded ledger must not be given one.
fn check_ledger_options(
    hub: &HubRecord,
    announced: &AnnouncedLedger,
    options: &ConnectOptions,
) -> Result<(), ClientError> {
    match (announced, options.chain()) {
        (AnnouncedLedger::Embedded, Some(_)) => Err(ClientError::ChainAccessUnexpected {
            hub: hub.hub_address,
        }),
        (AnnouncedLedger::Ethereum(_), None) => Err(ClientError::ChainAccessRequired {
            hub: hub.hub_address,
            chain_id: hub.domain.chain_id,
            token_network: hub.domain.token_network_address,
        }),
        _ => Ok(()),
    }
}

/// Builds the device's ledger for what the hub announces (after [`check_ledger_options`]).
async fn device_ledger(
    rpc: &Rpc,
    hub: &HubRecord,
    announced: &AnnouncedLedger,
    options: &ConnectOptions,
    store: &DeviceStore,
) -> Result<DeviceLedger, ClientError> {
    check_ledger_options(hub, announced, options)?;
    match (announced, options.chain()) {
        (AnnouncedLedger::Ethereum(deployment), Some(access)) => {
            let chain =
                ChainLedger::connect(access, deployment, rpc.signer(), store.clone()).await?;
            Ok(DeviceLedger::Ethereum(Box::new(chain)))
        }
        _ => Ok(DeviceLedger::Hub(HubLedger::new(rpc.clone()))),
    }
}

/// The device key in the key file `source` (decrypted when a keystore).
pub fn signer_from_key_file(source: &KeySource) -> Result<LocalSigner, ClientError> {
    let secret = source.load()?;
    Ok(LocalSigner::from_bytes(secret.as_slice())?)
}

impl Client {
    /// Connects to the hub at `endpoint` (e.g. `http://127.0.0.1:50051`), reads its info,
    /// authenticates as `signer`, and resumes from `store` (which must belong to the same key
    /// and hub). Unacknowledged payments in the store are re-sent before any new one.
    pub async fn connect(
        endpoint: &str,
        signer: LocalSigner,
        store: DeviceStore,
    ) -> Result<Client, ClientError> {
        Self::connect_with(endpoint, signer, store, &ConnectOptions::default()).await
    }

    /// As [`Client::connect`], with connection options: an `https://` endpoint needs the CA
    /// certificate of the hub (`ConnectOptions::new().ca_certificate(pem)`).
    pub async fn connect_with(
        endpoint: &str,
        signer: LocalSigner,
        store: DeviceStore,
        options: &ConnectOptions,
    ) -> Result<Client, ClientError> {
        match store.signer()? {
            Some(s) if s.address() != signer.address() => {
                return Err(ClientError::InvalidState(format!(
                    "the store holds the key of {}, not of {}",
                    s.address(),
                    signer.address()
                )))
            }
            Some(_) => {}
            // A key kept in a key file (`ConnectOptions::key_file`) stays out of the store.
            None if options.key().is_some() => {}
            None => store.put_signer(&signer).await?,
        }
        let rpc = Rpc::connect(endpoint, signer, options).await?;
        let (hub, mediation, announced) = hub_info(&rpc).await?;
        // A hub whose ledger does not fit the options is refused before the store changes.
        check_ledger_options(&hub, &announced, options)?;
        let fresh = store.hub()?.is_none() && store.channel()?.is_none();
        if let Some(h) = store.hub()? {
            if h.hub_address != hub.hub_address || h.domain != hub.domain {
                return Err(ClientError::InvalidState(format!(
                    "the store belongs to hub {} on chain {}, but {endpoint} is hub {} on chain {}",
                    h.hub_address, h.domain.chain_id, hub.hub_address, hub.domain.chain_id
                )));
            }
        }
        // On a chain: connects to the device's node and refuses a chain whose contracts are
        // not the ones the hub announces, before the store records the hub.
        let ledger = device_ledger(&rpc, &hub, &announced, options, &store).await?;
        store.put_hub(&hub).await?;
        rpc.set_hub_address(hub.hub_address);
        rpc.authenticate().await?;
        if let DeviceLedger::Hub(hub_ledger) = &ledger {
            if fresh && store.ledger_seq()? == 0 {
                // A new device has no history on the ledger: follow it from now on rather
                // than replaying every event since genesis (what makes a hub with many
                // devices slow). On a chain the follower starts at the announced start block.
                store
                    .put_ledger_seq(hub_ledger.last_event_seq().await?)
                    .await?;
            }
        }
        let channel = store.channel()?;
        let (shared, queue) = Shared::new(rpc, ledger, store, hub, mediation, channel);
        shared.spawn(move |s| payments::run(s, queue));
        shared.spawn(receiver::run);
        shared.spawn(watcher::run);
        shared.spawn(watcher::monitor);
        shared.spawn(mediation::events::run);
        shared.spawn(mediation::janitor::run);
        Ok(Client { shared })
    }

    /// Connects with the device key of `options`: from its key file if one is set
    /// ([`ConnectOptions::key_file`]: the store's key record is then not used, and the key
    /// never written into the store), else the key kept in the store, created from OS
    /// randomness on first use (as [`Client::connect_with_stored_key`]).
    pub async fn connect_with_options(
        endpoint: &str,
        store: DeviceStore,
        options: &ConnectOptions,
    ) -> Result<Client, ClientError> {
        let signer = match options.key() {
            Some(source) => signer_from_key_file(source)?,
            None => store.load_or_create_signer().await?,
        };
        Self::connect_with(endpoint, signer, store, options).await
    }

    /// Like [`Client::connect`] with the key kept in the store, created from OS randomness on
    /// first use.
    pub async fn connect_with_stored_key(
        endpoint: &str,
        store: DeviceStore,
    ) -> Result<Client, ClientError> {
        let signer = store.load_or_create_signer().await?;
        Self::connect(endpoint, signer, store).await
    }

    // ----- getters -----

    /// The device's address.
    pub fn address(&self) -> Address {
        self.shared.rpc.signer().address()
    }

    pub fn hub_address(&self) -> Address {
        self.shared.hub.hub_address
    }

    pub fn domain(&self) -> Domain {
        self.shared.hub.domain
    }

    /// The hub's settlement window, seconds.
    pub fn settlement_timeout(&self) -> u64 {
        self.shared.hub.settlement_timeout
    }

    /// The channel's id, if there is one (in any phase).
    pub fn channel_id(&self) -> Option<U256> {
        self.shared.channel().ok().flatten().map(|c| c.id())
    }

    /// A copy of the channel state machine.
    pub fn channel(&self) -> Result<Option<Channel>, ClientError> {
        self.shared.channel()
    }

    /// The channel as the device sees it.
    pub fn balances(&self) -> Result<Balances, ClientError> {
        let ch = self.shared.require_channel()?;
        Ok(Balances {
            channel_id: ch.id(),
            phase: ch.phase().name(),
            device: ch.our_address(),
            hub: ch.partner_address(),
            ours: ch.our_balance()?,
            hubs: ch.partner_balance()?,
            our_locked: ch.our().locked(),
            hub_locked: ch.partner().locked(),
            our_spendable: ch.our_distributable()?,
            our_deposit: ch.our().total_deposit,
            hub_deposit: ch.partner().total_deposit,
            our_withdraw: ch.our().total_withdraw,
            hub_withdraw: ch.partner().total_withdraw,
            our_transferred: ch.our().transferred(),
            hub_transferred: ch.partner().transferred(),
            our_nonce: ch.our().nonce(),
            hub_nonce: ch.partner().nonce(),
            unacked: self.shared.pending_count(),
        })
    }

    /// The connection to the hub as the device sees it: whether the hub answered since the
    /// last transport failure, and how many there were (a stopped hub shows up here within
    /// the keepalive interval plus its timeout, `ConnectOptions::keepalive`). Payments made
    /// meanwhile wait, unacknowledged, and are re-sent once the hub answers again.
    pub fn link(&self) -> tokio::sync::watch::Receiver<LinkState> {
        self.shared.rpc.link()
    }

    /// Payments the hub makes to the device, after they are checked and durable.
    pub fn hub_payments(&self) -> broadcast::Receiver<ReceivedPayment> {
        self.shared.hub_payments.subscribe()
    }

    /// The latest proofs both ways as JSON in the reference doc's vocabulary.
    pub fn export_proofs_json(&self) -> Result<String, ClientError> {
        ExportedProofs::new(&self.shared.require_channel()?)?.to_json()
    }

    // ----- ledger -----

    /// Dev faucet: credits `amount` test tokens to the device's ledger account.
    pub async fn mint(&self, amount: U256) -> Result<(), ClientError> {
        self.mint_to(self.address(), amount).await
    }

    /// Dev faucet: credits `amount` test tokens to `to`'s ledger account (e.g. the hub's, so
    /// that its auto-deposit can give devices receiving capacity on a test ledger). Only a
    /// hub with an embedded ledger has one ([`ClientError::FaucetEmbeddedOnly`] on a chain).
    pub async fn mint_to(&self, to: Address, amount: U256) -> Result<(), ClientError> {
        self.shared.ledger.mint(to, amount).await
    }

    /// Which ledger the device uses: `"embedded"` (the hub's) or `"ethereum"` (the chain,
    /// directly).
    pub fn ledger_kind(&self) -> &'static str {
        self.shared.ledger.kind()
    }

    /// `who`'s token balance on the ledger.
    pub async fn token_balance(&self, who: Address) -> Result<U256, ClientError> {
        crate::ledger::token_balance(&self.shared, who).await
    }

    /// The ledger's current time (unix seconds).
    pub async fn ledger_time(&self) -> Result<u64, ClientError> {
        crate::ledger::now(&self.shared).await
    }

    /// Makes sure there is an open channel with the hub holding at least `total_deposit` of
    /// the device's tokens: reuses the stored channel or one the ledger already has, otherwise
    /// opens one; then raises the device's cumulative deposit to `total_deposit` if lower.
    /// Returns the channel id.
    pub async fn open_channel(&self, total_deposit: U256) -> Result<U256, ClientError> {
        let shared = &self.shared;
        let me = self.address();
        let hub = self.hub_address();
        let channel_id = match shared.channel()? {
            Some(ch) if ch.phase() == ChannelPhase::Open => ch.id(),
            Some(ch) if ch.phase() != ChannelPhase::Settled => {
                return Err(ClientError::InvalidState(format!(
                    "channel {} is {}: settle it before opening a new one",
                    ch.id(),
                    ch.phase().name()
                )))
            }
            settled => {
                if let Some(old) = settled {
                    // Clearing the settled channel forgets the locks behind our old proofs;
                    // the monitor must have unlocked what the ledger keeps back of ours first.
                    let kept = shared.ledger.pending_unlocks(old.id()).await?;
                    if kept.iter().any(|k| k.sender == old.our_address()) {
                        return Err(ClientError::InvalidState(format!(
                            "channel {} settled but the ledger still keeps our locked tokens \
                             back for an unlock: the monitor submits it; open a new channel \
                             after",
                            old.id()
                        )));
                    }
                }
                let existing = self.find_ledger_channel().await?;
                let id = match existing {
                    Some(id) => id,
                    None => self.open_on_ledger().await?,
                };
                let mut ch = Channel::new(self.domain(), id, me, hub);
                if existing.is_some() {
                    ch = restore::from_hub(shared, ch).await?;
                }
                shared.set_channel(ch).await?;
                id
            }
        };
        let rec = crate::ledger::channel(shared, channel_id).await?;
        shared
            .update_channel(|ch| sync::apply_record(ch, &rec))
            .await?;
        if shared.require_channel()?.our().total_deposit < total_deposit {
            let op = LedgerOp::SetTotalDeposit {
                channel_id,
                participant: me,
                total_deposit,
            };
            let events = crate::ledger::execute(shared, &op).await?;
            ops::apply_events(shared, events).await?;
        }
        Ok(channel_id)
    }

    /// Tops up: raises the device's deposit in its open channel by `additional` tokens from
    /// its ledger account, while payments go on. The hub sees the new capacity at once (it
    /// catches up with the ledger before refusing a payment for lack of balance). Refused
    /// without touching the ledger when there is no open channel, `additional` is zero or the
    /// device holds too few tokens. Returns the new cumulative deposit.
    pub async fn deposit(&self, additional: U256) -> Result<U256, ClientError> {
        ops::deposit(&self.shared, additional).await
    }

    async fn find_ledger_channel(&self) -> Result<Option<U256>, ClientError> {
        let me = self.address();
        let hub = self.hub_address();
        let channels = self.shared.ledger.channels_of(me).await?;
        Ok(channels
            .into_iter()
            .find(|rec| rec.phase == LedgerPhase::Opened && rec.partner_of(me) == Some(hub))
            .map(|rec| rec.id))
    }

    async fn open_on_ledger(&self) -> Result<U256, ClientError> {
        self.shared.ledger.open_channel(self.hub_address()).await
    }

    // ----- payments -----

    /// Pays the hub `amount`; resolves once the hub acknowledged it (after its fsync). Many
    /// calls may be in flight at once; they are sent in order on one stream. Across a hub
    /// restart or a dropped stream the proof is re-sent and the call resolves on its ack.
    pub async fn pay(&self, amount: U256) -> Result<PaymentReceipt, ClientError> {
        let rx = self.shared.enqueue_payment(amount).await?;
        let acked = rx.await.map_err(|_| ClientError::Shutdown)??;
        Ok(acked.receipt)
    }

    // ----- mediated payments -----

    /// The hub's mediation fee and reveal timeout (from `Hub.GetInfo` at connect).
    pub fn mediation_info(&self) -> MediationInfo {
        self.shared.mediation
    }

    /// Replaces the device's choices for mediated payments (lock lifetime as a payer, reveal
    /// margin as a payee); unset fields default from the hub's reveal timeout.
    pub fn set_mediation_options(&self, options: MediationOptions) {
        self.shared.set_options(options);
    }

    /// Payee: a signed request for `amount` (what the device wants to receive; the payer pays
    /// the hub's fee on top) with the app's `payment_id`, valid for `valid_for_secs` of
    /// ledger time. Its new random secret is stored durably with it before it is returned.
    /// Hand it to the payer out of band (e.g. a QR code); the device reveals the secret only
    /// for a lock that pays it in full, and publishes the payment on
    /// [`Client::mediated_payments`] once the hub's unlock is durable.
    pub async fn create_payment_request(
        &self,
        amount: U256,
        payment_id: u64,
        valid_for_secs: u64,
    ) -> Result<SignedPaymentRequest, ClientError> {
        mediation::payee::create_request(
            &self.shared,
            amount,
            payment_id,
            valid_for_secs,
            H256::ZERO,
        )
        .await
    }

    /// Payee: the mediated payments the device receives, each published once the hub's
    /// unlock is checked and durable.
    pub fn mediated_payments(&self) -> broadcast::Receiver<MediatedPayment> {
        self.shared.mediated_payments.subscribe()
    }

    /// Payer: pays another device's `request` through the hub. Checks the request (this
    /// hub's ledger, signed by its payee, not expired) and refuses one this store already
    /// paid or is paying; locks amount + the hub's quoted fee toward the hub (durable, on the
    /// ordered Pay stream, so calls may run concurrently), then waits for the outcome.
    ///
    /// Returns the receipt once the payee revealed its secret and the hub acknowledged our
    /// unlock. Fails with [`ClientError::PayeeOffline`], [`ClientError::NoCapacity`] or
    /// [`ClientError::MediationRefused`] when the hub does not forward,
    /// [`ClientError::TransferFailed`] when the hub reports a failure, and
    /// [`ClientError::Expired`] when our lock expired first; in each case the lock is taken
    /// back by itself once it expires. It waits as long as the hub is unreachable; wrap it in
    /// a timeout if needed (dropping the call does not cancel the payment, which completes
    /// or expires in the background).
    pub async fn pay_request(
        &self,
        request: &SignedPaymentRequest,
    ) -> Result<MediatedReceipt, ClientError> {
        mediation::payer::pay_request(&self.shared, request).await
    }

    /// Payer: what paying `request` through the hub would cost now, and whether the hub can
    /// forward it (the payee online with a channel, the hub's capacity toward it). Signs and
    /// changes nothing; a refusal is the error `pay_request` would give.
    pub async fn quote(&self, request: &SignedPaymentRequest) -> Result<Quote, ClientError> {
        let now = self.ledger_time().await?;
        mediation::payer::quote(&self.shared, request, now).await
    }

    /// Payer: the receipt of a request this store paid, if the payment completed (e.g. to
    /// recover it after a restart interrupted `pay_request`).
    pub fn mediated_receipt(
        &self,
        request: &SignedPaymentRequest,
    ) -> Result<Option<MediatedReceipt>, ClientError> {
        let record = self.shared.store.outgoing(&request.request.secrethash)?;
        Ok(record
            .filter(|t| t.request == *request)
            .and_then(|t| t.outcome())
            .and_then(Result::ok))
    }

    // ----- ways out -----

    /// Withdraws `amount` to the device's ledger account with the hub's co-signature; the
    /// channel stays open. Returns the new cumulative withdraw.
    pub async fn withdraw(&self, amount: U256) -> Result<U256, ClientError> {
        ops::withdraw(&self.shared, amount).await
    }

    /// Both sides take their whole balance and the channel settles at once. Fails while
    /// payments are waiting for their acknowledgement.
    pub async fn cooperative_close(&self) -> Result<Settlement, ClientError> {
        ops::cooperative_close(&self.shared).await
    }

    /// Closes on the ledger with the hub's latest proof, without the hub. Returns the ledger
    /// time after which [`Client::settle`] succeeds.
    pub async fn close(&self) -> Result<u64, ClientError> {
        ops::close(&self.shared).await
    }

    /// Waits for the settlement window to pass and settles. `None` if the channel was already
    /// settled by someone else (e.g. the hub).
    pub async fn settle(&self) -> Result<Option<Settlement>, ClientError> {
        ops::settle(&self.shared).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use channel_core::primitives::Address;

    use super::*;
    use crate::ledger::ChainAccess;

    fn hub() -> HubRecord {
        HubRecord {
            hub_address: Address([7; 20]),
            domain: Domain {
                chain_id: U256::from(31_337u64),
                token_network_address: Address([8; 20]),
            },
            settlement_timeout: 100,
        }
    }

    fn ethereum() -> AnnouncedLedger {
        AnnouncedLedger::Ethereum(ChainDeployment {
            contracts: DeployedContracts {
                domain: hub().domain,
                token: Address([9; 20]),
                secret_registry: Address([10; 20]),
                settlement_timeout: 100,
            },
            start_block: 3,
            confirmations: 1,
        })
    }

    #[test]
    fn an_ethereum_hub_needs_the_devices_own_chain_access() {
        let err = check_ledger_options(&hub(), &ethereum(), &ConnectOptions::new()).unwrap_err();
        assert!(
            matches!(err, ClientError::ChainAccessRequired { hub: h, .. } if h == hub().hub_address),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("own RPC URL"), "{text}");
        assert!(text.contains("31337"), "{text}");
        let with = ConnectOptions::new().chain_access(ChainAccess::new("http://127.0.0.1:8545"));
        check_ledger_options(&hub(), &ethereum(), &with).unwrap();
    }

    #[test]
    fn chain_access_for_an_embedded_hub_is_refused() {
        let with = ConnectOptions::new().chain_access(ChainAccess::new("http://127.0.0.1:8545"));
        let err = check_ledger_options(&hub(), &AnnouncedLedger::Embedded, &with).unwrap_err();
        assert!(
            matches!(err, ClientError::ChainAccessUnexpected { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("embedded ledger"), "{err}");
        check_ledger_options(&hub(), &AnnouncedLedger::Embedded, &ConnectOptions::new()).unwrap();
    }
}
