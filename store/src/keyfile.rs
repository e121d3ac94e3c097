//! Keys at rest: the one place where a Voltlane process reads or writes its secp256k1 secret
//! key on disk (the hub's operator key, a device's key), in one of two formats:
//!
//! - **plain** ([`read_plain`], [`write_plain`]): the secret as hex on one line, mode 0600.
//!   The development default; anyone who can read the file has the key.
//! - **keystore** ([`read_keystore`], [`write_keystore`]): the Ethereum keystore v3 JSON
//!   format (Web3 Secret Storage; scrypt or PBKDF2, AES-128-CTR, Keccak-256 MAC), through the
//!   `eth-keystore` crate, so files from and for geth, Foundry's `cast wallet` or clef work.
//!   Its passphrase comes from a [`Passphrase`]: an environment variable, a passphrase file,
//!   or a value the embedding application obtained.
//!
//! Every file read here (plain key, keystore, passphrase file) must be private to its owner:
//! a mode granting group or others any access (`mode & 0o077 != 0`) is refused with
//! [`KeyFileError::Permissions`], which names the path and the mode. Files written here are
//! created 0600 and never overwrite an existing file. The secret is handed out as
//! [`SecretBytes`], wiped from memory when dropped; passphrases likewise. What these bytes
//! are a key of (checking they are a valid secp256k1 scalar, deriving the address) is the
//! caller's: `channel_core::LocalSigner::from_bytes`.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use eth_keystore::{EthKeystore, KdfType, KdfparamsType, KeystoreError};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

/// Length of a secp256k1 secret key.
pub const SECRET_LEN: usize = 32;

/// A secret key read from a key file, wiped when dropped.
pub type SecretBytes = Zeroizing<[u8; SECRET_LEN]>;

/// The mode files are created with, and the most any key or passphrase file may allow.
pub const PRIVATE_MODE: u32 = 0o600;

/// Permission bits that must be clear on a key or passphrase file: any access by group or
/// others.
const SHARED_BITS: u32 = 0o077;

/// Largest key, keystore or passphrase file read (a keystore is about 500 bytes).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// Most memory a keystore's scrypt parameters may demand (`128 * r * n` bytes): eight times
/// geth's "standard" 256 MiB. A file asking for more is refused rather than allocated for.
pub const MAX_SCRYPT_MEMORY: u64 = 2 << 30;

/// Most scrypt parallelism (`p`) a keystore may ask for (geth uses 1).
pub const MAX_SCRYPT_P: u32 = 16;

/// Most PBKDF2 rounds a keystore may ask for (geth's PBKDF2 keystores use 262 144).
pub const MAX_PBKDF2_ROUNDS: u32 = 10_000_000;

/// The only cipher of keystore v3.
const KEYSTORE_CIPHER: &str = "aes-128-ctr";

/// The file name `eth-keystore` writes to inside the private temporary directory.
const TMP_KEYSTORE_NAME: &str = "keystore.json";

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// A key, keystore or passphrase file grants group or others access.
    #[error(
        "{}: mode {mode:04o} lets group or others access it; a key or passphrase file must \
         be private to its owner (chmod 600 {})",
        .path.display(),
        .path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    /// The file does not exist.
    #[error("{}: no such file", .path.display())]
    NotFound { path: PathBuf },
    /// The path names a directory, a device, a socket...
    #[error("{}: not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    /// The file is larger than [`MAX_FILE_BYTES`].
    #[error("{}: larger than {MAX_FILE_BYTES} bytes, not a key or passphrase file", .path.display())]
    TooLarge { path: PathBuf },
    /// Reading or writing failed.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A plain key file is not one hex secret of [`SECRET_LEN`] bytes.
    #[error("{}: not a plain key file (one hex secp256k1 secret): {reason}", .path.display())]
    PlainKey { path: PathBuf, reason: String },
    /// A keystore file is malformed or uses parameters this build refuses.
    #[error("{}: not a usable keystore v3 file: {reason}", .path.display())]
    Keystore { path: PathBuf, reason: String },
    /// The passphrase does not open the keystore (its MAC does not match).
    #[error("{}: wrong passphrase for this keystore", .path.display())]
    WrongPassphrase { path: PathBuf },
    /// The passphrase's environment variable is not set.
    #[error("passphrase environment variable {var} is not set")]
    PassphraseEnv { var: String },
    /// The passphrase is empty.
    #[error("the passphrase from {from} is empty")]
    EmptyPassphrase { from: String },
    /// Refusing to overwrite an existing file with a new key.
    #[error("{}: already exists; a key file is never overwritten", .path.display())]
    Exists { path: PathBuf },
    /// Encrypting a keystore failed.
    #[error("{}: cannot encrypt the keystore: {reason}", .path.display())]
    Encrypt { path: PathBuf, reason: String },
}

