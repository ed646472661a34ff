//! The status callback dispatcher. Every replica runs one: it claims due events from the outbox
//! (`db::callback_claims::claim`: a room's next event only once the one before it is settled, and a
//! lease instead of an open transaction), delivers them concurrently, and records each outcome.
//! `LISTEN roomd_callbacks` wakes it when events commit; polling is the safety net.

pub mod deliver;

use crate::db::callback_claims::{self as outbox, Claimed, Outcome};
use crate::telemetry::metrics::Metrics;
use deliver::{Attempt, Deliverer, DenyList};
use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// How callbacks are delivered.
#[derive(Clone, Debug)]
pub struct CallbackSettings {
    /// Attempts per event before it is marked failed (`ROOMD_CALLBACK_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles it, up to `MAX_BACKOFF`, with jitter
    /// (`ROOMD_CALLBACK_RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// One attempt's whole time, connecting included (`ROOMD_CALLBACK_TIMEOUT`; Twilio's 15 s).
    pub timeout: Duration,
    /// Destinations never called (`ROOMD_CALLBACK_DENY`).
    pub deny: DenyList,
    /// Deliveries in flight at once, per process (`ROOMD_CALLBACK_CONCURRENCY`).
    pub concurrency: usize,
    /// Deliveries in flight at once for one account, per process
    /// (`ROOMD_CALLBACK_ACCOUNT_CONCURRENCY`): an account whose receiver hangs holds no more.
    pub per_account: usize,
    /// Deliveries in flight at once to one host (and port), per process
    /// (`ROOMD_CALLBACK_HOST_CONCURRENCY`).
    pub per_host: usize,
    /// How long delivered and failed events are kept (`ROOMD_CALLBACK_RETENTION_DAYS`).
    pub retention: Duration,
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const DEFAULT_CONCURRENCY: usize = 256;
pub const DEFAULT_PER_ACCOUNT: usize = 64;
pub const DEFAULT_PER_HOST: usize = 128;
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often a dispatcher prunes settled events past the retention, and how many per statement.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_BATCH: i64 = 1000;

impl Default for CallbackSettings {
    fn default() -> Self {
        CallbackSettings {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base: DEFAULT_RETRY_BASE,
            timeout: DEFAULT_TIMEOUT,
            deny: DenyList::default(),
            concurrency: DEFAULT_CONCURRENCY,
            per_account: DEFAULT_PER_ACCOUNT,
            per_host: DEFAULT_PER_HOST,
            retention: DEFAULT_RETENTION,
        }
    }
}

impl CallbackSettings {
    /// How long a claim holds an event: longer than an attempt can take, so that only a
    /// dispatcher that died (or stalled) loses its events to another.
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(10)
    }

