//! What one key may hold in the relay, against the real hub: sessions only for a payee with
//! an open channel holding a deposit of its own, at most `--max-sessions-per-key` per key
//! (other keys open theirs all the same), and a session that is only reopened expires after
//! `--session-idle-timeout-secs` while one in use stays.

use std::time::{Duration, Instant};

use channel_core::session::{MeterUnit, SessionOffer};
use channel_core::{Address, Domain, H256};
use integration_tests::device::HubIdentity;
use integration_tests::{HubProcess, TestDevice};
use tonic::Code;
use voltlane_proto::v1;

use crate::world::*;

/// The per-key cap and the idle timeout of these tests' hub.
const PER_KEY: &str = "3";
const IDLE: Duration = Duration::from_secs(5);

async fn limited_hub() -> HubProcess {
    hub_with_env(&[
        ("VOLTLANE_MAX_SESSIONS_PER_KEY", PER_KEY),
        ("VOLTLANE_SESSION_IDLE_TIMEOUT_SECS", "5"),
    ])
    .await
}

/// A raw device of key `n`, with a channel holding `deposit` of its own if any.
async fn raw_device(hub: &HubProcess, n: u8, deposit: Option<u64>) -> TestDevice {
    let mut d = TestDevice::login(hub.connect().await.unwrap(), key(n))
        .await
        .unwrap();
    if let Some(deposit) = deposit {
        d.open_channel(u(deposit)).await.unwrap();
    }
    d
}

/// Offers of one payee, as `Sessions.OpenSession` requests.
struct Offers {
    domain: Domain,
    now: u64,
}

impl Offers {
    async fn of(hub: &HubProcess, d: &TestDevice) -> Self {
        let domain = HubIdentity::fetch(hub.connect().await.unwrap())
            .await
            .unwrap()
            .domain;
        let now = d
            .ledger()
            .get_time(v1::GetTimeRequest {})
            .await
            .unwrap()
            .into_inner()
            .now;
        Self { domain, now }
    }

    /// `d` offers session `n` (id `[n; 32]`).
    fn request(&self, d: &TestDevice, n: u8) -> v1::OpenSessionRequest {
        let offer = SessionOffer {
            domain: self.domain,
            session_id: H256([n; 32]),
            payee: d.address(),
            meter_key: d.address(),
            unit: MeterUnit::WattHour,
            price_per_unit: u(1),
            credit_window_units: 100,
            max_units: None,
            max_units_per_hour: 11_000,
            expires_at: self.now + 600,
        }
        .sign(d.key())
        .unwrap();
        v1::OpenSessionRequest {
            offer: Some((&offer).into()),
            payer: Vec::new(),
        }
    }
}

/// `d` opens (or reopens) session `n`; the payer that accepted, if any.
async fn open(offers: &Offers, d: &TestDevice, n: u8) -> Result<Option<Address>, tonic::Status> {
    let opened = d
        .sessions()
        .open_session(offers.request(d, n))
        .await?
        .into_inner();
    Ok((!opened.payer.is_empty()).then(|| Address::from_slice(&opened.payer).unwrap()))
}

async fn accept(payer: &TestDevice, n: u8) -> Result<(), tonic::Status> {
    payer
        .sessions()
        .accept_session(v1::AcceptSessionRequest {
            session_id: vec![n; 32],
        })
        .await
        .map(drop)
}

fn refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, says: &[&str]) {
    let status = result.expect_err("the hub should refuse it");
    assert_eq!(status.code(), code, "{status:?}");
    for s in says {
        assert!(
            status.message().contains(s),
            "{:?} should say {s:?}",
            status.message()
        );
    }
}

#[tokio::test]
async fn one_funded_key_fills_only_its_own_cap_and_an_unfunded_key_opens_nothing() {
    let hub = limited_hub().await;
    let a = raw_device(&hub, 71, Some(1_000)).await;
    let b = raw_device(&hub, 72, Some(1_000)).await;
    let c = raw_device(&hub, 73, None).await;
    let offers = Offers::of(&hub, &a).await;

    for n in 1..=3 {
        assert_eq!(open(&offers, &a, n).await.unwrap(), None);
    }
    refused(
        open(&offers, &a, 4).await,
        Code::ResourceExhausted,
        &[
            "per-key cap",
            &a.address().to_string(),
            "--max-sessions-per-key",
        ],
    );
    // Its sessions still reopen; the other funded key opens its own up to the same cap.
    open(&offers, &a, 1).await.unwrap();
    for n in 11..=13 {
        assert_eq!(open(&offers, &b, n).await.unwrap(), None);
    }
    refused(
        open(&offers, &b, 14).await,
        Code::ResourceExhausted,
        &["per-key cap", &b.address().to_string()],
    );
    // A key with no channel opens nothing, however much room there is.
    refused(
        open(&offers, &c, 21).await,
        Code::FailedPrecondition,
        &[
            "opening a session needs an open channel with a deposit of the caller's",
            &c.address().to_string(),
        ],
    );
    refused(accept(&a, 21).await, Code::NotFound, &["unknown session"]);
    // The refused ones hold nothing: a payer finds exactly the sessions that were opened.
    accept(&c, 2).await.unwrap();
    accept(&c, 12).await.unwrap();
    refused(accept(&c, 4).await, Code::NotFound, &["unknown session"]);
}

#[tokio::test]
async fn reopening_does_not_keep_a_session_alive_past_its_idle_time() {
    let hub = limited_hub().await;
    let a = raw_device(&hub, 81, Some(1_000)).await;
    let car = raw_device(&hub, 82, None).await;
    let offers = Offers::of(&hub, &a).await;

    let started = Instant::now();
    for n in 1..=3 {
        open(&offers, &a, n).await.unwrap();
    }
    let opened = Instant::now();
    // The payee watches session 1 and reopens all three over most of the idle time, as a
    // squatter would.
    let mut watch = a
        .sessions()
        .watch_session(v1::WatchSessionRequest {
            session_id: vec![1; 32],
        })
        .await
        .unwrap()
        .into_inner();
    while started.elapsed() < IDLE / 2 {
        for n in 1..=3 {
            open(&offers, &a, n).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    refused(
        open(&offers, &a, 4).await,
        Code::ResourceExhausted,
        &["per-key cap"],
    );
    // Session 3 is used: its payer accepts.
    accept(&car, 3).await.unwrap();
    let used = Instant::now();

    tokio::time::sleep(
        (opened + IDLE + Duration::from_millis(300)).saturating_duration_since(Instant::now()),
    )
    .await;
    assert!(
        used.elapsed() < IDLE,
        "the machine stalled for {:?}; session 3 may have expired too",
        used.elapsed()
    );
    // Session 3 is as it was (accepted); sessions 1 and 2 have expired although reopened.
    assert_eq!(open(&offers, &a, 3).await.unwrap(), Some(car.address()));
    refused(accept(&car, 1).await, Code::NotFound, &["unknown session"]);
    // The expired session's watch stream ended with it (the SDK would reopen and re-watch).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while watch.message().await.unwrap().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the watch stream of an expired session ends");
    // Their slots are free again: two new sessions fit beside session 3, a third does not.
    open(&offers, &a, 5).await.unwrap();
    open(&offers, &a, 6).await.unwrap();
    refused(
        open(&offers, &a, 7).await,
        Code::ResourceExhausted,
        &["per-key cap"],
    );
}
