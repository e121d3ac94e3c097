//! `u1·G + u2·P` on secp256k1 in variable time, for checking signatures.
//!
//! Verifying a signature and recovering its key both come down to one such double
//! multiplication. k256's `lincomb` computes it in constant time, which a signer needs
//! (its scalars are secret) and a verifier does not: everything it multiplies is public. Here:
//!
//! - each scalar is split with the curve's endomorphism (`λ·(x, y) = (β·x, y)`) into two
//!   halves of about 128 bits, `u = k1 + k2·λ` (the GLV method), so the shared chain of
//!   doublings is half as long;
//! - each half is written in width-w non-adjacent form (wNAF), so only about one bit in w+1
//!   costs an addition, and the table lookup is a plain index, not a constant-time scan;
//! - the multiples of G come from a table built once per process, in affine form so that
//!   adding them is a cheaper mixed addition.
//!
//! Correctness does not depend on the split being short: any `k1`, `k2` with
//! `k1 + k2·λ = u (mod n)` give the same point, and the wNAF handles halves of any length;
//! only the speed does. The point arithmetic is k256's, whose addition formulas are complete
//! (they hold for doubling, inverses and the identity too).

use std::ops::{AddAssign, Neg};
use std::sync::OnceLock;

use k256::elliptic_curve::bigint::{NonZero, U512};
use k256::elliptic_curve::group::prime::PrimeCurveAffine;
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::scalar::IsHigh;
use k256::elliptic_curve::BatchNormalize;
use k256::elliptic_curve::Curve;
use k256::{AffinePoint, ProjectivePoint, Scalar, Secp256k1, U256};

/// wNAF width for the per-call point: 8 odd multiples (the table costs 8 group operations).
const POINT_WINDOW: u32 = 5;
/// wNAF width for G: 64 odd multiples per table, built once.
const GENERATOR_WINDOW: u32 = 8;
const GENERATOR_TABLE: usize = 1 << (GENERATOR_WINDOW - 2);
const POINT_TABLE: usize = 1 << (POINT_WINDOW - 2);

/// λ, the cube root of unity mod n whose multiplication is the endomorphism.
const LAMBDA_HEX: &str = "5363ad4cc05c30e0a5261c028812645a122e22ea20816678df02967c1b23bd72";
/// The short lattice basis of the endomorphism: `(a1, b1)` and `(a2, b2)` with `b1 < 0`;
/// `MINUS_B1` is `-b1`, and `b2 = a1`.
const MINUS_B1_HEX: &str = "00000000000000000000000000000000e4437ed6010e88286f547fa90abfe4c3";
const B2_HEX: &str = "000000000000000000000000000000003086d221a7d46bcde86c90e49284eb15";

/// Values derived once: the constants as scalars, the rounding multipliers, G's tables.
struct Precomputed {
    lambda: Scalar,
    minus_b1: Scalar,
    minus_b2: Scalar,
    /// `round(2^384 · b2 / n)` and `round(2^384 · (-b1) / n)`: `c = (k · g) >> 384` then
    /// approximates `round(k · b / n)` without a division per call.
    g1: U256,
    g2: U256,
    /// `[1, 3, 5, ...]·G` and the same multiples of `λ·G`.
    generator: [AffinePoint; GENERATOR_TABLE],
    generator_lambda: [AffinePoint; GENERATOR_TABLE],
}

fn precomputed() -> &'static Precomputed {
    static TABLES: OnceLock<Precomputed> = OnceLock::new();
    TABLES.get_or_init(|| {
        let scalar = |hex: &str| <Scalar as Reduce<U256>>::reduce(U256::from_be_hex(hex));
        let b2 = U256::from_be_hex(B2_HEX);
        let minus_b1 = U256::from_be_hex(MINUS_B1_HEX);
        let generator = odd_multiples::<GENERATOR_TABLE>(&ProjectivePoint::GENERATOR);
        let generator_lambda = generator.map(|p| p.endomorphism());
        Precomputed {
            lambda: scalar(LAMBDA_HEX),
            minus_b1: scalar(MINUS_B1_HEX),
            minus_b2: -scalar(B2_HEX),
            g1: rounded_quotient(&b2),
            g2: rounded_quotient(&minus_b1),
            generator: ProjectivePoint::batch_normalize(&generator),
            generator_lambda: ProjectivePoint::batch_normalize(&generator_lambda),
        }
    })
}

