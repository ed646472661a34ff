//! The command line: `serve`, `migrate`, `accounts create|list|rotate-token`.

use crate::app::config::Settings;
use crate::app::startup::{Application, ServerSettings};
use crate::auth::master_key::MasterKey;
use crate::db;
use crate::db::embedded::{self, EmbeddedPostgres, Mode, Postmaster};
use crate::domain::account::NewAccount;
use crate::domain::sid::{self, AccountSid, ApiKeySid};
use crate::workers::sweeper;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgPool};
use std::future::Future;

#[derive(Parser, Debug)]
#[command(
    name = "roomd",
    version,
    about = "Self-hosted, Twilio-compatible Video Rooms API on PostgreSQL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Apply migrations, then serve the HTTP API and run the sweeper until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage accounts (tenants).
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage API keys (`SK...`): Basic auth with `SK...:secret` acts as the key's account.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Exit 0 when the roomd at ROOMD_BIND answers /healthz with 200 (for container healthchecks).
    Healthcheck,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key; prints it as JSON with its secret (shown only this once).
    Create {
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "")]
        friendly_name: String,
        /// `json` (one object), or `env`: `export TWILIO_API_KEY=...` and
        /// `export TWILIO_API_SECRET=...` lines, for `eval` in a shell.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
    },
    /// List an account's keys as JSON (no secrets).
    List {
        #[arg(long)]
        account: String,
    },
    /// Delete a key; it stops working on every replica within the credential-cache TTL.
    Delete { sid: String },
}

/// How `accounts create` and `keys create` print what they made.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Env,
}

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// Create an account; prints it as JSON with its auth token (shown only this once).
    Create {
        #[arg(long)]
        friendly_name: String,
        /// `json` (one object), or `env`: `export TWILIO_ACCOUNT_SID=...` and
        /// `export TWILIO_AUTH_TOKEN=...` lines, for `eval` in a shell.
        #[arg(long, value_enum, default_value_t = OutputFormat::Json)]
        format: OutputFormat,
        /// Give the account a test clock: its time stands still at its creation and moves only
        /// when `POST /v1/TestClock` advances it (for test suites; refused when
        /// `ROOMD_TEST_CLOCKS=false`).
        #[arg(long)]
        test_clock: bool,
    },
    /// List accounts as JSON (no secrets).
    List,
    /// Give an account a new auth token and print it; the old one stops working on every replica
    /// within the credential-cache TTL.
    RotateToken { sid: String },
    /// Change an account's limits; prints the account. Replicas apply a change within the
    /// credential-cache TTL.
    Update {
        sid: String,
        /// Requests per second the account may make of each roomd process (1..1000000), or
        /// `default` for `ROOMD_ACCOUNT_REQUESTS_PER_SECOND`.
        #[arg(long, value_parser = parse_rate)]
        max_requests_per_second: Option<RateSetting>,
        /// Whether a join naming a room that does not exist creates it (Twilio's client-side
        /// room creation).
        #[arg(long)]
        client_room_creation: Option<bool>,
        /// Rooms in progress the account may have at once (0: unlimited), or `default` for
        /// `ROOMD_ACCOUNT_MAX_ROOMS_IN_PROGRESS`.
        #[arg(long, value_parser = parse_quota)]
        max_rooms_in_progress: Option<QuotaSetting>,
        /// Participants connected the account may have at once (0: unlimited), or `default` for
        /// `ROOMD_ACCOUNT_MAX_PARTICIPANTS_CONNECTED`.
        #[arg(long, value_parser = parse_quota)]
        max_participants_connected: Option<QuotaSetting>,
    },
}

/// `--max-requests-per-second`: a number, or back to the default.
#[derive(Debug, Clone, Copy)]
pub enum RateSetting {
    Default,
    PerSecond(i32),
}

/// `--max-rooms-in-progress`, `--max-participants-connected`: a number (0: unlimited), or back
/// to the default.
#[derive(Debug, Clone, Copy)]
pub enum QuotaSetting {
    Default,
    Limit(i32),
}

impl QuotaSetting {
    fn stored(self) -> Option<i32> {
        match self {
            QuotaSetting::Default => None,
            QuotaSetting::Limit(n) => Some(n),
        }
    }
}

fn parse_quota(value: &str) -> std::result::Result<QuotaSetting, String> {
    match value {
        "default" => Ok(QuotaSetting::Default),
        v => match v.parse::<i32>() {
            Ok(n) if n >= 0 => Ok(QuotaSetting::Limit(n)),
            _ => Err(format!(
                "{v:?} is not a number from 0 (unlimited), or default"
            )),
        },
    }
}

