//! The channel book on the in-memory store: every change goes through one transition, so what
//! is in memory is what is on disk (a reload finds exactly the same channels), replayed ledger
//! events change nothing, and a refused input writes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use channel_core::channel::{Channel, ChannelEvent, ChannelMessage};
use channel_core::crypto::{LocalSigner, Signer};
use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::testing::{test_domain, test_signer};
use channel_core::{SignedBalanceProof, H256, U256};

use super::book::ChannelBook;
use crate::error::HubError;
use crate::store::{KvStore, MemoryStore};

fn u(n: u64) -> U256 {
    U256::from(n)
}

struct Fixture {
    store: Arc<dyn KvStore>,
    operator: Arc<LocalSigner>,
    book: ChannelBook,
    /// Each device's own view of its channel, to sign payments with.
    devices: Vec<(LocalSigner, Channel)>,
    seq: u64,
}

impl Fixture {
    /// A hub with `n` channels (ids 1..=n), each device depositing 1,000.
    async fn new(n: u8) -> Self {
        Self::on_store(n, Arc::new(MemoryStore::new())).await
    }

    /// As [`Fixture::new`], on `store`.
    async fn on_store(n: u8, store: Arc<dyn KvStore>) -> Self {
        let operator = Arc::new(test_signer(200));
        let book = ChannelBook::load(store.clone(), operator.clone(), test_domain()).unwrap();
        let mut f = Self {
            store,
            operator,
            book,
            devices: Vec::new(),
            seq: 0,
        };
        let mut events = Vec::new();
        for i in 1..=n {
            let key = test_signer(i);
            let id = u(i.into());
            events.push(f.event(LedgerEventKind::ChannelOpened {
                channel_id: id,
                participant1: key.address(),
                participant2: f.operator.address(),
                settlement_timeout: 30,
            }));
            events.push(f.deposit(id, &key, 1_000));
            let mut ch = Channel::new(test_domain(), id, key.address(), f.operator.address());
            ch.handle_ledger_deposit(key.address(), u(1_000)).unwrap();
            f.devices.push((key, ch));
        }
        f.book.apply_ledger_events(&events).await.unwrap();
        f
    }

    fn event(&mut self, kind: LedgerEventKind) -> LedgerEvent {
        self.seq += 1;
        LedgerEvent {
            seq: self.seq,
            time: 1_000 + self.seq,
            kind,
        }
    }

    fn deposit(&mut self, id: U256, key: &LocalSigner, total: u64) -> LedgerEvent {
        self.event(LedgerEventKind::Deposit {
            channel_id: id,
            participant: key.address(),
            total_deposit: u(total),
        })
    }

    /// Device `i` (0-based) signs a payment of `amount`.
    fn sign_payment(&mut self, i: usize, amount: u64) -> SignedBalanceProof {
        let (key, ch) = &mut self.devices[i];
        let events = ch.send_payment(u(amount), H256::ZERO, key).unwrap();
        events
            .iter()
            .find_map(|e| match e {
                ChannelEvent::Send(ChannelMessage::Payment { proof, .. }) => Some(*proof),
                _ => None,
            })
            .unwrap()
    }

    /// Every channel as a freshly loaded book sees it (what a restart would find).
    async fn reloaded(&self) -> Vec<Channel> {
        let book =
            ChannelBook::load(self.store.clone(), self.operator.clone(), test_domain()).unwrap();
        snapshot(&book).await
    }
}

