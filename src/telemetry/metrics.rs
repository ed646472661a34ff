//! Prometheus metrics, in a registry per application (so several apps in one test process do not
//! mix). Route labels are route templates (`/v1/Rooms/{room}`), never raw paths, so label sets
//! stay bounded.

use crate::db::{WorkerPool, WorkerPools};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::time::{Duration, Instant};

pub use crate::db::participants::EndReason;

/// How a join ended, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined,
    /// A newer join took over a connected identity.
    Replaced,
    RoomFull,
    RoomCompleted,
    /// Not found, not granted, bad identity: any other refusal.
    Refused,
}

impl JoinOutcome {
    pub const ALL: [JoinOutcome; 5] = [
        JoinOutcome::Joined,
        JoinOutcome::Replaced,
        JoinOutcome::RoomFull,
        JoinOutcome::RoomCompleted,
        JoinOutcome::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JoinOutcome::Joined => "joined",
            JoinOutcome::Replaced => "replaced",
            JoinOutcome::RoomFull => "room_full",
            JoinOutcome::RoomCompleted => "room_completed",
            JoinOutcome::Refused => "refused",
        }
    }
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub rooms_created: IntCounter,
    pub rooms_ended: IntCounterVec,
    rooms_in_progress: IntGauge,
    participants_connected: IntGauge,
    tracks_published_now: IntGauge,
    pub tracks_published: IntCounterVec,
    pub participant_joins: IntCounterVec,
    pub participants_disconnected: IntCounterVec,
    pub sweeper_batches: IntCounter,
    pub sweeper_batch_duration: Histogram,
    /// Rooms the sweeper could not act on in a pass (`what`: `participants` or `rooms`).
    pub sweeper_failures: IntCounterVec,
    /// Requests refused by a per-account limit (`limit`: `requests`, `client_room_creation`).
    pub account_limits_hit: IntCounterVec,
    /// Status callbacks answered 2xx.
    pub callbacks_delivered: IntCounter,
    /// Attempts that failed and will be tried again.
    pub callbacks_retried: IntCounter,
    /// Events given up, by reason (`attempts`: out of attempts; `denied`: a refused destination).
    pub callbacks_failed: IntCounterVec,
    /// From the event's commit to its delivery.
    pub callback_lag: Histogram,
    /// Recording segments converted (`completed`) and given up (`failed`) by this process.
    pub recordings_completed: IntCounter,
    pub recordings_failed: IntCounter,
    /// Bytes free in the media directory, and bytes of completed recordings (all accounts).
    pub media_dir_free_bytes: IntGauge,
    pub recordings_stored_bytes: IntGauge,
    /// Compositions made (`completed`) and given up (`failed`) by this process; bytes of
    /// completed compositions (all accounts).
    pub compositions_completed: IntCounter,
    pub compositions_failed: IntCounter,
    pub compositions_stored_bytes: IntGauge,
    pub auth_cache_hits: IntCounter,
    pub auth_cache_misses: IntCounter,
    pub argon2_verifications: IntCounter,
    pool_in_use: IntGauge,
    pool_idle: IntGauge,
    /// When `rooms_in_progress` was last counted: at most every `GAUGE_REFRESH`, however many
    /// scrapers there are (the count scans the in-progress index).
    counted_at: tokio::sync::Mutex<Option<Instant>>,
}

/// How long a database-wide gauge is served from its last reading.
pub const GAUGE_REFRESH: Duration = Duration::from_secs(5);

/// Makes the metrics of one registry (names are unique: a clash is a bug, found by any test).
struct Registrar(Registry);

impl Registrar {
    fn add<T: prometheus::core::Collector + Clone + 'static>(&self, metric: T) -> T {
        self.0
            .register(Box::new(metric.clone()))
            .expect("metric names are unique");
        metric
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help).expect("a valid counter"))
    }

    fn counters(&self, name: &str, help: &str, label: &str) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid counter"))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help).expect("a valid gauge"))
    }

    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(Histogram::with_opts(opts).expect("a valid histogram"))
    }
}

