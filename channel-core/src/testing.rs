//! A deterministic two-party harness: both participants' [`Channel`]s, their keys and a
//! ledger clock, with messages handed across explicitly. Used by this crate's tests and
//! available to drivers' tests behind the `testing` feature.

use crate::channel::{Channel, ChannelError, ChannelEvent, ChannelMessage};
use crate::crypto::{LocalSigner, Signer};
use crate::primitives::{Address, H256, U256};
use crate::proofs::Domain;

/// A key from a small seed, for tests (never use predictable keys elsewhere).
pub fn test_signer(seed: u8) -> LocalSigner {
    let mut bytes = [0u8; 32];
    bytes[31] = seed.max(1);
    bytes[0] = 0x42;
    match LocalSigner::from_bytes(&bytes) {
        Ok(s) => s,
        Err(_) => unreachable!("0x42..seed is a valid secp256k1 scalar"),
    }
}

/// The domain tests run on (chain 337, a fixed token network).
pub fn test_domain() -> Domain {
    Domain {
        chain_id: U256::from(337u64),
        token_network_address: Address([0x5c; 20]),
    }
}

/// Participants `a` and `b` of one channel, each with its own view.
#[derive(Debug, Clone)]
pub struct Pair {
    pub a: Channel,
    pub b: Channel,
    pub key_a: LocalSigner,
    pub key_b: LocalSigner,
    pub now: u64,
}

/// Which side acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

impl Pair {
    /// A channel with id 1 where `a` deposited `deposit_a` and `b` deposited `deposit_b`.
    pub fn new(deposit_a: U256, deposit_b: U256) -> Self {
        let (key_a, key_b) = (test_signer(1), test_signer(2));
        let id = U256::from(1u8);
        let mut a = Channel::new(test_domain(), id, key_a.address(), key_b.address());
        let mut b = Channel::new(test_domain(), id, key_b.address(), key_a.address());
        for ch in [&mut a, &mut b] {
            // Deposits only grow from zero here, so these cannot fail.
            let _ = ch.handle_ledger_deposit(key_a.address(), deposit_a);
            let _ = ch.handle_ledger_deposit(key_b.address(), deposit_b);
        }
        Self {
            a,
            b,
            key_a,
            key_b,
            now: 1_000,
        }
    }

    pub fn channel(&self, side: Side) -> &Channel {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }

    pub fn parts(&mut self, side: Side) -> (&mut Channel, &LocalSigner) {
        match side {
            Side::A => (&mut self.a, &self.key_a),
            Side::B => (&mut self.b, &self.key_b),
        }
    }

    /// Runs a command on `side` and delivers every message it emits to the other side, and
    /// so on until no message is left (bounded, to catch livelock).
    pub fn drive(
        &mut self,
        side: Side,
        command: impl FnOnce(&mut Channel, &LocalSigner, u64) -> Result<Vec<ChannelEvent>, ChannelError>,
    ) -> Result<Vec<ChannelEvent>, ChannelError> {
        let now = self.now;
        let (channel, key) = self.parts(side);
        let events = command(channel, key, now)?;
        let mut all = events.clone();
        let mut queue: Vec<(Side, ChannelMessage)> = sends(&events)
            .into_iter()
            .map(|m| (side.other(), m))
            .collect();
        let mut rounds = 0;
        while let Some((to, msg)) = queue.pop() {
            rounds += 1;
            assert!(rounds < 64, "message exchange does not terminate");
            let (channel, key) = self.parts(to);
            let out = channel.handle_message(&msg, now, key)?;
            queue.extend(sends(&out).into_iter().map(|m| (to.other(), m)));
            all.extend(out);
        }
        Ok(all)
    }

    /// `side` pays `amount` to the other.
    pub fn pay(&mut self, side: Side, amount: U256) -> Result<Vec<ChannelEvent>, ChannelError> {
        self.drive(side, |ch, key, _| ch.send_payment(amount, H256::ZERO, key))
    }
}

/// The messages among `events`.
pub fn sends(events: &[ChannelEvent]) -> Vec<ChannelMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            ChannelEvent::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}
