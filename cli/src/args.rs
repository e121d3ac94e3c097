//! The command line: global flags, the commands, and the parsers of their values (token
//! amounts, channel ids, channel-or-address references). clap turns a bad value into a usage
//! error (exit 2) that names the argument.

use std::path::PathBuf;

use channel_core::primitives::{u256_from_dec, Address, U256};
use clap::{Args, Parser, Subcommand};

/// Default hub endpoint.
pub const DEFAULT_HUB: &str = "http://127.0.0.1:50051";

/// `voltlane`: operate a Voltlane hub and act as a device from the command line.
#[derive(Debug, Parser)]
#[command(
    name = "voltlane",
    version,
    about = "Voltlane hub and device command line"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// The hub's gRPC endpoint (`http://` or, with `--ca-cert`, `https://`).
    #[arg(long, global = true, env = "VOLTLANE_HUB", default_value = DEFAULT_HUB)]
    pub hub: String,
    /// CA certificate (PEM) that signed the hub's TLS certificate; needed for `https://`.
    #[arg(long, global = true, env = "VOLTLANE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Key file (hex secp256k1 secret, as the hub's `operator.key`): the device's key, or the
    /// operator's for `deposit`.
    #[arg(long, global = true, env = "VOLTLANE_KEY_FILE")]
    pub key: Option<PathBuf>,
    /// Device store directory (sled) of the device commands; holds the key when `--key` is
    /// not given.
    #[arg(long, global = true, env = "VOLTLANE_STORE")]
    pub store: Option<PathBuf>,
    /// Print JSON (stable field names, amounts as decimal strings) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Deadline of each call to the hub, and of the whole command, seconds (exit 4 past it);
    /// `settle` waits the settlement window on top.
    #[arg(long, global = true, env = "VOLTLANE_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_secs: u64,
}

impl Global {
    /// `--timeout-secs` as a duration.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The hub's public facts: address, chain id, token network, settlement window, fees.
    Info,
    /// The hub's gRPC health, per service (exit 4 unless every service is SERVING).
    Health,
    /// The hub's channels.
    #[command(subcommand)]
    Channels(ChannelsCommand),
    /// The embedded ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Operator: deposit the hub's own tokens into one of its channels (needs the operator's
    /// `--key`).
    Deposit(DepositArgs),
    /// Authenticate with the key and print the address.
    Login,
    /// Device: mint test tokens to the device from the hub's dev faucet.
    Mint {
        /// Token units (a decimal integer).
        #[arg(value_parser = parse_amount)]
        amount: U256,
    },
    /// Device: open a channel with the hub (or reuse the open one) holding at least this
    /// cumulative deposit of the device's tokens.
    Open {
        /// Token units (a decimal integer).
        #[arg(value_parser = parse_amount)]
        deposit: U256,
    },
    /// Device: pay the hub; returns once the hub acknowledged the payment.
    Pay {
        /// Token units (a decimal integer).
        #[arg(value_parser = parse_amount)]
        amount: U256,
    },
    /// Device: close the channel, cooperatively (settled at once) unless `--unilateral`.
    Close {
        /// Close on the ledger with the hub's latest proof, without the hub; `settle` after
        /// the settlement window.
        #[arg(long)]
        unilateral: bool,
    },
    /// Device: wait for the settlement window of a closed channel to pass, then settle.
    Settle,
    /// Device: the latest balance proofs both ways (Raiden v0.50 field names).
    ExportProofs,
    /// Key files at rest, offline: create a key, encrypt a plain key file into a keystore
    /// v3 file, print a key file's address. Needs no hub.
    #[command(subcommand)]
    Key(crate::key::KeyCommand),
    /// Check a metered session's receipt (the JSON file the SDK exports) offline: both
    /// signatures and units x price = total paid; exit 1 if it is not valid. Needs no hub.
    VerifyReceipt {
        /// The receipt JSON file.
        file: PathBuf,
    },
}

