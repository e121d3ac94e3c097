//! Cost of one open + deposit + close through the hub's ledger handle (ledger rules, the
//! per-record write batch, a memory store) with 1,000 and with 100,000 channels already open.
//! Per-record persistence makes both cost the same; the run prints the two means and their
//! ratio.
//!
//! `cargo bench -p voltlane-hub --bench ledger_ops` (about a minute). Not run by tests.
//!
//! Every measured round adds a channel; to keep "existing channels" honest the world is rebuilt
//! (outside the timing) once it has grown by a tenth.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use channel_core::crypto::{LocalSigner, Signer};
use channel_core::ledger::LedgerConfig;
use channel_core::testing::{test_domain, test_signer};
use channel_core::{Address, SignedBalanceProof, U256};
use criterion::{criterion_group, criterion_main, Criterion};
use tokio::runtime::Runtime;
use voltlane_hub::ledger::LedgerHandle;
use voltlane_hub::store::{KvStore, MemoryStore};

fn device(n: u32) -> Address {
    let mut a = [0x55; 20];
    a[16..].copy_from_slice(&n.to_be_bytes());
    Address(a)
}

/// A ledger with `base` open channels between the hub and distinct devices.
struct World {
    handle: LedgerHandle,
    hub: LocalSigner,
    base: u32,
    added: u32,
}

impl World {
    fn build(rt: &Runtime, base: u32) -> Self {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let config = LedgerConfig {
            domain: test_domain(),
            settlement_timeout: 100,
        };
        let handle = LedgerHandle::load(store, config, || 1_000).unwrap();
        let hub = test_signer(1);
        let who = hub.address();
        rt.block_on(async {
            handle
                .apply(|l, now| l.mint_with_events(who, U256::from(u128::MAX), now))
                .await
                .unwrap();
            for i in 0..base {
                handle
                    .submit(who, |l, caller, now| l.open_channel(caller, device(i), now))
                    .await
                    .unwrap();
            }
        });
        Self {
            handle,
            hub,
            base,
            added: 0,
        }
    }

    /// Opens a channel with a new device, deposits and closes it; returns the time the three
    /// operations took (signing the close is done before the clock starts).
    fn round(&mut self, rt: &Runtime) -> Duration {
        let who = self.hub.address();
        let partner = device(self.base + self.added);
        self.added += 1;
        let next_id = self
            .handle
            .read(|l| l.counters().last_channel_id + U256::from(1u8))
            .unwrap();
        let none = SignedBalanceProof::none(test_domain(), next_id);
        let sig = none.counter_sign_close(&self.hub).unwrap();
        let start = Instant::now();
        rt.block_on(async {
            let (id, _) = self
                .handle
                .submit(who, |l, caller, now| l.open_channel(caller, partner, now))
                .await
                .unwrap();
            self.handle
                .submit(who, |l, caller, now| {
                    l.set_total_deposit(caller, id, caller, U256::from(10u8), now)
                })
                .await
                .unwrap();
            self.handle
                .submit(who, |l, caller, now| {
                    l.close_channel(caller, id, &none, &sig, now)
                })
                .await
                .unwrap();
        });
        start.elapsed()
    }
}

fn ledger_ops(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("open_deposit_close");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let mut means = Vec::new();
    for base in [1_000u32, 100_000] {
        let started = Instant::now();
        let mut world = World::build(&rt, base);
        println!(
            "set up {base} channels through the handle in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let (mut total, mut rounds) = (Duration::ZERO, 0u64);
        group.bench_function(format!("{base}_channels"), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    if world.added >= base / 10 {
                        world = World::build(&rt, base);
                    }
                    timed += world.round(&rt);
                }
                total += timed;
                rounds += iters;
                timed
            })
        });
        let mean = total.as_secs_f64() / rounds.max(1) as f64;
        println!(
            "mean open+deposit+close at {base} channels: {:.1} µs over {rounds} rounds",
            mean * 1e6
        );
        means.push((base, mean));
    }
    group.finish();
    if let [(small, a), (large, b)] = means[..] {
        println!(
            "ratio {large} channels / {small} channels: {:.2} (1.00 = independent of the number of channels)",
            b / a
        );
    }
}

criterion_group!(benches, ledger_ops);
criterion_main!(benches);
