//! The driver-side sources the sans-I/O core never touches: wall-clock time and OS randomness.

use rand::rngs::OsRng;
use rand::RngCore;

use crate::error::HubError;

/// Wall-clock unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], HubError> {
    let mut buf = [0u8; N];
    OsRng
        .try_fill_bytes(&mut buf)
        .map_err(|e| HubError::Entropy(e.to_string()))?;
    Ok(buf)
}
