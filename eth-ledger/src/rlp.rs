//! RLP (Ethereum's recursive length prefix), as much as typed transactions need: byte strings,
//! unsigned integers as minimal big-endian byte strings, and lists. The decoder accepts only
//! canonical encodings (shortest length forms, no leading zeros in integers), so one value has
//! exactly one encoding and a decoded transaction re-encodes to the same bytes.

use channel_core::U256;
use thiserror::Error;

/// Why bytes are not a canonical RLP item.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum RlpError {
    #[error("input ends early: {need} bytes needed at offset {at}")]
    Short { at: usize, need: usize },
    #[error("non-canonical encoding at offset {at}: {what}")]
    NonCanonical { at: usize, what: &'static str },
    #[error("{0} bytes left over after the item")]
    Trailing(usize),
    #[error("expected a {expected}")]
    Shape { expected: &'static str },
    #[error("integer has leading zero bytes")]
    LeadingZero,
    #[error("integer of {len} bytes does not fit in {bits} bits")]
    TooBig { len: usize, bits: usize },
}

/// One decoded item, borrowing from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item<'a> {
    Bytes(&'a [u8]),
    List(Vec<Item<'a>>),
}

/// The encoding of a byte string.
pub fn bytes(b: &[u8]) -> Vec<u8> {
    if let [single] = b {
        if *single < 0x80 {
            return vec![*single];
        }
    }
    let mut out = header(0x80, b.len());
    out.extend_from_slice(b);
    out
}

/// The encoding of an unsigned integer given big-endian (leading zeros are dropped; 0 is the
/// empty string).
pub fn uint_be(be: &[u8]) -> Vec<u8> {
    let first = be.iter().position(|b| *b != 0).unwrap_or(be.len());
    bytes(&be[first..])
}

pub fn u64(v: u64) -> Vec<u8> {
    uint_be(&v.to_be_bytes())
}

pub fn u256(v: &U256) -> Vec<u8> {
    uint_be(&v.to_be_bytes::<32>())
}

/// The encoding of a list of already encoded items.
pub fn list(items: &[Vec<u8>]) -> Vec<u8> {
    let len = items.iter().map(Vec::len).sum();
    let mut out = header(0xc0, len);
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

fn header(base: u8, len: usize) -> Vec<u8> {
    if len <= 55 {
        // `len` is at most 55 here, so the sum stays below 0xf8.
        vec![base + len as u8]
    } else {
        let be = len.to_be_bytes();
        let first = be.iter().position(|b| *b != 0).unwrap_or(be.len() - 1);
        let len_bytes = &be[first..];
        let mut out = vec![base + 55 + len_bytes.len() as u8];
        out.extend_from_slice(len_bytes);
        out
    }
}

/// Decodes exactly one item that spans all of `data`.
pub fn decode(data: &[u8]) -> Result<Item<'_>, RlpError> {
    let (item, used) = decode_at(data, 0)?;
    if used != data.len() {
        return Err(RlpError::Trailing(data.len() - used));
    }
    Ok(item)
}

fn take(data: &[u8], at: usize, need: usize) -> Result<&[u8], RlpError> {
    at.checked_add(need)
        .and_then(|end| data.get(at..end))
        .ok_or(RlpError::Short { at, need })
}

/// A long-form length: `n` big-endian bytes, no leading zero, more than 55.
fn long_len(data: &[u8], at: usize, n: usize) -> Result<usize, RlpError> {
    let raw = take(data, at, n)?;
    if raw.first() == Some(&0) {
        return Err(RlpError::NonCanonical {
            at,
            what: "length with a leading zero",
        });
    }
    if n > std::mem::size_of::<usize>() {
        return Err(RlpError::TooBig {
            len: n,
            bits: usize::BITS as usize,
        });
    }
    let len = raw
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    if len <= 55 {
        return Err(RlpError::NonCanonical {
            at,
            what: "long form for a short length",
        });
    }
    Ok(len)
}

/// The item at `at` and the offset just after it.
fn decode_at(data: &[u8], at: usize) -> Result<(Item<'_>, usize), RlpError> {
    let prefix = *take(data, at, 1)?
        .first()
        .ok_or(RlpError::Short { at, need: 1 })?;
    let body = at + 1;
    let (is_list, start, len) = match prefix {
        0x00..=0x7f => return Ok((Item::Bytes(take(data, at, 1)?), body)),
        0x80..=0xb7 => {
            let len = usize::from(prefix - 0x80);
            if len == 1 && take(data, body, 1)?[0] < 0x80 {
                return Err(RlpError::NonCanonical {
                    at,
                    what: "single byte below 0x80 with a prefix",
                });
            }
            (false, body, len)
        }
        0xb8..=0xbf => {
            let n = usize::from(prefix - 0xb7);
            (false, body + n, long_len(data, body, n)?)
        }
        0xc0..=0xf7 => (true, body, usize::from(prefix - 0xc0)),
        0xf8..=0xff => {
            let n = usize::from(prefix - 0xf7);
            (true, body + n, long_len(data, body, n)?)
        }
    };
    let payload = take(data, start, len)?;
    let end = start + len;
    if !is_list {
        return Ok((Item::Bytes(payload), end));
    }
    let mut items = Vec::new();
    let mut pos = start;
    while pos < end {
        let (item, next) = decode_at(&data[..end], pos)?;
        items.push(item);
        pos = next;
    }
    Ok((Item::List(items), end))
}

impl<'a> Item<'a> {
    pub fn as_bytes(&self) -> Result<&'a [u8], RlpError> {
        match self {
            Item::Bytes(b) => Ok(b),
            Item::List(_) => Err(RlpError::Shape {
                expected: "byte string",
            }),
        }
    }

    pub fn as_list(&self) -> Result<&[Item<'a>], RlpError> {
        match self {
            Item::List(items) => Ok(items),
            Item::Bytes(_) => Err(RlpError::Shape { expected: "list" }),
        }
    }

    /// A canonical integer's big-endian bytes (no leading zero) of at most `bits` bits.
    fn uint_bytes(&self, bits: usize) -> Result<&'a [u8], RlpError> {
        let b = self.as_bytes()?;
        if b.first() == Some(&0) {
            return Err(RlpError::LeadingZero);
        }
        if b.len() * 8 > bits {
            return Err(RlpError::TooBig { len: b.len(), bits });
        }
        Ok(b)
    }

    pub fn as_u64(&self) -> Result<u64, RlpError> {
        let b = self.uint_bytes(64)?;
        Ok(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
    }

    pub fn as_u256(&self) -> Result<U256, RlpError> {
        let b = self.uint_bytes(256)?;
        let mut word = [0u8; 32];
        word[32 - b.len()..].copy_from_slice(b);
        Ok(U256::from_be_bytes(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// The examples of the RLP specification (Ethereum yellow paper, appendix B, and the
    /// ethereum.org RLP page).
    #[test]
    fn encodes_the_specification_examples() {
        assert_eq!(bytes(b"dog"), h("83646f67"));
        assert_eq!(
            list(&[bytes(b"cat"), bytes(b"dog")]),
            h("c88363617483646f67")
        );
        assert_eq!(bytes(b""), h("80"));
        assert_eq!(list(&[]), h("c0"));
        assert_eq!(u64(0), h("80"));
        assert_eq!(bytes(&[0x00]), h("00"));
        assert_eq!(u64(15), h("0f"));
        assert_eq!(u64(1024), h("820400"));
        // The set-theoretic representation of three: [ [], [[]], [ [], [[]] ] ].
        let three = list(&[
            list(&[]),
            list(&[list(&[])]),
            list(&[list(&[]), list(&[list(&[])])]),
        ]);
        assert_eq!(three, h("c7c0c1c0c3c0c1c0"));
        let lorem = b"Lorem ipsum dolor sit amet, consectetur adipisicing elit";
        let mut expected = h("b838");
        expected.extend_from_slice(lorem);
        assert_eq!(bytes(lorem), expected);
        assert_eq!(
            u256(&U256::from(0x0100_0000_0000_0000_0000u128)),
            h("8a01000000000000000000")
        );
    }

    #[test]
    fn decodes_what_it_encodes() {
        let long = vec![0xabu8; 300];
        let encoded = list(&[
            u64(0),
            u64(1),
            u64(u64::MAX),
            u256(&U256::MAX),
            bytes(&long),
            list(&[bytes(b"x"), list(&[])]),
        ]);
        let item = decode(&encoded).unwrap();
        let items = item.as_list().unwrap();
        assert_eq!(items[0].as_u64().unwrap(), 0);
        assert_eq!(items[1].as_u64().unwrap(), 1);
        assert_eq!(items[2].as_u64().unwrap(), u64::MAX);
        assert_eq!(items[3].as_u256().unwrap(), U256::MAX);
        assert_eq!(items[4].as_bytes().unwrap(), &long[..]);
        assert_eq!(
            items[5],
            Item::List(vec![Item::Bytes(b"x"), Item::List(vec![])])
        );
        assert!(items[3].as_u64().is_err(), "too big for 64 bits");
        assert!(items[5].as_bytes().is_err());
    }

    #[test]
    fn refuses_non_canonical_and_broken_input() {
        // A single small byte with a prefix, a short length in long form, a length with a
        // leading zero, an integer with a leading zero.
        assert!(matches!(
            decode(&h("8105")),
            Err(RlpError::NonCanonical { .. })
        ));
        assert!(matches!(
            decode(&h("b803646f67")),
            Err(RlpError::NonCanonical { .. })
        ));
        let mut zero_len = h("b90038");
        zero_len.extend_from_slice(&[0u8; 56]);
        assert!(matches!(
            decode(&zero_len),
            Err(RlpError::NonCanonical { .. })
        ));
        assert_eq!(
            decode(&h("820001")).unwrap().as_u64(),
            Err(RlpError::LeadingZero)
        );
        // Cut off, trailing bytes, a list whose item runs past the list's end.
        assert!(matches!(decode(&h("83646f")), Err(RlpError::Short { .. })));
        assert_eq!(decode(&h("83646f6700")), Err(RlpError::Trailing(1)));
        assert!(matches!(
            decode(&h("c283646f67")),
            Err(RlpError::Short { .. })
        ));
        assert!(matches!(decode(&[]), Err(RlpError::Short { .. })));
        // A huge declared length does not allocate or overflow.
        assert!(matches!(
            decode(&h("bfffffffffffffffff")),
            Err(RlpError::Short { .. })
        ));
    }
}
