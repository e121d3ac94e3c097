//! The payee's (metering side's) session driver: offer, publish readings with their bills,
//! learn which bills were paid, stop, and exchange the receipt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use channel_core::crypto::{keccak256, Signer};
use channel_core::primitives::{Address, H256, U256};
use channel_core::session::{
    Delivery, PayeeSession, Publication, SessionOffer, SignedSessionReceipt, StopReason,
};
use channel_core::LocalSigner;
use rand::RngCore;
use tokio::sync::watch;
use voltlane_proto::convert::address_bytes;
use voltlane_proto::convert::sessions::ReceiptPart;
use voltlane_proto::v1;

use super::watch::{run as watch_session, sign_receipt, Event, Side};
use super::{unix_now, SessionTerms};
use crate::error::ClientError;
use crate::mediation::payee::create_request;
use crate::shared::Shared;
use crate::store::sessions::PayeeSessionRecord;
use crate::store::IncomingState;

/// How often bills are reconciled with the payment records even without a payment event.
const RECONCILE_EVERY: Duration = Duration::from_secs(1);

/// Where a payee session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayeeStatus {
    pub payer: Option<Address>,
    pub delivered_units: u64,
    pub paid_units: u64,
    pub paid_amount: U256,
    /// Delivered and not paid (billed or not).
    pub unpaid_units: u64,
    /// How many more units may be delivered now.
    pub headroom_units: u64,
    pub ended: Option<StopReason>,
    /// Whether the payer is watching the session (connected).
    pub payer_watching: bool,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    id: H256,
    meter: LocalSigner,
    bill_valid_secs: u64,
    record: tokio::sync::Mutex<PayeeSessionRecord>,
    /// Bumped on every change the app may wait for.
    changed: watch::Sender<u64>,
    payer_part: Mutex<Option<ReceiptPart>>,
    payer_watching: Mutex<bool>,
}

/// The payee's handle on one session. Cheap to clone; the session's background work stops
/// with the [`Client`](crate::Client).
#[derive(Clone, Debug)]
pub struct PayeeHandle {
    inner: Arc<Inner>,
}

fn fresh_session_id() -> Result<H256, ClientError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| ClientError::InvalidState(format!("no OS randomness: {e}")))?;
    Ok(H256(bytes))
}

impl PayeeHandle {
    /// Signs an offer on `terms` (readings signed by `meter`), stores the session and opens
    /// it on the hub.
    pub(crate) async fn create(
        shared: Arc<Shared>,
        terms: SessionTerms,
        meter: LocalSigner,
    ) -> Result<Self, ClientError> {
        let now = crate::ledger::now(&shared).await?;
        let offer = SessionOffer {
            domain: shared.hub.domain,
            session_id: fresh_session_id()?,
            payee: shared.rpc.signer().address(),
            meter_key: meter.address(),
            unit: terms.unit,
            price_per_unit: terms.price_per_unit,
            credit_window_units: terms.credit_window_units,
            max_units: terms.max_units,
            max_units_per_hour: terms.max_units_per_hour,
            expires_at: now.saturating_add(terms.offer_valid_secs),
        }
        .sign(shared.rpc.signer())?;
        let transaction_id = terms
            .transaction_id
            .as_deref()
            .map_or(H256::ZERO, |t| keccak256(t.as_bytes()));
        let session =
            PayeeSession::start(offer.offer, transaction_id, terms.meter_start, unix_now());
        let record = PayeeSessionRecord {
            offer,
            session,
            payer: None,
            latest: None,
            receipt: None,
        };
        shared.store.put_payee_session(&record).await?;
        let handle = Self::with_record(shared, record, meter, terms.bill_valid_secs);
        handle.reopen().await?;
        handle.spawn_drivers();
        Ok(handle)
    }

    /// Resumes session `id` from the store (after a restart): reopens it on the hub and
    /// publishes the latest reading again.
    pub(crate) async fn resume(
        shared: Arc<Shared>,
        id: H256,
        meter: LocalSigner,
        bill_valid_secs: u64,
    ) -> Result<Self, ClientError> {
        let record = shared
            .store
            .payee_session(&id)?
            .ok_or(ClientError::UnknownSession(id))?;
        if record.offer.offer.meter_key != meter.address() {
            return Err(ClientError::InvalidState(format!(
                "session {id} is metered by {}, not by {}",
                record.offer.offer.meter_key,
                meter.address()
            )));
        }
        let handle = Self::with_record(shared, record, meter, bill_valid_secs);
        handle.reconcile().await?;
        handle.spawn_drivers();
        Ok(handle)
    }

