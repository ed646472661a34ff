//! Hostile or unlucky conditions: stalls, slow bodies, floods of bad input. Each answers with
//! Twilio's error body within bounded time, and never holds what a client asks it to.

use crate::helpers::{create_account, spawn_app, Reply};
use roomd::app::startup::{Application, ServerSettings};
use sqlx::Executor;
use std::time::Duration;

#[tokio::test]
async fn a_statement_stuck_behind_a_lock_is_cancelled_and_answered_503() {
    let app = spawn_app().await;
    let room = app.create_room("UniqueName=locked").await;
    let sid = room["sid"].as_str().unwrap().to_string();
    // Another session holds the table for 20 s; without a statement timeout the request
    // would wait that long and then succeed.
    let mut tx = app.pool.begin().await.unwrap();
    tx.execute("LOCK TABLE rooms IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let held = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        tx.rollback().await.unwrap();
    });
    let r = app.get(&format!("/v1/Rooms/{sid}")).await;
    r.assert_error(503, 20503);
    held.abort();
}

/// The PostgreSQL processes serving `database` (all of them, when `None`), by pid.
async fn backend_pids(pool: &sqlx::PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

fn signal_all(pids: &[i32], signal: libc::c_int) {
    for &pid in pids {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, signal) };
    }
}

#[tokio::test]
async fn a_frozen_database_costs_a_request_its_budget_not_the_length_of_the_freeze() {
    let crate::helpers::OwnCluster {
        pg,
        pool,
        base,
        account,
    } = crate::helpers::spawn_app_on_own_cluster().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let list = || async {
        Reply::from(
            client
                .get(format!("{base}/v1/Rooms"))
                .basic_auth(&account.sid, Some(&account.token))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    // Warm every worker's connection and the credential cache.
    for _ in 0..8 {
        assert_eq!(list().await.status, 200);
    }
    // SIGSTOP every backend (roomd's connections) and the postmaster (new connections): the
    // server is there but answers nothing, as in a VM pause or a partition. Thawed after 15 s.
    let mut frozen = backend_pids(&pool).await;
    let postmaster: i32 =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
            .fetch_one(&pool)
            .await
            .map(|checkpointer: i32| {
                std::fs::read_to_string(format!("/proc/{checkpointer}/stat"))
                    .unwrap()
                    .split_whitespace()
                    .nth(3)
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .unwrap();
    frozen.push(postmaster);
    signal_all(&frozen, libc::SIGSTOP);
    let thaw = {
        let frozen = frozen.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(15)).await;
            signal_all(&frozen, libc::SIGCONT);
        })
    };
    let r = list().await;
    signal_all(&frozen, libc::SIGCONT);
    thaw.abort();
    r.assert_error(503, 20503);
    pool.close().await;
    tokio::task::spawn_blocking(move || drop(pg)).await.unwrap();
}

/// Sends `head` (request line and headers, without the blank line) as the test account, then
/// `body` one piece every 200 ms for at most 30 s, and returns what roomd answered.
async fn trickle(app: &crate::helpers::TestApp, head: &str, body: &[&[u8]]) -> String {
    use base64::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.strip_prefix("http://").unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", app.account.sid, app.account.token));
    s.write_all(format!("{head}\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (mut r, mut w) = s.into_split();
    let body: Vec<Vec<u8>> = body.iter().map(|b| b.to_vec()).collect();
    let writer = tokio::spawn(async move {
        for _ in 0..150 {
            for piece in &body {
                if w.write_all(piece).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let mut out = Vec::new();
    // Reads to EOF: roomd must answer and close, well before the trickle ends.
    let done = tokio::time::timeout(Duration::from_secs(20), r.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out).into_owned();
    assert!(
        done.is_ok(),
        "roomd held the connection after {head}; it sent: {out}"
    );
    writer.abort();
    out
}

#[tokio::test]
async fn a_body_that_trickles_in_is_answered_408_and_its_connection_closed() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        body_timeout: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let slow = trickle(
        &app,
        "POST /v1/Rooms HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000",
        &[b"a"],
    )
    .await;
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    assert!(
        slow.contains(r#""code":20001"#) && slow.contains(r#""status":408"#),
        "{slow}"
    );
    // A chunked body that declares 2^64-1 bytes and sends them slowly.
    let chunked = trickle(
        &app,
        "POST /v1/Rooms HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked",
        &[b"ffffffffffffffff\r\n", b"a"],
    )
    .await;
    assert!(
        chunked.starts_with("HTTP/1.1 408") || chunked.starts_with("HTTP/1.1 400"),
        "{chunked}"
    );
    assert!(chunked.contains(r#""code":20001"#), "{chunked}");
    // A route that reads no body answers, and the connection still closes.
    let get = trickle(
        &app,
        "GET /v1/Rooms HTTP/1.1\r\nTransfer-Encoding: chunked",
        &[b"ffffffffffffffff\r\n", b"a"],
    )
    .await;
    assert!(get.starts_with("HTTP/1.1 200"), "{get}");
    assert_eq!(app.room_count().await, 0);
}

#[tokio::test]
async fn the_pool_size_bounds_the_connections_a_process_opens_whatever_the_worker_count() {
    let db = crate::helpers::fresh_database().await;
    // Split exactly: 10 over 4 workers is 3 + 3 + 2 + 2.
    let pools = roomd::db::WorkerPools::new(db.options.clone(), 10, 4);
    let kept: Vec<_> = (0..4).map(|_| pools.add(None)).collect();
    assert_eq!(pools.serving_capacity(), 10);
    drop(kept);

    let pool = roomd::db::pool(db.options.clone(), 2).await.unwrap();
    let settings = ServerSettings {
        workers: 16,
        db_pool_size: 4,
        ..ServerSettings::local()
    };
    let app = Application::build(settings, db.options.clone()).unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    let account = create_account(&pool, "capped").await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let req = client
            .get(format!("{base}{path}"))
            .basic_auth(&account.sid, Some(&account.token));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/v1/Rooms").await, 200);
    // Every request blocks on a locked table while holding a connection, so each worker opens
    // as many as it may.
    let mut tx = pool.begin().await.unwrap();
    tx.execute("LOCK TABLE rooms IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let requests = tokio::spawn(futures_util::future::join_all(
        (0..64).map(|_| get("/v1/Rooms")),
    ));
    let (mut most, mut dispatching) = (0, 0);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The serving connections, and the status callback dispatcher's (a bound of its own).
        let (open, dispatcher): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE application_name <> $1), \
                count(*) FILTER (WHERE application_name = $1) \
             FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .bind(roomd::app::startup::DISPATCHER_APPLICATION_NAME)
        .fetch_one(&pool)
        .await
        .unwrap();
        // Less the session holding the lock.
        most = most.max(open - 1);
        dispatching = dispatching.max(dispatcher);
    }
    assert!(dispatching <= 3, "the dispatcher opened {dispatching}");
    tx.rollback().await.unwrap();
    let statuses = requests.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert!(most >= 1, "the requests held connections");
    assert!(
        most <= 4,
        "{most} connections open with ROOMD_DB_POOL_SIZE=4"
    );
}
