//! Prometheus metrics: the hub's registry, its typed handles, and the `/metrics` endpoint.
//!
//! One [`Metrics`] per hub (cheap to clone, all clones share the counters). Instrumented code
//! calls one method per event:
//! - the Pay stream task ([`crate::channels::service`]): [`Metrics::pay_stream`] while a stream
//!   is open, [`Metrics::payment_ack`] per ack sent, [`Metrics::acks_sent`] per batch (latency
//!   from the batch's arrival to its last ack being handed to the transport);
//! - the sled flusher ([`crate::store::SledStore`]): [`Metrics::fsync`] per group commit;
//! - the ledger watcher: [`watcher_action`] per contest, settle, secret registration or unlock.
//!   The watcher runs inside [`scope`] (see `run`), so its calls need no handle; outside a
//!   scope they record nothing.
//!
//! Channels by phase, the deposits in them and the ledger events the hub applied are state,
//! not events: a scrape reads them from the ledger and the channel book ([`StateSource`]) just
//! before encoding.
//!
//! The text is the OpenMetrics exposition (Prometheus' text format plus a final `# EOF`),
//! served by [`serve`] at `/metrics` on its own listener (`--metrics-listen`), next to the
//! [`crate::dashboard`] pages.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use channel_core::ledger::ChannelPhase;
use channel_core::U256;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use voltlane_proto::v1;

use crate::channels::ChannelBook;
use crate::ledger::HubLedger;

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PaymentLabels {
    /// `accepted` or `rejected`.
    outcome: &'static str,
    /// gRPC status code name, `OK` for accepted payments.
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    /// The ledger phase: `opened`, `closed` or `settled`.
    phase: &'static str,
}

/// What the ledger watcher submitted.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum WatcherAction {
    /// An update of a device's close with its latest proof.
    Contest,
    Settle,
    RegisterSecret,
    Unlock,
}

