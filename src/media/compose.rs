//! Making one composition with ffmpeg: the room's recordings the composition selects are placed
//! on its timeline (`layout`), video drawn over a black picture region by region (by `z_pos`),
//! audio mixed, encoded as `mp4` (H.264, AAC) or `webm` (VP8, Opus). ffmpeg runs as a child
//! process at a lower priority, with a time limit, reporting how far it got; the caller renews
//! its claim with each report and stops the child when the claim is lost.

use super::convert::{probe_duration, tail, ConvertError, Tools};
use super::layout::{place_region, Clip, Placement, Timeline};
use crate::db::composition_jobs::{Job, RoomSpan, Source};
use crate::domain::video_layout::{selects, Layout, Resolution, SourceNames};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// The most inputs and placements one composition may use (they bound ffmpeg's file
/// descriptors, memory and filter graph).
const MAX_INPUTS: usize = 96;
const MAX_PLACEMENTS: usize = 512;
/// The picture rate of composed video.
const FPS: u32 = 25;

/// A made composition: its file (relative to the media directory), seconds and bytes.
#[derive(Debug)]
pub struct Composed {
    pub media_path: String,
    pub duration: i32,
    pub size: i64,
}

/// Where composed files are kept: `<media dir>/compositions/`.
pub fn compositions_dir(media_dir: &Path) -> std::path::PathBuf {
    media_dir.join("compositions")
}

/// What ffmpeg is asked to do: its arguments after the inputs, and the output's length.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The recordings it reads, in input order.
    pub inputs: Vec<String>,
    pub filter: String,
    pub video: bool,
    pub audio: bool,
    pub duration: f64,
}

fn names(s: &Source) -> SourceNames<'_> {
    SourceNames {
        track_name: &s.track_name,
        recording_sid: &s.sid,
        track_sid: &s.source_sid,
    }
}

/// The input a recording is (added the first time it is used).
fn input_of<'a>(s: &'a Source, inputs: &mut Vec<&'a Source>) -> usize {
    match inputs.iter().position(|i| i.sid == s.sid) {
        Some(i) => i,
        None => {
            inputs.push(s);
            inputs.len() - 1
        }
    }
}

fn too_large() -> ConvertError {
    ConvertError::permanent(format!(
        "the composition would use more than {MAX_INPUTS} recordings or {MAX_PLACEMENTS} placements"
    ))
}

