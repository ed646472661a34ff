//! Access Tokens on the join: every way a token can be wrong, each with its Twilio code, and
//! none of them joining anyone.

use crate::helpers::{create_account, create_api_key, spawn_app_with, Options, Reply, TestApp};
use serde_json::json;
use std::time::Duration;

async fn join_with(app: &TestApp, token: &str) -> Reply {
    app.post_bearer(token, "/v1/Rooms/standup/Participants", "")
        .await
}

#[tokio::test]
async fn each_bad_access_token_gets_its_own_code_and_joins_no_one() {
    let app = spawn_app_with(Options {
        auth_cache_ttl: Duration::from_secs(1),
        ..Options::default()
    })
    .await;
    app.create_room("UniqueName=standup").await;
    let key = create_api_key(&app.pool, &app.account.sid).await;
    let now = chrono::Utc::now().timestamp();

    let cases: Vec<(&str, String, u64)> = vec![
        ("not a JWT", "abc".into(), 20101),
        ("three parts of garbage", "a.b.c".into(), 20101),
        ("expired", key.token_with(json!({ "exp": now - 10 })), 20104),
        (
            "not yet valid",
            key.token_with(json!({ "nbf": now + 600 })),
            20105,
        ),
        (
            "signed with another secret",
            key.sign(json!({}), b"another secret entirely, 32 bytes"),
            20107,
        ),
        (
            "an unknown key",
            {
                let mut other = key.clone();
                other.sid = roomd::domain::sid::generate("SK");
                other.token("alice", None)
            },
            20103,
        ),
        (
            "a subject that is not the key's account",
            key.token_with(json!({ "sub": roomd::domain::sid::generate("AC") })),
            20103,
        ),
        (
            "no video grant",
            key.token_with(json!({ "grants": { "identity": "alice" } })),
            20106,
        ),
        (
            "no identity",
            key.token_with(json!({ "grants": { "video": {} } })),
            20106,
        ),
        (
            "an identity too long",
            key.token_with(json!({ "grants": { "identity": "x".repeat(129), "video": {} } })),
            20106,
        ),
        (
            "a grant for another room",
            key.token("alice", Some("another-room")),
            20106,
        ),
    ];
    for (what, token, code) in &cases {
        let r = join_with(&app, token).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        r.assert_error(401, *code);
    }

    // A header that is not Twilio's (no `cty`).
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let plain = jsonwebtoken::encode(
        &header,
        &json!({ "iss": key.sid, "sub": key.account_sid, "exp": now + 60,
                 "grants": { "identity": "a", "video": {} } }),
        &jsonwebtoken::EncodingKey::from_secret(key.secret.as_bytes()),
    )
    .unwrap();
    join_with(&app, &plain).await.assert_error(401, 20102);

    // The key of another account, claiming this one: 20103.
    let other = create_account(&app.pool, "other").await;
    let other_key = create_api_key(&app.pool, &other.sid).await;
    let mut claimed = other_key.clone();
    claimed.account_sid = app.account.sid.clone();
    join_with(&app, &claimed.token("alice", None))
        .await
        .assert_error(401, 20103);

    let joined: i64 = sqlx::query_scalar("SELECT count(*) FROM participants")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(joined, 0, "no bad token joined anyone");

    // A token minted by a server whose clock runs a few seconds ahead of roomd's joins (`nbf`
    // has a leeway for clock skew); expired is still expired.
    let skewed = join_with(&app, &key.token_with(json!({ "nbf": now + 5 }))).await;
    assert_eq!(skewed.status, 201, "{}", skewed.body);

    // A good token joins; the room grant may name the room by SID too.
    let good = join_with(&app, &key.token("alice", Some("standup"))).await;
    assert_eq!(good.status, 201, "{}", good.body);
    let room_sid = good.body["room_sid"].as_str().unwrap();
    let by_sid = app
        .post_bearer(
            &key.token("bob", Some(room_sid)),
            "/v1/Rooms/standup/Participants",
            "",
        )
        .await;
    assert_eq!(by_sid.status, 201, "{}", by_sid.body);

    // Tokens authenticate only a participant's own calls: not Twilio's REST API.
    let r = app
        .client
        .get(app.url("/v1/Rooms"))
        .bearer_auth(key.token("alice", None))
        .send()
        .await
        .unwrap();
    Reply::from(r).await.assert_error(401, 20003);

    // A deleted key's tokens stop within the cache TTL.
    sqlx::query("DELETE FROM api_keys WHERE sid = $1")
        .bind(&key.sid)
        .execute(&app.pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    join_with(&app, &key.token("carol", None))
        .await
        .assert_error(401, 20103);
}
