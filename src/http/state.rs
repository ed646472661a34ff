//! What every route handler can reach: handles only (each HTTP worker has its own, around its
//! own pool). Authentication is a service of its own (`auth::authenticator`), registered beside.

use crate::db::{WorkerPool, WorkerPools};
use crate::media::MediaPlane;
use crate::telemetry::metrics::Metrics;
use crate::twilio::urls::PublicUrl;
use std::sync::Arc;
use std::time::Duration;

pub struct AppState {
    /// This worker's own connections (see `db::worker_pool`).
    pub pool: Arc<WorkerPool>,
    pub public_url: PublicUrl,
    pub metrics: Arc<Metrics>,
    /// All the workers' pools, for the pool gauges.
    pub pools: Arc<WorkerPools>,
    /// How long a request body may take to arrive (`ROOMD_BODY_TIMEOUT`).
    pub body_timeout: Duration,
    /// The media plane, when one is attached.
    pub media: Option<Arc<MediaPlane>>,
}

/// `ROOMD_BODY_TIMEOUT`'s default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