impl WatcherAction {
    const ALL: [Self; 4] = [
        Self::Contest,
        Self::Settle,
        Self::RegisterSecret,
        Self::Unlock,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Contest => "contest",
            Self::Settle => "settle",
            Self::RegisterSecret => "register_secret",
            Self::Unlock => "unlock",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatcherLabels {
    action: &'static str,
    /// `done` or `refused` (by the ledger).
    outcome: &'static str,
}

const PHASES: [&str; 3] = ["opened", "closed", "settled"];

#[derive(Debug)]
struct Inner {
    registry: Registry,
    payments: Family<PaymentLabels, Counter>,
    ack_latency: Histogram,
    fsync_batch: Histogram,
    fsync_seconds: Histogram,
    pay_streams: Gauge,
    channels: Family<PhaseLabels, Gauge>,
    deposits: Gauge<f64, AtomicU64>,
    ledger_events: Counter,
    watcher: Family<WatcherLabels, Counter>,
    forwards: Family<PaymentLabels, Counter>,
    mediated_in_flight: Gauge,
    sessions_active: Gauge,
}

/// The hub's metrics: registry and typed handles.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Latency buckets, seconds: 100 µs to about 3.3 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 16)
}

impl Metrics {
    /// A fresh registry with every family registered (and zero).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("voltlane");
        let payments = Family::<PaymentLabels, Counter>::default();
        registry.register(
            "payments",
            "Payments answered on Pay streams, by outcome and gRPC status code",
            payments.clone(),
        );
        let ack_latency = Histogram::new(latency_buckets());
        registry.register(
            "payment_ack_latency_seconds",
            "From a batch of Pay messages arriving to its acks being sent",
            ack_latency.clone(),
        );
        let fsync_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "store_fsync_batch_size",
            "Writes acknowledged by one fsync of the store (group commit)",
            fsync_batch.clone(),
        );
        let fsync_seconds = Histogram::new(latency_buckets());
        registry.register(
            "store_fsync_duration_seconds",
            "Duration of one fsync of the store",
            fsync_seconds.clone(),
        );
        let pay_streams = Gauge::default();
        registry.register(
            "pay_streams_active",
            "Pay streams open now",
            pay_streams.clone(),
        );
        let channels = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "channels",
            "The hub's channels by ledger phase",
            channels.clone(),
        );
        let deposits = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "channel_deposits",
            "Token units deposited in the hub's open and closed channels, both sides",
            deposits.clone(),
        );
        let ledger_events = Counter::default();
        registry.register(
            "ledger_events_applied",
            "Ledger events the hub has applied to its channels",
            ledger_events.clone(),
        );
        let watcher = Family::<WatcherLabels, Counter>::default();
        registry.register(
            "watcher_actions",
            "Ledger actions the watcher submitted, by action and outcome",
            watcher.clone(),
        );
        let forwards = Family::<PaymentLabels, Counter>::default();
        registry.register(
            "mediated_forwards",
            "Payers' locked transfers the hub took, by outcome: forwarded, or not (with the \
             refusal's status code)",
            forwards.clone(),
        );
        let mediated_in_flight = Gauge::default();
        registry.register(
            "mediated_transfers_in_flight",
            "Mediated transfers not finished yet (a lock still pending on either side)",
            mediated_in_flight.clone(),
        );
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Metered sessions the hub relays (opened and not yet dropped as idle)",
            sessions_active.clone(),
        );
        let _ = forwards.get_or_create(&PaymentLabels {
            outcome: "forwarded",
            code: "OK",
        });
        // Every series but the rejection codes exists from the start, at zero.
        let _ = payments.get_or_create(&PaymentLabels {
            outcome: "accepted",
            code: "OK",
        });
        for phase in PHASES {
            channels.get_or_create(&PhaseLabels { phase }).set(0);
        }
        for action in WatcherAction::ALL {
            for outcome in ["done", "refused"] {
                let labels = WatcherLabels {
                    action: action.label(),
                    outcome,
                };
                let _ = watcher.get_or_create(&labels);
            }
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                payments,
                ack_latency,
                fsync_batch,
                fsync_seconds,
                pay_streams,
                channels,
                deposits,
                ledger_events,
                watcher,
                forwards,
                mediated_in_flight,
                sessions_active,
            }),
        }
    }

    /// Counts one Pay ack: accepted, or rejected with its status code.
    pub fn payment_ack(&self, ack: &v1::PaymentAck) {
        let labels = match &ack.outcome {
            Some(v1::payment_ack::Outcome::Accepted(_)) => PaymentLabels {
                outcome: "accepted",
                code: code_name(tonic::Code::Ok),
            },
            Some(v1::payment_ack::Outcome::Rejected(r)) => PaymentLabels {
                outcome: "rejected",
                code: code_name(tonic::Code::from_i32(r.code)),
            },
            None => return,
        };
        self.inner.payments.get_or_create(&labels).inc();
        if let Some(v1::payment_ack::Outcome::Accepted(a)) = &ack.outcome {
            let forward = match &a.forward {
                Some(v1::payment_accepted::Forward::Forwarded(_)) => PaymentLabels {
                    outcome: "forwarded",
                    code: "OK",
                },
                Some(v1::payment_accepted::Forward::NotForwarded(r)) => PaymentLabels {
                    outcome: "not_forwarded",
                    code: code_name(tonic::Code::from_i32(r.code)),
                },
                None => return,
            };
            self.inner.forwards.get_or_create(&forward).inc();
        }
    }

    /// Observes the latency of a batch whose messages arrived at `arrived` and whose acks
    /// have all been sent now.
    pub fn acks_sent(&self, arrived: Instant) {
        self.inner
            .ack_latency
            .observe(arrived.elapsed().as_secs_f64());
    }

    /// Observes one group commit: `writes` waiters acknowledged by an fsync that took
    /// `duration`.
    pub fn fsync(&self, writes: usize, duration: Duration) {
        self.inner.fsync_batch.observe(writes as f64);
        self.inner.fsync_seconds.observe(duration.as_secs_f64());
    }

    /// Counts an open Pay stream until the returned guard is dropped.
    pub fn pay_stream(&self) -> StreamGuard {
        self.inner.pay_streams.inc();
        StreamGuard {
            gauge: self.inner.pay_streams.clone(),
        }
    }

    fn watcher_action(&self, action: WatcherAction, done: bool) {
        let outcome = if done { "done" } else { "refused" };
        self.inner
            .watcher
            .get_or_create(&WatcherLabels {
                action: action.label(),
                outcome,
            })
            .inc();
    }

    /// Payments accepted on Pay streams since the hub started.
    pub fn payments_accepted(&self) -> u64 {
        self.inner
            .payments
            .get_or_create(&PaymentLabels {
                outcome: "accepted",
                code: code_name(tonic::Code::Ok),
            })
            .get()
    }

    /// The exposition of every family, as a scrape sees it (state gauges as last refreshed).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)?;
        Ok(out)
    }
}