fn parse_rate(value: &str) -> std::result::Result<RateSetting, String> {
    match value {
        "default" => Ok(RateSetting::Default),
        v => match v.parse::<i32>() {
            Ok(n) if (1..=1_000_000).contains(&n) => Ok(RateSetting::PerSecond(n)),
            _ => Err(format!("{v:?} is not a number in 1..=1000000, or default")),
        },
    }
}

/// How long a start waits for a postmaster left on the data directory to stop or to accept
/// connections.
const PREVIOUS_POSTMASTER_WAIT: std::time::Duration = std::time::Duration::from_secs(40);

/// The database for this process: `DATABASE_URL`, else a `roomd serve` already running on
/// `ROOMD_DATA_DIR`, else the embedded cluster under `ROOMD_DATA_DIR`, started here (and stopped
/// when the returned guard drops).
async fn database(settings: &Settings) -> Result<(PgConnectOptions, Option<EmbeddedPostgres>)> {
    if let Some(options) = &settings.database {
        db::wait_for(options.expose(), settings.db_connect_timeout).await?;
        return Ok((options.expose().clone(), None));
    }
    // A postmaster left on the data directory is either another roomd's (connect to it, once it
    // accepts connections) or a killed roomd's, which its watchdog is stopping (wait until it is
    // gone, within a bound longer than the watchdog's 30 s before SIGKILL, then start our own).
    let deadline = std::time::Instant::now() + PREVIOUS_POSTMASTER_WAIT;
    let mut waiting = false;
    loop {
        let previous = embedded::live_postmaster(&settings.data_dir);
        if let (Some(Postmaster::Owned(_)), Some(options)) =
            (previous, embedded::find_running(&settings.data_dir))
        {
            if let Ok(conn) = sqlx::PgConnection::connect_with(&options).await {
                let _ = conn.close().await;
                tracing::info!(data_dir = %settings.data_dir.display(), "using the embedded PostgreSQL another roomd process runs");
                return Ok((options, None));
            }
        }
        match previous {
            Some(Postmaster::Owned(pid) | Postmaster::Orphaned(pid))
                if std::time::Instant::now() < deadline =>
            {
                if !waiting {
                    waiting = true;
                    tracing::info!(pid, data_dir = %settings.data_dir.display(), "waiting for the PostgreSQL a previous roomd left on this data directory");
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            _ => break,
        }
    }
    let data_dir = settings.data_dir.clone();
    let pg = tokio::task::spawn_blocking(move || {
        EmbeddedPostgres::start(Mode::Durable, Some(&data_dir))
    })
    .await??;
    tracing::info!(data_dir = %pg.data_dir().display(), "started the embedded PostgreSQL (DATABASE_URL is not set)");
    Ok((pg.connect_options("postgres"), Some(pg)))
}

/// Stops an embedded cluster off the async executor (it waits for postgres to exit).
async fn stop(pg: Option<EmbeddedPostgres>) {
    if let Some(pg) = pg {
        let _ = tokio::task::spawn_blocking(move || drop(pg)).await;
        tracing::info!("stopped the embedded PostgreSQL");
    }
}

async fn with_database<F, Fut, T>(settings: &Settings, f: F) -> Result<T>
where
    F: FnOnce(PgConnectOptions) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let (options, pg) = database(settings).await?;
    let result = async {
        db::migrate::run(&options).await?;
        f(options).await
    }
    .await;
    stop(pg).await;
    result
}

pub async fn run(cli: Cli) -> Result<()> {
    let settings = Settings::from_env()?;
    match cli.command {
        Command::Serve => {
            with_database(&settings, |options| serve(settings.clone(), options)).await
        }
        Command::Migrate => with_database(&settings, |_| async { Ok(()) }).await,
        Command::Healthcheck => healthcheck(settings.bind),
        Command::Accounts(cmd) => {
            with_pool(&settings, async |pool| accounts(pool, &settings, cmd).await).await
        }
        Command::Keys(cmd) => {
            with_pool(&settings, async |pool| keys(pool, &settings, cmd).await).await
        }
    }
}

/// Runs a CLI command on a small pool to the (migrated) database, closed afterwards.
async fn with_pool<T>(settings: &Settings, f: impl AsyncFnOnce(&PgPool) -> Result<T>) -> Result<T> {
    with_database(settings, |options| async move {
        let pool = db::pool(options, 2).await?;
        let result = f(&pool).await;
        pool.close().await;
        result
    })
    .await
}

/// The master key, checked against the one this database's secrets are sealed with.
async fn master_key(pool: &PgPool, settings: &Settings) -> Result<MasterKey> {
    let key = settings.master_key()?;
    key.check(pool).await?;
    Ok(key)
}

fn parse_account(raw: &str) -> Result<AccountSid> {
    AccountSid::parse(raw).with_context(|| {
        format!("not an account SID: {raw:?} (expected AC followed by 32 hex digits)")
    })
}

async fn keys(pool: &PgPool, settings: &Settings, cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Create {
            account,
            friendly_name,
            format,
        } => {
            let account = parse_account(&account)?;
            let key = master_key(pool, settings).await?;
            let sid = ApiKeySid::generate();
            let (secret, hash) = new_token().await?;
            let sealed = key.seal(&sid, secret.expose_secret().as_bytes());
            let Some(created) =
                db::api_keys::create(pool, &sid, &account, &friendly_name, &hash, &sealed).await?
            else {
                bail!("no account {account}");
            };
            match format {
                OutputFormat::Json => {
                    let mut out = serde_json::to_value(&created)?;
                    out["secret"] = secret.expose_secret().into();
                    println!("{out}");
                }
                // SIDs and secrets are hex: nothing in them needs shell quoting.
                OutputFormat::Env => println!(
                    "export TWILIO_API_KEY={}\nexport TWILIO_API_SECRET={}",
                    created.sid,
                    secret.expose_secret()
                ),
            }
        }
        KeysCommand::List { account } => {
            let account = parse_account(&account)?;
            println!(
                "{}",
                serde_json::to_string(&db::api_keys::list(pool, &account).await?)?
            );
        }
        KeysCommand::Delete { sid } => {
            let Some(sid) = ApiKeySid::parse(&sid) else {
                bail!("not an API key SID: {sid:?} (expected SK followed by 32 hex digits)");
            };
            if !db::api_keys::delete(pool, &sid).await? {
                bail!("no key {sid}");
            }
            println!("{}", serde_json::json!({ "sid": sid, "deleted": true }));
        }
    }
    Ok(())
}

