//! The hub's watcher against the embedded ledger, with a clock the test moves: a device locks
//! tokens toward the hub and withholds the unlock; the hub, which knows the secret, registers
//! it inside the reveal timeout, contests the device's close with the device's latest proof
//! (which carries the lock), settles, and unlocks: it gets the locked amount on the ledger.
//! And a device that closes with an old proof of the hub's cannot keep the hub from settling:
//! the hub finds that proof's balance data among every proof it signed; nor, if that proof
//! carried locks, keep the locked tokens from the hub: it finds the locks in its archive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use channel_core::channel::{Channel, ChannelEvent, ChannelMessage, InFlight};
use channel_core::crypto::Signer;
use channel_core::ledger::LedgerConfig;
use channel_core::testing::{test_domain, test_signer};
use channel_core::{HashTimeLock, Secret, SignedBalanceProof, H256, U256};

use super::book::{
    locksets_namespace, signed_balances_namespace, signed_locks_namespace, ChannelBook,
};
use super::watcher::{catch_up, monitor};
use crate::ledger::{HubLedger, LedgerHandle};
use crate::store::{KvStore, MemoryStore};

const WINDOW: u64 = 30;
const REVEAL: u64 = 10;

fn u(n: u64) -> U256 {
    U256::from(n)
}

#[tokio::test]
async fn a_device_withholding_an_unlock_pays_the_hub_on_the_ledger() {
    let f = Funded::new().await;
    let (hub, dev, id) = (f.operator.address(), f.device.address(), f.id);

    // The device locks 30 toward the hub; the hub learns the secret (from the payee it
    // forwarded to, in a mediated payment).
    let mut mine = Channel::new(test_domain(), id, dev, hub);
    mine.handle_ledger_deposit(dev, u(500)).unwrap();
    mine.handle_ledger_deposit(hub, u(500)).unwrap();
    let secret = Secret(H256([9; 32]));
    let expiration = 1_000 + 60;
    let lock = HashTimeLock {
        expiration,
        amount: u(30),
        secrethash: secret.hash(),
    };
    let events = mine
        .send_locked_transfer(lock, 1_000, H256::ZERO, &f.device)
        .unwrap();
    let proof: SignedBalanceProof = events
        .iter()
        .find_map(|e| match e {
            ChannelEvent::Send(ChannelMessage::LockedTransfer { proof, .. }) => Some(*proof),
            _ => None,
        })
        .unwrap();
    let shared = f.book.get(&id).unwrap().unwrap();
    f.book
        .transition(&shared, |ch, _| {
            ch.handle_locked_transfer(&proof, &lock, 1_000)?;
            ch.learn_secret(secret)?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(f.book.channels_with_locks(), vec![id]);

    // Before the reveal timeout the hub waits for the device's off-chain unlock.
    f.clock.store(expiration - REVEAL - 1, Ordering::SeqCst);
    f.pass().await;
    let registered = || {
        f.ledger
            .read(|l| l.secret_registered_at(&secret.hash()))
            .unwrap()
    };
    assert_eq!(registered(), None);
    f.clock.store(expiration - REVEAL, Ordering::SeqCst);
    f.pass().await;
    assert_eq!(registered(), Some(expiration - REVEAL));

    // The device closes without any proof of the hub's; the hub contests with the device's
    // latest proof (the lock), settles after the window and unlocks.
    f.catch_up().await;
    let close = mine.close(&f.device).unwrap();
    f.ledger
        .submit(dev, |l, caller, now| {
            l.close_channel(
                caller,
                id,
                &close.partner_proof,
                &close.closing_signature,
                now,
            )
        })
        .await
        .unwrap();
    f.pass().await;
    let nonce_on_ledger = f
        .ledger
        .read(|l| l.channel(id).unwrap().participant(dev).unwrap().nonce())
        .unwrap();
    assert_eq!(nonce_on_ledger, 1, "contested with the locked transfer");
    f.clock
        .store(expiration - REVEAL + WINDOW + 1, Ordering::SeqCst);
    f.pass().await; // settles
    f.pass().await; // unlocks
    assert_eq!(f.balance(hub), u(1_000 + 30));
    assert_eq!(f.balance(dev), u(1_000 - 30));
}

#[tokio::test]
async fn a_device_closing_with_an_old_hub_proof_cannot_keep_the_hub_from_settling() {
    let f = Funded::new().await;
    let (hub, dev, id) = (f.operator.address(), f.device.address(), f.id);

    // The hub pays the device three times: proofs with nonces 1, 2, 3 (10, 20, 30 in all).
    for _ in 0..3 {
        f.book.pay_device(&id, u(10)).await.unwrap();
    }
    let (sent, _) = f.book.hub_payments_since(dev, &id, 0).await.unwrap();
    let oldest = sent[0].proof;
    assert_eq!(
        (oldest.proof.nonce, oldest.proof.balance.transferred_amount),
        (1, u(10))
    );
    // The device fetched them all, so the hub no longer keeps the proofs themselves; it keeps
    // the balance data of each.
    let archive = signed_balances_namespace(&id);
    assert_eq!(f.store.list(&archive).unwrap().len(), 3);

    // The device closes with the oldest: 20 less for itself, but the ledger now stores only
    // the hash of a proof the hub signed long ago.
    let closing_signature = oldest.counter_sign_close(&f.device).unwrap();
    f.ledger
        .submit(dev, |l, caller, now| {
            l.close_channel(caller, id, &oldest, &closing_signature, now)
        })
        .await
        .unwrap();
    f.pass().await; // nothing to contest: the device never paid
    f.clock.store(1_000 + WINDOW + 1, Ordering::SeqCst);
    f.pass().await; // settles with nonce 1's data from the archive
    let phase = f.ledger.read(|l| l.channel(id).unwrap().phase).unwrap();
    assert_eq!(phase, channel_core::ledger::ChannelPhase::Settled);
    assert_eq!(f.balance(hub), u(1_000 - 10));
    assert_eq!(f.balance(dev), u(1_000 + 10));
    // Once the book saw the settle, the archive is gone.
    f.catch_up().await;
    assert_eq!(f.store.list(&archive).unwrap(), Vec::<String>::new());
}

/// A hub channel with a device on the embedded ledger, both sides funded with 500 of the
/// 1,000 each was minted, and a clock the test moves.
struct Funded {
    store: Arc<dyn KvStore>,
    clock: Arc<AtomicU64>,
    ledger: Arc<LedgerHandle>,
    operator: Arc<channel_core::LocalSigner>,
    book: ChannelBook,
    device: channel_core::LocalSigner,
    id: U256,
}

impl Funded {
    async fn new() -> Self {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let clock = Arc::new(AtomicU64::new(1_000));
        let time = clock.clone();
        let ledger = Arc::new(
            LedgerHandle::load(
                store.clone(),
                LedgerConfig {
                    domain: test_domain(),
                    settlement_timeout: WINDOW,
                },
                move || time.load(Ordering::SeqCst),
            )
            .unwrap(),
        );
        let operator = Arc::new(test_signer(200));
        let hub = operator.address();
        let book = ChannelBook::load(store.clone(), operator.clone(), test_domain()).unwrap();
        let device = test_signer(1);
        let dev = device.address();
        for who in [dev, hub] {
            ledger
                .apply(|l, now| l.mint_with_events(who, u(1_000), now))
                .await
                .unwrap();
        }
        let (id, _) = ledger
            .submit(dev, |l, caller, now| l.open_channel(caller, hub, now))
            .await
            .unwrap();
        for who in [dev, hub] {
            ledger
                .submit(who, |l, caller, now| {
                    l.set_total_deposit(caller, id, caller, u(500), now)
                })
                .await
                .unwrap();
        }
        let funded = Self {
            store,
            clock,
            ledger,
            operator,
            book,
            device,
            id,
        };
        funded.catch_up().await;
        funded
    }

    fn hub_ledger(&self) -> HubLedger {
        HubLedger::Embedded(self.ledger.clone())
    }

    async fn catch_up(&self) {
        catch_up(&self.book, &self.hub_ledger()).await.unwrap();
    }

    /// One watcher pass: catch up with the ledger, then run the monitor.
    async fn pass(&self) {
        self.catch_up().await;
        monitor(
            &self.book,
            &self.hub_ledger(),
            REVEAL,
            &mut InFlight::new(0),
        )
        .await;
    }

    fn balance(&self, who: channel_core::Address) -> U256 {
        self.ledger.read(|l| l.token_balance(who)).unwrap()
    }

    /// The hub's latest proof toward the device.
    async fn hub_proof(&self) -> SignedBalanceProof {
        *self
            .book
            .snapshot_any(&self.id)
            .await
            .unwrap()
            .our_latest_proof()
            .unwrap()
    }
}

/// The hub locks 30 toward the device in a mediated payment and, once the payee revealed the
/// secret, unlocks it off-chain. The device then closes with the hub's *locked* proof, and the
/// window passes: the hub settles, and the ledger keeps the 30 back under a root the hub's
/// channel no longer holds. Returns that proof.
async fn closed_with_an_old_locked_hub_proof(f: &Funded) -> SignedBalanceProof {
    let (hub, dev) = (f.operator.address(), f.device.address());
    let secret = Secret(H256([9; 32]));
    // Within the settlement window (as every forwarded lock is): expired at settlement, so
    // the monitor may unlock it at once.
    let lock = HashTimeLock {
        expiration: 1_000 + WINDOW,
        amount: u(30),
        secrethash: secret.hash(),
    };
    let shared = f.book.get(&f.id).unwrap().unwrap();
    f.book
        .transition(&shared, |ch, _| {
            Ok(ch.send_locked_transfer(lock, 1_000, H256::ZERO, f.operator.as_ref())?)
        })
        .await
        .unwrap();
    let locked = f.hub_proof().await;
    assert_eq!(locked.proof.balance.locked_amount, u(30));
    f.book
        .transition(&shared, |ch, _| {
            Ok(ch.send_unlock(secret, H256::ZERO, f.operator.as_ref())?)
        })
        .await
        .unwrap();
    assert_eq!(f.hub_proof().await.proof.balance.transferred_amount, u(30));
    // The hub logged both changes of its locks: the lock added (nonce 1), then dropped.
    assert_eq!(
        f.store.list(&signed_locks_namespace(&f.id)).unwrap().len(),
        2
    );

    let closing_signature = locked.counter_sign_close(&f.device).unwrap();
    f.ledger
        .submit(dev, |l, caller, now| {
            l.close_channel(caller, f.id, &locked, &closing_signature, now)
        })
        .await
        .unwrap();
    f.pass().await; // nothing to contest: the device never paid
    f.clock.store(1_000 + WINDOW + 1, Ordering::SeqCst);
    f.pass().await; // settles with the locked proof's balance data
    let kept = f
        .ledger
        .read(|l| l.pending_unlock(f.id, hub, dev).map(|e| e.locked_amount))
        .unwrap();
    assert_eq!(kept, Some(u(30)), "the 30 are kept back for an unlock");
    assert_eq!(f.balance(hub), u(1_000 - 30));
    locked
}

/// The hub unlocks the 30 with the locks replayed from its log (after a restart in between),
/// and gets them back; then its lock archive is gone.
#[tokio::test]
async fn a_device_closing_with_an_old_locked_hub_proof_cannot_keep_the_locked_tokens() {
    let f = Funded::new().await;
    let locked = closed_with_an_old_locked_hub_proof(&f).await;
    let (log, sets) = (signed_locks_namespace(&f.id), locksets_namespace(&f.id));
    // Once the book saw the settlement, the set kept back replaces the log.
    f.catch_up().await;
    assert_eq!(f.store.list(&log).unwrap(), Vec::<String>::new());
    assert_eq!(
        f.store.list(&sets).unwrap(),
        vec![locked.proof.balance.locksroot.to_string()]
    );

    // The hub restarts: the book comes back from the store, the archive with it.
    let f = Funded {
        book: ChannelBook::load(f.store.clone(), f.operator.clone(), test_domain()).unwrap(),
        ..f
    };
    f.pass().await; // unlocks from the archive
    assert_eq!(
        f.balance(f.operator.address()),
        u(1_000),
        "the 30 came back"
    );
    assert_eq!(f.balance(f.device.address()), u(1_000));
    f.pass().await;
    assert_eq!(f.store.list(&sets).unwrap(), Vec::<String>::new());
}

/// The same, with the monitor deciding before the book applied the settlement (it reads the
/// ledger's record, which may be ahead of the book): the locks come from the log itself.
#[tokio::test]
async fn the_old_locks_are_unlocked_even_before_the_book_saw_the_settlement() {
    let f = Funded::new().await;
    closed_with_an_old_locked_hub_proof(&f).await;
    monitor(&f.book, &f.hub_ledger(), REVEAL, &mut InFlight::new(0)).await;
    assert_eq!(
        f.balance(f.operator.address()),
        u(1_000),
        "the 30 came back"
    );
    f.catch_up().await;
    for namespace in [signed_locks_namespace(&f.id), locksets_namespace(&f.id)] {
        assert_eq!(f.store.list(&namespace).unwrap(), Vec::<String>::new());
    }
}
