//! Keys, hashes and signatures: keccak256, sha256, EIP-191 personal-sign hashing, and 65-byte
//! `r || s || v` secp256k1 signatures as Ethereum contracts check them.
//!
//! Signing goes through the [`Signer`] trait so that drivers can keep keys wherever they like
//! (file, HSM); [`LocalSigner`] holds the key in memory and signs with k256 (RFC 6979 nonces,
//! constant time). Checking a partner's signature is public-key *recovery* through
//! libsecp256k1 (the `secp256k1` crate: Bitcoin Core's library, the one behind geth's
//! `ecrecover`), so every signature accepted is one the ledger's `ecrecover` attributes to the
//! same address, computed by the same code. [`PeerKey`] remembers the partner's recovered key
//! so that later messages compare keys instead of hashing addresses.
//!
//! The contract's rules are ours, enforced before any curve arithmetic by
//! [`Signature::from_slice`]: exactly 65 bytes, `v` in {27, 28}, `r` and `s` in `1..n`, and `s`
//! in the lower half of the order (the high-s twin of a signature is refused as a malleable
//! duplicate, although `ecrecover` itself would accept it).
//!
//! `cargo bench -p channel-core --bench crypto` puts libsecp256k1's verify and recover next to
//! k256's; `docs/performance.md` has the table.

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use sha2::Sha256;
use sha3::{Digest, Keccak256};

use crate::primitives::{Address, H256};

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("signature must be 65 bytes (r || s || v), got {0}")]
    SignatureLength(usize),
    #[error("signature v must be 27 or 28, got {0}")]
    BadRecoveryByte(u8),
    #[error("signature s is in the upper half of the curve order (malleable duplicate)")]
    HighS,
    #[error("signature r or s is zero or not below the curve order")]
    NonCanonical,
    #[error("signature does not recover to a public key")]
    Unrecoverable,
    #[error("signed by {actual}, expected {expected}")]
    WrongSigner { expected: Address, actual: Address },
    #[error("signature does not verify against the known key of {0}")]
    Invalid(Address),
    #[error(
        "signature v = {v} does not recover to {signer}: the ledger would attribute it to another address"
    )]
    RecoveryIdMismatch { signer: Address, v: u8 },
    #[error("public key is not a point on secp256k1 in SEC1 encoding")]
    BadPublicKey,
    #[error("secret key must be 32 bytes in 1..n-1 of secp256k1")]
    BadSecretKey,
    #[error("signing failed")]
    SigningFailed,
}

/// keccak256 of `data`.
pub fn keccak256(data: &[u8]) -> H256 {
    H256(Keccak256::digest(data).into())
}

/// keccak256 over several pieces, without concatenating them first.
pub fn keccak256_concat(parts: &[&[u8]]) -> H256 {
    let mut hasher = Keccak256::new();
    for p in parts {
        hasher.update(p);
    }
    H256(hasher.finalize().into())
}

/// sha256 of `data` (used for secret hashes, as the Raiden secret registry does).
pub fn sha256(data: &[u8]) -> H256 {
    H256(Sha256::digest(data).into())
}

/// EIP-191 "personal sign" hash: `keccak256("\x19Ethereum Signed Message:\n" || len || data)`.
pub fn eip191_hash(packed: &[u8]) -> H256 {
    let len = packed.len().to_string();
    keccak256_concat(&[b"\x19Ethereum Signed Message:\n", len.as_bytes(), packed])
}

/// A 65-byte recoverable signature, `r (32) || s (32) || v (1)` with `v = 27 + recovery id`.
///
/// Constructing one through [`Signature::from_slice`] enforces the contract's rules: exact
/// length, `v` in {27, 28}, low `s`, and `r`, `s` in range.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 65]);

impl Signature {
    /// The all-zero placeholder used when closing without any proof from the partner.
    pub const EMPTY: Signature = Signature([0u8; 65]);

