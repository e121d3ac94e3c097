//! Solidity ABI: the parameter types and values the Raiden contracts' calls, results and
//! events use, function and event descriptors with their 4-byte selectors and event topics
//! (keccak256 of the canonical signature), and revert data (`Error(string)`, `Panic(uint256)`).
//!
//! The byte layout itself (heads, offsets, tails) is in `codec`. Only what this crate needs is
//! supported: `address`, `uintN`, `bool`, `bytes32`, dynamic `bytes` and `string`, and tuples
//! of those; no arrays and no signed integers.

use channel_core::crypto::keccak256;
use channel_core::{Address, H256, U256};
use thiserror::Error;

mod codec;
pub use codec::{decode, encode};

/// A Solidity parameter type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Address,
    /// `uintN`, N a multiple of 8 in 8..=256.
    Uint(u16),
    Bool,
    Bytes32,
    /// Dynamic `bytes`.
    Bytes,
    String,
    Tuple(&'static [Kind]),
}

/// `uint256`.
pub const UINT256: Kind = Kind::Uint(256);

impl Kind {
    /// The type as written in a canonical signature (tuples as `(t1,t2)`).
    pub fn canonical(&self) -> String {
        match self {
            Kind::Address => "address".into(),
            Kind::Uint(bits) => format!("uint{bits}"),
            Kind::Bool => "bool".into(),
            Kind::Bytes32 => "bytes32".into(),
            Kind::Bytes => "bytes".into(),
            Kind::String => "string".into(),
            Kind::Tuple(kinds) => format!("({})", canonical_list(kinds.iter())),
        }
    }

    /// Whether the value is encoded out of line (behind an offset).
    pub fn is_dynamic(&self) -> bool {
        match self {
            Kind::Bytes | Kind::String => true,
            Kind::Tuple(kinds) => kinds.iter().any(Kind::is_dynamic),
            _ => false,
        }
    }

    /// Bytes the value takes in its tuple's head: 32 for a dynamic value (its offset).
    pub(crate) fn head_len(&self) -> usize {
        match self {
            Kind::Tuple(kinds) if !self.is_dynamic() => kinds.iter().map(Kind::head_len).sum(),
            _ => 32,
        }
    }
}

fn canonical_list<'a>(kinds: impl Iterator<Item = &'a Kind>) -> String {
    kinds.map(Kind::canonical).collect::<Vec<_>>().join(",")
}

/// An ABI value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Address(Address),
    Uint(U256),
    Bool(bool),
    Bytes32(H256),
    Bytes(Vec<u8>),
    String(String),
    Tuple(Vec<Value>),
}

impl Value {
    /// What the value is, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Address(_) => "address",
            Value::Uint(_) => "uint",
            Value::Bool(_) => "bool",
            Value::Bytes32(_) => "bytes32",
            Value::Bytes(_) => "bytes",
            Value::String(_) => "string",
            Value::Tuple(_) => "tuple",
        }
    }
}

impl From<Address> for Value {
    fn from(a: Address) -> Self {
        Value::Address(a)
    }
}

impl From<U256> for Value {
    fn from(v: U256) -> Self {
        Value::Uint(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Uint(U256::from(v))
    }
}

impl From<H256> for Value {
    fn from(h: H256) -> Self {
        Value::Bytes32(h)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

/// Why a value could not be encoded or decoded.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum AbiError {
    #[error("expected {expected} values, got {got}")]
    Arity { expected: usize, got: usize },
    #[error("expected a {expected} value, got a {got}")]
    Mismatch { expected: String, got: &'static str },
    #[error("{value} does not fit in uint{bits}")]
    Overflow { value: U256, bits: u16 },
    #[error("data ends at {len} bytes, {need} needed at offset {at}")]
    Short { at: usize, need: usize, len: usize },
    #[error("word at offset {at} is not a valid {kind}")]
    BadWord { at: usize, kind: String },
    #[error("{what} {value} at offset {at} is out of range")]
    BadOffset {
        what: &'static str,
        value: U256,
        at: usize,
    },
    #[error("string at offset {at} is not UTF-8")]
    BadUtf8 { at: usize },
    #[error("event {event}: {reason}")]
    Log { event: String, reason: String },
    #[error("no value named {0:?}")]
    NoField(&'static str),
    #[error("value {name:?} is a {got}, not a {expected}")]
    FieldKind {
        name: &'static str,
        expected: &'static str,
        got: &'static str,
    },
}

/// A named parameter of a function or event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    /// Events only: the value is a topic rather than part of the data.
    pub indexed: bool,
}

/// A parameter of a function (or a non-indexed parameter of an event).
pub const fn param(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        indexed: false,
    }
}

/// An indexed event parameter.
pub const fn indexed(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        indexed: true,
    }
}

fn kinds(params: &[Param]) -> Vec<Kind> {
    params.iter().map(|p| p.kind).collect()
}

/// A contract function: name, inputs and outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    pub inputs: &'static [Param],
    /// Output names are ours (the ABI often leaves them empty); their types are the ABI's.
    pub outputs: &'static [Param],
}

