//! `key new|encrypt|address`: key files at rest, offline (no hub), through
//! `voltlane_store::keyfile`. `key new` draws a key from OS randomness into a new keystore
//! v3 file (or, with `--plain`, a plain 0600 key file), `key encrypt` turns a plain key file
//! (the hub's `operator.key`, a device key) into a keystore the hub opens with
//! `--operator-keystore` and the SDK with `ConnectOptions::key_file`, and `key address`
//! prints the address of either kind. A keystore's passphrase comes from
//! `--passphrase-file` or the environment variable `--passphrase-env` names. No file is ever
//! overwritten, and every key or passphrase file read must be private (mode 0600).

use std::path::{Path, PathBuf};

use channel_core::crypto::{LocalSigner, Signer};
use clap::{Args, Subcommand};
use serde::Serialize;
use voltlane_store::keyfile::{self, KeySource, Passphrase, SecretBytes};

use crate::error::CliError;
use crate::output::{print, Render, Table};

/// The environment variable a keystore's passphrase is read from by default.
pub const DEFAULT_PASSPHRASE_ENV: &str = "VOLTLANE_KEY_PASSPHRASE";

/// `key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Draw a new key into a new keystore v3 file (`--keystore`) or plain key file
    /// (`--plain`).
    New {
        /// The keystore file to create (mode 0600).
        #[arg(long, required_unless_present = "plain", conflicts_with = "plain")]
        keystore: Option<PathBuf>,
        /// The plain key file to create instead (hex secret, mode 0600).
        #[arg(long)]
        plain: Option<PathBuf>,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Encrypt a plain key file into a new keystore v3 file (the plain file is left as it
    /// is: delete it once the keystore works).
    Encrypt {
        /// The plain key file (hex secret, mode 0600).
        #[arg(long = "in", value_name = "PLAIN_KEY")]
        input: PathBuf,
        /// The keystore file to create (mode 0600).
        #[arg(long = "out", value_name = "KEYSTORE")]
        output: PathBuf,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
    /// Print the address of a plain key file, or of a keystore with `--keystore`.
    Address {
        /// The key file.
        file: PathBuf,
        /// The file is a keystore v3 file (opened with the passphrase).
        #[arg(long)]
        keystore: bool,
        #[command(flatten)]
        passphrase: PassphraseArgs,
    },
}

/// Where a keystore's passphrase comes from.
#[derive(Debug, Clone, Args)]
pub struct PassphraseArgs {
    /// File holding the keystore's passphrase (mode 0600; one trailing newline is not part of
    /// it).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Environment variable holding the passphrase, when no `--passphrase-file` is given.
    #[arg(long, default_value = DEFAULT_PASSPHRASE_ENV)]
    pub passphrase_env: String,
}

impl PassphraseArgs {
    fn source(&self) -> Passphrase {
        match &self.passphrase_file {
            Some(path) => Passphrase::File(path.clone()),
            None => Passphrase::Env(self.passphrase_env.clone()),
        }
    }
}

/// What a `key` command wrote or read.
#[derive(Debug, Serialize)]
pub struct KeyFileInfo {
    pub address: String,
    pub path: String,
    pub format: &'static str,
}

impl Render for KeyFileInfo {
    fn table(&self) -> Table {
        Table::fields()
            .field("address", &self.address)
            .field("path", &self.path)
            .field("format", self.format)
    }
}

/// Runs one `key` command.
pub fn run(command: &KeyCommand, json: bool) -> Result<(), CliError> {
    let info = match command {
        KeyCommand::New {
            keystore,
            plain,
            passphrase,
        } => {
            let secret = fresh_secret()?;
            match (keystore, plain) {
                (Some(path), _) => {
                    write_keystore(path, &secret, passphrase)?;
                    info(path, &secret, "keystore")?
                }
                (None, Some(path)) => {
                    keyfile::write_plain(path, &secret).map_err(local)?;
                    info(path, &secret, "plain")?
                }
                (None, None) => {
                    return Err(CliError::Usage(
                        "key new needs --keystore <file> or --plain <file>".into(),
                    ))
                }
            }
        }
        KeyCommand::Encrypt {
            input,
            output,
            passphrase,
        } => {
            let secret = keyfile::read_plain(input).map_err(local)?;
            // Refuse what is no key before encrypting it.
            signer(input, &secret)?;
            write_keystore(output, &secret, passphrase)?;
            info(output, &secret, "keystore")?
        }
        KeyCommand::Address {
            file,
            keystore,
            passphrase,
        } => {
            let source = if *keystore {
                KeySource::keystore(file, passphrase.source())
            } else {
                KeySource::Plain(file.clone())
            };
            let secret = source.load().map_err(local)?;
            info(file, &secret, if *keystore { "keystore" } else { "plain" })?
        }
    };
    print(&info, json)
}

fn write_keystore(
    path: &Path,
    secret: &SecretBytes,
    passphrase: &PassphraseArgs,
) -> Result<(), CliError> {
    let passphrase = passphrase.source().read().map_err(local)?;
    keyfile::write_keystore(path, secret, &passphrase).map_err(local)
}

fn info(path: &Path, secret: &SecretBytes, format: &'static str) -> Result<KeyFileInfo, CliError> {
    Ok(KeyFileInfo {
        address: signer(path, secret)?.address().to_string(),
        path: path.display().to_string(),
        format,
    })
}

fn signer(path: &Path, secret: &SecretBytes) -> Result<LocalSigner, CliError> {
    LocalSigner::from_bytes(secret.as_slice())
        .map_err(|e| CliError::Local(format!("key file {}: {e}", path.display())))
}

/// A valid secp256k1 secret from OS randomness (a random 32-byte string is one with
/// overwhelming probability; the negligible rest is drawn again).
fn fresh_secret() -> Result<SecretBytes, CliError> {
    use rand::RngCore;
    for _ in 0..8 {
        let mut secret = SecretBytes::new([0u8; keyfile::SECRET_LEN]);
        rand::rngs::OsRng
            .try_fill_bytes(secret.as_mut_slice())
            .map_err(|e| CliError::Local(format!("OS randomness unavailable: {e}")))?;
        if LocalSigner::from_bytes(secret.as_slice()).is_ok() {
            return Ok(secret);
        }
    }
    Err(CliError::Local("could not draw a valid key".into()))
}

fn local(e: keyfile::KeyFileError) -> CliError {
    CliError::Local(e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn pass_file(dir: &Path, text: &str) -> PassphraseArgs {
        let path = dir.join("pass");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        PassphraseArgs {
            passphrase_file: Some(path),
            passphrase_env: DEFAULT_PASSPHRASE_ENV.into(),
        }
    }

    #[test]
    fn encrypt_keeps_the_address_of_the_plain_key() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.key");
        run(
            &KeyCommand::New {
                keystore: None,
                plain: Some(plain.clone()),
                passphrase: pass_file(dir.path(), "unused"),
            },
            true,
        )
        .unwrap();
        let passphrase = pass_file(dir.path(), "s3cret\n");
        let out = dir.path().join("keystore.json");
        run(
            &KeyCommand::Encrypt {
                input: plain.clone(),
                output: out.clone(),
                passphrase: passphrase.clone(),
            },
            true,
        )
        .unwrap();
        let from_plain = keyfile::read_plain(&plain).unwrap();
        let from_store = keyfile::read_keystore(&out, b"s3cret").unwrap();
        assert_eq!(*from_plain, *from_store);
        // A second encrypt does not overwrite the keystore.
        let again = run(
            &KeyCommand::Encrypt {
                input: plain,
                output: out,
                passphrase,
            },
            true,
        )
        .unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
    }

    #[test]
    fn encrypt_refuses_a_shared_plain_key() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.key");
        keyfile::write_plain(&plain, &fresh_secret().unwrap()).unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = run(
            &KeyCommand::Encrypt {
                input: plain,
                output: dir.path().join("k.json"),
                passphrase: pass_file(dir.path(), "pw"),
            },
            true,
        )
        .unwrap_err();
        assert!(err.to_string().contains("0644"), "{err}");
        assert!(!dir.path().join("k.json").exists());
    }
}
