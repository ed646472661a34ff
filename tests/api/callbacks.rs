//! Room status callbacks: every event of a room's life, signed, in order, after the state it
//! reports is readable; retries in order; a delivery log that replays; the deny list; two
//! dispatchers sharing one outbox; a dispatcher killed mid-delivery.

use crate::helpers::{
    create_account, create_account_sealed, enc, fresh_database, metric_value, spawn_app,
    spawn_app_with, start_server, Options, TestApp,
};
use crate::receiver::{Answer, Receiver};
use roomd::workers::callbacks::settings::CallbackSettings;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn create_room_calling(app: &TestApp, receiver: &Receiver, extra: &str) -> Value {
    app.create_room(&format!(
        "StatusCallback={}{extra}",
        enc(&receiver.url("/room-events?tenant=a"))
    ))
    .await
}

fn is_twilio_timestamp(v: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.3fZ").is_ok() && v.len() == 24
}

/// The delivery log, all of it (one page).
async fn delivery_log(app: &TestApp, room: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/Rooms/{room}/Callbacks?PageSize=100"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["key"], "callbacks");
    r.body["callbacks"].as_array().unwrap().clone()
}

/// Polls the delivery log until `done` holds (the receiver answers before roomd records it).
async fn log_until(app: &TestApp, room: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    for _ in 0..200 {
        let log = delivery_log(app, room).await;
        if done(&log) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "delivery log never got there: {:#?}",
        delivery_log(app, room).await
    );
}