    fn with_record(
        shared: Arc<Shared>,
        record: PayeeSessionRecord,
        meter: LocalSigner,
        bill_valid_secs: u64,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                id: record.offer.offer.session_id,
                meter,
                bill_valid_secs,
                record: tokio::sync::Mutex::new(record),
                changed: watch::channel(0).0,
                payer_part: Mutex::new(None),
                payer_watching: Mutex::new(false),
            }),
        }
    }

    fn bump(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn id(&self) -> H256 {
        self.inner.id
    }

    pub async fn offer(&self) -> channel_core::session::SignedSessionOffer {
        self.inner.record.lock().await.offer
    }

    pub async fn status(&self) -> PayeeStatus {
        let r = self.inner.record.lock().await;
        let s = &r.session;
        PayeeStatus {
            payer: r.payer,
            delivered_units: s.delivered_units(),
            paid_units: s.paid_units(),
            paid_amount: s.paid_amount(),
            unpaid_units: s.unpaid_units(),
            headroom_units: s.headroom(),
            ended: s.ended(),
            payer_watching: self.inner.payer_watching.lock().is_ok_and(|w| *w),
        }
    }

    /// Waits until a payer accepted the session (its meter start is then published).
    pub async fn wait_accepted(&self, timeout: Duration) -> Result<Address, ClientError> {
        self.wait_for(timeout, "no payer accepted the session", |s| s.payer)
            .await
    }

    /// Waits until at least `units` are paid.
    pub async fn wait_paid(&self, units: u64, timeout: Duration) -> Result<(), ClientError> {
        self.wait_for(timeout, &format!("{units} units were not paid"), |s| {
            (s.paid_units >= units).then_some(())
        })
        .await
    }

    /// Waits until units may be delivered again (a payment came in) or the session ended;
    /// returns the headroom (zero once ended).
    pub async fn wait_headroom(&self, timeout: Duration) -> Result<u64, ClientError> {
        self.wait_for(timeout, "no payment made room in the credit window", |s| {
            (s.headroom_units > 0 || s.ended.is_some()).then_some(s.headroom_units)
        })
        .await
    }

    async fn wait_for<T>(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&PayeeStatus) -> Option<T>,
    ) -> Result<T, ClientError> {
        let mut changes = self.inner.changed.subscribe();
        let wait = async {
            loop {
                changes.mark_unchanged();
                if let Some(t) = done(&self.status().await) {
                    return Ok(t);
                }
                changes.changed().await.map_err(|_| ClientError::Shutdown)?;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| ClientError::SessionTimeout {
                session: self.inner.id,
                what: what.to_string(),
            })?
    }

    /// Records the meter's `register` now, publishes the signed reading with the bill for
    /// its unbilled units, and says whether to keep delivering ([`Delivery::Continue`] with
    /// how many more units, or [`Delivery::Stop`]). Refuses a register going backwards and
    /// any reading after the end, changing nothing.
    pub async fn record(&self, register: u64) -> Result<Delivery, ClientError> {
        let mut r = self.inner.record.lock().await;
        if r.payer.is_none() {
            return Err(ClientError::InvalidState(format!(
                "session {}: no payer has accepted yet (wait_accepted first)",
                self.inner.id
            )));
        }
        let mut next = r.session.clone();
        let delivery = next.record_delivery(register, unix_now())?;
        r.session = next;
        self.publish_locked(&mut r).await?;
        self.bump();
        Ok(delivery)
    }

    /// Ends the session (e.g. the car unplugged) and publishes the final reading with the
    /// bill for whatever it shows unbilled.
    pub async fn stop(&self, reason: StopReason) -> Result<(), ClientError> {
        let mut r = self.inner.record.lock().await;
        let already_final = r.session.final_reading().is_some();
        r.session.stop(reason);
        if r.payer.is_some() && !already_final {
            self.publish_locked(&mut r).await?;
        } else {
            self.inner.shared.store.put_payee_session(&r).await?;
        }
        self.bump();
        Ok(())
    }

    /// Stops the session if it runs, then exchanges the receipt: signs ours once the payer's
    /// signed receipt equals it (or, without one, once no bill is outstanding), and returns
    /// the receipt signed by both. Waits at most `timeout`.
    pub async fn finish(&self, timeout: Duration) -> Result<SignedSessionReceipt, ClientError> {
        if self.status().await.ended.is_none() {
            self.stop(StopReason::Local).await?;
        }
        let mut changes = self.inner.changed.subscribe();
        let mut signed_ours: Option<channel_core::session::SessionReceipt> = None;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changes.mark_unchanged();
            let (ours, payer, settled) = {
                let r = self.inner.record.lock().await;
                if let Some(done) = r.receipt {
                    return Ok(done);
                }
                let payer = r.payer.ok_or_else(|| {
                    ClientError::InvalidState("no payer ever accepted the session".into())
                })?;
                let ours = r.session.receipt(payer).ok_or_else(|| {
                    ClientError::InvalidState("the session never published a reading".into())
                })?;
                (ours, payer, r.session.bills().is_empty())
            };
            let theirs = self.inner.payer_part.lock().ok().and_then(|p| *p);
            let matching = theirs.filter(|p| p.receipt.check_matches(&ours).is_ok());
            if (matching.is_some() || settled) && signed_ours != Some(ours) {
                sign_receipt(&self.inner.shared, &ours).await?;
                signed_ours = Some(ours);
            }
            if let Some(theirs) = matching {
                let receipt = SignedSessionReceipt {
                    receipt: ours,
                    payer_signature: theirs.signature,
                    payee_signature: ours.sign_part(self.inner.shared.rpc.signer())?,
                };
                receipt.verify()?;
                let mut r = self.inner.record.lock().await;
                r.receipt = Some(receipt);
                self.inner.shared.store.put_payee_session(&r).await?;
                return Ok(receipt);
            }
            let _ = payer;
            let wait = tokio::time::timeout_at(deadline, changes.changed()).await;
            match wait {
                Ok(changed) => changed.map_err(|_| ClientError::Shutdown)?,
                Err(_) => {
                    let what = match theirs {
                        Some(p) => match p.receipt.check_matches(&ours) {
                            Err(e) => format!("the payer's receipt differs: {e}"),
                            Ok(()) => "receipt exchange did not complete".into(),
                        },
                        None => "the payer did not sign the receipt".into(),
                    };
                    return Err(ClientError::SessionTimeout {
                        session: self.inner.id,
                        what,
                    });
                }
            }
        }
    }

    /// Publishes the next reading of `r` (and its bill), durable first. A hub that cannot
    /// be reached now gets it from the watch loop's republish after the reconnect.
    async fn publish_locked(&self, r: &mut PayeeSessionRecord) -> Result<(), ClientError> {
        let shared = &self.inner.shared;
        let reading = r.session.publish_reading();
        let signed = reading.sign(&self.inner.meter)?;
        let units = r.session.unbilled_units();
        let bill = if units > 0 {
            let price = r.offer.offer.price_per_unit;
            let amount = price
                .checked_mul(U256::from(units))
                .ok_or(channel_core::session::SessionError::AmountOverflow { units, price })?;
            let request = create_request(
                shared,
                amount,
                reading.seq,
                self.inner.bill_valid_secs,
                reading.hash(),
            )
            .await?;
            r.session.record_bill(
                request.request.secrethash,
                units,
                request.request.expires_at,
            )?;
            Some(request)
        } else {
            None
        };
        let publication = Publication {
            reading: signed,
            bill,
        };
        r.latest = Some(publication);
        shared.store.put_payee_session(r).await?;
        match publish(shared, &publication).await {
            Ok(()) => Ok(()),
            Err(e) if is_transient(&e) => {
                tracing::debug!(session = %self.inner.id, error = %e, "publish deferred to the reconnect");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Opens (or reopens) the session on the hub, for its payer if one accepted.
    async fn reopen(&self) -> Result<(), ClientError> {
        let (offer, payer) = {
            let r = self.inner.record.lock().await;
            (r.offer, r.payer)
        };
        let req = v1::OpenSessionRequest {
            offer: Some((&offer).into()),
            payer: payer.as_ref().map(address_bytes).unwrap_or_default(),
        };
        self.inner
            .shared
            .rpc
            .call("Sessions.OpenSession", move |mut c| {
                let req = req.clone();
                async move { c.sessions.open_session(req).await }
            })
            .await?;
        Ok(())
    }

    fn spawn_drivers(&self) {
        let watcher = self.clone();
        self.inner.shared.spawn(move |_| watch_session(watcher));
        let reconciler = self.clone();
        self.inner
            .shared
            .spawn(move |_| async move { reconciler.reconcile_loop().await });
    }

    async fn handle_event(&self, event: Event) -> Result<(), ClientError> {
        match event {
            Event::Accepted(payer) => {
                let mut r = self.inner.record.lock().await;
                match r.payer {
                    Some(p) if p != payer => {
                        return Err(ClientError::HubMisbehaved(format!(
                            "hub says {payer} accepted session {}, which {p} holds",
                            self.inner.id
                        )))
                    }
                    Some(_) => {
                        // The payer is back (e.g. after a hub restart): make sure the relay
                        // has our latest reading and bill (a repeat is harmless).
                        if let Some(p) = r.latest {
                            publish(&self.inner.shared, &p).await?;
                        }
                    }
                    None => {
                        r.payer = Some(payer);
                        // The meter start: nothing is due for it.
                        self.publish_locked(&mut r).await?;
                    }
                }
            }
            Event::Receipt(part) => {
                let hash = part.receipt.signing_hash();
                channel_core::crypto::verify_signer(&hash, &part.signature, part.receipt.payer)
                    .map_err(|e| {
                        ClientError::HubMisbehaved(format!("payer's receipt signature: {e}"))
                    })?;
                if let Ok(mut slot) = self.inner.payer_part.lock() {
                    *slot = Some(part);
                }
            }
            Event::Presence(watching) => {
                if let Ok(mut w) = self.inner.payer_watching.lock() {
                    *w = watching;
                }
            }
            Event::Publication(_) => {
                return Err(ClientError::HubMisbehaved(
                    "a publication was sent to the payee".into(),
                ))
            }
        }
        self.bump();
        Ok(())
    }

    /// Applies paid and failed bills whenever a mediated payment arrives, and every second.
    async fn reconcile_loop(self) {
        let mut payments = self.inner.shared.mediated_payments.subscribe();
        let mut tick = tokio::time::interval(RECONCILE_EVERY);
        loop {
            tokio::select! {
                _ = payments.recv() => {}
                _ = tick.tick() => {}
            }
            if let Err(e) = self.reconcile().await {
                tracing::debug!(session = %self.inner.id, error = %e, "bill reconcile failed");
            }
        }
    }

    /// Bills whose request the store marks paid are paid; bills expired at ledger time
    /// with no lock pending for them failed (their units are billed again next reading).
    async fn reconcile(&self) -> Result<(), ClientError> {
        let shared = &self.inner.shared;
        let mut r = self.inner.record.lock().await;
        if r.session.bills().is_empty() {
            return Ok(());
        }
        let mut changed = false;
        let bills: Vec<_> = r.session.bills().to_vec();
        let mut now = None;
        for bill in bills {
            let paid = shared
                .store
                .payment_request(&bill.secrethash)?
                .is_some_and(|p| p.paid_nonce.is_some());
            if paid {
                r.session.handle_bill_paid(bill.secrethash)?;
                changed = true;
                continue;
            }
            let now = match now {
                Some(n) => n,
                None => *now.insert(crate::ledger::now(shared).await?),
            };
            if now < bill.expires_at {
                continue;
            }
            let pending = shared.store.incoming(&bill.secrethash)?.is_some_and(|t| {
                matches!(
                    t.state,
                    IncomingState::Held | IncomingState::Revealing | IncomingState::Revealed
                )
            });
            if !pending {
                r.session.handle_bill_failed(bill.secrethash)?;
                changed = true;
            }
        }
        if changed {
            shared.store.put_payee_session(&r).await?;
            drop(r);
            self.bump();
        }
        Ok(())
    }
}

async fn publish(shared: &Shared, p: &Publication) -> Result<(), ClientError> {
    let msg = v1::SessionPublication::from(p);
    shared
        .rpc
        .call("Sessions.Publish", move |mut c| {
            let msg = msg.clone();
            async move { c.sessions.publish(msg).await }
        })
        .await?;
    Ok(())
}

/// Whether `e` is the hub being away (retried by the watch loop) rather than a refusal.
fn is_transient(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(tonic::Code::Unavailable | tonic::Code::NotFound | tonic::Code::DeadlineExceeded)
    ) || matches!(e, ClientError::Connect { .. })
}

impl Side for PayeeHandle {
    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    fn session_id(&self) -> H256 {
        self.inner.id
    }

    /// Reopens the session (for its payer) and republishes the latest reading and bill.
    async fn reconnect(&self) -> Result<(), ClientError> {
        self.reopen().await?;
        let latest = self.inner.record.lock().await.latest;
        if let Some(p) = latest {
            if let Err(e) = publish(&self.inner.shared, &p).await {
                tracing::debug!(session = %self.inner.id, error = %e, "republish failed");
            }
        }
        Ok(())
    }

    async fn on_event(&self, event: Event) -> Result<(), ClientError> {
        self.handle_event(event).await
    }
}
