//! The recording conversions (one worker per process with a media plane): a segment that ended
//! (`db::recording_jobs`) is claimed, converted (`convert`), then recorded `completed` (or,
//! after a few attempts, `failed`), each with its status callback. A bounded number run at once, each in
//! child processes with a time limit; a process that stops gives its claims back, one that dies
//! leaves them to expire. `LISTEN roomd_recordings` wakes the worker; polling is the safety net.

use super::convert::{convert, Tools, PROGRAM_TIMEOUT};
use super::recording::rooms_dir;
use super::MediaPlane;
use crate::db::recording_jobs::{self, Job};
use crate::telemetry::metrics::Metrics;
use sqlx::postgres::PgListener;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct JobSettings {
    /// Conversions at once in this process (`ROOMD_RECORDING_JOBS`).
    pub concurrency: usize,
    /// Claims of one segment before it is `failed`.
    pub max_attempts: i32,
}

impl Default for JobSettings {
    fn default() -> Self {
        JobSettings {
            concurrency: 1,
            max_attempts: 3,
        }
    }
}

/// How often the disk gauges are read and the folders of settled rooms removed.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(30);

/// Runs until `shutdown` resolves.
pub async fn run(
    plane: Arc<MediaPlane>,
    metrics: Arc<Metrics>,
    tools: Tools,
    settings: JobSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let pool = plane.pool.clone();
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut l) => l.listen("roomd_recordings").await.ok().map(|()| l),
        Err(_) => None,
    };
    let mut running = tokio::task::JoinSet::new();
    let mut housekept: Option<Instant> = None;
    loop {
        let free = settings.concurrency.saturating_sub(running.len());
        if free > 0 {
            // The lease covers the longest a conversion may take (two programs, each bounded).
            let lease = PROGRAM_TIMEOUT * 3;
            match recording_jobs::claim(&pool, &plane.owner, free as i64, lease).await {
                Ok(jobs) => {
                    for job in jobs {
                        let (plane, metrics, tools) =
                            (plane.clone(), metrics.clone(), tools.clone());
                        running.spawn(async move {
                            finish(&plane, &metrics, &tools, settings, job).await;
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming recording conversions failed"),
            }
        }
        if housekept.is_none_or(|t| t.elapsed() >= HOUSEKEEPING_EVERY) {
            housekept = Some(Instant::now());
            housekeeping(&plane, &metrics).await;
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
    // Claims this process holds go back at once: another process (or this one, restarted)
    // takes them without waiting for the lease to pass.
    if let Err(e) = sqlx::query(
        "UPDATE recordings SET lease_owner = NULL, lease_until = '-infinity' \
         WHERE lease_owner = $1 AND status = 'processing'",
    )
    .bind(&plane.owner)
    .execute(&pool)
    .await
    {
        tracing::warn!(error = %e, "giving back recording conversions at exit failed");
    }
}

/// Converts one claimed segment and records the outcome.
async fn finish(
    plane: &MediaPlane,
    metrics: &Metrics,
    tools: &Tools,
    settings: JobSettings,
    job: Job,
) {
    let pool = &plane.pool;
    let started = Instant::now();
    match convert(tools, &plane.media_dir, &job).await {
        Ok(done) => {
            match recording_jobs::complete(
                pool,
                &job,
                &plane.owner,
                done.duration,
                done.size,
                &done.media_path,
            )
            .await
            {
                Ok(true) => {
                    metrics.recordings_completed.inc();
                    tracing::info!(recording_sid = %job.sid, duration_s = done.duration,
                        size = done.size, took_ms = started.elapsed().as_millis() as u64,
                        "recording converted");
                }
                Ok(false) | Err(_) => {
                    // Not ours any more (deleted, or the claim passed on), or not recorded: the
                    // file goes; a claim that remains is converted again.
                    let _ = tokio::fs::remove_file(plane.media_dir.join(&done.media_path)).await;
                }
            }
        }
        Err(e) => {
            tracing::warn!(recording_sid = %job.sid, attempt = job.attempts, error = %e.full(), "converting a recording failed");
            let retry = super::convert::retry_in(job.attempts);
            match recording_jobs::fail(
                pool,
                &job,
                &plane.owner,
                &e.message,
                e.permanent,
                settings.max_attempts,
                retry,
            )
            .await
            {
                Ok(true) => metrics.recordings_failed.inc(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "recording a failed conversion failed"),
            }
        }
    }
    match recording_jobs::room_settled(pool, &job.room_sid).await {
        Ok(true) => remove_room_files(&plane.media_dir, &job.room_sid).await,
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "reading whether a room's recordings are settled failed")
        }
    }
}

async fn remove_room_files(media_dir: &Path, room_sid: &str) {
    let dir = rooms_dir(media_dir).join(room_sid);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => tracing::debug!(room_sid, "a settled room's stream files removed"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(error = %e, room_sid, "removing a room's stream files failed"),
    }
}

/// The disk gauges, and the stream files of rooms that ended with nothing left to convert
/// (streams no rule recorded, rooms whose recordings all failed).
async fn housekeeping(plane: &MediaPlane, metrics: &Metrics) {
    if let Some(free) = free_bytes(&plane.media_dir) {
        metrics.media_dir_free_bytes.set(free as i64);
    }
    match recording_jobs::stored_bytes(&plane.pool).await {
        Ok(bytes) => metrics.recordings_stored_bytes.set(bytes),
        Err(e) => tracing::debug!(error = %e, "reading the recordings' size failed"),
    }
    let Ok(mut dirs) = tokio::fs::read_dir(rooms_dir(&plane.media_dir)).await else {
        return;
    };
    while let Ok(Some(entry)) = dirs.next_entry().await {
        let Some(room) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if crate::domain::sid::RoomSid::parse(&room).is_none() {
            continue;
        }
        if let Ok(true) = recording_jobs::room_settled(&plane.pool, &room).await {
            remove_room_files(&plane.media_dir, &room).await;
        }
    }
}

/// Bytes free for unprivileged users on the file system of `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string and `stat` a properly sized, writable struct.
    let ok = unsafe { libc::statvfs(path.as_ptr(), &mut stat) } == 0;
    ok.then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}