async fn accounts(pool: &PgPool, settings: &Settings, cmd: AccountsCommand) -> Result<()> {
    match cmd {
        AccountsCommand::Create {
            friendly_name,
            format,
            test_clock,
        } => {
            if test_clock && !settings.test_clocks {
                bail!("test clocks are turned off here (ROOMD_TEST_CLOCKS=false)");
            }
            let key = master_key(pool, settings).await?;
            let (token, hash) = new_token().await?;
            let sid = AccountSid::generate();
            let sealed = key.seal(&sid, token.expose_secret().as_bytes());
            let account =
                db::accounts::create(pool, &sid, &friendly_name, &hash, Some(&sealed), test_clock)
                    .await?;
            let out = NewAccount {
                sid: account.sid,
                friendly_name: account.friendly_name,
                status: account.status,
                date_created: account.date_created,
                test_clock: account.test_clock,
                auth_token: token,
            };
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string(&out)?),
                // SIDs and tokens are hex: nothing in them needs shell quoting.
                OutputFormat::Env => println!(
                    "export TWILIO_ACCOUNT_SID={}\nexport TWILIO_AUTH_TOKEN={}",
                    out.sid,
                    out.auth_token.expose_secret()
                ),
            }
        }
        AccountsCommand::List => {
            println!(
                "{}",
                serde_json::to_string(&db::accounts::list(pool).await?)?
            );
        }
        AccountsCommand::Update {
            sid: account_sid,
            max_requests_per_second,
            client_room_creation,
            max_rooms_in_progress,
            max_participants_connected,
        } => {
            let account_sid = parse_account(&account_sid)?;
            let update = db::accounts::AccountUpdate {
                max_requests_per_second: max_requests_per_second.map(|r| match r {
                    RateSetting::Default => None,
                    RateSetting::PerSecond(n) => Some(n),
                }),
                client_room_creation,
                max_rooms_in_progress: max_rooms_in_progress.map(QuotaSetting::stored),
                max_participants_connected: max_participants_connected.map(QuotaSetting::stored),
            };
            let Some(account) = db::accounts::update(pool, &account_sid, &update).await? else {
                bail!("no account {account_sid}");
            };
            println!("{}", serde_json::to_string(&account)?);
        }
        AccountsCommand::RotateToken { sid: account_sid } => {
            let account_sid = parse_account(&account_sid)?;
            let key = master_key(pool, settings).await?;
            let (token, hash) = new_token().await?;
            let sealed = key.seal(&account_sid, token.expose_secret().as_bytes());
            if !db::accounts::set_token_hash(pool, &account_sid, &hash, Some(&sealed)).await? {
                bail!("no account {account_sid}");
            }
            println!(
                "{}",
                serde_json::json!({ "sid": account_sid, "auth_token": token.expose_secret() })
            );
        }
    }
    Ok(())
}

