//! The relay's refusals, each with the error that names it and no change: a stranger opening,
//! publishing, watching or signing; a second payer; a reused session id; a full relay; a payee
//! without an open channel holding a deposit of its own; a payee past its per-key cap. And
//! the idle timeout: only use keeps a session, reopening, re-accepting, republishing and
//! watching do not.

use std::sync::Arc;
use std::time::Duration;

use channel_core::crypto::Signer;
use channel_core::ledger::LedgerConfig;
use channel_core::session::{MeterUnit, SessionOffer, SignedSessionOffer};
use channel_core::testing::{test_domain, test_signer};
use channel_core::{Address, H256, U256};
use tokio::sync::mpsc;
use tonic::Code;

use super::relay::{RelayLimits, Role, SessionRelay, WATCH_BUFFER};
use crate::channels::ChannelEngine;
use crate::error::HubError;
use crate::ledger::{HubLedger, LedgerHandle};
use crate::shutdown::ShutdownTrigger;
use crate::store::{KvStore, MemoryStore};

/// A hub's embedded ledger and channels on the in-memory store, and a relay over them.
struct Hub {
    relay: SessionRelay,
    ledger: Arc<LedgerHandle>,
    operator: Address,
    _stop: ShutdownTrigger,
}

impl Hub {
    /// A relay within `limits`; payees 1 and 4 have channels holding 500 of their own.
    async fn new(limits: RelayLimits) -> Self {
        let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
        let ledger = Arc::new(
            LedgerHandle::load(
                store.clone(),
                LedgerConfig {
                    domain: test_domain(),
                    settlement_timeout: 30,
                },
                || 1_000,
            )
            .unwrap(),
        );
        let operator = Arc::new(test_signer(200));
        let (stop, shutdown) = crate::shutdown::channel();
        let hub_ledger = HubLedger::Embedded(ledger.clone());
        let channels = ChannelEngine::new(
            store,
            hub_ledger.clone(),
            operator.clone(),
            test_domain(),
            shutdown,
        )
        .unwrap();
        let hub = Self {
            relay: SessionRelay::new(test_domain(), hub_ledger, limits.max_sessions)
                .with_limits(limits)
                .with_channels(channels),
            ledger,
            operator: operator.address(),
            _stop: stop,
        };
        hub.channel(1, 500, 0).await;
        hub.channel(4, 500, 0).await;
        hub
    }

    /// Device `n` opens a channel with the hub on the ledger, deposits `own` and the hub
    /// `hub` (the relay's book has not seen any of it).
    async fn channel(&self, n: u8, own: u64, hub: u64) {
        let (dev, op) = (test_signer(n).address(), self.operator);
        for who in [dev, op] {
            self.ledger
                .apply(|l, now| l.mint_with_events(who, U256::from(1_000u32), now))
                .await
                .unwrap();
        }
        let (id, _) = self
            .ledger
            .submit(dev, |l, caller, now| l.open_channel(caller, op, now))
            .await
            .unwrap();
        for (who, amount) in [(dev, own), (op, hub)] {
            if amount > 0 {
                self.ledger
                    .submit(who, |l, caller, now| {
                        l.set_total_deposit(caller, id, caller, U256::from(amount), now)
                    })
                    .await
                    .unwrap();
            }
        }
    }
}

/// A relay of at most `max` sessions, the default per-key cap and idle timeout.
async fn hub(max: usize) -> Hub {
    Hub::new(RelayLimits::new(max)).await
}

fn id(n: u8) -> H256 {
    H256([n; 32])
}

/// `result` is refused with `code`, saying each of `says`.
fn refused<T: std::fmt::Debug>(result: Result<T, HubError>, code: Code, says: &[&str]) {
    let status = tonic::Status::from(result.expect_err("refused"));
    assert_eq!(status.code(), code, "{status:?}");
    for s in says {
        assert!(status.message().contains(s), "{status:?} should say {s:?}");
    }
}

