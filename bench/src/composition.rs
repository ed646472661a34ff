//! Composition speed: roomd's composition (`media::compose`: the layout planned, one ffmpeg
//! filter graph) of a 4-participant grid at 640x480, in both formats, as seconds of output per
//! second of wall time; against the same encoder re-encoding one participant's video alone to
//! 640x480 in the same run (the baseline: what any composition must pay to encode its picture).
//! Skipped where ffmpeg is missing.

use anyhow::Result;
use roomd::db::composition_jobs::{Job, RoomSpan, Source};
use roomd::media::compose::{compose, plan};
use roomd::media::convert::Tools;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub(crate) struct CompositionResult {
    pub(crate) format: &'static str,
    /// Seconds of media each participant published.
    pub(crate) media_seconds: u32,
    pub(crate) participants: usize,
    /// Seconds of composed output per second of wall time.
    pub(crate) output_seconds_per_second: f64,
    /// The encoder alone on one participant's video (same codec and size).
    pub(crate) bare_encode_seconds_per_second: f64,
    /// roomd's speed over the bare encoder's.
    pub(crate) ratio_to_bare_encode: f64,
}

fn ffmpeg(tools: &Tools, args: &[&str], out: &Path) -> Result<()> {
    let ok = std::process::Command::new(tools.ffmpeg.as_ref().expect("checked"))
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()?
        .success();
    anyhow::ensure!(ok, "ffmpeg failed making {}", out.display());
    Ok(())
}

pub(crate) async fn run(quick: bool) -> Result<Vec<CompositionResult>> {
    let Some(tools) = Tools::find().filter(|t| t.ffmpeg.is_some() && t.ffprobe.is_some()) else {
        eprintln!("        composition: skipped (ffmpeg missing)");
        return Ok(Vec::new());
    };
    let seconds: u32 = if quick { 10 } else { 60 };
    let dir = std::env::temp_dir().join(format!(
        "roomd-bench-composition-{}",
        &roomd::domain::sid::random_hex32()[..8]
    ));
    std::fs::create_dir_all(dir.join("recordings"))?;
    let start = chrono::Utc::now() - chrono::Duration::seconds(i64::from(seconds) + 10);
    let mut sources = Vec::new();
    for (i, pattern) in ["testsrc", "testsrc2", "smptebars", "rgbtestsrc"]
        .iter()
        .enumerate()
    {
        let d = seconds.to_string();
        for kind in ["video", "audio"] {
            let sid = roomd::domain::sid::generate("RT");
            let file = format!(
                "recordings/{sid}.{}",
                if kind == "video" { "mkv" } else { "mka" }
            );
            if kind == "video" {
                let src = format!("{pattern}=s=640x480:r=24:d={d}");
                ffmpeg(
                    &tools,
                    &[
                        "-f",
                        "lavfi",
                        "-i",
                        &src,
                        "-pix_fmt",
                        "yuv420p",
                        "-c:v",
                        "libvpx",
                        "-b:v",
                        "800k",
                        "-deadline",
                        "realtime",
                        "-cpu-used",
                        "8",
                    ],
                    &dir.join(&file),
                )?;
            } else {
                let src = format!("sine=f={}:d={d}", 220 * (i + 1));
                ffmpeg(
                    &tools,
                    &["-f", "lavfi", "-i", &src, "-c:a", "libopus"],
                    &dir.join(&file),
                )?;
            }
            sources.push(Source {
                sid,
                source_sid: roomd::domain::sid::generate("MT"),
                track_name: format!("p{i}-{kind}"),
                kind: kind.to_string(),
                media_path: file,
                media_started_at: start,
                media_ended_at: start + chrono::Duration::seconds(i64::from(seconds)),
            });
        }
    }
    let span = RoomSpan {
        date_created: start,
        end_time: Some(start + chrono::Duration::seconds(i64::from(seconds))),
        clocked: false,
    };
    let mut results = Vec::new();
    for format in ["mp4", "webm"] {
        let job = Job {
            sid: roomd::domain::sid::generate("CJ"),
            account_sid: roomd::domain::sid::AccountSid::generate().to_string(),
            room_sid: roomd::domain::sid::RoomSid::generate().to_string(),
            video_layout: sqlx::types::Json(serde_json::json!({"grid": {"video_sources": ["*"]}})),
            audio_sources: vec!["*".into()],
            audio_sources_excluded: Vec::new(),
            resolution: "640x480".into(),
            format: format.into(),
            trimmed: true,
            attempts: 1,
        };
        let planned = plan(&job, &sources, &span).map_err(|e| anyhow::anyhow!(e.full()))?;
        let t = Instant::now();
        let (progress, _) = tokio::sync::watch::channel(0.0);
        let done = compose(&tools, &dir, &job, &planned, progress)
            .await
            .map_err(|e| anyhow::anyhow!("composing failed: {}", e.full()))?;
        let wall = t.elapsed().as_secs_f64();
        anyhow::ensure!(done.duration.abs_diff(seconds as i32) <= 1, "{done:?}");
        // The baseline: one participant's video re-encoded alone, same encoder and size.
        let bare = dir.join(format!("bare.{format}"));
        let video = dir.join(&sources[0].media_path);
        let video = video.to_str().expect("a UTF-8 path");
        let codec: &[&str] = if format == "mp4" {
            &["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
        } else {
            &[
                "-c:v",
                "libvpx",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "1M",
                "-crf",
                "10",
            ]
        };
        let mut args = vec![
            "-i", video, "-r", "25", "-pix_fmt", "yuv420p", "-threads", "2",
        ];
        args.extend_from_slice(codec);
        let t = Instant::now();
        ffmpeg(&tools, &args, &bare)?;
        let bare_wall = t.elapsed().as_secs_f64();
        let r = CompositionResult {
            format,
            media_seconds: seconds,
            participants: 4,
            output_seconds_per_second: f64::from(done.duration as u32) / wall,
            bare_encode_seconds_per_second: f64::from(seconds) / bare_wall,
            ratio_to_bare_encode: (f64::from(done.duration as u32) / wall)
                / (f64::from(seconds) / bare_wall),
        };
        eprintln!(
            "        composition ({format}, 4-participant grid at 640x480, {seconds} s): {:.2} s of output per second; the encoder alone on one participant {:.2} (ratio {:.2})",
            r.output_seconds_per_second, r.bare_encode_seconds_per_second, r.ratio_to_bare_encode
        );
        results.push(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(results)
}
