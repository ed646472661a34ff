//! What every request handler can reach, in a module of its own so that the extractors
//! (`auth`, `routes`) and the server (`startup`) depend on it rather than on each other.

use crate::auth::AuthCache;
use crate::caller::SigningKeys;
use crate::db::{WorkerPool, WorkerPools};
use crate::metrics::Metrics;
use crate::twilio::urls::PublicUrl;
use std::sync::Arc;
use std::time::Duration;

/// What every request handler can reach. Each HTTP worker has its own, around its own pool.
pub struct AppState {
    /// This worker's own connections (see `db::worker_pool`).
    pub pool: Arc<WorkerPool>,
    pub auth: Arc<AuthCache>,
    /// API keys' unsealed secrets, for Access Tokens.
    pub signing_keys: Arc<SigningKeys>,
    pub public_url: PublicUrl,
    pub metrics: Arc<Metrics>,
    /// All the workers' pools, for the pool gauges.
    pub pools: Arc<WorkerPools>,
    /// How long a request body may take to arrive (`ROOMD_BODY_TIMEOUT`).
    pub body_timeout: Duration,
    /// Which accounts run on a test clock.
    pub clocks: Arc<crate::clock::TestClocks>,
}

/// `ROOMD_BODY_TIMEOUT`'s default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
