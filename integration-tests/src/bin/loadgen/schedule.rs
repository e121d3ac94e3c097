//! Open-loop send times: when each stream's k-th payment is due.
//!
//! Real devices are not synchronised: a thousand meters each paying five times a second do not
//! all pay at the same instant. A schedule that starts every stream at the same moment with the
//! same fixed interval turns `--rate` into bursts of `--streams` payments at once, and measures
//! the burst, not the load. So each stream gets its own arrival process:
//! - `poisson` (default): independent exponential gaps with mean `1/rate`, the usual model
//!   of many independent senders;
//! - `fixed`: exactly `1/rate` apart, starting at a random phase in `[0, 1/rate)`.
//!
//! The randomness is a seeded splitmix64 per stream, so a run with `--seed` is reproducible.

use std::time::{Duration, Instant};

/// How a stream's send times are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arrivals {
    /// Exponential gaps with mean `1/rate` (a Poisson process).
    Poisson,
    /// A fixed `1/rate` gap, starting at a random phase.
    Fixed,
}

/// One stream's send times, in order.
#[derive(Clone, Debug)]
pub struct Schedule {
    arrivals: Arrivals,
    interval: Duration,
    next: Instant,
    rng: SplitMix64,
}

impl Schedule {
    /// The schedule of a stream starting at `start`, sending `rate_per_sec` payments per second
    /// on average, its randomness drawn from `seed`.
    pub fn new(arrivals: Arrivals, rate_per_sec: f64, start: Instant, seed: u64) -> Self {
        let interval = Duration::from_secs_f64(1.0 / rate_per_sec);
        let mut rng = SplitMix64(seed);
        let first = match arrivals {
            Arrivals::Poisson => interval.mul_f64(rng.exponential()),
            Arrivals::Fixed => interval.mul_f64(rng.unit()),
        };
        Self {
            arrivals,
            interval,
            next: start + first,
            rng,
        }
    }

    /// When the next payment is due.
    pub fn due(&self) -> Instant {
        self.next
    }

    /// Moves on to the payment after the one [`Schedule::due`] named.
    pub fn advance(&mut self) {
        let gap = match self.arrivals {
            Arrivals::Poisson => self.interval.mul_f64(self.rng.exponential()),
            Arrivals::Fixed => self.interval,
        };
        self.next += gap;
    }
}

/// splitmix64: small, fast, and good enough for spacing test traffic (not for keys).
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Exponential with mean 1 (inverse transform; `1 - u` is in `(0, 1]`, so finite).
    fn exponential(&mut self) -> f64 {
        -(1.0 - self.unit()).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(arrivals: Arrivals, seed: u64, n: usize) -> (Duration, Vec<Duration>) {
        let start = Instant::now();
        let mut s = Schedule::new(arrivals, 5.0, start, seed);
        let first = s.due() - start;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let before = s.due();
            s.advance();
            out.push(s.due() - before);
        }
        (first, out)
    }

    #[test]
    fn fixed_gaps_are_exact_and_the_phase_lies_within_one_interval() {
        let interval = Duration::from_millis(200);
        let mut phases = Vec::new();
        for seed in 0..50 {
            let (first, g) = gaps(Arrivals::Fixed, seed, 100);
            assert!(first < interval, "phase {first:?}");
            assert!(g
                .iter()
                .all(|d| d.abs_diff(interval) < Duration::from_micros(1)));
            phases.push(first);
        }
        // Different streams start at different moments (no synchronised bursts).
        phases.sort();
        phases.dedup();
        assert!(phases.len() > 45, "only {} distinct phases", phases.len());
    }

    #[test]
    fn poisson_gaps_have_mean_one_over_rate_and_spread_like_an_exponential() {
        let (_, g) = gaps(Arrivals::Poisson, 7, 200_000);
        let secs: Vec<f64> = g.iter().map(Duration::as_secs_f64).collect();
        let mean = secs.iter().sum::<f64>() / secs.len() as f64;
        assert!((mean - 0.2).abs() < 0.005, "mean gap {mean}");
        // An exponential's standard deviation equals its mean; fixed gaps would give 0.
        let var = secs.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / secs.len() as f64;
        assert!((var.sqrt() - 0.2).abs() < 0.01, "std dev {}", var.sqrt());
        // P(gap > mean) = 1/e for an exponential.
        let above = secs.iter().filter(|&&s| s > 0.2).count() as f64 / secs.len() as f64;
        assert!(
            (above - (-1f64).exp()).abs() < 0.01,
            "fraction above mean {above}"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule_and_another_seed_another() {
        assert_eq!(
            gaps(Arrivals::Poisson, 3, 50),
            gaps(Arrivals::Poisson, 3, 50)
        );
        assert_ne!(
            gaps(Arrivals::Poisson, 3, 50),
            gaps(Arrivals::Poisson, 4, 50)
        );
    }
}