impl KeyFileError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        match source.kind() {
            std::io::ErrorKind::NotFound => KeyFileError::NotFound {
                path: path.to_owned(),
            },
            std::io::ErrorKind::AlreadyExists => KeyFileError::Exists {
                path: path.to_owned(),
            },
            _ => KeyFileError::Io {
                path: path.to_owned(),
                source,
            },
        }
    }
}

/// Where a keystore's passphrase comes from.
#[derive(Clone)]
pub enum Passphrase {
    /// The value of this environment variable (read when the key is loaded).
    Env(String),
    /// The contents of this file (private to its owner, like a key file), without one
    /// trailing newline.
    File(PathBuf),
    /// A passphrase the application obtained itself (e.g. asked its user).
    Value(Zeroizing<Vec<u8>>),
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Passphrase::Env(var) => f.debug_tuple("Env").field(var).finish(),
            Passphrase::File(path) => f.debug_tuple("File").field(path).finish(),
            Passphrase::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

impl Passphrase {
    /// A passphrase given as a value.
    pub fn value(passphrase: impl Into<Vec<u8>>) -> Self {
        Passphrase::Value(Zeroizing::new(passphrase.into()))
    }

    /// The passphrase's bytes; an unset variable, an unreadable or shared file, or an empty
    /// passphrase is an error.
    pub fn read(&self) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
        let bytes = match self {
            Passphrase::Env(var) => match std::env::var_os(var) {
                Some(value) => Zeroizing::new(value.into_vec()),
                None => return Err(KeyFileError::PassphraseEnv { var: var.clone() }),
            },
            Passphrase::File(path) => {
                let mut bytes = read_private(path)?;
                for suffix in [&b"\r\n"[..], b"\n"] {
                    if bytes.ends_with(suffix) {
                        let keep = bytes.len() - suffix.len();
                        bytes[keep..].zeroize();
                        bytes.truncate(keep);
                        break;
                    }
                }
                bytes
            }
            Passphrase::Value(bytes) => bytes.clone(),
        };
        if bytes.is_empty() {
            return Err(KeyFileError::EmptyPassphrase {
                from: self.describe(),
            });
        }
        Ok(bytes)
    }

    /// Where the passphrase comes from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Passphrase::Env(var) => format!("environment variable {var}"),
            Passphrase::File(path) => format!("file {}", path.display()),
            Passphrase::Value(_) => "the application".into(),
        }
    }
}

/// A key file and how to open it.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// A plain (hex) key file.
    Plain(PathBuf),
    /// A keystore v3 file and its passphrase.
    Keystore {
        path: PathBuf,
        passphrase: Passphrase,
    },
}

impl KeySource {
    /// A keystore file opened with `passphrase`.
    pub fn keystore(path: impl Into<PathBuf>, passphrase: Passphrase) -> Self {
        KeySource::Keystore {
            path: path.into(),
            passphrase,
        }
    }

    /// The key file's path.
    pub fn path(&self) -> &Path {
        match self {
            KeySource::Plain(path) | KeySource::Keystore { path, .. } => path,
        }
    }

    /// Reads the secret key.
    pub fn load(&self) -> Result<SecretBytes, KeyFileError> {
        match self {
            KeySource::Plain(path) => read_plain(path),
            KeySource::Keystore { path, passphrase } => read_keystore(path, &passphrase.read()?),
        }
    }
}

