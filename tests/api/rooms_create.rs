use crate::helpers::{enc, spawn_app};
use serde_json::{json, Value};

const ROOM_KEYS: [&str; 24] = [
    "account_sid",
    "date_created",
    "date_updated",
    "status",
    "type",
    "sid",
    "enable_turn",
    "unique_name",
    "max_participants",
    "max_participant_duration",
    "max_concurrent_published_tracks",
    "duration",
    "status_callback_method",
    "status_callback",
    "record_participants_on_connect",
    "video_codecs",
    "media_region",
    "audio_only",
    "empty_room_timeout",
    "unused_room_timeout",
    "end_time",
    "large_room",
    "url",
    "links",
];

pub fn is_twilio_date(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 20
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
        && s.ends_with('Z')
        && !s.contains('.')
}

#[tokio::test]
async fn a_room_created_without_parameters_has_every_field_in_twilios_order_with_defaults() {
    let app = spawn_app().await;
    let resp = app.post("/v1/Rooms", "").await;
    assert_eq!(resp.status, 201);
    let text = resp.body.to_string();
    let room = resp.body;
    // serde_json's Value sorts keys; check the wire order on the raw text instead.
    let raw = app
        .client
        .get(app.url(&format!("/v1/Rooms/{}", room["sid"].as_str().unwrap())))
        .basic_auth(&app.account.sid, Some(&app.account.token))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let positions: Vec<usize> = ROOM_KEYS
        .iter()
        .map(|k| {
            raw.find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing: {raw}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "key order differs from Twilio's: {raw}"
    );
    assert_eq!(room.as_object().unwrap().len(), ROOM_KEYS.len(), "{text}");

    let sid = room["sid"].as_str().unwrap();
    assert!(
        roomd::domain::sid::is_sid("RM", sid) && sid[2..].chars().all(|c| !c.is_ascii_uppercase())
    );
    assert_eq!(room["account_sid"], app.account.sid);
    assert_eq!(room["status"], "in-progress");
    assert_eq!(room["type"], "group");
    assert_eq!(
        room["unique_name"], sid,
        "an absent UniqueName defaults to the SID"
    );
    assert_eq!(room["enable_turn"], true);
    assert_eq!(room["max_participants"], 50);
    assert_eq!(room["max_participant_duration"], 14400);
    assert_eq!(room["max_concurrent_published_tracks"], 0);
    assert_eq!(room["status_callback_method"], "POST");
    assert_eq!(room["status_callback"], Value::Null);
    assert_eq!(room["record_participants_on_connect"], false);
    assert_eq!(room["video_codecs"], json!(["VP8"]));
    assert_eq!(room["media_region"], "us1");
    assert_eq!(room["audio_only"], false);
    assert_eq!(room["empty_room_timeout"], 5);
    assert_eq!(room["unused_room_timeout"], 5);
    assert_eq!(room["large_room"], false);
    assert_eq!(room["end_time"], Value::Null);
    assert_eq!(room["duration"], Value::Null);
    assert!(
        is_twilio_date(&room["date_created"]),
        "{}",
        room["date_created"]
    );
    assert_eq!(room["date_created"], room["date_updated"]);
    let url = format!("{}/v1/Rooms/{sid}", app.address);
    assert_eq!(room["url"], url);
    assert_eq!(
        room["links"],
        json!({
            "participants": format!("{url}/Participants"),
            "recordings": format!("{url}/Recordings"),
            "transcriptions": format!("{url}/Transcriptions"),
            "recording_rules": format!("{url}/RecordingRules"),
        })
    );
}

#[tokio::test]
async fn an_empty_unique_name_is_treated_as_absent_and_the_sid_names_the_room() {
    let app = spawn_app().await;
    for _ in 0..2 {
        let room = app.create_room("UniqueName=&Type=group").await;
        assert_eq!(room["unique_name"], room["sid"]);
    }
}

#[tokio::test]
async fn every_create_parameter_is_stored_and_returned() {
    let app = spawn_app().await;
    let rules = enc(r#"[{"type": "include", "all": true}]"#);
    let form = format!(
        "UniqueName=Daily+Standup+%C3%A9&Type=group-small&StatusCallback={}&StatusCallbackMethod=GET\
         &MaxParticipants=3&RecordParticipantsOnConnect=true&VideoCodecs=H264&VideoCodecs=VP8\
         &MediaRegion=de1&RecordingRules={rules}&MaxParticipantDuration=600&EmptyRoomTimeout=1\
         &UnusedRoomTimeout=60&EnableTurn=false",
        enc("http://127.0.0.1:9/callback?x=1")
    );
    let room = app.create_room(&form).await;
    assert_eq!(room["unique_name"], "Daily Standup é");
    assert_eq!(room["type"], "group-small");
    assert_eq!(room["status_callback"], "http://127.0.0.1:9/callback?x=1");
    assert_eq!(room["status_callback_method"], "GET");
    assert_eq!(room["max_participants"], 3);
    assert_eq!(room["record_participants_on_connect"], true);
    assert_eq!(room["video_codecs"], json!(["H264", "VP8"]));
    assert_eq!(room["media_region"], "de1");
    assert_eq!(room["max_participant_duration"], 600);
    assert_eq!(room["empty_room_timeout"], 1);
    assert_eq!(room["unused_room_timeout"], 60);
    assert_eq!(
        room["enable_turn"], true,
        "EnableTurn is deprecated and always true"
    );
    let stored: Value = sqlx::query_scalar("SELECT recording_rules FROM rooms WHERE sid = $1")
        .bind(room["sid"].as_str().unwrap())
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, json!([{"type": "include", "all": true}]));
}

#[tokio::test]
async fn room_types_audio_only_and_large_rooms_get_their_own_defaults() {
    let app = spawn_app().await;
    for (form, max, tracks) in [
        ("Type=group", 50, 0),
        ("Type=group-small", 4, 0),
        ("Type=peer-to-peer", 10, 0),
        ("Type=go", 2, 0),
        ("LargeRoom=true", 100, 16),
    ] {
        let room = app.create_room(form).await;
        assert_eq!(room["max_participants"], max, "{form}");
        assert_eq!(room["max_concurrent_published_tracks"], tracks, "{form}");
    }
    let large = app.create_room("LargeRoom=true&MaxParticipants=90").await;
    assert_eq!(
        (
            large["max_participants"].as_i64(),
            large["large_room"].as_bool()
        ),
        (Some(90), Some(true))
    );
    let audio = app.create_room("AudioOnly=true").await;
    assert_eq!(audio["audio_only"], true);
    assert_eq!(audio["video_codecs"], json!([]));
}

#[tokio::test]
async fn every_invalid_parameter_gets_its_twilio_code_and_writes_nothing() {
    let app = spawn_app().await;
    let long_callback = format!(
        "StatusCallback={}",
        enc(&format!("http://127.0.0.1/{}", "a".repeat(1024)))
    );
    let long_name = format!("UniqueName={}", "n".repeat(129));
    let cases: Vec<(String, u64)> = vec![
        ("MaxParticipants=51".into(), 53107),
        ("MaxParticipants=0".into(), 53107),
        ("Type=group-small&MaxParticipants=5".into(), 53107),
        ("Type=go&MaxParticipants=3".into(), 53107),
        ("MaxParticipants=lots".into(), 53107),
        ("Type=huge".into(), 53108),
        ("Type=".into(), 53108),
        ("EmptyRoomTimeout=0".into(), 53109),
        ("EmptyRoomTimeout=61".into(), 53109),
        ("UnusedRoomTimeout=0".into(), 53109),
        ("UnusedRoomTimeout=2.5".into(), 53109),
        ("StatusCallbackMethod=PUT".into(), 53110),
        ("StatusCallback=not+a+url".into(), 53111),
        ("StatusCallback=ftp%3A%2F%2F127.0.0.1%2Fx".into(), 53111),
        (long_callback, 53111),
        ("MediaRegion=mars1".into(), 53115),
        ("MaxParticipantDuration=599".into(), 53123),
        ("MaxParticipantDuration=86401".into(), 53123),
        (long_name, 53101),
        ("UniqueName=a%00b".into(), 20001),
        ("UniqueName=a%01b".into(), 53102),
        ("UniqueName=line%0Abreak".into(), 53102),
        ("VideoCodecs=VP9".into(), 53114),
        ("VideoCodecs=VP8&VideoCodecs=AV1".into(), 53114),
        (
            "Type=peer-to-peer&RecordParticipantsOnConnect=true".into(),
            53114,
        ),
        ("RecordingRules=not-json".into(), 53120),
        (
            format!(
                "RecordingRules={}",
                enc(r#"[{"type":"include","all":false}]"#)
            ),
            53120,
        ),
        (
            format!(
                "RecordingRules={}",
                enc(r#"[{"type":"include","kind":"data"}]"#)
            ),
            53120,
        ),
        ("AudioOnly=maybe".into(), 20001),
        ("LargeRoom=1".into(), 20001),
        ("Type=go&Type=group".into(), 20001),
    ];
    for (form, code) in cases {
        let r = app.post("/v1/Rooms", &form).await;
        assert_eq!(r.body["code"], code, "{form}: {}", r.body);
        r.assert_error(400, code);
    }
    assert_eq!(
        app.room_count().await,
        0,
        "a rejected request writes nothing"
    );
}

#[tokio::test]
async fn a_duplicate_in_progress_name_is_room_exists_but_other_accounts_may_use_it() {
    let app = spawn_app().await;
    app.create_room("UniqueName=standup").await;
    let dup = app.post("/v1/Rooms", "UniqueName=standup").await;
    dup.assert_error(400, 53113);
    assert_eq!(dup.body["message"], "Room exists");

    let other = crate::helpers::create_account(&app.pool, "other").await;
    let r = app
        .request_as(
            Some(&other),
            reqwest::Method::POST,
            "/v1/Rooms",
            Some("UniqueName=standup"),
        )
        .await;
    assert_eq!(r.status, 201, "names are unique per account: {}", r.body);
    assert_eq!(app.room_count().await, 2);
}

#[tokio::test]
async fn twenty_concurrent_creates_of_one_name_yield_exactly_one_room() {
    let app = spawn_app().await;
    let attempts = (0..20).map(|_| app.post("/v1/Rooms", "UniqueName=race"));
    let replies = futures_util::future::join_all(attempts).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1);
    for r in replies.iter().filter(|r| r.status != 201) {
        r.assert_error(400, 53113);
    }
    assert_eq!(app.room_count().await, 1);
}
