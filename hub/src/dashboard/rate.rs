//! Payments per second over the last [`POINTS`] seconds: a ring buffer of per-second counts,
//! filled by [`sample_payments`], which reads the accepted-payments counter once a second.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::DashboardError;
use crate::metrics::Metrics;

/// Seconds of history kept.
pub const POINTS: usize = 300;

/// How often the counter is read.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Ring {
    /// The counter at the last sample (zero before the first: the counter starts at zero
    /// with the hub, so the points sum to the counter as last sampled).
    last_total: u64,
    /// Payments accepted in each sampled second, oldest first.
    points: VecDeque<u64>,
}

/// The sampled history.
#[derive(Debug, Default)]
pub struct RateHistory {
    ring: Mutex<Ring>,
}

impl RateHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a sample: the counter now reads `total`. The point is what it gained since
    /// the last sample; the oldest point goes once there are [`POINTS`].
    pub fn record(&self, total: u64) -> Result<(), DashboardError> {
        let mut ring = self
            .ring
            .lock()
            .map_err(|_| DashboardError::RateUnavailable)?;
        let gained = total.saturating_sub(ring.last_total);
        ring.last_total = ring.last_total.max(total);
        if ring.points.len() == POINTS {
            ring.points.pop_front();
        }
        ring.points.push_back(gained);
        Ok(())
    }

    /// Payments per second, oldest first (at most [`POINTS`]).
    pub fn points(&self) -> Result<Vec<u64>, DashboardError> {
        let ring = self
            .ring
            .lock()
            .map_err(|_| DashboardError::RateUnavailable)?;
        Ok(ring.points.iter().copied().collect())
    }
}

/// Samples `metrics`' accepted-payments counter into `history` every [`SAMPLE_INTERVAL`],
/// until the task is aborted.
pub async fn sample_payments(metrics: Metrics, history: Arc<RateHistory>) {
    let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if let Err(e) = history.record(metrics.payments_accepted()) {
            tracing::warn!(error = %e, "payment rate sampler stopped");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_per_second_gains_and_the_oldest_go_first() {
        let h = RateHistory::new();
        for total in [0, 3, 3, 10] {
            h.record(total).unwrap();
        }
        assert_eq!(h.points().unwrap(), [0, 3, 0, 7]);
        for i in 0..POINTS as u64 {
            h.record(10 + i).unwrap();
        }
        let points = h.points().unwrap();
        assert_eq!(points.len(), POINTS);
        // The four first points are gone; the first kept is the gain of the first new sample.
        assert_eq!(points[0], 0);
        assert!(points[1..].iter().all(|&p| p == 1));
    }
}
