//! Compositions, composition hooks and the two settings resources: real ffmpeg composing real
//! media files (made with ffmpeg as the recordings a room left), the job queue across two
//! workers and after a dead process, the callbacks, and Twilio's OpenAPI response schemas on
//! every operation. Skipped (printed) where Janus or ffmpeg is missing.

use crate::helpers::{enc, TestApp};
use crate::media::{spawn_media_app, MediaApp};
use crate::receiver::Receiver;
use roomd::media::composition_jobs::{run, CompositionSettings};
use roomd::media::convert::Tools;
use roomd::media::MediaPlane;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

async fn composition_app() -> Option<(MediaApp, Tools)> {
    let Some(tools) = Tools::find().filter(|t| t.ffmpeg.is_some() && t.ffprobe.is_some()) else {
        eprintln!("SKIPPED: janus-pp-rec or ffmpeg missing (apt-get install janus-tools ffmpeg)");
        return None;
    };
    Some((spawn_media_app(Duration::ZERO).await?, tools))
}

/// A composition worker of another "process" (its own plane and owner) on the app's database
/// and media directory.
async fn start_worker(m: &MediaApp, tools: &Tools, lease: Duration) {
    let plane = Arc::new(MediaPlane::new(
        sqlx::PgPool::connect(&m.app.database_url).await.unwrap(),
        Arc::new(crate::helpers::test_master_key()),
        None,
        m.media.plane.media_dir.clone(),
    ));
    tokio::spawn(run(
        plane,
        Arc::new(roomd::telemetry::metrics::Metrics::new()),
        tools.clone(),
        CompositionSettings {
            lease,
            ..Default::default()
        },
        std::future::pending(),
    ));
}

async fn within<F: AsyncFnMut() -> bool>(seconds: u64, what: &str, mut check: F) {
    for _ in 0..seconds * 5 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("not within {seconds} s: {what}");
}

fn ffmpeg(tools: &Tools, args: &[&str], out: &Path) {
    let done = std::process::Command::new(tools.ffmpeg.as_ref().unwrap())
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .unwrap();
    assert!(done.success());
}