fn seconds(t: DateTime<Utc>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// Plans a composition of `sources` (the room's completed recordings, oldest first).
pub fn plan(job: &Job, sources: &[Source], span: &RoomSpan) -> Result<Plan, ConvertError> {
    let layout: Layout = serde_json::from_value(job.video_layout.0.clone()).map_err(|e| {
        ConvertError::permanent("the stored layout is unreadable").with_detail(e.to_string())
    })?;
    let resolution = Resolution::parse(&job.resolution)
        .map_err(|_| ConvertError::permanent("the stored resolution is unreadable"))?;
    let audio: Vec<&Source> = sources
        .iter()
        .filter(|s| s.kind == "audio")
        .filter(|s| selects(&job.audio_sources, &job.audio_sources_excluded, &names(s)))
        .collect();
    let mut regions: Vec<(&String, &crate::domain::video_layout::Region, Vec<&Source>)> = layout
        .iter()
        .map(|(name, r)| {
            let chosen = sources
                .iter()
                .filter(|s| s.kind == "video")
                .filter(|s| selects(&r.video_sources, &r.video_sources_excluded, &names(s)))
                .collect();
            (name, r, chosen)
        })
        .collect();
    regions.sort_by_key(|(name, r, _)| (r.z_pos, name.as_str()));
    // The inputs: each recording used once, whatever number of regions shows it.
    let mut inputs: Vec<&Source> = Vec::new();
    let used: Vec<&Source> = audio
        .iter()
        .copied()
        .chain(regions.iter().flat_map(|(_, _, v)| v.iter().copied()))
        .collect();
    if used.is_empty() {
        return Err(ConvertError::permanent(
            "no recording of the room matches the composition's sources",
        ));
    }
    // Bounded before any placing: the placements grow with the sources.
    let mut distinct: Vec<&str> = used.iter().map(|s| s.sid.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() > MAX_INPUTS {
        return Err(too_large());
    }
    let spans: Vec<(f64, f64)> = used
        .iter()
        .map(|s| (seconds(s.media_started_at), seconds(s.media_ended_at)))
        .collect();
    let whole = (!span.clocked)
        .then(|| {
            span.end_time
                .map(|end| (seconds(span.date_created), seconds(end)))
        })
        .flatten();
    let timeline = Timeline::new(&spans, job.trimmed, whole);
    let duration = timeline.duration();
    if duration < 0.05 {
        return Err(ConvertError::permanent(
            "the selected recordings hold no media",
        ));
    }
    let clip = |s: &Source, input: usize| {
        let start = timeline.map(seconds(s.media_started_at));
        Clip {
            input,
            start,
            end: start + (seconds(s.media_ended_at) - seconds(s.media_started_at)),
        }
    };
    let mut placements: Vec<(Placement, f64)> = Vec::new();
    for (_, region, chosen) in &regions {
        let clips: Vec<Clip> = chosen
            .iter()
            .map(|s| clip(s, input_of(s, &mut inputs)))
            .collect();
        for p in place_region(region, resolution, &clips) {
            let start = clips
                .iter()
                .find(|c| c.input == p.input)
                .map_or(0.0, |c| c.start);
            placements.push((p, start));
        }
    }
    let audio_clips: Vec<Clip> = audio
        .iter()
        .map(|s| clip(s, input_of(s, &mut inputs)))
        .collect();
    if placements.len() > MAX_PLACEMENTS {
        return Err(too_large());
    }
    let mut filter = String::new();
    let video = !layout.is_empty();
    if video {
        let _ = write!(
            filter,
            "color=c=black:s={}x{}:r={FPS}:d={duration:.3},format=yuv420p[b0];",
            resolution.width, resolution.height
        );
        for (input, _) in inputs.iter().enumerate() {
            let uses = placements.iter().filter(|(p, _)| p.input == input).count();
            if uses == 0 {
                continue;
            }
            let _ = write!(filter, "[{input}:v]setpts=PTS-STARTPTS");
            if uses > 1 {
                let _ = write!(filter, ",split={uses}");
            }
            for k in 0..uses {
                let _ = write!(filter, "[v{input}_{k}]");
            }
            filter.push(';');
        }
        let mut taken = vec![0usize; inputs.len()];
        for (j, (p, start)) in placements.iter().enumerate() {
            let k = taken[p.input];
            taken[p.input] += 1;
            let (w, h) = (p.width, p.height);
            let _ = write!(
                filter,
                "[v{i}_{k}]trim=start={a:.3}:end={b:.3},setpts=PTS-STARTPTS+{from:.3}/TB,\
                 scale={w}:{h}:force_original_aspect_ratio=decrease,\
                 pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1[p{j}];\
                 [b{j}][p{j}]overlay=x={x}:y={y}:eof_action=pass:enable='between(t,{from:.3},{to:.3})'[b{next}];",
                i = p.input,
                a = (p.from - start).max(0.0),
                b = p.to - start,
                from = p.from,
                to = p.to,
                x = p.x,
                y = p.y,
                next = j + 1,
            );
        }
        let _ = write!(filter, "[b{}]null[vout];", placements.len());
    }
    let audio_out = !audio_clips.is_empty();
    if audio_out {
        for (j, c) in audio_clips.iter().enumerate() {
            let _ = write!(
                filter,
                "[{}:a]asetpts=PTS-STARTPTS,aresample=48000,adelay=delays={}:all=1[a{j}];",
                c.input,
                (c.start * 1000.0).round() as u64
            );
        }
        for j in 0..audio_clips.len() {
            let _ = write!(filter, "[a{j}]");
        }
        let _ = write!(
            filter,
            "amix=inputs={}:duration=longest:normalize=0,apad,atrim=end={duration:.3}[aout]",
            audio_clips.len()
        );
    }
    Ok(Plan {
        inputs: inputs.iter().map(|s| s.media_path.clone()).collect(),
        filter: filter.trim_end_matches(';').to_string(),
        video,
        audio: audio_out,
        duration,
    })
}

/// Runs ffmpeg for `plan`, writing `<media dir>/compositions/<CJ>-<attempt>.<format>`.
/// `progress` follows the seconds of output made; dropping the future stops ffmpeg.
pub async fn compose(
    tools: &Tools,
    media_dir: &Path,
    job: &Job,
    plan: &Plan,
    progress: tokio::sync::watch::Sender<f64>,
) -> Result<Composed, ConvertError> {
    let ffmpeg = tools
        .ffmpeg
        .as_ref()
        .ok_or_else(|| ConvertError::permanent("ffmpeg is not installed"))?;
    let out_dir = compositions_dir(media_dir);
    tokio::fs::create_dir_all(&out_dir).await.map_err(|e| {
        ConvertError::retry("the media directory cannot be written")
            .with_detail(format!("creating {}: {e}", out_dir.display()))
    })?;
    let file = format!("{}-{}.{}", job.sid, job.attempts, job.format);
    let out = out_dir.join(&file);
    let mut cmd = tokio::process::Command::new(ffmpeg);
    cmd.args([
        "-nostdin",
        "-v",
        "error",
        "-nostats",
        "-progress",
        "pipe:1",
        "-y",
    ]);
    for input in &plan.inputs {
        cmd.arg("-i").arg(media_dir.join(input));
    }
    cmd.arg("-filter_complex").arg(&plan.filter);
    let mp4 = job.format == "mp4";
    if plan.video {
        cmd.args(["-map", "[vout]"]);
        if mp4 {
            cmd.args(["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]);
        } else {
            cmd.args(["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"]);
            cmd.args(["-b:v", "1M", "-crf", "10"]);
        }
        cmd.args(["-pix_fmt", "yuv420p", "-threads", "2"]);
    }
    if plan.audio {
        cmd.args(["-map", "[aout]"]);
        if mp4 {
            cmd.args(["-c:a", "aac", "-b:a", "128k"]);
        } else {
            cmd.args(["-c:a", "libopus", "-b:a", "96k"]);
        }
    }
    if mp4 {
        cmd.args(["-movflags", "+faststart"]);
    }
    cmd.arg("-t").arg(format!("{:.3}", plan.duration)).arg(&out);
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: `nice` and `prctl` are async-signal-safe system calls. Compositions yield the CPU
    // to the API, and ffmpeg dies with the process that started it (a killed roomd leaves no
    // encoder running; its claim is taken over once its lease runs out).
    unsafe {
        cmd.pre_exec(|| {
            libc::nice(10);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let result = run(cmd, plan.duration, progress).await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&out).await;
        return Err(e);
    }
    let size = tokio::fs::metadata(&out)
        .await
        .map_err(|e| {
            ConvertError::retry("the composed file cannot be read").with_detail(e.to_string())
        })?
        .len();
    let seconds = match &tools.ffprobe {
        Some(ffprobe) => probe_duration(ffprobe, &out).await.unwrap_or(plan.duration),
        None => plan.duration,
    };
    Ok(Composed {
        media_path: format!("compositions/{file}"),
        duration: (seconds.round() as i32).max(1),
        size: size as i64,
    })
}

async fn run(
    mut cmd: tokio::process::Command,
    duration: f64,
    progress: tokio::sync::watch::Sender<f64>,
) -> Result<(), ConvertError> {
    let mut child = cmd
        .spawn()
        .map_err(|e| ConvertError::retry("ffmpeg did not start").with_detail(e.to_string()))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // Its error output is read alongside (kept short), so that ffmpeg never blocks on it.
    let errors = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::io::AsyncReadExt::read(&mut stderr, &mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.len() > 16 * 1024 {
                        buf.drain(..buf.len() - 8 * 1024);
                    }
                }
            }
        }
        buf
    });
    // At most ten times real time, at least ten minutes.
    let limit = Duration::from_secs_f64((duration * 10.0).max(600.0));
    let deadline = tokio::time::Instant::now() + limit;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if let Some(us) = line.strip_prefix("out_time_us=") {
                        if let Ok(us) = us.trim().parse::<i64>() {
                            progress.send_replace((us.max(0) as f64 / 1e6).min(duration));
                        }
                    }
                }
                _ => break,
            },
            _ = tokio::time::sleep_until(deadline) => {
                let _ = child.kill().await;
                return Err(ConvertError::retry("ffmpeg took too long"));
            }
        }
    }
    let status = tokio::time::timeout_at(deadline, child.wait())
        .await
        .map_err(|_| ConvertError::retry("ffmpeg took too long"))?
        .map_err(|e| ConvertError::retry("waiting for ffmpeg failed").with_detail(e.to_string()))?;
    let stderr = errors.await.unwrap_or_default();
    if status.success() {
        Ok(())
    } else {
        Err(ConvertError::retry(format!("ffmpeg failed ({status})")).with_detail(tail(&stderr)))
    }
}
