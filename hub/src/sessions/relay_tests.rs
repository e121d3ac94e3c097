//! The relay's refusals, each with the error that names it and no change: a stranger opening,
//! publishing, watching or signing; a second payer; a reused session id; a full relay.

use std::sync::Arc;

use channel_core::crypto::Signer;
use channel_core::ledger::LedgerConfig;
use channel_core::session::{MeterUnit, SessionOffer, SignedSessionOffer};
use channel_core::testing::{test_domain, test_signer};
use channel_core::{H256, U256};
use tokio::sync::mpsc;

use super::relay::{Role, SessionRelay, WATCH_BUFFER};
use crate::error::HubError;
use crate::ledger::LedgerHandle;
use crate::store::{KvStore, MemoryStore};

fn relay(max: usize) -> SessionRelay {
    let store: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let ledger = LedgerHandle::load(
        store,
        LedgerConfig {
            domain: test_domain(),
            settlement_timeout: 30,
        },
        || 1_000,
    )
    .unwrap();
    SessionRelay::new(
        test_domain(),
        crate::ledger::HubLedger::Embedded(Arc::new(ledger)),
        max,
    )
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

#[test]
fn only_the_payee_opens_and_one_payer_accepts() {
    let r = relay(10);
    let (payee, car, other) = (
        test_signer(1).address(),
        test_signer(2).address(),
        test_signer(3).address(),
    );
    assert!(matches!(
        r.open(car, offer(7, 1), None),
        Err(HubError::PermissionDenied(_))
    ));
    assert_eq!(r.len(), 0);
    assert_eq!(r.open(payee, offer(7, 1), None).unwrap(), None);
    // Reopening the same offer is fine; another offer under the same id is not.
    assert_eq!(r.open(payee, offer(7, 1), None).unwrap(), None);
    let mut changed = offer(7, 1);
    changed.offer.credit_window_units = 1;
    let changed = SignedSessionOffer {
        signature: changed.offer.sign(&test_signer(1)).unwrap().signature,
        ..changed
    };
    assert!(matches!(
        r.open(payee, changed, None),
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
    assert_eq!(r.open(payee, offer(7, 1), None).unwrap(), Some(car));
}

#[tokio::test]
async fn strangers_neither_watch_nor_sign_and_a_full_relay_says_so() {
    let r = relay(1);
    let (payee, car, other) = (
        test_signer(1).address(),
        test_signer(2).address(),
        test_signer(3).address(),
    );
    r.open(payee, offer(7, 1), None).unwrap();
    r.accept(car, H256([7; 32])).unwrap();
    let (tx, _rx) = mpsc::channel(WATCH_BUFFER);
    assert!(matches!(
        r.watch(other, H256([7; 32]), tx.clone()),
        Err(HubError::PermissionDenied(_))
    ));
    assert_eq!(r.watch(car, H256([7; 32]), tx).unwrap(), Role::Payer);
    // A second session does not fit while the first is watched.
    assert!(matches!(
        r.open(test_signer(4).address(), offer(8, 4), None),
        Err(HubError::TooManySessions(1))
    ));
    // A session reserved for a payer (resumed) refuses anyone else.
    let r = relay(10);
    r.open(payee, offer(9, 1), Some(car)).unwrap();
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

#[test]
fn a_snapshot_shows_parties_terms_latest_reading_and_units_since_the_first() {
    let r = relay(10);
    let (payee, car) = (test_signer(1).address(), test_signer(2).address());
    assert!(r.snapshot().unwrap().is_empty());
    r.open(payee, offer(9, 1), None).unwrap();
    r.open(payee, offer(4, 1), None).unwrap();
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
