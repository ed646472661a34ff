//! The composition worker (one per process with a media plane): turns the rooms the hooks must
//! compose into compositions (`db::composition_hooks::compose_ended_rooms`), claims due
//! compositions (`db::composition_jobs`), makes each with ffmpeg (`compose`) while renewing its
//! short lease and reporting progress, and records the outcome with its status callback. A
//! bounded number run at once; a process that stops gives its claims back, one that dies leaves
//! them to another claim once the lease runs out. `LISTEN roomd_compositions` wakes it.

use super::compose::{compose, compositions_dir, plan};
use super::convert::{ConvertError, Tools};
use super::MediaPlane;
use crate::db::composition_hooks;
use crate::db::composition_jobs::{self, Job};
use crate::telemetry::metrics::Metrics;
use sqlx::postgres::PgListener;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct CompositionSettings {
    /// Compositions at once in this process (`ROOMD_COMPOSITION_JOBS`).
    pub concurrency: usize,
    /// Claims of one composition before it is `failed`.
    pub max_attempts: i32,
    /// How long a claim holds without renewal (a dead process's job waits this long).
    pub lease: Duration,
}

impl Default for CompositionSettings {
    fn default() -> Self {
        CompositionSettings {
            concurrency: 1,
            max_attempts: 3,
            lease: Duration::from_secs(30),
        }
    }
}

/// How often files no composition holds are looked for.
const ORPHANS_EVERY: Duration = Duration::from_secs(600);

/// `composition-progress` is written at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Runs until `shutdown` resolves.
pub async fn run(
    plane: Arc<MediaPlane>,
    metrics: Arc<Metrics>,
    tools: Tools,
    settings: CompositionSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let pool = plane.pool.clone();
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut l) => l.listen("roomd_compositions").await.ok().map(|()| l),
        Err(_) => None,
    };
    let mut running = tokio::task::JoinSet::new();
    let mut gauged: Option<Instant> = None;
    let mut swept: Option<Instant> = None;
    loop {
        match composition_hooks::compose_ended_rooms(&pool, 100).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                compositions = n,
                "composition hooks composed rooms that ended"
            ),
            Err(e) => tracing::warn!(error = %e, "applying composition hooks failed"),
        }
        let free = settings.concurrency.saturating_sub(running.len());
        if free > 0 {
            match composition_jobs::claim(&pool, &plane.owner, free as i64, settings.lease).await {
                Ok(jobs) => {
                    for job in jobs {
                        let (plane, metrics, tools) =
                            (plane.clone(), metrics.clone(), tools.clone());
                        running.spawn(async move {
                            finish(&plane, &metrics, &tools, settings, job).await;
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming compositions failed"),
            }
        }
        if gauged.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            gauged = Some(Instant::now());
            if let Ok(bytes) = crate::db::compositions::stored_bytes(&pool).await {
                metrics.compositions_stored_bytes.set(bytes);
            }
        }
        if swept.is_none_or(|t| t.elapsed() >= ORPHANS_EVERY) {
            swept = Some(Instant::now());
            remove_orphans(&plane).await;
        }
        let wake = async {
            match &mut listener {
                Some(l) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), l.recv()).await;
                }
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = running.join_next() => {}
            _ = wake => {}
        }
    }
    running.shutdown().await;
    if let Err(e) = composition_jobs::give_back(&pool, &plane.owner).await {
        tracing::warn!(error = %e, "giving back compositions at exit failed");
    }
}