#[tokio::test]
async fn a_rooms_life_arrives_signed_in_order_and_after_the_state_it_reports() {
    let app = spawn_app().await;
    let (api, account) = (app.address.clone(), app.account.clone());
    // On room-ended, the receiver reads the room first: it must already be completed.
    let receiver = Receiver::answering(move |r| {
        let (api, account) = (api.clone(), account.clone());
        async move {
            if r.event() == "room-ended" {
                let room = reqwest::Client::new()
                    .get(format!("{api}/v1/Rooms/{}", r.param("RoomSid").unwrap()))
                    .basic_auth(&account.sid, Some(&account.token))
                    .send()
                    .await
                    .unwrap()
                    .json::<Value>()
                    .await
                    .unwrap();
                if room["status"] != "completed" {
                    return Answer::Status(409);
                }
            }
            Answer::Status(200)
        }
    })
    .await;
    let room = create_room_calling(&app, &receiver, "&UniqueName=standup&Type=group").await;
    let room_sid = room["sid"].as_str().unwrap();
    let alice = app.join(room_sid, "alice").await;
    let bob = app.join("standup", "bob").await;
    let tracks = format!("/v1/Rooms/{room_sid}/Participants/alice/PublishedTracks");
    let mic = app.post(&tracks, "Kind=audio&Name=mic").await;
    assert_eq!(mic.status, 201);
    let mic_sid = mic.body["sid"].as_str().unwrap();
    let r = app.post(&format!("{tracks}/mic"), "Enabled=false").await;
    assert_eq!(r.status, 200);
    // Disabling a disabled track changes nothing and says nothing.
    let r = app.post(&format!("{tracks}/mic"), "Enabled=false").await;
    assert_eq!(r.status, 200);
    let r = app
        .client
        .delete(app.url(&format!("{tracks}/mic")))
        .basic_auth(&app.account.sid, Some(&app.account.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .post(
            &format!("/v1/Rooms/{room_sid}/Participants/bob"),
            "Status=disconnected",
        )
        .await;
    assert_eq!(r.status, 202);
    app.complete_room(room_sid).await;

    let got = receiver.delivered(9).await;
    let events: Vec<&str> = got.iter().map(|r| r.event()).collect();
    assert_eq!(
        events,
        [
            "room-created",
            "participant-connected",
            "participant-connected",
            "track-added",
            "track-disabled",
            "track-removed",
            "participant-disconnected",
            "participant-disconnected",
            "room-ended"
        ],
        "{got:#?}"
    );
    // (A 409 would mean room-ended came before the room read as completed.)
    assert!(receiver.received().iter().all(|r| r.answered == Some(200)));
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.sequence(), i as i64, "{r:#?}");
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/room-events?tenant=a");
        assert_eq!(
            r.headers["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert!(r.headers["user-agent"].starts_with("roomd/"), "{r:#?}");
        assert!(r.signed_with(&receiver.base, &app.account.token), "{r:#?}");
        assert!(!r.signed_with(&receiver.base, "another-token"));
        assert_eq!(r.param("AccountSid"), Some(app.account.sid.as_str()));
        assert_eq!(r.param("RoomSid"), Some(room_sid));
        assert_eq!(r.param("RoomName"), Some("standup"));
        assert_eq!(r.param("RoomType"), Some("group"));
        assert!(is_twilio_timestamp(r.param("Timestamp").unwrap()), "{r:#?}");
    }
    let alice_sid = alice["sid"].as_str().unwrap();
    let bob_sid = bob["sid"].as_str().unwrap();
    // Who is who, per event.
    assert_eq!(got[0].param("RoomStatus"), Some("in-progress"));
    assert_eq!(got[0].params.len(), 8, "{:#?}", got[0]);
    assert_eq!(got[1].param("ParticipantSid"), Some(alice_sid));
    assert_eq!(got[1].param("ParticipantIdentity"), Some("alice"));
    assert_eq!(got[1].param("ParticipantStatus"), Some("connected"));
    assert_eq!(got[1].params.len(), 11, "{:#?}", got[1]);
    assert_eq!(got[2].param("ParticipantSid"), Some(bob_sid));
    for (track_event, i) in [
        ("track-added", 3),
        ("track-disabled", 4),
        ("track-removed", 5),
    ] {
        let r = &got[i];
        assert_eq!(r.event(), track_event);
        assert_eq!(r.param("TrackSid"), Some(mic_sid));
        assert_eq!(r.param("TrackKind"), Some("audio"));
        assert_eq!(r.param("TrackName"), Some("mic"));
        assert_eq!(r.param("ParticipantSid"), Some(alice_sid));
        assert_eq!(r.params.len(), 14, "{r:#?}");
    }
    assert_eq!(got[6].param("ParticipantSid"), Some(bob_sid));
    assert_eq!(got[6].param("ParticipantStatus"), Some("disconnected"));
    assert!(got[6]
        .param("ParticipantDuration")
        .unwrap()
        .parse::<u32>()
        .is_ok());
    // The room's end disconnects alice first, then the room ends.
    assert_eq!(got[7].param("ParticipantSid"), Some(alice_sid));
    assert_eq!(got[8].param("RoomStatus"), Some("completed"));
    assert!(got[8].param("RoomDuration").unwrap().parse::<u32>().is_ok());
    assert_eq!(got[8].params.len(), 9, "{:#?}", got[8]);

    // The delivery log: every event delivered once, with what was sent.
    let log = log_until(&app, room_sid, |l| {
        l.iter().all(|e| e["status"] == "delivered")
    })
    .await;
    assert_eq!(log.len(), 9);
    for (i, e) in log.iter().enumerate() {
        assert_eq!(e["sequence_number"], i);
        assert_eq!(e["event"], got[i].event());
        assert_eq!(e["attempts"], 1);
        assert_eq!(e["last_response_status"], 200);
        assert_eq!(e["last_error"], Value::Null);
        assert_eq!(e["request_method"], "POST");
        assert_eq!(e["request_url"], receiver.url("/room-events?tenant=a"));
        assert_eq!(e["room_sid"], room_sid);
        let sent: Vec<(String, String)> = e["parameters"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let mut expected = got[i].params.clone();
        expected.sort();
        assert_eq!(sent, expected);
        let sid = e["sid"].as_str().unwrap();
        assert_eq!(
            e["url"],
            format!("{}/v1/Rooms/{room_sid}/Callbacks/{sid}", app.address)
        );
        let one = app
            .get(&format!("/v1/Rooms/{room_sid}/Callbacks/{sid}"))
            .await;
        assert_eq!(one.status, 200);
        assert_eq!(&one.body, e);
    }
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric_value(&metrics, "roomd_callbacks_delivered_total"),
        Some(9.0)
    );
    assert_eq!(
        metric_value(&metrics, "roomd_callback_lag_seconds_count"),
        Some(9.0)
    );
}

#[tokio::test]
async fn get_callbacks_carry_the_parameters_in_the_query_and_are_signed_over_the_url() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let room = create_room_calling(&app, &receiver, "&StatusCallbackMethod=GET").await;
    let got = receiver.delivered(1).await;
    assert_eq!(got[0].method, "GET");
    assert!(
        got[0].target.starts_with("/room-events?tenant=a&"),
        "{:#?}",
        got[0]
    );
    assert_eq!(got[0].param("RoomSid"), room["sid"].as_str());
    assert_eq!(got[0].param("tenant"), Some("a"));
    assert!(
        got[0].signed_with(&receiver.base, &app.account.token),
        "{:#?}",
        got[0]
    );
}

#[tokio::test]
async fn credentials_in_the_url_go_as_basic_auth_and_the_signature_is_over_the_url_without_them() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let with_credentials = receiver
        .url("/hook")
        .replace("http://", "http://hook:s3cret@");
    app.create_room(&format!("StatusCallback={}", enc(&with_credentials)))
        .await;
    let got = receiver.delivered(1).await;
    assert_eq!(got[0].headers["authorization"], "Basic aG9vazpzM2NyZXQ=");
    assert_eq!(got[0].target, "/hook");
    assert!(
        got[0].signed_with(&receiver.base, &app.account.token),
        "{:#?}",
        got[0]
    );
}

#[tokio::test]
async fn rooms_without_a_status_callback_write_no_events() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=quiet").await;
    app.join("quiet", "alice").await;
    app.complete_room(room["sid"].as_str().unwrap()).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM callback_events")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert!(delivery_log(&app, room["sid"].as_str().unwrap())
        .await
        .is_empty());
}