async fn snapshot(book: &ChannelBook) -> Vec<Channel> {
    let mut out = Vec::new();
    for id in book.channel_ids().unwrap() {
        out.push(book.get(&id).unwrap().unwrap().lock().await.clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_events_applied_amid_payments_never_overwrite_them_on_disk() {
    let mut f = Fixture::new(2).await;
    let (dev0, dev1) = (f.devices[0].0.clone(), f.devices[1].0.clone());
    let proofs: Vec<_> = (0..200).map(|_| f.sign_payment(0, 1)).collect();
    let events: Vec<_> = (0..200u64)
        .flat_map(|k| {
            let a = f.deposit(u(1), &dev0, 1_001 + k);
            let b = f.deposit(u(2), &dev1, 1_001 + k);
            [a, b]
        })
        .collect();
    let f = Arc::new(f);
    let payer = {
        let f = f.clone();
        tokio::spawn(async move {
            for p in proofs {
                f.book.take_payment(dev0.address(), &p, u(1)).await.unwrap();
            }
        })
    };
    for pair in events.chunks(2) {
        f.book.apply_ledger_events(pair).await.unwrap();
        tokio::task::yield_now().await;
    }
    payer.await.unwrap();
    let live = snapshot(&f.book).await;
    assert_eq!(live[0].partner().nonce(), 200);
    assert_eq!(live[0].partner().total_deposit, u(1_200));
    assert_eq!(
        f.reloaded().await,
        live,
        "disk holds exactly what memory holds"
    );
}

#[tokio::test]
async fn a_replayed_channel_opened_keeps_the_channel() {
    let mut f = Fixture::new(1).await;
    let device = f.devices[0].0.clone();
    for _ in 0..3 {
        let p = f.sign_payment(0, 7);
        f.book
            .take_payment(device.address(), &p, u(7))
            .await
            .unwrap();
    }
    let opened = LedgerEvent {
        seq: 1,
        time: 1_001,
        kind: LedgerEventKind::ChannelOpened {
            channel_id: u(1),
            participant1: device.address(),
            participant2: f.operator.address(),
            settlement_timeout: 30,
        },
    };
    let deposit = f.deposit(u(1), &device, 1_000);
    f.book.apply_event(&opened).await.unwrap();
    f.book.apply_event(&deposit).await.unwrap();
    let live = snapshot(&f.book).await;
    assert_eq!(live[0].partner().nonce(), 3);
    assert_eq!(live[0].partner().transferred(), u(21));
    assert_eq!(f.reloaded().await, live);
}

/// A channel's open and deposit arriving together become one record with the deposit (the
/// fixture opens every channel that way); an open replayed together with a later deposit of a
/// channel the book already has keeps the channel's payments and still applies the deposit.
#[tokio::test]
async fn an_open_replayed_with_a_new_deposit_keeps_the_payments_and_takes_the_deposit() {
    let mut f = Fixture::new(2).await;
    let fresh = snapshot(&f.book).await;
    assert!(fresh
        .iter()
        .all(|ch| ch.partner().total_deposit == u(1_000)));
    assert_eq!(f.reloaded().await, fresh);

    let device = f.devices[0].0.clone();
    for _ in 0..3 {
        let p = f.sign_payment(0, 7);
        f.book
            .take_payment(device.address(), &p, u(7))
            .await
            .unwrap();
    }
    let replayed_open = f.event(LedgerEventKind::ChannelOpened {
        channel_id: u(1),
        participant1: device.address(),
        participant2: f.operator.address(),
        settlement_timeout: 30,
    });
    let top_up = f.deposit(u(1), &device, 1_500);
    f.book
        .apply_ledger_events(&[replayed_open, top_up])
        .await
        .unwrap();
    let live = snapshot(&f.book).await;
    assert_eq!(live[0].partner().nonce(), 3);
    assert_eq!(live[0].partner().transferred(), u(21));
    assert_eq!(live[0].partner().total_deposit, u(1_500));
    assert_eq!(f.reloaded().await, live);
}

#[tokio::test]
async fn a_refused_payment_changes_nothing_in_memory_or_on_disk() {
    let mut f = Fixture::new(1).await;
    let device = f.devices[0].0.clone();
    let p = f.sign_payment(0, 5);
    f.book
        .take_payment(device.address(), &p, u(5))
        .await
        .unwrap();
    let before = snapshot(&f.book).await;

    let forged = f.sign_payment(0, 5).proof.sign(&test_signer(99)).unwrap();
    let err = f
        .book
        .take_payment(device.address(), &forged, u(5))
        .await
        .unwrap_err();
    assert!(
        matches!(err, HubError::Channel(_)),
        "expected a channel refusal, got {err}"
    );
    // The exact re-send of the latest accepted proof is acknowledged again, nothing more.
    f.book
        .take_payment(device.address(), &p, u(5))
        .await
        .unwrap();
    assert_eq!(snapshot(&f.book).await, before);
    assert_eq!(f.reloaded().await, before);
}

#[tokio::test]
async fn a_batch_is_judged_payment_by_payment_in_order_and_persisted_once() {
    let mut f = Fixture::new(2).await;
    let device = f.devices[0].0.clone();
    let p1 = f.sign_payment(0, 5);
    let p2 = f.sign_payment(0, 6);
    let forged = p2.proof.sign(&test_signer(99)).unwrap();
    let p3 = f.sign_payment(0, 7);
    let foreign = f.sign_payment(1, 1); // channel 2 belongs to another device
    let results = f
        .book
        .take_payments(
            device.address(),
            &[
                (p1, u(5)),
                (forged, u(6)),
                (p2, u(6)),
                (p3, u(7)),
                (p1, u(5)),
                (foreign, u(1)),
            ],
        )
        .await
        .unwrap();
    let nonces: Vec<Option<u64>> = results
        .iter()
        .map(|r| r.as_ref().ok().map(|a| a.nonce))
        .collect();
    assert_eq!(nonces, vec![Some(1), None, Some(2), Some(3), None, None]);
    assert!(matches!(results[1], Err(HubError::Channel(_))), "forged");
    assert!(
        matches!(results[4], Err(HubError::Channel(_))),
        "an older proof after newer ones is stale"
    );
    assert!(matches!(results[5], Err(HubError::PermissionDenied(_))));
    let live = snapshot(&f.book).await;
    assert_eq!(live[0].partner().transferred(), u(18));
    assert_eq!(f.reloaded().await, live);
}

/// A device that resubscribes while the hub's proof toward it is written but not yet durable
/// must not be handed that proof: were the hub killed before the fsync, it would restart
/// without it and sign a different proof with the same nonce.
#[tokio::test]
async fn a_resubscribing_device_is_not_replayed_a_proof_before_it_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let sled = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
    let f = Arc::new(Fixture::on_store(1, sled.clone()).await);
    let device = f.devices[0].0.clone();
    let shared = f.book.get(&u(1)).unwrap().unwrap();
    f.book
        .transition(&shared, |ch, _| {
            ch.handle_ledger_deposit(f.operator.address(), u(100))?;
            Ok(())
        })
        .await
        .unwrap();

    let hold = sled.hold_fsyncs();
    let paying = {
        let f = f.clone();
        tokio::spawn(async move { f.book.pay_device(&u(1), u(10)).await })
    };
    // The payment's batch reaches sled and waits for its fsync.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!paying.is_finished(), "the payment waits for its fsync");
    // The device resubscribes now. The replay may wait for the channel (the payment holds it
    // until durable) or answer at once; what it must not do is answer with the proof.
    let resubscribe = {
        let (f, device) = (f.clone(), device.address());
        tokio::spawn(async move { f.book.hub_payments_since(device, &u(1), 0).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    if resubscribe.is_finished() {
        let (replayed, _) = resubscribe.await.unwrap().unwrap();
        assert!(
            replayed.is_empty(),
            "replayed a proof that is not durable: {replayed:?}"
        );
    }
    assert!(
        f.book.stored_hub_payments(&u(1), 0).unwrap().is_empty(),
        "the store read a write that is not durable"
    );
    assert!(!paying.is_finished(), "the payment waits for its fsync");

    drop(hold);
    paying.await.unwrap().unwrap();
    let (replayed, _) = f
        .book
        .hub_payments_since(device.address(), &u(1), 0)
        .await
        .unwrap();
    assert_eq!(
        replayed
            .iter()
            .map(|p| p.proof.proof.nonce)
            .collect::<Vec<_>>(),
        vec![1]
    );
}

#[tokio::test]
async fn hub_proofs_the_device_fetched_are_pruned() {
    let f = Fixture::new(1).await;
    let device = f.devices[0].0.clone();
    let shared = f.book.get(&u(1)).unwrap().unwrap();
    // The hub needs a deposit to pay the device.
    f.book
        .transition(&shared, |ch, _| {
            ch.handle_ledger_deposit(f.operator.address(), u(100))?;
            Ok(())
        })
        .await
        .unwrap();
    for _ in 0..3 {
        f.book.pay_device(&u(1), u(10)).await.unwrap();
    }
    let namespace = super::book::hub_sent_namespace(&u(1));
    assert_eq!(f.store.list(&namespace).unwrap().len(), 3);
    let (all, _) = f
        .book
        .hub_payments_since(device.address(), &u(1), 0)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let (later, _) = f
        .book
        .hub_payments_since(device.address(), &u(1), 2)
        .await
        .unwrap();
    assert_eq!(
        later
            .iter()
            .map(|p| p.proof.proof.nonce)
            .collect::<Vec<_>>(),
        vec![3]
    );
    assert_eq!(
        f.store.list(&namespace).unwrap().len(),
        1,
        "nonces 1 and 2 were fetched and deleted"
    );
    // The hub's latest proof is still in the channel for the device to restore from.
    let ch = shared.lock().await.clone();
    assert_eq!(ch.our_latest_proof().map(|p| p.proof.nonce), Some(3));
}

/// The archives of the hub's signed proofs (balance data, lock changes) keep one entry per
/// transition, so a transition that signs two proofs of the hub's is refused and changes
/// nothing: the first proof's data would be missing if the device closed with it.
#[tokio::test]
async fn a_transition_signing_two_hub_proofs_is_refused() {
    let f = Fixture::new(1).await;
    let shared = f.book.get(&u(1)).unwrap().unwrap();
    f.book
        .transition(&shared, |ch, _| {
            ch.handle_ledger_deposit(f.operator.address(), u(100))?;
            Ok(())
        })
        .await
        .unwrap();
    let before = f.reloaded().await;
    let twice = f
        .book
        .transition(&shared, |ch, _| {
            for _ in 0..2 {
                ch.send_payment(u(10), H256::ZERO, f.operator.as_ref())?;
            }
            Ok(())
        })
        .await;
    assert!(
        matches!(&twice, Err(HubError::Internal(m)) if m.contains("proofs 1..=2")),
        "{twice:?}"
    );
    assert_eq!(f.reloaded().await, before);
    assert_eq!(shared.lock().await.our_latest_proof(), None);
}
