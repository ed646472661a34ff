//! Every setting, from the environment (or the flag of the same name), in one clap struct:
//! `roomd serve --help` lists each variable with its default. A bad value stops the start with
//! one line naming the variable (`app::cli::parse`). `Debug` never shows a password or token.

use crate::app::setting_values::{
    address, bootstrap_account, database_url, deny_list, flag, ip, janus_nodes, log_format,
    media_mode, metrics_bind, number, origins, public_url, seconds, secret, BootstrapAccount,
    JanusNodes, MediaMode, MetricsBind, Origins,
};
use crate::app::startup::AccountQuotas;
use crate::auth::master_key::{KeySource, MasterKey};
use crate::db::DbOptions;
use crate::telemetry::logs::LogFormat;
use crate::twilio::urls::PublicUrl;
use crate::workers::callbacks::{destinations::DenyList, settings::CallbackSettings};
use anyhow::{anyhow, bail, Result};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Settings (each from its environment variable, or the flag)")]
pub struct Settings {
    /// PostgreSQL to use (postgres://user:password@host/db?sslmode=verify-full); unset: an
    /// embedded PostgreSQL under ROOMD_DATA_DIR
    #[arg(long = "database-url", env = "DATABASE_URL", value_name = "URL", global = true,
          hide_env_values = true, value_parser = database_url)]
    pub database: Option<DbOptions>,
    /// The API's address:port
    #[arg(long, env = "ROOMD_BIND", value_name = "ADDR", global = true, default_value = "127.0.0.1:8080",
          value_parser = address)]
    pub bind: SocketAddr,
    /// The base of every url and link roomd writes [default: http:// + the bound address]
    #[arg(long, env = "ROOMD_PUBLIC_URL", value_name = "URL", global = true, value_parser = public_url)]
    pub public_url: Option<PublicUrl>,
    /// Seconds between two sweeps of overdue rooms and participants (1..=86400)
    #[arg(long, env = "ROOMD_SWEEP_INTERVAL", value_name = "SECONDS", global = true, default_value = "5",
          value_parser = seconds(1, 86400))]
    pub sweep_interval: Duration,
    /// Where the embedded PostgreSQL and the master key live
    #[arg(
        long,
        env = "ROOMD_DATA_DIR",
        value_name = "DIR",
        global = true,
        default_value = "./roomd-data"
    )]
    pub data_dir: PathBuf,
    /// An account to create at start (AC<32 hex>:<token>), left alone when it exists
    #[arg(long, env = "ROOMD_BOOTSTRAP_ACCOUNT", value_name = "SID:TOKEN", global = true,
          hide_env_values = true, value_parser = bootstrap_account)]
    pub bootstrap_account: Option<BootstrapAccount>,
    /// Seconds a verified credential is trusted without a look at the database (0..=30)
    #[arg(long, env = "ROOMD_AUTH_CACHE_TTL", value_name = "SECONDS", global = true, default_value = "10",
          value_parser = seconds(0, 30))]
    pub auth_cache_ttl: Duration,
    /// PostgreSQL connections for serving requests, split between the HTTP workers (1..=1000)
    #[arg(long = "db-pool-size", env = "ROOMD_DB_POOL_SIZE", value_name = "N", global = true,
          default_value = "10", value_parser = number::<u32>(1, 1000))]
    pub pool_size: u32,
    /// HTTP worker threads (1..=256) [default: one per core]
    #[arg(long, env = "ROOMD_HTTP_WORKERS", value_name = "N", global = true,
          value_parser = number::<usize>(1, 256))]
    pub http_workers: Option<usize>,
    /// Seconds start-up waits for an unreachable database (0..=3600)
    #[arg(long, env = "ROOMD_DB_CONNECT_TIMEOUT", value_name = "SECONDS", global = true,
          default_value = "30", value_parser = seconds(0, 3600))]
    pub db_connect_timeout: Duration,
    /// Seconds a request body may take to arrive (1..=300)
    #[arg(long, env = "ROOMD_BODY_TIMEOUT", value_name = "SECONDS", global = true, default_value = "10",
          value_parser = seconds(1, 300))]
    pub body_timeout: Duration,
    /// The listener of its own for /metrics (address:port), or `main` for the API's listener
    /// [default: 127.0.0.1:9464, served without when taken]
    #[arg(long, env = "ROOMD_METRICS_BIND", value_name = "ADDR|main", global = true,
          value_parser = metrics_bind)]
    pub metrics_bind: Option<MetricsBind>,
    /// The master key (base64 of 32 bytes) secrets are sealed under [default: master.key in
    /// ROOMD_DATA_DIR, made on first use]
    #[arg(long, env = "ROOMD_MASTER_KEY", value_name = "BASE64", global = true, hide_env_values = true,
          value_parser = secret)]
    pub master_key: Option<SecretString>,
    /// A file holding the master key (instead of ROOMD_MASTER_KEY)
    #[arg(
        long,
        env = "ROOMD_MASTER_KEY_FILE",
        value_name = "PATH",
        global = true
    )]
    pub master_key_file: Option<PathBuf>,
    /// Whether accounts with a test clock may be created and served
    #[arg(long, env = "ROOMD_TEST_CLOCKS", value_name = "BOOL", global = true, default_value = "true",
          value_parser = flag, action = clap::ArgAction::Set)]
    pub test_clocks: bool,
    /// Requests per second one account may make of this process, unless its own limit says
    /// otherwise (1..=1000000)
    #[arg(long, env = "ROOMD_ACCOUNT_REQUESTS_PER_SECOND", value_name = "N", global = true,
          default_value = "2000", value_parser = number::<u32>(1, 1_000_000))]
    pub account_requests_per_second: u32,
    /// Rooms in progress one account may have, unless its own quota says otherwise (0: unlimited)
    #[arg(long, env = "ROOMD_ACCOUNT_MAX_ROOMS_IN_PROGRESS", value_name = "N", global = true,
          default_value = "10000", value_parser = number::<u32>(0, 1_000_000_000))]
    pub account_max_rooms_in_progress: u32,
    /// Participants connected one account may have, unless its own quota says otherwise (0:
    /// unlimited)
    #[arg(long, env = "ROOMD_ACCOUNT_MAX_PARTICIPANTS_CONNECTED", value_name = "N", global = true,
          default_value = "10000", value_parser = number::<u32>(0, 1_000_000_000))]
    pub account_max_participants_connected: u32,
    /// Callback destinations never called: CIDR ranges, or `none` [default: loopback and
    /// private ranges when ROOMD_BIND is loopback, every non-public range otherwise]
    #[arg(long, env = "ROOMD_CALLBACK_DENY", value_name = "CIDRS|none", global = true,
          value_parser = deny_list)]
    pub callback_deny: Option<DenyList>,
    /// Ranges opened in the deny list (the compose file's network, say)
    #[arg(
        long,
        env = "ROOMD_CALLBACK_ALLOW",
        value_name = "CIDRS",
        global = true
    )]
    pub callback_allow: Option<String>,
    /// Attempts per status callback before it is failed (1..=100)
    #[arg(long, env = "ROOMD_CALLBACK_MAX_ATTEMPTS", value_name = "N", global = true,
          default_value = "10", value_parser = number::<u32>(1, 100))]
    pub callback_max_attempts: u32,
    /// Milliseconds before the first retry; each next one doubles it (10..=60000)
    #[arg(long, env = "ROOMD_CALLBACK_RETRY_BASE_MS", value_name = "MS", global = true,
          default_value = "1000", value_parser = number::<u64>(10, 60_000))]
    pub callback_retry_base_ms: u64,
    /// Seconds one delivery attempt may take, connecting included (1..=15)
    #[arg(long, env = "ROOMD_CALLBACK_TIMEOUT", value_name = "SECONDS", global = true,
          default_value = "15", value_parser = seconds(1, 15))]
    pub callback_timeout: Duration,
    /// Deliveries in flight at once, per process (1..=4096)
    #[arg(long, env = "ROOMD_CALLBACK_CONCURRENCY", value_name = "N", global = true,
          default_value = "256", value_parser = number::<usize>(1, 4096))]
    pub callback_concurrency: usize,
    /// Deliveries in flight at once for one account, per process (1..=4096)
    #[arg(long, env = "ROOMD_CALLBACK_ACCOUNT_CONCURRENCY", value_name = "N", global = true,
          default_value = "64", value_parser = number::<usize>(1, 4096))]
    pub callback_account_concurrency: usize,
    /// Deliveries in flight at once to one host:port, per process (1..=4096)
    #[arg(long, env = "ROOMD_CALLBACK_HOST_CONCURRENCY", value_name = "N", global = true,
          default_value = "128", value_parser = number::<usize>(1, 4096))]
    pub callback_host_concurrency: usize,
    /// Days delivered and failed callbacks are kept (1..=3650)
    #[arg(long, env = "ROOMD_CALLBACK_RETENTION_DAYS", value_name = "DAYS", global = true,
          default_value = "30", value_parser = number::<u64>(1, 3650))]
    pub callback_retention_days: u64,
    /// Log lines as `json` or `text` (RUST_LOG filters them) [default: text on a terminal, JSON
    /// otherwise]
    #[arg(long, env = "ROOMD_LOG_FORMAT", value_name = "json|text", global = true,
          value_parser = log_format)]
    pub log_format: Option<LogFormat>,
    /// The media plane: `auto` (the embedded Janus when a `janus` binary exists, else none),
    /// `janus` (the embedded Janus; none is a start error) or `off`
    #[arg(long, env = "ROOMD_MEDIA", value_name = "auto|janus|off", global = true,
          default_value = "auto", value_parser = media_mode)]
    pub media: MediaMode,
    /// The one address the embedded Janus offers ICE candidates on [default: Janus's choice]
    #[arg(long, env = "ROOMD_MEDIA_IP", value_name = "IP", global = true, value_parser = ip)]
    pub media_ip: Option<std::net::IpAddr>,
    /// Seconds a participant has to join its room's media before it is disconnected (0: no
    /// limit, for participants that carry no media) (0..=3600)
    #[arg(long, env = "ROOMD_MEDIA_CONNECT_TIMEOUT", value_name = "SECONDS", global = true,
          default_value = "0", value_parser = seconds(0, 3600))]
    pub media_connect_timeout: Duration,
    /// Whether the web console is served at /console
    #[arg(long, env = "ROOMD_CONSOLE", value_name = "BOOL", global = true, default_value = "true",
          value_parser = flag, action = clap::ArgAction::Set)]
    pub console: bool,
    /// How long a console session lasts from sign-in (300..=2592000)
    #[arg(long, env = "ROOMD_CONSOLE_SESSION_TTL", value_name = "SECONDS", global = true,
          default_value = "28800", value_parser = seconds(300, 2_592_000))]
    pub console_session_ttl: Duration,
    /// Origins (scheme://host[:port], comma-separated) whose pages may join and leave rooms from
    /// the browser (CORS on the join extension) [default: none]
    #[arg(long, env = "ROOMD_CORS_ORIGINS", value_name = "ORIGINS", global = true,
          value_parser = origins)]
    pub cors_origins: Option<Origins>,
    /// External Janus nodes instead of the embedded one: `NAME ADMIN_URL CLIENT_URL`, nodes
    /// separated by commas (each room lives on one, the one with the fewest rooms when it first
    /// needs media)
    #[arg(long, env = "ROOMD_JANUS_NODES", value_name = "NODES", global = true,
          value_parser = janus_nodes)]
    pub janus_nodes: Option<JanusNodes>,
    /// The Admin API secret of the external nodes (their `admin_secret`); also the password their
    /// event handlers post with
    #[arg(long, env = "ROOMD_JANUS_ADMIN_SECRET", value_name = "SECRET", global = true,
          hide_env_values = true, value_parser = secret)]
    pub janus_admin_secret: Option<SecretString>,
    /// The VideoRoom `admin_key` of the external nodes (only roomd creates rooms)
    #[arg(long, env = "ROOMD_JANUS_ROOM_ADMIN_KEY", value_name = "KEY", global = true,
          hide_env_values = true, value_parser = secret)]
    pub janus_room_admin_key: Option<SecretString>,
    /// The `janus` binary of the embedded Janus [default: janus on PATH]
    #[arg(long, env = "ROOMD_JANUS_BINARY", value_name = "PATH", global = true)]
    pub janus_binary: Option<PathBuf>,
    /// Where the media nodes write stream files and roomd keeps recordings: one folder shared
    /// by every node and roomd process, at the same path in each [default: media in
    /// ROOMD_DATA_DIR]
    #[arg(long, env = "ROOMD_MEDIA_DIR", value_name = "DIR", global = true)]
    pub media_dir: Option<PathBuf>,
    /// Recording conversions this process runs at once (0: none here) (0..=16)
    #[arg(long, env = "ROOMD_RECORDING_JOBS", value_name = "N", global = true,
          default_value = "1", value_parser = number::<usize>(0, 16))]
    pub recording_jobs: usize,
    /// Compositions this process makes at once (0: none here) (0..=8)
    #[arg(long, env = "ROOMD_COMPOSITION_JOBS", value_name = "N", global = true,
          default_value = "1", value_parser = number::<usize>(0, 8))]
    pub composition_jobs: usize,
}