fn offer(id: u8, payee: u8) -> SignedSessionOffer {
    SessionOffer {
        domain: test_domain(),
        session_id: H256([id; 32]),
        payee: test_signer(payee).address(),
        meter_key: test_signer(payee).address(),
        unit: MeterUnit::WattHour,
        price_per_unit: U256::from(2u8),
        credit_window_units: 100,
        max_units: None,
        max_units_per_hour: 11_000,
        expires_at: 2_000,
    }
    .sign(&test_signer(payee))
    .unwrap()
}

#[tokio::test]
async fn only_the_payee_opens_and_one_payer_accepts() {
    let h = hub(10).await;
    let r = &h.relay;
    let (payee, car, other) = (
        test_signer(1).address(),
        test_signer(2).address(),
        test_signer(3).address(),
    );
    assert!(matches!(
        r.open(car, offer(7, 1), None).await,
        Err(HubError::PermissionDenied(_))
    ));
    assert_eq!(r.len(), 0);
    assert_eq!(r.open(payee, offer(7, 1), None).await.unwrap(), None);
    // Reopening the same offer is fine; another offer under the same id is not.
    assert_eq!(r.open(payee, offer(7, 1), None).await.unwrap(), None);
    let mut changed = offer(7, 1);
    changed.offer.credit_window_units = 1;
    let changed = SignedSessionOffer {
        signature: changed.offer.sign(&test_signer(1)).unwrap().signature,
        ..changed
    };
    assert!(matches!(
        r.open(payee, changed, None).await,
        Err(HubError::SessionExists(_))
    ));
    assert!(matches!(
        r.accept(payee, H256([7; 32])),
        Err(HubError::PermissionDenied(_))
    ));
    assert!(matches!(
        r.accept(car, H256([8; 32])),
        Err(HubError::UnknownSession(_))
    ));
    assert_eq!(r.accept(car, H256([7; 32])).unwrap(), offer(7, 1));
    assert_eq!(r.accept(car, H256([7; 32])).unwrap(), offer(7, 1));
    assert!(matches!(
        r.accept(other, H256([7; 32])),
        Err(HubError::SessionTaken { payer, .. }) if payer == car
    ));
    assert_eq!(r.open(payee, offer(7, 1), None).await.unwrap(), Some(car));
}

#[tokio::test]
async fn strangers_neither_watch_nor_sign_and_a_full_relay_says_so() {
    let h = Hub::new(RelayLimits {
        idle_timeout: Duration::from_secs(60),
        ..RelayLimits::new(1)
    })
    .await;
    let r = &h.relay;
    let (payee, car, other) = (
        test_signer(1).address(),
        test_signer(2).address(),
        test_signer(3).address(),
    );
    r.open(payee, offer(7, 1), None).await.unwrap();
    r.accept(car, H256([7; 32])).unwrap();
    let (tx, _rx) = mpsc::channel(WATCH_BUFFER);
    assert!(matches!(
        r.watch(other, H256([7; 32]), tx.clone()),
        Err(HubError::PermissionDenied(_))
    ));
    assert_eq!(r.watch(car, H256([7; 32]), tx).unwrap(), Role::Payer);
    // A second session does not fit while the first is in use.
    assert!(matches!(
        r.open(test_signer(4).address(), offer(8, 4), None).await,
        Err(HubError::TooManySessions(1))
    ));
    // Once the first is unused for the idle timeout (watched or not), it makes room.
    r.advance_clock(Duration::from_secs(60));
    r.open(test_signer(4).address(), offer(8, 4), None)
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert!(matches!(
        r.accept(car, H256([7; 32])),
        Err(HubError::UnknownSession(_))
    ));
    // A session reserved for a payer (resumed) refuses anyone else.
    let h = hub(10).await;
    let r = &h.relay;
    r.open(payee, offer(9, 1), Some(car)).await.unwrap();
    assert!(matches!(
        r.accept(other, H256([9; 32])),
        Err(HubError::SessionTaken { payer, .. }) if payer == car
    ));
    r.accept(car, H256([9; 32])).unwrap();
}