    /// How often the dispatcher looks for due events without being woken (retries fall due
    /// without a notification).
    fn poll_interval(&self) -> Duration {
        self.retry_base
            .clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    /// The wait after failed attempt `attempt` (1 for the first): `retry_base * 2^(attempt-1)`,
    /// capped, and scaled by a random factor in [0.5, 1] so that retries spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .retry_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        doubled
            .min(MAX_BACKOFF)
            .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// The dispatcher's connections: one for each kind of statement it runs (the loop runs each kind
/// one at a time).
///
/// The claim and the outcomes are planned at each run (`plan_cache_mode = force_custom_plan`).
/// sqlx prepares statements, and after five runs PostgreSQL may keep a generic plan, made for
/// any `LIMIT` and for the table as it was then. A dispatcher that started on an empty outbox
/// stalled on a burst of 30,000 events: each claim ran into the 3 s statement timeout, while
/// the same claim planned for its arguments took under a millisecond. With planning at each run
/// the burst drains as fast as it is made.
pub struct Connections {
    pub claims: PgPool,
    /// Outcomes and releases.
    pub records: PgPool,
    /// LISTEN, held for good.
    pub listening: PgPool,
}

impl Connections {
    /// Pools that connect on first use, so that a database that is down does not stop a start.
    pub fn lazy(database: PgConnectOptions) -> Connections {
        let planned = database
            .clone()
            .options([("plan_cache_mode", "force_custom_plan")]);
        // Outcomes commit without waiting for the WAL flush (see `record`).
        let records = planned.clone().options([("synchronous_commit", "off")]);
        Connections {
            claims: crate::db::lazy_pool(planned, 1),
            records: crate::db::lazy_pool(records, 1),
            listening: crate::db::lazy_pool(database, 1),
        }
    }
}

/// Delivers until `shutdown` resolves; then lets the deliveries in flight finish (up to one
/// attempt's timeout) and gives back the events of any that did not, for another replica.
///
/// One loop: record the outcomes of the deliveries that finished (one statement for all of
/// them: their rooms' next events become due), claim as many due events as there are free
/// slots, start their deliveries, and wait for a delivery to finish, a notification, or the poll
/// interval.
pub async fn run(
    connections: Connections,
    deliverer: Arc<Deliverer>,
    settings: CallbackSettings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let Connections {
        claims: claiming,
        records: pool,
        listening,
    } = connections;
    let mut listener = listen(&listening).await;
    let mut in_flight: JoinSet<Done> = JoinSet::new();
    let mut claims: HashMap<String, i32> = HashMap::new();
    let mut slots = Slots::default();
    let mut finished: Vec<Done> = Vec::new();
    let mut pause = Duration::ZERO;
    let mut presence = Presence::new();
    let mut pruned = std::time::Instant::now();
    loop {
        while let Some(done) = in_flight.try_join_next() {
            finished.extend(done.ok());
        }
        let mut healthy = record(
            &pool,
            &mut finished,
            &mut claims,
            &mut slots,
            &settings,
            &metrics,
        )
        .await;
        if healthy && pruned.elapsed() >= PRUNE_EVERY {
            pruned = std::time::Instant::now();
            prune(&pool, settings.retention).await;
        }

        let free = settings.concurrency.saturating_sub(in_flight.len());
        let mut filled = false;
        let mut claimed = 0;
        if healthy && free > 0 {
            let limits = slots.limits(free, &settings);
            match outbox::claim(&claiming, &limits, settings.lease()).await {
                Ok(batch) => {
                    filled = batch.len() == free;
                    claimed = batch.len();
                    for event in batch {
                        claims.insert(event.sid.clone(), event.attempts);
                        slots.take(&event);
                        let (deliverer, settings) = (deliverer.clone(), settings.clone());
                        in_flight.spawn(async move { deliver(&deliverer, &settings, event).await });
                    }
                }
                Err(e) => {
                    healthy = false;
                    tracing::warn!(error = %e, "claiming status callbacks failed; retrying");
                }
            }
        }
        pause = if healthy {
            Duration::ZERO
        } else {
            (pause * 2).clamp(Duration::from_millis(100), Duration::from_secs(5))
        };
        if filled && in_flight.len() < settings.concurrency {
            // More may be due, and a slot is free already.
            continue;
        }
        if healthy {
            let idle = claimed == 0 && in_flight.is_empty();
            if presence.mark(&pool, idle).await && idle {
                // Just marked idle: claim once more before sleeping, for an event that
                // committed before the mark (and so did not notify).
                continue;
            }
        }
        let wait = if healthy {
            settings.poll_interval()
        } else {
            pause
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(wait) => {}
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                finished.extend(done.ok());
            }
            notified = next_notification(&mut listener) => {
                if !notified {
                    // The listening connection failed: poll until it is back.
                    listener = None;
                }
            }
        }
        if listener.is_none() {
            listener = listen(&listening).await;
        }
    }
    drain(in_flight, claims, finished, &pool, &settings, &metrics).await;
    presence.leave(&pool).await;
}

/// This dispatcher's row in `callback_dispatchers`: whether it is idle, so that commits notify
/// only while some dispatcher waits for them.
struct Presence {
    id: String,
    /// What the row says (`None`: not written yet).
    idle: Option<bool>,
    written: std::time::Instant,
}

/// How often an idle dispatcher says it is still there (a row older than 30 s no longer counts).
const PRESENCE_REFRESH: Duration = Duration::from_secs(10);

impl Presence {
    fn new() -> Presence {
        Presence {
            id: crate::domain::sid::random_hex32(),
            idle: None,
            written: std::time::Instant::now(),
        }
    }

