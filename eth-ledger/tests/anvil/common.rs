//! Test support: a dev chain per test (anvil on a free loopback port plus a fresh
//! deployment), connected ledgers for two participants, and a two-party off-chain harness
//! whose proofs are bound to the chain's domain.

use channel_core::channel::{Channel, ChannelEvent};
use channel_core::testing::sends;
use channel_core::{Address, Domain, LocalSigner, Signer, H256, U256};
use voltlane_eth::artifacts::Artifacts;
use voltlane_eth::devnet::{self, Devnet};
use voltlane_eth::{DeployParams, EthereumLedger};

/// Settlement window used by the tests (seconds of chain time, skipped with evm_increaseTime).
pub const SETTLE_TIMEOUT: u64 = 100;
/// Tokens each dev key holds after deployment.
pub const TOKENS_PER_KEY: u64 = 1_000_000_000;

/// contracts.json from `.devchain/` (installed first when missing; see
/// `voltlane_eth::devnet::ensure_installed`). For plain `#[test]`s (it runs its own runtime).
pub fn artifacts() -> Artifacts {
    let dir = std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(devnet::ensure_installed())
            .expect("install the dev chain")
    })
    .join()
    .expect("install thread");
    Artifacts::load(&dir.join("contracts.json")).expect("contracts.json")
}

/// One anvil process with the contracts deployed (a [`Devnet`]), killed on drop.
#[derive(Debug)]
pub struct Devchain {
    pub net: Devnet,
}

impl std::ops::Deref for Devchain {
    type Target = Devnet;

    fn deref(&self) -> &Devnet {
        &self.net
    }
}

impl Devchain {
    pub async fn start() -> Self {
        let params = DeployParams {
            settle_timeout: SETTLE_TIMEOUT,
            dev_keys: 3,
            tokens_per_key: U256::from(TOKENS_PER_KEY),
            ..DeployParams::default()
        };
        Self {
            net: Devnet::start(&params).await.expect("start the dev chain"),
        }
    }

    /// Dev key `i` (1 and 2 are the participants; 0 deployed).
    pub fn key(&self, i: usize) -> LocalSigner {
        self.net.key(i).expect("dev key")
    }

    pub async fn ledger(&self, key: &LocalSigner) -> EthereumLedger {
        EthereumLedger::connect(&self.config(), key)
            .await
            .expect("connect")
    }

    /// Dev keys 1 and 2, each with its own connection, and their token balances now.
    pub async fn parties(&self) -> Parties {
        let (key_a, key_b) = (self.key(1), self.key(2));
        let (la, lb) = (self.ledger(&key_a).await, self.ledger(&key_b).await);
        let (a, b) = (key_a.address(), key_b.address());
        let a0 = la.token_balance(a).await.expect("balance of a");
        let b0 = la.token_balance(b).await.expect("balance of b");
        Parties {
            key_a,
            key_b,
            la,
            lb,
            a,
            b,
            a0,
            b0,
        }
    }
}

/// The two participants of a test: keys, ledgers, addresses and starting token balances.
#[derive(Debug)]
pub struct Parties {
    pub key_a: LocalSigner,
    pub key_b: LocalSigner,
    pub la: EthereumLedger,
    pub lb: EthereumLedger,
    pub a: Address,
    pub b: Address,
    pub a0: U256,
    pub b0: U256,
}

/// Two participants' channel views on one domain, with messages handed across directly.
#[derive(Debug)]
pub struct Pair {
    pub a: Channel,
    pub b: Channel,
    pub key_a: LocalSigner,
    pub key_b: LocalSigner,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Pair {
    pub fn new(domain: Domain, id: U256, key_a: LocalSigner, key_b: LocalSigner) -> Self {
        let a = Channel::new(domain, id, key_a.address(), key_b.address());
        let b = Channel::new(domain, id, key_b.address(), key_a.address());
        Self { a, b, key_a, key_b }
    }

    pub fn deposit(&mut self, side: Side, total: U256) {
        let who = match side {
            Side::A => self.key_a.address(),
            Side::B => self.key_b.address(),
        };
        self.a.handle_ledger_deposit(who, total).unwrap();
        self.b.handle_ledger_deposit(who, total).unwrap();
    }

    /// Runs `command` on `side`, then hands every message across until none is left.
    pub fn drive(
        &mut self,
        side: Side,
        now: u64,
        command: impl FnOnce(&mut Channel, &LocalSigner) -> Vec<ChannelEvent>,
    ) -> Vec<ChannelEvent> {
        let (first, key) = match side {
            Side::A => (&mut self.a, &self.key_a),
            Side::B => (&mut self.b, &self.key_b),
        };
        let events = command(first, key);
        let mut all = events.clone();
        let mut queue: Vec<(Side, _)> = sends(&events)
            .into_iter()
            .map(|m| (other(side), m))
            .collect();
        let mut rounds = 0;
        while let Some((to, msg)) = queue.pop() {
            rounds += 1;
            assert!(rounds < 64, "message exchange does not terminate");
            let (ch, key) = match to {
                Side::A => (&mut self.a, &self.key_a),
                Side::B => (&mut self.b, &self.key_b),
            };
            let out = ch.handle_message(&msg, now, key).unwrap();
            queue.extend(sends(&out).into_iter().map(|m| (other(to), m)));
            all.extend(out);
        }
        all
    }

    pub fn pay(&mut self, side: Side, amount: u64) {
        self.drive(side, 0, |ch, key| {
            ch.send_payment(U256::from(amount), H256::ZERO, key)
                .unwrap()
        });
    }
}

fn other(s: Side) -> Side {
    match s {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

pub fn u(v: u64) -> U256 {
    U256::from(v)
}
