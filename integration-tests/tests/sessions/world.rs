//! What the session tests share: a hub with mediation, SDK devices with matched channels,
//! and an offer made and accepted.

use std::time::Duration;

use channel_core::session::{MeterUnit, PayerLimits};
use channel_core::LocalSigner;
use integration_tests::mediation::MediationSetup;
use integration_tests::HubProcess;
use voltlane_client::session::{PayeeHandle, PayerHandle, SessionTerms};
use voltlane_client::{Client, DeviceStore, MediationOptions, U256};

pub const WAIT: Duration = Duration::from_secs(60);

pub fn u(n: u64) -> U256 {
    U256::from(n)
}

pub fn key(n: u8) -> LocalSigner {
    let mut b = [0x5eu8; 32];
    b[31] = n;
    LocalSigner::from_bytes(&b).unwrap()
}

/// [`integration_tests::eventually`] with this file's [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    integration_tests::eventually(WAIT, what, check).await
}

/// A hub without mediation fees (so session money is exact on both devices) that matches
/// every deposit.
pub async fn hub() -> HubProcess {
    hub_with_env(&[]).await
}

/// [`hub`], with further `VOLTLANE_*` settings in its environment.
pub async fn hub_with_env(env: &[(&str, &str)]) -> HubProcess {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    MediationSetup {
        fee_flat: 0,
        fee_ppm: 0,
        reveal_timeout: 3,
        settlement_window: 9,
        auto_deposit: 100_000_000,
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
    .start()
    .await
    .unwrap()
}

/// A device with a channel of `deposit`, matched by the hub.
pub async fn device(hub: &HubProcess, n: u8, deposit: u64, store: DeviceStore) -> Client {
    let client = Client::connect(&hub.url(), key(n), store).await.unwrap();
    client.set_mediation_options(MediationOptions::new().lock_lifetime(120));
    if client.channel_id().is_none() {
        client.mint(u(deposit)).await.unwrap();
        client.open_channel(u(deposit)).await.unwrap();
    }
    eventually("the hub's matching deposit", || async {
        client.balances().unwrap().hub_deposit >= u(deposit)
    })
    .await;
    client
}

/// The charger's maximum power, in W: compressed time (a test second is an hour's
/// worth of a 3.6 MW charger), so sessions take seconds.
pub const MAX_W: u64 = 3_600_000;

/// Charging terms: `price` tokens per Wh, `window` Wh of credit, at most [`MAX_W`].
pub fn charging(price: u64, window: u64) -> SessionTerms {
    let mut t = SessionTerms::new(MeterUnit::WattHour, u(price), window, MAX_W);
    t.meter_start = 52_000;
    t.transaction_id = Some("ocpp-tx-1".into());
    t
}

pub fn budget(tokens: u64) -> PayerLimits {
    PayerLimits {
        budget: u(tokens),
        clock_tolerance_secs: 5,
    }
}

/// The charger offers, the car accepts; the meter start is published.
pub async fn start(
    charger: &Client,
    car: &Client,
    terms: SessionTerms,
    limits: PayerLimits,
    meter: LocalSigner,
) -> (PayeeHandle, PayerHandle) {
    let payee = charger.offer_session(terms, meter).await.unwrap();
    let payer = car.accept_session(payee.id(), limits).await.unwrap();
    assert_eq!(
        payee.wait_accepted(WAIT).await.unwrap(),
        car.address(),
        "the charger learns who pays"
    );
    (payee, payer)
}

/// Waits until the payee was paid for `units`.
pub async fn paid(payee: &PayeeHandle, units: u64) {
    eventually(&format!("{units} units paid"), || async {
        payee.status().await.paid_units >= units
    })
    .await;
}
