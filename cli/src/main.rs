//! `voltlane`: the command line of a Voltlane hub's operator and of a device.
//!
//! Parses the command line ([`args`]), runs one command against the hub and prints its
//! result as a table or, with `--json`, as JSON ([`output`]). Exit codes: 0 ok, 2 usage
//! error, 3 rejected by the hub, 4 hub unreachable, 1 a local failure ([`error`]). Errors go
//! to stderr as `error: <STATUS_CODE>: <reason>`.
//!
//! Command groups: [`hub`] (`info`, `health`), [`channels`] (`channels list|show`, the
//! operator's `deposit`), [`ledger`] (`ledger show`), [`device`] (`login`, `mint`, `open`,
//! `pay`, `close`, `settle`, `export-proofs` through the device SDK), [`receipt`]
//! (`verify-receipt`, offline) and [`key`] (`key new|encrypt|address`, offline).
//!
//! What this binary does not do: no protocol rules of its own (they live in `channel-core`
//! and the SDK), no mediated payments or payment requests, no withdraws, no metered sessions (it only
//! verifies their receipts).

mod args;
mod channels;
mod connect;
mod device;
mod error;
mod hub;
mod key;
mod ledger;
mod output;
mod receipt;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{ChannelsCommand, Cli, Command, LedgerCommand};
use crate::error::CliError;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `settle` waits out the settlement window and bounds itself once it knows it.
    let result = if matches!(cli.command, Command::Settle) {
        run(cli).await
    } else {
        let limit = cli.global.timeout();
        tokio::time::timeout(limit, run(cli))
            .await
            .unwrap_or_else(|_| Err(CliError::timed_out(limit)))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Info => hub::info(global).await,
        Command::Health => hub::health(global).await,
        Command::Channels(ChannelsCommand::List { participant }) => {
            channels::list(global, participant).await
        }
        Command::Channels(ChannelsCommand::Show { channel }) => {
            channels::show(global, channel).await
        }
        Command::Ledger(LedgerCommand::Show { channel_id }) => {
            ledger::show(global, channel_id).await
        }
        Command::Deposit(args) => channels::deposit(global, &args).await,
        Command::Login => device::login(global).await,
        Command::Mint { amount } => device::mint(global, amount).await,
        Command::Open { deposit } => device::open(global, deposit).await,
        Command::Pay { amount } => device::pay(global, amount).await,
        Command::Close { unilateral } => device::close(global, unilateral).await,
        Command::Settle => device::settle(global).await,
        Command::ExportProofs => device::export_proofs(global).await,
        Command::VerifyReceipt { file } => receipt::verify(&file, global.json),
        Command::Key(command) => key::run(&command, global.json),
    }
}