fn reading(id: u8, seq: u64, register: u64) -> channel_core::session::Publication {
    let reading = channel_core::session::MeterReading {
        session_id: H256([id; 32]),
        transaction_id: H256::ZERO,
        seq,
        register,
        timestamp: 1_000,
        measurand: MeterUnit::WattHour,
        stopped_reason: None,
    }
    .sign(&test_signer(1))
    .unwrap();
    channel_core::session::Publication {
        reading,
        bill: None,
    }
}

#[tokio::test]
async fn a_snapshot_shows_parties_terms_latest_reading_and_units_since_the_first() {
    let h = hub(10).await;
    let r = &h.relay;
    let (payee, car) = (test_signer(1).address(), test_signer(2).address());
    assert!(r.snapshot().unwrap().is_empty());
    r.open(payee, offer(9, 1), None).await.unwrap();
    r.open(payee, offer(4, 1), None).await.unwrap();
    r.accept(car, H256([9; 32])).unwrap();
    for (seq, register) in [(1, 1_500), (2, 1_530), (5, 1_612)] {
        r.publish(payee, reading(9, seq, register)).unwrap();
    }
    // A refused publication changes nothing.
    assert!(r.publish(payee, reading(9, 3, 9_999)).is_err());

    let snap = r.snapshot().unwrap();
    assert_eq!(snap.len(), 2);
    let (idle, metered) = (&snap[0], &snap[1]);
    assert_eq!(idle.id, H256([4; 32]));
    assert_eq!(
        (idle.payer, idle.latest, idle.units_metered),
        (None, None, 0)
    );
    assert_eq!(metered.id, H256([9; 32]));
    assert_eq!(metered.payee, payee);
    assert_eq!(metered.payer, Some(car));
    assert_eq!(metered.unit, MeterUnit::WattHour);
    assert_eq!(metered.price_per_unit, U256::from(2u8));
    assert_eq!(metered.latest, Some((5, 1_612)));
    assert_eq!(metered.units_metered, 112);
}

