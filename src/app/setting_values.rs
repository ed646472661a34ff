//! How each setting's text becomes its value (`app::config` names them): trimmed, checked
//! against its range, with a reason that completes "invalid NAME: value is ...".

use crate::db::DbOptions;
use crate::telemetry::logs::LogFormat;
use crate::twilio::urls::PublicUrl;
use crate::workers::callbacks::destinations::DenyList;
use anyhow::{anyhow, Result};
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// `ROOMD_METRICS_BIND`: a listener of its own, or the API's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsBind {
    Own(SocketAddr),
    Main,
}

#[derive(Clone, Debug)]
pub struct BootstrapAccount {
    pub sid: crate::domain::sid::AccountSid,
    pub token: SecretString,
}

/// Whole seconds in `min..=max`.
pub fn seconds(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |v| {
        let n = number::<u64>(min, max)(v)
            .map_err(|_| format!("not a whole number of seconds in {min}..={max}"))?;
        Ok(Duration::from_secs(n))
    }
}

/// A number in `min..=max`.
pub fn number<T>(
    min: T,
    max: T,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + std::fmt::Display + Copy + Send + Sync + 'static,
{
    move |v| match v.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("not a number in {min}..={max}")),
    }
}

pub fn flag(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("not true or false".into()),
    }
}

pub fn address(v: &str) -> Result<SocketAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| "not an address:port such as 127.0.0.1:8080".into())
}

pub fn ip(v: &str) -> Result<std::net::IpAddr, String> {
    v.trim()
        .parse()
        .map_err(|_| "not an IP address such as 127.0.1.1".into())
}

/// `ROOMD_MEDIA`: which media plane to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaMode {
    /// The embedded Janus when a `janus` binary exists, else none (one log line says so).
    Auto,
    /// The embedded Janus; without a `janus` binary roomd does not start.
    Janus,
    /// None: the control plane only.
    Off,
}

pub fn media_mode(v: &str) -> Result<MediaMode, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(MediaMode::Auto),
        "janus" => Ok(MediaMode::Janus),
        "off" => Ok(MediaMode::Off),
        _ => Err("not auto, janus or off".into()),
    }
}

/// One external Janus node (`ROOMD_JANUS_NODES`): its name, its Admin API, and the URL its
/// clients (janus.js) use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JanusNode {
    pub name: String,
    pub admin_url: String,
    pub client_url: String,
}

/// `ROOMD_JANUS_NODES`: `NAME ADMIN_URL CLIENT_URL`, nodes separated by commas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JanusNodes(pub Vec<JanusNode>);

pub fn janus_nodes(v: &str) -> Result<JanusNodes, String> {
    let mut nodes: Vec<JanusNode> = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let fields: Vec<&str> = item.split_whitespace().collect();
        let [name, admin, client] = fields[..] else {
            return Err(format!(
                "{item:?} is not `NAME ADMIN_URL CLIENT_URL` (e.g. `media1 http://10.0.0.5:7088/admin wss://media1.example.com/`)"
            ));
        };
        let valid_name = crate::db::media_nodes::NodeRow::valid_name(name).is_some();
        if !valid_name || nodes.iter().any(|n| n.name == name) {
            return Err(format!(
                "{name:?} is not a node name (1..64 of A-Z a-z 0-9 . _ -, each once)"
            ));
        }
        let scheme = |url: &str, allowed: &[&str]| {
            url::Url::parse(url)
                .ok()
                .filter(|u| allowed.contains(&u.scheme()) && u.host().is_some())
                .is_some()
        };
        if !scheme(admin, &["http", "https"]) {
            return Err(format!(
                "{admin:?} is not an http(s) URL of a Janus Admin API"
            ));
        }
        if !scheme(client, &["http", "https", "ws", "wss"]) {
            return Err(format!(
                "{client:?} is not a ws(s) or http(s) URL for janus.js"
            ));
        }
        nodes.push(JanusNode {
            name: name.to_string(),
            admin_url: admin.to_string(),
            client_url: client.to_string(),
        });
    }
    Ok(JanusNodes(nodes))
}

/// `ROOMD_CORS_ORIGINS`: origins, each `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins(pub Vec<String>);

