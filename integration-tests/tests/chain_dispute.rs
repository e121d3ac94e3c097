//! The hub on a real chain: anvil running Raiden's TokenNetwork 0.50, the real hub process
//! with `--ledger ethereum`, a device that opens its channel on the chain with its own key,
//! pays the hub off-chain, then closes on the chain without any proof of the hub's (so its
//! payments would go unrecorded). The hub's follower sees the close, its watcher contests with
//! the device's latest proof (a real `updateNonClosingBalanceProof` transaction), and once the
//! chain's clock passes the settlement window it settles: the token balances on the chain are
//! exactly the off-chain balances. The same scenario runs on the embedded ledger too, and both
//! pay out the same. And many devices closing in one block are contested together, not one
//! block (plus confirmations) after another.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use channel_core::channel::CloseTransaction;
use channel_core::ledger::LedgerOp;
use channel_core::primitives::{Address, U256};
use channel_core::SignedBalanceProof;
use integration_tests::chain::{chain_device, eventually, ChainHub};
use integration_tests::device::{device_key, device_nonce};
use integration_tests::settlement::ledger_outcome;
use integration_tests::{within, HubOptions, HubProcess, PayAck, TestDevice};
use voltlane_eth::EthereumLedger;
use voltlane_proto::v1;

/// Settlement window on the chain (seconds of chain time, skipped by moving its clock).
const CHAIN_WINDOW: u64 = 100;
/// Settlement window on the embedded ledger (seconds of wall-clock time).
const EMBEDDED_WINDOW: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_chain_the_hub_contests_a_device_close_and_settles_exactly() {
    within(Duration::from_secs(240), "chain dispute", async {
        let mut net = Net::chain(false).await;
        assert_eq!(scenario(&mut net, false).await, exact());
    })
    .await
    .unwrap();
}

/// The same, but right after the device's close the hub loses its node, is killed with
/// SIGKILL while the node is away, and restarts once the node is back: the close is still
/// contested, and the hub sent exactly two transactions (the update and the settle), none
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outage_and_a_hub_kill_do_not_lose_or_double_the_contest() {
    within(
        Duration::from_secs(240),
        "chain dispute with an outage",
        async {
            let mut net = Net::chain(true).await;
            assert_eq!(scenario(&mut net, true).await, exact());
            let Net::Chain { net, device } = &net else {
                unreachable!()
            };
            let hub = net.hub_address();
            assert_eq!(device.node().transaction_count(hub).await.unwrap(), 2);
        },
    )
    .await
    .unwrap();
}

/// One scenario, two ledgers: the payouts are identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_ledger_and_the_chain_pay_out_the_same() {
    within(Duration::from_secs(240), "embedded vs chain", async {
        let mut embedded = Net::embedded().await;
        let on_embedded = scenario(&mut embedded, false).await;
        let mut chain = Net::chain(false).await;
        let on_chain = scenario(&mut chain, false).await;
        assert_eq!(on_embedded, on_chain);
        assert_eq!(on_chain, exact());
    })
    .await
    .unwrap();
}

/// What the ledger paid each side, and the device nonce the hub's contest put on it.
#[derive(Debug, PartialEq, Eq)]
struct Payout {
    device: U256,
    hub: U256,
    contested_nonce: u64,
}

/// The off-chain balances after the scenario's payments: the device paid 30 of its 100, and
/// the hub's contest put the device's tenth (latest) proof on the ledger.
fn exact() -> Payout {
    Payout {
        device: U256::from(70u64),
        hub: U256::from(30u64),
        contested_nonce: 10,
    }
}

/// The hub and the device's own way to its ledger. (Two values per test: their sizes do
/// not matter.)
#[allow(clippy::large_enum_variant)]
enum Net {
    Embedded {
        hub: HubProcess,
    },
    Chain {
        net: Box<ChainHub>,
        device: EthereumLedger,
    },
}

impl Net {
    async fn embedded() -> Self {
        let hub = HubProcess::start(HubOptions {
            settlement_window_secs: EMBEDDED_WINDOW,
            ..HubOptions::default()
        })
        .await
        .unwrap();
        Net::Embedded { hub }
    }

    async fn chain(outage: bool) -> Self {
        let net = ChainHub::start_with(CHAIN_WINDOW, 3, &[], outage)
            .await
            .unwrap();
        let device = net.ledger(&net.key(2).unwrap()).await.unwrap();
        Net::Chain {
            net: Box::new(net),
            device,
        }
    }

    fn hub(&mut self) -> &mut HubProcess {
        match self {
            Net::Embedded { hub } => hub,
            Net::Chain { net, .. } => &mut net.hub,
        }
    }

