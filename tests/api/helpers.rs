//! The test harness: one disposable PostgreSQL per test binary (or `DATABASE_URL`), a migrated
//! template database, and for every test its own database cloned from the template and its own
//! roomd listening on a real port.

use reqwest::{Method, Response};
use roomd::app::startup::{Application, ServerSettings};
use roomd::db::embedded::{EmbeddedPostgres, Mode};
use roomd::twilio::urls::PublicUrl;
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::sync::OnceLock;
use std::time::Duration;

struct Cluster {
    /// Held for the life of the test binary; its watchdog stops it when the binary exits.
    _embedded: Option<EmbeddedPostgres>,
    admin: PgConnectOptions,
    template: String,
    /// A URL for `database` that another process can use.
    url_for: UrlFor,
}

type UrlFor = Box<dyn Fn(&str) -> String + Send + Sync>;

fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        // A thread with its own runtime: each #[tokio::test] has a runtime that dies with it.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(start_cluster())
        })
        .join()
        .expect("starting the test PostgreSQL")
    })
}

async fn start_cluster() -> Cluster {
    let (embedded, admin, url_for): (_, _, UrlFor) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let admin = roomd::app::setting_values::parse_database_url(&url).unwrap();
            let base = url::Url::parse(&url).unwrap();
            let url_for = move |db: &str| {
                let mut u = base.clone();
                u.set_path(&format!("/{db}"));
                u.to_string()
            };
            (None, admin, Box::new(url_for))
        }
        _ => {
            let pg =
                tokio::task::spawn_blocking(|| EmbeddedPostgres::start(Mode::Disposable, None))
                    .await
                    .unwrap()
                    .expect("starting a disposable PostgreSQL");
            let admin = pg.connect_options("postgres");
            let base = pg.url("");
            let url_for = move |db: &str| base.replacen("5432/", &format!("5432/{db}"), 1);
            (Some(pg), admin, Box::new(url_for))
        }
    };
    // One template per server: recreated by each run, so none is left behind in DATABASE_URL's
    // server (in the disposable cluster nothing is left behind anyway).
    let template = "roomd_test_template".to_string();
    let mut conn = PgConnection::connect_with(&admin).await.unwrap();
    for sql in [
        format!("DROP DATABASE IF EXISTS {template} WITH (FORCE)"),
        format!("CREATE DATABASE {template}"),
    ] {
        conn.execute(sql.as_str()).await.unwrap();
    }
    conn.close().await.unwrap();
    roomd::db::migrate::run(&admin.clone().database(&template))
        .await
        .unwrap();
    Cluster {
        _embedded: embedded,
        admin,
        template,
        url_for,
    }
}

/// A test's own database, cloned from the migrated template. In `DATABASE_URL`'s server it is
/// dropped again when the test ends.
pub struct TestDb {
    pub name: String,
    pub options: PgConnectOptions,
    pub url: String,
}

pub async fn fresh_database() -> TestDb {
    let template = cluster().template.clone();
    database_from(Some(&template)).await
}

/// A database with nothing in it, not even roomd's schema.
pub async fn empty_database() -> TestDb {
    database_from(None).await
}

async fn database_from(template: Option<&str>) -> TestDb {
    let c = cluster();
    let name = format!("roomd_test_{}", &roomd::domain::sid::random_hex32()[..16]);
    let sql = match template {
        Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t} STRATEGY FILE_COPY"),
        None => format!("CREATE DATABASE {name}"),
    };
    let mut conn = PgConnection::connect_with(&c.admin).await.unwrap();
    conn.execute(sql.as_str()).await.unwrap();
    conn.close().await.unwrap();
    TestDb {
        options: c.admin.clone().database(&name),
        url: (c.url_for)(&name),
        name,
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let c = cluster();
        if c._embedded.is_some() {
            return;
        }
        let (admin, name) = (c.admin.clone(), self.name.clone());
        // The test's runtime may be shutting down: drop it from a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect_with(&admin).await?;
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                conn.execute(sql.as_str()).await?;
                conn.close().await
            })
        })
        .join();
    }
}

#[derive(Clone, Debug)]
pub struct TestAccount {
    pub sid: String,
    pub token: String,
}

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub database_url: String,
    /// The separate metrics listener, when `Options::separate_metrics` asked for one.
    pub metrics_address: Option<String>,
    pub metrics: std::sync::Arc<roomd::telemetry::metrics::Metrics>,
    pub account: TestAccount,
    pub client: reqwest::Client,
    /// Declared last, so dropped after the pool (with FORCE, the server's connections too).
    pub _db: TestDb,
}