#[tokio::test]
async fn a_failing_event_is_retried_and_the_rooms_next_event_waits_for_it() {
    let app = spawn_app().await;
    let failures = Arc::new(AtomicUsize::new(0));
    let f = failures.clone();
    // The second event (SequenceNumber 1) fails three times: a 500, a reset, a 302.
    let receiver = Receiver::answering(move |r| {
        let f = f.clone();
        async move {
            if r.sequence() == 1 {
                match f.fetch_add(1, Ordering::SeqCst) {
                    0 => return Answer::Status(500),
                    1 => return Answer::Reset,
                    2 => return Answer::Status(302),
                    _ => {}
                }
            }
            Answer::Status(204)
        }
    })
    .await;
    let room = create_room_calling(&app, &receiver, "&UniqueName=retry").await;
    let room_sid = room["sid"].as_str().unwrap();
    app.join("retry", "alice").await;
    app.join("retry", "bob").await;
    let got = receiver.delivered(3).await;
    let order: Vec<i64> = receiver.received().iter().map(|r| r.sequence()).collect();
    assert_eq!(order, [0, 1, 1, 1, 1, 2], "{:#?}", receiver.received());
    assert_eq!(
        got.iter().map(|r| r.sequence()).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let log = log_until(&app, room_sid, |l| {
        l.iter().all(|e| e["status"] == "delivered")
    })
    .await;
    assert_eq!(log[1]["attempts"], 4);
    assert_eq!(log[1]["last_response_status"], 204);
    assert_eq!(log[2]["attempts"], 1);
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric_value(&metrics, "roomd_callbacks_retried_total"),
        Some(3.0)
    );
}