impl Function {
    /// `name(type1,type2,...)`.
    pub fn signature(&self) -> String {
        format!(
            "{}({})",
            self.name,
            canonical_list(self.inputs.iter().map(|p| &p.kind))
        )
    }

    /// First four bytes of keccak256 of the signature.
    pub fn selector(&self) -> [u8; 4] {
        let h = keccak256(self.signature().as_bytes());
        [h.0[0], h.0[1], h.0[2], h.0[3]]
    }

    /// Call data: selector and the encoded arguments (checked against the inputs' types).
    pub fn encode_call(&self, args: &[Value]) -> Result<Vec<u8>, AbiError> {
        let mut out = self.selector().to_vec();
        out.extend(encode(&kinds(self.inputs), args)?);
        Ok(out)
    }

    /// The return data, decoded by the outputs' types.
    pub fn decode_output(&self, data: &[u8]) -> Result<Decoded, AbiError> {
        let values = decode(&kinds(self.outputs), data)?;
        Ok(Decoded::new(self.outputs, values))
    }
}

/// A contract event: name and parameters (in declaration order, indexed or not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub name: &'static str,
    pub params: &'static [Param],
}

impl Event {
    pub fn signature(&self) -> String {
        format!(
            "{}({})",
            self.name,
            canonical_list(self.params.iter().map(|p| &p.kind))
        )
    }

    /// keccak256 of the signature: the log's first topic.
    pub fn topic0(&self) -> H256 {
        keccak256(self.signature().as_bytes())
    }

    /// Decodes a log of this event: indexed parameters from `topics[1..]`, the others from
    /// `data`, returned in declaration order.
    pub fn decode_log(&self, topics: &[H256], data: &[u8]) -> Result<Decoded, AbiError> {
        let fail = |reason: String| AbiError::Log {
            event: self.signature(),
            reason,
        };
        if topics.first() != Some(&self.topic0()) {
            return Err(fail("first topic is not the event's signature hash".into()));
        }
        let indexed: Vec<&Param> = self.params.iter().filter(|p| p.indexed).collect();
        if topics.len() != indexed.len() + 1 {
            return Err(fail(format!(
                "{} topics, expected {}",
                topics.len(),
                indexed.len() + 1
            )));
        }
        let data_params: Vec<Param> = self.params.iter().copied().filter(|p| !p.indexed).collect();
        let mut from_data = decode(&kinds(&data_params), data)
            .map_err(|e| fail(e.to_string()))?
            .into_iter();
        let mut from_topics = topics[1..].iter();
        let mut values = Vec::with_capacity(self.params.len());
        for p in self.params {
            let v = if p.indexed {
                let topic = from_topics
                    .next()
                    .ok_or_else(|| fail("topics run out".into()))?;
                if p.kind.is_dynamic() {
                    // A dynamic indexed value is stored as its hash.
                    Value::Bytes32(*topic)
                } else {
                    decode(&[p.kind], &topic.0)
                        .map_err(|e| fail(format!("topic {}: {e}", p.name)))?
                        .pop()
                        .ok_or_else(|| fail(format!("topic {} is empty", p.name)))?
                }
            } else {
                from_data
                    .next()
                    .ok_or_else(|| fail("data runs out".into()))?
            };
            values.push(v);
        }
        Ok(Decoded::new(self.params, values))
    }
}

