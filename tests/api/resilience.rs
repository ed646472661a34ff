//! Start-up, shutdown and database outages.

use crate::helpers::{fresh_database, Reply};
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn while_the_database_is_down_requests_get_503_and_roomd_recovers_when_it_returns() {
    let crate::helpers::OwnCluster {
        mut pg,
        pool,
        base,
        account,
    } = crate::helpers::spawn_app_on_own_cluster().await;
    let client = reqwest::Client::new();
    let list = || {
        client
            .get(format!("{base}/v1/Rooms"))
            .basic_auth(&account.sid, Some(&account.token))
            .send()
    };
    let healthz = || async {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(list().await.unwrap().status(), 200);

    let mut pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let down = Reply::from(list().await.unwrap()).await;
    down.assert_error(503, 20503);
    assert_eq!(
        down.body["message"],
        "Service is unavailable. Please try again"
    );
    let created = Reply::from(
        client
            .post(format!("{base}/v1/Rooms"))
            .basic_auth(&account.sid, Some(&account.token))
            .form(&[("UniqueName", "during-outage")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    created.assert_error(503, 20503);
    assert_eq!(healthz().await, 503);

    let pg = tokio::task::spawn_blocking(move || {
        pg.restart().unwrap();
        pg
    })
    .await
    .unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if list().await.unwrap().status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        recovered,
        "roomd did not recover after the database returned"
    );
    assert_eq!(healthz().await, 200);
    pool.close().await;
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

fn roomd_output(envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomd"));
    // Never ./roomd-data in the clone (the embedded Janus's folder would go there).
    cmd.env(
        "ROOMD_DATA_DIR",
        std::env::temp_dir().join(format!(
            "roomd-resilience-{}",
            &roomd::domain::sid::random_hex32()[..8]
        )),
    );
    cmd.arg("serve")
        .env("RUST_LOG", "error")
        .env("ROOMD_METRICS_BIND", "main")
        .env("ROOMD_MASTER_KEY", crate::cli::TEST_MASTER_KEY);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[tokio::test]
async fn an_unreachable_database_is_retried_then_reported_in_one_line() {
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking(|| {
        roomd_output(&[
            (
                "DATABASE_URL",
                "postgres://postgres@localhost:5432/x?host=/nonexistent-roomd-socket-dir",
            ),
            ("ROOMD_DB_CONNECT_TIMEOUT", "2"),
            ("ROOMD_BIND", "127.0.0.1:0"),
        ])
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it retried for the timeout"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("could not reach the database (DATABASE_URL) within 2 s"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_port_in_use_is_reported_in_one_line() {
    let db = fresh_database().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        roomd_output(&[("DATABASE_URL", &url), ("ROOMD_BIND", &bind)])
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("ROOMD_BIND") && stderr.contains("in use"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_request_in_flight_during_sigterm_still_gets_its_answer() {
    let db = fresh_database().await;
    let sid = format!("AC{}", "d".repeat(32));
    let served = crate::cli::serve(vec![
        ("DATABASE_URL", db.url.clone()),
        ("ROOMD_BOOTSTRAP_ACCOUNT", format!("{sid}:tok")),
    ])
    .await;
    let (child, base, lines) = (served.child, served.base, served.log);
    // Warm the credential cache so the slow part is the insert alone.
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{base}/v1/Rooms"))
        .basic_auth(&sid, Some("tok"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Hold a lock that makes the next insert wait, so the request is in flight at SIGTERM.
    let pool = roomd::db::pool(db.options.clone(), 2).await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE rooms IN EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let request = tokio::spawn({
        let (client, base, sid) = (client.clone(), base.clone(), sid.clone());
        async move {
            client
                .post(format!("{base}/v1/Rooms"))
                .basic_auth(&sid, Some("tok"))
                .form(&[("UniqueName", "inflight")])
                .send()
                .await
        }
    });
    // Wait until the insert is blocked on the lock.
    for _ in 0..100 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::cli::signal(&child, libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // New connections are refused while the old request drains.
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "still accepting after SIGTERM"
    );
    tx.rollback().await.unwrap();

    let resp = request
        .await
        .unwrap()
        .expect("the in-flight request got an answer");
    assert_eq!(resp.status(), 201);
    let status = crate::cli::wait(child).await;
    assert!(status.success(), "{status}");
    let rest = lines.finish();
    assert!(rest.iter().any(|l| l.contains("roomd stopped")), "{rest:?}");
}

#[tokio::test]
async fn a_database_that_refuses_the_credentials_fails_the_start_at_once_without_retrying() {
    let db = crate::helpers::empty_database().await;
    // The server answers, but this database does not exist: retrying cannot help.
    let url = db.url.replace(&db.name, "roomd_no_such_database");
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomd"));
        cmd.arg("migrate")
            .env("DATABASE_URL", url)
            .env("ROOMD_DB_CONNECT_TIMEOUT", "600")
            .env("RUST_LOG", "warn")
            .env("ROOMD_LOG_FORMAT", "text");
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("not reachable yet"),
        "no retries: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("roomd_no_such_database"), "{stderr}");
}