/// Request and batch latencies, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// From an event's commit to its delivery, in seconds (retries reach minutes).
const LAG_BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];
/// What the database gauges count: every account's rows, so the same on every replica.
const ALL_ACCOUNTS: &str = "(all accounts; the same on every replica)";

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registrar(Registry::new());
        Metrics {
            http_requests: r.add(
                IntCounterVec::new(
                    Opts::new(
                        "roomd_http_requests_total",
                        "HTTP requests answered, by method, route template and status",
                    ),
                    &["method", "route", "status"],
                )
                .expect("a valid counter"),
            ),
            http_duration: r.add(
                HistogramVec::new(
                    HistogramOpts::new(
                        "roomd_http_request_duration_seconds",
                        "HTTP request latency by route template",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route"],
                )
                .expect("a valid histogram"),
            ),
            rooms_created: r.counter("roomd_rooms_created_total", "Rooms created by this process"),
            rooms_ended: r.counters(
                "roomd_rooms_ended_total",
                "Rooms ended by this process, by reason",
                "reason",
            ),
            rooms_in_progress: r.gauge(
                "roomd_rooms_in_progress",
                &format!("Rooms in progress in the database {ALL_ACCOUNTS}"),
            ),
            participants_connected: r.gauge(
                "roomd_participants_connected",
                &format!("Participants connected in the database {ALL_ACCOUNTS}"),
            ),
            tracks_published_now: r.gauge(
                "roomd_tracks_published",
                &format!("Tracks published in the database {ALL_ACCOUNTS}"),
            ),
            tracks_published: r.counters(
                "roomd_tracks_published_total",
                "Tracks published through this process, by kind",
                "kind",
            ),
            participant_joins: r.counters(
                "roomd_participant_joins_total",
                "Joins answered by this process, by outcome",
                "outcome",
            ),
            participants_disconnected: r.counters(
                "roomd_participants_disconnected_total",
                "Participants disconnected by this process, by reason",
                "reason",
            ),
            sweeper_batches: r.counter("roomd_sweeper_batches_total", "Sweeper batches run"),
            account_limits_hit: r.counters(
                "roomd_account_limits_hit_total",
                "Requests refused by a per-account limit",
                "limit",
            ),
            sweeper_failures: r.counters(
                "roomd_sweeper_failures_total",
                "Rooms the sweeper could not act on in a pass (tried again the next)",
                "what",
            ),
            sweeper_batch_duration: r.histogram(
                "roomd_sweeper_batch_duration_seconds",
                "Duration of one sweeper batch",
                &LATENCY_BUCKETS,
            ),
            recordings_completed: r.counter(
                "roomd_recordings_completed_total",
                "Recording segments converted by this process",
            ),
            recordings_failed: r.counter(
                "roomd_recordings_failed_total",
                "Recording segments this process gave up converting",
            ),
            media_dir_free_bytes: r.gauge(
                "roomd_media_dir_free_bytes",
                "Bytes free for roomd on the media directory's file system",
            ),
            recordings_stored_bytes: r.gauge(
                "roomd_recordings_stored_bytes",
                "Bytes of completed recordings (all accounts; the same on every replica)",
            ),
            compositions_completed: r.counter(
                "roomd_compositions_completed_total",
                "Compositions made by this process",
            ),
            compositions_failed: r.counter(
                "roomd_compositions_failed_total",
                "Compositions this process gave up making",
            ),
            compositions_stored_bytes: r.gauge(
                "roomd_compositions_stored_bytes",
                "Bytes of completed compositions (all accounts; the same on every replica)",
            ),
            callbacks_delivered: r.counter(
                "roomd_callbacks_delivered_total",
                "Status callbacks delivered (answered 2xx) by this process",
            ),
            callbacks_retried: r.counter(
                "roomd_callbacks_retried_total",
                "Status callback attempts that failed and will be tried again",
            ),
            callbacks_failed: r.counters(
                "roomd_callbacks_failed_total",
                "Status callbacks given up, by reason (attempts, denied)",
                "reason",
            ),
            callback_lag: r.histogram(
                "roomd_callback_lag_seconds",
                "From a status callback event's commit to its delivery",
                &LAG_BUCKETS,
            ),
            auth_cache_hits: r.counter(
                "roomd_auth_cache_hits_total",
                "Credentials found in the verification cache",
            ),
            auth_cache_misses: r.counter(
                "roomd_auth_cache_misses_total",
                "Credentials not in the verification cache",
            ),
            argon2_verifications: r.counter(
                "roomd_argon2_verifications_total",
                "argon2 verifications run",
            ),
            pool_in_use: r.gauge(
                "roomd_db_pool_connections_in_use",
                "Database connections in use",
            ),
            pool_idle: r.gauge(
                "roomd_db_pool_connections_idle",
                "Idle database connections",
            ),
            registry: r.0,
            counted_at: tokio::sync::Mutex::new(None),
        }
        .with_known_labels()
    }

    /// Makes every labelled series visible at 0 from the start.
    fn with_known_labels(self) -> Self {
        for reason in ["rest", "unused_timeout", "empty_timeout"] {
            self.rooms_ended.with_label_values(&[reason]);
        }
        for outcome in JoinOutcome::ALL {
            self.participant_joins
                .with_label_values(&[outcome.as_str()]);
        }
        for kind in crate::domain::track::TrackKind::ALL {
            self.tracks_published.with_label_values(&[kind.as_str()]);
        }
        for reason in EndReason::ALL {
            self.participants_disconnected
                .with_label_values(&[reason.as_str()]);
        }
        self
    }

    /// Counts `n` participants disconnected for `reason`.
    pub fn participants_disconnected(&self, reason: EndReason, n: usize) {
        if n > 0 {
            self.participants_disconnected
                .with_label_values(&[reason.as_str()])
                .inc_by(n as u64);
        }
    }

    /// Counts a track published.
    pub fn track_published(&self, kind: crate::domain::track::TrackKind) {
        self.tracks_published
            .with_label_values(&[kind.as_str()])
            .inc();
    }

    /// Counts a join's outcome.
    pub fn joined(&self, outcome: JoinOutcome) {
        self.participant_joins
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    /// Counts a room ended for `reason` (`rest`, `unused_timeout`, `empty_timeout`).
    pub fn room_ended(&self, reason: &str) {
        self.rooms_ended.with_label_values(&[reason]).inc();
    }

    /// The text exposition, with the gauges that are read at scrape time brought up to date:
    /// the serving pools' usage, and the rooms in progress counted through `pool` (at most every
    /// `GAUGE_REFRESH`).
    pub async fn render(&self, pool: &WorkerPool, pools: &WorkerPools) -> String {
        let (size, idle) = pools.usage();
        self.pool_idle.set(idle as i64);
        self.pool_in_use.set(i64::from(size) - idle as i64);
        // One scraper counts; the others wait for it and use its reading.
        let mut counted_at = self.counted_at.lock().await;
        if counted_at.is_none_or(|t| t.elapsed() >= GAUGE_REFRESH) {
            // One scan of the in-progress rooms: each carries its connected count.
            let count = pool
                .run(async |c| {
                    sqlx::query_as::<_, (i64, i64, i64)>(
                        "SELECT count(*), COALESCE(sum(participants_connected), 0)::bigint, \
                            COALESCE(sum(tracks_published), 0)::bigint \
                         FROM rooms WHERE status = 'in-progress'",
                    )
                    .fetch_one(c)
                    .await
                })
                .await;
            match count {
                Ok((rooms, participants, tracks)) => {
                    self.rooms_in_progress.set(rooms);
                    self.participants_connected.set(participants);
                    self.tracks_published_now.set(tracks);
                    *counted_at = Some(Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "metrics: could not count rooms in progress"),
            }
        }
        drop(counted_at);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
