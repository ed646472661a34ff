//! Two real `roomd serve` processes on one database: every invariant is PostgreSQL's, not a
//! process's.

use crate::cli::{serve, signal, wait, Served};
use crate::helpers::{empty_database, metric_value, TestDb};
use std::time::Duration;

const SID: &str = "ACf0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";

async fn two_replicas(db: &TestDb, extra: &[(&'static str, &str)]) -> (Served, Served) {
    let envs = || {
        let mut e = vec![
            ("DATABASE_URL", db.url.clone()),
            ("ROOMD_BOOTSTRAP_ACCOUNT", format!("{SID}:first-token")),
            ("ROOMD_SWEEP_INTERVAL", "1".to_string()),
        ];
        e.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        e
    };
    // Both at the same moment, on a database that has no schema yet.
    tokio::join!(serve(envs()), serve(envs()))
}

/// Runs a `roomd` CLI command on the database; its JSON output.
async fn cli(db: &TestDb, args: &[&str]) -> serde_json::Value {
    let url = db.url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::cli::json_stdout(&crate::cli::roomd(&url, &args))
    })
    .await
    .unwrap()
}

async fn stop(replicas: (Served, Served)) {
    for r in [replicas.0, replicas.1] {
        signal(&r.child, libc::SIGTERM);
        assert!(wait(r.child).await.success());
    }
}

#[tokio::test]
async fn two_replicas_migrate_once_and_keep_names_unique_and_end_each_room_once() {
    let db = empty_database().await;
    let replicas = two_replicas(&db, &[]).await;
    let pool = roomd::db::pool(db.options.clone(), 4).await.unwrap();
    let applied: Vec<i32> =
        sqlx::query_scalar("SELECT version FROM refinery_schema_history ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    // Every migration in migrations/ (V<n>__name.sql), each applied once.
    let mut versions: Vec<i32> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_prefix('V')?.split("__").next()?.parse().ok()
            })
            .collect();
    versions.sort();
    assert!(versions.len() >= 5);
    assert_eq!(applied, versions, "each migration applied once");

    // Concurrent creates of one name, spread over both replicas.
    let client = reqwest::Client::new();
    let bases = [replicas.0.base.clone(), replicas.1.base.clone()];
    let creates = (0..20).map(|i| {
        let req = client
            .post(format!("{}/v1/Rooms", bases[i % 2]))
            .basic_auth(SID, Some("first-token"))
            .form(&[("UniqueName", "contested")]);
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    });
    let results = futures_util::future::join_all(creates).await;
    assert_eq!(
        results.iter().filter(|(s, _)| *s == 201).count(),
        1,
        "{results:?}"
    );
    assert!(results
        .iter()
        .filter(|(s, _)| *s != 201)
        .all(|(s, b)| *s == 400 && b["code"] == 53113));

    // Rooms whose deadline has passed: both sweepers run every second.
    crate::helpers::insert_rooms_due_in(&pool, SID, "due", 3000, -1.0).await;
    let mut left = i64::MAX;
    for _ in 0..150 {
        left = sqlx::query_scalar(
            "SELECT count(*) FROM rooms WHERE unique_name LIKE 'due-%' AND status = 'in-progress'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(left, 0, "the sweepers ended every due room");
    let mut ended = 0.0;
    for base in &bases {
        let text = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        ended +=
            metric_value(&text, r#"roomd_rooms_ended_total{reason="unused_timeout"}"#).unwrap();
    }
    assert_eq!(
        ended, 3000.0,
        "each room ended exactly once across both processes"
    );
    let ended_rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rooms WHERE unique_name LIKE 'due-%' AND end_reason = 'unused_timeout' AND end_time IS NOT NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ended_rows, 3000);
    pool.close().await;
    stop(replicas).await;
}

#[tokio::test]
async fn a_rotated_token_stops_working_on_every_replica_within_the_ttl() {
    let db = empty_database().await;
    let replicas = two_replicas(&db, &[("ROOMD_AUTH_CACHE_TTL", "2")]).await;
    let client = reqwest::Client::new();
    let bases = [replicas.0.base.clone(), replicas.1.base.clone()];
    let status = |base: String, token: String| {
        let client = client.clone();
        async move {
            client
                .get(format!("{base}/v1/Rooms"))
                .basic_auth(SID, Some(token))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for b in &bases {
        assert_eq!(
            status(b.clone(), "first-token".into()).await,
            200,
            "warm the cache"
        );
    }
    let rotated = cli(&db, &["accounts", "rotate-token", SID]).await;
    let new_token = rotated["auth_token"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    for b in &bases {
        assert_eq!(status(b.clone(), "first-token".into()).await, 401, "{b}");
        assert_eq!(status(b.clone(), new_token.clone()).await, 200, "{b}");
    }
    stop(replicas).await;
}

#[tokio::test]
async fn one_key_works_on_both_replicas_and_max_participants_holds_across_them() {
    let db = empty_database().await;
    let replicas = two_replicas(&db, &[]).await;
    let pool = roomd::db::pool(db.options.clone(), 2).await.unwrap();
    // A key made by the CLI (sealed under the master key both replicas share).
    let created = cli(&db, &["keys", "create", "--account", SID]).await;
    let key = crate::helpers::TestKey {
        sid: created["sid"].as_str().unwrap().to_string(),
        secret: created["secret"].as_str().unwrap().to_string(),
        account_sid: SID.to_string(),
    };
    let client = reqwest::Client::new();
    let bases = [replicas.0.base.clone(), replicas.1.base.clone()];
    let r = client
        .post(format!("{}/v1/Rooms", bases[0]))
        .basic_auth(&key.sid, Some(&key.secret))
        .form(&[("UniqueName", "shared"), ("MaxParticipants", "5")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // 20 tokens of that key, joining through both replicas at once: five places.
    let joins = (0..20).map(|i| {
        let req = client
            .post(format!("{}/v1/Rooms/shared/Participants", bases[i % 2]))
            .bearer_auth(key.token(&format!("user-{i}"), Some("shared")));
        async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    });
    let results = futures_util::future::join_all(joins).await;
    let joined: Vec<_> = results.iter().filter(|(s, _)| *s == 201).collect();
    assert_eq!(joined.len(), 5, "{results:?}");
    assert!(results
        .iter()
        .filter(|(s, _)| *s != 201)
        .all(|(s, b)| *s == 400 && b["code"] == 53105));
    let connected: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM participants WHERE status = 'connected' AND account_sid = $1",
    )
    .bind(SID)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(connected, 5);
    pool.close().await;
    stop(replicas).await;
}
