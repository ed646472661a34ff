//! Ends in-progress rooms whose deadline (unused or empty timeout) has passed. Every replica runs
//! one; PostgreSQL (`FOR UPDATE SKIP LOCKED` plus a re-check) keeps them from ending a room twice.

use crate::db;
use crate::metrics::Metrics;
use futures_util::FutureExt;
use sqlx::PgPool;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: i64 = 1000;

/// Ends every room that is due now, in batches; returns the rooms this call ended. Counts in
/// `metrics` when given.
pub async fn sweep_once(
    pool: &PgPool,
    metrics: Option<&Metrics>,
) -> Result<Vec<db::rooms::EndedRoom>, sqlx::Error> {
    sweep(pool, metrics, || true).await
}

/// Batches until one is not full (nothing more is due) or `go_on` says stop between two;
/// counts batches, their duration and the rooms ended in `metrics`.
async fn sweep(
    pool: &PgPool,
    metrics: Option<&Metrics>,
    mut go_on: impl FnMut() -> bool,
) -> Result<Vec<db::rooms::EndedRoom>, sqlx::Error> {
    let mut ended = Vec::new();
    loop {
        let batch = sweep_batch(pool, metrics).await?;
        let full = batch.len() as i64 == BATCH;
        ended.extend(batch);
        if !full || !go_on() {
            return Ok(ended);
        }
    }
}

/// One batch of at most `BATCH` rooms, in one transaction.
async fn sweep_batch(
    pool: &PgPool,
    metrics: Option<&Metrics>,
) -> Result<Vec<db::rooms::EndedRoom>, sqlx::Error> {
    let started = Instant::now();
    let batch = db::rooms::end_due(pool, BATCH).await?;
    if let Some(m) = metrics {
        m.sweeper_batches.inc();
        m.sweeper_batch_duration
            .observe(started.elapsed().as_secs_f64());
        for room in &batch {
            m.room_ended(&room.end_reason);
        }
    }
    for room in &batch {
        tracing::debug!(room_sid = %room.sid, account_sid = %room.account_sid, reason = %room.end_reason, "room ended by timeout");
    }
    Ok(batch)
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
            Ok(ended) if !ended.is_empty() => {
                tracing::info!(
                    rooms = ended.len(),
                    "sweeper ended rooms whose timeout passed"
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
