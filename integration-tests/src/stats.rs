//! Figures for the load generator: latency percentiles and the raw cost of signing (k256) and
//! of checking a signature (libsecp256k1, as the hub does; k256 beside it for scale).

use std::time::{Duration, Instant};

use channel_core::crypto::{keccak256, PeerKey, Signer};
use channel_core::H256;
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use secp256k1::ecdsa::Signature as SecpSignature;
use secp256k1::{Message, PublicKey as SecpPublicKey};

use crate::device::device_key;
use crate::error::HarnessError;

/// The `q`-quantile (0..=1) of an ascending slice, nearest-rank; zero when empty.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The latency percentiles a load report prints, in milliseconds: `(name, value)` for p50,
/// p99 and p99.9 of `sorted`.
pub fn latency_ms(sorted: &[Duration]) -> [(&'static str, f64); 3] {
    [
        ("latency_p50_ms", 0.5),
        ("latency_p99_ms", 0.99),
        ("latency_p999_ms", 0.999),
    ]
    .map(|(name, q)| {
        let ms = percentile(sorted, q).as_secs_f64() * 1e3;
        (name, (ms * 1e3).round() / 1e3)
    })
}

/// Mean cost of one signature and one check of a signature, measured in this process.
#[derive(Clone, Copy, Debug)]
pub struct CryptoCost {
    /// `LocalSigner::sign_hash` (k256, RFC 6979): what a device pays per payment.
    pub sign: Duration,
    /// `PeerKey::verify` with the key learned, what the hub runs per payment: libsecp256k1's
    /// recovery with the signature's own `v`, compared with the key. The bounds use it.
    pub verify: Duration,
    /// libsecp256k1's plain ECDSA verify against the known key: the fastest audited check,
    /// for scale (it alone would not pin `v`).
    pub libsecp256k1_verify: Duration,
    /// k256's `verify_prehash`, for scale.
    pub k256_verify: Duration,
}

impl CryptoCost {
    /// Times `n` `LocalSigner::sign_hash`, then `n` of each check over distinct digests.
    pub fn measure(n: usize) -> Result<Self, HarnessError> {
        let n = n.max(1);
        let channel = |e: &dyn std::fmt::Display| HarnessError::Channel(e.to_string());
        let key = device_key(0xC0FFEE, 0)?;
        let hashes: Vec<H256> = (0..n as u64).map(|i| keccak256(&i.to_be_bytes())).collect();
        let started = Instant::now();
        let mut sigs = Vec::with_capacity(n);
        for h in &hashes {
            sigs.push(key.sign_hash(h).map_err(|e| channel(&e))?);
        }
        let sign = started.elapsed() / n as u32;

        let mut peer = PeerKey::new(key.address());
        peer.verify(&hashes[0], &sigs[0]).map_err(|e| channel(&e))?;
        let started = Instant::now();
        for (h, s) in hashes.iter().zip(&sigs) {
            peer.verify(h, s).map_err(|e| channel(&e))?;
        }
        let verify = started.elapsed() / n as u32;

        let point = key.verifying_key().to_encoded_point(false);
        let secp_key = SecpPublicKey::from_slice(point.as_bytes()).map_err(|e| channel(&e))?;
        let secp_sigs = sigs
            .iter()
            .map(|s| SecpSignature::from_compact(&s.as_bytes()[..64]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| channel(&e))?;
        let started = Instant::now();
        for (h, s) in hashes.iter().zip(&secp_sigs) {
            s.verify(Message::from_digest(h.0), &secp_key)
                .map_err(|e| channel(&e))?;
        }
        let libsecp256k1_verify = started.elapsed() / n as u32;

        let k256_sigs = sigs
            .iter()
            .map(|s| k256::ecdsa::Signature::from_slice(&s.as_bytes()[..64]))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| channel(&e))?;
        let started = Instant::now();
        for (h, s) in hashes.iter().zip(&k256_sigs) {
            key.verifying_key()
                .verify_prehash(h.as_bytes(), s)
                .map_err(|e| channel(&e))?;
        }
        let k256_verify = started.elapsed() / n as u32;
        Ok(Self {
            sign,
            verify,
            libsecp256k1_verify,
            k256_verify,
        })
    }

    /// The figures a load report prints about the machine's crypto: rates per second.
    pub fn figures(&self) -> [(&'static str, f64); 4] {
        [
            ("k256_sign_per_sec", per_sec(self.sign)),
            ("hub_verify_per_sec", per_sec(self.verify)),
            (
                "libsecp256k1_verify_per_sec",
                per_sec(self.libsecp256k1_verify),
            ),
            ("k256_verify_per_sec", per_sec(self.k256_verify)),
        ]
        .map(|(name, rate)| (name, rate.round()))
    }

    /// The mean of two measurements (e.g. before and after a run).
    pub fn mean(&self, other: &Self) -> Self {
        Self {
            sign: (self.sign + other.sign) / 2,
            verify: (self.verify + other.verify) / 2,
            libsecp256k1_verify: (self.libsecp256k1_verify + other.libsecp256k1_verify) / 2,
            k256_verify: (self.k256_verify + other.k256_verify) / 2,
        }
    }

    /// How far apart two measurements of `sign + verify` are, relative to their mean
    /// (0.1 = they differ by a tenth).
    pub fn drift(&self, other: &Self) -> f64 {
        let a = (self.sign + self.verify).as_secs_f64();
        let b = (other.sign + other.verify).as_secs_f64();
        if a + b == 0.0 {
            return 0.0;
        }
        (a - b).abs() / ((a + b) / 2.0)
    }

    /// `cores / (sign + verify)`: payments/s if every core did nothing but the one device
    /// signature and one hub verification each payment needs.
    pub fn bound(&self, cores: usize) -> f64 {
        cores as f64 * per_sec(self.sign + self.verify)
    }
}

impl CryptoCost {
    /// `cores / (4 × sign + 4 × verify)`: mediated payments/s if every core did nothing but
    /// the signatures and verifications of two locked transfers and two unlocks.
    pub fn mediated_bound(&self, cores: usize) -> f64 {
        cores as f64 * per_sec(4 * self.sign + 4 * self.verify)
    }
}

impl CryptoCost {
    /// `cores / (6 × sign + 9 × verify)`: session payments/s if every core did nothing but
    /// the crypto of one reading and its bill (signed by the payee's meter and key, verified
    /// by the hub's relay and by the payer) and of the mediated payment of the bill (four
    /// signed proofs; the hub verifies the payer's two and the bill, the payee the hub's
    /// two).
    pub fn session_bound(&self, cores: usize) -> f64 {
        cores as f64 * per_sec(6 * self.sign + 9 * self.verify)
    }
}

fn per_sec(d: Duration) -> f64 {
    if d.is_zero() {
        f64::INFINITY
    } else {
        1.0 / d.as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        assert_eq!(percentile(&v, 0.5), Duration::from_micros(500));
        assert_eq!(percentile(&v, 0.99), Duration::from_micros(990));
        assert_eq!(percentile(&v, 0.999), Duration::from_micros(999));
        assert_eq!(percentile(&v, 1.0), Duration::from_micros(1000));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn two_baselines_average_and_their_drift_is_relative_to_the_mean() {
        let us = Duration::from_micros;
        let a = CryptoCost {
            sign: us(100),
            verify: us(200),
            libsecp256k1_verify: us(120),
            k256_verify: us(300),
        };
        let b = CryptoCost {
            sign: us(60),
            verify: us(140),
            libsecp256k1_verify: us(80),
            k256_verify: us(100),
        };
        let m = a.mean(&b);
        assert_eq!(
            (m.sign, m.verify, m.libsecp256k1_verify, m.k256_verify),
            (us(80), us(170), us(100), us(200))
        );
        // 300 µs against 200 µs: 100 apart, mean 250.
        assert!((a.drift(&b) - 0.4).abs() < 1e-9);
        assert_eq!(a.drift(&b), b.drift(&a));
        assert_eq!(a.drift(&a), 0.0);
        // Two cores at 250 µs a payment.
        assert!((m.bound(2) - 8_000.0).abs() < 1e-6);
    }
}

/// A process's CPU time and resident memory, read from `/proc` (Linux).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStats {
    /// User and system CPU time, in clock ticks of [`CLOCK_TICKS_PER_SEC`].
    pub user_ticks: u64,
    pub system_ticks: u64,
    /// Resident set size, kilobytes.
    pub rss_kb: u64,
}

/// Linux reports `/proc/<pid>/stat` times in USER_HZ, which is 100 on every architecture
/// the kernel's user ABI supports.
pub const CLOCK_TICKS_PER_SEC: u64 = 100;

impl ProcStats {
    /// Reads process `pid`'s figures; `None` where `/proc` is missing or unreadable.
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count fields
        // after the last ')'. utime and stime are fields 14 and 15 of the whole line.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let user_ticks = fields.get(11)?.parse().ok()?;
        let system_ticks = fields.get(12)?.parse().ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some(Self {
            user_ticks,
            system_ticks,
            rss_kb,
        })
    }

    /// CPU microseconds per unit of work between `self` (before) and `after`: (user, system).
    pub fn cpu_us_per(&self, after: &Self, units: u64) -> (f64, f64) {
        let per = |before: u64, after: u64| {
            let us = after.saturating_sub(before) as f64 * 1e6 / CLOCK_TICKS_PER_SEC as f64;
            us / units.max(1) as f64
        };
        (
            per(self.user_ticks, after.user_ticks),
            per(self.system_ticks, after.system_ticks),
        )
    }
}

#[cfg(test)]
mod proc_tests {
    use super::*;

    #[test]
    fn reads_this_process_and_counts_per_unit() {
        let me = ProcStats::read(std::process::id()).expect("/proc/self is readable on Linux");
        assert!(me.rss_kb > 0);
        let later = ProcStats {
            user_ticks: me.user_ticks + 100,
            system_ticks: me.system_ticks + 50,
            ..me
        };
        assert_eq!(me.cpu_us_per(&later, 1_000), (1_000.0, 500.0));
    }
}