#[tokio::test]
async fn an_event_out_of_attempts_is_failed_without_blocking_the_room_and_can_be_sent_again() {
    let app = spawn_app_with(Options {
        callbacks: CallbackSettings {
            max_attempts: 3,
            retry_base: Duration::from_millis(20),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let d = down.clone();
    let receiver = Receiver::answering(move |r| {
        let d = d.clone();
        async move {
            if r.sequence() == 0 && d.load(Ordering::SeqCst) {
                Answer::Status(503)
            } else {
                Answer::Status(200)
            }
        }
    })
    .await;
    let room = create_room_calling(&app, &receiver, "").await;
    let room_sid = room["sid"].as_str().unwrap();
    app.join(room_sid, "alice").await;
    // room-created fails 3 times and is given up; participant-connected goes next.
    let got = receiver.delivered(1).await;
    assert_eq!(got[0].event(), "participant-connected");
    let log = log_until(&app, room_sid, |l| {
        l.len() == 2 && l[1]["status"] == "delivered"
    })
    .await;
    assert_eq!(log[0]["status"], "failed");
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_response_status"], 503);
    // An answered attempt's reason is its status; nothing of the answer's text.
    assert_eq!(log[0]["last_error"], "status");
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"roomd_callbacks_failed_total{reason="attempts"}"#
        ),
        Some(1.0)
    );

    // Sent again while the receiver is still down: one more attempt, not a fresh budget of
    // three, so a resend cannot keep a dead receiver's slots busy.
    let sid = log[0]["sid"].as_str().unwrap();
    let path = format!("/v1/Rooms/{room_sid}/Callbacks/{sid}");
    let r = app.post(&path, "Status=pending").await;
    assert_eq!(r.status, 200, "{}", r.body);
    // (The dispatcher may have taken it already: the answer shows the event as it is then.)
    assert!(r.body["attempts"].as_i64().unwrap() >= 3, "{}", r.body);
    let log = log_until(&app, room_sid, |l| {
        l[0]["status"] == "failed" && l[0]["attempts"] == 4
    })
    .await;
    assert_eq!(log[0]["attempts"], 4);

    // The receiver is back: replay it through the API.
    down.store(false, Ordering::SeqCst);
    let r = app.post(&path, "Status=pending").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let got = receiver.delivered(2).await;
    assert_eq!(got[1].event(), "room-created");
    assert_eq!(got[1].sequence(), 0);
    let log = log_until(&app, room_sid, |l| l[0]["status"] == "delivered").await;
    assert_eq!(log[0]["attempts"], 5);

    // Bad input: another status, no status, an event that is not there, another room's.
    app.post(&path, "Status=delivered")
        .await
        .assert_error(400, 20001);
    app.post(&path, "").await.assert_error(400, 20001);
    let nowhere = format!("/v1/Rooms/{room_sid}/Callbacks/EV{}", "0".repeat(32));
    app.post(&nowhere, "Status=pending")
        .await
        .assert_error(404, 20404);
    app.get(&nowhere).await.assert_error(404, 20404);
    app.get(&format!("/v1/Rooms/{room_sid}/Callbacks/nope"))
        .await
        .assert_error(404, 20404);
    app.get(&format!("/v1/Rooms/RM{}/Callbacks", "0".repeat(32)))
        .await
        .assert_error(404, 20404);
    let other = crate::helpers::create_account(&app.pool, "other").await;
    let r = app
        .request_as(
            Some(&other),
            reqwest::Method::GET,
            &format!("/v1/Rooms/{room_sid}/Callbacks"),
            None,
        )
        .await;
    r.assert_error(404, 20404);
    let r = app
        .request_as(
            Some(&other),
            reqwest::Method::POST,
            &path,
            Some("Status=pending"),
        )
        .await;
    r.assert_error(404, 20404);
}

#[tokio::test]
async fn a_receiver_that_hangs_holds_up_only_its_own_rooms() {
    let app = spawn_app().await;
    let hanging = Receiver::answering(|_| async { Answer::Hang }).await;
    let fine = Receiver::ok().await;
    let stuck = create_room_calling(&app, &hanging, "").await;
    hanging.until(|all| (!all.is_empty()).then_some(())).await;
    // While that attempt waits out its 15 s, other rooms' events go, and the API answers.
    let other = create_room_calling(&app, &fine, "").await;
    app.join(other["sid"].as_str().unwrap(), "alice").await;
    let got = fine.delivered(2).await;
    assert_eq!(got[1].event(), "participant-connected");
    let log = delivery_log(&app, stuck["sid"].as_str().unwrap()).await;
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["attempts"], 1);
}

