//! A property of every route: whatever string a client puts in any parameter (body, query or
//! path), the answer is never a 5xx, and an error is Twilio's JSON. The strings are made from
//! pieces PostgreSQL and parsers choke on (NUL, a lone UTF-16 surrogate in UTF-8, invalid
//! UTF-8, control characters, RTL marks, 10 KB, numbers past every range, JSON fragments), by a
//! seeded generator: a failure prints the seed and the request, so it can be replayed.

use crate::helpers::{create_clocked_account, spawn_app_with, Options, TestAccount};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;

/// Pieces of values, already percent-encoded as they go on the wire.
const PIECES: &[&str] = &[
    "%00",
    "%ED%A0%80",
    "%ED%BF%BF",
    "%FF%FE",
    "%C0%AF",
    "%01",
    "%1B%5B31m",
    "%7F",
    "%0D%0A",
    "%E2%80%8F",
    "%E2%80%AE",
    "%EF%BB%BF",
    "%F0%9F%98%80",
    "%25",
    "%2",
    "%",
    "+",
    "%2B",
    "'",
    "%22",
    "%5C",
    "%26",
    "%3D",
    "-1",
    "0",
    "2147483648",
    "99999999999999999999999",
    "1e309",
    "NaN",
    "true",
    "false",
    "in-progress",
    "completed",
    "pending",
    "2024-02-30T25:61:61Z",
    "9999-12-31T23:59:59Z",
    "0000-01-01",
    "%5B%7B%22type%22%3A%22include%22%2C%22all%22%3Atrue%7D%5D",
    "%5B%5D",
    "%7B",
    "http%3A%2F%2F127.0.0.1%3A1%2F",
    "http%3A%2F%2F%5B%3A%3A1%5D%3A9%2F%00",
    "PA0123456789abcdef0123456789abcdef",
    "RM0123456789abcdef0123456789abcdef",
    "PA",
    "EV",
    "video",
    "a",
];

/// Values a parameter takes, to put a bad piece after (so that it passes the first checks).
const VALID: &[&str] = &[
    "http%3A%2F%2F127.0.0.1%3A9%2Fa",
    "fuzz",
    "alice",
    "audio",
    "true",
    "5",
    "600",
    "2024-01-01",
    "2024-01-01T00%3A00%3A00Z",
    "group",
    "POST",
    "VP8",
    "us1",
    "in-progress",
    "pending",
    "%5B%7B%22type%22%3A%22include%22%2C%22publisher%22%3A%22",
];

/// The bad pieces among `PIECES`.
const BAD: &[&str] = &[
    "%00",
    "%ED%A0%80",
    "%FF%FE",
    "%01",
    "%E2%80%AE",
    "%0D%0A",
    "%25",
    "%",
];

fn value(rng: &mut StdRng) -> String {
    match rng.gen_range(0..10) {
        0 => "x".repeat(10_000),
        1 => format!("{}%00", "%E2%80%8F".repeat(rng.gen_range(1..200))),
        2..=4 => format!(
            "{}{}{}",
            VALID[rng.gen_range(0..VALID.len())],
            BAD[rng.gen_range(0..BAD.len())],
            if rng.gen_bool(0.5) { "b" } else { "" }
        ),
        _ => (0..rng.gen_range(1..4))
            .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
            .collect(),
    }
}