/// `round(2^384 · b / n)` for a `b` below 2^128 (so the result fits in 256 bits).
fn rounded_quotient(b: &U256) -> U256 {
    let n = U512::from((Secp256k1::ORDER, U256::ZERO));
    let numerator = U512::from((U256::ZERO, *b)).shl_vartime(128);
    let half_n = n.shr_vartime(1);
    let (quotient, _) = numerator
        .wrapping_add(&half_n)
        .div_rem(&NonZero::<U512>::from_uint(n));
    // Below 2^256, as b < 2^128: the low half is all of it.
    let (_high, low) = quotient.split();
    low
}

/// `[1, 3, 5, ..., 2N - 1]·p`.
fn odd_multiples<const N: usize>(p: &ProjectivePoint) -> [ProjectivePoint; N] {
    let twice = p.double();
    let mut out = [*p; N];
    for i in 1..N {
        out[i] = out[i - 1] + twice;
    }
    out
}

/// `round(k · g / 2^384)` as a scalar.
fn mul_shift_384(k: &U256, g: &U256) -> Scalar {
    let (_low, high) = k.mul_wide(g);
    // The product is `high · 2^256 + low`; bits 384 and up are `high >> 128`, and bit 383
    // (the top bit of `high`'s lower half) rounds.
    let round_up = high.bit_vartime(127);
    let shifted = high.shr_vartime(128);
    let rounded = if round_up {
        shifted.wrapping_add(&U256::ONE)
    } else {
        shifted
    };
    <Scalar as Reduce<U256>>::reduce(rounded)
}

/// `k = k1 + k2·λ (mod n)` with `k1`, `k2` of about 128 bits each (in absolute value).
fn split(k: &Scalar, pre: &Precomputed) -> (Scalar, Scalar) {
    let k_int = U256::from_be_slice(&k.to_bytes());
    let c1 = mul_shift_384(&k_int, &pre.g1);
    let c2 = mul_shift_384(&k_int, &pre.g2);
    let k2 = c1 * pre.minus_b1 + c2 * pre.minus_b2;
    let k1 = *k - k2 * pre.lambda;
    (k1, k2)
}

/// A scalar's wNAF digits, lowest first: `k = Σ digit[i] · 2^i`, every nonzero digit odd and
/// below `2^(w-1)` in absolute value, followed by at least `w - 1` zeros.
struct Wnaf {
    digits: [i8; 258],
    len: usize,
}

impl Wnaf {
    /// Digits of `k`, negated when `negate` (so the digits of `-k` from those of `k`).
    fn new(k: &Scalar, w: u32, negate: bool) -> Self {
        let bytes = k.to_bytes();
        // Five little-endian limbs: subtracting a negative digit may carry past 256 bits.
        let mut limbs = [0u64; 5];
        for (i, limb) in limbs.iter_mut().take(4).enumerate() {
            let start = 32 - 8 * (i + 1);
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[start..start + 8]);
            *limb = u64::from_be_bytes(word);
        }
        let mut digits = [0i8; 258];
        let mut len = 0;
        let mut pos = 0usize;
        let window = 1i64 << w;
        while limbs.iter().any(|&l| l != 0) {
            let zeros = trailing_zeros(&limbs);
            shift_right(&mut limbs, zeros);
            pos += zeros as usize;
            // `limbs` is odd: its residue mod 2^w, taken in (-2^(w-1), 2^(w-1)).
            let residue = (limbs[0] & (window as u64 - 1)) as i64;
            let digit = if residue >= window / 2 {
                residue - window
            } else {
                residue
            };
            let step = if digit > 0 {
                u64::overflowing_sub
            } else {
                u64::overflowing_add
            };
            ripple(&mut limbs, digit.unsigned_abs(), step);
            // |digit| < 2^(w-1) <= 128 for w <= 8.
            let signed = if negate { -digit } else { digit };
            // A scalar below 2^256 has its last digit at position 256 at most.
            if let Some(slot) = digits.get_mut(pos) {
                *slot = signed as i8;
                len = pos + 1;
            }
            shift_right(&mut limbs, w);
            pos += w as usize;
        }
        Self { digits, len }
    }
}