/// Leaves, for each `(identity, colour)`, an audio and a video recording of `seconds` in an
/// ended room (their files made with ffmpeg, as a conversion leaves them), the second
/// participant starting `stagger` seconds after the first. Returns the room.
async fn room_with_recordings(
    m: &MediaApp,
    tools: &Tools,
    name: &str,
    callback: Option<&str>,
    people: &[(&str, &str)],
    seconds: u32,
) -> String {
    let form = match callback {
        Some(url) => format!(
            "UniqueName={name}&RecordParticipantsOnConnect=true&StatusCallback={}",
            enc(url)
        ),
        None => format!("UniqueName={name}&RecordParticipantsOnConnect=true"),
    };
    let room = m.app.create_room(&form).await["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut joined = Vec::new();
    for (who, _) in people {
        joined.push(
            m.app.join(&room, who).await["sid"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let dir = m.media.plane.media_dir.join("recordings");
    std::fs::create_dir_all(&dir).unwrap();
    let start = chrono::Utc::now() - chrono::Duration::seconds(i64::from(seconds) + 5);
    for (i, ((who, colour), participant)) in people.iter().zip(&joined).enumerate() {
        for kind in ["video", "audio"] {
            let sid = roomd::domain::sid::generate("RT");
            let ext = if kind == "audio" { "mka" } else { "mkv" };
            let file = format!("{sid}.{ext}");
            let d = seconds.to_string();
            if kind == "video" {
                let src = format!("color=c={colour}:s=320x240:r=15:d={d}");
                ffmpeg(
                    tools,
                    &["-f", "lavfi", "-i", &src, "-c:v", "libvpx", "-b:v", "300k"],
                    &dir.join(&file),
                );
            } else {
                let src = format!("sine=f={}:d={d}", 300 + 200 * i);
                ffmpeg(
                    tools,
                    &["-f", "lavfi", "-i", &src, "-c:a", "libopus"],
                    &dir.join(&file),
                );
            }
            let began = start + chrono::Duration::milliseconds(500 * i as i64);
            sqlx::query(
                "INSERT INTO recordings (sid, account_sid, room_sid, participant_sid, source_sid, \
                    track_name, kind, codec, media_mindex, status, media_started_at, media_ended_at, \
                    duration, size, media_path) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, 'completed', $9, $10, $11, 1, $12)",
            )
            .bind(&sid)
            .bind(&m.app.account.sid)
            .bind(&room)
            .bind(participant)
            .bind(roomd::domain::sid::generate("MT"))
            .bind(format!("{who}-{kind}"))
            .bind(kind)
            .bind(if kind == "audio" { "OPUS" } else { "VP8" })
            .bind(began)
            .bind(began + chrono::Duration::seconds(i64::from(seconds)))
            .bind(seconds as i32)
            .bind(format!("recordings/{file}"))
            .execute(&m.app.pool)
            .await
            .unwrap();
        }
    }
    m.app.complete_room(&room).await;
    room
}

/// Checks `body` against Twilio's OpenAPI response schema of `method path` (python3 and the
/// vendored document); skipped (printed) without python3.
fn conforms(method: &str, path: &str, status: u16, body: &Value) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openapi");
    let script = "import json, sys; import conformance as c; a = json.load(sys.stdin); \
        p = c.problems(a['method'], a['path'], a['status'], a['body']); print('\\n'.join(p)); \
        sys.exit(1 if p else 0)";
    let child = std::process::Command::new("python3")
        .args(["-c", script])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("SKIPPED: no python3 for the OpenAPI check");
        return;
    };
    let input = json!({"method": method, "path": path, "status": status, "body": body});
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{method} {path}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

async fn composition(app: &TestApp, sid: &str) -> Value {
    let r = app.get(&format!("/v1/Compositions/{sid}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    conforms("GET", "/v1/Compositions/{Sid}", 200, &r.body);
    r.body
}

async fn wait_done(app: &TestApp, sid: &str) -> Value {
    let mut last = Value::Null;
    within(120, &format!("composition {sid} completed"), async || {
        last = composition(app, sid).await;
        last["status"] == "completed" || last["status"] == "failed"
    })
    .await;
    assert_eq!(last["status"], "completed", "{last}");
    last
}

/// `DELETE path` as the app's account; the status.
async fn delete(app: &TestApp, path: &str) -> u16 {
    let a = &app.account;
    let r = app
        .client
        .delete(app.url(path))
        .basic_auth(&a.sid, Some(&a.token))
        .send()
        .await;
    r.unwrap().status().as_u16()
}

/// `GET .../Media` without following the redirect: the status and the body's `redirect_to`.
async fn media_link(app: &TestApp, sid: &str) -> (u16, Option<String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let a = &app.account;
    let r = client
        .get(app.url(&format!("/v1/Compositions/{sid}/Media")))
        .basic_auth(&a.sid, Some(&a.token))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_string());
    let body: Value = r.json().await.unwrap();
    if status == 302 {
        assert_eq!(body["redirect_to"].as_str(), location.as_deref());
    }
    (status, body["redirect_to"].as_str().map(str::to_string))
}

/// Downloads a composition's media through its `.../Media` redirect.
async fn download(app: &TestApp, sid: &str, to: &Path) -> String {
    let (status, link) = media_link(app, sid).await;
    assert_eq!(status, 302);
    let link = link.unwrap();
    let file = reqwest::get(&link).await.unwrap();
    assert_eq!(file.status(), 200);
    let mime = file.headers()["content-type"].to_str().unwrap().to_string();
    std::fs::write(to, file.bytes().await.unwrap()).unwrap();
    mime
}

fn probe(tools: &Tools, file: &Path) -> Value {
    let out = std::process::Command::new(tools.ffprobe.as_ref().unwrap())
        .args([
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
        ])
        .arg(file)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The mean brightness of the left and right halves of the frame at `at` seconds.
fn halves(tools: &Tools, file: &Path, at: f64) -> (f64, f64) {
    let out = std::process::Command::new(tools.ffmpeg.as_ref().unwrap())
        .args(["-nostdin", "-v", "error", "-ss", &format!("{at:.2}"), "-i"])
        .arg(file)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    let px = out.stdout;
    assert_eq!(px.len(), 640 * 480, "one 640x480 grey frame");
    let (mut left, mut right) = (0u64, 0u64);
    for (i, p) in px.iter().enumerate() {
        if i % 640 < 320 {
            left += u64::from(*p);
        } else {
            right += u64::from(*p);
        }
    }
    let n = (320 * 480) as f64;
    (left as f64 / n, right as f64 / n)
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "roomd-{}-{name}",
        &roomd::domain::sid::random_hex32()[..8]
    ))
}

#[tokio::test]
async fn a_grid_of_two_is_composed_in_mp4_and_webm_with_callbacks_media_and_delete() {
    let Some((m, tools)) = composition_app().await else {
        return;
    };
    let receiver = Receiver::ok().await;
    let room = room_with_recordings(
        &m,
        &tools,
        "Grid",
        Some(&receiver.url("/composed")),
        &[("alice", "white"), ("bob", "yellow")],
        6,
    )
    .await;
    let layout = enc(r#"{"grid": {"video_sources": ["*-video"]}}"#);
    let callback = enc(&receiver.url("/composition"));
    let made = m
        .app
        .post(
            "/v1/Compositions",
            &format!(
                "RoomSid={room}&VideoLayout={layout}&AudioSources=*&Format=mp4&\
                 Resolution=640x480&StatusCallback={callback}"
            ),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    conforms("POST", "/v1/Compositions", 201, &made.body);
    assert_eq!(made.body["status"], "enqueued");
    assert_eq!(made.body["video_layout"]["grid"]["reuse"], "show_oldest");
    assert_eq!(made.body["trim"], true);
    let mp4 = made.body["sid"].as_str().unwrap().to_string();
    let webm = m
        .app
        .post(
            "/v1/Compositions",
            &format!("RoomSid={room}&VideoLayout={layout}&AudioSources=alice*&Format=webm"),
        )
        .await;
    assert_eq!(webm.status, 201, "{}", webm.body);
    let webm = webm.body["sid"].as_str().unwrap().to_string();

    start_worker(&m, &tools, Duration::from_secs(30)).await;
    let done = wait_done(&m.app, &mp4).await;
    assert!(done["size"].as_i64().unwrap() > 1000, "{done}");
    assert!(done["bitrate"].as_i64().unwrap() > 0, "{done}");
    let file = scratch("grid.mp4");
    assert_eq!(download(&m.app, &mp4, &file).await, "video/mp4");
    let info = probe(&tools, &file);
    let codecs: Vec<&str> = info["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["h264", "aac"], "{info}");
    assert_eq!(
        (
            info["streams"][0]["width"].as_i64(),
            info["streams"][0]["height"].as_i64()
        ),
        (Some(640), Some(480))
    );
    // The room's media spans 6.5 s (bob began 0.5 s after alice): trimmed, that is the length.
    let seconds: f64 = info["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((seconds - 6.5).abs() < 1.0, "{seconds}");
    assert_eq!(done["duration"].as_i64().unwrap(), seconds.round() as i64);
    // Mid-way both tiles show (white and yellow), side by side, on black around them.
    let (left, right) = halves(&tools, &file, 3.0);
    assert!(
        left > 60.0 && right > 60.0,
        "two non-black tiles: {left} {right}"
    );

    let done = wait_done(&m.app, &webm).await;
    let file = scratch("grid.webm");
    assert_eq!(download(&m.app, &webm, &file).await, "video/webm");
    let info = probe(&tools, &file);
    let codecs: Vec<&str> = info["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["vp8", "opus"], "{info}");
    assert!(done["duration"].as_i64().unwrap() >= 6);

    // Callbacks: enqueued, started, (progress,) available, each signed, in the room's sequence.
    let events = receiver.delivered(4).await;
    let of_mp4: Vec<&str> = events
        .iter()
        .filter(|e| e.param("CompositionSid") == Some(mp4.as_str()))
        .map(|e| e.event())
        .filter(|e| *e != "composition-progress")
        .collect();
    assert_eq!(
        of_mp4,
        [
            "composition-enqueued",
            "composition-started",
            "composition-available"
        ]
    );
    let available = events
        .iter()
        .find(|e| e.event() == "composition-available")
        .unwrap();
    assert_eq!(
        available.param("MediaUri"),
        Some(format!("/v1/Compositions/{mp4}/Media").as_str())
    );
    assert!(available.param("Duration").is_some() && available.param("Size").is_some());
    assert!(events
        .iter()
        .all(|e| e.signed_with(&receiver.base, &m.app.account.token)));

    // The list, its filters and paging bounds.
    let list = m
        .app
        .get(&format!("/v1/Compositions?RoomSid={room}&Status=completed"))
        .await;
    assert_eq!(list.status, 200);
    conforms("GET", "/v1/Compositions", 200, &list.body);
    assert_eq!(list.body["compositions"].as_array().unwrap().len(), 2);
    assert_eq!(m.app.get("/v1/Compositions?PageSize=101").await.status, 400);
    assert_eq!(m.app.get("/v1/Compositions?Status=done").await.status, 400);

    // Delete: 204, the resource stays `deleted`, its media is gone.
    assert_eq!(
        delete(&m.app, &format!("/v1/Compositions/{mp4}")).await,
        204
    );
    let gone = composition(&m.app, &mp4).await;
    assert_eq!(gone["status"], "deleted");
    assert!(gone["date_deleted"].is_string());
    assert_eq!(media_link(&m.app, &mp4).await.0, 404);
    assert!(!m
        .media
        .plane
        .media_dir
        .join("compositions")
        .read_dir()
        .unwrap()
        .any(|f| f.unwrap().file_name().to_string_lossy().starts_with(&mp4)));
    // Another account sees none of it.
    let other = crate::helpers::create_account(&m.app.pool, "other").await;
    let r = m
        .app
        .request_as(
            Some(&other),
            reqwest::Method::GET,
            &format!("/v1/Compositions/{webm}"),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn bad_composition_requests_are_refused_with_twilios_body_and_nothing_written() {
    let Some((m, tools)) = composition_app().await else {
        return;
    };
    let ended = room_with_recordings(&m, &tools, "Done", None, &[("a", "red")], 2).await;
    let live = m.app.create_room("UniqueName=Live").await["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let empty = m.app.create_room("UniqueName=Empty").await["sid"]
        .as_str()
        .unwrap()
        .to_string();
    m.app.complete_room(&empty).await;
    let layout = |l: &str| format!("RoomSid={ended}&VideoLayout={}", enc(l));
    for (form, why) in [
        ("AudioSources=*".to_string(), "no RoomSid"),
        ("RoomSid=RM123&AudioSources=*".to_string(), "not a SID"),
        (format!("RoomSid={live}&AudioSources=*"), "in progress"),
        (format!("RoomSid={empty}&AudioSources=*"), "no recordings"),
        (
            format!("RoomSid=RM{}&AudioSources=*", "0".repeat(32)),
            "no such room",
        ),
        (format!("RoomSid={ended}"), "nothing to compose"),
        (layout("{"), "not JSON"),
        (layout(r#"{"g": {"video_sources": []}}"#), "no sources"),
        (
            layout(r#"{"g": {"video_sources": ["*"], "width": 5000}}"#),
            "too wide",
        ),
        (
            layout(r#"{"g": {"video_sources": ["*"], "reuse": "often"}}"#),
            "bad reuse",
        ),
        (
            format!("RoomSid={ended}&AudioSources=*&Resolution=2000x10"),
            "bad resolution",
        ),
        (
            format!("RoomSid={ended}&AudioSources=*&Format=avi"),
            "bad format",
        ),
        (
            format!("RoomSid={ended}&AudioSources=*&Trim=perhaps"),
            "bad trim",
        ),
        (format!("RoomSid={ended}&AudioSources=%00"), "a NUL"),
    ] {
        let r = m.app.post("/v1/Compositions", &form).await;
        assert_eq!(r.status, 400, "{why}: {}", r.body);
        assert_eq!(r.body["code"], 20001, "{why}: {}", r.body);
        assert!(r.body["more_info"].as_str().unwrap().ends_with("/20001"));
    }
    let r = m
        .app
        .post(
            "/v1/Compositions",
            &format!("RoomSid={ended}&AudioSources=*&StatusCallback=nope"),
        )
        .await;
    assert_eq!((r.status, r.body["code"].as_i64()), (400, Some(53111)));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM compositions")
        .fetch_one(&m.app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "no refused request wrote a row");
    // An account with 100 compositions waiting makes no more until some are done.
    sqlx::query(
        "INSERT INTO compositions (sid, account_sid, room_sid, resolution, format, trimmed, audio_sources) \
         SELECT 'CJ' || md5(g::text), $1, $2, '640x480', 'webm', true, '{*}' FROM generate_series(1, 100) g",
    )
    .bind(&m.app.account.sid)
    .bind(&ended)
    .execute(&m.app.pool)
    .await
    .unwrap();
    let r = m
        .app
        .post(
            "/v1/Compositions",
            &format!("RoomSid={ended}&AudioSources=*"),
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_i64()),
        (400, Some(20001)),
        "{}",
        r.body
    );
    assert!(
        r.body["message"].as_str().unwrap().contains("waiting"),
        "{}",
        r.body
    );
    assert_eq!(
        m.app
            .get(&format!("/v1/Compositions/CJ{}", "0".repeat(32)))
            .await
            .status,
        404
    );
    assert_eq!(media_link(&m.app, "nope").await.0, 404);
    let forged = m
        .app
        .client
        .get(m.app.url(&format!(
            "/v1/Compositions/CJ{}/Media/Content?Expires=9999999999&Signature=x",
            "0".repeat(32)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn a_hook_composes_a_room_that_ends_and_jobs_survive_a_dead_process_and_run_once() {
    let Some((m, tools)) = composition_app().await else {
        return;
    };
    // Hooks: create, list with filters, update, fetch, a duplicate name, settings.
    let hook = m
        .app
        .post(
            "/v1/CompositionHooks",
            &format!(
                "FriendlyName=Every+room&AudioSources=*&Format=webm&VideoLayout={}",
                enc(r#"{"main": {"video_sources": ["*"], "max_columns": 1, "max_rows": 1}}"#)
            ),
        )
        .await;
    assert_eq!(hook.status, 201, "{}", hook.body);
    conforms("POST", "/v1/CompositionHooks", 201, &hook.body);
    let hook_sid = hook.body["sid"].as_str().unwrap().to_string();
    let dup = m
        .app
        .post(
            "/v1/CompositionHooks",
            "FriendlyName=Every+room&AudioSources=*",
        )
        .await;
    assert_eq!((dup.status, dup.body["code"].as_i64()), (400, Some(20001)));
    let off = m
        .app
        .post(
            "/v1/CompositionHooks",
            "FriendlyName=Off&Enabled=false&AudioSources=x",
        )
        .await;
    assert_eq!(off.status, 201);
    // At most 20 hooks an account: 18 more (disabled) fit, the 21st does not.
    let mut extra = Vec::new();
    for i in 0..18 {
        let r = m
            .app
            .post(
                "/v1/CompositionHooks",
                &format!("FriendlyName=spare{i}&Enabled=false&AudioSources=x"),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        extra.push(r.body["sid"].as_str().unwrap().to_string());
    }
    let r = m
        .app
        .post(
            "/v1/CompositionHooks",
            "FriendlyName=one+too+many&AudioSources=x",
        )
        .await;
    assert_eq!(
        (r.status, r.body["code"].as_i64()),
        (400, Some(20001)),
        "{}",
        r.body
    );
    for sid in &extra {
        assert_eq!(
            delete(&m.app, &format!("/v1/CompositionHooks/{sid}")).await,
            204
        );
    }
    let list = m
        .app
        .get("/v1/CompositionHooks?Enabled=true&FriendlyName=*room")
        .await;
    conforms("GET", "/v1/CompositionHooks", 200, &list.body);
    assert_eq!(
        list.body["composition_hooks"].as_array().unwrap().len(),
        1,
        "{}",
        list.body
    );
    let updated = m
        .app
        .post(
            &format!("/v1/CompositionHooks/{hook_sid}"),
            "FriendlyName=Every+room&Resolution=320x240",
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    conforms("POST", "/v1/CompositionHooks/{Sid}", 200, &updated.body);
    assert_eq!(
        (
            updated.body["resolution"].as_str(),
            updated.body["format"].as_str()
        ),
        (Some("320x240"), Some("webm"))
    );
    let fetched = m.app.get(&format!("/v1/CompositionHooks/{hook_sid}")).await;
    conforms("GET", "/v1/CompositionHooks/{Sid}", 200, &fetched.body);
    assert_eq!(
        m.app
            .post("/v1/CompositionHooks", "FriendlyName=x")
            .await
            .status,
        400,
        "nothing to compose"
    );
    for kind in ["RecordingSettings", "CompositionSettings"] {
        let path = format!("/v1/{kind}/Default");
        let r = m.app.get(&path).await;
        assert_eq!(r.status, 200);
        conforms("GET", &path, 200, &r.body);
        let r = m.app.post(&path, "FriendlyName=ours").await;
        assert_eq!(r.status, 200, "{}", r.body);
        conforms("POST", &path, 200, &r.body);
        assert_eq!(m.app.get(&path).await.body["friendly_name"], "ours");
        let r = m
            .app
            .post(&path, "FriendlyName=s3&AwsStorageEnabled=true")
            .await;
        assert_eq!((r.status, r.body["code"].as_i64()), (400, Some(20001)));
        assert!(r.body["message"]
            .as_str()
            .unwrap()
            .contains("not supported"));
        assert_eq!(
            m.app.post(&path, "AwsStorageEnabled=false").await.status,
            400,
            "FriendlyName is required"
        );
    }

    // A room that ends with recordings is composed by the enabled hook, without a request.
    let room = room_with_recordings(&m, &tools, "Hooked", None, &[("carol", "white")], 3).await;
    // Two workers ("processes"), and a composition a dead process left mid-way.
    let stuck = m
        .app
        .post(
            "/v1/Compositions",
            &format!("RoomSid={room}&AudioSources=*&Format=mp4"),
        )
        .await;
    let stuck = stuck.body["sid"].as_str().unwrap().to_string();
    sqlx::query(
        "UPDATE compositions SET status = 'processing', lease_owner = 'roomd-dead', \
        lease_until = now() + interval '2 seconds', attempts = 1 WHERE sid = $1",
    )
    .bind(&stuck)
    .execute(&m.app.pool)
    .await
    .unwrap();
    let mut more = Vec::new();
    for _ in 0..3 {
        let r = m
            .app
            .post(
                "/v1/Compositions",
                &format!("RoomSid={room}&AudioSources=*"),
            )
            .await;
        more.push(r.body["sid"].as_str().unwrap().to_string());
    }
    start_worker(&m, &tools, Duration::from_secs(3)).await;
    start_worker(&m, &tools, Duration::from_secs(3)).await;
    let mut hooked = Value::Null;
    within(60, "the hook's composition", async || {
        let r = m.app.get(&format!("/v1/Compositions?RoomSid={room}")).await;
        hooked = r.body["compositions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["resolution"] == "320x240")
            .cloned()
            .unwrap_or(Value::Null);
        !hooked.is_null()
    })
    .await;
    let hooked_sid = hooked["sid"].as_str().unwrap().to_string();
    assert_eq!(hooked["format"], "webm");
    for sid in more.iter().chain([&stuck, &hooked_sid]) {
        wait_done(&m.app, sid).await;
    }
    let attempts: Vec<(String, i32)> =
        sqlx::query_as("SELECT sid, attempts FROM compositions WHERE room_sid = $1")
            .bind(&room)
            .fetch_all(&m.app.pool)
            .await
            .unwrap();
    for (sid, n) in &attempts {
        let expected = if *sid == stuck { 2 } else { 1 };
        assert_eq!(
            *n, expected,
            "{sid}: each job once, the dead process's once more"
        );
    }
    // One composition per hook and room, whatever process saw the room end.
    let hooks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM compositions WHERE hook_sid IS NOT NULL")
            .fetch_one(&m.app.pool)
            .await
            .unwrap();
    assert_eq!(hooks, 1);
    assert_eq!(
        delete(&m.app, &format!("/v1/CompositionHooks/{hook_sid}")).await,
        204
    );
    assert_eq!(
        m.app
            .get(&format!("/v1/CompositionHooks/{hook_sid}"))
            .await
            .status,
        404
    );

    // A recording file ffmpeg cannot read: retried, then `failed`. What the tenant is told names
    // the step, never a path on this host or ffmpeg's own output.
    let broken = room_with_recordings(&m, &tools, "Broken", None, &[("ivan", "red")], 2).await;
    let files: Vec<String> =
        sqlx::query_scalar("SELECT media_path FROM recordings WHERE room_sid = $1")
            .bind(&broken)
            .fetch_all(&m.app.pool)
            .await
            .unwrap();
    for f in &files {
        std::fs::write(m.media.plane.media_dir.join(f), b"not media at all").unwrap();
    }
    let made = m
        .app
        .post(
            "/v1/Compositions",
            &format!("RoomSid={broken}&AudioSources=*"),
        )
        .await;
    let sid = made.body["sid"].as_str().unwrap().to_string();
    let mut last = Value::Null;
    within(60, "the broken composition failed", async || {
        last = composition(&m.app, &sid).await;
        last["status"] == "failed"
    })
    .await;
    let (failure, attempts): (String, i32) =
        sqlx::query_as("SELECT failure, attempts FROM compositions WHERE sid = $1")
            .bind(&sid)
            .fetch_one(&m.app.pool)
            .await
            .unwrap();
    assert_eq!(attempts, 3, "retried before it failed");
    assert!(failure.starts_with("ffmpeg failed"), "{failure}");
    let dir = m.media.plane.media_dir.to_string_lossy().to_string();
    assert!(
        !failure.contains(&dir) && !failure.contains("recordings/"),
        "{failure}"
    );
}

#[test]
fn a_composition_of_more_recordings_than_roomd_composes_fails_before_anything_is_placed() {
    use roomd::db::composition_jobs::{Job, RoomSpan, Source};
    let start = chrono::Utc::now();
    let sources: Vec<Source> = (0..97)
        .map(|i| Source {
            sid: format!("RT{i:032x}"),
            source_sid: format!("MT{i:032x}"),
            track_name: format!("t{i}"),
            kind: "audio".into(),
            media_path: format!("recordings/{i}.mka"),
            media_started_at: start,
            media_ended_at: start + chrono::Duration::seconds(5),
        })
        .collect();
    let job = Job {
        sid: format!("CJ{:032x}", 1),
        account_sid: format!("AC{:032x}", 1),
        room_sid: format!("RM{:032x}", 1),
        video_layout: sqlx::types::Json(json!({})),
        audio_sources: vec!["*".into()],
        audio_sources_excluded: Vec::new(),
        resolution: "640x480".into(),
        format: "webm".into(),
        trimmed: true,
        attempts: 1,
    };
    let span = RoomSpan {
        date_created: start,
        end_time: None,
        clocked: false,
    };
    let refused = roomd::media::compose::plan(&job, &sources, &span).unwrap_err();
    assert!(
        refused.permanent && refused.message.contains("more than 96"),
        "{}",
        refused.message
    );
    assert!(roomd::media::compose::plan(&job, &sources[..96], &span).is_ok());
}