/// Decoded values with their parameter names, read back by name and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    names: Vec<&'static str>,
    values: Vec<Value>,
}

impl Decoded {
    fn new(params: &[Param], values: Vec<Value>) -> Self {
        Self {
            names: params.iter().map(|p| p.name).collect(),
            values,
        }
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub fn get(&self, name: &'static str) -> Result<&Value, AbiError> {
        self.names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.values.get(i))
            .ok_or(AbiError::NoField(name))
    }

    fn wrong(name: &'static str, expected: &'static str, got: &Value) -> AbiError {
        AbiError::FieldKind {
            name,
            expected,
            got: got.kind_name(),
        }
    }

    pub fn uint(&self, name: &'static str) -> Result<U256, AbiError> {
        match self.get(name)? {
            Value::Uint(v) => Ok(*v),
            other => Err(Self::wrong(name, "uint", other)),
        }
    }

    /// A uint the crate keeps as `u64` (nonces, timestamps); larger values are refused.
    pub fn u64(&self, name: &'static str) -> Result<u64, AbiError> {
        let v = self.uint(name)?;
        u64::try_from(v).map_err(|_| AbiError::Overflow { value: v, bits: 64 })
    }

    pub fn address(&self, name: &'static str) -> Result<Address, AbiError> {
        match self.get(name)? {
            Value::Address(a) => Ok(*a),
            other => Err(Self::wrong(name, "address", other)),
        }
    }

    pub fn bool(&self, name: &'static str) -> Result<bool, AbiError> {
        match self.get(name)? {
            Value::Bool(b) => Ok(*b),
            other => Err(Self::wrong(name, "bool", other)),
        }
    }

    pub fn bytes32(&self, name: &'static str) -> Result<H256, AbiError> {
        match self.get(name)? {
            Value::Bytes32(h) => Ok(*h),
            other => Err(Self::wrong(name, "bytes32", other)),
        }
    }
}

/// `Error(string)`: what `require(cond, "reason")` reverts with.
pub const ERROR_STRING: Function = Function {
    name: "Error",
    inputs: &[param("reason", Kind::String)],
    outputs: &[],
};

/// `Panic(uint256)`: what a failed assert, overflow or division by zero reverts with.
pub const PANIC: Function = Function {
    name: "Panic",
    inputs: &[param("code", UINT256)],
    outputs: &[],
};

