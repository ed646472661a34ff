//! The `roomd` binary itself, against the test's database.

use crate::helpers::{spawn_app, TestAccount};
use reqwest::Method;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The master key the CLI tests run with (base64 of 32 bytes of 0x01), so that no test writes
/// a key file into the working directory.
pub const TEST_MASTER_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

pub fn roomd(database_url: &str, args: &[&str]) -> std::process::Output {
    roomd_with_key(database_url, TEST_MASTER_KEY, args)
}

fn roomd_with_key(database_url: &str, key: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roomd"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("ROOMD_MASTER_KEY", key)
        .env_remove("ROOMD_MASTER_KEY_FILE")
        .env("RUST_LOG", "warn")
        .output()
        .expect("running roomd")
}

pub fn json_stdout(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object: {stdout}"
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

#[tokio::test]
async fn accounts_created_listed_and_rotated_from_the_cli_work_over_http() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let created = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            json_stdout(&roomd(
                &url,
                &["accounts", "create", "--friendly-name", "Staging EU"],
            ))
        }
    })
    .await
    .unwrap();
    let sid = created["sid"].as_str().unwrap().to_string();
    let token = created["auth_token"].as_str().unwrap().to_string();
    assert!(
        roomd::domain::sid::is_sid("AC", &sid) && !sid[2..].chars().any(|c| c.is_ascii_uppercase())
    );
    assert!(roomd::domain::account::is_valid_token(&token));
    assert_eq!(created["friendly_name"], "Staging EU");
    assert_eq!(created["status"], "active");
    assert!(crate::rooms_create::is_twilio_date(
        &created["date_created"]
    ));

    let account = TestAccount {
        sid: sid.clone(),
        token: token.clone(),
    };
    let r = app
        .request_as(
            Some(&account),
            Method::POST,
            "/v1/Rooms",
            Some("UniqueName=cli"),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["account_sid"], sid);

    let listed = tokio::task::spawn_blocking({
        let url = url.clone();
        move || roomd(&url, &["accounts", "list"])
    })
    .await
    .unwrap();
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.contains(&sid) && text.contains("Staging EU"));
    assert!(
        !text.contains(&token) && !text.contains("argon2"),
        "no secrets in the list: {text}"
    );

    let rotated = tokio::task::spawn_blocking({
        let (url, sid) = (url.clone(), sid.clone());
        move || json_stdout(&roomd(&url, &["accounts", "rotate-token", &sid]))
    })
    .await
    .unwrap();
    let new_token = rotated["auth_token"].as_str().unwrap().to_string();
    assert_ne!(new_token, token);
    let stored: String = sqlx::query_scalar("SELECT auth_token_hash FROM accounts WHERE sid = $1")
        .bind(&sid)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(&new_token));
    assert!(
        roomd::auth::credentials::verify_token(&new_token, &stored)
            && !roomd::auth::credentials::verify_token(&token, &stored)
    );

    let missing = roomd(
        &url,
        &["accounts", "rotate-token", &format!("AC{}", "0".repeat(32))],
    );
    assert!(!missing.status.success());
}

