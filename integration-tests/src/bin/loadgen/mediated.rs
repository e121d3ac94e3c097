//! `loadgen --mediated`: sets up `--streams` payers and `--payees` payees on a spawned hub
//! (with the hub's liquidity matched into every payee channel), runs
//! `integration_tests::mediated_load`, and reports mediated payments/s, latency percentiles
//! (locked transfer sent → unlock acked) and the ratio to the crypto bound measured in the
//! same run, `cores / (4 × sign + 4 × verify)`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use channel_core::crypto::Signer;
use channel_core::mediation::FeePolicy;
use channel_core::primitives::U256;
use futures::{StreamExt, TryStreamExt};
use integration_tests::device::{device_key, TestDevice};
use integration_tests::mediated_load::{self, MediatedPlan};
use integration_tests::process::connect;
use integration_tests::stats::{CryptoCost, ProcStats};
use integration_tests::{HarnessError, HubOptions, HubProcess, Operator};
use tokio::sync::Barrier;
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

use super::{round, Args, BoxError, Report};

const FEE_FLAT: u64 = 1;
const FEE_PPM: u32 = 1_000;
const REVEAL_TIMEOUT: u64 = 10;

pub async fn run(args: &Args, cores: usize) -> Result<(), BoxError> {
    let payers = args.streams;
    let payees = args.payees.max(1);
    let per_payer = U256::from(args.amount + FEE_FLAT + args.amount.div_ceil(1000))
        * U256::from(args.payments + 1);
    let per_payee = per_payer * U256::from(payers) / U256::from(payees) + U256::from(1u64);
    let hub = HubProcess::start(HubOptions {
        settlement_window_secs: 3 * REVEAL_TIMEOUT,
        extra_args: vec![
            "--auto-deposit".into(),
            per_payee.to_string(),
            "--mediation-fee-flat".into(),
            FEE_FLAT.to_string(),
            "--mediation-fee-ppm".into(),
            FEE_PPM.to_string(),
            "--reveal-timeout-secs".into(),
            REVEAL_TIMEOUT.to_string(),
        ],
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
            // The policy matches payer channels too.
            amount: u256_bytes(&(per_payee * U256::from(payers + payees))),
        })
        .await?;

    let mut report = Report::default();
    report.add("hub", format!("{url} (spawned)"));
    report.add("mode", "mediated, closed loop");
    report.add("cores", cores);
    report.add("payers", payers);
    report.add("payees", payees);
    report.add("payments_per_payer", args.payments);
    report.add("window", args.window);

    let started = Instant::now();
    let seed = args.seed.unwrap_or(7);
    let mut conns = Vec::new();
    for _ in 0..args.connections.max(1) {
        conns.push(connect(&url).await?);
    }
    let conns = &conns;
    let open = |i: usize, deposit: U256, wait_for_hub: bool| async move {
        let key = device_key(seed, i as u64)?;
        let mut d = TestDevice::login(conns[i % conns.len()].clone(), key).await?;
        d.open_channel(deposit).await?;
        if wait_for_hub {
            let until = Instant::now() + Duration::from_secs(60);
            loop {
                let v = d.hub_view().await?;
                let hub_deposit = U256::from_be_slice(&v.hub_deposit);
                if hub_deposit == deposit {
                    d.learn_hub_deposit(hub_deposit)?;
                    break;
                }
                if Instant::now() > until {
                    return Err(HarnessError::Protocol(
                        "the hub never matched a payee".into(),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok::<_, HarnessError>((i, d))
    };
    let mut payer_devices: Vec<(usize, TestDevice)> = futures::stream::iter(0..payers)
        .map(|i| open(i, per_payer, false))
        .buffer_unordered(args.setup_concurrency.max(1))
        .try_collect()
        .await?;
    payer_devices.sort_by_key(|(i, _)| *i);
    let payee_devices: Vec<(usize, TestDevice)> = futures::stream::iter(payers..payers + payees)
        .map(|i| open(i, per_payee, true))
        .buffer_unordered(args.setup_concurrency.max(1))
        .try_collect()
        .await?;
    report.add("setup_secs", round(started.elapsed().as_secs_f64(), 2));

    let crypto = CryptoCost::measure(args.crypto_samples)?;
    let bound = crypto.mediated_bound(cores);
    for (name, rate) in crypto.figures() {
        report.add(name, rate);
    }
    report.add("crypto_bound_mediated_per_sec", bound.round());

    let secrets = Arc::new(Mutex::new(Default::default()));
    let payee_keys: Vec<_> = payee_devices
        .iter()
        .map(|(_, d)| Ok((d.key().clone(), d.channel_id()?)))
        .collect::<Result<_, HarnessError>>()?;
    let ready = Arc::new(Barrier::new(payees + 1));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut payee_tasks = Vec::new();
    for (_, d) in payee_devices {
        payee_tasks.push(tokio::spawn(mediated_load::payee(
            d,
            secrets.clone(),
            ready.clone(),
            stop_rx.clone(),
        )));
    }
    ready.wait().await;
    let plan = MediatedPlan {
        payments: args.payments,
        amount: U256::from(args.amount),
        window: args.window.max(1),
        fees: FeePolicy {
            flat: U256::from(FEE_FLAT),
            proportional_ppm: FEE_PPM,
        },
        // The longest lock the hub takes: the settlement window.
        lock_lifetime: 3 * REVEAL_TIMEOUT,
        timeout: Duration::from_secs(args.ack_timeout_secs),
        duration: args.duration_secs.map(Duration::from_secs),
    };
    let hub_pid = hub.pid();
    let start = Arc::new(Barrier::new(payers + 1));
    let mut tasks = Vec::new();
    for (i, d) in payer_devices {
        tasks.push(tokio::spawn(mediated_load::payer(
            i,
            d,
            payee_keys.clone(),
            secrets.clone(),
            plan.clone(),
            start.clone(),
        )));
    }
    let before = hub_pid.and_then(ProcStats::read);
    start.wait().await;
    let began = Instant::now();
    let mut latencies = Vec::new();
    let mut completed = 0u64;
    for t in tasks {
        let r = t.await??;
        completed += r.completed;
        latencies.extend(r.latencies);
    }
    let elapsed = began.elapsed();
    let after = hub_pid.and_then(ProcStats::read);
    let _ = stop_tx.send(true);
    let mut received = 0u64;
    for t in payee_tasks {
        received += t.await??;
    }
    latencies.sort_unstable();
    let rate = completed as f64 / elapsed.as_secs_f64();
    report.add("completed_payments", completed);
    report.add("payee_unlocks_received", received);
    report.add("elapsed_secs", round(elapsed.as_secs_f64(), 3));
    report.add("mediated_payments_per_sec", rate.round());
    report.add_latency_bound_and_hub(&latencies, rate, bound, completed, (before, after));
    report.print(args.json);
    drop(hub);
    Ok(())
}