pub struct Options {
    pub auth_cache_ttl: Duration,
    pub public_url: Option<String>,
    pub separate_metrics: bool,
    pub body_timeout: Duration,
    pub callbacks: roomd::workers::callbacks::settings::CallbackSettings,
    pub test_clocks: bool,
    pub account_requests_per_second: u32,
    pub account_quotas: roomd::app::startup::AccountQuotas,
    pub cors_origins: Vec<String>,
    /// Whether `/console` is served (`ROOMD_CONSOLE`).
    pub console: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            auth_cache_ttl: Duration::from_secs(10),
            public_url: None,
            separate_metrics: false,
            body_timeout: roomd::http::state::DEFAULT_BODY_TIMEOUT,
            // Retries at test speed; everything else as in production.
            callbacks: roomd::workers::callbacks::settings::CallbackSettings {
                retry_base: Duration::from_millis(50),
                ..Default::default()
            },
            test_clocks: true,
            account_requests_per_second: roomd::auth::request_rate::DEFAULT_REQUESTS_PER_SECOND,
            account_quotas: roomd::app::startup::AccountQuotas::default(),
            cors_origins: Vec::new(),
            console: true,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let db = fresh_database().await;
    let database_url = db.url.clone();
    let pool = roomd::db::pool(db.options.clone(), 10).await.unwrap();
    let Server {
        address,
        metrics_address,
        metrics,
        ..
    } = start_server(&db.options, options, None);
    let account = create_account(&pool, "primary").await;
    TestApp {
        address,
        pool,
        database_url,
        metrics_address,
        metrics,
        account,
        client: reqwest::Client::new(),
        _db: db,
    }
}

/// A server a test started.
pub struct Server {
    pub address: String,
    pub metrics_address: Option<String>,
    pub metrics: std::sync::Arc<roomd::telemetry::metrics::Metrics>,
    /// Ends when the server has stopped (its deliveries drained).
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts a server (with its dispatcher) on `database`, serving until `stop` resolves (never,
/// with `None`).
pub fn start_server(
    database: &sqlx::postgres::PgConnectOptions,
    options: Options,
    stop: Option<tokio::sync::oneshot::Receiver<()>>,
) -> Server {
    let settings = ServerSettings {
        public_url: options.public_url.as_deref().map(PublicUrl::new),
        auth_cache_ttl: options.auth_cache_ttl,
        metrics_bind: options
            .separate_metrics
            .then(|| "127.0.0.1:0".parse().unwrap()),
        body_timeout: options.body_timeout,
        master_key: std::sync::Arc::new(test_master_key()),
        callbacks: options.callbacks,
        test_clocks: options.test_clocks,
        account_requests_per_second: options.account_requests_per_second,
        account_quotas: options.account_quotas,
        cors_origins: options.cors_origins,
        console_session_ttl: options
            .console
            .then_some(roomd::app::startup::DEFAULT_CONSOLE_SESSION_TTL),
        ..ServerSettings::local()
    };
    let mut app = Application::build(settings, database.clone()).unwrap();
    let address = format!("http://{}", app.local_addr());
    let metrics_address = app.metrics_addr().map(|a| format!("http://{a}"));
    let metrics = app.metrics();
    let database = database.clone();
    let task = tokio::spawn(async move {
        // ROOMD_TEST_MEDIA=janus: every server runs with its embedded Janus attached (.ci/run
        // runs the API tests once so), to show that the media plane changes nothing else.
        let media = match std::env::var("ROOMD_TEST_MEDIA").as_deref() {
            Ok("janus") => attach_test_media(&mut app, &database).await,
            _ => None,
        };
        let served = app
            .run_until(async move {
                match stop {
                    Some(stop) => {
                        let _ = stop.await;
                    }
                    None => std::future::pending().await,
                }
            })
            .await;
        if let Some((media, stop_worker, worker)) = media {
            let _ = stop_worker.send(true);
            let _ = worker.await;
            media.detach().await;
        }
        served
    });
    Server {
        address,
        metrics_address,
        metrics,
        task,
    }
}

/// Attaches an embedded Janus (and its worker) to `app`, as `roomd serve` does; with what stops
/// the worker.
pub async fn attach_test_media(
    app: &mut Application,
    database: &sqlx::postgres::PgConnectOptions,
) -> Option<(
    roomd::app::media::AttachedMedia,
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
)> {
    let options = roomd::app::media::MediaOptions {
        mode: roomd::app::setting_values::MediaMode::Janus,
        janus_binary: None,
        media_ip: None,
        connect_timeout: Duration::ZERO,
        data_dir: std::env::temp_dir().join(format!(
            "roomd-test-media-{}",
            &roomd::domain::sid::random_hex32()[..8]
        )),
        media_dir: None,
        external: None,
    };
    let key = std::sync::Arc::new(test_master_key());
    let media = roomd::app::media::attach(&options, database, key, app.local_addr())
        .await
        .expect("ROOMD_TEST_MEDIA=janus: the embedded Janus starts")?;
    app.attach_media(media.plane.clone());
    let (stop, mut stopping) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(roomd::media::worker::run(
        media.plane.pool.clone(),
        media.plane.clone(),
        roomd::media::worker::WorkerSettings::default(),
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        },
    ));
    Some((media, stop, worker))
}

/// An account as `roomd accounts create` makes one: its token hashed, and sealed under the
/// test master key (status callbacks are signed with it).
pub async fn create_account(pool: &PgPool, name: &str) -> TestAccount {
    create_account_sealed(pool, name, true).await
}

/// An account whose token is sealed, or (as before tokens were sealed) not.
pub async fn create_account_sealed(pool: &PgPool, name: &str, sealed: bool) -> TestAccount {
    new_account(pool, name, sealed, false).await
}

/// An account on a test clock of its own (frozen at its creation).
pub async fn create_clocked_account(pool: &PgPool, name: &str) -> TestAccount {
    new_account(pool, name, true, true).await
}

async fn new_account(pool: &PgPool, name: &str, sealed: bool, test_clock: bool) -> TestAccount {
    let sid = roomd::domain::sid::generate("AC");
    let token = roomd::domain::sid::random_hex32();
    let hash = roomd::auth::credentials::hash_token(&token);
    let seal = sealed.then(|| test_master_key().seal(&sid, token.as_bytes()));
    roomd::db::accounts::create(pool, &sid, name, &hash, seal.as_deref(), test_clock)
        .await
        .unwrap();
    TestAccount { sid, token }
}

/// The master key every test server (and every `roomd` the tests run) uses.
pub fn test_master_key() -> roomd::auth::master_key::MasterKey {
    roomd::auth::master_key::MasterKey::from_base64("test", crate::cli::TEST_MASTER_KEY).unwrap()
}

/// An API key of an account, as `roomd keys create` makes one.
#[derive(Clone, Debug)]
pub struct TestKey {
    pub sid: String,
    pub secret: String,
    pub account_sid: String,
}

impl TestKey {
    /// Basic auth with the key (`SK...:secret`).
    pub fn basic(&self) -> TestAccount {
        TestAccount {
            sid: self.sid.clone(),
            token: self.secret.clone(),
        }
    }

