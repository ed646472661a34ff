//! Settings from the environment. A bad value stops the start with one line naming the setting.
//! `Debug` never shows a password or token.

use crate::twilio::urls::PublicUrl;
use anyhow::{anyhow, bail, Result};
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone)]
pub struct Settings {
    /// `DATABASE_URL`; `None` runs the embedded PostgreSQL under `data_dir`.
    pub database: Option<crate::db::DbOptions>,
    pub bind: SocketAddr,
    /// `ROOMD_PUBLIC_URL`; `None` means `http://` + the bound address.
    pub public_url: Option<PublicUrl>,
    pub sweep_interval: Duration,
    pub data_dir: PathBuf,
    pub bootstrap_account: Option<BootstrapAccount>,
    pub auth_cache_ttl: Duration,
    pub pool_size: u32,
    /// `ROOMD_HTTP_WORKERS`: HTTP worker threads (one per core by default).
    pub http_workers: usize,
    /// `ROOMD_DB_CONNECT_TIMEOUT`: how long start-up waits for an unreachable database.
    pub db_connect_timeout: Duration,
    /// `ROOMD_BODY_TIMEOUT`: how long a request body may take to arrive.
    pub body_timeout: Duration,
    /// `ROOMD_METRICS_BIND`: the listener of its own for `/metrics` (loopback by default);
    /// `None` (the value `main`) serves `/metrics` on the main listener.
    pub metrics_bind: Option<SocketAddr>,
    /// `ROOMD_METRICS_BIND` is unset: a taken default port (a second roomd on the machine) is
    /// logged and the process serves without a metrics listener, rather than not at all.
    pub metrics_bind_is_default: bool,
    /// `ROOMD_MASTER_KEY`, else `ROOMD_MASTER_KEY_FILE`, else `master.key` in `data_dir`.
    pub master_key: MasterKeySetting,
    /// `ROOMD_CALLBACK_*`: status callback delivery.
    pub callbacks: crate::workers::callbacks::CallbackSettings,
    /// `ROOMD_TEST_CLOCKS`: whether accounts with a test clock may be created and served.
    pub test_clocks: bool,
    /// `ROOMD_ACCOUNT_REQUESTS_PER_SECOND`: an account's request rate per process, unless its
    /// own (`roomd accounts update`) says otherwise.
    pub account_requests_per_second: u32,
    /// `ROOMD_ACCOUNT_MAX_ROOMS_IN_PROGRESS`, `ROOMD_ACCOUNT_MAX_PARTICIPANTS_CONNECTED`.
    pub account_quotas: crate::app::startup::AccountQuotas,
}

/// Where the master key comes from (see `seal`); the key itself never prints.
#[derive(Clone)]
pub enum MasterKeySetting {
    Value(SecretString),
    File(PathBuf),
    DataDir,
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

impl Settings {
    /// The master key, loaded (and, in the data directory, created on first use).
    pub fn master_key(&self) -> Result<crate::auth::master_key::MasterKey> {
        crate::auth::master_key::MasterKey::load(&match &self.master_key {
            MasterKeySetting::Value(v) => crate::auth::master_key::KeySource::Value(v.clone()),
            MasterKeySetting::File(p) => crate::auth::master_key::KeySource::File(p.clone()),
            MasterKeySetting::DataDir => {
                crate::auth::master_key::KeySource::DataDir(self.data_dir.clone())
            }
        })
    }
}

#[derive(Clone, Debug)]
pub struct BootstrapAccount {
    pub sid: crate::domain::sid::AccountSid,
    pub token: SecretString,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("database", &self.database)
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("sweep_interval", &self.sweep_interval)
            .field("data_dir", &self.data_dir)
            .field("bootstrap_account", &self.bootstrap_account)
            .field("auth_cache_ttl", &self.auth_cache_ttl)
            .field("pool_size", &self.pool_size)
            .field("http_workers", &self.http_workers)
            .field("db_connect_timeout", &self.db_connect_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("metrics_bind", &self.metrics_bind)
            .field("metrics_bind_is_default", &self.metrics_bind_is_default)
            .field("master_key", &self.master_key)
            .field("callbacks", &self.callbacks)
            .field("test_clocks", &self.test_clocks)
            .field(
                "account_requests_per_second",
                &self.account_requests_per_second,
            )
            .field("account_quotas", &self.account_quotas)
            .finish()
    }
}

fn var(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => bail!("invalid {name}: not valid UTF-8"),
    }
}