    /// Records `idle` if it changed (or an idle row is due a refresh); true when it wrote.
    async fn mark(&mut self, pool: &PgPool, idle: bool) -> bool {
        let refresh = idle && self.written.elapsed() >= PRESENCE_REFRESH;
        if self.idle == Some(idle) && !refresh {
            return false;
        }
        match outbox::set_idle(pool, &self.id, idle).await {
            Ok(()) => {
                let changed = self.idle != Some(idle);
                self.idle = Some(idle);
                self.written = std::time::Instant::now();
                changed
            }
            Err(e) => {
                // Without the mark, notifications may not come: polling still finds the events.
                tracing::warn!(error = %e, "recording the dispatcher's state failed");
                false
            }
        }
    }

    async fn leave(&self, pool: &PgPool) {
        if let Err(e) = outbox::unregister(pool, &self.id).await {
            tracing::debug!(error = %e, "unregistering the dispatcher failed");
        }
    }
}

/// Records the outcomes in `finished` (emptied of those recorded; the rest are tried again at
/// the next call, such as one a writer held for a moment, or all of them if the database
/// failed); whether the database answered. One call for all of them, committed without waiting
/// for the disk: an outcome lost to a crash means one more delivery, which receivers dedupe.
async fn record(
    pool: &PgPool,
    finished: &mut Vec<Done>,
    claims: &mut HashMap<String, i32>,
    slots: &mut Slots,
    settings: &CallbackSettings,
    metrics: &Metrics,
) -> bool {
    if finished.is_empty() {
        return true;
    }
    let outcomes: Vec<(&str, i32, &Outcome)> = finished
        .iter()
        .map(|d| (d.event.sid.as_str(), d.event.attempts, &d.outcome))
        .collect();
    match outbox::settle(pool, &outcomes).await {
        Ok(taken) => {
            let taken: HashMap<String, bool> = taken.into_iter().collect();
            let mut kept = Vec::new();
            for done in finished.drain(..) {
                match taken.get(&done.event.sid) {
                    Some(recorded) => {
                        claims.remove(&done.event.sid);
                        slots.give_back(&done.event);
                        if *recorded {
                            count(metrics, settings, &done);
                        }
                    }
                    None => kept.push(done),
                }
            }
            *finished = kept;
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, events = finished.len(), "recording status callback outcomes failed; retrying");
            false
        }
    }
}

/// Deletes settled events past the retention, a batch per statement, for at most a second.
async fn prune(pool: &PgPool, retention: Duration) {
    let started = std::time::Instant::now();
    let mut total = 0;
    while started.elapsed() < Duration::from_secs(1) {
        match outbox::prune(pool, retention, PRUNE_BATCH).await {
            Ok(n) => {
                total += n;
                if n < PRUNE_BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning settled status callbacks failed; retrying later");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(
            events = total,
            retention_days = retention.as_secs() / 86_400,
            "pruned settled status callbacks past their retention"
        );
    }
}

/// The deliveries this process has in flight, per account and per destination host.
#[derive(Default)]
struct Slots {
    accounts: HashMap<String, i64>,
    hosts: HashMap<String, i64>,
}

impl Slots {
    fn take(&mut self, event: &Claimed) {
        *self.accounts.entry(event.account_sid.clone()).or_default() += 1;
        *self.hosts.entry(event.host.clone()).or_default() += 1;
    }

    fn give_back(&mut self, event: &Claimed) {
        for (map, key) in [
            (&mut self.accounts, &event.account_sid),
            (&mut self.hosts, &event.host),
        ] {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n <= 0 {
                    map.remove(key);
                }
            }
        }
    }

    fn limits(&self, free: usize, settings: &CallbackSettings) -> outbox::ClaimLimits {
        let busy = |m: &HashMap<String, i64>| m.iter().map(|(k, n)| (k.clone(), *n)).collect();
        outbox::ClaimLimits {
            free: free as i64,
            per_account: settings.per_account as i64,
            per_host: settings.per_host as i64,
            busy_accounts: busy(&self.accounts),
            busy_hosts: busy(&self.hosts),
        }
    }
}

