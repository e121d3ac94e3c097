//! The device's hub-proof stream delivers consecutive nonces whatever order the signing tasks
//! publish in: a proof published before the one it follows is preceded by the stored one, the
//! late one is not sent twice, and a gap the store cannot fill ends the stream for a replay.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use channel_core::testing::test_domain;
use channel_core::{SignedBalanceProof, U256};
use tokio::sync::{broadcast, mpsc};
use tonic::{Code, Status};
use voltlane_proto::v1;

use super::{run, NonceCursor, Step};
use crate::channels::{HubPayment, SentKind};
use crate::error::HubError;

const CHANNEL: u64 = 7;

fn proof(channel: u64, nonce: u64) -> HubPayment {
    let mut proof = SignedBalanceProof::none(test_domain(), U256::from(channel));
    proof.proof.nonce = nonce;
    HubPayment {
        channel_id: U256::from(channel),
        proof,
        amount: U256::from(nonce * 10),
        kind: SentKind::Payment,
    }
}

/// The proofs the hub stored for the channel (what the signing transitions wrote).
#[derive(Clone, Default)]
struct Store(Arc<Mutex<Vec<HubPayment>>>);

impl Store {
    fn holding(nonces: impl IntoIterator<Item = u64>) -> Self {
        let s = Self::default();
        s.0.lock()
            .unwrap()
            .extend(nonces.into_iter().map(|n| proof(CHANNEL, n)));
        s
    }

    fn after(&self, after: u64) -> Result<Vec<HubPayment>, HubError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.proof.proof.nonce > after)
            .cloned()
            .collect())
    }
}

/// Runs the stream over `backlog` and the `published` proofs (in that order), then closes
/// the fan-out; returns the nonces the device received and the status that ended the stream.
async fn deliver(
    after_nonce: u64,
    backlog: Vec<u64>,
    store: Store,
    published: Vec<HubPayment>,
) -> (Vec<u64>, Option<Status>) {
    let (live_tx, live) = broadcast::channel(64);
    let (tx, mut rx) = mpsc::channel::<Result<v1::HubPayment, Status>>(64);
    let backlog = backlog.into_iter().map(|n| proof(CHANNEL, n)).collect();
    for p in published {
        live_tx.send(p).unwrap();
    }
    // Closing the fan-out ends the stream (as a lag would) once everything before it is sent.
    drop(live_tx);
    let task = tokio::spawn(async move {
        run(
            U256::from(CHANNEL),
            after_nonce,
            backlog,
            live,
            move |after| store.after(after),
            tx,
            std::future::pending(),
        )
        .await
    });
    let mut nonces = Vec::new();
    let mut end = None;
    let bounded = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(m) = rx.recv().await {
            match m {
                Ok(p) => nonces.push(p.balance_proof.unwrap().proof.unwrap().nonce),
                Err(status) => end = Some(status),
            }
        }
    });
    bounded
        .await
        .expect("the stream ends once the fan-out closes");
    task.await.unwrap();
    (nonces, end)
}

#[tokio::test]
async fn a_proof_published_before_the_one_it_follows_comes_after_it() {
    // Nonces 1..=3 signed in order and stored; the task that signed 1 publishes it last.
    let store = Store::holding(1..=3);
    let (nonces, _) = deliver(
        0,
        vec![],
        store,
        vec![proof(CHANNEL, 2), proof(CHANNEL, 3), proof(CHANNEL, 1)],
    )
    .await;
    assert_eq!(nonces, vec![1, 2, 3], "every nonce once, in order");
}

#[tokio::test]
async fn overtaken_proofs_in_the_middle_of_a_stream_are_sent_from_the_store() {
    let store = Store::holding(1..=7);
    let published = [1, 2, 5, 3, 6, 4, 7].map(|n| proof(CHANNEL, n)).to_vec();
    let (nonces, _) = deliver(0, vec![], store, published).await;
    assert_eq!(nonces, (1..=7).collect::<Vec<_>>());
}

#[tokio::test]
async fn the_backlog_and_live_proofs_overlap_without_repeats_or_gaps() {
    // The device holds 3; the store replays 4 and 5; 5 and 6 are also published live, and 7
    // overtakes 6.
    let store = Store::holding(4..=7);
    let published = [5, 7, 6].map(|n| proof(CHANNEL, n)).to_vec();
    let (nonces, _) = deliver(3, vec![4, 5], store, published).await;
    assert_eq!(nonces, vec![4, 5, 6, 7]);
}

#[tokio::test]
async fn proofs_the_device_holds_and_other_channels_proofs_are_not_sent() {
    let store = Store::holding(5..=6);
    let published = vec![proof(CHANNEL, 5), proof(CHANNEL + 1, 6), proof(CHANNEL, 6)];
    let (nonces, _) = deliver(5, vec![], store, published).await;
    assert_eq!(nonces, vec![6]);
}

#[tokio::test]
async fn a_gap_the_store_cannot_fill_ends_the_stream_for_a_replay() {
    // Nonce 1 is not stored (the device's newer stream fetched and pruned it, say): the
    // device must reconnect with the nonce it holds rather than be sent 2.
    let store = Store::holding([2]);
    let (nonces, end) = deliver(0, vec![], store, vec![proof(CHANNEL, 2)]).await;
    assert!(nonces.is_empty(), "{nonces:?}");
    let end = end.expect("a status");
    assert_eq!(end.code(), Code::Aborted);
    assert!(end.message().contains("between nonce 0 and 2"), "{end:?}");
}

#[test]
fn the_cursor_sends_only_the_next_nonce() {
    let mut c = NonceCursor::new(4);
    assert_eq!(c.step(4), Step::Skip);
    assert_eq!(c.step(3), Step::Skip);
    assert_eq!(c.step(5), Step::Send);
    assert_eq!(c.step(7), Step::Gap { after: 4 });
    c.sent(5);
    assert_eq!(c.last(), 5);
    assert_eq!(c.step(5), Step::Skip);
    assert_eq!(c.step(6), Step::Send);
    assert_eq!(NonceCursor::new(u64::MAX).step(u64::MAX), Step::Skip);
}
