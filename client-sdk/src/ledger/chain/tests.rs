//! The follower state against an in-memory store: persist and reload, a crash between a poll
//! and its write, a store or chain of another deployment, and which events are kept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use channel_core::ledger::{ChannelPhase, LedgerEventKind};
use channel_core::primitives::{Address, H256, U256};
use channel_core::{Domain, Secret};
use voltlane_eth::{ChainEvent, EventCursor};

use super::state::{concerning, first_block_to_read, FollowerState};
use super::{check_deployment, ChainError, DeployedContracts};
use crate::store::{DeploymentId, DeviceStore};

const ME: Address = Address([1; 20]);
const HUB: Address = Address([2; 20]);
const OTHER: Address = Address([3; 20]);

fn deployment() -> DeploymentId {
    DeploymentId {
        chain_id: 31_337,
        token_network: Address([9; 20]),
    }
}

fn event(block_number: u64, log_index: u64, kind: LedgerEventKind) -> ChainEvent {
    ChainEvent {
        block_number,
        log_index,
        tx_hash: H256([block_number as u8; 32]),
        time: 1_000 + block_number,
        kind,
    }
}

fn opened(id: u64, a: Address, b: Address) -> LedgerEventKind {
    LedgerEventKind::ChannelOpened {
        channel_id: U256::from(id),
        participant1: a,
        participant2: b,
        settlement_timeout: 100,
    }
}

fn deposit(id: u64, who: Address, total: u64) -> LedgerEventKind {
    LedgerEventKind::Deposit {
        channel_id: U256::from(id),
        participant: who,
        total_deposit: U256::from(total),
    }
}

/// A poll over blocks 10..=12: our channel 1 opened and funded, someone else's channel 2, a
/// secret registration and mints to us and to someone else.
fn first_poll() -> Vec<ChainEvent> {
    vec![
        event(10, 0, opened(1, ME, HUB)),
        event(10, 1, opened(2, OTHER, HUB)),
        event(11, 0, deposit(1, ME, 50)),
        event(11, 1, deposit(2, OTHER, 70)),
        event(
            12,
            0,
            LedgerEventKind::SecretRegistered {
                secrethash: Secret(H256([5; 32])).hash(),
                secret: Secret(H256([5; 32])),
            },
        ),
        event(
            12,
            1,
            LedgerEventKind::Minted {
                to: OTHER,
                amount: U256::from(1u8),
            },
        ),
        event(
            12,
            2,
            LedgerEventKind::Minted {
                to: ME,
                amount: U256::from(2u8),
            },
        ),
    ]
}

async fn persist(store: &DeviceStore, state: &FollowerState) {
    store.put_chain_follower(&state.record()).await.unwrap();
}

#[test]
fn only_the_devices_events_are_kept_and_numbered_consecutively() {
    let state = FollowerState::new(deployment(), 10);
    let advance = state
        .advance(ME, first_poll(), EventCursor::from_block(13), 1_012, 0)
        .unwrap()
        .unwrap();
    let seqs: Vec<u64> = advance.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let kinds: Vec<&LedgerEventKind> = advance.events.iter().map(|e| &e.kind).collect();
    assert_eq!(kinds[0], &opened(1, ME, HUB));
    assert_eq!(kinds[1], &deposit(1, ME, 50));
    assert!(matches!(kinds[2], LedgerEventKind::SecretRegistered { .. }));
    assert!(matches!(kinds[3], LedgerEventKind::Minted { to, .. } if *to == ME));
    let mirror = &advance.state.mirror;
    assert!(mirror.channel(U256::from(2u8)).is_none(), "not our channel");
    let ours = mirror.channel(U256::from(1u8)).unwrap();
    assert_eq!(ours.phase, ChannelPhase::Opened);
    assert_eq!(ours.participants[0].total_deposit, U256::from(50u8));
    assert_eq!(advance.state.time, 1_012);
    assert_eq!(advance.state.cursor, EventCursor::from_block(13));
    assert_eq!(advance.state.undelivered, advance.events);
    // The filter alone: a later event of someone else's channel stays out.
    let later = concerning(ME, mirror, vec![event(14, 0, deposit(2, HUB, 5))]);
    assert!(later.is_empty());
}