/// A fresh auth token and its argon2 hash (hashed off the async executor).
async fn new_token() -> Result<(SecretString, SecretString)> {
    let token = SecretString::from(sid::random_hex32());
    let hash = tokio::task::spawn_blocking({
        let token = token.clone();
        move || crate::auth::credentials::hash_token(token.expose_secret())
    })
    .await?;
    Ok((token, hash))
}

/// Makes sure `ROOMD_BOOTSTRAP_ACCOUNT` exists with its token; leaves it untouched when the
/// token already verifies, so restarts are no-ops.
async fn bootstrap(pool: &PgPool, settings: &Settings, key: &MasterKey) -> Result<()> {
    let Some(b) = &settings.bootstrap_account else {
        return Ok(());
    };
    let sealed = key.seal(&b.sid, b.token.expose_secret().as_bytes());
    if let Some(hash) = db::accounts::token_hash(pool, &b.sid).await? {
        let token = b.token.clone();
        if tokio::task::spawn_blocking(move || {
            crate::auth::credentials::verify_token(token.expose_secret(), hash.expose_secret())
        })
        .await?
        {
            db::accounts::seal_token_if_missing(pool, &b.sid, &sealed).await?;
            tracing::info!(account_sid = %b.sid, "bootstrap account present");
            return Ok(());
        }
    }
    let token = b.token.clone();
    let hash = tokio::task::spawn_blocking(move || {
        crate::auth::credentials::hash_token(token.expose_secret())
    })
    .await?;
    let created = db::accounts::upsert(pool, &b.sid, "bootstrap", &hash, Some(&sealed)).await?;
    tracing::info!(account_sid = %b.sid, created, "bootstrap account ready");
    Ok(())
}

/// `GET /healthz` on the local listener over plain HTTP/1.0, so the container image needs no
/// curl. An unspecified bind address (0.0.0.0, ::) is reached through loopback.
fn healthcheck(bind: std::net::SocketAddr) -> Result<()> {
    use std::io::{Read, Write};
    let mut addr = bind;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = std::time::Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        bail!("unhealthy: {status}")
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: draining"),
    }
}

/// Connections of the pool for work off the request path.
const BACKGROUND_POOL_SIZE: u32 = 2;

async fn serve(settings: Settings, options: PgConnectOptions) -> Result<()> {
    // Off the request path: bootstrap and the sweeper. The serving connections
    // (ROOMD_DB_POOL_SIZE) are the HTTP workers' own.
    let pool = db::pool(options.clone(), BACKGROUND_POOL_SIZE)
        .await
        .context("connecting to PostgreSQL")?;
    let key = master_key(&pool, &settings).await?;
    bootstrap(&pool, &settings, &key).await?;
    let server = ServerSettings {
        bind: settings.bind,
        public_url: settings.public_url.clone(),
        auth_cache_ttl: settings.auth_cache_ttl,
        metrics_bind: settings.metrics_bind,
        metrics_bind_optional: settings.metrics_bind_is_default,
        workers: settings.http_workers,
        db_pool_size: settings.pool_size,
        body_timeout: settings.body_timeout,
        master_key: std::sync::Arc::new(key),
        callbacks: settings.callbacks.clone(),
        test_clocks: settings.test_clocks,
        account_requests_per_second: settings.account_requests_per_second,
        account_quotas: settings.account_quotas,
    };
    let app = Application::build(server, options).with_context(|| match settings.metrics_bind {
        Some(m) => format!(
            "binding ROOMD_BIND={} or ROOMD_METRICS_BIND={m}",
            settings.bind
        ),
        None => format!("binding ROOMD_BIND={}", settings.bind),
    })?;
    tracing::info!(
        address = %app.local_addr(),
        metrics_address = %app.metrics_addr().map_or("(main listener)".to_string(), |a| a.to_string()),
        public_url = app.public_url().as_str(),
        auth_cache_ttl_s = settings.auth_cache_ttl.as_secs(),
        http_workers = settings.http_workers,
        db_pool_size = settings.pool_size,
        "roomd listening"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let sweeper = tokio::spawn(sweeper::run(
        pool.clone(),
        app.metrics(),
        settings.sweep_interval,
        stopped(stop_rx.clone()),
    ));
    let result = app
        .run_until(async {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        })
        .await;
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    pool.close().await;
    tracing::info!("roomd stopped");
    result.context("serving HTTP")
}
