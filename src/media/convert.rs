//! Converting one recorded segment: the node's stream file (`.mjr`) of the track, turned into
//! Twilio's container by `janus-pp-rec` (Debian's `janus-tools`), cut to the segment with
//! `ffmpeg` (`-c copy`), measured with `ffprobe`. Each program runs as a child process with a
//! time limit; a claim writes files of its own names only.

use super::recording::{recordings_dir, rooms_dir};
use crate::db::recording_jobs::Job;
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one program of a conversion may run.
pub const PROGRAM_TIMEOUT: Duration = Duration::from_secs(600);

/// The programs a conversion runs.
#[derive(Debug, Clone)]
pub struct Tools {
    pub pp_rec: PathBuf,
    pub ffmpeg: Option<PathBuf>,
    pub ffprobe: Option<PathBuf>,
}

impl Tools {
    /// Finds them on `PATH` (and in `/usr/bin`): `None` without `janus-pp-rec`.
    pub fn find() -> Option<Tools> {
        Some(Tools {
            pp_rec: find_program("janus-pp-rec")?,
            ffmpeg: find_program("ffmpeg"),
            ffprobe: find_program("ffprobe"),
        })
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A converted segment: its file (relative to the media directory), seconds and bytes.
#[derive(Debug)]
pub struct Converted {
    pub media_path: String,
    pub duration: i32,
    pub size: i64,
}

/// Why a conversion (or a composition) failed; `permanent` when another attempt cannot help.
/// `message` is what the tenant sees (`FailedOperation` in its callback): it names the step, never
/// a path on this host or a program's own output, which go to the log only (`detail`).
#[derive(Debug)]
pub struct ConvertError {
    pub message: String,
    pub detail: Option<String>,
    pub permanent: bool,
}

impl ConvertError {
    pub fn permanent(message: impl Into<String>) -> Self {
        ConvertError {
            message: message.into(),
            detail: None,
            permanent: true,
        }
    }

    /// What the log says beside the message (paths, errors, a program's output).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The message and its detail, for the log.
    pub fn full(&self) -> String {
        match &self.detail {
            Some(d) => format!("{}: {d}", self.message),
            None => self.message.clone(),
        }
    }

    pub fn retry(message: impl Into<String>) -> Self {
        ConvertError {
            message: message.into(),
            detail: None,
            permanent: false,
        }
    }
}

/// Converts a segment: finds its stream file, converts it, cuts it to the segment, measures it.
pub async fn convert(
    tools: &Tools,
    media_dir: &Path,
    job: &Job,
) -> Result<Converted, ConvertError> {
    let dir = rooms_dir(media_dir).join(&job.room_sid);
    let permanent = ConvertError::permanent;
    // The file the node said it records the stream into, else the one Janus's naming points to.
    let source = match &job.media_file {
        Some(name) if super::recording::valid_file_name(name) => Some(dir.join(name)),
        _ => stream_file(&dir, job).map(|(path, _)| path),
    };
    let Some(source) = source.filter(|s| s.is_file()) else {
        return Err(permanent(
            "the media node wrote no stream file for this track",
        ));
    };
    // The converted file's timeline starts at the stream's first packet.
    let began = super::mjr::read_header(&source)
        .and_then(|h| DateTime::from_timestamp_micros(h.first_packet))
        .ok_or_else(|| permanent("the track's stream file holds no media"))?;
    let out = recordings_dir(media_dir);
    tokio::fs::create_dir_all(&out).await.map_err(|e| {
        ConvertError::retry("the media directory cannot be written")
            .with_detail(format!("creating {}: {e}", out.display()))
    })?;
    let ext = crate::db::recordings::container(&job.kind);
    // Each claim writes files of its own: a claim that lost its lease never touches another's.
    let name = format!("{}-{}", job.sid, job.attempts);
    let whole = out.join(format!("{name}.whole.{ext}"));
    let file = format!("{name}.{ext}");
    let cut = out.join(&file);
    let converted = run_program(
        &tools.pp_rec,
        &[source.as_os_str(), whole.as_os_str()],
        "janus-pp-rec",
    )
    .await;
    if let Err(e) = converted {
        let _ = tokio::fs::remove_file(&whole).await;
        return Err(e);
    }
    let length = (job.media_ended_at - job.media_started_at)
        .to_std()
        .unwrap_or_default();
    let skip = (job.media_started_at - began).to_std().unwrap_or_default();
    match &tools.ffmpeg {
        Some(ffmpeg) => {
            let (skip, length) = (
                format!("{:.3}", skip.as_secs_f64()),
                format!("{:.3}", length.as_secs_f64()),
            );
            // `-ss` after `-i`: with stream copy, packets before the segment are dropped one by
            // one (as an input option it would seek to the container's previous cue point).
            let args: [&std::ffi::OsStr; 15] = [
                "-nostdin".as_ref(),
                "-v".as_ref(),
                "error".as_ref(),
                "-y".as_ref(),
                "-i".as_ref(),
                whole.as_os_str(),
                "-ss".as_ref(),
                skip.as_ref(),
                "-t".as_ref(),
                length.as_ref(),
                "-c".as_ref(),
                "copy".as_ref(),
                "-f".as_ref(),
                "matroska".as_ref(),
                cut.as_os_str(),
            ];
            let done = run_program(ffmpeg, &args, "ffmpeg").await;
            let _ = tokio::fs::remove_file(&whole).await;
            if let Err(e) = done {
                let _ = tokio::fs::remove_file(&cut).await;
                return Err(e);
            }
        }
        None => tokio::fs::rename(&whole, &cut).await.map_err(|e| {
            ConvertError::retry("renaming the converted file failed").with_detail(e.to_string())
        })?,
    }
    let size = tokio::fs::metadata(&cut)
        .await
        .map_err(|e| {
            ConvertError::retry("the converted file cannot be read").with_detail(e.to_string())
        })?
        .len();
    let seconds = match &tools.ffprobe {
        Some(ffprobe) => probe_duration(ffprobe, &cut)
            .await
            .unwrap_or(length.as_secs_f64()),
        None => length.as_secs_f64(),
    };
    Ok(Converted {
        media_path: format!("recordings/{file}"),
        // Twilio's duration: whole seconds, at least one.
        duration: (seconds.round() as i32).max(1),
        size: size as i64,
    })
}

/// The node's file of the job's stream, with when the node opened it. Janus names them
/// `videoroom-<room>-user-<participant>-<µs>-<audio|video>-<mindex>.mjr`: the one the segment
/// started in is the last opened by then (a few seconds late, when recording was switched on
/// after the segment began), else the first opened during it.
pub fn stream_file(dir: &Path, job: &Job) -> Option<(PathBuf, DateTime<Utc>)> {
    let prefix = format!("videoroom-{}-user-{}-", job.room_sid, job.participant_sid);
    let suffix = format!("-{}-{}.mjr", job.kind, job.media_mindex);
    let mut files: Vec<(DateTime<Utc>, PathBuf)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let micros: i64 = name
                .strip_prefix(&prefix)?
                .strip_suffix(&suffix)?
                .parse()
                .ok()?;
            Some((DateTime::from_timestamp_micros(micros)?, entry.path()))
        })
        .filter(|(at, _)| *at < job.media_ended_at)
        .collect();
    files.sort();
    let late = job.media_started_at + chrono::Duration::seconds(5);
    let chosen = files
        .iter()
        .rev()
        .find(|(at, _)| *at <= late)
        .or(files.first())?;
    Some((chosen.1.clone(), chosen.0))
}