    pub fn from_slice(bytes: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; 65] = bytes
            .try_into()
            .map_err(|_| CryptoError::SignatureLength(bytes.len()))?;
        let sig = Signature(arr);
        sig.parts()?;
        Ok(sig)
    }

    /// The raw bytes, exactly as packed into counter-signed messages.
    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == [0u8; 65]
    }

    fn parts(&self) -> Result<(EcdsaSignature, RecoveryId), CryptoError> {
        let v = self.0[64];
        let recid = match v {
            27 | 28 => RecoveryId::from_byte(v - 27).ok_or(CryptoError::BadRecoveryByte(v))?,
            other => return Err(CryptoError::BadRecoveryByte(other)),
        };
        let sig =
            EcdsaSignature::from_slice(&self.0[..64]).map_err(|_| CryptoError::NonCanonical)?;
        if sig.normalize_s().is_some() {
            return Err(CryptoError::HighS);
        }
        Ok((sig, recid))
    }

    /// Recovers the signer's public key from a 32-byte prehash, as `ecrecover` does: the
    /// point `R` with x-coordinate `r` and the y-parity of `v`, then `Q = r⁻¹·(s·R − z·G)`,
    /// all inside libsecp256k1. Any 32 bytes are a valid prehash (a hash at or above the curve
    /// order is reduced, as the EVM does).
    pub fn recover_key(&self, hash: &H256) -> Result<PublicKey, CryptoError> {
        let (_, recid) = self.parts()?;
        let recid = secp256k1::ecdsa::RecoveryId::from_u8_masked(recid.to_byte());
        let recoverable =
            secp256k1::ecdsa::RecoverableSignature::from_compact(&self.0[..64], recid)
                .map_err(|_| CryptoError::NonCanonical)?;
        recoverable
            .recover(secp256k1::Message::from_digest(hash.0))
            .map(PublicKey)
            .map_err(|_| CryptoError::Unrecoverable)
    }

    /// Recovers the signer's address from a 32-byte prehash.
    pub fn recover(&self, hash: &H256) -> Result<Address, CryptoError> {
        self.recover_key(hash).map(|k| k.address())
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl PartialEq for PeerKey {
    /// Two peer keys are equal when they stand for the same address; whether the verifying
    /// key has been learned yet is a cache detail.
    fn eq(&self, other: &Self) -> bool {
        self.address == other.address
    }
}

impl Eq for PeerKey {}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl serde::Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = crate::primitives::decode_hex(&s).map_err(serde::de::Error::custom)?;
        if bytes == [0u8; 65] {
            return Ok(Signature::EMPTY);
        }
        Signature::from_slice(&bytes).map_err(serde::de::Error::custom)
    }
}

/// A secp256k1 public key, as recovered from a signature (libsecp256k1's representation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublicKey(secp256k1::PublicKey);

impl PublicKey {
    /// Parses a SEC1 public key (33-byte compressed or 65-byte uncompressed).
    pub fn from_sec1_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        secp256k1::PublicKey::from_slice(bytes)
            .map(Self)
            .map_err(|_| CryptoError::BadPublicKey)
    }

    /// The 65-byte uncompressed SEC1 encoding, `0x04 || x || y`.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.0.serialize_uncompressed()
    }

    /// The Ethereum address: the last 20 bytes of keccak256 of `x || y`.
    pub fn address(&self) -> Address {
        address_of_point(&self.to_uncompressed())
    }

    /// Plain ECDSA verification of `r || s` over `hash` (libsecp256k1; low-s only). It pins
    /// nothing about `v`: [`PeerKey::verify`] is the check that matches the ledger.
    fn verifies(&self, hash: &H256, sig: &Signature) -> bool {
        secp256k1::ecdsa::Signature::from_compact(&sig.0[..64])
            .and_then(|s| s.verify(secp256k1::Message::from_digest(hash.0), &self.0))
            .is_ok()
    }
}

/// The Ethereum address of a public key: last 20 bytes of keccak256 of the 64-byte point.
pub fn address_of(key: &VerifyingKey) -> Address {
    address_of_point(key.to_encoded_point(false).as_bytes())
}

