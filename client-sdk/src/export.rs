//! Export of the latest balance proofs both ways as JSON, with the reference doc's field names
//! (decimal strings for integers, `0x` hex for bytes), so a device or an auditor can take them
//! to any Raiden TokenNetwork v0.50 compatible ledger.

use channel_core::channel::Channel;
use channel_core::SignedBalanceProof;
use serde::Serialize;

use crate::error::ClientError;

/// One signed balance proof in the reference doc's vocabulary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedProof {
    pub token_network_address: String,
    pub chain_id: String,
    pub channel_identifier: String,
    pub nonce: String,
    pub transferred_amount: String,
    pub locked_amount: String,
    pub locksroot: String,
    pub additional_hash: String,
    pub balance_hash: String,
    pub signature: String,
    /// Address recovered from the signature.
    pub signer: String,
}

impl ExportedProof {
    pub fn new(p: &SignedBalanceProof) -> Result<Self, ClientError> {
        let proof = &p.proof;
        Ok(Self {
            token_network_address: proof.domain.token_network_address.to_string(),
            chain_id: proof.domain.chain_id.to_string(),
            channel_identifier: proof.channel_identifier.to_string(),
            nonce: proof.nonce.to_string(),
            transferred_amount: proof.balance.transferred_amount.to_string(),
            locked_amount: proof.balance.locked_amount.to_string(),
            locksroot: proof.balance.locksroot.to_string(),
            additional_hash: proof.additional_hash.to_string(),
            balance_hash: proof.balance.balance_hash().to_string(),
            signature: format!("0x{}", hex::encode(p.signature.as_bytes())),
            signer: p.signer()?.to_string(),
        })
    }
}

/// The latest proofs of one channel, both directions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedProofs {
    pub channel_identifier: String,
    pub device: String,
    pub hub: String,
    /// Latest proof the device signed (the hub uses it to close or update).
    pub device_to_hub: Option<ExportedProof>,
    /// Latest proof the hub signed (the device uses it to close or update).
    pub hub_to_device: Option<ExportedProof>,
}

impl ExportedProofs {
    pub fn new(channel: &Channel) -> Result<Self, ClientError> {
        Ok(Self {
            channel_identifier: channel.id().to_string(),
            device: channel.our_address().to_string(),
            hub: channel.partner_address().to_string(),
            device_to_hub: channel
                .our_latest_proof()
                .map(ExportedProof::new)
                .transpose()?,
            hub_to_device: channel
                .partner_latest_proof()
                .map(ExportedProof::new)
                .transpose()?,
        })
    }

    pub fn to_json(&self) -> Result<String, ClientError> {
        serde_json::to_string_pretty(self)
            .map_err(|e| ClientError::InvalidState(format!("cannot encode proofs: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use channel_core::primitives::{Address, U256};
    use channel_core::{Domain, LocalSigner, Signer, H256};

    use super::*;

    #[test]
    fn uses_the_reference_field_names_and_encodings() {
        let dev = LocalSigner::from_bytes(&[1; 32]).unwrap();
        let hub = LocalSigner::from_bytes(&[2; 32]).unwrap();
        let domain = Domain {
            chain_id: U256::from(337u64),
            token_network_address: Address([0xaa; 20]),
        };
        let mut ch = Channel::new(domain, U256::from(9u64), dev.address(), hub.address());
        ch.handle_ledger_deposit(dev.address(), U256::from(500u64))
            .unwrap();
        ch.send_payment(U256::from(123u64), H256::ZERO, &dev)
            .unwrap();

        let json = ExportedProofs::new(&ch).unwrap().to_json().unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let p = &v["device_to_hub"];
        let mut keys: Vec<_> = p.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "additional_hash",
                "balance_hash",
                "chain_id",
                "channel_identifier",
                "locked_amount",
                "locksroot",
                "nonce",
                "signature",
                "signer",
                "token_network_address",
                "transferred_amount",
            ]
        );
        assert_eq!(p["chain_id"], "337");
        assert_eq!(p["channel_identifier"], "9");
        assert_eq!(p["nonce"], "1");
        assert_eq!(p["transferred_amount"], "123");
        assert_eq!(p["locked_amount"], "0");
        assert_eq!(p["signer"], dev.address().to_string());
        assert_eq!(p["token_network_address"], Address([0xaa; 20]).to_string());
        let sig = p["signature"].as_str().unwrap();
        assert!(sig.starts_with("0x") && sig.len() == 2 + 130);
        let bh = p["balance_hash"].as_str().unwrap();
        assert!(bh.starts_with("0x") && bh.len() == 66);
        assert_eq!(
            bh,
            ch.our_latest_proof()
                .unwrap()
                .proof
                .balance
                .balance_hash()
                .to_string()
        );
        assert!(v["hub_to_device"].is_null());
    }
}