fn seconds(name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> Result<Duration> {
    match var(name)? {
        None => Ok(Duration::from_secs(default)),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(Duration::from_secs(n)),
            _ => bail!(
                "invalid {name}: {v:?} is not a whole number of seconds in {}..={}",
                range.start(),
                range.end()
            ),
        },
    }
}

fn flag(name: &str, default: bool) -> Result<bool> {
    match var(name)?.map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
        Some(v) => bail!("invalid {name}: {v:?} is not true or false"),
    }
}

fn number(name: &str, default: u32, range: std::ops::RangeInclusive<u32>) -> Result<u32> {
    match var(name)? {
        None => Ok(default),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => bail!(
                "invalid {name}: {v:?} is not a number in {}..={}",
                range.start(),
                range.end()
            ),
        },
    }
}

/// Where `/metrics` is served unless `ROOMD_METRICS_BIND` says otherwise: a listener of its own on
/// loopback, so metrics (which span every tenant) are not public by default.
pub const DEFAULT_METRICS_BIND: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

/// `ROOMD_METRICS_BIND`: unset is `DEFAULT_METRICS_BIND`; `main` serves `/metrics` on the main
/// listener (`None`); anything else is the address:port of a listener of its own.
pub fn parse_metrics_bind(value: Option<&str>) -> Result<Option<SocketAddr>> {
    match value.map(str::trim) {
        None => Ok(Some(DEFAULT_METRICS_BIND)),
        Some("main") => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            anyhow!(
                "invalid ROOMD_METRICS_BIND: {v:?} is not an address:port such as 127.0.0.1:9464, or main"
            )
        }),
    }
}

pub fn parse_database_url(url: &str) -> Result<PgConnectOptions> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!("invalid DATABASE_URL: must start with postgres:// or postgresql://");
    }
    // The parser's message never repeats the URL, so a password cannot leak through it.
    PgConnectOptions::from_str(url).map_err(|e| anyhow!("invalid DATABASE_URL: {e}"))
}

