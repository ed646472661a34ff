//! The status callback dispatcher. Every replica runs one: it claims due events from the outbox
//! (`db::callback_claims::claim`: a room's next event only once the one before it is settled, and a
//! lease instead of an open transaction), delivers them concurrently, and records each outcome.
//! `LISTEN roomd_callbacks` wakes it when events commit; polling is the safety net.

pub mod deliver;
pub mod destinations;
pub mod presence;
pub mod settings;
pub mod slots;

use crate::db::callback_claims::{self as outbox, Claimed, Outcome};
use crate::telemetry::metrics::Metrics;
use deliver::{Attempt, Deliverer};
use presence::Presence;
use settings::{CallbackSettings, PRUNE_BATCH, PRUNE_EVERY};
use slots::Slots;
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

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