#[tokio::test]
async fn the_state_survives_a_reload_from_its_one_record() {
    let store = DeviceStore::in_memory();
    let fresh = FollowerState::load(&store, deployment(), 10).unwrap();
    assert_eq!(fresh, FollowerState::new(deployment(), 10));
    let advance = fresh
        .advance(ME, first_poll(), EventCursor::from_block(13), 1_012, 0)
        .unwrap()
        .unwrap();
    store.put_chain_follower(&advance.record).await.unwrap();
    let reloaded = FollowerState::load(&store, deployment(), 10).unwrap();
    assert_eq!(reloaded, advance.state);
    assert_eq!(reloaded.last_seq(), 4);
    // An announced start block that changed later does not move the stored cursor.
    let moved = FollowerState::load(&store, deployment(), 500).unwrap();
    assert_eq!(moved.cursor, EventCursor::from_block(13));
    assert_eq!(moved.start_block, 10);
}

#[tokio::test]
async fn a_crash_between_poll_and_write_reads_the_same_events_with_the_same_seqs() {
    let store = DeviceStore::in_memory();
    let state = FollowerState::new(deployment(), 10);
    let first = state
        .advance(ME, first_poll(), EventCursor::from_block(13), 1_012, 0)
        .unwrap()
        .unwrap();
    persist(&store, &first.state).await;
    let second_poll = vec![
        event(13, 0, deposit(1, HUB, 30)),
        event(14, 0, deposit(2, OTHER, 80)),
    ];
    let before_crash = first
        .state
        .advance(
            ME,
            second_poll.clone(),
            EventCursor::from_block(15),
            1_014,
            4,
        )
        .unwrap()
        .unwrap();
    // Crash: the record of the second poll was never written.
    let reloaded = FollowerState::load(&store, deployment(), 10).unwrap();
    assert_eq!(reloaded, first.state);
    assert_eq!(reloaded.cursor, EventCursor::from_block(13));
    let again = reloaded
        .advance(ME, second_poll, EventCursor::from_block(15), 1_014, 4)
        .unwrap()
        .unwrap();
    assert_eq!(again.events, before_crash.events);
    assert_eq!(again.events.len(), 1);
    assert_eq!(again.events[0].seq, 5);
    assert_eq!(again.record, before_crash.record);
    // Events the channel applied (seq <= 4) are no longer kept as undelivered.
    assert_eq!(again.state.undelivered, again.events);
}