/// Every route: method, path (`{}` for a segment that gets the value too), parameters.
fn routes(
    room: &str,
    participant: &str,
    track: &str,
    event: &str,
) -> Vec<(Method, String, &'static [&'static str])> {
    let p = format!("/v1/Rooms/{room}/Participants/{participant}");
    let t = format!("{p}/PublishedTracks/{track}");
    const PAGE: &[&str] = &["PageSize", "Page", "PageToken"];
    const LIST_ROOMS: &[&str] = &[
        "Status",
        "UniqueName",
        "DateCreatedAfter",
        "DateCreatedBefore",
        "PageSize",
        "Page",
        "PageToken",
    ];
    const LIST_PARTICIPANTS: &[&str] = &[
        "Status",
        "Identity",
        "DateCreatedAfter",
        "DateCreatedBefore",
        "PageSize",
        "Page",
        "PageToken",
    ];
    const CREATE: &[&str] = &[
        "UniqueName",
        "Type",
        "StatusCallback",
        "StatusCallbackMethod",
        "MaxParticipants",
        "RecordParticipantsOnConnect",
        "VideoCodecs",
        "MediaRegion",
        "RecordingRules",
        "AudioOnly",
        "MaxParticipantDuration",
        "EmptyRoomTimeout",
        "UnusedRoomTimeout",
        "LargeRoom",
        "EnableTurn",
    ];
    vec![
        (Method::POST, "/v1/Rooms".into(), CREATE),
        (Method::GET, "/v1/Rooms".into(), LIST_ROOMS),
        (Method::GET, "/v1/Rooms/{}".into(), &[]),
        (Method::POST, "/v1/Rooms/{}".into(), &["Status"]),
        (Method::POST, format!("/v1/Rooms/{room}"), &["Status"]),
        (
            Method::POST,
            "/v1/Rooms/{}/Participants".into(),
            &["Identity"],
        ),
        (
            Method::POST,
            format!("/v1/Rooms/{room}/Participants"),
            &["Identity"],
        ),
        (
            Method::GET,
            format!("/v1/Rooms/{room}/Participants"),
            LIST_PARTICIPANTS,
        ),
        (
            Method::GET,
            format!("/v1/Rooms/{room}/Participants/{{}}"),
            &[],
        ),
        (
            Method::POST,
            format!("/v1/Rooms/{room}/Participants/{{}}"),
            &["Status"],
        ),
        (
            Method::POST,
            format!("/v1/Rooms/{room}/Participants/{{}}/Anonymize"),
            &[],
        ),
        (
            Method::POST,
            format!("{p}/PublishedTracks"),
            &["Kind", "Name", "Enabled"],
        ),
        (Method::GET, format!("{p}/PublishedTracks"), PAGE),
        (Method::GET, format!("{p}/PublishedTracks/{{}}"), &[]),
        (
            Method::POST,
            format!("{p}/PublishedTracks/{{}}"),
            &["Enabled"],
        ),
        (Method::POST, t.clone(), &["Enabled"]),
        (Method::DELETE, format!("{p}/PublishedTracks/{{}}"), &[]),
        (Method::GET, format!("{p}/SubscribedTracks"), PAGE),
        (Method::GET, format!("{p}/SubscribedTracks/{{}}"), &[]),
        (Method::GET, format!("{p}/SubscribeRules"), &[]),
        (Method::POST, format!("{p}/SubscribeRules"), &["Rules"]),
        (Method::GET, format!("/v1/Rooms/{room}/RecordingRules"), &[]),
        (
            Method::POST,
            format!("/v1/Rooms/{room}/RecordingRules"),
            &["Rules"],
        ),
        (Method::GET, format!("/v1/Rooms/{room}/Callbacks"), PAGE),
        (Method::GET, format!("/v1/Rooms/{room}/Callbacks/{{}}"), &[]),
        (
            Method::POST,
            format!("/v1/Rooms/{room}/Callbacks/{event}"),
            &["Status"],
        ),
        (
            Method::POST,
            format!("/v1/Rooms/{room}/Callbacks/{{}}"),
            &["Status"],
        ),
        (Method::GET, "/v1/TestClock".into(), &[]),
        (
            Method::POST,
            "/v1/TestClock".into(),
            &["Advance", "FrozenTime"],
        ),
    ]
}

/// Values tried in each path segment, and in each parameter, per run.
const SEGMENT_CASES: usize = 24;
const PARAM_CASES: usize = 32;

#[tokio::test]
async fn no_string_in_any_parameter_of_any_route_gets_a_5xx() {
    let seed: u64 = std::env::var("ROOMD_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen());
    let mut rng = StdRng::seed_from_u64(seed);
    let app = spawn_app_with(Options {
        account_requests_per_second: 1_000_000,
        ..Options::default()
    })
    .await;
    let clocked = create_clocked_account(&app.pool, "clocked").await;
    // A room with a participant, a track and a callback event, so that the routes below them
    // reach their parameters.
    let room = app
        .create_room("UniqueName=fuzz&StatusCallback=http%3A%2F%2F127.0.0.1%3A9%2Fx")
        .await;
    let room = room["sid"].as_str().unwrap().to_string();
    let participant = app.join(&room, "alice").await["sid"]
        .as_str()
        .unwrap()
        .to_string();
    let track = app
        .post(
            &format!("/v1/Rooms/{room}/Participants/{participant}/PublishedTracks"),
            "Kind=audio&Name=mic",
        )
        .await;
    let track = track.body["sid"].as_str().unwrap().to_string();
    let event: String =
        sqlx::query_scalar("SELECT sid FROM callback_events WHERE room_sid = $1 LIMIT 1")
            .bind(&room)
            .fetch_one(&app.pool)
            .await
            .unwrap();

    let mut sent = 0;
    for (method, path, params) in routes(&room, &participant, &track, &event) {
        let who: &TestAccount = if path.starts_with("/v1/TestClock") && rng.gen_bool(0.5) {
            &clocked
        } else {
            &app.account
        };
        let takes_segment = path.contains("{}");
        let cases = if takes_segment { SEGMENT_CASES } else { 0 } + params.len() * PARAM_CASES;
        for case in 0..cases.max(1) {
            let v = value(&mut rng);
            let (path, param) = if takes_segment && case < SEGMENT_CASES {
                (path.replace("{}", &v), None)
            } else {
                let fixed = path.replace("{}", "x");
                let param = params.get(
                    case.saturating_sub(if takes_segment { SEGMENT_CASES } else { 0 })
                        / PARAM_CASES,
                );
                (fixed, param.map(|p| format!("{p}={v}")))
            };
            let url = match (&method, &param) {
                (&Method::GET, Some(q)) => format!("{}?{q}", app.url(&path)),
                _ => app.url(&path),
            };
            let mut req = app
                .client
                .request(method.clone(), &url)
                .basic_auth(&who.sid, Some(&who.token));
            if method != Method::GET {
                req = req
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(param.clone().unwrap_or_default());
            }
            let response = req.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let what = format!("seed {seed}: {method} {url} {param:?}");
            assert!(status < 500, "{what} -> {status} {text}");
            if status >= 400 && !text.is_empty() {
                let body: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{what} -> {status}, not JSON: {text}"));
                assert!(
                    body["code"].is_u64() && body["status"] == status,
                    "{what} -> {text}"
                );
            }
            sent += 1;
        }
    }
    assert!(sent > 1000, "{sent}");
}