fn trailing_zeros(limbs: &[u64; 5]) -> u32 {
    let mut zeros = 0;
    for &l in limbs {
        if l != 0 {
            return zeros + l.trailing_zeros();
        }
        zeros += 64;
    }
    zeros
}

fn shift_right(limbs: &mut [u64; 5], by: u32) {
    let whole = (by / 64) as usize;
    let bits = by % 64;
    for i in 0..5 {
        let lo = limbs.get(i + whole).copied().unwrap_or(0);
        let hi = limbs.get(i + whole + 1).copied().unwrap_or(0);
        limbs[i] = if bits == 0 {
            lo
        } else {
            (lo >> bits) | (hi << (64 - bits))
        };
    }
}

/// Adds or subtracts (`step` is `u64::overflowing_add` or `u64::overflowing_sub`) a small
/// value, rippling the carry or borrow up the limbs.
fn ripple(limbs: &mut [u64; 5], v: u64, step: fn(u64, u64) -> (u64, bool)) {
    let mut carry = v;
    for l in limbs.iter_mut() {
        let (r, overflowed) = step(*l, carry);
        *l = r;
        if !overflowed {
            return;
        }
        carry = 1;
    }
}

/// Splits `k`, returning the two halves' wNAFs with the sign folded into the digits (a half
/// above n/2 is used as its negation).
fn split_wnaf(k: &Scalar, w: u32, pre: &Precomputed) -> (Wnaf, Wnaf) {
    let (k1, k2) = split(k, pre);
    let half = |s: Scalar| {
        let high = bool::from(s.is_high());
        let magnitude = if high { -s } else { s };
        Wnaf::new(&magnitude, w, high)
    };
    (half(k1), half(k2))
}

/// `acc += digit · P`, with `table` holding `[1, 3, 5, ...]·P` (projective or affine) and
/// `digit` odd (negative digits add the negation).
fn add_digit<T>(acc: &mut ProjectivePoint, table: &[T], digit: i8)
where
    T: Copy + Neg<Output = T>,
    ProjectivePoint: AddAssign<T>,
{
    let index = usize::from(digit.unsigned_abs() / 2);
    if let Some(&p) = table.get(index) {
        if digit > 0 {
            *acc += p;
        } else {
            *acc += -p;
        }
    }
}

/// `u1·G + u2·p`, in time that depends on the inputs (use only on public values).
pub(crate) fn generator_and_point(
    u1: &Scalar,
    p: &ProjectivePoint,
    u2: &Scalar,
) -> ProjectivePoint {
    let pre = precomputed();
    let (g1, g2) = split_wnaf(u1, GENERATOR_WINDOW, pre);
    let (p1, p2) = split_wnaf(u2, POINT_WINDOW, pre);
    let p_table = odd_multiples::<POINT_TABLE>(p);
    let p_lambda = p_table.map(|q| q.endomorphism());
    let top = [g1.len, g2.len, p1.len, p2.len]
        .into_iter()
        .max()
        .unwrap_or(0);
    let mut acc = ProjectivePoint::IDENTITY;
    for i in (0..top).rev() {
        acc = acc.double();
        let digit = |w: &Wnaf| w.digits.get(i).copied().unwrap_or(0);
        let d = digit(&g1);
        if d != 0 {
            add_digit(&mut acc, &pre.generator, d);
        }
        let d = digit(&g2);
        if d != 0 {
            add_digit(&mut acc, &pre.generator_lambda, d);
        }
        let d = digit(&p1);
        if d != 0 {
            add_digit(&mut acc, &p_table, d);
        }
        let d = digit(&p2);
        if d != 0 {
            add_digit(&mut acc, &p_lambda, d);
        }
    }
    acc
}