/// Waits for the deliveries in flight to finish, up to one attempt's timeout, and records them;
/// releases the events of the rest.
async fn drain(
    mut in_flight: JoinSet<Done>,
    mut claims: HashMap<String, i32>,
    mut finished: Vec<Done>,
    pool: &PgPool,
    settings: &CallbackSettings,
    metrics: &Metrics,
) {
    let _ = tokio::time::timeout(settings.timeout, async {
        while let Some(done) = in_flight.join_next().await {
            finished.extend(done.ok());
        }
    })
    .await;
    in_flight.abort_all();
    while let Some(done) = in_flight.join_next().await {
        finished.extend(done.ok());
    }
    let mut slots = Slots::default();
    record(
        pool,
        &mut finished,
        &mut claims,
        &mut slots,
        settings,
        metrics,
    )
    .await;
    if !claims.is_empty() {
        let unfinished: Vec<(String, i32)> = claims.into_iter().collect();
        match outbox::release(pool, &unfinished).await {
            Ok(()) => tracing::info!(
                events = unfinished.len(),
                "released unfinished status callbacks to the other replicas"
            ),
            Err(e) => {
                tracing::warn!(error = %e, events = unfinished.len(), "releasing status callbacks failed; they are taken again when their lease ends")
            }
        }
    }
}

async fn listen(pool: &PgPool) -> Option<PgListener> {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN for status callbacks failed; polling");
            return None;
        }
    };
    match listener.listen("roomd_callbacks").await {
        Ok(()) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "LISTEN for status callbacks failed; polling");
            None
        }
    }
}

/// Resolves on the next notification (true) or a failure of the listening connection (false);
/// never without a listener.
async fn next_notification(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// A finished attempt, to be recorded.
struct Done {
    event: Claimed,
    outcome: Outcome,
    denied: bool,
    /// When the receiver answered (for the lag).
    at: chrono::DateTime<chrono::Utc>,
}

/// One attempt at `event`, and what it means: delivered, retried after a backoff, or failed.
async fn deliver(deliverer: &Deliverer, settings: &CallbackSettings, event: Claimed) -> Done {
    let attempt = deliverer.attempt(&event).await;
    let attempts = u32::try_from(event.attempts).unwrap_or(u32::MAX);
    let denied = matches!(attempt, Attempt::Denied);
    let outcome = match attempt {
        Attempt::Delivered(status) => Outcome::Delivered { status },
        Attempt::Failed { status, error } if attempts < settings.max_attempts => Outcome::Failed {
            status,
            error,
            retry_at: Some(settings.backoff(attempts)),
        },
        Attempt::Failed { status, error } => Outcome::Failed {
            status,
            error,
            retry_at: None,
        },
        Attempt::Denied => Outcome::Failed {
            status: None,
            error: deliver::reason::DENIED.into(),
            retry_at: None,
        },
    };
    Done {
        event,
        outcome,
        denied,
        at: chrono::Utc::now(),
    }
}

fn count(metrics: &Metrics, settings: &CallbackSettings, done: &Done) {
    let event = &done.event;
    match &done.outcome {
        Outcome::Delivered { .. } => {
            metrics.callbacks_delivered.inc();
            let lag = done.at - event.date_created;
            metrics
                .callback_lag
                .observe(lag.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
        }
        Outcome::Failed {
            retry_at: Some(_), ..
        } => metrics.callbacks_retried.inc(),
        Outcome::Failed { error, .. } => {
            let reason = if done.denied { "denied" } else { "attempts" };
            metrics.callbacks_failed.with_label_values(&[reason]).inc();
            tracing::warn!(
                event_sid = %event.sid,
                room_sid = %event.room_sid,
                sequence_number = event.sequence_number,
                attempts = event.attempts,
                max_attempts = settings.max_attempts,
                error = %error,
                "status callback failed; POST .../Callbacks/{{Sid}} with Status=pending sends it again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_with_jitter_and_is_capped() {
        let s = CallbackSettings::default();
        for _ in 0..100 {
            let first = s.backoff(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let fourth = s.backoff(4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            assert!(s.backoff(40) <= MAX_BACKOFF);
            assert!(s.backoff(40) >= MAX_BACKOFF / 2);
        }
    }
}
