//! The live dashboard, served beside `/metrics` on the `--metrics-listen` address:
//!
//! - `GET /dashboard`: one self-contained HTML page ([`PAGE`]: inline CSS, JavaScript and an
//!   SVG chart, no external URL) that polls the JSON below once a second;
//! - `GET /dashboard/state`: the hub's state as JSON ([`state::DashboardState`]), read at
//!   request time from the same [`StateSource`] a scrape reads, plus the payment rate kept by
//!   [`rate`].
//!
//! - [`rate`]: payments per second over the last minutes, sampled from the metrics counter.
//! - [`state`]: the JSON model and how it is read from the ledger, the channel book and the
//!   session relay.
//!
//! The dashboard only reads: no route changes any state.

pub mod rate;
pub mod state;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub use rate::{sample_payments, RateHistory};

use crate::error::HubError;
use crate::metrics::{Metrics, StateSource};

/// The page, with its CSS and JavaScript inline.
pub const PAGE: &str = include_str!("page.html");

/// What the dashboard routes read.
#[derive(Clone, Debug)]
pub struct Dashboard {
    pub metrics: Metrics,
    pub source: StateSource,
    pub rate: Arc<RateHistory>,
}

/// Why the dashboard could not answer.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot read the hub's state: {0}")]
    Hub(#[from] HubError),
    #[error("channel {id}: cannot compute its balances: {source}")]
    Balance {
        id: channel_core::U256,
        source: channel_core::channel::ChannelError,
    },
    #[error("the payment rate history is unavailable (its lock was poisoned)")]
    RateUnavailable,
    #[error("cannot encode the state as JSON: {0}")]
    Encode(#[from] serde_json::Error),
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        tracing::warn!(error = %self, "dashboard state unavailable");
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

/// The dashboard's routes, with their state applied.
pub fn router(dashboard: Dashboard) -> Router {
    Router::new()
        .route("/dashboard", get(page))
        .route("/dashboard/state", get(current_state))
        .with_state(dashboard)
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

async fn current_state(State(d): State<Dashboard>) -> Result<Response, DashboardError> {
    let state = state::collect(&d.source, &d.metrics, &d.rate).await?;
    let body = serde_json::to_string(&state)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}
