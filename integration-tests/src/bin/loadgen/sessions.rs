//! `loadgen --sessions N`: N concurrent metered sessions on a spawned hub, each between its
//! own charger (payee) and car (payer), both `voltlane_client` devices. Every session
//! publishes `--payments` readings of `--amount` Wh at 1 token per Wh, one at a time: the
//! charger records a reading (signed, billed, published) and waits until the car's payment
//! of that bill reached it. Reports readings/s and payments/s, the latency from the reading
//! to its payment arriving (p50/p99/p99.9), and the ratio to the crypto bound measured in
//! the same run, `cores / (6 × sign + 9 × verify)`.

use std::time::{Duration, Instant};

use channel_core::crypto::Signer;
use channel_core::primitives::U256;
use channel_core::session::{MeterUnit, PayerLimits};
use futures::{StreamExt, TryStreamExt};
use integration_tests::device::device_key;
use integration_tests::process::connect;
use integration_tests::stats::{CryptoCost, ProcStats};
use integration_tests::{HubOptions, HubProcess, Operator};
use tokio::sync::Barrier;
use voltlane_client::session::{PayeeHandle, PayerHandle, SessionTerms};
use voltlane_client::{Client, DeviceStore, MediationOptions};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

use super::{round, Args, BoxError, Report};

/// A charger and a car in one session.
struct Pair {
    payee: PayeeHandle,
    _payer: PayerHandle,
    _clients: (Client, Client),
}

pub async fn run(args: &Args, sessions: usize, cores: usize) -> Result<(), BoxError> {
    if sessions == 0 {
        return Err("--sessions must be at least 1".into());
    }
    let step = args.amount.max(1);
    let budget = U256::from(step) * U256::from(args.payments + 1);
    let hub = HubProcess::start(HubOptions {
        extra_args: vec!["--auto-deposit".into(), budget.to_string()],
        rust_log: "warn".into(),
        ..HubOptions::default()
    })
    .await?;
    let url = hub.url();
    let operator_key = hub.operator_key()?;
    let operator = Operator::login(connect(&url).await?, operator_key.clone()).await?;
    operator
        .ledger()
        .mint(v1::MintRequest {
            to: address_bytes(&operator_key.address()),
            amount: u256_bytes(&(budget * U256::from(2 * sessions))),
        })
        .await?;

    let mut report = Report::default();
    report.add("hub", format!("{url} (spawned)"));
    report.add(
        "mode",
        "metered sessions (SDK devices), one reading in flight per session",
    );
    report.add("cores", cores);
    report.add("sessions", sessions);
    report.add("readings_per_session", args.payments);
    report.add("wh_per_reading", step);

    let started = Instant::now();
    let seed = args.seed.unwrap_or(11);
    let url = &url;
    let device = |n: u64, deposit: U256| async move {
        let key = device_key(seed, n)?;
        let client = Client::connect(url, key, DeviceStore::in_memory()).await?;
        client.set_mediation_options(MediationOptions::new().lock_lifetime(120));
        client.mint(deposit).await?;
        client.open_channel(deposit).await?;
        Ok::<_, BoxError>(client)
    };
    let pairs: Vec<Pair> = futures::stream::iter(0..sessions as u64)
        .map(|i| async move {
            let car = device(2 * i, budget).await?;
            let charger = device(2 * i + 1, budget).await?;
            let until = Instant::now() + Duration::from_secs(60);
            while charger.balances()?.hub_deposit < budget {
                if Instant::now() > until {
                    return Err::<Pair, BoxError>("the hub never matched a charger".into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // Compressed time: any step per reading is physically possible.
            let mut terms =
                SessionTerms::new(MeterUnit::WattHour, U256::from(1u8), step, u64::MAX / 4);
            terms.bill_valid_secs = 600;
            let meter = device_key(seed ^ 0x5e55, i)?;
            let payee = charger.offer_session(terms, meter).await?;
            let payer = car
                .accept_session(
                    payee.id(),
                    PayerLimits {
                        budget,
                        clock_tolerance_secs: 5,
                    },
                )
                .await?;
            payee.wait_accepted(Duration::from_secs(60)).await?;
            Ok(Pair {
                payee,
                _payer: payer,
                _clients: (car, charger),
            })
        })
        .buffer_unordered(args.setup_concurrency.max(1))
        .try_collect()
        .await?;
    report.add("setup_secs", round(started.elapsed().as_secs_f64(), 2));

    let crypto = CryptoCost::measure(args.crypto_samples)?;
    let bound = crypto.session_bound(cores);
    for (name, rate) in crypto.figures() {
        report.add(name, rate);
    }
    report.add("crypto_bound_session_payments_per_sec", bound.round());

    let timeout = Duration::from_secs(args.ack_timeout_secs);
    let readings = args.payments;
    let start = std::sync::Arc::new(Barrier::new(sessions + 1));
    let mut tasks = Vec::new();
    for pair in pairs {
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut latencies = Vec::with_capacity(readings as usize);
            let mut register = 0u64;
            for _ in 0..readings {
                register += step;
                let sent = Instant::now();
                pair.payee.record(register).await?;
                pair.payee.wait_paid(register, timeout).await?;
                latencies.push(sent.elapsed());
            }
            Ok::<_, voltlane_client::ClientError>((latencies, pair))
        }));
    }
    let hub_pid = hub.pid();
    let before = hub_pid.and_then(ProcStats::read);
    start.wait().await;
    let began = Instant::now();
    let mut latencies = Vec::new();
    let mut kept = Vec::new();
    for t in tasks {
        let (l, pair) = t.await??;
        latencies.extend(l);
        kept.push(pair);
    }
    let elapsed = began.elapsed();
    let after = hub_pid.and_then(ProcStats::read);
    latencies.sort_unstable();
    let paid = latencies.len() as u64;
    let rate = paid as f64 / elapsed.as_secs_f64();
    report.add("readings_paid", paid);
    report.add("elapsed_secs", round(elapsed.as_secs_f64(), 3));
    report.add("readings_per_sec", rate.round());
    report.add("payments_per_sec", rate.round());
    report.add_latency_bound_and_hub(&latencies, rate, bound, paid, (before, after));
    report.print(args.json);
    drop(kept);
    drop(hub);
    Ok(())
}
