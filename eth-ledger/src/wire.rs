//! The JSON shapes of Ethereum JSON-RPC: hex quantities and data going out, and logs,
//! receipts and log filters as this crate's own types. Parsing is strict; a field that is
//! missing or malformed is an error naming the field, never a default.

use channel_core::{Address, H256, U256};
use serde_json::{json, Map, Value};

/// A `QUANTITY`: `0x`-prefixed hex without leading zeros.
pub fn quantity_u64(v: u64) -> String {
    format!("{v:#x}")
}

pub fn quantity_u256(v: &U256) -> String {
    format!("{v:#x}")
}

/// `DATA`: `0x`-prefixed hex, two digits per byte.
pub fn data_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

fn text<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str()
        .ok_or_else(|| format!("{what}: expected a hex string, got {v}"))
}

fn hex_digits<'a>(s: &'a str, what: &str) -> Result<&'a str, String> {
    s.strip_prefix("0x")
        .ok_or_else(|| format!("{what}: {s:?} lacks the 0x prefix"))
}

pub fn parse_u64(v: &Value, what: &str) -> Result<u64, String> {
    let s = text(v, what)?;
    let digits = hex_digits(s, what)?;
    u64::from_str_radix(digits, 16).map_err(|e| format!("{what}: {s:?} is not a u64: {e}"))
}

pub fn parse_u256(v: &Value, what: &str) -> Result<U256, String> {
    let s = text(v, what)?;
    let digits = hex_digits(s, what)?;
    if digits.is_empty() {
        return Err(format!("{what}: empty quantity"));
    }
    U256::from_str_radix(digits, 16).map_err(|e| format!("{what}: {s:?} is not a uint256: {e}"))
}

pub fn parse_data(v: &Value, what: &str) -> Result<Vec<u8>, String> {
    let s = text(v, what)?;
    hex::decode(hex_digits(s, what)?).map_err(|e| format!("{what}: {e}"))
}

pub fn parse_h256(v: &Value, what: &str) -> Result<H256, String> {
    H256::from_slice(&parse_data(v, what)?).map_err(|e| format!("{what}: {e}"))
}

pub fn parse_address(v: &Value, what: &str) -> Result<Address, String> {
    Address::from_slice(&parse_data(v, what)?).map_err(|e| format!("{what}: {e}"))
}

fn field<'a>(obj: &'a Value, name: &str) -> Result<&'a Value, String> {
    obj.get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| format!("no {name}"))
}

/// A field that may be absent or null.
fn optional<T>(
    obj: &Value,
    name: &str,
    parse: impl Fn(&Value, &str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => parse(v, name).map(Some),
    }
}

/// A contract log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    pub address: Address,
    pub topics: Vec<H256>,
    pub data: Vec<u8>,
    pub block_number: Option<u64>,
    pub log_index: Option<u64>,
    pub transaction_hash: Option<H256>,
    /// Only some nodes include it.
    pub block_timestamp: Option<u64>,
    /// Taken back by a reorganisation.
    pub removed: bool,
}

impl Log {
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let topics = field(v, "topics")?
            .as_array()
            .ok_or("topics is not an array")?
            .iter()
            .map(|t| parse_h256(t, "topic"))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            address: parse_address(field(v, "address")?, "address")?,
            topics,
            data: parse_data(field(v, "data")?, "data")?,
            block_number: optional(v, "blockNumber", parse_u64)?,
            log_index: optional(v, "logIndex", parse_u64)?,
            transaction_hash: optional(v, "transactionHash", parse_h256)?,
            block_timestamp: optional(v, "blockTimestamp", parse_u64)?,
            removed: v.get("removed").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    pub fn topic0(&self) -> Option<&H256> {
        self.topics.first()
    }
}

/// A mined transaction's receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub transaction_hash: H256,
    pub block_number: u64,
    pub gas_used: u64,
    /// `true` when the transaction succeeded (status 1).
    pub status: bool,
    /// The created contract, for a deployment.
    pub contract_address: Option<Address>,
    pub logs: Vec<Log>,
}

impl Receipt {
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let status = match parse_u64(field(v, "status")?, "status")? {
            0 => false,
            1 => true,
            other => return Err(format!("status {other} is neither 0 nor 1")),
        };
        let logs = field(v, "logs")?
            .as_array()
            .ok_or("logs is not an array")?
            .iter()
            .map(Log::from_json)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            transaction_hash: parse_h256(field(v, "transactionHash")?, "transactionHash")?,
            block_number: parse_u64(field(v, "blockNumber")?, "blockNumber")?,
            gas_used: parse_u64(field(v, "gasUsed")?, "gasUsed")?,
            status,
            contract_address: optional(v, "contractAddress", parse_address)?,
            logs,
        })
    }
}

