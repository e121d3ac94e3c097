//! TLS on the gRPC listener, with a CA and a hub certificate generated at test time: the SDK
//! connects over https with the CA, logs in and pays; without the CA, with another CA, or in
//! plain text it is refused; unreadable or malformed PEM stops the hub at start-up with the
//! flag named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use voltlane_client::{Client, ClientError, ConnectOptions, DeviceStore, U256};
use voltlane_hub::HubConfig;

/// A CA, and a certificate for 127.0.0.1 signed by it.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let ca = ca("voltlane test CA");
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

fn tls_config(dir: &Path, cert_pem: &str, key_pem: &str) -> HubConfig {
    let cert = dir.join("hub-cert.pem");
    let key = dir.join("hub-key.pem");
    std::fs::write(&cert, cert_pem).unwrap();
    std::fs::write(&key, key_pem).unwrap();
    let mut config = HubConfig::new(dir.join("data"));
    config.ops.tls_cert = Some(cert);
    config.ops.tls_key = Some(key);
    config
}

async fn connect(url: &str, seed: u8, options: &ConnectOptions) -> Result<Client, ClientError> {
    Client::connect_with(url, key(seed), DeviceStore::in_memory(), options).await
}

fn connect_message(result: Result<Client, ClientError>) -> String {
    match result {
        Err(ClientError::Connect { message, .. }) => message,
        Err(other) => panic!("expected a connection error, got {other:?}"),
        Ok(_) => panic!("expected a connection error, got a client"),
    }
}

#[tokio::test]
async fn a_device_with_the_ca_pays_over_https_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let hub = TestHub::start_with(tls_config(dir.path(), &pki.cert_pem, &pki.key_pem)).await;
    let url = format!("https://{}", hub.addr);

    let with_ca = ConnectOptions::new().ca_certificate(pki.ca_pem.clone());
    let client = connect(&url, 41, &with_ca).await.unwrap();
    client.mint(U256::from(1_000u32)).await.unwrap();
    client.open_channel(U256::from(500u32)).await.unwrap();
    for _ in 0..3 {
        client.pay(U256::from(7u8)).await.unwrap();
    }
    let balances = client.balances().unwrap();
    assert_eq!(balances.our_nonce, 3);
    assert_eq!(balances.our_transferred, U256::from(21u8));

    // Without a CA the SDK refuses to guess whom to trust.
    let message = connect_message(connect(&url, 42, &ConnectOptions::new()).await);
    assert!(message.contains("CA certificate"), "{message}");

    // A CA that did not sign the hub's certificate: the handshake fails.
    let other = ConnectOptions::new().ca_certificate(ca("someone else").pem());
    let message = connect_message(connect(&url, 43, &other).await);
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");

    // Plain text to a TLS listener gets nowhere.
    let plain = format!("http://{}", hub.addr);
    assert!(connect(&plain, 44, &ConnectOptions::new()).await.is_err());

    // A CA for a plain-text endpoint is a mistake the SDK names.
    let message = connect_message(connect(&plain, 45, &with_ca).await);
    assert!(message.contains("https://"), "{message}");

    // The device that connected properly still works.
    client.pay(U256::from(1u8)).await.unwrap();
    drop(client);
    hub.stop().await;
}

#[tokio::test]
async fn bad_tls_files_stop_the_hub_at_start_up_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();

    let mut missing = tls_config(dir.path(), &pki.cert_pem, &pki.key_pem);
    missing.ops.tls_key = Some(dir.path().join("no-such-key.pem"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = voltlane_hub::run(missing, listener, async {})
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--tls-key"), "{err}");
    assert!(err.contains("no-such-key.pem"), "{err}");

    let garbage = tls_config(dir.path(), "not a certificate", &pki.key_pem);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = voltlane_hub::run(garbage, listener, std::future::pending());
    let err = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("the hub refuses to start rather than serving")
        .unwrap_err()
        .to_string();
    assert!(err.contains("--tls-cert"), "{err}");
}