/// Refuses `mode` (of the file at `path`) if it grants group or others any access.
pub fn check_private(path: &Path, mode: u32) -> Result<(), KeyFileError> {
    if mode & SHARED_BITS != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Reads a whole key, keystore or passphrase file after checking (on the opened file) that it
/// is a regular file, private to its owner and at most [`MAX_FILE_BYTES`] long.
pub fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let file = File::open(path).map_err(|e| KeyFileError::io(path, e))?;
    let meta = file.metadata().map_err(|e| KeyFileError::io(path, e))?;
    if !meta.is_file() {
        return Err(KeyFileError::NotAFile {
            path: path.to_owned(),
        });
    }
    check_private(path, meta.permissions().mode())?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(
        usize::try_from(meta.len()).unwrap_or(0).saturating_add(1),
    ));
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyFileError::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(KeyFileError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

/// Reads a plain key file: one hex secret (an optional `0x`, surrounding whitespace allowed).
pub fn read_plain(path: &Path) -> Result<SecretBytes, KeyFileError> {
    let bytes = read_private(path)?;
    let bad = |reason: &str| KeyFileError::PlainKey {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad("not UTF-8 text"))?;
    let text = text.trim();
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("not a hex secret"));
    }
    if digits.len() != 2 * SECRET_LEN {
        return Err(bad(&format!(
            "{} hex digits, expected {}",
            digits.len(),
            2 * SECRET_LEN
        )));
    }
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    hex::decode_to_slice(digits, secret.as_mut_slice())
        .map_err(|e| bad(&format!("not a hex secret: {e}")))?;
    Ok(secret)
}

/// Writes `secret` as a new plain key file (mode 0600, hex, durable before returning);
/// refuses to overwrite an existing file.
pub fn write_plain(path: &Path, secret: &[u8; SECRET_LEN]) -> Result<(), KeyFileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(path)
        .map_err(|e| KeyFileError::io(path, e))?;
    let mut line = Zeroizing::new(hex::encode(secret));
    line.push('\n');
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| KeyFileError::io(path, e))?;
    sync_parent(path);
    Ok(())
}

