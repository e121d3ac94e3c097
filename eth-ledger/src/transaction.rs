//! EIP-1559 (type 2) transactions: the fields, their RLP encoding, the signature by the
//! party's secp256k1 key (any `channel-core` [`Signer`], the same key that signs its proofs),
//! the raw bytes for `eth_sendRawTransaction` and the transaction hash.
//!
//! Signing hash: `keccak256(0x02 || rlp([chain_id, nonce, max_priority_fee_per_gas,
//! max_fee_per_gas, gas_limit, to, value, data, access_list]))`. Raw bytes: `0x02 ||
//! rlp([...the nine fields, y_parity, r, s])`. Hash: `keccak256(raw)`. The access list is
//! always empty.

use channel_core::crypto::{keccak256, keccak256_concat};
use channel_core::{Address, Signature, Signer, H256, U256};

use crate::error::EthError;
use crate::rlp;

/// The EIP-2718 type byte of an EIP-1559 transaction.
pub const TX_TYPE: u8 = 0x02;

/// An unsigned EIP-1559 transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eip1559Tx {
    pub chain_id: u64,
    pub nonce: u64,
    pub max_priority_fee_per_gas: U256,
    pub max_fee_per_gas: U256,
    pub gas_limit: u64,
    /// `None` creates a contract from `input`.
    pub to: Option<Address>,
    pub value: U256,
    pub input: Vec<u8>,
}

impl Eip1559Tx {
    fn fields(&self) -> Vec<Vec<u8>> {
        vec![
            rlp::u64(self.chain_id),
            rlp::u64(self.nonce),
            rlp::u256(&self.max_priority_fee_per_gas),
            rlp::u256(&self.max_fee_per_gas),
            rlp::u64(self.gas_limit),
            rlp::bytes(self.to.as_ref().map_or(&[][..], |a| &a.0[..])),
            rlp::u256(&self.value),
            rlp::bytes(&self.input),
            rlp::list(&[]),
        ]
    }

    /// What the sender signs.
    pub fn signing_hash(&self) -> H256 {
        keccak256_concat(&[&[TX_TYPE], &rlp::list(&self.fields())])
    }

    /// Signs with `signer`; `y_parity` is taken from the recoverable signature's `v`.
    pub fn sign(self, signer: &dyn Signer) -> Result<SignedTx, EthError> {
        let failed = |reason: String| EthError::InvalidInput {
            step: "sign transaction",
            reason: format!("signing the transaction failed: {reason}"),
        };
        let sig = signer
            .sign_hash(&self.signing_hash())
            .map_err(|e| failed(e.to_string()))?;
        let bytes = sig.as_bytes();
        let y_parity = match bytes[64] {
            27 => false,
            28 => true,
            v => return Err(failed(format!("recovery byte {v} is not 27 or 28"))),
        };
        let r = U256::from_be_slice(&bytes[..32]);
        let s = U256::from_be_slice(&bytes[32..64]);
        Ok(SignedTx::assemble(self, y_parity, r, s))
    }
}

/// A signed EIP-1559 transaction with its raw bytes and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    tx: Eip1559Tx,
    y_parity: bool,
    r: U256,
    s: U256,
    raw: Vec<u8>,
    hash: H256,
}

impl SignedTx {
    fn assemble(tx: Eip1559Tx, y_parity: bool, r: U256, s: U256) -> Self {
        let mut fields = tx.fields();
        fields.push(rlp::u64(u64::from(y_parity)));
        fields.push(rlp::u256(&r));
        fields.push(rlp::u256(&s));
        let mut raw = vec![TX_TYPE];
        raw.extend(rlp::list(&fields));
        let hash = keccak256(&raw);
        Self {
            tx,
            y_parity,
            r,
            s,
            raw,
            hash,
        }
    }

    pub fn tx(&self) -> &Eip1559Tx {
        &self.tx
    }

    /// The bytes for `eth_sendRawTransaction`.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// The transaction hash: keccak256 of the raw bytes.
    pub fn hash(&self) -> H256 {
        self.hash
    }

    pub fn y_parity(&self) -> bool {
        self.y_parity
    }

    /// The signature as `r || s || v` with `v = 27 + y_parity` (the form `channel-core`
    /// recovers).
    pub fn signature(&self) -> Result<Signature, EthError> {
        let mut bytes = [0u8; 65];
        bytes[..32].copy_from_slice(&self.r.to_be_bytes::<32>());
        bytes[32..64].copy_from_slice(&self.s.to_be_bytes::<32>());
        bytes[64] = 27 + u8::from(self.y_parity);
        Signature::from_slice(&bytes).map_err(|e| decode_error(format!("signature: {e}")))
    }

    /// The address that signed the transaction.
    pub fn recover_sender(&self) -> Result<Address, EthError> {
        self.signature()?
            .recover(&self.tx.signing_hash())
            .map_err(|e| decode_error(format!("signature does not recover: {e}")))
    }

