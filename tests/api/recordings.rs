//! Recordings: Twilio's resources, the segments the recording rules make of published media
//! tracks, their conversion (a real `janus-pp-rec` and `ffmpeg` on a stream file like the ones
//! Janus writes), their callbacks and their media links. Tests that need the media plane skip,
//! with the reason printed, where `janus`, `janus-pp-rec` or `ffmpeg` is missing; the browser
//! suite (`tests/media/`) records a real browser's camera and microphone.

use crate::helpers::{enc, spawn_app, TestApp};
use crate::media::{
    eventually, post_events, spawn_media_app, videoroom_event, JanusClient, MediaApp,
};
use crate::receiver::Receiver;
use roomd::media::convert::Tools;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A media app and the conversion tools, or `None` (printed) where something is missing.
async fn recording_app() -> Option<(MediaApp, Tools)> {
    let Some(tools) = Tools::find().filter(|t| t.ffmpeg.is_some() && t.ffprobe.is_some()) else {
        eprintln!("SKIPPED: janus-pp-rec or ffmpeg missing (apt-get install janus-tools ffmpeg)");
        return None;
    };
    Some((spawn_media_app(Duration::ZERO).await?, tools))
}

/// Joins `identity` to `room` (by name), its publisher to the Janus room (as janus.js does),
/// and has the node report its streams published: audio (mid 0) and video (mid 1, "camera").
/// Returns the participant, and its Janus session (which must live while it publishes).
async fn publish(m: &MediaApp, room: &str, identity: &str) -> (Value, JanusClient) {
    let p = m.app.join(room, identity).await;
    let (room, id) = (p["room_sid"].as_str().unwrap(), p["sid"].as_str().unwrap());
    let client = JanusClient::open(&m.janus_api, p["media"]["token"].as_str().unwrap())
        .await
        .unwrap();
    let answer = client.join(room, id).await;
    assert_eq!(
        answer["plugindata"]["data"]["videoroom"], "joined",
        "{answer}"
    );
    let published = videoroom_event(json!({"event": "published", "room": room, "id": id,
        "streams": [{"type": "audio", "mindex": 0, "mid": "0", "codec": "opus"},
                    {"type": "video", "mindex": 1, "mid": "1", "codec": "vp8",
                     "description": "camera"}]}));
    assert_eq!(post_events(m, json!([published]), None).await.status(), 200);
    (p, client)
}

async fn unpublish(m: &MediaApp, p: &Value) {
    let gone =
        videoroom_event(json!({"event": "unpublished", "room": p["room_sid"], "id": p["sid"]}));
    assert_eq!(post_events(m, json!([gone]), None).await.status(), 200);
}

fn media_dir(m: &MediaApp) -> PathBuf {
    m.media.plane.media_dir.clone()
}

/// Writes the stream file Janus would have written for a participant's audio (mindex 0): a
/// tone of `seconds`, its first packet at `first_packet`.
fn write_audio_file(
    tools: &Tools,
    media_dir: &Path,
    room: &str,
    participant: &str,
    first_packet: chrono::DateTime<chrono::Utc>,
    seconds: u32,
) {
    let dir = roomd::media::recording::rooms_dir(media_dir).join(room);
    std::fs::create_dir_all(&dir).unwrap();
    let micros = first_packet.timestamp_micros();
    let path = dir.join(format!(
        "videoroom-{room}-user-{participant}-{micros}-audio-0.mjr"
    ));
    roomd::media::mjr::generate_opus(tools.ffmpeg.as_ref().unwrap(), seconds, micros, &path)
        .unwrap();
}

async fn recordings_of(app: &TestApp, room: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/Rooms/{room}/Recordings")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["key"], "recordings");
    r.body["recordings"].as_array().unwrap().clone()
}