/// The reason in revert data: the string of `Error(string)`, or the code of `Panic(uint256)`.
/// `None` for empty data or a custom error this crate does not know.
pub fn decode_revert(data: &[u8]) -> Option<String> {
    let (selector, body) = (data.get(..4)?, data.get(4..)?);
    if selector == ERROR_STRING.selector() {
        match decode(&[Kind::String], body).ok()?.pop()? {
            Value::String(s) => Some(s),
            _ => None,
        }
    } else if selector == PANIC.selector() {
        match decode(&[UINT256], body).ok()?.pop()? {
            Value::Uint(code) => Some(format!("panic {code:#x}")),
            _ => None,
        }
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSFER: Function = Function {
        name: "transfer",
        inputs: &[param("to", Kind::Address), param("value", UINT256)],
        outputs: &[param("ok", Kind::Bool)],
    };
    /// The Solidity docs' example function.
    const BAZ: Function = Function {
        name: "baz",
        inputs: &[param("x", Kind::Uint(32)), param("y", Kind::Bool)],
        outputs: &[],
    };
    const TRANSFER_EVENT: Event = Event {
        name: "Transfer",
        params: &[
            indexed("from", Kind::Address),
            indexed("to", Kind::Address),
            param("value", UINT256),
        ],
    };

    /// Selectors and topics known from the ERC-20 standard and the Solidity docs.
    #[test]
    fn selectors_and_topics_are_keccak_of_the_canonical_signature() {
        assert_eq!(TRANSFER.signature(), "transfer(address,uint256)");
        assert_eq!(hex::encode(TRANSFER.selector()), "a9059cbb");
        assert_eq!(hex::encode(BAZ.selector()), "cdcd77c0");
        assert_eq!(hex::encode(ERROR_STRING.selector()), "08c379a0");
        assert_eq!(hex::encode(PANIC.selector()), "4e487b71");
        assert_eq!(
            TRANSFER_EVENT.topic0().to_string(),
            "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
        );
        let nested = Kind::Tuple(&[Kind::Address, Kind::Tuple(&[Kind::Bytes, UINT256])]);
        assert_eq!(nested.canonical(), "(address,(bytes,uint256))");
    }

    /// The Solidity docs' example: `baz(69, true)`.
    #[test]
    fn call_data_is_selector_then_arguments() {
        let baz = BAZ;
        let data = baz.encode_call(&[69u64.into(), true.into()]).unwrap();
        assert_eq!(
            hex::encode(data),
            concat!(
                "cdcd77c0",
                "0000000000000000000000000000000000000000000000000000000000000045",
                "0000000000000000000000000000000000000000000000000000000000000001"
            )
        );
        let err = baz.encode_call(&[true.into(), 69u64.into()]).unwrap_err();
        assert!(matches!(err, AbiError::Mismatch { .. }), "{err}");
        let err = baz.encode_call(&[69u64.into()]).unwrap_err();
        assert_eq!(
            err,
            AbiError::Arity {
                expected: 2,
                got: 1
            }
        );
        let err = baz
            .encode_call(&[U256::from(1u64 << 32).into(), true.into()])
            .unwrap_err();
        assert!(matches!(err, AbiError::Overflow { bits: 32, .. }), "{err}");
    }

    #[test]
    fn event_values_come_from_topics_and_data_in_declaration_order() {
        const PAID: Event = Event {
            name: "Paid",
            params: &[
                indexed("id", UINT256),
                param("who", Kind::Address),
                indexed("to", Kind::Address),
                param("amount", UINT256),
            ],
        };
        let settled = PAID;
        let (who, to) = (Address([0xaa; 20]), Address([0xbb; 20]));
        let data = encode(&[Kind::Address, UINT256], &[who.into(), 7u64.into()]).unwrap();
        let mut to_topic = [0u8; 32];
        to_topic[12..].copy_from_slice(&to.0);
        let id_topic = H256(U256::from(5u8).to_be_bytes::<32>());
        let topics = [settled.topic0(), id_topic, H256(to_topic)];
        let d = settled.decode_log(&topics, &data).unwrap();
        assert_eq!(d.uint("id").unwrap(), U256::from(5u8));
        assert_eq!(d.address("who").unwrap(), who);
        assert_eq!(d.address("to").unwrap(), to);
        assert_eq!(d.u64("amount").unwrap(), 7);
        assert_eq!(
            d.bool("amount"),
            Err(AbiError::FieldKind {
                name: "amount",
                expected: "bool",
                got: "uint"
            })
        );
        assert_eq!(d.uint("nope"), Err(AbiError::NoField("nope")));

        // Another event's log, a missing topic, or an address topic with dirty upper bytes.
        let mut other = topics;
        other[0] = H256([1; 32]);
        assert!(settled.decode_log(&other, &data).is_err());
        assert!(settled.decode_log(&topics[..2], &data).is_err());
        let mut dirty = topics;
        dirty[2].0[0] = 1;
        let err = settled.decode_log(&dirty, &data).unwrap_err();
        assert!(err.to_string().contains("topic to"), "{err}");
    }

    #[test]
    fn revert_data_gives_the_reason() {
        let data = ERROR_STRING
            .encode_call(&[Value::String("TN/settle: channel not closed".into())])
            .unwrap();
        assert_eq!(
            decode_revert(&data).as_deref(),
            Some("TN/settle: channel not closed")
        );
        let panic = PANIC.encode_call(&[0x11u64.into()]).unwrap();
        assert_eq!(decode_revert(&panic).as_deref(), Some("panic 0x11"));
        assert_eq!(decode_revert(&[]), None);
        assert_eq!(decode_revert(&[0xde, 0xad, 0xbe, 0xef]), None);
        // A cut-off reason is not made up.
        assert_eq!(decode_revert(&data[..data.len() - 32]), None);
    }
}
