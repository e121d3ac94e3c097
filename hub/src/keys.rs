//! The operator key at rest, through `voltlane_store::keyfile`: by default a plain key file
//! (hex secret, `<data-dir>/operator.key` or `--operator-key-file`), created with mode 0600
//! from OS randomness on first start and read on every later start; or, with
//! `--operator-keystore`, an encrypted keystore v3 file opened with the passphrase from
//! `--operator-keystore-passphrase-file` or `VOLTLANE_OPERATOR_KEY_PASSPHRASE`. Either file
//! (and the passphrase file) is refused when group or others may access it.

use std::path::Path;

use channel_core::crypto::{LocalSigner, Signer};
use voltlane_store::keyfile::{self, KeySource, Passphrase};

use crate::clock::random_bytes;
use crate::config::HubConfig;
use crate::error::HubError;

/// Environment variable holding the operator keystore's passphrase when no passphrase file
/// is configured.
pub const PASSPHRASE_ENV: &str = "VOLTLANE_OPERATOR_KEY_PASSPHRASE";

/// The operator key `config` names: the keystore if `--operator-keystore` is set, else the
/// plain key file (created if absent).
pub fn load(config: &HubConfig) -> Result<LocalSigner, HubError> {
    match &config.operator_keystore {
        Some(path) => {
            let passphrase = match &config.operator_keystore_passphrase_file {
                Some(file) => Passphrase::File(file.clone()),
                None => Passphrase::Env(PASSPHRASE_ENV.into()),
            };
            load_source(&KeySource::keystore(path, passphrase))
        }
        None => load_or_create(&config.operator_key_path()),
    }
}

/// Loads the operator key from `source` (which must exist).
pub fn load_source(source: &KeySource) -> Result<LocalSigner, HubError> {
    let secret = source.load()?;
    let path = source.path();
    let signer = LocalSigner::from_bytes(secret.as_slice())
        .map_err(|e| HubError::OperatorKey(format!("{}: {e}", path.display())))?;
    let format = match source {
        KeySource::Plain(_) => "plain",
        KeySource::Keystore { .. } => "keystore",
    };
    tracing::info!(address = %signer.address(), path = %path.display(), format, "operator key loaded");
    Ok(signer)
}

/// Loads the plain operator key file at `path`, creating it (mode 0600) if it does not exist.
pub fn load_or_create(path: &Path) -> Result<LocalSigner, HubError> {
    match load_source(&KeySource::Plain(path.to_owned())) {
        Err(HubError::KeyFile(keyfile::KeyFileError::NotFound { .. })) => create(path),
        other => other,
    }
}

fn create(path: &Path) -> Result<LocalSigner, HubError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // A random 32-byte string is a valid secret key with overwhelming probability; retry the
    // negligible rest (zero or >= curve order) a few times.
    let mut signer = None;
    for _ in 0..8 {
        if let Ok(s) = LocalSigner::from_bytes(&random_bytes::<32>()?) {
            signer = Some(s);
            break;
        }
    }
    let signer =
        signer.ok_or_else(|| HubError::OperatorKey("could not draw a valid key".into()))?;
    keyfile::write_plain(path, &keyfile::SecretBytes::new(signer.to_bytes()))?;
    tracing::info!(address = %signer.address(), path = %path.display(), "operator key created");
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_with_0600_and_reloads_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/operator.key");
        let a = load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.address(), b.address());
    }

    #[test]
    fn rejects_garbage_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operator.key");
        std::fs::write(&path, "not hex").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("not a hex secret"), "{err}");
    }

    #[test]
    fn refuses_a_world_readable_operator_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operator.key");
        load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(
            matches!(
                &err,
                HubError::KeyFile(keyfile::KeyFileError::Permissions { path: p, mode: 0o644 })
                    if p == &path
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("operator.key") && text.contains("0644"),
            "{text}"
        );
        // Not replaced by a fresh key either: the file is untouched.
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
    }

    #[test]
    fn keystore_key_is_the_plain_key_it_was_made_from() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("operator.key");
        let signer = load_or_create(&plain).unwrap();
        let secret = keyfile::read_plain(&plain).unwrap();
        let store = dir.path().join("operator.json");
        keyfile::write_keystore(&store, &secret, b"pw").unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "pw\n").unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut config = HubConfig::new(dir.path().join("data"));
        config.operator_keystore = Some(store);
        config.operator_keystore_passphrase_file = Some(pass.clone());
        assert_eq!(load(&config).unwrap().address(), signer.address());
        // The plain default is not touched when a keystore is configured.
        assert!(!dir.path().join("data/operator.key").exists());
        std::fs::write(&pass, "wrong\n").unwrap();
        let err = load(&config).unwrap_err();
        assert!(
            matches!(
                err,
                HubError::KeyFile(keyfile::KeyFileError::WrongPassphrase { .. })
            ),
            "{err}"
        );
    }
}
