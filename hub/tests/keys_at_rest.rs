//! The operator key at rest: a hub refuses to start on a key file group or others may access,
//! and a hub started on an encrypted keystore (the real binary, passphrase from the
//! environment) is the same operator as a hub on the plain key the keystore was made from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use channel_core::primitives::Address;
use clap::Parser;
use common::{hub_address, key, TestHub};
use voltlane_hub::{HubConfig, HubError};
use voltlane_store::keyfile::{self, KeyFileError};

const HUB_BIN: &str = env!("CARGO_BIN_EXE_voltlane-hub");

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn hub_refuses_to_start_on_a_world_readable_operator_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("operator.key");
    keyfile::write_plain(&path, &key(3).to_bytes()).unwrap();
    chmod(&path, 0o644);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let run = voltlane_hub::run(HubConfig::new(dir.path()), listener, std::future::pending());
    let result = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("the hub started (and served) on a 0644 operator key");
    let err = result.unwrap_err();
    assert!(
        matches!(&err, HubError::KeyFile(KeyFileError::Permissions { path: p, mode: 0o644 }) if p == &path),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()) && text.contains("0644"),
        "{text}"
    );
    // Nothing was created beside the refused key.
    assert!(!dir.path().join("db").exists());
}

#[test]
fn keystore_flags_parse_and_exclude_the_plain_key_file() {
    let parsed = HubConfig::try_parse_from([
        "voltlane-hub",
        "--operator-keystore",
        "/k.json",
        "--operator-keystore-passphrase-file",
        "/pass",
    ])
    .unwrap();
    assert_eq!(
        parsed.operator_keystore.as_deref(),
        Some(Path::new("/k.json"))
    );
    assert_eq!(
        parsed.operator_keystore_passphrase_file.as_deref(),
        Some(Path::new("/pass"))
    );
    assert!(HubConfig::try_parse_from([
        "voltlane-hub",
        "--operator-keystore",
        "/k.json",
        "--operator-key-file",
        "/plain.key",
    ])
    .is_err());
    assert!(HubConfig::try_parse_from([
        "voltlane-hub",
        "--operator-keystore-passphrase-file",
        "/pass"
    ])
    .is_err());
}

/// Kills the child hub when the test ends, however it ends.
struct Spawned(Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_info(url: &str, child: &mut Child, log: &Path) -> Address {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the hub exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.to_string()) {
            if let Ok(channel) = endpoint.connect().await {
                return hub_address(channel).await;
            }
        }
        assert!(Instant::now() < deadline, "the hub at {url} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hub_on_a_keystore_is_the_operator_of_the_plain_key_it_was_made_from() {
    let dir = tempfile::tempdir().unwrap();
    // A hub on a plain key file creates it; that key is then encrypted into a keystore.
    let plain_dir = dir.path().join("plain-hub");
    let plain_hub = TestHub::start(&plain_dir).await;
    let plain_address = hub_address(plain_hub.channel().await).await;
    plain_hub.stop().await;
    let secret = keyfile::read_plain(&plain_dir.join("operator.key")).unwrap();
    let keystore = dir.path().join("operator.json");
    keyfile::write_keystore(&keystore, &secret, b"operator passphrase").unwrap();

    // The real binary on the keystore, the passphrase in its environment.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let data_dir = dir.path().join("keystore-hub");
    std::fs::create_dir_all(&data_dir).unwrap();
    let log_path = dir.path().join("hub.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(HUB_BIN)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--operator-keystore")
        .arg(&keystore)
        .env("VOLTLANE_OPERATOR_KEY_PASSPHRASE", "operator passphrase")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = Spawned(child);
    let url = format!("http://127.0.0.1:{port}");
    let keystore_address = wait_for_info(&url, &mut child.0, &log_path).await;
    assert_eq!(keystore_address, plain_address);
    // The hub on the keystore wrote no plain key of its own.
    assert!(!data_dir.join("operator.key").exists());
    drop(child);

    // The same binary with a wrong passphrase refuses to start, naming the keystore.
    let output = Command::new(HUB_BIN)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--operator-keystore")
        .arg(&keystore)
        .env("VOLTLANE_OPERATOR_KEY_PASSPHRASE", "not it")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("wrong passphrase") && text.contains("operator.json"),
        "{text}"
    );
}
