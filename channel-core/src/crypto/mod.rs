//! Keys, hashes and signatures: keccak256, sha256, EIP-191 personal-sign hashing, and 65-byte
//! `r || s || v` secp256k1 signatures as Ethereum contracts check them.
//!
//! Signing goes through the [`Signer`] trait so that drivers can keep keys wherever they like
//! (file, HSM); [`LocalSigner`] holds the key in memory. Verifying a partner's messages uses
//! [`PeerKey`]: the public key is recovered once and then every later message costs a plain
//! verify.
//!
//! Verifying and recovering both compute one `u1·G + u2·P` (module `lincomb`), in variable time:
//! every input is public. `cargo bench -p channel-core --bench crypto` puts them next to
//! k256's own constant-time `verify_prehash` and `recover_from_prehash` (on the 2-core
//! machine, 70 µs against 117 µs, and 76 µs against 250 µs).

mod lincomb;

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, SigningKey, VerifyingKey};
use k256::elliptic_curve::ops::{Invert, Reduce};
use k256::elliptic_curve::point::{AffineCoordinates, DecompressPoint};
use k256::{AffinePoint, FieldBytes, ProjectivePoint, Scalar};
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

    /// Recovers the signer's public key from a 32-byte prehash, as `ecrecover` does.
    ///
    /// `R` is the curve point with x-coordinate `r` and the y-parity of `v`; the key is
    /// `Q = r⁻¹·(s·R − z·G)`. (k256's `recover_from_prehash` computes the same `Q` and then
    /// verifies the signature against it, which holds by construction and doubles the cost.)
    pub fn recover_key(&self, hash: &H256) -> Result<VerifyingKey, CryptoError> {
        let (sig, recid) = self.parts()?;
        let (r, s) = sig.split_scalars();
        let r_point = AffinePoint::decompress(&r.to_bytes(), u8::from(recid.is_y_odd()).into());
        let r_point = Option::<AffinePoint>::from(r_point).ok_or(CryptoError::Unrecoverable)?;
        let z = <Scalar as Reduce<k256::U256>>::reduce_bytes(&FieldBytes::from(hash.0));
        let r_inv = *r.invert_vartime();
        let u1 = -(z * r_inv);
        let u2 = *s * r_inv;
        let key = lincomb::generator_and_point(&u1, &ProjectivePoint::from(r_point), &u2);
        let key = key.to_affine();
        if lincomb::is_identity(&key) {
            return Err(CryptoError::Unrecoverable);
        }
        VerifyingKey::from_affine(key).map_err(|_| CryptoError::Unrecoverable)
    }

    /// Recovers the signer's address from a 32-byte prehash.
    pub fn recover(&self, hash: &H256) -> Result<Address, CryptoError> {
        self.recover_key(hash).map(|k| address_of(&k))
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

/// The Ethereum address of a public key: last 20 bytes of keccak256 of the 64-byte point.
pub fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_encoded_point(false);
    let hash = keccak256(&point.as_bytes()[1..]);
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

/// A partner's verifying key, learned once and reused for every later message.
#[derive(Clone, Debug)]
pub struct PeerKey {
    address: Address,
    key: Option<VerifyingKey>,
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
    /// will attribute it: the first call recovers the key (and checks it belongs to the
    /// address); later calls verify against the learned key *and* check that the `v` byte
    /// names the right curve point, so a signature whose `v` was flipped (valid `r`, `s`, but
    /// recovering to some other address on chain) is refused.
    pub fn verify(&mut self, hash: &H256, sig: &Signature) -> Result<(), CryptoError> {
        match &self.key {
            Some(key) => verify_with_recovery_id(key, self.address, hash, sig),
            None => {
                let key = sig.recover_key(hash)?;
                let actual = address_of(&key);
                if actual != self.address {
                    return Err(CryptoError::WrongSigner {
                        expected: self.address,
                        actual,
                    });
                }
                self.key = Some(key);
                Ok(())
            }
        }
    }

    /// Verifies without learning (for callers holding `&self`). Uses the known key when there
    /// is one, recovery otherwise.
    pub fn check(&self, hash: &H256, sig: &Signature) -> Result<(), CryptoError> {
        let mut copy = self.clone();
        copy.verify(hash, sig)
    }
}

/// ECDSA verification that also pins the recovery id, at the cost of one plain verify.
///
/// Verification computes the point `R = (z/s)·G + (r/s)·Q`; the signature is valid when
/// `R.x = r`. Ethereum's `ecrecover` with `v ∈ {27, 28}` rebuilds `R` from `x = r` and the
/// y-parity `v - 27`, so it yields `Q` exactly when `R.x` equals `r` as an integer (not merely
/// modulo the curve order) and `R.y`'s parity matches `v`. Checking both here means every
/// signature accepted is one the ledger attributes to `signer`.
fn verify_with_recovery_id(
    key: &VerifyingKey,
    signer: Address,
    hash: &H256,
    sig: &Signature,
) -> Result<(), CryptoError> {
    let (ecdsa, recid) = sig.parts()?;
    let z = <Scalar as Reduce<k256::U256>>::reduce_bytes(&FieldBytes::from(hash.0));
    let (r, s) = ecdsa.split_scalars();
    let s_inv = *s.invert_vartime();
    let u1 = z * s_inv;
    let u2 = *r * s_inv;
    let point = lincomb::generator_and_point(&u1, &ProjectivePoint::from(*key.as_affine()), &u2)
        .to_affine();
    let x: [u8; 32] = point.x().into();
    if x[..] != sig.0[..32] {
        return Err(CryptoError::Invalid(signer));
    }
    if bool::from(point.y_is_odd()) != recid.is_y_odd() {
        return Err(CryptoError::RecoveryIdMismatch {
            signer,
            v: sig.0[64],
        });
    }
    Ok(())
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
        /// Our variable-time recovery and learned-key check agree with k256's own
        /// `recover_from_prehash` (which also verifies the recovered key) on every signature,
        /// genuine, with its v flipped, or with any byte tweaked.
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
                let ours = sig.recover_key(&hash).ok();
                proptest::prop_assert_eq!(ours, theirs);
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