/// Keeps the active Pay stream gauge up while alive.
#[derive(Debug)]
pub struct StreamGuard {
    gauge: Gauge,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

use voltlane_proto::code_name;

tokio::task_local! {
    static CURRENT: Metrics;
}

/// Runs `task` with `metrics` as the target of [`watcher_action`].
pub fn scope<F: Future>(metrics: Metrics, task: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(metrics, task)
}

/// Counts one watcher action, done or refused by the ledger, in the current [`scope`].
pub fn watcher_action<T, E>(action: WatcherAction, result: &Result<T, E>) {
    let _ = CURRENT.try_with(|m| m.watcher_action(action, result.is_ok()));
}

/// The live state a scrape reads: the ledger's record of the hub's channels and the book's
/// position in the ledger's event log.
#[derive(Clone, Debug)]
pub struct StateSource {
    pub ledger: HubLedger,
    pub book: Arc<ChannelBook>,
    /// The mediator's records, for the in-flight gauge.
    pub mediated: Option<Arc<crate::mediation::RecordBook>>,
    /// The session relay, for the active-sessions gauge.
    pub sessions: Option<crate::sessions::SessionRelay>,
}

impl StateSource {
    /// Sets the state gauges from the ledger and the book.
    async fn refresh(&self, metrics: &Metrics) {
        if let Some(records) = &self.mediated {
            let in_flight = records.unfinished().await;
            metrics
                .inner
                .mediated_in_flight
                .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
        }
        if let Some(relay) = &self.sessions {
            metrics
                .inner
                .sessions_active
                .set(i64::try_from(relay.len()).unwrap_or(i64::MAX));
        }
        let applied = self.book.applied_seq().await;
        metrics
            .inner
            .ledger_events
            .inner()
            .fetch_max(applied, Ordering::Relaxed);
        let me = self.book.operator_address();
        let read = self.ledger.read(|l| {
            let mut by_phase = [0i64; 3];
            let mut deposits = U256::ZERO;
            for c in l.channel_records_of(me) {
                let (i, locked) = match c.phase {
                    ChannelPhase::Opened => (0, true),
                    ChannelPhase::Closed => (1, true),
                    ChannelPhase::Settled => (2, false),
                };
                by_phase[i] += 1;
                if locked {
                    for p in &c.participants {
                        deposits = deposits.saturating_add(p.total_deposit);
                    }
                }
            }
            (by_phase, deposits)
        });
        match read {
            Ok((by_phase, deposits)) => {
                for (phase, n) in PHASES.into_iter().zip(by_phase) {
                    metrics
                        .inner
                        .channels
                        .get_or_create(&PhaseLabels { phase })
                        .set(n);
                }
                // A gauge is a float: exact up to 2^53 token units, approximate beyond.
                let approx = deposits.to_string().parse::<f64>().unwrap_or(f64::MAX);
                metrics.inner.deposits.set(approx);
            }
            Err(e) => tracing::warn!(error = %e, "metrics cannot read the ledger"),
        }
    }
}

#[derive(Clone, Debug)]
struct Endpoint {
    metrics: Metrics,
    source: StateSource,
}

async fn scrape(State(endpoint): State<Endpoint>) -> Response {
    endpoint.source.refresh(&endpoint.metrics).await;
    match endpoint.metrics.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics").into_response(),
    }
}

