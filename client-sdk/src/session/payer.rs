//! The payer's session driver: accept, check every reading and bill, pay exactly what a
//! valid reading shows, resume payments after a restart, and exchange the receipt.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use channel_core::mediation::SignedPaymentRequest;
use channel_core::primitives::{H256, U256};
use channel_core::session::{
    PayerLimits, PayerSession, Publication, SessionError, SignedSessionOffer, SignedSessionReceipt,
    StopReason,
};
use channel_core::Signer;
use tokio::sync::{broadcast, watch};
use voltlane_proto::convert::sessions::ReceiptPart;
use voltlane_proto::v1;

use super::unix_now;
use super::watch::{run as watch_session, sign_receipt, Event, Side};
use crate::error::ClientError;
use crate::mediation::payer::{pay_request, wait_outcome};
use crate::shared::Shared;
use crate::store::sessions::PayerSessionRecord;
use crate::MediatedReceipt;

/// Updates a payer app can show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayerUpdate {
    /// A reading was accepted (its meter signature, session, seq, register, timestamp and
    /// rate checked).
    Reading {
        seq: u64,
        /// The reading's hash: what the payment for it commits to.
        hash: H256,
        /// When the meter read it (unix seconds).
        timestamp: u64,
        /// Units metered since the meter start.
        metered_units: u64,
        /// Units no payment covers yet.
        due_units: u64,
    },
    /// A payment completed.
    Paid {
        units: u64,
        amount: U256,
        paid_units: u64,
        paid_amount: U256,
    },
    /// A payment failed; its units are due again with the next reading.
    PaymentFailed { units: u64, reason: String },
    /// A reading or a bill was refused and not paid.
    Refused(SessionError),
    /// The payee's reading said the session ended.
    Ended(StopReason),
    /// Whether the payee is watching the session (connected).
    PayeePresence(bool),
}

/// Where a payer session stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayerStatus {
    pub metered_units: u64,
    pub paid_units: u64,
    pub paid_amount: U256,
    pub in_flight_units: u64,
    pub budget_units: u64,
    pub ended: Option<StopReason>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    id: H256,
    record: tokio::sync::Mutex<PayerSessionRecord>,
    changed: watch::Sender<u64>,
    updates: broadcast::Sender<PayerUpdate>,
    payee_part: Mutex<Option<ReceiptPart>>,
}

/// The payer's handle on one session. Cheap to clone; the session's background work stops
/// with the [`Client`](crate::Client).
#[derive(Clone, Debug)]
pub struct PayerHandle {
    inner: Arc<Inner>,
}

const UPDATE_BUFFER: usize = 1024;

impl PayerHandle {
    /// Claims session `id` on the hub, checks its offer against this hub's ledger, and
    /// stores the session with `limits` before following it.
    pub(crate) async fn accept(
        shared: Arc<Shared>,
        id: H256,
        limits: PayerLimits,
    ) -> Result<Self, ClientError> {
        if shared.store.payer_session(&id)?.is_some() {
            return Err(ClientError::InvalidState(format!(
                "session {id} is already in this store: resume it instead"
            )));
        }
        let offer = accept_on_hub(&shared, id).await?;
        let now = crate::ledger::now(&shared).await?;
        let session = PayerSession::accept(
            &offer,
            &shared.hub.domain,
            shared.rpc.signer().address(),
            limits,
            now,
        )?;
        let record = PayerSessionRecord {
            offer,
            session,
            bills: Vec::new(),
            receipt: None,
        };
        shared.store.put_payer_session(&record).await?;
        let handle = Self::with_record(shared, record);
        handle.spawn_watch();
        Ok(handle)
    }

    /// Resumes session `id` from the store: follows it again and completes the payments
    /// begun before the restart.
    pub(crate) async fn resume(shared: Arc<Shared>, id: H256) -> Result<Self, ClientError> {
        let record = shared
            .store
            .payer_session(&id)?
            .ok_or(ClientError::UnknownSession(id))?;
        let bills = record.bills.clone();
        let handle = Self::with_record(shared, record);
        for bill in bills {
            handle.spawn_payment(bill);
        }
        handle.spawn_watch();
        Ok(handle)
    }

