//! Recording conversion throughput: roomd's conversion of one segment (`media::convert`: find the
//! stream file, `janus-pp-rec`, `ffmpeg` cut, `ffprobe`) on a generated Opus stream file, against
//! `janus-pp-rec` alone on the same file in the same run (the baseline: what any conversion must
//! pay). Skipped where janus-pp-rec or ffmpeg is missing.

use anyhow::Result;
use roomd::db::recording_jobs::Job;
use roomd::media::convert::{convert, Tools};
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub(crate) struct ConversionResult {
    /// Seconds of media in the stream file.
    pub(crate) media_seconds: u32,
    pub(crate) runs: usize,
    /// Recordings converted per minute, one at a time.
    pub(crate) recordings_per_minute: f64,
    /// Seconds of media converted per second of CPU (the child processes').
    pub(crate) media_seconds_per_cpu_second: f64,
    /// `janus-pp-rec` alone on the same file.
    pub(crate) bare_pp_rec_per_minute: f64,
    /// roomd's conversions per minute over the bare tool's.
    pub(crate) ratio_to_bare_pp_rec: f64,
}

fn children_cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a properly sized, writable struct.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

pub(crate) async fn run(quick: bool) -> Result<Option<ConversionResult>> {
    let Some(tools) = Tools::find().filter(|t| t.ffmpeg.is_some() && t.ffprobe.is_some()) else {
        eprintln!("        conversion: skipped (janus-pp-rec or ffmpeg missing)");
        return Ok(None);
    };
    let (media_seconds, runs) = if quick { (20, 3) } else { (120, 10) };
    let dir = std::env::temp_dir().join(format!(
        "roomd-bench-conversion-{}",
        &roomd::domain::sid::random_hex32()[..8]
    ));
    let room = roomd::domain::sid::RoomSid::generate().to_string();
    let participant = roomd::domain::sid::ParticipantSid::generate().to_string();
    let started = chrono::Utc::now() - chrono::Duration::seconds(i64::from(media_seconds));
    let rooms = roomd::media::recording::rooms_dir(&dir).join(&room);
    std::fs::create_dir_all(&rooms)?;
    let source = rooms.join(format!(
        "videoroom-{room}-user-{participant}-{}-audio-0.mjr",
        started.timestamp_micros()
    ));
    roomd::media::mjr::generate_opus(
        tools.ffmpeg.as_ref().expect("checked"),
        media_seconds,
        started.timestamp_micros(),
        &source,
    )?;
    let job = |attempt: i32| Job {
        sid: roomd::domain::sid::generate(roomd::domain::sid::RECORDING),
        account_sid: roomd::domain::sid::AccountSid::generate().to_string(),
        room_sid: room.clone(),
        participant_sid: participant.clone(),
        kind: "audio".into(),
        codec: "OPUS".into(),
        media_mindex: 0,
        media_started_at: started,
        media_ended_at: started + chrono::Duration::seconds(i64::from(media_seconds)),
        media_file: None,
        attempts: attempt,
    };

    // The baseline: janus-pp-rec alone.
    let bare_out = dir.join("bare.mka");
    let t = Instant::now();
    for _ in 0..runs {
        let status = tokio::process::Command::new(&tools.pp_rec)
            .arg(&source)
            .arg(&bare_out)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await?;
        anyhow::ensure!(
            status.success(),
            "janus-pp-rec failed on the generated file"
        );
    }
    let bare_per_minute = runs as f64 * 60.0 / t.elapsed().as_secs_f64();

    let cpu = children_cpu_seconds();
    let t = Instant::now();
    for i in 0..runs {
        let done = convert(&tools, &dir, &job(i as i32 + 1))
            .await
            .map_err(|e| anyhow::anyhow!("converting failed: {}", e.full()))?;
        anyhow::ensure!(
            done.duration.abs_diff(media_seconds as i32) <= 1,
            "{done:?}"
        );
    }
    let wall = t.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - cpu;
    let _ = std::fs::remove_dir_all(&dir);
    let per_minute = runs as f64 * 60.0 / wall;
    let result = ConversionResult {
        media_seconds,
        runs,
        recordings_per_minute: per_minute,
        media_seconds_per_cpu_second: (runs as f64 * f64::from(media_seconds)) / cpu.max(1e-6),
        bare_pp_rec_per_minute: bare_per_minute,
        ratio_to_bare_pp_rec: per_minute / bare_per_minute,
    };
    eprintln!(
        "        conversion of {} s of Opus: {:.0} recordings/min, {:.0} s of media per CPU second; janus-pp-rec alone {:.0}/min (ratio {:.2})",
        result.media_seconds,
        result.recordings_per_minute,
        result.media_seconds_per_cpu_second,
        result.bare_pp_rec_per_minute,
        result.ratio_to_bare_pp_rec
    );
    Ok(Some(result))
}