/// The address of an uncompressed SEC1 point (`0x04 || x || y`).
fn address_of_point(uncompressed: &[u8]) -> Address {
    let hash = keccak256(uncompressed.get(1..).unwrap_or_default());
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash.0[12..]);
    Address(out)
}

/// Something that can sign 32-byte digests as one address. Drivers implement this over
/// whatever holds the key; the core never sees key bytes.
pub trait Signer {
    fn address(&self) -> Address;
    fn sign_hash(&self, hash: &H256) -> Result<Signature, CryptoError>;
}

/// A secp256k1 key held in memory.
#[derive(Clone)]
pub struct LocalSigner {
    key: SigningKey,
    address: Address,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSigner")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl LocalSigner {
    /// Builds a key from 32 secret bytes (supplied by the caller's randomness source).
    pub fn from_bytes(secret: &[u8]) -> Result<Self, CryptoError> {
        if secret.len() != 32 {
            return Err(CryptoError::BadSecretKey);
        }
        let key = SigningKey::from_slice(secret).map_err(|_| CryptoError::BadSecretKey)?;
        let address = address_of(key.verifying_key());
        Ok(Self { key, address })
    }

    /// The secret key bytes, for drivers that persist the key.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    pub fn verifying_key(&self) -> &VerifyingKey {
        self.key.verifying_key()
    }
}

impl Signer for LocalSigner {
    fn address(&self) -> Address {
        self.address
    }

    fn sign_hash(&self, hash: &H256) -> Result<Signature, CryptoError> {
        let (sig, recid) = self
            .key
            .sign_prehash_recoverable(hash.as_bytes())
            .map_err(|_| CryptoError::SigningFailed)?;
        // k256 already emits low-s; normalise defensively and flip the parity with it.
        let (sig, recid) = match sig.normalize_s() {
            Some(low) => (
                low,
                RecoveryId::new(!recid.is_y_odd(), recid.is_x_reduced()),
            ),
            None => (sig, recid),
        };
        let mut out = [0u8; 65];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + recid.to_byte();
        Ok(Signature(out))
    }
}

/// A partner's public key, learned from its first signature and reused for every later one.
#[derive(Clone, Debug)]
pub struct PeerKey {
    address: Address,
    key: Option<PublicKey>,
}

impl PeerKey {
    /// A peer whose address is known but whose key has not been seen yet.
    pub fn new(address: Address) -> Self {
        Self { address, key: None }
    }

    pub fn address(&self) -> Address {
        self.address
    }

    pub fn is_learned(&self) -> bool {
        self.key.is_some()
    }

    /// Checks that `sig` over `hash` was made by this peer, exactly as the ledger's `ecrecover`
    /// will attribute it: the key is recovered with the signature's own `v` and must be this
    /// peer's (its address on the first call, the learned key after). A valid `r`, `s` whose
    /// `v` was flipped recovers some other key on chain and is refused, and the error says
    /// which of the two went wrong.
    pub fn verify(&mut self, hash: &H256, sig: &Signature) -> Result<(), CryptoError> {
        let recovered = sig.recover_key(hash);
        match (&self.key, recovered) {
            (Some(key), Ok(recovered)) if recovered == *key => Ok(()),
            (Some(key), _) => Err(self.why_not(key, hash, sig)),
            (None, Ok(recovered)) => {
                let actual = recovered.address();
                if actual != self.address {
                    return Err(CryptoError::WrongSigner {
                        expected: self.address,
                        actual,
                    });
                }
                self.key = Some(recovered);
                Ok(())
            }
            (None, Err(e)) => Err(e),
        }
    }

    /// Verifies without learning (for callers holding `&self`).
    pub fn check(&self, hash: &H256, sig: &Signature) -> Result<(), CryptoError> {
        let mut copy = self.clone();
        copy.verify(hash, sig)
    }