/// Where the master key comes from (see `auth::master_key`); the key itself never prints.
#[derive(Clone)]
pub enum MasterKeySetting {
    Value(SecretString),
    File(PathBuf),
    DataDir,
}

/// Where `/metrics` is served unless `ROOMD_METRICS_BIND` says otherwise: a listener of its own on
/// loopback, so metrics (which span every tenant) are not public by default.
pub const DEFAULT_METRICS_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

impl Settings {
    /// Checks the settings that are read together (the master key's two sources, the callback
    /// ranges), so that a bad one stops any command, as a bad value does.
    pub fn check(&self) -> Result<()> {
        self.master_key_setting()?;
        self.callbacks()?;
        if self.janus_nodes.as_ref().is_some_and(|n| !n.0.is_empty())
            && (self.janus_admin_secret.is_none() || self.janus_room_admin_key.is_none())
        {
            bail!("invalid ROOMD_JANUS_NODES: external nodes need ROOMD_JANUS_ADMIN_SECRET and ROOMD_JANUS_ROOM_ADMIN_KEY");
        }
        Ok(())
    }

    /// Where the master key comes from; both settings at once is an error.
    pub fn master_key_setting(&self) -> Result<MasterKeySetting> {
        Ok(match (&self.master_key, &self.master_key_file) {
            (Some(_), Some(_)) => bail!(
                "invalid ROOMD_MASTER_KEY_FILE: set ROOMD_MASTER_KEY or ROOMD_MASTER_KEY_FILE, not both"
            ),
            (Some(v), None) => MasterKeySetting::Value(v.clone()),
            (None, Some(p)) => MasterKeySetting::File(p.clone()),
            (None, None) => MasterKeySetting::DataDir,
        })
    }

