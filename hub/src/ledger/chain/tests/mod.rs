//! The chain ledger against anvil running Raiden's TokenNetwork 0.50 (`voltlane_eth::devnet`):
//! the follower mirrors what a participant does on the chain, persists it with the cursor,
//! replays it to subscribers after a restart, refuses a data directory of another deployment,
//! and `HubLedger::execute` returns once the operation's effect is in the mirror.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use channel_core::ledger::{ChannelPhase, LedgerEventKind, LedgerOp, LedgerState};
use channel_core::{Address, Signer, U256};
use voltlane_eth::devnet::Devnet;
use voltlane_eth::{DeployParams, EthereumLedger};

use super::state::{CursorRecord, DeploymentId, CHAIN_RECORD_VERSION, KEY_CURSOR, NS_CHAIN_LEDGER};
use super::{ChainLedger, ChainLedgerConfig};
use crate::error::HubError;
use crate::ledger::HubLedger;
use crate::store::{record, KvStore, MemoryStore, WriteBatch};

async fn devnet() -> Devnet {
    Devnet::start(&DeployParams {
        settle_timeout: 100,
        dev_keys: 3,
        tokens_per_key: U256::from(1_000_000u64),
        ..DeployParams::default()
    })
    .await
    .expect("dev chain")
}

fn config(net: &Devnet) -> ChainLedgerConfig {
    ChainLedgerConfig {
        eth: net.config(),
        start_block: net.deployment.deploy_block,
    }
}

#[tokio::test]
async fn the_follower_mirrors_persists_and_replays_after_a_restart() {
    let net = devnet().await;
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let operator = net.key(1).unwrap();
    let device = net.key(2).unwrap();
    let hub = operator.address();
    let chain = ChainLedger::connect(&config(&net), &operator, store.clone())
        .await
        .unwrap();
    assert_eq!(chain.domain(), net.domain());
    assert_eq!(chain.token(), net.deployment.token);
    // The deployment minted tokens to the dev keys: those are the first events.
    chain.follow_once().await.unwrap();
    let base = chain.durable_seq().unwrap();
    let (minted, mut live) = chain.subscribe(1).unwrap();
    assert_eq!(minted.len() as u64, base);
    assert!(minted
        .iter()
        .all(|e| matches!(e.kind, LedgerEventKind::Minted { .. })));

    // The device opens a channel with the hub on the chain, with a deposit.
    let eth = EthereumLedger::connect(&net.config(), &device)
        .await
        .unwrap();
    eth.execute(&LedgerOp::OpenChannel {
        partner: hub,
        total_deposit: U256::from(40u8),
    })
    .await
    .unwrap();
    let id = eth.channel_identifier(device.address(), hub).await.unwrap();
    assert_eq!(chain.follow_once().await.unwrap(), 2, "opened + deposit");
    let record = chain
        .read(|m| m.channel_record(id).cloned())
        .unwrap()
        .expect("mirrored");
    assert_eq!(record.phase, ChannelPhase::Opened);
    assert_eq!(
        record.participant(device.address()).unwrap().total_deposit,
        U256::from(40u8)
    );
    let first = live.recv().await.unwrap();
    assert!(matches!(
        first.event.kind,
        LedgerEventKind::ChannelOpened { .. }
    ));
    assert!(first.concerns(hub) && first.concerns(device.address()));
    let time = chain.now().unwrap();
    assert!(time > 0, "ledger time is the block's timestamp");

    // A restart on the same store: same mirror, same events, nothing read twice.
    drop(chain);
    let again = ChainLedger::connect(&config(&net), &operator, store.clone())
        .await
        .unwrap();
    assert_eq!(again.durable_seq().unwrap(), base + 2);
    assert_eq!(again.now().unwrap(), time);
    let (replay, _) = again.subscribe(1).unwrap();
    assert_eq!(replay.len() as u64, base + 2);
    assert_eq!(again.follow_once().await.unwrap(), 0);
    assert_eq!(
        again.read(|m| m.channel_record(id).cloned()).unwrap(),
        Some(record)
    );
}

#[tokio::test]
async fn execute_returns_once_the_effect_is_mirrored() {
    let net = devnet().await;
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let operator = net.key(1).unwrap();
    let device = net.key(2).unwrap();
    let chain = Arc::new(
        ChainLedger::connect(&config(&net), &operator, store)
            .await
            .unwrap(),
    );
    let ledger = HubLedger::Chain(chain.clone());
    // The hub opens a channel with the device and deposits, as one operation.
    let open = LedgerOp::OpenChannel {
        partner: device.address(),
        total_deposit: U256::from(25u8),
    };
    let executed = ledger.execute(operator.address(), &open).await.unwrap();
    assert!(executed.tx_hash.is_some());
    let kinds: Vec<_> = executed.events.iter().map(|e| e.kind.clone()).collect();
    assert!(
        matches!(
            kinds.as_slice(),
            [
                LedgerEventKind::ChannelOpened { .. },
                LedgerEventKind::Deposit { .. }
            ]
        ),
        "{kinds:?}"
    );
    let id = kinds[0].channel_id().unwrap();
    let mine = ledger
        .read(|l| {
            l.channel_record(id)
                .and_then(|r| r.participant(operator.address()).map(|p| p.total_deposit))
        })
        .unwrap();
    assert_eq!(mine, Some(U256::from(25u8)), "visible when execute returns");
    // Someone else's key is refused before anything is sent.
    let err = ledger
        .execute(device.address(), &open)
        .await
        .expect_err("not the operator");
    assert!(matches!(err, HubError::Internal(_)), "{err}");
    assert_eq!(
        ledger.token_balance(Address::ZERO).await.unwrap(),
        U256::ZERO
    );
}

#[tokio::test]
async fn a_data_directory_of_another_deployment_is_refused() {
    let net = devnet().await;
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let mut batch = WriteBatch::new();
    let cursor = CursorRecord {
        deployment: DeploymentId {
            chain_id: net.deployment.chain_id,
            token_network: Address([0x77; 20]),
        },
        start_block: 0,
        next_block: 5,
        last_seq: 0,
        time: 0,
        mirror_time: 0,
    };
    batch.put(
        NS_CHAIN_LEDGER,
        KEY_CURSOR,
        record::encode(CHAIN_RECORD_VERSION, &cursor).unwrap(),
    );
    store.write(batch).unwrap().durable().await.unwrap();
    let err = ChainLedger::connect(&config(&net), &net.key(1).unwrap(), store)
        .await
        .expect_err("another deployment");
    assert!(
        matches!(&err, HubError::Config(m) if m.contains("follows token network")),
        "{err}"
    );
}
