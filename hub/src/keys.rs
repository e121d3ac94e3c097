//! The operator key file: a hex-encoded secp256k1 secret, created with mode 0600 on first start
//! from OS randomness, read on every later start.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use channel_core::crypto::{LocalSigner, Signer};
use channel_core::primitives::decode_hex;

use crate::clock::random_bytes;
use crate::error::HubError;

/// Loads the operator key from `path`, creating it (mode 0600) if it does not exist.
pub fn load_or_create(path: &Path) -> Result<LocalSigner, HubError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            let bytes = decode_hex(text.trim()).map_err(|e| {
                HubError::OperatorKey(format!("{}: not a hex secret: {e}", path.display()))
            })?;
            let signer = LocalSigner::from_bytes(&bytes)
                .map_err(|e| HubError::OperatorKey(format!("{}: {e}", path.display())))?;
            tracing::info!(address = %signer.address(), path = %path.display(), "operator key loaded");
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(HubError::OperatorKey(format!("{}: {e}", path.display()))),
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
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| HubError::OperatorKey(format!("{}: {e}", path.display())))?;
    writeln!(file, "{}", hex::encode(signer.to_bytes()))?;
    file.sync_all()?;
    tracing::info!(address = %signer.address(), path = %path.display(), "operator key created");
    Ok(signer)
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "operator key file is accessible by group/others; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
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
        let err = load_or_create(&path).unwrap_err();
        assert!(err.to_string().contains("not a hex secret"), "{err}");
    }
}