/// `channels ...`.
#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// The hub's channels on the ledger (every phase), or those of `--participant`.
    List {
        /// Only the channels of this address with the hub.
        #[arg(long)]
        participant: Option<Address>,
    },
    /// The hub's off-chain view of one channel (balances, nonces); the caller's `--key` (or
    /// `--store`) must be the channel's device.
    Show {
        /// A channel id (decimal or 0x hex) or a device address (its open channel).
        channel: ChannelRef,
    },
}

/// `ledger ...`.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// The ledger's record of one channel: participants, deposits, withdraws, submitted proofs.
    Show {
        /// Channel id (decimal or 0x hex).
        #[arg(value_parser = parse_channel_id)]
        channel_id: U256,
    },
}

/// `deposit <channel> <amount> [--total]`.
#[derive(Debug, Args)]
pub struct DepositArgs {
    /// Channel id (decimal or 0x hex).
    #[arg(value_parser = parse_channel_id)]
    pub channel_id: U256,
    /// Token units to add to the hub's deposit (a decimal integer).
    #[arg(value_parser = parse_amount)]
    pub amount: U256,
    /// Take the amount as the hub's new cumulative deposit instead of an addition.
    #[arg(long)]
    pub total: bool,
}

/// A channel named by its id or by the device whose channel it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRef {
    Id(U256),
    Device(Address),
}

impl std::str::FromStr for ChannelRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let is_address = s.len() == 42 && (s.starts_with("0x") || s.starts_with("0X"));
        if is_address {
            return s
                .parse::<Address>()
                .map(ChannelRef::Device)
                .map_err(|e| format!("{s:?} is not an address: {e}"));
        }
        parse_channel_id(s).map(ChannelRef::Id)
    }
}

/// A token amount: decimal digits only, at most 2^256 - 1.
pub fn parse_amount(s: &str) -> Result<U256, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{s:?} is not a whole number of token units (decimal digits only)"
        ));
    }
    u256_from_dec(s).map_err(|_| format!("{s} does not fit in 256 bits"))
}

/// A channel id: decimal digits, or `0x` and up to 64 hex digits.
pub fn parse_channel_id(s: &str) -> Result<U256, String> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{s:?} is not a channel id (0x and 1 to 64 hex digits)"
            ));
        }
        return U256::from_str_radix(hex, 16).map_err(|e| format!("{s:?}: {e}"));
    }
    parse_amount(s).map_err(|_| format!("{s:?} is not a channel id (decimal or 0x hex)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_ids_parse_strictly() {
        assert_eq!(parse_amount("250"), Ok(U256::from(250u32)));
        for bad in ["", "-1", "1e3", "1.5", "0x10", " 7"] {
            assert!(parse_amount(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_channel_id("0x1f"), Ok(U256::from(31u32)));
        assert_eq!(parse_channel_id("31"), Ok(U256::from(31u32)));
        assert!(parse_channel_id("0x").is_err());
        assert!(parse_channel_id("0xg1").is_err());
        assert!(parse_channel_id("abc").is_err());
    }

    #[test]
    fn a_channel_ref_is_an_address_only_with_40_hex_digits() {
        let addr = "0x00000000000000000000000000000000000000aa";
        assert_eq!(
            addr.parse::<ChannelRef>(),
            Ok(ChannelRef::Device(addr.parse().unwrap_or_default()))
        );
        assert_eq!(
            "0x2a".parse::<ChannelRef>(),
            Ok(ChannelRef::Id(U256::from(42u8)))
        );
        assert!("0x00000000000000000000000000000000000000zz"
            .parse::<ChannelRef>()
            .is_err());
    }

    #[test]
    fn global_flags_go_after_the_command_too() {
        let cli = Cli::try_parse_from(["voltlane", "pay", "5", "--json", "--store", "/tmp/s"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(cli.global.json);
        assert!(matches!(cli.command, Command::Pay { amount } if amount == U256::from(5u8)));
        assert!(Cli::try_parse_from(["voltlane", "pay", "-5"]).is_err());
        assert!(Cli::try_parse_from(["voltlane", "channels", "show", "nope"]).is_err());
    }
}