async fn status_of(app: &TestApp, sid: &str) -> String {
    app.get(&format!("/v1/Recordings/{sid}")).await.body["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn ffprobe(tools: &Tools, file: &Path) -> Value {
    let out = tokio::process::Command::new(tools.ffprobe.as_ref().unwrap())
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
        .await
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn published_tracks_the_rules_admit_are_recorded_converted_signed_served_and_deleted() {
    let Some((m, tools)) = recording_app().await else {
        return;
    };
    let receiver = Receiver::ok().await;
    let room = m
        .app
        .create_room(&format!(
            "UniqueName=Recorded&RecordParticipantsOnConnect=true&StatusCallback={}",
            enc(&receiver.url("/events"))
        ))
        .await;
    let room = room["sid"].as_str().unwrap().to_string();
    let (alice, _session) = publish(&m, "Recorded", "alice").await;
    let alice_sid = alice["sid"].as_str().unwrap().to_string();

    let list = recordings_of(&m.app, &room).await;
    assert_eq!(list.len(), 2, "{list:?}");
    let audio = list.iter().find(|r| r["type"] == "audio").unwrap().clone();
    let video = list.iter().find(|r| r["type"] == "video").unwrap().clone();
    assert_eq!(audio["status"], "processing");
    assert_eq!(audio["codec"], "OPUS");
    assert_eq!(audio["container_format"], "mka");
    assert_eq!(video["codec"], "VP8");
    assert_eq!(video["container_format"], "mkv");
    assert_eq!(video["track_name"], "camera");
    assert_eq!(
        audio["grouping_sids"],
        json!({"room_sid": room, "participant_sid": alice_sid})
    );
    let audio_sid = audio["sid"].as_str().unwrap().to_string();
    assert_eq!(
        audio["url"],
        m.app
            .url(&format!("/v1/Rooms/{room}/Recordings/{audio_sid}"))
    );
    assert_eq!(
        audio["links"]["media"],
        m.app
            .url(&format!("/v1/Rooms/{room}/Recordings/{audio_sid}/Media"))
    );
    // The media node wrote the audio stream (its first packet a second before the segment);
    // it wrote nothing for the video.
    let started: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT media_started_at FROM recordings WHERE sid = $1")
            .bind(&audio_sid)
            .fetch_one(&m.app.pool)
            .await
            .unwrap();
    let room_sid = room.clone();
    write_audio_file(
        &tools,
        &media_dir(&m),
        &room_sid,
        &alice_sid,
        started - chrono::Duration::seconds(1),
        6,
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    unpublish(&m, &alice).await;

    eventually("the audio converted, the video failed", async || {
        status_of(&m.app, &audio_sid).await == "completed"
            && status_of(&m.app, video["sid"].as_str().unwrap()).await == "failed"
    })
    .await;
    let done = m.app.get(&format!("/v1/Recordings/{audio_sid}")).await.body;
    let (ended, segment): (chrono::DateTime<chrono::Utc>, f64) = sqlx::query_as(
        "SELECT media_ended_at, extract(epoch FROM media_ended_at - media_started_at)::float8 \
         FROM recordings WHERE sid = $1",
    )
    .bind(&audio_sid)
    .fetch_one(&m.app.pool)
    .await
    .unwrap();
    assert!(ended > started);
    assert_eq!(
        done["duration"],
        (segment.round() as i64).max(1),
        "{done} {segment} {started} {ended}"
    );
    assert!(done["size"].as_i64().unwrap() > 1000, "{done}");
    assert_eq!(done["status_callback_method"], "POST");

    // The callbacks: started twice, completed (with its media) and failed, all signed.
    let got = receiver
        .until(|all| {
            let events: Vec<&str> = all.iter().map(|r| r.event()).collect();
            (events.contains(&"recording-completed") && events.contains(&"recording-failed"))
                .then(|| all.to_vec())
        })
        .await;
    let of = |e: &str| got.iter().filter(|r| r.event() == e).collect::<Vec<_>>();
    assert_eq!(of("recording-started").len(), 2);
    let completed = of("recording-completed")[0];
    assert_eq!(completed.param("RecordingSid"), Some(audio_sid.as_str()));
    assert_eq!(
        completed.param("MediaUri"),
        Some(format!("/v1/Recordings/{audio_sid}/Media").as_str())
    );
    assert_eq!(completed.param("Container"), Some("mka"));
    assert_eq!(completed.param("Codec"), Some("OPUS"));
    assert_eq!(completed.param("ParticipantSid"), Some(alice_sid.as_str()));
    assert_eq!(
        completed.param("Duration").map(str::to_string),
        Some(done["duration"].to_string())
    );
    assert_eq!(
        completed.param("Size").map(str::to_string),
        Some(done["size"].to_string())
    );
    assert_eq!(
        of("recording-failed")[0].param("FailedOperation"),
        Some("RecordingComplete")
    );
    for r in &got {
        assert!(
            r.signed_with(&receiver.base, &m.app.account.token),
            "{r:#?}"
        );
    }
    // The metrics count them, and the media directory's free space is a gauge.
    assert_eq!(m.app.metrics.recordings_completed.get(), 1);
    assert_eq!(m.app.metrics.recordings_failed.get(), 1);
    assert!(m.app.metrics.media_dir_free_bytes.get() > 0);

    // The media: 302 to a signed link that serves the file, ranges included.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = no_redirects
        .get(m.app.url(&format!("/v1/Recordings/{audio_sid}/Media")))
        .basic_auth(&m.app.account.sid, Some(&m.app.account.token))
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers()["location"].to_str().unwrap().to_string();
    let body: Value = redirect.json().await.unwrap();
    assert_eq!(body["redirect_to"], location);
    assert!(location.starts_with(&m.app.address), "{location}");
    let anonymous = reqwest::Client::new();
    let file = anonymous.get(&location).send().await.unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "audio/x-matroska");
    let bytes = file.bytes().await.unwrap();
    assert_eq!(bytes.len() as i64, done["size"].as_i64().unwrap());
    let part = anonymous
        .get(&location)
        .header("Range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap(), bytes.slice(0..100));
    let downloaded = std::env::temp_dir().join(format!("{audio_sid}.mka"));
    std::fs::write(&downloaded, &bytes).unwrap();
    let probed = ffprobe(&tools, &downloaded).await;
    std::fs::remove_file(&downloaded).unwrap();
    assert!(
        probed["format"]["format_name"]
            .as_str()
            .unwrap()
            .contains("matroska"),
        "{probed}"
    );
    let streams = probed["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{probed}");
    assert_eq!(streams[0]["codec_name"], "opus");
    let probed_s: f64 = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((probed_s - segment).abs() < 0.6, "{probed_s} vs {segment}");
    // A link altered or expired is refused; the room's resource links the same media.
    let tampered = location.replace("Expires=", "Expires=9");
    assert_eq!(anonymous.get(&tampered).send().await.unwrap().status(), 403);
    let expired = m.media.plane.media_link(
        &m.app.address,
        &audio_sid,
        chrono::Utc::now().timestamp() - 1,
    );
    assert_eq!(anonymous.get(&expired).send().await.unwrap().status(), 403);
    let room_media = no_redirects
        .get(
            m.app
                .url(&format!("/v1/Rooms/{room}/Recordings/{audio_sid}/Media")),
        )
        .basic_auth(&m.app.account.sid, Some(&m.app.account.token))
        .send()
        .await
        .unwrap();
    assert_eq!(room_media.status(), 302);
    // A client that follows the redirect (with its credentials) gets the file.
    let followed = m
        .app
        .client
        .get(m.app.url(&format!("/v1/Recordings/{audio_sid}/Media")))
        .basic_auth(&m.app.account.sid, Some(&m.app.account.token))
        .send()
        .await
        .unwrap();
    assert_eq!(followed.status(), 200);
    assert_eq!(followed.bytes().await.unwrap(), bytes);

    // The account's list and its filters.
    let listed = |q: &'static str| {
        let app = &m.app;
        async move { app.get(&format!("/v1/Recordings{q}")).await }
    };
    assert_eq!(
        listed("").await.body["recordings"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let audio_only = listed("?MediaType=audio").await.body;
    assert_eq!(audio_only["recordings"].as_array().unwrap().len(), 1);
    assert_eq!(audio_only["recordings"][0]["sid"], audio_sid.as_str());
    assert_eq!(
        listed("?Status=failed").await.body["recordings"][0]["sid"],
        video["sid"]
    );
    let by_participant = m
        .app
        .get(&format!(
            "/v1/Recordings?GroupingSid={alice_sid}&GroupingSid={room}"
        ))
        .await;
    assert_eq!(
        by_participant.body["recordings"].as_array().unwrap().len(),
        2
    );
    let by_source = m
        .app
        .get(&format!(
            "/v1/Recordings?SourceSid={}",
            audio["source_sid"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_source.body["recordings"].as_array().unwrap().len(), 1);
    listed("?PageSize=101").await.assert_error(400, 20001);
    listed("?SourceSid=MT%00").await.assert_error(400, 20001);
    listed("?MediaType=smell").await.assert_error(400, 20001);
    listed("?Status=recording").await.assert_error(400, 20001);
    let paged = listed("?PageSize=1").await.body;
    assert_eq!(paged["meta"]["page_size"], 1);
    let next = paged["meta"]["next_page_url"].as_str().unwrap();
    let second = m.app.get(next.strip_prefix(&m.app.address).unwrap()).await;
    assert_eq!(second.body["recordings"].as_array().unwrap().len(), 1);
    assert_ne!(
        second.body["recordings"][0]["sid"],
        paged["recordings"][0]["sid"]
    );

    // A delete keeps the resource (`deleted`) and removes the media.
    let stored: String = sqlx::query_scalar("SELECT media_path FROM recordings WHERE sid = $1")
        .bind(&audio_sid)
        .fetch_one(&m.app.pool)
        .await
        .unwrap();
    assert!(media_dir(&m).join(&stored).is_file());
    let delete = async || {
        m.app
            .client
            .delete(m.app.url(&format!("/v1/Recordings/{audio_sid}")))
            .basic_auth(&m.app.account.sid, Some(&m.app.account.token))
            .send()
            .await
            .unwrap()
    };
    let deleted = delete().await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(deleted.bytes().await.unwrap().len(), 0);
    assert_eq!(status_of(&m.app, &audio_sid).await, "deleted");
    assert!(!media_dir(&m).join(&stored).exists());
    assert_eq!(delete().await.status(), 204, "a delete is idempotent");
    assert_eq!(anonymous.get(&location).send().await.unwrap().status(), 404);
    m.app
        .get(&format!("/v1/Recordings/{audio_sid}/Media"))
        .await
        .assert_error(404, 20404);
    // Another account sees none of it.
    let other = crate::helpers::create_account(&m.app.pool, "other").await;
    let theirs = m
        .app
        .request_as(
            Some(&other),
            reqwest::Method::GET,
            &format!("/v1/Recordings/{audio_sid}"),
            None,
        )
        .await;
    theirs.assert_error(404, 20404);
    let theirs = m
        .app
        .request_as(Some(&other), reqwest::Method::GET, "/v1/Recordings", None)
        .await;
    assert_eq!(theirs.body["recordings"], json!([]));
}

#[tokio::test]
async fn a_rule_change_ends_and_starts_segments_and_the_node_records_only_while_rules_include() {
    let Some((m, _tools)) = recording_app().await else {
        return;
    };
    let (alice, _alice_session) = publish(&m, "Later", "alice").await;
    let room = alice["room_sid"].as_str().unwrap().to_string();
    let records = async || m.admin.rooms_recording().await.unwrap().get(&room).copied();
    assert_eq!(recordings_of(&m.app, &room).await.len(), 0);
    assert_eq!(records().await, Some(false));

    let rules = m
        .app
        .post(
            &format!("/v1/Rooms/{room}/RecordingRules"),
            &format!("Rules={}", enc(r#"[{"type":"include","kind":"audio"}]"#)),
        )
        .await;
    assert_eq!(rules.status, 200, "{}", rules.body);
    let list = recordings_of(&m.app, &room).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["type"], "audio");
    assert_eq!(records().await, Some(true));
    // The same rules again start nothing new.
    m.app
        .post(
            &format!("/v1/Rooms/{room}/RecordingRules"),
            &format!("Rules={}", enc(r#"[{"type":"include","kind":"audio"}]"#)),
        )
        .await;
    assert_eq!(recordings_of(&m.app, &room).await.len(), 1);

    // Excluding everything ends the segment; the node stops recording.
    m.app
        .post(
            &format!("/v1/Rooms/{room}/RecordingRules"),
            &format!("Rules={}", enc(r#"[{"type":"exclude","all":true}]"#)),
        )
        .await;
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recordings WHERE room_sid = $1 AND media_ended_at IS NULL",
    )
    .bind(&room)
    .fetch_one(&m.app.pool)
    .await
    .unwrap();
    assert_eq!(open, 0);
    assert_eq!(records().await, Some(false));
    // A track published under rules that exclude it is not recorded; the room's end ends all.
    let (bob, _bob_session) = publish(&m, "Later", "bob").await;
    assert_eq!(recordings_of(&m.app, &room).await.len(), 1);
    m.app
        .post(
            &format!("/v1/Rooms/{room}/RecordingRules"),
            &format!("Rules={}", enc(r#"[{"type":"include","publisher":"bob"}]"#)),
        )
        .await;
    assert_eq!(recordings_of(&m.app, &room).await.len(), 3);
    m.app.complete_room(&room).await;
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM recordings WHERE room_sid = $1 AND media_ended_at IS NULL",
    )
    .bind(&room)
    .fetch_one(&m.app.pool)
    .await
    .unwrap();
    assert_eq!(open, 0, "{bob}");
}

#[tokio::test]
async fn a_claim_left_by_a_dead_process_is_finished_by_another_and_two_workers_convert_each_once() {
    let Some((m, tools)) = recording_app().await else {
        return;
    };
    // A second process's worker on the same database and media directory.
    let other = std::sync::Arc::new(roomd::media::MediaPlane::new(
        sqlx::PgPool::connect(&m.app.database_url).await.unwrap(),
        std::sync::Arc::new(crate::helpers::test_master_key()),
        None,
        media_dir(&m),
    ));
    tokio::spawn(roomd::media::recording_jobs::run(
        other,
        std::sync::Arc::new(roomd::telemetry::metrics::Metrics::new()),
        tools.clone(),
        roomd::media::recording_jobs::JobSettings {
            concurrency: 2,
            ..Default::default()
        },
        std::future::pending(),
    ));
    let room = m
        .app
        .create_room("UniqueName=Many&RecordParticipantsOnConnect=true")
        .await;
    let room = room["sid"].as_str().unwrap().to_string();
    let mut people = Vec::new();
    for who in ["a", "b", "c", "d", "e"] {
        people.push(publish(&m, "Many", who).await);
    }
    let started: Vec<(String, String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT sid, participant_sid, media_started_at FROM recordings \
         WHERE room_sid = $1 AND kind = 'audio'",
    )
    .bind(&room)
    .fetch_all(&m.app.pool)
    .await
    .unwrap();
    assert_eq!(started.len(), 5);
    for (_, participant, at) in &started {
        write_audio_file(&tools, &media_dir(&m), &room, participant, *at, 3);
    }
    // The first one was claimed by a process that died: its lease has passed.
    sqlx::query(
        "UPDATE recordings SET lease_owner = 'roomd-dead', lease_until = now() - interval '1 second', \
            attempts = 1 WHERE sid = $1",
    )
    .bind(&started[0].0)
    .execute(&m.app.pool)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    m.app.complete_room(&room).await;
    eventually("every audio segment converted", async || {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM recordings WHERE room_sid = $1 AND kind = 'audio' AND status = 'completed'",
        )
        .bind(&room)
        .fetch_one(&m.app.pool)
        .await
        .unwrap();
        n == 5
    })
    .await;
    let attempts: Vec<(String, i32)> = sqlx::query_as(
        "SELECT sid, attempts FROM recordings WHERE room_sid = $1 AND kind = 'audio' ORDER BY sid",
    )
    .bind(&room)
    .fetch_all(&m.app.pool)
    .await
    .unwrap();
    for (sid, n) in attempts {
        let expected = if sid == started[0].0 { 2 } else { 1 };
        assert_eq!(n, expected, "{sid}");
    }
    // One converted file per segment: no claim wrote a second.
    let files = std::fs::read_dir(roomd::media::recording::recordings_dir(&media_dir(&m)))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|f| {
            started
                .iter()
                .any(|(sid, _, _)| f.file_name().to_string_lossy().starts_with(sid.as_str()))
        })
        .count();
    assert_eq!(files, 5);
    // The room ended and every segment settled: its stream files are gone.
    eventually("the room's stream files removed", async || {
        !roomd::media::recording::rooms_dir(&media_dir(&m))
            .join(&room)
            .exists()
    })
    .await;
}

#[tokio::test]
async fn without_media_recordings_are_empty_lists_and_transcriptions_are_refused_with_a_reason() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=Plain").await;
    let room = room["sid"].as_str().unwrap();
    let links = &room_links(&app, room).await;
    let list = app.get(link(&app, &links["recordings"])).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.body["recordings"], json!([]));
    assert_eq!(list.body["meta"]["key"], "recordings");
    let all = app.get("/v1/Recordings").await;
    assert_eq!(all.body["recordings"], json!([]));
    assert_eq!(all.body["meta"]["page_size"], 50);
    app.get("/v1/Recordings/RT0123456789abcdef0123456789abcdef")
        .await
        .assert_error(404, 20404);
    app.get("/v1/Recordings/not-a-sid")
        .await
        .assert_error(404, 20404);
    app.get(&format!(
        "/v1/Rooms/{room}/Recordings/RT0123456789abcdef0123456789abcdef"
    ))
    .await
    .assert_error(404, 20404);
    app.get("/v1/Rooms/RM0123456789abcdef0123456789abcdef/Recordings")
        .await
        .assert_error(404, 20404);

    let transcriptions = app.get(link(&app, &links["transcriptions"])).await;
    assert_eq!(transcriptions.status, 200, "{}", transcriptions.body);
    assert_eq!(transcriptions.body["transcriptions"], json!([]));
    assert_eq!(transcriptions.body["meta"]["key"], "transcriptions");
    let refused = app
        .post(&format!("/v1/Rooms/{room}/Transcriptions"), "")
        .await;
    refused.assert_error(403, 20403);
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("no speech engine"),
        "{}",
        refused.body
    );
    app.get(&format!("/v1/Rooms/{room}/Transcriptions/TT123"))
        .await
        .assert_error(404, 20404);
}

/// The path of a link a resource gives (its URL without the server's address).
fn link<'a>(app: &TestApp, url: &'a Value) -> &'a str {
    url.as_str().unwrap().strip_prefix(&app.address).unwrap()
}

async fn room_links(app: &TestApp, room: &str) -> Value {
    app.get(&format!("/v1/Rooms/{room}")).await.body["links"].clone()
}