    /// The master key, loaded (and, in the data directory, created on first use).
    pub fn load_master_key(&self) -> Result<MasterKey> {
        MasterKey::load(&match self.master_key_setting()? {
            MasterKeySetting::Value(v) => KeySource::Value(v),
            MasterKeySetting::File(p) => KeySource::File(p),
            MasterKeySetting::DataDir => KeySource::DataDir(self.data_dir.clone()),
        })
    }

    /// The metrics listener's address (`None`: on the main listener), and whether it is the
    /// default one (a taken default port is logged and skipped, not fatal).
    pub fn metrics_listener(&self) -> (Option<SocketAddr>, bool) {
        match self.metrics_bind {
            None => (Some(DEFAULT_METRICS_BIND), true),
            Some(MetricsBind::Own(a)) => (Some(a), false),
            Some(MetricsBind::Main) => (None, false),
        }
    }

    pub fn http_workers(&self) -> usize {
        self.http_workers
            .unwrap_or_else(crate::app::startup::default_workers)
    }

    pub fn account_quotas(&self) -> AccountQuotas {
        AccountQuotas {
            rooms_in_progress: self.account_max_rooms_in_progress,
            participants_connected: self.account_max_participants_connected,
        }
    }

    /// Status callback delivery; the deny list's default depends on whether `bind` is loopback.
    pub fn callbacks(&self) -> Result<CallbackSettings> {
        let deny = match &self.callback_deny {
            Some(deny) => deny.clone(),
            None => DenyList::default_for(self.bind.ip()),
        };
        let deny = match &self.callback_allow {
            Some(v) if !v.trim().is_empty() => deny
                .allowing(v)
                .map_err(|e| anyhow!("invalid ROOMD_CALLBACK_ALLOW: {e}"))?,
            _ => deny,
        };
        Ok(CallbackSettings {
            deny,
            max_attempts: self.callback_max_attempts,
            retry_base: Duration::from_millis(self.callback_retry_base_ms),
            timeout: self.callback_timeout,
            concurrency: self.callback_concurrency,
            per_account: self.callback_account_concurrency,
            per_host: self.callback_host_concurrency,
            retention: Duration::from_secs(self.callback_retention_days * 86_400),
        })
    }
}

impl std::fmt::Debug for MasterKeySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterKeySetting::Value(_) => f.write_str("ROOMD_MASTER_KEY([redacted])"),
            MasterKeySetting::File(p) => write!(f, "ROOMD_MASTER_KEY_FILE({})", p.display()),
            MasterKeySetting::DataDir => f.write_str("master.key in ROOMD_DATA_DIR"),
        }
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