/// Whether `p` is the point at infinity.
pub(crate) fn is_identity(p: &AffinePoint) -> bool {
    bool::from(p.is_identity())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::elliptic_curve::ops::LinearCombination;
    use k256::elliptic_curve::Field;
    use proptest::prelude::*;

    fn scalar_from(bytes: [u8; 32]) -> Scalar {
        <Scalar as Reduce<U256>>::reduce(U256::from_be_slice(&bytes))
    }

    fn reference(u1: &Scalar, p: &ProjectivePoint, u2: &Scalar) -> ProjectivePoint {
        ProjectivePoint::lincomb(&ProjectivePoint::GENERATOR, u1, p, u2)
    }

    #[test]
    fn lambda_is_the_endomorphism() {
        let pre = precomputed();
        let p = ProjectivePoint::GENERATOR * Scalar::from(12345u64);
        assert_eq!(p * pre.lambda, p.endomorphism());
        assert_eq!(pre.lambda * pre.lambda * pre.lambda, Scalar::ONE);
    }

    #[test]
    fn edge_scalars_agree_with_k256() {
        let p = ProjectivePoint::GENERATOR * Scalar::from(7u64);
        let minus_one = -Scalar::ONE;
        let half = <Scalar as Reduce<U256>>::reduce(Secp256k1::ORDER.shr_vartime(1));
        let edges = [
            Scalar::ZERO,
            Scalar::ONE,
            minus_one,
            half,
            half + Scalar::ONE,
            precomputed().lambda,
            -precomputed().lambda,
            Scalar::from(u64::MAX),
        ];
        for u1 in edges {
            for u2 in edges {
                for q in [p, ProjectivePoint::GENERATOR, -ProjectivePoint::GENERATOR] {
                    assert_eq!(
                        generator_and_point(&u1, &q, &u2),
                        reference(&u1, &q, &u2),
                        "u1 = {u1:?}, u2 = {u2:?}"
                    );
                }
            }
        }
        // The point at infinity as the point, and a sum that is the identity.
        let u = Scalar::from(99u64);
        assert_eq!(
            generator_and_point(&u, &ProjectivePoint::IDENTITY, &Scalar::ONE),
            ProjectivePoint::GENERATOR * u
        );
        assert_eq!(
            generator_and_point(&u, &-ProjectivePoint::GENERATOR, &u),
            ProjectivePoint::IDENTITY
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The split is exact, and each half is short (else the speed, not the result, suffers).
        #[test]
        fn the_split_halves_are_short(bytes in any::<[u8; 32]>()) {
            let pre = precomputed();
            let k = scalar_from(bytes);
            let (k1, k2) = split(&k, pre);
            prop_assert_eq!(k1 + k2 * pre.lambda, k);
            for half in [k1, k2] {
                let magnitude = if bool::from(half.is_high()) { -half } else { half };
                let bits = U256::from_be_slice(&magnitude.to_bytes()).bits_vartime();
                prop_assert!(bits <= 129, "a half of {} bits", bits);
            }
        }
    }

    #[test]
    fn wnaf_digits_sum_to_the_scalar() {
        for k in [
            Scalar::ONE,
            -Scalar::ONE,
            Scalar::from(0xffff_ffffu64),
            scalar_from([0xa5; 32]),
        ] {
            for w in [POINT_WINDOW, GENERATOR_WINDOW] {
                let wnaf = Wnaf::new(&k, w, false);
                let mut sum = Scalar::ZERO;
                let mut power = Scalar::ONE;
                for &d in &wnaf.digits[..wnaf.len] {
                    let magnitude = Scalar::from(u64::from(d.unsigned_abs()));
                    sum += if d < 0 { -magnitude } else { magnitude } * power;
                    power = power.double();
                }
                assert_eq!(sum, k);
                assert!(wnaf.digits.iter().all(|d| *d % 2 != 0 || *d == 0));
                assert!(wnaf
                    .digits
                    .iter()
                    .all(|d| i32::from(d.unsigned_abs()) < 1 << (w - 1)));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// The variable-time sum equals k256's constant-time one for any scalars and point.
        #[test]
        fn agrees_with_k256(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), c in any::<[u8; 32]>()) {
            let u1 = scalar_from(a);
            let u2 = scalar_from(b);
            let p = ProjectivePoint::GENERATOR * scalar_from(c);
            prop_assert_eq!(generator_and_point(&u1, &p, &u2), reference(&u1, &p, &u2));
        }
    }
}
