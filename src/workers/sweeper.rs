//! Disconnects participants connected longer than their room's `max_participant_duration`, then
//! ends in-progress rooms whose deadline (unused or empty timeout) has passed. Every replica runs
//! one; PostgreSQL (`FOR UPDATE SKIP LOCKED` plus a re-check) keeps them from acting twice.

use crate::db;
use crate::db::participants::EndReason;
use crate::telemetry::metrics::Metrics;
use futures_util::FutureExt;
use sqlx::PgPool;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: i64 = 1000;

/// What one sweep did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Participants disconnected for `max_participant_duration`.
    pub participants: Vec<db::participants::ParticipantRow>,
    /// Rooms ended by their unused or empty timeout.
    pub rooms: Vec<db::room_deadlines::EndedRoom>,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty() && self.rooms.is_empty()
    }
}

/// Does everything that is due now, in batches; returns what this call did. Counts in
/// `metrics` when given.
pub async fn sweep_once(pool: &PgPool, metrics: Option<&Metrics>) -> Result<Swept, sqlx::Error> {
    sweep(pool, metrics, || true).await
}

/// Batches until one is not full (nothing more is due) or `go_on` says stop between two;
/// counts batches, their duration and what they did in `metrics`. Overdue participants go
/// first: a room they leave empty gets its empty-room deadline from then.
///
/// No room can stop a pass: when a batch's statement fails (a statement timeout, say), its
/// rooms are taken one at a time, each in a transaction of its own; a room that fails alone is
/// logged, counted (`roomd_sweeper_failures_total`), left out for the rest of the pass and tried
/// again at the next one. Only a database that cannot be reached ends the pass early.
async fn sweep(
    pool: &PgPool,
    metrics: Option<&Metrics>,
    mut go_on: impl FnMut() -> bool,
) -> Result<Swept, sqlx::Error> {
    let mut swept = Swept::default();
    let mut skip: Vec<String> = Vec::new();
    loop {
        let batch = timed(
            metrics,
            crate::db::transaction(pool, async |c| {
                db::participant_deadlines::disconnect_overdue(c, BATCH, &skip).await
            }),
        )
        .await;
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) if room_specific(&e) => {
                tracing::warn!(error = %e, "a sweeper batch of overdue participants failed; taking its rooms one at a time");
                let rooms = crate::db::transaction(pool, async |c| {
                    db::participant_deadlines::overdue_rooms(c, BATCH, &skip, "").await
                })
                .await?;
                one_at_a_time(
                    pool,
                    metrics,
                    "participants",
                    rooms,
                    &mut skip,
                    async |c, room| {
                        db::participant_deadlines::disconnect_overdue_in_one(c, room).await
                    },
                )
                .await?
            }
            Err(e) => return Err(e),
        };
        // A batch is cut to a budget of rows (participants and their tracks), so one that did
        // anything may have left more: go on until one finds nothing.
        let full = !batch.is_empty();
        if let Some(m) = metrics {
            m.participants_disconnected(EndReason::MaxDuration, batch.len());
        }
        swept.participants.extend(batch);
        if !full || !go_on() {
            break;
        }
    }
    skip.clear();
    loop {
        let batch = timed(
            metrics,
            crate::db::transaction(pool, async |c| {
                db::room_deadlines::end_due(c, BATCH, &skip).await
            }),
        )
        .await;
        let (batch, full) = match batch {
            Ok(batch) => {
                let full = batch.len() as i64 == BATCH;
                (batch, full)
            }
            Err(e) if room_specific(&e) => {
                tracing::warn!(error = %e, "a sweeper batch of due rooms failed; taking them one at a time");
                let rooms = db::room_deadlines::due(pool, BATCH, &skip, "").await?;
                let full = rooms.len() as i64 == BATCH;
                let done =
                    one_at_a_time(pool, metrics, "rooms", rooms, &mut skip, async |c, room| {
                        db::room_deadlines::end_one_due(c, room).await
                    })
                    .await?;
                (done, full)
            }
            Err(e) => return Err(e),
        };
        for room in &batch {
            if let Some(m) = metrics {
                m.room_ended(&room.end_reason);
                m.participants_disconnected(
                    EndReason::RoomEnded,
                    room.participants_disconnected as usize,
                );
            }
            tracing::debug!(room_sid = %room.sid, account_sid = %room.account_sid, reason = %room.end_reason, "room ended by timeout");
        }
        swept.rooms.extend(batch);
        if !full || !go_on() {
            return Ok(swept);
        }
    }
}

/// Acts on `rooms` one at a time, each in a transaction of its own (after their batch failed):
/// what was done; a room that fails alone is logged, counted and added to `skip`.
async fn one_at_a_time<T>(
    pool: &PgPool,
    metrics: Option<&Metrics>,
    what: &'static str,
    rooms: Vec<String>,
    skip: &mut Vec<String>,
    act: impl AsyncFn(&mut sqlx::PgConnection, &str) -> Result<Vec<T>, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    let mut done = Vec::new();
    for room in rooms {
        match crate::db::transaction(pool, async |c| act(c, &room).await).await {
            Ok(batch) => done.extend(batch),
            Err(e) if room_specific(&e) => {
                failed(metrics, what, &room, &e);
                skip.push(room);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Whether an error belongs to the statement (the database answered: a timeout, a constraint,
/// a trigger), so that other rooms may still be swept; otherwise the database is out of reach.
fn room_specific(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(_))
}

/// A room the sweeper could not act on, this pass.
fn failed(metrics: Option<&Metrics>, what: &'static str, room: &str, e: &sqlx::Error) {
    tracing::warn!(room_sid = %room, error = %e, "the sweeper could not act on a room; it is tried again next pass");
    if let Some(m) = metrics {
        m.sweeper_failures.with_label_values(&[what]).inc();
    }
}

/// One batch (one transaction), counted and timed in `metrics`.
async fn timed<T>(
    metrics: Option<&Metrics>,
    batch: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    let started = Instant::now();
    let done = batch.await;
    if let Some(m) = metrics {
        m.sweeper_batches.inc();
        m.sweeper_batch_duration
            .observe(started.elapsed().as_secs_f64());
    }
    done
}

/// Sweeps every `interval` until `shutdown` resolves. Shutdown is noticed between batches, so
/// the batch in progress commits and a long backlog does not delay the exit. A failed sweep is
/// logged and retried at the next tick; it never stops the loop.
pub async fn run(
    pool: PgPool,
    metrics: Arc<Metrics>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let mut stopping = false;
        let go_on = || {
            stopping = (&mut shutdown).now_or_never().is_some();
            !stopping
        };
        match sweep(&pool, Some(&metrics), go_on).await {
            Ok(swept) if !swept.is_empty() => {
                tracing::info!(
                    rooms = swept.rooms.len(),
                    participants = swept.participants.len(),
                    "sweeper ended rooms and disconnected participants whose time was up"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "sweep failed; retrying next interval"),
        }
        if stopping {
            return;
        }
    }
}
