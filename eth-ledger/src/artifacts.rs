//! The compiled contracts as shipped in the `raiden-contracts` 0.50 wheel
//! (`data/contracts.json`, fetched by `scripts/devchain.sh install`): each contract's ABI and
//! creation bytecode, read at run time. Nothing of it is compiled into this crate.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::EthError;

/// The contracts this crate deploys or checks its bindings against.
pub const CONTRACT_NAMES: [&str; 3] = ["CustomToken", "SecretRegistry", "TokenNetwork"];

/// One contract's ABI (JSON) and creation bytecode.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub abi: Vec<Value>,
    pub bytecode: Vec<u8>,
}

/// CustomToken, SecretRegistry and TokenNetwork from one `contracts.json`.
#[derive(Clone, Debug)]
pub struct Artifacts {
    pub custom_token: Artifact,
    pub secret_registry: Artifact,
    pub token_network: Artifact,
}

impl Artifacts {
    /// Reads `contracts.json`.
    pub fn load(path: &Path) -> Result<Self, EthError> {
        let text = std::fs::read_to_string(path).map_err(|source| EthError::Io {
            what: "reading contracts",
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses the text of `contracts.json`.
    pub fn parse(text: &str) -> Result<Self, EthError> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| EthError::Artifacts(format!("not JSON: {e}")))?;
        let one = |name: &str| -> Result<Artifact, EthError> {
            let entry = doc
                .get("contracts")
                .and_then(|c| c.get(name))
                .ok_or_else(|| EthError::Artifacts(format!("no contract {name}")))?;
            let abi = entry
                .get("abi")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| EthError::Artifacts(format!("{name} has no abi array")))?;
            let bin = entry
                .get("bin")
                .and_then(Value::as_str)
                .ok_or_else(|| EthError::Artifacts(format!("{name} has no bin")))?;
            let bytecode = hex::decode(bin.trim_start_matches("0x"))
                .map_err(|e| EthError::Artifacts(format!("{name} bin is not hex: {e}")))?;
            if bytecode.is_empty() {
                return Err(EthError::Artifacts(format!("{name} bin is empty")));
            }
            Ok(Artifact { abi, bytecode })
        };
        Ok(Self {
            custom_token: one(CONTRACT_NAMES[0])?,
            secret_registry: one(CONTRACT_NAMES[1])?,
            token_network: one(CONTRACT_NAMES[2])?,
        })
    }

    pub fn get(&self, name: &str) -> Option<&Artifact> {
        match name {
            "CustomToken" => Some(&self.custom_token),
            "SecretRegistry" => Some(&self.secret_registry),
            "TokenNetwork" => Some(&self.token_network),
            _ => None,
        }
    }
}

/// `.devchain/` of the workspace that contains this crate (where the script installs).
pub fn default_devchain_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join(".devchain"))
        .unwrap_or_else(|| PathBuf::from(".devchain"))
}