/// Serves `GET /metrics` and the dashboard on `listener` until `shutdown` resolves; samples
/// the payment rate for the dashboard meanwhile.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    source: StateSource,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(address = %addr, "serving Prometheus metrics at /metrics, dashboard at /dashboard");
    }
    let rate = Arc::new(crate::dashboard::RateHistory::new());
    let sampler = tokio::spawn(crate::dashboard::sample_payments(
        metrics.clone(),
        rate.clone(),
    ));
    let dashboard = crate::dashboard::router(crate::dashboard::Dashboard {
        metrics: metrics.clone(),
        source: source.clone(),
        rate,
    });
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Endpoint { metrics, source })
        .merge(dashboard);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sampler.abort();
    served
}

impl voltlane_store::CommitObserver for Metrics {
    fn group_commit(&self, writes: usize, fsync: Duration) {
        self.fsync(writes, fsync);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watcher_actions_count_only_inside_a_scope() {
        let metrics = Metrics::new();
        let ok: Result<(), ()> = Ok(());
        let refused: Result<(), ()> = Err(());
        watcher_action(WatcherAction::Settle, &ok);
        scope(metrics.clone(), async {
            watcher_action(WatcherAction::Settle, &ok);
            watcher_action(WatcherAction::Contest, &refused);
        })
        .await;
        let text = metrics.encode().unwrap();
        assert!(
            text.contains("voltlane_watcher_actions_total{action=\"settle\",outcome=\"done\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "voltlane_watcher_actions_total{action=\"contest\",outcome=\"refused\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn locked_transfer_acks_count_their_forward_outcome() {
        let metrics = Metrics::new();
        let accepted = |forward| v1::PaymentAck {
            request_id: 1,
            outcome: Some(v1::payment_ack::Outcome::Accepted(v1::PaymentAccepted {
                nonce: 1,
                transferred_amount: vec![0; 32],
                forward,
            })),
        };
        metrics.payment_ack(&accepted(None));
        metrics.payment_ack(&accepted(Some(v1::payment_accepted::Forward::Forwarded(
            Default::default(),
        ))));
        for _ in 0..2 {
            metrics.payment_ack(&accepted(Some(
                v1::payment_accepted::Forward::NotForwarded(v1::PaymentRejected {
                    code: tonic::Code::FailedPrecondition as i32,
                    reason: "payee offline".into(),
                    error_reason: v1::ErrorReason::PayeeOffline as i32,
                }),
            )));
        }
        let text = metrics.encode().unwrap();
        for line in [
            "voltlane_payments_total{outcome=\"accepted\",code=\"OK\"} 4",
            "voltlane_mediated_forwards_total{outcome=\"forwarded\",code=\"OK\"} 1",
            "voltlane_mediated_forwards_total{outcome=\"not_forwarded\",code=\"FAILED_PRECONDITION\"} 2",
            "voltlane_mediated_transfers_in_flight 0",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn a_stream_guard_counts_while_alive() {
        let metrics = Metrics::new();
        let a = metrics.pay_stream();
        let b = metrics.pay_stream();
        drop(a);
        assert!(metrics
            .encode()
            .unwrap()
            .contains("voltlane_pay_streams_active 1\n"));
        drop(b);
        assert!(metrics
            .encode()
            .unwrap()
            .contains("voltlane_pay_streams_active 0\n"));
    }
}