    /// Names the refusal of a signature that did not recover to the learned key: a parse
    /// error as such, a valid `r`, `s` with the wrong `v` as a recovery-id mismatch, anything
    /// else as invalid. Only refusals pay for this second look.
    fn why_not(&self, key: &PublicKey, hash: &H256, sig: &Signature) -> CryptoError {
        if let Err(e) = sig.parts() {
            return e;
        }
        if key.verifies(hash, sig) {
            CryptoError::RecoveryIdMismatch {
                signer: self.address,
                v: sig.0[64],
            }
        } else {
            CryptoError::Invalid(self.address)
        }
    }
}

/// Checks that `sig` over `hash` recovers to `expected`.
pub fn verify_signer(hash: &H256, sig: &Signature, expected: Address) -> Result<(), CryptoError> {
    let actual = sig.recover(hash)?;
    if actual == expected {
        Ok(())
    } else {
        Err(CryptoError::WrongSigner { expected, actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> LocalSigner {
        crate::testing::test_signer(n)
    }

    #[test]
    fn sign_recover_and_verify_with_learned_key() {
        let signer = key(7);
        let hash = eip191_hash(b"hello");
        let sig = signer.sign_hash(&hash).unwrap();
        assert_eq!(sig.recover(&hash).unwrap(), signer.address());
        let mut peer = PeerKey::new(signer.address());
        peer.verify(&hash, &sig).unwrap();
        assert!(peer.is_learned());
        peer.verify(&hash, &sig).unwrap();
        let other = eip191_hash(b"other");
        assert_eq!(
            peer.verify(&other, &sig),
            Err(CryptoError::Invalid(signer.address()))
        );
    }

    /// The attack of issue 6: a valid (r, s) with the v byte flipped verifies against the key
    /// as a plain ECDSA check, but recovers to another address on the ledger.
    #[test]
    fn learned_key_refuses_flipped_recovery_byte() {
        let signer = key(5);
        let mut peer = PeerKey::new(signer.address());
        let first = eip191_hash(b"nonce 1");
        peer.verify(&first, &signer.sign_hash(&first).unwrap())
            .unwrap();
        assert!(peer.is_learned());
        for n in 0u8..16 {
            let hash = eip191_hash(&[n; 7]);
            let sig = signer.sign_hash(&hash).unwrap();
            let mut flipped = *sig.as_bytes();
            flipped[64] = if flipped[64] == 27 { 28 } else { 27 };
            let flipped = Signature::from_slice(&flipped).unwrap();
            assert_ne!(flipped.recover(&hash).ok(), Some(signer.address()));
            assert_eq!(
                peer.verify(&hash, &flipped),
                Err(CryptoError::RecoveryIdMismatch {
                    signer: signer.address(),
                    v: flipped.as_bytes()[64]
                })
            );
            assert_eq!(
                peer.check(&hash, &flipped),
                peer.clone().verify(&hash, &flipped)
            );
            peer.verify(&hash, &sig).unwrap();
        }
    }

    proptest::proptest! {
        /// Whatever bytes a peer sends, a signature the learned key accepts is one that
        /// recovers (as `ecrecover` does, with its own v) to the peer's address.
        #[test]
        fn accepted_signature_recovers_to_the_signer(
            msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            signer_n in 1u8..8,
            forger_n in 1u8..8,
            flip_v in proptest::prelude::any::<bool>(),
            tweak in proptest::option::of((0usize..64, 1u8..=255)),
        ) {
            let signer = key(signer_n);
            let mut peer = PeerKey::new(signer.address());
            let warmup = eip191_hash(b"learn");
            peer.verify(&warmup, &signer.sign_hash(&warmup).unwrap()).unwrap();
            let hash = eip191_hash(&msg);
            let mut bytes = *key(forger_n).sign_hash(&hash).unwrap().as_bytes();
            if flip_v {
                bytes[64] = if bytes[64] == 27 { 28 } else { 27 };
            }
            if let Some((at, xor)) = tweak {
                bytes[at] ^= xor;
            }
            if let Ok(sig) = Signature::from_slice(&bytes) {
                if peer.verify(&hash, &sig).is_ok() {
                    proptest::prop_assert_eq!(sig.recover(&hash), Ok(signer.address()));
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// libsecp256k1's recovery and our learned-key check agree with k256's own
        /// `recover_from_prehash` (an independent implementation) on every signature, genuine,
        /// with its v flipped, or with any byte tweaked.
        #[test]
        fn recovery_and_verification_agree_with_k256(
            msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            signer_n in 1u8..8,
            flip_v in proptest::prelude::any::<bool>(),
            tweak in proptest::option::of((0usize..64, 1u8..=255)),
        ) {
            let signer = key(signer_n);
            let hash = eip191_hash(&msg);
            let mut bytes = *signer.sign_hash(&hash).unwrap().as_bytes();
            if flip_v {
                bytes[64] = if bytes[64] == 27 { 28 } else { 27 };
            }
            if let Some((at, xor)) = tweak {
                bytes[at] ^= xor;
            }
            if let Ok(sig) = Signature::from_slice(&bytes) {
                let (ecdsa, recid) = sig.parts().unwrap();
                let theirs = VerifyingKey::recover_from_prehash(hash.as_bytes(), &ecdsa, recid).ok();
                let ours = sig.recover_key(&hash).ok().map(|k| k.to_uncompressed().to_vec());
                let theirs_bytes = theirs.map(|k| k.to_encoded_point(false).as_bytes().to_vec());
                proptest::prop_assert_eq!(ours, theirs_bytes);
                let mut peer = PeerKey::new(signer.address());
                let warmup = eip191_hash(b"learn");
                peer.verify(&warmup, &signer.sign_hash(&warmup).unwrap()).unwrap();
                let k256_accepts = theirs.map(|k| address_of(&k)) == Some(signer.address());
                proptest::prop_assert_eq!(peer.verify(&hash, &sig).is_ok(), k256_accepts);
            }
        }
    }

    #[test]
    fn rejects_wrong_signer_before_learning() {
        let hash = eip191_hash(b"x");
        let sig = key(1).sign_hash(&hash).unwrap();
        let mut peer = PeerKey::new(key(2).address());
        assert!(matches!(
            peer.verify(&hash, &sig),
            Err(CryptoError::WrongSigner { .. })
        ));
        assert!(!peer.is_learned());
    }

    #[test]
    fn rejects_malformed_signatures() {
        let hash = eip191_hash(b"x");
        let sig = key(3).sign_hash(&hash).unwrap();
        let bytes = *sig.as_bytes();
        assert_eq!(
            Signature::from_slice(&bytes[..64]),
            Err(CryptoError::SignatureLength(64))
        );
        let mut bad_v = bytes;
        bad_v[64] = 29;
        assert_eq!(
            Signature::from_slice(&bad_v),
            Err(CryptoError::BadRecoveryByte(29))
        );
        let mut zero_r = bytes;
        zero_r[..32].fill(0);
        assert_eq!(
            Signature::from_slice(&zero_r),
            Err(CryptoError::NonCanonical)
        );
        // s' = n - s is the malleable twin: same signature, high s.
        let low = EcdsaSignature::from_slice(&bytes[..64]).unwrap();
        let (r, s) = low.split_scalars();
        let high = EcdsaSignature::from_scalars(r, -*s).unwrap();
        let mut high_s = bytes;
        high_s[..64].copy_from_slice(&high.to_bytes());
        high_s[64] = if bytes[64] == 27 { 28 } else { 27 };
        assert_eq!(Signature::from_slice(&high_s), Err(CryptoError::HighS));
    }

    #[test]
    fn rejects_bad_secret_keys() {
        assert!(LocalSigner::from_bytes(&[0u8; 32]).is_err());
        assert!(LocalSigner::from_bytes(&[0xffu8; 32]).is_err());
        assert!(LocalSigner::from_bytes(&[1u8; 31]).is_err());
    }
}