#[tokio::test]
async fn undelivered_events_are_kept_until_the_channel_applied_them() {
    let store = DeviceStore::in_memory();
    let state = FollowerState::new(deployment(), 10);
    let first = state
        .advance(ME, first_poll(), EventCursor::from_block(13), 1_012, 0)
        .unwrap()
        .unwrap();
    // The channel applied events 1 and 2 only, then the device crashed.
    let quiet = first
        .state
        .advance(ME, Vec::new(), EventCursor::from_block(14), 1_013, 2)
        .unwrap()
        .unwrap();
    assert!(quiet.events.is_empty());
    assert_eq!(
        quiet
            .state
            .undelivered
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![3, 4]
    );
    store.put_chain_follower(&quiet.record).await.unwrap();
    let reloaded = FollowerState::load(&store, deployment(), 10).unwrap();
    assert_eq!(reloaded.undelivered_after(2).len(), 2);
    assert_eq!(reloaded.undelivered_after(3)[0].seq, 4);
    assert!(reloaded.undelivered_after(4).is_empty());
    // A poll that moved nothing writes nothing.
    assert!(reloaded
        .advance(ME, Vec::new(), EventCursor::from_block(14), 0, 4)
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_store_of_another_deployment_is_refused() {
    let store = DeviceStore::in_memory();
    let first = FollowerState::new(deployment(), 10)
        .advance(ME, first_poll(), EventCursor::from_block(13), 1_012, 0)
        .unwrap()
        .unwrap();
    store.put_chain_follower(&first.record).await.unwrap();
    let other_network = DeploymentId {
        token_network: Address([8; 20]),
        ..deployment()
    };
    let err = FollowerState::load(&store, other_network, 10).unwrap_err();
    assert!(matches!(err, ChainError::OtherDeployment { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("use another store"), "{text}");
    let other_chain = DeploymentId {
        chain_id: 1,
        ..deployment()
    };
    assert!(matches!(
        FollowerState::load(&store, other_chain, 10),
        Err(ChainError::OtherDeployment {
            stored_chain: 31_337,
            chain: 1,
            ..
        })
    ));
}

#[tokio::test]
async fn a_record_that_contradicts_itself_is_refused() {
    let store = DeviceStore::in_memory();
    let first = FollowerState::new(deployment(), 10)
        .advance(ME, first_poll(), EventCursor::from_block(13), 1_012, 0)
        .unwrap()
        .unwrap();
    let mut record = first.record;
    record.undelivered.reverse();
    store.put_chain_follower(&record).await.unwrap();
    let err = FollowerState::load(&store, deployment(), 10).unwrap_err();
    assert!(matches!(err, ChainError::Inconsistent(_)), "{err}");
}

#[test]
fn a_cursor_going_back_is_refused_and_changes_nothing() {
    let state = FollowerState::new(deployment(), 10);
    let err = state
        .advance(ME, Vec::new(), EventCursor::from_block(9), 0, 0)
        .unwrap_err();
    assert!(matches!(err, ChainError::Internal(_)), "{err}");
}

fn contracts() -> DeployedContracts {
    DeployedContracts {
        domain: Domain {
            chain_id: U256::from(31_337u64),
            token_network_address: Address([9; 20]),
        },
        token: Address([10; 20]),
        secret_registry: Address([11; 20]),
        settlement_timeout: 100,
    }
}

#[test]
fn a_chain_with_other_contracts_than_the_hub_announces_is_refused() {
    check_deployment(&contracts(), &contracts()).unwrap();
    let cases: [(&str, DeployedContracts); 5] = [
        (
            "chain id",
            DeployedContracts {
                domain: Domain {
                    chain_id: U256::from(1u8),
                    ..contracts().domain
                },
                ..contracts()
            },
        ),
        (
            "token network",
            DeployedContracts {
                domain: Domain {
                    token_network_address: Address([12; 20]),
                    ..contracts().domain
                },
                ..contracts()
            },
        ),
        (
            "token",
            DeployedContracts {
                token: Address([13; 20]),
                ..contracts()
            },
        ),
        (
            "secret registry",
            DeployedContracts {
                secret_registry: Address([14; 20]),
                ..contracts()
            },
        ),
        (
            "settlement timeout",
            DeployedContracts {
                settlement_timeout: 7,
                ..contracts()
            },
        ),
    ];
    for (what, found) in cases {
        let err = check_deployment(&contracts(), &found).unwrap_err();
        assert!(
            matches!(&err, ChainError::WrongDeployment { what: w, .. } if *w == what),
            "{what}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("refusing a hub"), "{text}");
        assert!(text.contains(what), "{text}");
    }
}

/// A new follower starts at the hub's announced start block, but never after the head at
/// the first connect: a hub announcing a future block cannot hide its close of a channel the
/// device opens afterwards.
#[test]
fn a_new_follower_never_starts_after_the_head() {
    assert_eq!(first_block_to_read(900, 1_200), 900);
    assert_eq!(first_block_to_read(1_200, 1_200), 1_200);
    let store = DeviceStore::in_memory();
    let state =
        FollowerState::load(&store, deployment(), first_block_to_read(5_000, 1_200)).unwrap();
    assert_eq!(state.cursor, EventCursor::from_block(1_200));
}