#[tokio::test]
async fn api_keys_from_the_cli_act_as_their_account_until_deleted() {
    let app = crate::helpers::spawn_app_with(crate::helpers::Options {
        auth_cache_ttl: std::time::Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let url = app.database_url.clone();
    let run = |args: Vec<String>| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            roomd(&url, &args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };
    let account = app.account.sid.clone();
    let created = json_stdout(
        &run(vec![
            "keys".into(),
            "create".into(),
            "--account".into(),
            account.clone(),
            "--friendly-name".into(),
            "ci".into(),
        ])
        .await
        .unwrap(),
    );
    let sid = created["sid"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(roomd::domain::sid::ApiKeySid::parse(&sid).is_some_and(|s| s.as_str() == sid));
    assert_eq!(created["account_sid"], account.as_str());
    assert_eq!(created["friendly_name"], "ci");
    assert!(crate::rooms_create::is_twilio_date(
        &created["date_created"]
    ));

    // Stored only hashed and sealed; the sealed secret opens under the master key, for this key.
    let (hash, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT secret_hash, secret_sealed FROM api_keys WHERE sid = $1")
            .bind(&sid)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(&secret));
    let key = roomd::auth::master_key::MasterKey::from_base64("test", TEST_MASTER_KEY).unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(
        key.open(&sid, &sealed).unwrap().expose_secret(),
        secret.as_bytes()
    );
    assert!(key.open(&account, &sealed).is_err());

    // Basic auth with the key acts as its account: what it creates is the account's.
    let as_key = TestAccount {
        sid: sid.clone(),
        token: secret.clone(),
    };
    let r = app
        .request_as(
            Some(&as_key),
            Method::POST,
            "/v1/Rooms",
            Some("UniqueName=by-key"),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["account_sid"], account.as_str());
    assert_eq!(app.get("/v1/Rooms/by-key").await.status, 200);
    let wrong = TestAccount {
        sid: sid.clone(),
        token: "0".repeat(32),
    };
    app.request_as(Some(&wrong), Method::GET, "/v1/Rooms", None)
        .await
        .assert_error(401, 20003);

    let listed = run(vec![
        "keys".into(),
        "list".into(),
        "--account".into(),
        account.clone(),
    ])
    .await
    .unwrap();
    let text = String::from_utf8(listed.stdout).unwrap();
    assert!(text.contains(&sid) && text.contains("\"ci\""), "{text}");
    assert!(
        !text.contains(&secret) && !text.contains("argon2"),
        "{text}"
    );

    // Deleted: refused once the credential cache's entry is stale (the test server's TTL).
    let deleted = json_stdout(
        &run(vec!["keys".into(), "delete".into(), sid.clone()])
            .await
            .unwrap(),
    );
    assert_eq!(deleted["deleted"], true);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    app.request_as(Some(&as_key), Method::GET, "/v1/Rooms", None)
        .await
        .assert_error(401, 20003);
    let again = run(vec!["keys".into(), "delete".into(), sid.clone()])
        .await
        .unwrap();
    assert!(!again.status.success());
    let nobody = run(vec![
        "keys".into(),
        "create".into(),
        "--account".into(),
        format!("AC{}", "0".repeat(32)),
    ])
    .await
    .unwrap();
    assert!(!nobody.status.success());
}

#[tokio::test]
async fn a_different_master_key_is_refused_with_one_line_that_does_not_show_either_key() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let account = app.account.sid.to_string();
    let other_key = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let (first, second) = tokio::task::spawn_blocking(move || {
        let args = ["keys", "create", "--account", account.as_str()];
        (roomd(&url, &args), roomd_with_key(&url, other_key, &args))
    })
    .await
    .unwrap();
    json_stdout(&first);
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("master key"), "{stderr}");
    assert!(
        !stderr.contains(other_key) && !stderr.contains(TEST_MASTER_KEY),
        "{stderr}"
    );
}

#[tokio::test]
async fn accounts_create_with_format_env_prints_export_lines_whose_credentials_work() {
    let app = spawn_app().await;
    let url = app.database_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        roomd(
            &url,
            &[
                "accounts",
                "create",
                "--friendly-name",
                "Env",
                "--format",
                "env",
            ],
        )
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let sid = lines[0].strip_prefix("export TWILIO_ACCOUNT_SID=").unwrap();
    let token = lines[1].strip_prefix("export TWILIO_AUTH_TOKEN=").unwrap();
    assert!(roomd::domain::sid::is_sid("AC", sid), "{sid}");
    assert!(roomd::domain::account::is_valid_token(token));
    let account = TestAccount {
        sid: sid.to_string(),
        token: token.to_string(),
    };
    let r = app
        .request_as(
            Some(&account),
            Method::POST,
            "/v1/Rooms",
            Some("UniqueName=env"),
        )
        .await;
    assert_eq!(r.status, 201);

    let bad = roomd(
        &app.database_url,
        &[
            "accounts",
            "create",
            "--friendly-name",
            "X",
            "--format",
            "yaml",
        ],
    );
    assert!(!bad.status.success());
}

#[tokio::test]
async fn a_bad_setting_stops_the_start_with_one_line_naming_it() {
    let app = spawn_app().await;
    for (name, value) in [
        ("ROOMD_BIND", "not-an-address"),
        ("ROOMD_SWEEP_INTERVAL", "0"),
        ("ROOMD_DB_POOL_SIZE", "0"),
        ("ROOMD_HTTP_WORKERS", "many"),
        ("ROOMD_PUBLIC_URL", "ftp://x"),
        ("ROOMD_BOOTSTRAP_ACCOUNT", "ACnope:tok"),
        ("DATABASE_URL", "mysql://nope"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_roomd"))
            .arg("migrate")
            .env("DATABASE_URL", &app.database_url)
            .env(name, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}

/// The rest of a child's log, read continuously so that the child never blocks on a full pipe.
pub struct LogDrain(std::thread::JoinHandle<Vec<String>>);

impl LogDrain {
    /// Every line after the "listening" one; waits for the child to close stderr (exit).
    pub fn finish(self) -> Vec<String> {
        self.0.join().unwrap()
    }
}

/// A running `roomd serve` child, its address, and the rest of its log lines.
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
    pub log: LogDrain,
}

/// Starts `roomd serve` with `envs` on a random port and waits until it says where it listens.
pub async fn serve(envs: Vec<(&'static str, String)>) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomd"));
    // A data directory of its own (the embedded Janus's folder goes there), unless `envs`
    // names one: never ./roomd-data in the clone.
    let data_dir = std::env::temp_dir().join(format!(
        "roomd-cli-test-{}",
        &roomd::domain::sid::random_hex32()[..8]
    ));
    cmd.env("ROOMD_DATA_DIR", &data_dir);
    cmd.arg("serve")
        .env_remove("DATABASE_URL")
        .env("ROOMD_BIND", "127.0.0.1:0")
        .env("ROOMD_METRICS_BIND", "main")
        .env("ROOMD_MASTER_KEY", TEST_MASTER_KEY)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("ROOMD_LOG_FORMAT", "text")
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let found = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(address) = listening_address(&line) {
                return (format!("http://{address}"), lines);
            }
        }
        panic!("serve never said where it listens");
    });
    // Never hang the suite on a server that neither listens nor exits.
    let Ok(found) = tokio::time::timeout(std::time::Duration::from_secs(60), found).await else {
        let _ = child.kill();
        panic!("serve did not start listening within 60 s");
    };
    let (base, lines) = found.unwrap();
    let log = LogDrain(std::thread::spawn(move || {
        lines.map_while(Result::ok).collect()
    }));
    Served { child, base, log }
}

/// The address in serve's "roomd listening" line, in text or JSON format.
fn listening_address(line: &str) -> Option<String> {
    if let Ok(v) = serde_json::from_str::<Value>(line) {
        return v["fields"]["address"].as_str().map(str::to_string);
    }
    let rest = line.split(" address=").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

pub fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, sig) };
}