pub fn origins(v: &str) -> Result<Origins, String> {
    let mut list = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let url = url::Url::parse(item)
            .map_err(|_| format!("{item:?} is not an origin such as https://app.example.com"))?;
        let origin = url.origin().ascii_serialization();
        if !matches!(url.scheme(), "http" | "https")
            || origin.trim_end_matches('/') != item.trim_end_matches('/')
        {
            return Err(format!("{item:?} is not an origin such as https://app.example.com (scheme, host and port only)"));
        }
        list.push(origin);
    }
    Ok(Origins(list))
}

pub fn secret(v: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(v.trim()))
}

pub fn metrics_bind(v: &str) -> Result<MetricsBind, String> {
    match v.trim() {
        "main" => Ok(MetricsBind::Main),
        v => v
            .parse()
            .map(MetricsBind::Own)
            .map_err(|_| "not an address:port such as 127.0.0.1:9464, or main".to_string()),
    }
}

pub fn log_format(v: &str) -> Result<LogFormat, String> {
    match v.trim() {
        "json" => Ok(LogFormat::Json),
        "text" => Ok(LogFormat::Text),
        _ => Err("expected json or text".into()),
    }
}

pub fn deny_list(v: &str) -> Result<DenyList, String> {
    match v.trim() {
        "none" => DenyList::parse(""),
        v => DenyList::parse(v),
    }
}

pub fn database_url(url: &str) -> Result<DbOptions, String> {
    let url = url.trim();
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("must start with postgres:// or postgresql://".into());
    }
    // The parser's message never repeats the URL, so a password cannot leak through it.
    PgConnectOptions::from_str(url)
        .map(crate::db::connect::without_tls_on_sockets)
        .map(DbOptions::new)
        .map_err(|e| e.to_string())
}

/// `DATABASE_URL`'s parser, for tools (the benchmark) that read one themselves.
pub fn parse_database_url(url: &str) -> Result<PgConnectOptions> {
    database_url(url)
        .map(|o| o.expose().clone())
        .map_err(|e| anyhow!("invalid DATABASE_URL: {e}"))
}

pub fn public_url(raw: &str) -> Result<PublicUrl, String> {
    let raw = raw.trim();
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an absolute http(s) URL such as http://127.0.0.1:8080".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not carry a query or fragment".into());
    }
    Ok(PublicUrl::new(raw))
}

pub fn bootstrap_account(raw: &str) -> Result<BootstrapAccount, String> {
    let expected = || "expected AC<32 hex>:<token>".to_string();
    let (sid, token) = raw.trim().split_once(':').ok_or_else(expected)?;
    let sid = crate::domain::sid::AccountSid::parse(sid).ok_or_else(expected)?;
    if token.is_empty() {
        return Err(expected());
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the token must not contain spaces or control characters".into());
    }
    Ok(BootstrapAccount {
        sid,
        token: SecretString::from(token),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn bootstrap_accounts_parse_and_redact() {
        let b = bootstrap_account("ACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:s3cret").unwrap();
        assert_eq!(b.sid.as_str(), format!("AC{}", "a".repeat(32)));
        assert!(!format!("{b:?}").contains("s3cret"));
        assert_eq!(b.token.expose_secret(), "s3cret");
        for bad in [
            "AC123:x",
            "nocolon",
            &format!("AC{}:", "a".repeat(32)),
            &format!("AC{}:a b", "a".repeat(32)),
        ] {
            assert!(bootstrap_account(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sslmode_applies_to_tcp_only_as_in_libpq() {
        use sqlx::postgres::PgSslMode;
        let mode = |url: &str| parse_database_url(url).unwrap().get_ssl_mode();
        assert!(matches!(
            mode("postgres://u@localhost/db?host=/run/postgresql&sslmode=require"),
            PgSslMode::Disable
        ));
        assert!(matches!(
            mode("postgres://u@localhost/db?sslmode=verify-full"),
            PgSslMode::VerifyFull
        ));
        assert!(matches!(
            mode("postgres://u@localhost/db"),
            PgSslMode::Prefer
        ));
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
    fn public_urls_are_absolute_http() {
        assert!(public_url("http://127.0.0.1:8080").is_ok());
        assert!(public_url("ftp://x").is_err());
        assert!(public_url("localhost:8080").is_err());
    }
}