#[tokio::test]
async fn denied_destinations_are_never_called_and_fail_at_once() {
    let app = spawn_app_with(Options {
        callbacks: CallbackSettings {
            deny: roomd::workers::callbacks::destinations::DenyList::parse("127.0.0.0/8,::1/128")
                .unwrap(),
            ..Default::default()
        },
        ..Options::default()
    })
    .await;
    let receiver = Receiver::ok().await;
    let port = receiver.base.rsplit(':').next().unwrap();
    // By address, and by a name that resolves to it.
    let by_ip = create_room_calling(&app, &receiver, "").await;
    let by_name = app
        .create_room(&format!(
            "StatusCallback={}",
            enc(&format!("http://localhost:{port}/x"))
        ))
        .await;
    for room in [&by_ip, &by_name] {
        let sid = room["sid"].as_str().unwrap();
        let log = log_until(&app, sid, |l| l.len() == 1 && l[0]["status"] == "failed").await;
        assert_eq!(log[0]["attempts"], 1, "{}", log[0]);
        assert_eq!(log[0]["last_error"], "denied", "{}", log[0]);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received().is_empty());
    let metrics = app.metrics_text().await;
    assert_eq!(
        metric_value(&metrics, r#"roomd_callbacks_failed_total{reason="denied"}"#),
        Some(2.0)
    );
}

#[tokio::test]
async fn accounts_without_a_sealed_token_get_unsigned_callbacks() {
    let app = spawn_app().await;
    let old = create_account_sealed(&app.pool, "old", false).await;
    let receiver = Receiver::ok().await;
    let r = app
        .request_as(
            Some(&old),
            reqwest::Method::POST,
            "/v1/Rooms",
            Some(&format!("StatusCallback={}", enc(&receiver.url("/old")))),
        )
        .await;
    assert_eq!(r.status, 201);
    let got = receiver.delivered(1).await;
    assert_eq!(got[0].event(), "room-created");
    assert!(
        !got[0].headers.contains_key("x-twilio-signature"),
        "{:#?}",
        got[0]
    );
}

#[tokio::test]
async fn rooms_ended_by_the_sweeper_and_participants_cut_off_send_their_events() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let unused = create_room_calling(&app, &receiver, "&UniqueName=unused").await;
    let empty = create_room_calling(&app, &receiver, "&UniqueName=empty").await;
    let long = create_room_calling(&app, &receiver, "&UniqueName=long").await;
    app.join("empty", "alice").await;
    let r = app
        .post("/v1/Rooms/empty/Participants/alice", "Status=disconnected")
        .await;
    assert_eq!(r.status, 202);
    app.join("long", "bob").await;
    // Time passes: every deadline is now.
    sqlx::query("UPDATE rooms SET deadline = now() WHERE deadline IS NOT NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE participants SET deadline = now() WHERE status = 'connected'")
        .execute(&app.pool)
        .await
        .unwrap();
    roomd::workers::sweeper::sweep_once(&app.pool, None)
        .await
        .unwrap();
    // unused: created, ended. empty: created, connected, disconnected, ended. long: created,
    // connected, disconnected (max duration), ended (then empty, its deadline now + 5 min).
    let events = |room: &Value| {
        let sid = room["sid"].as_str().unwrap().to_string();
        move |all: &[crate::receiver::Received]| {
            let mine: Vec<String> = all
                .iter()
                .filter(|r| r.param("RoomSid") == Some(sid.as_str()))
                .map(|r| r.event().to_string())
                .collect();
            Some(mine)
        }
    };
    receiver.delivered(9).await;
    assert_eq!(
        receiver.until(events(&unused)).await,
        ["room-created", "room-ended"]
    );
    assert_eq!(
        receiver.until(events(&empty)).await,
        [
            "room-created",
            "participant-connected",
            "participant-disconnected",
            "room-ended"
        ]
    );
    assert_eq!(
        receiver.until(events(&long)).await,
        [
            "room-created",
            "participant-connected",
            "participant-disconnected"
        ]
    );
}

