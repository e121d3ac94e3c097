//! The ABI byte layout: a list of values is encoded as a tuple, a head of 32-byte words (a
//! static value in place, a dynamic one as the offset of its tail, counted from the start of
//! the tuple) followed by the tails. Decoding is strict: every offset and length is checked
//! against the data, addresses and bools must have clean padding, and a `uintN` must fit.

use channel_core::U256;

use super::{AbiError, Kind, Value};

/// Encodes `values` as a tuple of `kinds` (function arguments, constructor arguments).
pub fn encode(kinds: &[Kind], values: &[Value]) -> Result<Vec<u8>, AbiError> {
    let mut out = Vec::new();
    encode_tuple(kinds, values, &mut out)?;
    Ok(out)
}

/// Decodes a tuple of `kinds` from `data` (return values, event data, revert data).
pub fn decode(kinds: &[Kind], data: &[u8]) -> Result<Vec<Value>, AbiError> {
    decode_tuple(kinds, data, 0)
}

fn word_of(v: &U256) -> [u8; 32] {
    v.to_be_bytes::<32>()
}

fn encode_tuple(kinds: &[Kind], values: &[Value], out: &mut Vec<u8>) -> Result<(), AbiError> {
    if kinds.len() != values.len() {
        return Err(AbiError::Arity {
            expected: kinds.len(),
            got: values.len(),
        });
    }
    let head_len: usize = kinds.iter().map(Kind::head_len).sum();
    let mut head = Vec::with_capacity(head_len);
    let mut tail = Vec::new();
    for (kind, value) in kinds.iter().zip(values) {
        if kind.is_dynamic() {
            let offset = U256::from(head_len + tail.len());
            head.extend_from_slice(&word_of(&offset));
            encode_value(kind, value, &mut tail)?;
        } else {
            encode_value(kind, value, &mut head)?;
        }
    }
    out.extend_from_slice(&head);
    out.extend_from_slice(&tail);
    Ok(())
}

fn encode_value(kind: &Kind, value: &Value, out: &mut Vec<u8>) -> Result<(), AbiError> {
    match (kind, value) {
        (Kind::Address, Value::Address(a)) => {
            out.extend_from_slice(&[0u8; 12]);
            out.extend_from_slice(&a.0);
        }
        (Kind::Uint(bits), Value::Uint(v)) => {
            if v.bit_len() > usize::from(*bits) {
                return Err(AbiError::Overflow {
                    value: *v,
                    bits: *bits,
                });
            }
            out.extend_from_slice(&word_of(v));
        }
        (Kind::Bool, Value::Bool(b)) => out.extend_from_slice(&word_of(&U256::from(u8::from(*b)))),
        (Kind::Bytes32, Value::Bytes32(h)) => out.extend_from_slice(&h.0),
        (Kind::Bytes, Value::Bytes(b)) => encode_bytes(b, out),
        (Kind::String, Value::String(s)) => encode_bytes(s.as_bytes(), out),
        (Kind::Tuple(kinds), Value::Tuple(values)) => encode_tuple(kinds, values, out)?,
        (kind, value) => {
            return Err(AbiError::Mismatch {
                expected: kind.canonical(),
                got: value.kind_name(),
            })
        }
    }
    Ok(())
}

/// Length word, then the bytes right-padded with zeros to a multiple of 32.
fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&word_of(&U256::from(b.len())));
    out.extend_from_slice(b);
    let pad = (32 - b.len() % 32) % 32;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn slice(data: &[u8], at: usize, need: usize) -> Result<&[u8], AbiError> {
    at.checked_add(need)
        .and_then(|end| data.get(at..end))
        .ok_or(AbiError::Short {
            at,
            need,
            len: data.len(),
        })
}

fn word(data: &[u8], at: usize) -> Result<[u8; 32], AbiError> {
    let w = slice(data, at, 32)?;
    let mut out = [0u8; 32];
    out.copy_from_slice(w);
    Ok(out)
}

/// A word used as an offset or length: must point inside `data`.
fn position(data: &[u8], at: usize, what: &'static str) -> Result<usize, AbiError> {
    let value = U256::from_be_bytes(word(data, at)?);
    usize::try_from(value)
        .ok()
        .filter(|v| *v <= data.len())
        .ok_or(AbiError::BadOffset { what, value, at })
}

fn decode_tuple(kinds: &[Kind], data: &[u8], base: usize) -> Result<Vec<Value>, AbiError> {
    let mut values = Vec::with_capacity(kinds.len());
    let mut at = base;
    for kind in kinds {
        if kind.is_dynamic() {
            let offset = position(data, at, "offset")?;
            let target = base.checked_add(offset).ok_or(AbiError::BadOffset {
                what: "offset",
                value: U256::from(offset),
                at,
            })?;
            values.push(decode_value(kind, data, target)?);
        } else {
            values.push(decode_value(kind, data, at)?);
        }
        at = at.checked_add(kind.head_len()).ok_or(AbiError::Short {
            at,
            need: kind.head_len(),
            len: data.len(),
        })?;
    }
    Ok(values)
}