    fn with_record(shared: Arc<Shared>, record: PayerSessionRecord) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                id: record.offer.offer.session_id,
                record: tokio::sync::Mutex::new(record),
                changed: watch::channel(0).0,
                updates: broadcast::channel(UPDATE_BUFFER).0,
                payee_part: Mutex::new(None),
            }),
        }
    }

    pub fn id(&self) -> H256 {
        self.inner.id
    }

    pub async fn offer(&self) -> SignedSessionOffer {
        self.inner.record.lock().await.offer
    }

    /// What happens in the session, as it happens.
    pub fn updates(&self) -> broadcast::Receiver<PayerUpdate> {
        self.inner.updates.subscribe()
    }

    pub async fn status(&self) -> PayerStatus {
        let r = self.inner.record.lock().await;
        let s = &r.session;
        PayerStatus {
            metered_units: s.metered_units(),
            paid_units: s.paid_units(),
            paid_amount: s.paid_amount(),
            in_flight_units: s.in_flight_units(),
            budget_units: s.budget_units(),
            ended: s.ended(),
        }
    }

    fn notify(&self, update: PayerUpdate) {
        let _ = self.inner.updates.send(update);
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Stops paying: later readings are refused (the payee stops within its credit window).
    pub async fn stop(&self, reason: StopReason) -> Result<(), ClientError> {
        let mut r = self.inner.record.lock().await;
        r.session.stop(reason);
        self.inner.shared.store.put_payer_session(&r).await?;
        drop(r);
        self.notify(PayerUpdate::Ended(reason));
        Ok(())
    }

    /// Stops (if running), waits for the payments in flight, signs the receipt of what was
    /// paid, and returns it once the payee signed the same receipt. Waits at most `timeout`.
    pub async fn finish(&self, timeout: Duration) -> Result<SignedSessionReceipt, ClientError> {
        if self.status().await.ended.is_none() {
            self.stop(StopReason::Local).await?;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.inner.changed.subscribe();
        let mut signed = None;
        loop {
            changes.mark_unchanged();
            let (ours, in_flight) = {
                let r = self.inner.record.lock().await;
                if let Some(done) = r.receipt {
                    return Ok(done);
                }
                let ours = r.session.receipt().ok_or_else(|| {
                    ClientError::InvalidState("the session never had a reading".into())
                })?;
                (ours, r.session.in_flight_units())
            };
            if in_flight == 0 && signed != Some(ours) {
                sign_receipt(&self.inner.shared, &ours).await?;
                signed = Some(ours);
            }
            let theirs = self.inner.payee_part.lock().ok().and_then(|p| *p);
            if let (Some(part), Some(mine)) = (theirs, signed) {
                if part.receipt.check_matches(&mine).is_ok() {
                    let receipt = SignedSessionReceipt {
                        receipt: mine,
                        payer_signature: mine.sign_part(self.inner.shared.rpc.signer())?,
                        payee_signature: part.signature,
                    };
                    receipt.verify()?;
                    let mut r = self.inner.record.lock().await;
                    r.receipt = Some(receipt);
                    self.inner.shared.store.put_payer_session(&r).await?;
                    return Ok(receipt);
                }
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let what = match theirs {
                    Some(p) => match p.receipt.check_matches(&ours) {
                        Err(e) => format!("the payee's receipt differs: {e}"),
                        Ok(()) => "receipt exchange did not complete".into(),
                    },
                    None if in_flight > 0 => format!("{in_flight} units still being paid"),
                    None => "the payee did not sign the receipt".into(),
                };
                return Err(ClientError::SessionTimeout {
                    session: self.inner.id,
                    what,
                });
            }
        }
    }

    fn spawn_watch(&self) {
        let me = self.clone();
        self.inner.shared.spawn(move |_| watch_session(me));
    }

    fn spawn_payment(&self, bill: SignedPaymentRequest) {
        let me = self.clone();
        self.inner
            .shared
            .spawn(move |_| async move { me.pay(bill).await });
    }

    async fn handle_event(&self, event: Event) -> Result<(), ClientError> {
        match event {
            Event::Publication(p) => self.on_publication(p).await,
            Event::Receipt(part) => {
                let r = &part.receipt;
                channel_core::crypto::verify_signer(&r.signing_hash(), &part.signature, r.payee)
                    .map_err(|e| {
                        ClientError::HubMisbehaved(format!("payee's receipt signature: {e}"))
                    })?;
                if let Ok(mut slot) = self.inner.payee_part.lock() {
                    *slot = Some(part);
                }
                self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
                Ok(())
            }
            Event::Presence(watching) => {
                self.notify(PayerUpdate::PayeePresence(watching));
                Ok(())
            }
            Event::Accepted(_) => Err(ClientError::HubMisbehaved(
                "an acceptance was sent to the payer".into(),
            )),
        }
    }

    /// Checks the reading (unless it is one already handled), then the bill, and pays it.
    /// A refusal is reported and nothing is paid.
    async fn on_publication(&self, p: Publication) -> Result<(), ClientError> {
        let shared = &self.inner.shared;
        let mut r = self.inner.record.lock().await;
        if !r.session.is_replay(&p.reading) {
            let ended_before = r.session.ended();
            match r.session.handle_reading(&p.reading, unix_now()) {
                Ok(due) => {
                    self.notify(PayerUpdate::Reading {
                        seq: due.reading_seq,
                        hash: due.additional_hash,
                        timestamp: p.reading.reading.timestamp,
                        metered_units: due.metered_units,
                        due_units: due.units,
                    });
                    if let (None, Some(reason)) = (ended_before, r.session.ended()) {
                        self.notify(PayerUpdate::Ended(reason));
                    }
                }
                Err(e) => {
                    if matches!(e, SessionError::Ended(_)) {
                        // Readings after our own stop are expected until the payee stops.
                        tracing::debug!(session = %self.inner.id, error = %e, "reading after the end");
                    } else {
                        tracing::warn!(session = %self.inner.id, error = %e, "reading refused");
                    }
                    self.notify(PayerUpdate::Refused(e));
                    return Ok(());
                }
            }
        }
        let Some(bill) = p.bill else {
            shared.store.put_payer_session(&r).await?;
            return Ok(());
        };
        let key = bill.request.secrethash;
        let known = r.session.in_flight().iter().any(|f| f.key == key)
            || shared.store.outgoing(&key)?.is_some();
        if known {
            shared.store.put_payer_session(&r).await?;
            return Ok(());
        }
        let units = match r.session.check_bill(&bill, unix_now()) {
            Ok(units) => units,
            Err(e) => {
                tracing::warn!(session = %self.inner.id, error = %e, "bill refused");
                shared.store.put_payer_session(&r).await?;
                self.notify(PayerUpdate::Refused(e));
                return Ok(());
            }
        };
        r.session.begin_payment(key, units)?;
        r.bills.push(bill);
        shared.store.put_payer_session(&r).await?;
        drop(r);
        self.spawn_payment(bill);
        Ok(())
    }

    /// Pays `bill` (or waits for the payment begun before a restart) and records the
    /// outcome.
    async fn pay(self, bill: SignedPaymentRequest) {
        let key = bill.request.secrethash;
        let outcome = pay_or_resume(&self.inner.shared, &bill).await;
        let mut r = self.inner.record.lock().await;
        let update = match outcome {
            Ok(_) => match r.session.record_paid(key) {
                Ok(p) => PayerUpdate::Paid {
                    units: p.units,
                    amount: p.amount,
                    paid_units: r.session.paid_units(),
                    paid_amount: r.session.paid_amount(),
                },
                Err(e) => {
                    tracing::debug!(session = %self.inner.id, error = %e, "payment already recorded");
                    return;
                }
            },
            Err(e) => match r.session.handle_payment_failed(key) {
                Ok(p) => PayerUpdate::PaymentFailed {
                    units: p.units,
                    reason: e.to_string(),
                },
                Err(_) => return,
            },
        };
        r.bills.retain(|b| b.request.secrethash != key);
        let stored = self.inner.shared.store.put_payer_session(&r).await;
        drop(r);
        if let Err(e) = stored {
            tracing::warn!(session = %self.inner.id, error = %e, "session record not stored");
        }
        self.notify(update);
    }
}

/// `Sessions.AcceptSession`: the offer of session `id`, claimed for this device.
async fn accept_on_hub(shared: &Shared, id: H256) -> Result<SignedSessionOffer, ClientError> {
    let req = v1::AcceptSessionRequest {
        session_id: id.as_bytes().to_vec(),
    };
    let answer = shared
        .rpc
        .call("Sessions.AcceptSession", move |mut c| {
            let req = req.clone();
            async move { c.sessions.accept_session(req).await }
        })
        .await?;
    let offer = answer.offer.ok_or_else(|| {
        ClientError::HubMisbehaved("AcceptSession answered without the offer".into())
    })?;
    Ok(SignedSessionOffer::try_from(offer).map_err(|e| e.within("offer"))?)
}

/// Pays `bill`, or, if this store already began paying it (before a restart), waits for
/// that payment's outcome.
async fn pay_or_resume(
    shared: &Arc<Shared>,
    bill: &SignedPaymentRequest,
) -> Result<MediatedReceipt, ClientError> {
    let key = bill.request.secrethash;
    if shared.store.outgoing(&key)?.is_some() {
        let mut changes = shared.subscribe_transfers();
        return wait_outcome(shared, &key, &mut changes).await;
    }
    pay_request(shared, bill).await
}

impl Side for PayerHandle {
    fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    fn session_id(&self) -> H256 {
        self.inner.id
    }

    /// Re-accepts: a restarted hub learns the session again once its payee reopens it.
    async fn reconnect(&self) -> Result<(), ClientError> {
        accept_on_hub(&self.inner.shared, self.inner.id)
            .await
            .map(drop)
    }

    async fn on_event(&self, event: Event) -> Result<(), ClientError> {
        self.handle_event(event).await
    }
}