/// Reads the secret of a keystore v3 file with `passphrase`.
///
/// The file is parsed and checked here first (version 3, AES-128-CTR, a 16-byte IV, a
/// 32-byte ciphertext and MAC, a 32-byte derived key, KDF costs within [`MAX_SCRYPT_MEMORY`],
/// [`MAX_SCRYPT_P`], [`MAX_PBKDF2_ROUNDS`]) so that no file makes the crate panic or allocate
/// without bound.
pub fn read_keystore(path: &Path, passphrase: &[u8]) -> Result<SecretBytes, KeyFileError> {
    let bytes = read_private(path)?;
    let keystore: EthKeystore =
        serde_json::from_slice(&bytes).map_err(|e| KeyFileError::Keystore {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    check_keystore(&keystore).map_err(|reason| KeyFileError::Keystore {
        path: path.to_owned(),
        reason,
    })?;
    // `eth-keystore` reads the file itself. The checks above make it panic-free for the
    // contents just read; should the owner rewrite the file in between, a panic is still
    // turned into an error rather than taking the process down.
    let decrypted = std::panic::catch_unwind(|| eth_keystore::decrypt_key(path, passphrase))
        .map_err(|_| KeyFileError::Keystore {
            path: path.to_owned(),
            reason: "the file changed while it was being read".into(),
        })?;
    let mut plain = match decrypted {
        Ok(plain) => Zeroizing::new(plain),
        Err(KeystoreError::MacMismatch) => {
            return Err(KeyFileError::WrongPassphrase {
                path: path.to_owned(),
            })
        }
        Err(e) => {
            return Err(KeyFileError::Keystore {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        }
    };
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    if plain.len() != SECRET_LEN {
        return Err(KeyFileError::Keystore {
            path: path.to_owned(),
            reason: format!("holds {} bytes, not a {SECRET_LEN}-byte key", plain.len()),
        });
    }
    secret.copy_from_slice(&plain);
    plain.zeroize();
    Ok(secret)
}

/// What this build accepts of a keystore, or why not.
fn check_keystore(keystore: &EthKeystore) -> Result<(), String> {
    if keystore.version != 3 {
        return Err(format!("version {}, only 3 is supported", keystore.version));
    }
    let crypto = &keystore.crypto;
    if crypto.cipher != KEYSTORE_CIPHER {
        return Err(format!(
            "cipher {:?}, only {KEYSTORE_CIPHER} is supported",
            crypto.cipher
        ));
    }
    let lengths = [
        ("cipherparams.iv", crypto.cipherparams.iv.len(), 16),
        ("ciphertext", crypto.ciphertext.len(), SECRET_LEN),
        ("mac", crypto.mac.len(), 32),
    ];
    for (field, len, want) in lengths {
        if len != want {
            return Err(format!("{field} has {len} bytes, not {want}"));
        }
    }
    let dklen = match (&crypto.kdf, &crypto.kdfparams) {
        (KdfType::Scrypt, KdfparamsType::Scrypt { dklen, n, p, r, .. }) => {
            if *n < 2 || !n.is_power_of_two() {
                return Err(format!("scrypt n = {n} is not a power of two above 1"));
            }
            if *r == 0 || *p == 0 || *p > MAX_SCRYPT_P {
                return Err(format!(
                    "scrypt r = {r}, p = {p}: both must be at least 1, p at most {MAX_SCRYPT_P}"
                ));
            }
            let memory = 128u64 * u64::from(*r) * u64::from(*n);
            if memory > MAX_SCRYPT_MEMORY {
                return Err(format!(
                    "scrypt n = {n}, r = {r} needs {memory} bytes, more than the \
                     {MAX_SCRYPT_MEMORY} allowed"
                ));
            }
            *dklen
        }
        (KdfType::Pbkdf2, KdfparamsType::Pbkdf2 { c, dklen, prf, .. }) => {
            if prf != "hmac-sha256" {
                return Err(format!("pbkdf2 prf {prf:?}, only hmac-sha256 is supported"));
            }
            if *c == 0 || *c > MAX_PBKDF2_ROUNDS {
                return Err(format!(
                    "pbkdf2 c = {c}: must be between 1 and {MAX_PBKDF2_ROUNDS}"
                ));
            }
            *dklen
        }
        (kdf, _) => return Err(format!("kdfparams do not fit kdf {kdf:?}")),
    };
    if dklen != 32 {
        return Err(format!("kdfparams.dklen = {dklen}, not 32"));
    }
    Ok(())
}

/// Writes `secret` as a new keystore v3 file encrypted with `passphrase` (scrypt with the
/// crate's parameters: n = 2^13, r = 8, p = 1), mode 0600; refuses to overwrite an existing
/// file and an empty passphrase.
///
/// `eth-keystore` creates its file with the process's umask, so it writes into a fresh
/// directory of mode 0700 next to `path`; the file is made 0600 and synced there, then
/// renamed into place.
pub fn write_keystore(
    path: &Path,
    secret: &[u8; SECRET_LEN],
    passphrase: &[u8],
) -> Result<(), KeyFileError> {
    if passphrase.is_empty() {
        return Err(KeyFileError::EmptyPassphrase {
            from: "the caller".into(),
        });
    }
    if path.symlink_metadata().is_ok() {
        return Err(KeyFileError::Exists {
            path: path.to_owned(),
        });
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = PrivateDir::create(&dir)?;
    let tmp_file = tmp.path.join(TMP_KEYSTORE_NAME);
    eth_keystore::encrypt_key(
        &tmp.path,
        &mut OsRng,
        secret,
        passphrase,
        Some(TMP_KEYSTORE_NAME),
    )
    .map_err(|e| KeyFileError::Encrypt {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    std::fs::set_permissions(&tmp_file, std::fs::Permissions::from_mode(PRIVATE_MODE))
        .and_then(|()| File::open(&tmp_file)?.sync_all())
        .map_err(|e| KeyFileError::io(&tmp_file, e))?;
    if path.symlink_metadata().is_ok() {
        return Err(KeyFileError::Exists {
            path: path.to_owned(),
        });
    }
    std::fs::rename(&tmp_file, path).map_err(|e| KeyFileError::io(path, e))?;
    sync_parent(path);
    Ok(())
}

/// A directory of mode 0700, removed with its contents when dropped.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create(parent: &Path) -> Result<Self, KeyFileError> {
        let path = parent.join(format!(".voltlane-keystore-{:016x}", OsRng.next_u64()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| KeyFileError::io(&path, e))?;
        Ok(Self { path })
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Makes a new directory entry durable (best effort: a directory that cannot be opened or
/// synced leaves the file itself durable).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SECRET: [u8; 32] = [7u8; 32];

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn keystore_round_trip_is_private_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("operator.json");
        write_keystore(&path, &SECRET, b"correct horse").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The secret is not in the file in the clear.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&hex::encode(SECRET)), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["version"], 3);
        assert_eq!(json["crypto"]["kdf"], "scrypt");
        assert_eq!(*read_keystore(&path, b"correct horse").unwrap(), SECRET);
        let again = write_keystore(&path, &[9u8; 32], b"other").unwrap_err();
        assert!(matches!(again, KeyFileError::Exists { .. }), "{again}");
        assert_eq!(*read_keystore(&path, b"correct horse").unwrap(), SECRET);
        // Only the keystore is left behind (the private temporary directory is gone).
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn keystore_wrong_passphrase_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        write_keystore(&path, &SECRET, b"right").unwrap();
        let err = read_keystore(&path, b"wrong").unwrap_err();
        assert!(matches!(err, KeyFileError::WrongPassphrase { .. }), "{err}");
        assert!(err.to_string().contains("k.json"), "{err}");
    }

    /// The PBKDF2 test vector of the Web3 Secret Storage Definition: files written by other
    /// Ethereum tools open here.
    #[test]
    fn reads_the_web3_secret_storage_test_vector() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vector.json");
        let vector = r#"{"crypto":{"cipher":"aes-128-ctr",
            "cipherparams":{"iv":"6087dab2f9fdbbfaddc31a909735c1e6"},
            "ciphertext":"5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
            "kdf":"pbkdf2","kdfparams":{"c":262144,"dklen":32,"prf":"hmac-sha256",
            "salt":"ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd"},
            "mac":"517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2"},
            "id":"3198bc9c-6672-5ab3-d995-4942343ae5b6","version":3}"#;
        std::fs::write(&path, vector).unwrap();
        chmod(&path, 0o600);
        let secret = read_keystore(&path, b"testpassword").unwrap();
        assert_eq!(
            hex::encode(*secret),
            "7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d"
        );
    }

    #[test]
    fn malformed_keystores_are_refused_without_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        write_keystore(&path, &SECRET, b"pw").unwrap();
        let good: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        // (case, JSON pointer into the keystore, the value put there)
        let cases = [
            (
                "short iv",
                "/crypto/cipherparams/iv",
                serde_json::json!("00"),
            ),
            ("dklen", "/crypto/kdfparams/dklen", serde_json::json!(8)),
            ("n", "/crypto/kdfparams/n", serde_json::json!(1000)),
            (
                "memory",
                "/crypto/kdfparams/n",
                serde_json::json!(1u64 << 31),
            ),
            ("cipher", "/crypto/cipher", serde_json::json!("aes-128-cbc")),
            ("version", "/version", serde_json::json!(1)),
            ("mac", "/crypto/mac", serde_json::json!("abcd")),
        ];
        for (name, pointer, value) in cases {
            let mut bad = good.clone();
            *bad.pointer_mut(pointer).unwrap() = value;
            let file = dir
                .path()
                .join(format!("bad-{}.json", name.replace(' ', "-")));
            std::fs::write(&file, bad.to_string()).unwrap();
            chmod(&file, 0o600);
            let err = read_keystore(&file, b"pw").unwrap_err();
            assert!(
                matches!(err, KeyFileError::Keystore { .. }),
                "{name}: {err}"
            );
        }
        let file = dir.path().join("not-json");
        std::fs::write(&file, "{").unwrap();
        chmod(&file, 0o600);
        assert!(matches!(
            read_keystore(&file, b"pw").unwrap_err(),
            KeyFileError::Keystore { .. }
        ));
    }

    #[test]
    fn plain_round_trip_and_refusal_of_shared_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.key");
        write_plain(&path, &SECRET).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(*read_plain(&path).unwrap(), SECRET);
        assert!(matches!(
            write_plain(&path, &SECRET).unwrap_err(),
            KeyFileError::Exists { .. }
        ));
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660] {
            chmod(&path, mode);
            let err = read_plain(&path).unwrap_err();
            match &err {
                KeyFileError::Permissions { path: p, mode: m } => {
                    assert_eq!(p, &path);
                    assert_eq!(*m, mode);
                }
                other => panic!("mode {mode:o}: {other}"),
            }
            let text = err.to_string();
            assert!(
                text.contains("plain.key") && text.contains(&format!("{mode:04o}")),
                "{text}"
            );
        }
        chmod(&path, 0o400);
        assert_eq!(*read_plain(&path).unwrap(), SECRET);
    }

    #[test]
    fn keystore_and_passphrase_files_must_be_private_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.json");
        write_keystore(&path, &SECRET, b"pw").unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "pw\n").unwrap();
        chmod(&pass, 0o600);
        let source = KeySource::keystore(&path, Passphrase::File(pass.clone()));
        assert_eq!(
            *source.load().unwrap(),
            SECRET,
            "one trailing newline is not part of it"
        );
        chmod(&pass, 0o644);
        let err = source.load().unwrap_err();
        assert!(
            matches!(&err, KeyFileError::Permissions { path, .. } if path == &pass),
            "{err}"
        );
        chmod(&pass, 0o600);
        chmod(&path, 0o640);
        let err = source.load().unwrap_err();
        assert!(
            matches!(&err, KeyFileError::Permissions { path: p, .. } if p == &path),
            "{err}"
        );
    }

    #[test]
    fn plain_key_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let write = |text: &str| {
            let _ = std::fs::remove_file(&path);
            std::fs::write(&path, text).unwrap();
            chmod(&path, 0o600);
        };
        write(&format!("0x{}\n", hex::encode(SECRET)));
        assert_eq!(*read_plain(&path).unwrap(), SECRET);
        for bad in ["not hex", "abcd", &hex::encode([1u8; 33])] {
            write(bad);
            let err = read_plain(&path).unwrap_err();
            assert!(matches!(err, KeyFileError::PlainKey { .. }), "{bad}: {err}");
        }
        let missing = dir.path().join("missing");
        assert!(matches!(
            read_plain(&missing).unwrap_err(),
            KeyFileError::NotFound { .. }
        ));
        assert!(matches!(
            read_plain(dir.path()).unwrap_err(),
            KeyFileError::NotAFile { .. } | KeyFileError::Permissions { .. }
        ));
    }

    #[test]
    fn passphrase_sources() {
        let var = "VOLTLANE_KEYFILE_TEST_PASSPHRASE_UNSET_0b7c";
        assert!(matches!(
            Passphrase::Env(var.into()).read().unwrap_err(),
            KeyFileError::PassphraseEnv { .. }
        ));
        assert!(matches!(
            Passphrase::value("").read().unwrap_err(),
            KeyFileError::EmptyPassphrase { .. }
        ));
        assert_eq!(&*Passphrase::value("a b\n").read().unwrap(), b"a b\n");
        assert_eq!(
            format!("{:?}", Passphrase::value("hunter2")),
            "Value(<redacted>)"
        );
        // PATH is set in every test environment; its value comes back unchanged.
        let path = std::env::var_os("PATH").unwrap().into_vec();
        assert_eq!(&*Passphrase::Env("PATH".into()).read().unwrap(), &path);
    }
}
