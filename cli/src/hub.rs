//! `info` and `health`: the hub's public facts (`Hub.GetInfo`) and its gRPC health
//! (`grpc.health.v1`, per `voltlane.v1` service). Neither needs a key.

use serde::Serialize;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use voltlane_proto::convert::{address, u256};

use crate::args::Global;
use crate::connect::HubConnection;
use crate::error::CliError;
use crate::output::{print, Render, Table};

/// The services the hub reports health for.
const SERVICES: &[&str] = &[
    "voltlane.v1.Hub",
    "voltlane.v1.Auth",
    "voltlane.v1.Ledger",
    "voltlane.v1.Channels",
    "voltlane.v1.Payments",
    "voltlane.v1.Mediation",
];

/// `Hub.GetInfo`, decoded.
#[derive(Debug, Serialize)]
pub struct InfoView {
    pub endpoint: String,
    pub hub_address: String,
    pub chain_id: String,
    pub token_network_address: String,
    pub settlement_timeout: u64,
    pub ledger_time: u64,
    pub dev_faucet: bool,
    pub mediation_fee_flat: String,
    pub mediation_fee_ppm: u32,
    pub reveal_timeout: u64,
    /// `null` when the hub's auto-deposit policy is off.
    pub auto_deposit: Option<String>,
}

impl Render for InfoView {
    fn table(&self) -> Table {
        Table::fields()
            .field("endpoint", &self.endpoint)
            .field("hub_address", &self.hub_address)
            .field("chain_id", &self.chain_id)
            .field("token_network_address", &self.token_network_address)
            .field(
                "settlement_timeout",
                format!("{} s", self.settlement_timeout),
            )
            .field("ledger_time", self.ledger_time)
            .field("dev_faucet", self.dev_faucet)
            .field("mediation_fee_flat", &self.mediation_fee_flat)
            .field("mediation_fee_ppm", self.mediation_fee_ppm)
            .field("reveal_timeout", format!("{} s", self.reveal_timeout))
            .field(
                "auto_deposit",
                self.auto_deposit.as_deref().unwrap_or("off"),
            )
    }
}

/// `voltlane info`.
pub async fn info(global: &Global) -> Result<(), CliError> {
    let hub = HubConnection::connect(global).await?;
    let i = hub.info();
    let fee_flat = if i.mediation_fee_flat.is_empty() {
        "0".to_string()
    } else {
        u256("mediation_fee_flat", &i.mediation_fee_flat)?.to_string()
    };
    let auto_deposit = if i.auto_deposit.is_empty() {
        None
    } else {
        Some(u256("auto_deposit", &i.auto_deposit)?.to_string())
    };
    let view = InfoView {
        endpoint: global.hub.clone(),
        hub_address: hub.hub_address().to_string(),
        chain_id: u256("chain_id", &i.chain_id)?.to_string(),
        token_network_address: address("token_network_address", &i.token_network_address)?
            .to_string(),
        settlement_timeout: i.settlement_timeout,
        ledger_time: i.ledger_time,
        dev_faucet: i.dev_faucet,
        mediation_fee_flat: fee_flat,
        mediation_fee_ppm: i.mediation_fee_ppm,
        reveal_timeout: i.reveal_timeout,
        auto_deposit,
    };
    print(&view, global.json)
}

/// One service's health.
#[derive(Debug, Serialize)]
pub struct ServiceHealth {
    pub service: String,
    /// `SERVING`, `NOT_SERVING`, `UNKNOWN` or `SERVICE_UNKNOWN`.
    pub status: String,
}

/// Every service's health.
#[derive(Debug, Serialize)]
pub struct HealthView {
    pub serving: bool,
    pub services: Vec<ServiceHealth>,
}

impl Render for HealthView {
    fn table(&self) -> Table {
        let mut t = Table::with_header(&["SERVICE", "STATUS"]);
        for s in &self.services {
            t.push(vec![s.service.clone(), s.status.clone()]);
        }
        t
    }
}

/// `voltlane health`: prints every service's status; a service not SERVING makes the hub
/// unavailable (exit 4).
pub async fn health(global: &Global) -> Result<(), CliError> {
    let hub = HubConnection::connect(global).await?;
    let mut client = HealthClient::new(hub.transport());
    let mut services = Vec::new();
    for name in SERVICES {
        let reply = client
            .check(HealthCheckRequest {
                service: name.to_string(),
            })
            .await
            .map_err(|s| CliError::status(&s))?
            .into_inner();
        let status = ServingStatus::try_from(reply.status).unwrap_or(ServingStatus::Unknown);
        services.push(ServiceHealth {
            service: name.to_string(),
            status: status.as_str_name().to_string(),
        });
    }
    let view = HealthView {
        serving: services.iter().all(|s| s.status == "SERVING"),
        services,
    };
    print(&view, global.json)?;
    if view.serving {
        Ok(())
    } else {
        let down: Vec<&str> = view
            .services
            .iter()
            .filter(|s| s.status != "SERVING")
            .map(|s| s.service.as_str())
            .collect();
        Err(CliError::Connection {
            code: tonic::Code::Unavailable,
            message: format!("not serving: {}", down.join(", ")),
        })
    }
}