#[tokio::test]
async fn two_dispatchers_on_one_database_deliver_every_event_exactly_once_in_order() {
    let app = spawn_app().await;
    let other = start_server(&app._db.options, Options::default(), None);
    // A little latency, so that both dispatchers have deliveries in flight at once.
    let receiver = Receiver::answering(|r| async move {
        let wait = r.sequence() as u64 % 3;
        tokio::time::sleep(Duration::from_millis(wait * 2)).await;
        Answer::Status(204)
    })
    .await;
    let client = reqwest::Client::new();
    let mut rooms = Vec::new();
    for i in 0..24 {
        // Every other room is made through the other replica.
        let base = if i % 2 == 0 {
            &app.address
        } else {
            &other.address
        };
        let r = client
            .post(format!("{base}/v1/Rooms"))
            .basic_auth(&app.account.sid, Some(&app.account.token))
            .form(&[
                ("StatusCallback", receiver.url("/e")),
                ("UniqueName", format!("r{i}")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        rooms.push(format!("r{i}"));
    }
    let joins = rooms.iter().flat_map(|room| {
        ["a", "b", "c"].map(|who| {
            let base = if who == "b" {
                &other.address
            } else {
                &app.address
            };
            client
                .post(format!("{base}/v1/Rooms/{room}/Participants"))
                .basic_auth(&app.account.sid, Some(&app.account.token))
                .form(&[("Identity", who)])
                .send()
        })
    });
    for r in futures_util::future::join_all(joins).await {
        assert_eq!(r.unwrap().status(), 201);
    }
    let total = rooms.len() * 4;
    let got = receiver.delivered(total).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_all = receiver.received();
    assert_eq!(got.len(), total);
    assert_eq!(got_all.len(), total, "an event was delivered twice");
    let mut by_room: std::collections::HashMap<String, Vec<i64>> = Default::default();
    for r in &got_all {
        by_room
            .entry(r.param("RoomSid").unwrap().to_string())
            .or_default()
            .push(r.sequence());
    }
    assert_eq!(by_room.len(), rooms.len());
    for sequence in by_room.values() {
        assert_eq!(sequence, &[0, 1, 2, 3]);
    }
    let delivered = |m: &roomd::telemetry::metrics::Metrics| m.callbacks_delivered.get();
    assert_eq!(
        delivered(&app.metrics) + delivered(&other.metrics),
        total as u64
    );
}

/// Each event's status and attempts, in order.
async fn outbox(pool: &sqlx::PgPool) -> Vec<(String, i32)> {
    sqlx::query_as(
        "SELECT status, attempts FROM callback_events ORDER BY room_sid, sequence_number",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_stopping_server_finishes_the_deliveries_it_has_in_flight() {
    // One server alone on its database: the delivery can only be its own.
    let db = fresh_database().await;
    let pool = roomd::db::pool(db.options.clone(), 2).await.unwrap();
    let account = create_account(&pool, "alone").await;
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let server = start_server(&db.options, Options::default(), Some(stopped));
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let receiver = Receiver::answering(move |_| {
        let arrived_tx = arrived_tx.clone();
        async move {
            let _ = arrived_tx.send(());
            tokio::time::sleep(Duration::from_millis(500)).await;
            Answer::Status(200)
        }
    })
    .await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/Rooms", server.address))
        .basic_auth(&account.sid, Some(&account.token))
        .form(&[("StatusCallback", receiver.url("/e"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    arrived.recv().await.unwrap();
    // SIGTERM's path: stop while the receiver is still answering.
    stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
    assert_eq!(outbox(&pool).await, [("delivered".to_string(), 1)]);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn an_event_whose_dispatcher_is_killed_mid_delivery_is_delivered_again() {
    let db = fresh_database().await;
    let pool = roomd::db::pool(db.options.clone(), 2).await.unwrap();
    const SID: &str = "ACe0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0";
    // The first attempt gets no answer; the receiver says when it has it.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let attempts = Arc::new(AtomicUsize::new(0));
    let receiver = Receiver::answering(move |_| {
        let n = attempts.fetch_add(1, Ordering::SeqCst);
        let _ = arrived_tx.send(n);
        async move {
            if n == 0 {
                Answer::Hang
            } else {
                Answer::Status(200)
            }
        }
    })
    .await;
    // A real roomd, whose lease on an event it claims is its attempt timeout (1 s) + 10 s.
    let first = crate::cli::serve(vec![
        ("DATABASE_URL", db.url.clone()),
        ("ROOMD_BOOTSTRAP_ACCOUNT", format!("{SID}:kill-token")),
        ("ROOMD_CALLBACK_TIMEOUT", "1".to_string()),
    ])
    .await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/Rooms", first.base))
        .basic_auth(SID, Some("kill-token"))
        .form(&[("StatusCallback", receiver.url("/e"))])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(arrived.recv().await, Some(0));
    crate::cli::signal(&first.child, libc::SIGKILL);
    crate::cli::wait(first.child).await;
    assert_eq!(outbox(&pool).await, [("pending".to_string(), 1)]);
    // Another replica takes the event once the dead one's lease has run out.
    let _second = start_server(&db.options, Options::default(), None);
    let got = receiver.delivered(1).await;
    let all = receiver.received();
    assert_eq!(all.len(), 2);
    // The same event twice: receivers dedupe on RoomSid + SequenceNumber.
    assert_eq!(all[0].params, all[1].params);
    assert!(got[0].signed_with(&receiver.base, "kill-token"));
    for _ in 0..100 {
        if outbox(&pool).await == [("delivered".to_string(), 2)] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not recorded as delivered: {:?}", outbox(&pool).await);
}

#[tokio::test]
async fn a_completion_that_waited_for_a_join_disconnects_the_participant_who_joined() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let room = create_room_calling(&app, &receiver, "&UniqueName=race").await;
    let room_sid = room["sid"].as_str().unwrap().to_string();
    // A join holds the room's lock, its participant written but not yet committed.
    let mut tx = app.pool.begin().await.unwrap();
    let identity = roomd::domain::participant::Identity::parse("late").unwrap();
    let new_room = roomd::domain::create_room::CreateRoom::from_params(
        &roomd::twilio::form::Params::default(),
    )
    .unwrap();
    let sid = roomd::domain::sid::RoomSid::parse(&room_sid).unwrap();
    let join = roomd::db::participant_join::Join {
        account_sid: &app.account.sid,
        segment: &room_sid,
        sid: Some(&sid),
        identity: &identity,
        grant: None,
        new_room: &new_room,
        media: None,
    };
    roomd::db::participant_join::join(&mut tx, &join)
        .await
        .unwrap();
    // The completion waits for that lock ...
    let completing = tokio::spawn(
        app.client
            .post(app.url(&format!("/v1/Rooms/{room_sid}")))
            .basic_auth(&app.account.sid, Some(&app.account.token))
            .form(&[("Status", "completed")])
            .send(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!completing.is_finished());
    tx.commit().await.unwrap();
    assert_eq!(completing.await.unwrap().unwrap().status(), 202);
    // ... and then sees the participant who joined meanwhile: nobody stays in an ended room.
    let status: String = sqlx::query_scalar("SELECT status FROM participants WHERE room_sid = $1")
        .bind(&room_sid)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "disconnected");
    let got = receiver.delivered(4).await;
    let events: Vec<&str> = got.iter().map(|r| r.event()).collect();
    assert_eq!(
        events,
        [
            "room-created",
            "participant-connected",
            "participant-disconnected",
            "room-ended"
        ]
    );
}

#[tokio::test]
async fn a_burst_committed_at_once_to_a_dispatcher_that_has_been_idle_is_delivered() {
    // The dispatcher polls an empty outbox long enough for PostgreSQL to settle on a generic
    // plan for its claim if it may (after five runs), then 3,000 events commit at once. A plan
    // made for an empty table stalled such a burst (each claim ran into the statement timeout);
    // every event must arrive, each room's once.
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let params = roomd::twilio::form::Params::parse(
        format!("StatusCallback={}", enc(&receiver.url("/burst"))).as_bytes(),
    )
    .unwrap();
    let form = roomd::domain::create_room::CreateRoom::from_params(&params).unwrap();
    let mut tx = app.pool.begin().await.unwrap();
    let mut rooms = std::collections::HashSet::new();
    for _ in 0..3_000 {
        let sid = roomd::domain::sid::RoomSid::generate();
        roomd::db::rooms::insert(&mut *tx, &app.account.sid, &sid, &form)
            .await
            .unwrap();
        rooms.insert(sid.to_string());
    }
    tx.commit().await.unwrap();
    let got = receiver
        .until(|all| (all.len() >= rooms.len()).then(|| all.to_vec()))
        .await;
    let arrived: std::collections::HashSet<String> = got
        .iter()
        .map(|r| r.param("RoomSid").unwrap().to_string())
        .collect();
    assert_eq!(arrived, rooms);
    assert_eq!(got.len(), rooms.len(), "an event was delivered twice");
    assert!(got.iter().all(|r| r.event() == "room-created"));
}

#[tokio::test]
async fn an_account_flooding_a_hanging_receiver_holds_only_its_own_slots_and_another_accounts_callbacks_go_at_once(
) {
    let app = spawn_app_with(Options {
        callbacks: CallbackSettings {
            concurrency: 8,
            per_account: 3,
            per_host: 8,
            ..Options::default().callbacks
        },
        ..Options::default()
    })
    .await;
    let hanging = Receiver::answering(|_| async { Answer::Hang }).await;
    // Account A: more rooms than the process has slots, every one calling a receiver that
    // accepts and never answers (each attempt holds its slot for the 15 s timeout).
    for _ in 0..12 {
        create_room_calling(&app, &hanging, "").await;
    }
    hanging.until(|all| (all.len() >= 3).then_some(())).await;
    // Account B, on another receiver: its events go now, not when A's attempts time out.
    let b = crate::helpers::create_account(&app.pool, "b").await;
    let fine = Receiver::ok().await;
    let r = app
        .request_as(
            Some(&b),
            reqwest::Method::POST,
            "/v1/Rooms",
            Some(&format!("StatusCallback={}", enc(&fine.url("/b")))),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let room = r.body["sid"].as_str().unwrap().to_string();
    let joined = app
        .request_as(
            Some(&b),
            reqwest::Method::POST,
            &format!("/v1/Rooms/{room}/Participants"),
            Some("Identity=bea"),
        )
        .await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    let got = fine.delivered(2).await;
    assert_eq!(got[1].event(), "participant-connected");
    // A never had more than its share of slots: its 12 rooms' first attempts still hang, and
    // only 3 of them were ever sent.
    assert_eq!(hanging.received().len(), 3);
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM callback_events WHERE account_sid = $1 AND status = 'pending'",
    )
    .bind(&app.account.sid)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(pending, 12);
}

#[tokio::test]
async fn settled_events_past_the_retention_are_pruned_but_each_rooms_numbering_goes_on() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let room = create_room_calling(&app, &receiver, "").await;
    let room_sid = room["sid"].as_str().unwrap();
    app.join(room_sid, "alice").await;
    app.join(room_sid, "bob").await;
    receiver.delivered(3).await;
    log_until(&app, room_sid, |l| {
        l.len() == 3 && l.iter().all(|e| e["status"] == "delivered")
    })
    .await;
    // Nothing is old enough yet.
    let retention = Duration::from_secs(3600);
    assert_eq!(
        roomd::db::callback_claims::prune(&app.pool, retention, 100)
            .await
            .unwrap(),
        0
    );
    sqlx::query("UPDATE callback_events SET date_updated = now() - interval '2 hours'")
        .execute(&app.pool)
        .await
        .unwrap();
    // In batches: the room's last event stays, so the next one is numbered after it.
    assert_eq!(
        roomd::db::callback_claims::prune(&app.pool, retention, 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        roomd::db::callback_claims::prune(&app.pool, retention, 100)
            .await
            .unwrap(),
        1
    );
    let log = delivery_log(&app, room_sid).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["sequence_number"], 2);
    app.join(room_sid, "carol").await;
    let got = receiver.delivered(4).await;
    assert_eq!(got[3].sequence(), 3);
}

#[tokio::test]
async fn a_server_others_reach_calls_no_private_or_loopback_address_unless_the_operator_opens_it() {
    use roomd::workers::callbacks::destinations::DenyList;
    let public = DenyList::default_for("0.0.0.0".parse().unwrap());
    for (policy, expected) in [
        (public.clone(), "failed"),
        (public.allowing("127.0.0.0/8").unwrap(), "delivered"),
    ] {
        let app = spawn_app_with(Options {
            callbacks: CallbackSettings {
                deny: policy,
                ..Options::default().callbacks
            },
            ..Options::default()
        })
        .await;
        let receiver = Receiver::ok().await;
        let port = receiver.base.rsplit(':').next().unwrap();
        let mut rooms = Vec::new();
        for url in [
            format!("http://127.0.0.1:{port}/a"),
            format!("http://localhost:{port}/b"),
            format!("http://127.1:{port}/c"),
            format!("http://0x7f000001:{port}/d"),
            format!("http://2130706433:{port}/e"),
            format!("http://[::ffff:127.0.0.1]:{port}/f"),
        ] {
            let room = app
                .create_room(&format!("StatusCallback={}", enc(&url)))
                .await;
            rooms.push(room["sid"].as_str().unwrap().to_string());
        }
        for sid in &rooms {
            let log = log_until(&app, sid, |l| l.len() == 1 && l[0]["status"] != "pending").await;
            assert_eq!(log[0]["status"], expected, "{}", log[0]);
            if expected == "failed" {
                assert_eq!(log[0]["last_error"], "denied");
                assert_eq!(log[0]["attempts"], 1);
            }
        }
        let reached = receiver.received().len();
        assert_eq!(reached, if expected == "failed" { 0 } else { rooms.len() });
    }
}

#[tokio::test]
async fn an_unanswered_attempt_says_only_a_coarse_reason() {
    let app = spawn_app_with(Options {
        callbacks: CallbackSettings {
            max_attempts: 1,
            ..Options::default().callbacks
        },
        ..Options::default()
    })
    .await;
    // A closed port, and a port that speaks something other than HTTP.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let not_http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let not_http_port = not_http.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = not_http.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        }
    });
    for port in [closed, not_http_port] {
        let room = app
            .create_room(&format!(
                "StatusCallback={}",
                enc(&format!("http://127.0.0.1:{port}/x"))
            ))
            .await;
        let sid = room["sid"].as_str().unwrap();
        let log = log_until(&app, sid, |l| l.len() == 1 && l[0]["status"] == "failed").await;
        assert_eq!(log[0]["last_error"], "connect", "{}", log[0]);
        assert_eq!(log[0]["last_response_status"], Value::Null);
    }
}

#[tokio::test]
async fn timestamps_never_run_backwards_against_sequence_numbers_under_concurrent_changes() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let room = create_room_calling(&app, &receiver, "").await;
    let room_sid = room["sid"].as_str().unwrap().to_string();
    let joins = (0..16).map(|i| {
        let (app, room_sid) = (&app, room_sid.clone());
        async move {
            let path = format!("/v1/Rooms/{room_sid}/Participants");
            app.post(&path, &format!("Identity=p{i}")).await;
            app.post(&format!("{path}/p{i}"), "Status=disconnected")
                .await;
        }
    });
    futures_util::future::join_all(joins).await;
    let events: Vec<(i32, String)> = sqlx::query_as(
        "SELECT sequence_number, params->>'Timestamp' FROM callback_events \
         WHERE room_sid = $1 ORDER BY sequence_number",
    )
    .bind(&room_sid)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(events.len(), 33);
    for pair in events.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "{pair:?}");
    }
}
