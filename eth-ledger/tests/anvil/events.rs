//! The event cursor: every contract event is returned by exactly one poll, and only once its
//! block has the configured number of confirmations.

use channel_core::ledger::LedgerEventKind;
use channel_core::Signer;
use channel_core::{Secret, H256};
use voltlane_eth::{EthereumLedger, EventCursor};

use super::common::{u, Devchain};

async fn poll(ledger: &EthereumLedger, cursor: &mut EventCursor) -> Vec<LedgerEventKind> {
    let (events, next) = ledger.poll_events(*cursor).await.unwrap();
    assert!(next >= *cursor, "the cursor never goes back");
    *cursor = next;
    events.into_iter().map(|e| e.kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_count_once_and_only_after_confirmations() {
    let chain = Devchain::start().await;
    let (key_a, key_b) = (chain.key(1), chain.key(2));
    let mut config = chain.config();
    config.confirmations = 3;
    let la = EthereumLedger::connect(&config, &key_a).await.unwrap();
    let (a, b) = (key_a.address(), key_b.address());

    let start = chain.node.block_number().await.unwrap() + 1;
    let mut cursor = EventCursor::from_block(start);

    let (id, opened) = la.open_channel(b, u(400)).await.unwrap();
    // Head block only: one confirmation of three.
    assert_eq!(poll(&la, &mut cursor).await, vec![]);
    chain.node.mine(1).await.unwrap();
    assert_eq!(poll(&la, &mut cursor).await, vec![]);
    assert!(
        cursor.next_block <= opened.block_number,
        "not past unconfirmed blocks"
    );
    chain.node.mine(1).await.unwrap();
    let seen = poll(&la, &mut cursor).await;
    assert_eq!(
        seen,
        vec![
            LedgerEventKind::ChannelOpened {
                channel_id: id,
                participant1: a,
                participant2: b,
                settlement_timeout: la.settle_timeout(),
            },
            LedgerEventKind::Deposit {
                channel_id: id,
                participant: a,
                total_deposit: u(400),
            },
        ]
    );
    assert_eq!(cursor.next_block, opened.block_number + 1);
    // Asked again: nothing twice.
    assert_eq!(poll(&la, &mut cursor).await, vec![]);

    let secret = Secret(H256([0x42; 32]));
    la.register_secret(secret).await.unwrap();
    la.mint(u(9)).await.unwrap();
    assert_eq!(poll(&la, &mut cursor).await, vec![]);
    chain.node.mine(1).await.unwrap();
    // The secret's block has three confirmations now, the mint's only two.
    assert_eq!(
        poll(&la, &mut cursor).await,
        vec![LedgerEventKind::SecretRegistered {
            secrethash: secret.hash(),
            secret,
        }]
    );
    chain.node.mine(1).await.unwrap();
    assert_eq!(
        poll(&la, &mut cursor).await,
        vec![LedgerEventKind::Minted {
            to: a,
            amount: u(9)
        }]
    );
    assert_eq!(poll(&la, &mut cursor).await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_history_is_read_in_bounded_ranges_without_loss() {
    let chain = Devchain::start().await;
    let key_a = chain.key(1);
    let mut config = chain.config();
    config.max_log_range = 3;
    let la = EthereumLedger::connect(&config, &key_a).await.unwrap();
    let start = chain.node.block_number().await.unwrap() + 1;
    for i in 1..=7u64 {
        la.mint(u(i)).await.unwrap();
        chain.node.mine(1).await.unwrap();
    }
    let mut cursor = EventCursor::from_block(start);
    let mut minted = Vec::new();
    let mut polls = 0;
    loop {
        let before = cursor;
        for kind in poll(&la, &mut cursor).await {
            match kind {
                LedgerEventKind::Minted { amount, .. } => minted.push(amount),
                other => panic!("unexpected {other:?}"),
            }
        }
        polls += 1;
        if cursor == before {
            break;
        }
    }
    assert_eq!(minted, (1..=7u64).map(u).collect::<Vec<_>>());
    assert!(
        polls >= 5,
        "14 blocks in ranges of 3 need at least 5 polls, took {polls}"
    );
}
