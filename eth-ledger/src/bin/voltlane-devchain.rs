//! `voltlane-devchain deploy`: deploys Raiden's CustomToken, SecretRegistry and TokenNetwork
//! (0.50, bytecode from `.devchain/contracts.json`) on a dev node such as anvil, funds dev
//! keys, and writes `deployment.json`. Used by `scripts/devchain.sh start`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use voltlane_eth::artifacts::{default_devchain_dir, Artifacts};
use voltlane_eth::{deploy, DeployParams};

#[derive(Debug, Parser)]
#[command(
    name = "voltlane-devchain",
    about = "Dev chain helper for Voltlane's Ethereum ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Deploy the contracts and write deployment.json.
    Deploy {
        #[arg(long, default_value = "http://127.0.0.1:8545")]
        rpc_url: String,
        /// contracts.json from the raiden-contracts 0.50 wheel.
        #[arg(long)]
        contracts: Option<PathBuf>,
        /// Where to write the deployment description.
        #[arg(long)]
        out: Option<PathBuf>,
        /// TokenNetwork settlement window, seconds.
        #[arg(long, default_value_t = 500)]
        settle_timeout: u64,
        /// Number of funded dev keys (the first deploys).
        #[arg(long, default_value_t = 4)]
        dev_keys: u8,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Deploy {
            rpc_url,
            contracts,
            out,
            settle_timeout,
            dev_keys,
        } => {
            let dir = default_devchain_dir();
            let contracts = contracts.unwrap_or_else(|| dir.join("contracts.json"));
            let out = out.unwrap_or_else(|| dir.join("deployment.json"));
            let params = DeployParams {
                settle_timeout,
                dev_keys,
                ..DeployParams::default()
            };
            let result = async {
                let artifacts = Artifacts::load(&contracts)?;
                let deployment = deploy(&rpc_url, &artifacts, &params).await?;
                deployment.write(&out)?;
                Ok::<_, voltlane_eth::EthError>(deployment)
            }
            .await;
            match result {
                Ok(d) => {
                    println!(
                        "deployed on chain {}: token {}, secret registry {}, token network {} -> {}",
                        d.chain_id,
                        d.token,
                        d.secret_registry,
                        d.token_network,
                        out.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("voltlane-devchain deploy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
