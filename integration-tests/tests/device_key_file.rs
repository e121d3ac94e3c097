//! A device whose key is in an encrypted keystore (`ConnectOptions::key_file`) against a real
//! hub: it connects and pays as that key, its store never records the key (also across a
//! reconnect), a store that belongs to another key is refused, and a keystore or passphrase
//! file that group or others may access is refused before anything is sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use channel_core::crypto::Signer;
use channel_core::LocalSigner;
use integration_tests::{HubOptions, HubProcess};
use voltlane_client::keyfile::{self, KeyFileError};
use voltlane_client::{Client, ClientError, ConnectOptions, DeviceStore, Passphrase, U256};

fn device_key() -> LocalSigner {
    LocalSigner::from_bytes(&[0x5au8; 32]).unwrap()
}

fn keystore(dir: &Path, signer: &LocalSigner) -> std::path::PathBuf {
    let path = dir.join("device.json");
    keyfile::write_keystore(&path, &signer.to_bytes(), b"device passphrase").unwrap();
    path
}

#[tokio::test]
async fn device_key_from_a_keystore_pays_and_stays_out_of_the_store() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let signer = device_key();
    let options = ConnectOptions::new().key_file(
        keystore(dir.path(), &signer),
        Passphrase::value("device passphrase"),
    );
    let store = DeviceStore::in_memory();
    let client = Client::connect_with_options(&hub.url(), store.clone(), &options)
        .await
        .unwrap();
    assert_eq!(client.address(), signer.address());
    client.mint(U256::from(1_000u64)).await.unwrap();
    client.open_channel(U256::from(500u64)).await.unwrap();
    client.pay(U256::from(7u64)).await.unwrap();
    assert!(
        store.signer().unwrap().is_none(),
        "the key reached the store"
    );
    drop(client);

    // A restart with the same keystore resumes the same channel, still without the key in
    // the store.
    let client = Client::connect_with_options(&hub.url(), store.clone(), &options)
        .await
        .unwrap();
    client.pay(U256::from(5u64)).await.unwrap();
    assert_eq!(
        client.balances().unwrap().our_transferred,
        U256::from(12u64)
    );
    assert!(store.signer().unwrap().is_none());
}

#[tokio::test]
async fn a_store_of_another_key_and_shared_key_files_are_refused() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = keystore(dir.path(), &device_key());
    let options = ConnectOptions::new().key_file(&path, Passphrase::value("device passphrase"));

    // This store made and recorded a key of its own.
    let store = DeviceStore::in_memory();
    let other = Client::connect_with_stored_key(&hub.url(), store.clone())
        .await
        .unwrap();
    drop(other);
    let err = Client::connect_with_options(&hub.url(), store, &options)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::InvalidState(_)), "{err}");

    // A keystore others may read: refused, naming it and its mode.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = Client::connect_with_options(&hub.url(), DeviceStore::in_memory(), &options)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::KeyFile(KeyFileError::Permissions { path: p, mode: 0o644 }) if p == &path),
        "{err}"
    );

    // The wrong passphrase.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wrong = ConnectOptions::new().key_file(&path, Passphrase::value("not it"));
    let err = Client::connect_with_options(&hub.url(), DeviceStore::in_memory(), &wrong)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::KeyFile(KeyFileError::WrongPassphrase { .. })
        ),
        "{err}"
    );
}