    /// Reads raw bytes back (only the canonical encoding with an empty access list).
    pub fn decode(raw: &[u8]) -> Result<Self, EthError> {
        let rlp_err = |e: rlp::RlpError| decode_error(e.to_string());
        let (ty, body) = raw
            .split_first()
            .ok_or_else(|| decode_error("empty".into()))?;
        if *ty != TX_TYPE {
            return Err(decode_error(format!("type {ty:#04x}, expected 0x02")));
        }
        let item = rlp::decode(body).map_err(rlp_err)?;
        let f = item.as_list().map_err(rlp_err)?;
        let [chain_id, nonce, tip, max_fee, gas, to, value, input, access, y, r, s] = f else {
            return Err(decode_error(format!("{} fields, expected 12", f.len())));
        };
        let to = match to.as_bytes().map_err(rlp_err)? {
            [] => None,
            b => Some(Address::from_slice(b).map_err(|e| decode_error(format!("to: {e}")))?),
        };
        if !access.as_list().map_err(rlp_err)?.is_empty() {
            return Err(decode_error("access lists are not supported".into()));
        }
        let y_parity = match y.as_u64().map_err(rlp_err)? {
            0 => false,
            1 => true,
            other => return Err(decode_error(format!("y_parity {other}"))),
        };
        let tx = Eip1559Tx {
            chain_id: chain_id.as_u64().map_err(rlp_err)?,
            nonce: nonce.as_u64().map_err(rlp_err)?,
            max_priority_fee_per_gas: tip.as_u256().map_err(rlp_err)?,
            max_fee_per_gas: max_fee.as_u256().map_err(rlp_err)?,
            gas_limit: gas.as_u64().map_err(rlp_err)?,
            to,
            value: value.as_u256().map_err(rlp_err)?,
            input: input.as_bytes().map_err(rlp_err)?.to_vec(),
        };
        let signed = Self::assemble(
            tx,
            y_parity,
            r.as_u256().map_err(rlp_err)?,
            s.as_u256().map_err(rlp_err)?,
        );
        if signed.raw != raw {
            return Err(decode_error("does not re-encode to the same bytes".into()));
        }
        Ok(signed)
    }
}

fn decode_error(reason: String) -> EthError {
    EthError::Decode {
        step: "decode transaction",
        what: "raw transaction",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use channel_core::LocalSigner;

    fn tx(to: Option<Address>) -> Eip1559Tx {
        Eip1559Tx {
            chain_id: 31337,
            nonce: 7,
            max_priority_fee_per_gas: U256::from(1_000_000_000u64),
            max_fee_per_gas: U256::from(3_000_000_000u64),
            gas_limit: 120_000,
            to,
            value: U256::ZERO,
            input: vec![0xa9, 0x05, 0x9c, 0xbb, 0x00, 0x01],
        }
    }

    fn key(n: u8) -> LocalSigner {
        channel_core::testing::test_signer(n)
    }

    #[test]
    fn a_signed_transaction_decodes_back_and_recovers_to_its_signer() {
        for n in 1..=8u8 {
            let signer = key(n);
            for to in [Some(Address([0x42; 20])), None] {
                let unsigned = tx(to);
                let signed = unsigned.clone().sign(&signer).unwrap();
                assert_eq!(signed.raw()[0], TX_TYPE);
                assert_eq!(signed.hash(), keccak256(signed.raw()));
                let back = SignedTx::decode(signed.raw()).unwrap();
                assert_eq!(back, signed);
                assert_eq!(back.tx(), &unsigned);
                assert_eq!(back.recover_sender().unwrap(), signer.address());
            }
        }
    }

    /// Both parities occur over a few keys and nonces, and each recovers only with its own.
    #[test]
    fn y_parity_comes_from_the_signature() {
        let mut seen = [false; 2];
        for n in 0..16u64 {
            let signer = key(3);
            let signed = Eip1559Tx {
                nonce: n,
                ..tx(None)
            }
            .sign(&signer)
            .unwrap();
            seen[usize::from(signed.y_parity())] = true;
            let flipped =
                SignedTx::assemble(signed.tx().clone(), !signed.y_parity(), signed.r, signed.s);
            assert_ne!(flipped.recover_sender().ok(), Some(signer.address()));
        }
        assert_eq!(seen, [true, true]);
    }

    /// The encoding pinned byte for byte: the RLP of a small transaction laid out by hand.
    #[test]
    fn the_signing_payload_is_type_then_rlp_of_the_nine_fields() {
        let t = Eip1559Tx {
            chain_id: 1,
            nonce: 0,
            max_priority_fee_per_gas: U256::from(2u8),
            max_fee_per_gas: U256::from(0x0400u16),
            gas_limit: 21_000,
            to: Some(Address([0x11; 20])),
            value: U256::from(1u8),
            input: vec![],
        };
        let payload = hex::decode(format!(
            "02{}{}",
            "e1", // list of 33 bytes
            concat!(
                "01",     // chain id
                "80",     // nonce 0
                "02",     // priority fee
                "820400", // max fee
                "825208", // gas 21000
                "94",
                "1111111111111111111111111111111111111111",
                "01", // value
                "80", // data
                "c0"  // access list
            )
        ))
        .unwrap();
        assert_eq!(t.signing_hash(), keccak256(&payload));
    }

    #[test]
    fn broken_raw_bytes_are_refused() {
        let signed = tx(Some(Address([1; 20]))).sign(&key(1)).unwrap();
        let raw = signed.raw();
        let mut legacy = raw.to_vec();
        legacy[0] = 0x01;
        assert!(SignedTx::decode(&legacy).is_err());
        assert!(SignedTx::decode(&raw[..raw.len() - 1]).is_err());
        assert!(SignedTx::decode(&[]).is_err());
        let mut extra = raw.to_vec();
        extra.push(0);
        assert!(SignedTx::decode(&extra).is_err());
    }
}
