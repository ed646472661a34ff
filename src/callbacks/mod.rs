//! The status callback dispatcher. Every replica runs one: it claims due events from the outbox
//! (`db::callbacks::claim`: a room's next event only once the one before it is settled, and a
//! lease instead of an open transaction), delivers them concurrently, and records each outcome.
//! `LISTEN roomd_callbacks` wakes it when events commit; polling is the safety net.

pub mod deliver;

use crate::db::callbacks::{self as outbox, Claimed, Outcome};
use crate::metrics::Metrics;
use deliver::{Attempt, Deliverer, DenyList};
use rand::Rng;
use sqlx::postgres::PgListener;
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
    /// Deliveries in flight at once, per process.
    pub concurrency: usize,
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

impl Default for CallbackSettings {
    fn default() -> Self {
        CallbackSettings {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base: DEFAULT_RETRY_BASE,
            timeout: DEFAULT_TIMEOUT,
            deny: DenyList::default(),
            concurrency: 64,
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

/// Delivers until `shutdown` resolves; then lets the deliveries in flight finish (up to one
/// attempt's timeout) and gives back the events of any that did not, for another replica.
pub async fn run(
    pool: PgPool,
    deliverer: Arc<Deliverer>,
    settings: CallbackSettings,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut listener = listen(&pool).await;
    let mut in_flight: JoinSet<String> = JoinSet::new();
    let mut claims: HashMap<String, i32> = HashMap::new();
    let work = Arc::new(Work {
        pool: pool.clone(),
        deliverer,
        settings: settings.clone(),
        metrics,
    });
    let mut pause = Duration::ZERO;
    loop {
        while let Some(done) = in_flight.try_join_next() {
            if let Ok(sid) = done {
                claims.remove(&sid);
            }
        }
        let free = settings.concurrency.saturating_sub(in_flight.len());
        let mut filled = false;
        if free > 0 {
            match outbox::claim(&pool, free as i64, settings.lease()).await {
                Ok(batch) => {
                    filled = batch.len() == free;
                    pause = Duration::ZERO;
                    for event in batch {
                        claims.insert(event.sid.clone(), event.attempts);
                        let work = work.clone();
                        in_flight.spawn(async move { work.deliver(event).await });
                    }
                }
                Err(e) => {
                    pause = (pause * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                    tracing::warn!(error = %e, "claiming status callbacks failed; retrying");
                }
            }
        }
        if filled && in_flight.len() < settings.concurrency {
            // More may be due, and a slot is free already.
            continue;
        }
        let wait = if pause.is_zero() {
            settings.poll_interval()
        } else {
            pause
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(wait) => {}
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                // A room's next event may be due now that this one is settled.
                if let Ok(sid) = done {
                    claims.remove(&sid);
                }
            }
            notified = next_notification(&mut listener) => {
                if !notified {
                    // The listening connection failed: poll until it is back.
                    listener = None;
                }
            }
        }
        if listener.is_none() {
            listener = listen(&pool).await;
        }
    }
    drain(in_flight, claims, &pool, settings.timeout).await;
}

/// Waits for the deliveries in flight to finish, up to `grace`; releases the rest.
async fn drain(
    mut in_flight: JoinSet<String>,
    mut claims: HashMap<String, i32>,
    pool: &PgPool,
    grace: Duration,
) {
    let finished = tokio::time::timeout(grace, async {
        while let Some(done) = in_flight.join_next().await {
            if let Ok(sid) = done {
                claims.remove(&sid);
            }
        }
    })
    .await;
    if finished.is_err() {
        in_flight.abort_all();
        while let Some(done) = in_flight.join_next().await {
            if let Ok(sid) = done {
                claims.remove(&sid);
            }
        }
    }
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

/// What each delivery task shares.
struct Work {
    pool: PgPool,
    deliverer: Arc<Deliverer>,
    settings: CallbackSettings,
    metrics: Arc<Metrics>,
}

impl Work {
    /// One attempt at `event`, and its outcome recorded; returns the event's SID.
    async fn deliver(&self, event: Claimed) -> String {
        let attempt = self.deliverer.attempt(&event).await;
        let attempts = u32::try_from(event.attempts).unwrap_or(u32::MAX);
        let denied = matches!(attempt, Attempt::Denied);
        let outcome = match attempt {
            Attempt::Delivered(status) => Outcome::Delivered { status },
            Attempt::Failed { status, error } if attempts < self.settings.max_attempts => {
                Outcome::Failed {
                    status,
                    error,
                    retry_at: Some(self.settings.backoff(attempts)),
                }
            }
            Attempt::Failed { status, error } => Outcome::Failed {
                status,
                error,
                retry_at: None,
            },
            Attempt::Denied => Outcome::Failed {
                status: None,
                error: "destination denied by ROOMD_CALLBACK_DENY".into(),
                retry_at: None,
            },
        };
        match outbox::settle(&self.pool, &event.sid, event.attempts, &outcome).await {
            Ok(true) => self.count(&event, &outcome, denied),
            Ok(false) => {}
            // Unrecorded: the lease runs out and the event is delivered again (receivers
            // dedupe on RoomSid + SequenceNumber).
            Err(e) => {
                tracing::warn!(error = %e, event_sid = %event.sid, "recording a status callback's outcome failed")
            }
        }
        event.sid
    }

    fn count(&self, event: &Claimed, outcome: &Outcome, denied: bool) {
        match outcome {
            Outcome::Delivered { .. } => {
                self.metrics.callbacks_delivered.inc();
                let lag = chrono::Utc::now() - event.date_created;
                self.metrics
                    .callback_lag
                    .observe(lag.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6);
            }
            Outcome::Failed {
                retry_at: Some(_), ..
            } => self.metrics.callbacks_retried.inc(),
            Outcome::Failed { error, .. } => {
                let reason = if denied { "denied" } else { "attempts" };
                self.metrics
                    .callbacks_failed
                    .with_label_values(&[reason])
                    .inc();
                tracing::warn!(
                    event_sid = %event.sid,
                    room_sid = %event.room_sid,
                    sequence_number = event.sequence_number,
                    attempts = event.attempts,
                    error = %error,
                    "status callback failed; POST .../Callbacks/{{Sid}} with Status=pending sends it again"
                );
            }
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
