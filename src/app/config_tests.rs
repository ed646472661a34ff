//! The settings' tests (beside `config.rs`, which they test).
use super::*;
use crate::workers::callbacks::settings as cb;
use clap::Parser;

#[derive(Parser)]
struct Only {
    #[command(flatten)]
    settings: Settings,
}

fn parse(args: &[&str]) -> std::result::Result<Settings, clap::Error> {
    Only::try_parse_from(std::iter::once("roomd").chain(args.iter().copied())).map(|o| o.settings)
}

#[test]
fn the_defaults_are_the_constants_the_code_names() {
    let s = parse(&[]).unwrap();
    assert_eq!(
        s.auth_cache_ttl,
        crate::auth::credentials::DEFAULT_CACHE_TTL
    );
    assert_eq!(s.body_timeout, crate::http::state::DEFAULT_BODY_TIMEOUT);
    assert_eq!(
        s.account_requests_per_second,
        crate::auth::request_rate::DEFAULT_REQUESTS_PER_SECOND
    );
    assert_eq!(s.account_quotas(), AccountQuotas::default());
    let c = s.callbacks().unwrap();
    assert_eq!(c.max_attempts, cb::DEFAULT_MAX_ATTEMPTS);
    assert_eq!(c.retry_base, cb::DEFAULT_RETRY_BASE);
    assert_eq!(c.timeout, cb::DEFAULT_TIMEOUT);
    assert_eq!(c.concurrency, cb::DEFAULT_CONCURRENCY);
    assert_eq!(c.per_account, cb::DEFAULT_PER_ACCOUNT);
    assert_eq!(c.per_host, cb::DEFAULT_PER_HOST);
    assert_eq!(c.retention, cb::DEFAULT_RETENTION);
    assert_eq!(s.metrics_listener(), (Some(DEFAULT_METRICS_BIND), true));
}

#[test]
fn settings_never_print_the_database_password_the_bootstrap_token_or_the_master_key() {
    let settings = parse(&[
        "--database-url",
        "postgres://u:hunter2@localhost/db",
        "--bootstrap-account",
        "ACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:s3cret",
        "--master-key",
        "bWFzdGVyLWtleQ==",
        "--janus-admin-secret",
        "janus-s3cret",
        "--janus-room-admin-key",
        "room-k3y",
    ])
    .unwrap();
    let printed = format!(
        "{settings:?} {settings:#?} {:?}",
        settings.master_key_setting().unwrap()
    );
    assert!(
        printed.contains("ACaaaa") && printed.contains("ROOMD_MASTER_KEY"),
        "{printed}"
    );
    for secret in [
        "hunter2",
        "s3cret",
        "bWFzdGVyLWtleQ==",
        "janus-s3cret",
        "room-k3y",
    ] {
        assert!(!printed.contains(secret), "{printed}");
    }
}

#[test]
fn metrics_are_on_loopback_unless_asked_for_on_the_main_listener() {
    let listener = |args: &[&str]| parse(args).unwrap().metrics_listener();
    assert!(listener(&[]).0.unwrap().ip().is_loopback());
    assert_eq!(listener(&["--metrics-bind", "main"]), (None, false));
    assert_eq!(
        listener(&["--metrics-bind", "0.0.0.0:9100"]),
        (Some("0.0.0.0:9100".parse().unwrap()), false)
    );
    assert!(parse(&["--metrics-bind", "public"]).is_err());
}

#[test]
fn cors_origins_are_origins_and_media_modes_are_three() {
    let s = parse(&[
        "--cors-origins",
        "http://127.0.0.1:5173, https://app.example.com",
    ])
    .unwrap();
    assert_eq!(
        s.cors_origins.unwrap().0,
        ["http://127.0.0.1:5173", "https://app.example.com"]
    );
    for bad in [
        "https://app.example.com/page",
        "ftp://files.example.com",
        "example.com",
    ] {
        assert!(parse(&["--cors-origins", bad]).is_err(), "{bad}");
    }
    assert_eq!(parse(&[]).unwrap().media, MediaMode::Auto);
    assert_eq!(parse(&["--media", "OFF"]).unwrap().media, MediaMode::Off);
    assert!(parse(&["--media", "livekit"]).is_err());
    assert!(parse(&["--media-ip", "127.0.1.1"])
        .unwrap()
        .media_ip
        .is_some());
    assert!(parse(&["--media-ip", "localhost"]).is_err());
    let nodes = parse(&[
        "--janus-nodes",
        "media1 http://10.0.0.5:7088/admin wss://m1.example.com/, media-2 https://10.0.0.6/admin http://m2.example.com/janus",
    ])
    .unwrap()
    .janus_nodes
    .unwrap()
    .0;
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1].name, "media-2");
    assert_eq!(nodes[0].client_url, "wss://m1.example.com/");
    for bad in [
        "media1 http://10.0.0.5:7088/admin",
        "media1 ftp://x/admin ws://y/",
        "media1 http://x/admin file:///y",
        "bad/name http://x/admin ws://y/",
        "a http://x/admin ws://y/, a http://z/admin ws://w/",
    ] {
        assert!(parse(&["--janus-nodes", bad]).is_err(), "{bad}");
    }
    // External nodes need their shared secrets.
    let without = parse(&["--janus-nodes", "m http://x/admin ws://y/"]).unwrap();
    assert!(without.check().is_err());
}