fn decode_value(kind: &Kind, data: &[u8], at: usize) -> Result<Value, AbiError> {
    let bad = || AbiError::BadWord {
        at,
        kind: kind.canonical(),
    };
    Ok(match kind {
        Kind::Address => {
            let w = word(data, at)?;
            if w[..12].iter().any(|b| *b != 0) {
                return Err(bad());
            }
            let mut a = [0u8; 20];
            a.copy_from_slice(&w[12..]);
            Value::Address(channel_core::Address(a))
        }
        Kind::Uint(bits) => {
            let v = U256::from_be_bytes(word(data, at)?);
            if v.bit_len() > usize::from(*bits) {
                return Err(bad());
            }
            Value::Uint(v)
        }
        Kind::Bool => match U256::from_be_bytes(word(data, at)?) {
            v if v.is_zero() => Value::Bool(false),
            v if v == U256::from(1u8) => Value::Bool(true),
            _ => return Err(bad()),
        },
        Kind::Bytes32 => Value::Bytes32(channel_core::H256(word(data, at)?)),
        Kind::Bytes | Kind::String => {
            let len = position(data, at, "length")?;
            let start = at.checked_add(32).ok_or_else(bad)?;
            let bytes = slice(data, start, len)?.to_vec();
            if *kind == Kind::Bytes {
                Value::Bytes(bytes)
            } else {
                Value::String(String::from_utf8(bytes).map_err(|_| AbiError::BadUtf8 { at })?)
            }
        }
        Kind::Tuple(kinds) => Value::Tuple(decode_tuple(kinds, data, at)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::UINT256;
    use channel_core::{Address, H256};

    fn words(hex_words: &[&str]) -> Vec<u8> {
        hex::decode(hex_words.concat()).unwrap()
    }

    fn w(v: u64) -> String {
        format!("{v:064x}")
    }

    /// `(uint256, bytes, (address, bytes), bool)`: a dynamic argument and a dynamic tuple,
    /// laid out by hand from the ABI specification.
    #[test]
    fn dynamic_values_and_tuples_follow_the_specification() {
        const INNER: Kind = Kind::Tuple(&[Kind::Address, Kind::Bytes]);
        let kinds = [UINT256, Kind::Bytes, INNER, Kind::Bool];
        let who = Address([0x11; 20]);
        let values = vec![
            Value::Uint(U256::from(7u8)),
            Value::Bytes(b"abc".to_vec()),
            Value::Tuple(vec![Value::Address(who), Value::Bytes(vec![0xff; 33])]),
            Value::Bool(true),
        ];
        let encoded = encode(&kinds, &values).unwrap();
        let expected = words(&[
            &w(7),    // 0x00 uint256
            &w(0x80), // 0x20 offset of bytes: after the 4-word head
            &w(0xc0), // 0x40 offset of the tuple: after bytes' length and one data word
            &w(1),    // 0x60 bool
            &w(3),    // 0x80 bytes length
            &format!("616263{}", "00".repeat(29)),
            &format!("{}{}", "00".repeat(12), "11".repeat(20)), // 0xc0 tuple: address
            &w(0x40), // tuple's bytes: offset from the tuple's start
            &w(33),
            &"ff".repeat(32),
            &format!("ff{}", "00".repeat(31)),
        ]);
        assert_eq!(hex::encode(&encoded), hex::encode(&expected));
        assert_eq!(decode(&kinds, &encoded).unwrap(), values);
    }

    #[test]
    fn static_tuples_are_inline() {
        const PAIR: Kind = Kind::Tuple(&[UINT256, Kind::Bytes32]);
        assert!(!PAIR.is_dynamic());
        assert_eq!(PAIR.head_len(), 64);
        let kinds = [PAIR, Kind::Bytes];
        let values = vec![
            Value::Tuple(vec![
                Value::Uint(U256::from(1u8)),
                Value::Bytes32(H256([2; 32])),
            ]),
            Value::Bytes(vec![]),
        ];
        let encoded = encode(&kinds, &values).unwrap();
        assert_eq!(
            hex::encode(&encoded),
            hex::encode(words(&[&w(1), &"02".repeat(32), &w(0x60), &w(0)]))
        );
        assert_eq!(decode(&kinds, &encoded).unwrap(), values);
    }

    #[test]
    fn malformed_data_is_refused_not_misread() {
        // Too short for a word.
        assert!(matches!(
            decode(&[UINT256], &[0u8; 31]),
            Err(AbiError::Short { .. })
        ));
        // An address with dirty padding, a bool that is 2, a uint8 above 255.
        let dirty = words(&[&format!("01{}", "00".repeat(31))]);
        assert!(matches!(
            decode(&[Kind::Address], &dirty),
            Err(AbiError::BadWord { .. })
        ));
        assert!(matches!(
            decode(&[Kind::Bool], &words(&[&w(2)])),
            Err(AbiError::BadWord { .. })
        ));
        assert!(matches!(
            decode(&[Kind::Uint(8)], &words(&[&w(256)])),
            Err(AbiError::BadWord { .. })
        ));
        // An offset past the end, a length past the end, a huge offset.
        assert!(matches!(
            decode(&[Kind::Bytes], &words(&[&w(0x40)])),
            Err(AbiError::BadOffset { .. })
        ));
        assert!(matches!(
            decode(&[Kind::Bytes], &words(&[&w(0x20), &w(5)])),
            Err(AbiError::Short { .. })
        ));
        assert!(matches!(
            decode(&[Kind::String], &words(&[&"ff".repeat(32)])),
            Err(AbiError::BadOffset { .. })
        ));
        // A string that is not UTF-8.
        let not_utf8 = words(&[&w(0x20), &w(1), &format!("ff{}", "00".repeat(31))]);
        assert!(matches!(
            decode(&[Kind::String], &not_utf8),
            Err(AbiError::BadUtf8 { .. })
        ));
    }
}