    async fn login(&mut self) -> TestDevice {
        let key = match self {
            Net::Embedded { .. } => device_key(31, 0).unwrap(),
            Net::Chain { net, .. } => net.key(2).unwrap(),
        };
        TestDevice::login(self.hub().connect().await.unwrap(), key)
            .await
            .unwrap()
    }

    /// Opens the device's channel with `deposit`, as the device, on its ledger.
    async fn open(&self, device: &mut TestDevice, deposit: U256) {
        match self {
            Net::Embedded { .. } => {
                device.open_channel(deposit).await.unwrap();
            }
            Net::Chain { device: eth, .. } => {
                let (me, hub) = (device.address(), device.hub_address());
                eth.execute(&LedgerOp::OpenChannel {
                    partner: hub,
                    total_deposit: deposit,
                })
                .await
                .unwrap();
                let id = eth.channel_identifier(me, hub).await.unwrap();
                device.track_channel(id, deposit).unwrap();
            }
        }
    }

    /// Closes as the device with "no proof" of the hub.
    async fn close_without_proof(&self, device: &TestDevice) {
        match self {
            Net::Embedded { .. } => device.close_on_ledger(None).await.unwrap(),
            Net::Chain { device: eth, .. } => {
                let id = device.channel_id().unwrap();
                let none = SignedBalanceProof::none(*device.channel().unwrap().domain(), id);
                let closing_signature = none.counter_sign_close(device.key()).unwrap();
                eth.execute(&LedgerOp::Close(CloseTransaction {
                    channel_id: id,
                    partner_proof: none,
                    closing_signature,
                }))
                .await
                .unwrap();
            }
        }
    }

    async fn token_balance(&self, device: &TestDevice, who: Address) -> U256 {
        match self {
            Net::Embedded { .. } => device.token_balance(who).await.unwrap(),
            Net::Chain { device: eth, .. } => eth.token_balance(who).await.unwrap(),
        }
    }

    /// The device nonce the ledger stores for the channel (0 before any contest).
    async fn device_nonce_on_ledger(&self, device: &TestDevice) -> u64 {
        let (id, me, hub) = (
            device.channel_id().unwrap(),
            device.address(),
            device.hub_address(),
        );
        match self {
            Net::Embedded { .. } => ledger_outcome(&mut device.ledger(), id, me)
                .await
                .unwrap()
                .device_nonce
                .unwrap_or(0),
            Net::Chain { device: eth, .. } => {
                eth.participant_info(id, me, hub).await.unwrap().nonce
            }
        }
    }

    /// Lets the settlement window pass: the chain's clock is moved; the embedded ledger's is
    /// the wall clock, already running.
    async fn pass_window(&self) {
        if let Net::Chain { net, .. } = self {
            net.advance(CHAIN_WINDOW + 1).await.unwrap();
        }
    }
}