/// An `eth_getLogs` filter: logs of any of `addresses` whose first topic is any of `topic0`
/// and, when `topic1` is not empty, whose second topic is any of `topic1` (the first indexed
/// parameter, e.g. a channel identifier), in blocks `from_block..=to_block`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFilter {
    pub addresses: Vec<Address>,
    pub topic0: Vec<H256>,
    pub topic1: Vec<H256>,
    pub from_block: u64,
    pub to_block: u64,
}

impl LogFilter {
    pub fn to_json(&self) -> Value {
        let any_of = |ts: &[H256]| ts.iter().map(|t| data_hex(&t.0)).collect::<Vec<_>>();
        let mut topics = vec![json!(any_of(&self.topic0))];
        if !self.topic1.is_empty() {
            topics.push(json!(any_of(&self.topic1)));
        }
        json!({
            "address": self.addresses.iter().map(|a| data_hex(&a.0)).collect::<Vec<_>>(),
            "topics": topics,
            "fromBlock": quantity_u64(self.from_block),
            "toBlock": quantity_u64(self.to_block),
        })
    }
}

/// A call or transaction request (`eth_call`, `eth_estimateGas`).
pub fn call_request(from: Option<Address>, to: Option<Address>, input: &[u8]) -> Value {
    let mut m = Map::new();
    if let Some(from) = from {
        m.insert("from".into(), json!(data_hex(&from.0)));
    }
    if let Some(to) = to {
        m.insert("to".into(), json!(data_hex(&to.0)));
    }
    // `data` rather than `input`: every node version knows it.
    m.insert("data".into(), json!(data_hex(input)));
    m.insert("value".into(), json!("0x0"));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_data_round_trip() {
        assert_eq!(quantity_u64(0), "0x0");
        assert_eq!(quantity_u64(1024), "0x400");
        assert_eq!(quantity_u256(&U256::from(255u8)), "0xff");
        assert_eq!(parse_u64(&json!("0x400"), "n").unwrap(), 1024);
        assert_eq!(
            parse_u256(&json!("0xde0b6b3a7640000"), "wei").unwrap(),
            U256::from(1_000_000_000_000_000_000u64)
        );
        assert_eq!(data_hex(&[0, 1, 0xab]), "0x0001ab");
        assert_eq!(
            parse_data(&json!("0x0001ab"), "d").unwrap(),
            vec![0, 1, 0xab]
        );
        assert!(parse_u64(&json!("400"), "n").is_err(), "no 0x");
        assert!(parse_u64(&json!(1024), "n").is_err(), "not a string");
        assert!(parse_u64(&json!("0x1ffffffffffffffff"), "n").is_err());
        assert!(parse_u256(&json!("0x"), "n").is_err());
        assert!(parse_address(&json!("0x1234"), "a").is_err());
    }

    #[test]
    fn a_receipt_with_logs_is_read_field_by_field() {
        let v = json!({
            "transactionHash": format!("0x{}", "11".repeat(32)),
            "blockNumber": "0x10",
            "gasUsed": "0x5208",
            "status": "0x1",
            "contractAddress": null,
            "logs": [{
                "address": format!("0x{}", "22".repeat(20)),
                "topics": [format!("0x{}", "33".repeat(32))],
                "data": "0x",
                "blockNumber": "0x10",
                "logIndex": "0x0",
                "transactionHash": format!("0x{}", "11".repeat(32)),
                "removed": false
            }]
        });
        let r = Receipt::from_json(&v).unwrap();
        assert!(r.status);
        assert_eq!((r.block_number, r.gas_used), (16, 21_000));
        assert_eq!(r.contract_address, None);
        assert_eq!(r.logs.len(), 1);
        assert_eq!(r.logs[0].address, Address([0x22; 20]));
        assert_eq!(r.logs[0].topic0(), Some(&H256([0x33; 32])));
        assert_eq!(r.logs[0].block_timestamp, None);

        let mut no_status = v.clone();
        no_status["status"] = Value::Null;
        assert!(Receipt::from_json(&no_status)
            .unwrap_err()
            .contains("status"));
        let mut odd = v;
        odd["status"] = json!("0x2");
        assert!(Receipt::from_json(&odd).is_err());
    }

    #[test]
    fn a_filter_asks_for_any_of_the_topics_in_first_position() {
        let f = LogFilter {
            addresses: vec![Address([1; 20])],
            topic0: vec![H256([2; 32]), H256([3; 32])],
            topic1: Vec::new(),
            from_block: 5,
            to_block: 7,
        };
        let j = f.to_json();
        assert_eq!(j["topics"][0][1], json!(format!("0x{}", "03".repeat(32))));
        assert_eq!(
            j["topics"].as_array().map(Vec::len),
            Some(1),
            "no second topic: any"
        );
        let narrowed = LogFilter {
            topic1: vec![H256([4; 32])],
            ..f.clone()
        };
        let j2 = narrowed.to_json();
        assert_eq!(j2["topics"][1][0], json!(format!("0x{}", "04".repeat(32))));
        assert_eq!(j["fromBlock"], json!("0x5"));
        assert_eq!(j["toBlock"], json!("0x7"));
    }
}
