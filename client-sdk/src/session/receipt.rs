//! A session receipt as JSON, for export and offline verification.

use channel_core::session::SignedSessionReceipt;

use crate::error::ClientError;

/// The receipt as pretty JSON (amounts as decimal strings, hashes and signatures as hex).
pub fn receipt_json(receipt: &SignedSessionReceipt) -> Result<String, ClientError> {
    serde_json::to_string_pretty(receipt)
        .map_err(|e| ClientError::InvalidState(format!("receipt does not encode: {e}")))
}

/// Parses a receipt exported by [`receipt_json`] and verifies it offline: the totals agree
/// with the price, and the payer and the payee it names both signed exactly it.
pub fn verify_receipt_json(json: &str) -> Result<SignedSessionReceipt, ClientError> {
    let receipt: SignedSessionReceipt = serde_json::from_str(json)
        .map_err(|e| ClientError::InvalidState(format!("not a session receipt: {e}")))?;
    receipt.verify()?;
    Ok(receipt)
}