async fn scenario(net: &mut Net, outage: bool) -> Payout {
    let mut device = net.login().await;
    let info = integration_tests::device::hub_info(net.hub().connect().await.unwrap())
        .await
        .unwrap();
    match net {
        Net::Embedded { .. } => {
            assert_eq!(info.ledger_kind(), v1::LedgerKind::Embedded);
            assert!(info.token_address.is_empty());
        }
        Net::Chain { net, .. } => {
            // The hub tells devices where it settles.
            assert_eq!(info.ledger_kind(), v1::LedgerKind::Ethereum);
            let d = &net.chain.deployment;
            assert_eq!(
                info.token_network_address,
                d.token_network.as_bytes().to_vec()
            );
            assert_eq!(info.token_address, d.token.as_bytes().to_vec());
            assert_eq!(
                info.secret_registry_address,
                d.secret_registry.as_bytes().to_vec()
            );
            assert_eq!(info.start_block, d.deploy_block);
            assert_eq!(info.settlement_timeout, CHAIN_WINDOW);
            assert!(!info.dev_faucet, "a chain has no faucet");
        }
    }
    let (me, hub) = (device.address(), device.hub_address());

    // The device opens and funds its channel on its ledger, itself.
    let deposit = U256::from(100u64);
    net.open(&mut device, deposit).await;
    // The hub sees it once it read the ledger (on a chain: its follower, the block).
    eventually(
        Duration::from_secs(20),
        "the hub to see the deposit",
        || async {
            Ok(device
                .hub_view()
                .await
                .ok()
                .filter(|v| U256::from_be_slice(&v.device_deposit) == deposit))
        },
    )
    .await
    .unwrap();

    // Ten payments of 3: the hub is owed 30.
    let three = U256::from(3u64);
    let mut session = device.pay_session(16).await.unwrap();
    for _ in 0..10 {
        session
            .send(device.next_payment(three).unwrap())
            .await
            .unwrap();
    }
    session.finish();
    for _ in 0..10 {
        let ack = session.next_ack().await.unwrap().unwrap();
        assert!(matches!(ack, PayAck::Accepted { .. }), "{ack:?}");
    }
    assert_eq!(device_nonce(&device.hub_view().await.unwrap()), 10);
    let device_before = net.token_balance(&device, me).await;
    let hub_before = net.token_balance(&device, hub).await;

    net.close_without_proof(&device).await;
    if outage {
        let Net::Chain { net, .. } = net else {
            unreachable!("outages are a chain scenario")
        };
        let proxy = net.proxy.as_ref().expect("started with a proxy");
        proxy.set_down(true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        net.hub.kill9().unwrap();
        proxy.set_down(false);
        net.hub.restart().await.unwrap();
    }

    // The hub contests with the device's latest proof (nonce 10) inside the window.
    let contested_nonce = eventually(Duration::from_secs(30), "the hub's update", || async {
        let nonce = net.device_nonce_on_ledger(&device).await;
        Ok((nonce > 0).then_some(nonce))
    })
    .await
    .unwrap();

    // Past the window, the hub settles.
    net.pass_window().await;
    let hub_after = eventually(Duration::from_secs(30), "the hub's settle", || async {
        let now = net.token_balance(&device, hub).await;
        Ok((now != hub_before).then_some(now))
    })
    .await
    .unwrap();
    let device_after = net.token_balance(&device, me).await;
    Payout {
        device: device_after - device_before,
        hub: hub_after - hub_before,
        contested_nonce,
    }
}

/// Six devices close in the same block, each without any proof of the hub's, on a chain that
/// mines a block a second. The hub contests all six within a few blocks of each other: its
/// monitor submits for many channels at once and does not wait for one contest's
/// confirmations before sending the next. One at a time, each contest would cost its own
/// block plus the confirmations, so a hundred closes at once would outlast a settlement
/// window of a few hundred blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_closes_in_one_block_are_contested_together() {
    const DEVICES: usize = 6;
    within(Duration::from_secs(240), "many closes", async {
        let net = ChainHub::start(
            CHAIN_WINDOW,
            2 + DEVICES as u8,
            &["--eth-confirmations", "2"],
        )
        .await
        .unwrap();
        // Blocks keep coming while the devices set up (an event needs two confirmations).
        let clock = net.run_clock(Duration::from_millis(300), 1);
        let mut devices = Vec::new();
        for i in 0..DEVICES {
            let (mut device, eth) = chain_device(&net, 2 + i, U256::from(100u64), U256::ZERO)
                .await
                .unwrap();
            let mut session = device.pay_session(1).await.unwrap();
            session
                .send(device.next_payment(U256::from(3u64)).unwrap())
                .await
                .unwrap();
            session.finish();
            let ack = session.next_ack().await.unwrap().unwrap();
            assert!(matches!(ack, PayAck::Accepted { .. }), "{ack:?}");
            devices.push((device, eth));
        }

        // From here on a block every second, so a transaction waits for its block.
        drop(clock);
        let node = &net.chain.node;
        node.dev_request("evm_setIntervalMining", serde_json::json!([1]))
            .await
            .unwrap();
        futures::future::join_all(devices.iter().map(|(device, eth)| async move {
            let id = device.channel_id().unwrap();
            let none = SignedBalanceProof::none(*device.channel().unwrap().domain(), id);
            eth.execute(&LedgerOp::Close(CloseTransaction {
                channel_id: id,
                partner_proof: none,
                closing_signature: none.counter_sign_close(device.key()).unwrap(),
            }))
            .await
            .unwrap();
        }))
        .await;
        let closed_at = node.block_number().await.unwrap();

        // The block in which each device's contest shows.
        let mut contested_at: Vec<Option<u64>> = vec![None; DEVICES];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while contested_at.iter().any(Option::is_none) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "contested: {contested_at:?}"
            );
            let block = node.block_number().await.unwrap();
            for ((device, eth), at) in devices.iter().zip(contested_at.iter_mut()) {
                if at.is_none() {
                    let (id, me) = (device.channel_id().unwrap(), device.address());
                    let info = eth
                        .participant_info(id, me, device.hub_address())
                        .await
                        .unwrap();
                    if info.nonce > 0 {
                        assert_eq!(info.nonce, 1, "the device's latest proof");
                        *at = Some(block);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let blocks: Vec<u64> = contested_at.into_iter().flatten().collect();
        let (first, last) = (blocks.iter().min().unwrap(), blocks.iter().max().unwrap());
        assert!(
            last - first <= 3,
            "contests spread over blocks {first}..={last} (closes in block {closed_at})"
        );
    })
    .await
    .unwrap();
}
