//! Subscribe rules and the subscribed tracks they shape, and rooms' recording rules.

use crate::helpers::{enc, spawn_app, TestApp};
use serde_json::{json, Value};

fn participant_path(room: &str, who: &str, tail: &str) -> String {
    format!("/v1/Rooms/{room}/Participants/{who}/{tail}")
}

async fn publish(app: &TestApp, room: &str, who: &str, form: &str) -> Value {
    let r = app
        .post(&participant_path(room, who, "PublishedTracks"), form)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

/// (publisher identity's track names) that `who` receives, sorted.
async fn received(app: &TestApp, room: &str, who: &str) -> Vec<String> {
    let r = app
        .get(&participant_path(room, who, "SubscribedTracks"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["key"], "subscribed_tracks");
    let mut names: Vec<String> = r.body["subscribed_tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn set_rules(app: &TestApp, room: &str, who: &str, rules: &Value) -> crate::helpers::Reply {
    app.post(
        &participant_path(room, who, "SubscribeRules"),
        &format!("Rules={}", enc(&rules.to_string())),
    )
    .await
}

#[tokio::test]
async fn subscribed_tracks_follow_the_subscribe_rules_at_once() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=hall").await;
    let room_sid = room["sid"].as_str().unwrap();
    let alice = app.join(room_sid, "alice").await;
    let bob = app.join(room_sid, "bob").await;
    app.join(room_sid, "carol").await;
    publish(&app, "hall", "alice", "Kind=audio&Name=alice-mic").await;
    let alice_cam = publish(&app, "hall", "alice", "Kind=video&Name=alice-cam").await;
    publish(&app, "hall", "bob", "Kind=audio&Name=bob-mic").await;
    let bob_cam = publish(&app, "hall", "bob", "Kind=video&Name=bob-cam").await;

    // Default: everything every other participant publishes.
    let rules = app
        .get(&participant_path("hall", "carol", "SubscribeRules"))
        .await;
    assert_eq!(rules.status, 200, "{}", rules.body);
    assert_eq!(
        rules.body["rules"],
        json!([{"type": "include", "all": true, "publisher": null, "track": null,
                "kind": null, "priority": null}])
    );
    assert!(rules.body.get("meta").is_none());
    assert_eq!(
        received(&app, "hall", "carol").await,
        ["alice-cam", "alice-mic", "bob-cam", "bob-mic"]
    );
    assert_eq!(
        received(&app, "hall", "alice").await,
        ["bob-cam", "bob-mic"]
    );
    let one = app
        .get(&participant_path("hall", "carol", "SubscribedTracks"))
        .await
        .body["subscribed_tracks"][0]
        .clone();
    let carol_sid = app.get("/v1/Rooms/hall/Participants/carol").await.body["sid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(one["participant_sid"], carol_sid.as_str());
    assert!(one["publisher_sid"] == alice["sid"] || one["publisher_sid"] == bob["sid"]);
    assert_eq!(one.as_object().unwrap().len(), 10, "{one}");

    // Exclude bob's video: it disappears from carol's tracks at once (exclude wins over
    // include-all); fetching it is a 404, alice's camera still fetches.
    let r = set_rules(
        &app,
        "hall",
        "carol",
        &json!([{"type": "include", "all": true},
                {"type": "exclude", "publisher": "bob", "kind": "video"}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rules"][1]["publisher"], "bob");
    assert_eq!(r.body["rules"][1]["all"], Value::Null);
    assert_eq!(
        received(&app, "hall", "carol").await,
        ["alice-cam", "alice-mic", "bob-mic"]
    );
    let bob_cam_sid = bob_cam["sid"].as_str().unwrap();
    app.get(&participant_path(
        "hall",
        "carol",
        &format!("SubscribedTracks/{bob_cam_sid}"),
    ))
    .await
    .assert_error(404, 20404);
    let fetched = app
        .get(&participant_path(
            room_sid,
            &carol_sid,
            &format!("SubscribedTracks/{}", alice_cam["sid"].as_str().unwrap()),
        ))
        .await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(fetched.body["publisher_sid"], alice["sid"]);

    // Rules by publisher SID, track SID, track name and kind.
    let by = |rules: Value| {
        let app = &app;
        async move {
            let r = set_rules(app, "hall", "carol", &rules).await;
            assert_eq!(r.status, 200, "{}", r.body);
            received(app, "hall", "carol").await
        }
    };
    assert_eq!(
        by(json!([{"type": "include", "publisher": bob["sid"]}])).await,
        ["bob-cam", "bob-mic"]
    );
    assert_eq!(
        by(json!([{"type": "include", "track": bob_cam_sid}, {"type": "include", "track": "alice-mic"}])).await,
        ["alice-mic", "bob-cam"]
    );
    assert_eq!(
        by(json!([{"type": "include", "kind": "audio", "priority": "high"}])).await,
        ["alice-mic", "bob-mic"]
    );
    assert_eq!(
        by(json!([{"type": "exclude", "all": true}])).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn bad_subscribe_rules_are_53215_and_change_nothing() {
    let app = spawn_app().await;
    app.create_room("UniqueName=r").await;
    app.join("r", "alice").await;
    let path = participant_path("r", "alice", "SubscribeRules");
    app.post(&path, "").await.assert_error(400, 20001);
    let many: Vec<Value> = (0..21)
        .map(|i| json!({"type": "include", "track": format!("t{i}")}))
        .collect();
    for bad in [
        "not json".to_string(),
        "[]".to_string(),
        r#"[{"type":"include","kind":"smell"}]"#.to_string(),
        r#"[{"type":"include","all":true,"kind":"audio"}]"#.to_string(),
        r#"[{"type":"include","all":false}]"#.to_string(),
        r#"[{"all":true}]"#.to_string(),
        r#"[{"type":"include","track":"a"},{"type":"include","track":"a"}]"#.to_string(),
        r#"[{"type":"include","publisher":"a\u0000b"}]"#.to_string(),
        json!([{"type": "include", "track": "t".repeat(129)}]).to_string(),
        Value::Array(many).to_string(),
    ] {
        app.post(&path, &format!("Rules={}", enc(&bad)))
            .await
            .assert_error(400, 53215);
    }
    let r = app.get(&path).await;
    assert_eq!(r.body["rules"][0]["all"], true, "still the default");
    app.get(&participant_path("r", "nobody", "SubscribeRules"))
        .await
        .assert_error(404, 20404);
    app.get(&participant_path(
        "r",
        "alice",
        "SubscribedTracks/not-a-sid",
    ))
    .await
    .assert_error(404, 20404);
}

#[tokio::test]
async fn recording_rules_start_from_the_create_and_each_post_replaces_them() {
    let app = spawn_app().await;
    let plain = app.create_room("UniqueName=plain").await;
    let recorded = app
        .create_room("UniqueName=recorded&RecordParticipantsOnConnect=true")
        .await;
    let given = app
        .create_room(&format!(
            "UniqueName=given&RecordingRules={}",
            enc(r#"[{"type":"include","kind":"audio"}]"#)
        ))
        .await;
    let rules_of =
        |room: &Value| format!("/v1/Rooms/{}/RecordingRules", room["sid"].as_str().unwrap());
    let r = app.get(&rules_of(&plain)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["rules"], json!([]));
    assert_eq!(r.body["room_sid"], plain["sid"]);
    assert_eq!(
        app.get(&rules_of(&recorded)).await.body["rules"],
        json!([{"type": "include", "all": true}])
    );
    assert_eq!(
        app.get(&rules_of(&given)).await.body["rules"],
        json!([{"type": "include", "kind": "audio"}])
    );

    // A POST replaces every rule; unused keys are left out; bad rules are 53120 and keep them.
    let new_rules = json!([{"type": "exclude", "publisher": "alice", "track": null}]);
    let r = app
        .post(
            &rules_of(&plain),
            &format!("Rules={}", enc(&new_rules.to_string())),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["rules"],
        json!([{"type": "exclude", "publisher": "alice"}])
    );
    for bad in [
        "[]",
        r#"[{"type":"include","kind":"data"}]"#,
        "{",
        r#"[{"type":"exclude","track":"a\u0000"}]"#,
    ] {
        app.post(&rules_of(&plain), &format!("Rules={}", enc(bad)))
            .await
            .assert_error(400, 53120);
    }
    app.post(&rules_of(&plain), "")
        .await
        .assert_error(400, 20001);
    assert_eq!(
        app.get("/v1/Rooms/plain/RecordingRules").await.body["rules"],
        json!([{"type": "exclude", "publisher": "alice"}])
    );
    // An ended room keeps its rules, and takes no new ones.
    app.complete_room(plain["sid"].as_str().unwrap()).await;
    assert_eq!(app.get(&rules_of(&plain)).await.status, 200);
    app.post(
        &rules_of(&plain),
        &format!("Rules={}", enc(r#"[{"type":"include","all":true}]"#)),
    )
    .await
    .assert_error(400, 53118);
    app.get("/v1/Rooms/nope/RecordingRules")
        .await
        .assert_error(404, 20404);
}