    /// An Access Token as twilio-python mints one: `identity`, and a video grant for `room`
    /// (any room of the account with `None`), valid for an hour from now.
    pub fn token(&self, identity: &str, room: Option<&str>) -> String {
        let video = match room {
            Some(r) => serde_json::json!({ "room": r }),
            None => serde_json::json!({}),
        };
        self.token_with(serde_json::json!({
            "grants": { "identity": identity, "video": video }
        }))
    }

    /// A token with `claims` merged over the defaults (a null value removes a claim).
    pub fn token_with(&self, claims: Value) -> String {
        self.sign(claims, self.secret.as_bytes())
    }

    /// A token signed with `secret` instead of the key's own.
    pub fn sign(&self, claims: Value, secret: &[u8]) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut body = serde_json::json!({
            "jti": format!("{}-{now}", self.sid),
            "iss": self.sid,
            "sub": self.account_sid,
            "nbf": now,
            "exp": now + 3600,
            "grants": { "identity": "alice", "video": {} },
        });
        for (k, v) in claims.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.cty = Some("twilio-fpa;v=1".into());
        jsonwebtoken::encode(
            &header,
            &body,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    }
}

/// Creates an API key of `account_sid` (hashed and sealed under the test master key).
pub async fn create_api_key(pool: &PgPool, account_sid: &str) -> TestKey {
    let sid = roomd::domain::sid::generate("SK");
    let secret = roomd::domain::sid::random_hex32();
    let hash = roomd::auth::credentials::hash_token(&secret);
    let sealed = test_master_key().seal(&sid, secret.as_bytes());
    roomd::db::api_keys::create(pool, &sid, account_sid, "test", &hash, &sealed)
        .await
        .unwrap()
        .expect("the account exists");
    TestKey {
        sid,
        secret,
        account_sid: account_sid.to_string(),
    }
}

/// A response's status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub async fn from(resp: Response) -> Reply {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text:?}"));
        Reply {
            status,
            body,
            headers,
        }
    }

    /// Asserts a Twilio error body with this status and code, and nothing else in it.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: u64) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status, "{}", self.body);
        assert_eq!(
            self.body["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(self.body.as_object().unwrap().len(), 4, "{}", self.body);
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A request as `account` (or unauthenticated with `None`), with a raw form body.
    pub async fn request_as(
        &self,
        account: Option<&TestAccount>,
        method: Method,
        path: &str,
        form: Option<&str>,
    ) -> Reply {
        let mut req = self.client.request(method, self.url(path));
        if let Some(a) = account {
            req = req.basic_auth(&a.sid, Some(&a.token));
        }
        if let Some(body) = form {
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body.to_string());
        }
        Reply::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request_as(Some(&self.account), Method::GET, path, None)
            .await
    }

    pub async fn post(&self, path: &str, form: &str) -> Reply {
        self.request_as(Some(&self.account), Method::POST, path, Some(form))
            .await
    }

    pub async fn create_room(&self, form: &str) -> Value {
        let r = self.post("/v1/Rooms", form).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    pub async fn complete_room(&self, sid: &str) -> Value {
        let r = self
            .post(&format!("/v1/Rooms/{sid}"), "Status=completed")
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        r.body
    }

    /// A request with `Authorization: Bearer <token>` and a form body.
    pub async fn post_bearer(&self, token: &str, path: &str, form: &str) -> Reply {
        let req = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_string());
        Reply::from(req.send().await.unwrap()).await
    }

    /// Joins `room` as `identity` with the account's Basic auth; the participant.
    pub async fn join(&self, room: &str, identity: &str) -> Value {
        let r = self
            .post(
                &format!("/v1/Rooms/{room}/Participants"),
                &format!("Identity={}", enc(identity)),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    /// `GET /metrics`, as text.
    pub async fn metrics_text(&self) -> String {
        let resp = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    pub async fn room_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM rooms")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// Percent-encodes a form value.
pub fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The value of the sample `series` (name and labels, e.g. `roomd_rooms_ended_total{reason="rest"}`)
/// in Prometheus text.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|v| v.trim().parse().unwrap())
}

/// A roomd on a PostgreSQL cluster of the test's own (so stopping or freezing the database
/// disturbs no other test): the cluster, a pool on it, the server's base URL and an account.
pub struct OwnCluster {
    pub pg: EmbeddedPostgres,
    pub pool: PgPool,
    pub base: String,
    pub account: TestAccount,
}

pub async fn spawn_app_on_own_cluster() -> OwnCluster {
    let pg =
        tokio::task::spawn_blocking(|| EmbeddedPostgres::start(Mode::Disposable, None).unwrap())
            .await
            .unwrap();
    let options = pg.connect_options("postgres");
    roomd::db::migrate::run(&options).await.unwrap();
    let pool = roomd::db::pool(options.clone(), 2).await.unwrap();
    let app = Application::build(ServerSettings::local(), options).unwrap();
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    let account = create_account(&pool, "own-cluster").await;
    OwnCluster {
        pg,
        pool,
        base,
        account,
    }
}

/// Inserts `n` in-progress rooms of `account_sid` in one statement, named `{prefix}-1` ..
/// `{prefix}-n`, as a REST create would store them, but with a deadline `deadline_in_seconds`
/// from now (negative: already due); returns their SIDs.
pub async fn insert_rooms_due_in(
    pool: &PgPool,
    account_sid: &str,
    prefix: &str,
    n: i64,
    deadline_in_seconds: f64,
) -> Vec<String> {
    sqlx::query_scalar(
        "INSERT INTO rooms (sid, account_sid, status, type, unique_name, status_callback_method, \
            max_participants, max_participant_duration, max_concurrent_published_tracks, \
            record_participants_on_connect, video_codecs, media_region, audio_only, \
            empty_room_timeout, unused_room_timeout, large_room, deadline, deadline_reason) \
         SELECT 'RM' || md5($1 || $2 || '-' || g), $1, 'in-progress', 'group', $2 || '-' || g, \
            'POST', 50, 14400, 0, false, ARRAY['VP8'], 'us1', false, 5, 5, false, \
            now() + make_interval(secs => $4), 'unused_timeout' \
         FROM generate_series(1, $3::bigint) g RETURNING sid",
    )
    .bind(account_sid)
    .bind(prefix)
    .bind(n)
    .bind(deadline_in_seconds)
    .fetch_all(pool)
    .await
    .unwrap()
}