/// Runs a program to its end (killed after `PROGRAM_TIMEOUT`); its error output's end says why
/// it failed.
async fn run_program(
    program: &Path,
    args: &[&std::ffi::OsStr],
    what: &str,
) -> Result<(), ConvertError> {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(PROGRAM_TIMEOUT, child).await {
        Err(_) => Err(ConvertError::retry(format!("{what} took too long"))),
        Ok(Err(e)) => {
            Err(ConvertError::retry(format!("{what} did not start")).with_detail(e.to_string()))
        }
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(
            ConvertError::retry(format!("{what} failed ({})", out.status))
                .with_detail(tail(&out.stderr)),
        ),
    }
}

/// How long a job waits before its next claim after its `attempts`-th failed: 2, 4, 8 ... 64 s.
pub fn retry_in(attempts: i32) -> Duration {
    Duration::from_secs(2u64.pow(attempts.clamp(1, 6) as u32))
}

/// The end of a program's error output (what says why it failed).
pub fn tail(stderr: &[u8]) -> String {
    let err = String::from_utf8_lossy(stderr);
    let chars: Vec<char> = err.trim().chars().collect();
    chars[chars.len().saturating_sub(300)..].iter().collect()
}

/// A media file's duration in seconds, as `ffprobe` reads it.
pub async fn probe_duration(ffprobe: &Path, file: &Path) -> Option<f64> {
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(ffprobe)
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(file)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
