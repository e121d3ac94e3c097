//! The mediator's rules, one case at a time: every refusal of a forward and of each transfer
//! transition (and that it changes nothing), the happy path with exact fees, the paths where
//! the payee never reveals or the payer never unlocks, and the record's serialization.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "mediation_rules/flows.rs"]
mod flows;
#[path = "mediation_rules/refusals.rs"]
mod refusals;
#[path = "mediation_rules/world.rs"]
mod world;

use channel_core::locks::{HashTimeLock, Secret};
use channel_core::mediation::{forward, FeePolicy, MediatedTransfer, MediationConfig};
use channel_core::{Address, H256, U256};
use world::{u, Star};

/// Payer (device 0) and payee (device 1), each with 1,000 in its channel and the hub with
/// 1,000 in each; fee 1 + 1 %, reveal timeout 20 s, at least 5 s for the payee.
#[derive(Debug)]
pub struct Fixture {
    pub star: Star,
    pub payer: Address,
    pub payee: Address,
    pub config: MediationConfig,
    pub secret: Secret,
}

pub fn config() -> MediationConfig {
    MediationConfig {
        fees: FeePolicy {
            flat: u(1),
            proportional_ppm: 10_000,
        },
        reveal_timeout: 20,
        min_outgoing_lifetime: 5,
        settlement_window: 100,
    }
}

impl Fixture {
    pub fn two_devices() -> Self {
        let star = Star::new(&[(1_000, 1_000), (1_000, 1_000)]);
        Self {
            payer: star.addr(0),
            payee: star.addr(1),
            star,
            config: config(),
            secret: Secret(H256([7; 32])),
        }
    }

    /// A lock of `gross` from the payer expiring `expires_in` seconds from now.
    pub fn lock(&self, gross: u64, expires_in: u64) -> HashTimeLock {
        HashTimeLock {
            expiration: self.star.now + expires_in,
            amount: u(gross),
            secrethash: self.secret.hash(),
        }
    }

    /// The payer locks `gross` toward the hub (received by the hub) and the hub forwards
    /// `amount` to the payee, who receives it. Returns the record.
    pub fn forwarded(&mut self, gross: u64, amount: u64, expires_in: u64) -> MediatedTransfer {
        let lock = self.lock(gross, expires_in);
        self.star.lock_to_hub(self.payer, lock).unwrap();
        let incoming = self.star.hub[&self.payer].clone();
        let outgoing = self.star.hub.get_mut(&self.payee).unwrap();
        let (record, events) = forward(
            &incoming,
            &lock,
            u(amount),
            outgoing,
            &self.config,
            self.star.now,
            H256::ZERO,
            &self.star.hub_key,
        )
        .unwrap();
        self.star.deliver_to_device(self.payee, &events).unwrap();
        record
    }
}

/// `amount` in U256, for assertions.
pub fn amt(n: u64) -> U256 {
    u(n)
}