pub fn parse_public_url(raw: &str) -> Result<PublicUrl> {
    let url = url::Url::parse(raw).map_err(|e| anyhow!("invalid ROOMD_PUBLIC_URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("invalid ROOMD_PUBLIC_URL: must be an absolute http(s) URL such as http://127.0.0.1:8080");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("invalid ROOMD_PUBLIC_URL: must not carry a query or fragment");
    }
    Ok(PublicUrl::new(raw))
}

pub fn parse_bootstrap_account(raw: &str) -> Result<BootstrapAccount> {
    let err = || anyhow!("invalid ROOMD_BOOTSTRAP_ACCOUNT: expected AC<32 hex>:<token>");
    let (sid, token) = raw.trim().split_once(':').ok_or_else(err)?;
    let sid = crate::domain::sid::AccountSid::parse(sid).ok_or_else(err)?;
    if token.is_empty() {
        return Err(err());
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("invalid ROOMD_BOOTSTRAP_ACCOUNT: the token must not contain spaces or control characters");
    }
    Ok(BootstrapAccount {
        sid,
        token: SecretString::from(token),
    })
}

impl Settings {
    pub fn from_env() -> Result<Settings> {
        let database = var("DATABASE_URL")?
            .map(|u| parse_database_url(&u).map(crate::db::DbOptions::new))
            .transpose()?;
        let bind = match var("ROOMD_BIND")? {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => v.trim().parse().map_err(|_| {
                anyhow!("invalid ROOMD_BIND: {v:?} is not an address:port such as 127.0.0.1:8080")
            })?,
        };
        let public_url = var("ROOMD_PUBLIC_URL")?
            .map(|u| parse_public_url(&u))
            .transpose()?;
        Ok(Settings {
            database,
            bind,
            public_url,
            sweep_interval: seconds("ROOMD_SWEEP_INTERVAL", 5, 1..=86400)?,
            data_dir: PathBuf::from(
                var("ROOMD_DATA_DIR")?.unwrap_or_else(|| "./roomd-data".into()),
            ),
            bootstrap_account: var("ROOMD_BOOTSTRAP_ACCOUNT")?
                .map(|v| parse_bootstrap_account(&v))
                .transpose()?,
            auth_cache_ttl: seconds(
                "ROOMD_AUTH_CACHE_TTL",
                crate::auth::credentials::DEFAULT_CACHE_TTL.as_secs(),
                0..=crate::auth::credentials::MAX_CACHE_TTL.as_secs(),
            )?,
            pool_size: number("ROOMD_DB_POOL_SIZE", 10, 1..=1000)?,
            http_workers: number(
                "ROOMD_HTTP_WORKERS",
                crate::app::startup::default_workers() as u32,
                1..=256,
            )? as usize,
            db_connect_timeout: seconds("ROOMD_DB_CONNECT_TIMEOUT", 30, 0..=3600)?,
            body_timeout: seconds(
                "ROOMD_BODY_TIMEOUT",
                crate::http::state::DEFAULT_BODY_TIMEOUT.as_secs(),
                1..=300,
            )?,
            metrics_bind: parse_metrics_bind(var("ROOMD_METRICS_BIND")?.as_deref())?,
            metrics_bind_is_default: var("ROOMD_METRICS_BIND")?.is_none(),
            master_key: match (var("ROOMD_MASTER_KEY")?, var("ROOMD_MASTER_KEY_FILE")?) {
                (Some(_), Some(_)) => {
                    bail!("invalid ROOMD_MASTER_KEY_FILE: set ROOMD_MASTER_KEY or ROOMD_MASTER_KEY_FILE, not both")
                }
                (Some(v), None) => MasterKeySetting::Value(SecretString::from(v)),
                (None, Some(p)) => MasterKeySetting::File(PathBuf::from(p)),
                (None, None) => MasterKeySetting::DataDir,
            },
            callbacks: callback_settings(bind)?,
            test_clocks: flag("ROOMD_TEST_CLOCKS", true)?,
            account_requests_per_second: number(
                "ROOMD_ACCOUNT_REQUESTS_PER_SECOND",
                crate::auth::request_rate::DEFAULT_REQUESTS_PER_SECOND,
                1..=1_000_000,
            )?,
            account_quotas: crate::app::startup::AccountQuotas {
                rooms_in_progress: number(
                    "ROOMD_ACCOUNT_MAX_ROOMS_IN_PROGRESS",
                    crate::app::startup::AccountQuotas::default().rooms_in_progress,
                    0..=1_000_000_000,
                )?,
                participants_connected: number(
                    "ROOMD_ACCOUNT_MAX_PARTICIPANTS_CONNECTED",
                    crate::app::startup::AccountQuotas::default().participants_connected,
                    0..=1_000_000_000,
                )?,
            },
        })
    }
}

/// `ROOMD_CALLBACK_DENY` (CIDR ranges, or `none`; its default depends on whether `bind` is a
/// loopback address), `ROOMD_CALLBACK_ALLOW`, `ROOMD_CALLBACK_MAX_ATTEMPTS`,
/// `ROOMD_CALLBACK_RETRY_BASE_MS`, `ROOMD_CALLBACK_TIMEOUT`, `ROOMD_CALLBACK_CONCURRENCY`,
/// `ROOMD_CALLBACK_ACCOUNT_CONCURRENCY`, `ROOMD_CALLBACK_HOST_CONCURRENCY`,
/// `ROOMD_CALLBACK_RETENTION_DAYS`.
fn callback_settings(bind: SocketAddr) -> Result<crate::workers::callbacks::CallbackSettings> {
    use crate::workers::callbacks::{self as cb, deliver::DenyList, CallbackSettings};
    let deny = match var("ROOMD_CALLBACK_DENY")? {
        None => DenyList::default_for(bind.ip()),
        Some(v) if v.trim() == "none" => DenyList::parse("").expect("empty parses"),
        Some(v) => DenyList::parse(&v).map_err(|e| anyhow!("invalid ROOMD_CALLBACK_DENY: {e}"))?,
    };
    let deny = match var("ROOMD_CALLBACK_ALLOW")? {
        None => deny,
        Some(v) => deny
            .allowing(&v)
            .map_err(|e| anyhow!("invalid ROOMD_CALLBACK_ALLOW: {e}"))?,
    };
    Ok(CallbackSettings {
        deny,
        max_attempts: number(
            "ROOMD_CALLBACK_MAX_ATTEMPTS",
            cb::DEFAULT_MAX_ATTEMPTS,
            1..=100,
        )?,
        retry_base: Duration::from_millis(u64::from(number(
            "ROOMD_CALLBACK_RETRY_BASE_MS",
            cb::DEFAULT_RETRY_BASE.as_millis() as u32,
            10..=60_000,
        )?)),
        timeout: seconds(
            "ROOMD_CALLBACK_TIMEOUT",
            cb::DEFAULT_TIMEOUT.as_secs(),
            1..=15,
        )?,
        concurrency: number(
            "ROOMD_CALLBACK_CONCURRENCY",
            cb::DEFAULT_CONCURRENCY as u32,
            1..=4096,
        )? as usize,
        per_account: number(
            "ROOMD_CALLBACK_ACCOUNT_CONCURRENCY",
            cb::DEFAULT_PER_ACCOUNT as u32,
            1..=4096,
        )? as usize,
        per_host: number(
            "ROOMD_CALLBACK_HOST_CONCURRENCY",
            cb::DEFAULT_PER_HOST as u32,
            1..=4096,
        )? as usize,
        retention: Duration::from_secs(
            u64::from(number(
                "ROOMD_CALLBACK_RETENTION_DAYS",
                (cb::DEFAULT_RETENTION.as_secs() / 86_400) as u32,
                1..=3650,
            )?) * 86_400,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn bootstrap_accounts_parse_and_redact() {
        let b = parse_bootstrap_account("ACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:s3cret").unwrap();
        assert_eq!(b.sid.as_str(), format!("AC{}", "a".repeat(32)));
        assert!(!format!("{b:?}").contains("s3cret"));
        assert_eq!(b.token.expose_secret(), "s3cret");
        for bad in [
            "AC123:x",
            "nocolon",
            &format!("AC{}:", "a".repeat(32)),
            &format!("AC{}:a b", "a".repeat(32)),
        ] {
            assert!(parse_bootstrap_account(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_never_print_the_database_password_the_bootstrap_token_or_the_master_key() {
        let mut settings = Settings::from_env().unwrap();
        settings.database = Some(crate::db::DbOptions::new(
            parse_database_url("postgres://u:hunter2@localhost/db").unwrap(),
        ));
        settings.bootstrap_account =
            Some(parse_bootstrap_account("ACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:s3cret").unwrap());
        settings.master_key = MasterKeySetting::Value(SecretString::from("bWFzdGVyLWtleQ=="));
        let printed = format!("{settings:?} {settings:#?}");
        assert!(
            printed.contains("ACaaaa") && printed.contains("ROOMD_MASTER_KEY"),
            "{printed}"
        );
        for secret in ["hunter2", "s3cret", "bWFzdGVyLWtleQ=="] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn database_url_errors_do_not_echo_the_password() {
        let e = parse_database_url("postgres://u:hunter2@[bad/db")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid DATABASE_URL"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn metrics_are_on_loopback_unless_asked_for_on_the_main_listener() {
        let default = parse_metrics_bind(None).unwrap().unwrap();
        assert!(default.ip().is_loopback());
        assert_eq!(parse_metrics_bind(Some("main")).unwrap(), None);
        assert_eq!(
            parse_metrics_bind(Some("0.0.0.0:9100")).unwrap(),
            Some("0.0.0.0:9100".parse().unwrap())
        );
        assert!(parse_metrics_bind(Some("public")).is_err());
    }

    #[test]
    fn public_urls_are_absolute_http() {
        assert!(parse_public_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_public_url("ftp://x").is_err());
        assert!(parse_public_url("localhost:8080").is_err());
    }
}
