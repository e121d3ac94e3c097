//! `verify-receipt <file>`: checks a metered session's receipt offline, as the SDK's
//! `receipt_json` writes it. Valid when the totals agree with the price and the payer and the
//! payee it names both signed exactly it (`voltlane_client::session::verify_receipt_json`);
//! prints what the receipt says. An unreadable or invalid receipt is a local failure (exit 1)
//! whose message names the file and the problem. Needs no hub.

use std::path::Path;

use serde::Serialize;
use voltlane_client::session::{verify_receipt_json, SignedSessionReceipt};

use crate::error::CliError;
use crate::output::{print, Render, Table};

/// What a valid receipt says.
#[derive(Debug, Serialize)]
pub struct VerifiedReceipt {
    pub valid: bool,
    pub session_id: String,
    pub payer: String,
    pub payee: String,
    pub unit: String,
    pub price_per_unit: String,
    pub units: u64,
    pub total_paid: String,
    pub first_reading_hash: String,
    pub last_reading_hash: String,
}

impl From<&SignedSessionReceipt> for VerifiedReceipt {
    fn from(s: &SignedSessionReceipt) -> Self {
        let r = &s.receipt;
        Self {
            valid: true,
            session_id: r.session_id.to_string(),
            payer: r.payer.to_string(),
            payee: r.payee.to_string(),
            unit: format!("{:?}", r.unit),
            price_per_unit: r.price_per_unit.to_string(),
            units: r.total_units,
            total_paid: r.total_paid.to_string(),
            first_reading_hash: r.first_reading_hash.to_string(),
            last_reading_hash: r.last_reading_hash.to_string(),
        }
    }
}

impl Render for VerifiedReceipt {
    fn table(&self) -> Table {
        Table::fields()
            .field("valid", "yes: signed by the payer and the payee")
            .field("session_id", &self.session_id)
            .field("payer", &self.payer)
            .field("payee", &self.payee)
            .field("unit", &self.unit)
            .field("price_per_unit", &self.price_per_unit)
            .field("units", self.units)
            .field("total_paid", &self.total_paid)
            .field("first_reading", &self.first_reading_hash)
            .field("last_reading", &self.last_reading_hash)
    }
}

/// Reads the receipt at `path` and verifies it.
pub fn check(path: &Path) -> Result<VerifiedReceipt, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Local(format!("cannot read {}: {e}", path.display())))?;
    let receipt = verify_receipt_json(&text)
        .map_err(|e| CliError::Local(format!("{} is not a valid receipt: {e}", path.display())))?;
    Ok(VerifiedReceipt::from(&receipt))
}

/// `verify-receipt <file>`.
pub fn verify(path: &Path, json: bool) -> Result<(), CliError> {
    print(&check(path)?, json)
}

#[cfg(test)]
mod tests {
    use channel_core::primitives::{Address, H256, U256};
    use channel_core::session::{MeterUnit, SessionReceipt};
    use channel_core::Domain;
    use channel_core::{LocalSigner, Signer};
    use voltlane_client::session::receipt_json;

    use super::*;
    use crate::error::EXIT_LOCAL;

    fn signed() -> SignedSessionReceipt {
        let payer = LocalSigner::from_bytes(&[0x21; 32]).unwrap();
        let payee = LocalSigner::from_bytes(&[0x42; 32]).unwrap();
        let receipt = SessionReceipt {
            domain: Domain {
                chain_id: U256::from(337u32),
                token_network_address: Address([0x0b; 20]),
            },
            session_id: H256([7; 32]),
            payer: payer.address(),
            payee: payee.address(),
            unit: MeterUnit::WattHour,
            price_per_unit: U256::from(3u8),
            total_units: 25,
            total_paid: U256::from(75u8),
            first_reading_hash: H256([1; 32]),
            last_reading_hash: H256([2; 32]),
        };
        SignedSessionReceipt {
            receipt,
            payer_signature: receipt.sign_part(&payer).unwrap(),
            payee_signature: receipt.sign_part(&payee).unwrap(),
        }
    }

    #[test]
    fn a_valid_receipt_passes_and_shows_its_figures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.json");
        let s = signed();
        std::fs::write(&path, receipt_json(&s).unwrap()).unwrap();
        let v = check(&path).unwrap();
        assert!(v.valid);
        assert_eq!(v.session_id, H256([7; 32]).to_string());
        assert_eq!(v.payer, s.receipt.payer.to_string());
        assert_eq!(v.payee, s.receipt.payee.to_string());
        assert_eq!((v.units, v.total_paid.as_str()), (25, "75"));
        assert_eq!(v.unit, "WattHour");
        let table = v.table().render();
        assert!(table.contains("total_paid      75\n"), "{table}");
    }

    #[test]
    fn a_tampered_or_unreadable_receipt_fails_with_exit_1_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("receipt.json");
        let json = receipt_json(&signed()).unwrap();

        // More units for the same money: the price no longer adds up.
        std::fs::write(
            &path,
            json.replace("\"total_units\": 25", "\"total_units\": 26"),
        )
        .unwrap();
        let e = check(&path).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_LOCAL);
        assert!(e.to_string().contains("total_paid"), "{e}");

        // Units and money raised together: the signatures no longer cover it.
        let raised = json
            .replace("\"total_units\": 25", "\"total_units\": 30")
            .replace("\"total_paid\": \"75\"", "\"total_paid\": \"90\"");
        assert_ne!(raised, json);
        std::fs::write(&path, raised).unwrap();
        let e = check(&path).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_LOCAL);
        assert!(e.to_string().contains("signature of the payer"), "{e}");

        std::fs::write(&path, "{\"receipt\": 1}").unwrap();
        let e = check(&path).unwrap_err();
        assert!(e.to_string().contains("not a session receipt"), "{e}");

        let e = check(&dir.path().join("missing.json")).unwrap_err();
        assert_eq!(e.exit_code(), EXIT_LOCAL);
        assert!(e.to_string().contains("cannot read"), "{e}");
    }
}