pub async fn wait(mut child: std::process::Child) -> std::process::ExitStatus {
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn serve_migrates_bootstraps_an_account_serves_and_stops_on_sigterm() {
    let db = crate::helpers::fresh_database().await;
    // A database with nothing in it: serve must migrate it itself.
    let sid = format!("AC{}", "b".repeat(32));
    let served = serve(vec![
        ("DATABASE_URL", db.url.clone()),
        ("ROOMD_BOOTSTRAP_ACCOUNT", format!("{sid}:bootstrap-token")),
    ])
    .await;
    let client = reqwest::Client::new();
    let base = served.base.clone();
    let r = client
        .post(format!("{base}/v1/Rooms"))
        .basic_auth(&sid, Some("bootstrap-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains(&format!("\"url\":\"{base}/v1/Rooms/RM")));

    signal(&served.child, libc::SIGTERM);
    let status = wait(served.child).await;
    assert!(status.success(), "{status}");
    let rest = served.log.finish();
    assert!(rest.iter().any(|l| l.contains("roomd stopped")), "{rest:?}");
    assert!(
        !rest.iter().any(|l| l.contains("bootstrap-token")),
        "no token in the logs"
    );
}

fn postmaster_pid(data_dir: &std::path::Path) -> i32 {
    let pid_file = std::fs::read_to_string(data_dir.join("pgdata/postmaster.pid")).unwrap();
    pid_file.lines().next().unwrap().trim().parse().unwrap()
}

async fn gone_within(pid: i32, secs: u64) -> bool {
    for _ in 0..secs * 10 {
        // Exited: gone, or a zombie waiting for whoever adopted it to reap it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'))
        {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn the_embedded_postgres_is_durable_never_outlives_serve_and_restarts_at_once_after_sigkill()
{
    let dir = std::env::temp_dir().join(format!(
        "roomd-durable-{}",
        &roomd::domain::sid::random_hex32()[..8]
    ));
    std::fs::create_dir(&dir).unwrap();
    // As root, the embedded PostgreSQL runs as the postgres user, which must enter this directory.
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let sid = format!("AC{}", "c".repeat(32));
    let envs = || {
        vec![
            ("ROOMD_DATA_DIR", dir.join("data").display().to_string()),
            ("ROOMD_BOOTSTRAP_ACCOUNT", format!("{sid}:tok")),
        ]
    };
    let client = reqwest::Client::new();

    let first = serve(envs()).await;
    let room: Value = client
        .post(format!("{}/v1/Rooms", first.base))
        .basic_auth(&sid, Some("tok"))
        .form(&[("UniqueName", "survivor")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Killed and started again at once, three times: the old postgres is still shutting down
    // when the new roomd starts, and the new one waits for it instead of failing on its lock.
    let mut served = first;
    for _ in 0..3 {
        let pg = postmaster_pid(&dir.join("data"));
        signal(&served.child, libc::SIGKILL);
        wait(served.child).await;
        served = serve(envs()).await;
        assert!(
            gone_within(pg, 1).await,
            "postgres {pg} outlived a SIGKILLed roomd"
        );
        // The same data directory again: the committed room is still there.
        let fetched = client
            .get(format!(
                "{}/v1/Rooms/{}",
                served.base,
                room["sid"].as_str().unwrap()
            ))
            .basic_auth(&sid, Some("tok"))
            .send()
            .await
            .unwrap();
        assert_eq!(fetched.status(), 200);
    }
    let second = served;
    let pg = postmaster_pid(&dir.join("data"));
    signal(&second.child, libc::SIGTERM);
    assert!(wait(second.child).await.success());
    assert!(gone_within(pg, 30).await, "postgres {pg} outlived roomd");
    let _ = std::fs::remove_dir_all(&dir);
}