#[tokio::test]
async fn only_a_payee_with_an_open_channel_holding_its_own_deposit_opens_sessions() {
    let rule = "opening a session needs an open channel with a deposit of the caller's";
    // A relay that was not given the hub's channels opens nothing.
    let h = hub(10).await;
    let bare = SessionRelay::new(test_domain(), HubLedger::Embedded(h.ledger.clone()), 10);
    let payee = test_signer(1).address();
    refused(
        bare.open(payee, offer(1, 1), None).await,
        Code::FailedPrecondition,
        &[rule, &payee.to_string()],
    );
    assert!(bare.is_empty());

    let r = &h.relay;
    // No channel at all.
    let stranger = test_signer(5).address();
    refused(
        r.open(stranger, offer(5, 5), None).await,
        Code::FailedPrecondition,
        &[rule, &stranger.to_string()],
    );
    // A channel whose only deposit is the hub's.
    h.channel(6, 0, 500).await;
    refused(
        r.open(test_signer(6).address(), offer(6, 6), None).await,
        Code::FailedPrecondition,
        &[rule],
    );
    assert!(r.is_empty(), "a refusal holds nothing");
    // A deposit made a moment ago counts (the book catches up with the ledger).
    h.channel(7, 1, 0).await;
    assert_eq!(
        r.open(test_signer(7).address(), offer(7, 7), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(r.open(payee, offer(1, 1), None).await.unwrap(), None);
    assert_eq!(r.len(), 2);
}

#[tokio::test]
async fn one_key_opens_at_most_its_cap_and_other_keys_still_open() {
    let h = Hub::new(RelayLimits {
        max_sessions_per_key: 3,
        ..RelayLimits::new(100)
    })
    .await;
    let r = &h.relay;
    let (a, b) = (test_signer(1).address(), test_signer(4).address());
    for n in 1..=3 {
        r.open(a, offer(n, 1), None).await.unwrap();
    }
    refused(
        r.open(a, offer(4, 1), None).await,
        Code::ResourceExhausted,
        &[
            "per-key cap",
            "--max-sessions-per-key",
            &a.to_string(),
            " 3 sessions",
        ],
    );
    // Its open sessions still reopen; another key is not held back by it.
    r.open(a, offer(1, 1), None).await.unwrap();
    for n in 11..=13 {
        r.open(b, offer(n, 4), None).await.unwrap();
    }
    assert!(matches!(
        r.open(b, offer(14, 4), None).await,
        Err(HubError::TooManySessionsForKey { key, max: 3 }) if key == b
    ));
    assert_eq!(r.len(), 6);
    assert!(matches!(
        r.accept(test_signer(2).address(), id(4)),
        Err(HubError::UnknownSession(_))
    ));
}

#[tokio::test]
async fn reopening_rewatching_and_republishing_do_not_keep_a_session_only_use_does() {
    let idle = Duration::from_secs(60);
    let h = Hub::new(RelayLimits {
        max_sessions_per_key: 2,
        idle_timeout: idle,
        ..RelayLimits::new(100)
    })
    .await;
    let r = &h.relay;
    let (payee, car) = (test_signer(1).address(), test_signer(2).address());
    r.open(payee, offer(1, 1), None).await.unwrap();
    r.open(payee, offer(2, 1), None).await.unwrap();
    r.accept(car, id(1)).unwrap();
    r.accept(car, id(2)).unwrap();

    // 40 s on: session 1 is watched, reopened and re-accepted; session 2 gets a reading.
    r.advance_clock(Duration::from_secs(40));
    let (tx, mut watcher) = mpsc::channel(WATCH_BUFFER);
    r.watch(payee, id(1), tx).unwrap();
    for _ in 0..3 {
        r.open(payee, offer(1, 1), None).await.unwrap();
        r.accept(car, id(1)).unwrap();
    }
    r.publish(payee, reading(2, 1, 1_500)).unwrap();

    // 70 s after its last use (its acceptance), session 1 has expired: unknown, its watch
    // stream ended, its slot free.
    r.advance_clock(Duration::from_secs(30));
    r.open(payee, offer(2, 1), None).await.unwrap();
    assert!(matches!(
        r.accept(car, id(1)),
        Err(HubError::UnknownSession(_))
    ));
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while watcher.recv().await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the expired session's watch stream ended");
    // Session 2, used 30 s ago, is as it was.
    assert_eq!(r.open(payee, offer(2, 1), None).await.unwrap(), Some(car));
    assert_eq!(r.snapshot().unwrap()[0].latest, Some((1, 1_500)));
    r.open(payee, offer(3, 1), None).await.unwrap();
    assert!(matches!(
        r.open(payee, offer(4, 1), None).await,
        Err(HubError::TooManySessionsForKey { max: 2, .. })
    ));

    // Publishing the same reading again is not use either: 60 s after the reading, session 2
    // is gone although it was republished in between; session 3 (opened 30 s ago) is not.
    r.advance_clock(Duration::from_secs(20));
    r.publish(payee, reading(2, 1, 1_500)).unwrap();
    r.advance_clock(Duration::from_secs(10));
    assert!(matches!(
        r.publish(payee, reading(2, 1, 1_500)),
        Err(HubError::UnknownSession(_))
    ));
    r.open(payee, offer(4, 1), None).await.unwrap();
    assert!(matches!(
        r.open(payee, offer(5, 1), None).await,
        Err(HubError::TooManySessionsForKey { max: 2, .. })
    ));
    let open: Vec<H256> = r.snapshot().unwrap().iter().map(|s| s.id).collect();
    assert_eq!(open, vec![id(3), id(4)]);
}