/// Makes one claimed composition and records the outcome.
async fn finish(
    plane: &MediaPlane,
    metrics: &Metrics,
    tools: &Tools,
    settings: CompositionSettings,
    job: Job,
) {
    let pool = &plane.pool;
    let owner = plane.owner.as_str();
    match composition_jobs::start(pool, &job, owner).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, composition_sid = %job.sid, "starting a composition failed");
            return;
        }
    }
    let started = Instant::now();
    let made = async {
        let (sources, span) = composition_jobs::sources(pool, &job).await.map_err(|e| {
            ConvertError::retry("the recordings could not be read").with_detail(e.to_string())
        })?;
        let plan = plan(&job, &sources, &span)?;
        let (progress, done) = tokio::sync::watch::channel(0.0);
        tokio::select! {
            made = compose(tools, &plane.media_dir, &job, &plan, progress) => made,
            () = heartbeat(pool, &job, owner, settings.lease, plan.duration, done, started) => {
                // Dropped: ffmpeg is killed, and what it wrote is left for the claim's owner
                // (another process's claim writes under a name of its own).
                Err(ConvertError::permanent("the composition's claim was lost"))
            }
        }
    }
    .await;
    match made {
        Ok(done) => {
            match composition_jobs::complete(
                pool,
                &job,
                owner,
                done.duration,
                done.size,
                &done.media_path,
            )
            .await
            {
                Ok(true) => {
                    metrics.compositions_completed.inc();
                    tracing::info!(composition_sid = %job.sid, duration_s = done.duration,
                        size = done.size, took_ms = started.elapsed().as_millis() as u64,
                        "composition made");
                }
                Ok(false) | Err(_) => {
                    let _ = tokio::fs::remove_file(plane.media_dir.join(&done.media_path)).await;
                }
            }
        }
        Err(e) => {
            tracing::warn!(composition_sid = %job.sid, attempt = job.attempts, error = %e.full(), "making a composition failed");
            let retry = super::convert::retry_in(job.attempts);
            match composition_jobs::fail(
                pool,
                &job,
                owner,
                &e.message,
                e.permanent,
                settings.max_attempts,
                retry,
            )
            .await
            {
                Ok(true) => metrics.compositions_failed.inc(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "recording a failed composition failed"),
            }
        }
    }
}

/// Renews the claim every few seconds, with `composition-progress` at most every
/// `PROGRESS_EVERY`; returns when the claim is lost (the composition deleted, or the lease
/// taken over after this process stalled). A database that does not answer is not a lost
/// claim: the lease covers a while.
async fn heartbeat(
    pool: &sqlx::PgPool,
    job: &Job,
    owner: &str,
    lease: Duration,
    duration: f64,
    done: tokio::sync::watch::Receiver<f64>,
    started: Instant,
) {
    let mut reported: Option<Instant> = None;
    loop {
        tokio::time::sleep(lease / 6).await;
        let done = *done.borrow();
        let due = reported.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY);
        let report = due.then(|| {
            let percent = (done / duration * 100.0).clamp(0.0, 99.0) as u32;
            let elapsed = started.elapsed().as_secs_f64();
            let remaining = if done > 0.0 {
                (elapsed * (duration - done) / done).round() as u32
            } else {
                0
            };
            (percent, remaining)
        });
        match composition_jobs::progress(pool, job, owner, lease, report).await {
            Ok(true) => {
                if due {
                    reported = Some(Instant::now());
                }
            }
            Ok(false) => return,
            Err(e) => tracing::debug!(error = %e, "renewing a composition's claim failed"),
        }
    }
}

/// Removes files in the compositions folder that no composition holds and nothing has written
/// for a while: what a claim left when its process died, or lost the claim mid-way.
async fn remove_orphans(plane: &MediaPlane) {
    const QUIET_FOR: Duration = Duration::from_secs(600);
    let Ok(mut files) = tokio::fs::read_dir(compositions_dir(&plane.media_dir)).await else {
        return;
    };
    while let Ok(Some(entry)) = files.next_entry().await {
        let quiet = entry
            .metadata()
            .await
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > QUIET_FOR);
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !quiet {
            continue;
        }
        let path = format!("compositions/{name}");
        match crate::db::compositions::holds_file(&plane.pool, &path).await {
            Ok(false) => {
                let _ = tokio::fs::remove_file(entry.path()).await;
                tracing::info!(file = %name, "an orphaned composition file removed");
            }
            Ok(true) => {}
            Err(e) => {
                tracing::debug!(error = %e, "reading whether a composition holds a file failed")
            }
        }
    }
}

/// Removes a deleted composition's file (after the commit that deleted it).
pub async fn remove_file(plane: &MediaPlane, media_path: &str) {
    let path = plane.media_dir.join(media_path);
    if path.starts_with(compositions_dir(&plane.media_dir)) {
        if let Err(e) = tokio::fs::remove_file(&path).await {
            tracing::warn!(error = %e, "removing a deleted composition's file failed");
        }
    }
}
