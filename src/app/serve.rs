//! `roomd serve`: the HTTP server, the sweeper and the callback dispatcher until SIGTERM, and
//! `roomd healthcheck` for containers.

use crate::app::account_commands::bootstrap;
use crate::app::config::Settings;
use crate::app::database::master_key;
use crate::app::startup::{Application, ServerSettings};
use crate::db;
use crate::workers::sweeper;
use anyhow::{bail, Context, Result};
use sqlx::postgres::PgConnectOptions;

/// `GET /healthz` on the local listener over plain HTTP/1.0, so the container image needs no
/// curl. An unspecified bind address (0.0.0.0, ::) is reached through loopback.
pub fn healthcheck(bind: std::net::SocketAddr) -> Result<()> {
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

pub async fn serve(settings: Settings, options: PgConnectOptions) -> Result<()> {
    // Off the request path: bootstrap and the sweeper. The serving connections
    // (ROOMD_DB_POOL_SIZE) are the HTTP workers' own.
    let pool = db::pool(options.clone(), BACKGROUND_POOL_SIZE)
        .await
        .context("connecting to PostgreSQL")?;
    let key = std::sync::Arc::new(master_key(&pool, &settings).await?);
    bootstrap(&pool, &settings, &key).await?;
    let (metrics_bind, metrics_bind_optional) = settings.metrics_listener();
    let server = ServerSettings {
        bind: settings.bind,
        public_url: settings.public_url.clone(),
        auth_cache_ttl: settings.auth_cache_ttl,
        metrics_bind,
        metrics_bind_optional,
        workers: settings.http_workers(),
        db_pool_size: settings.pool_size,
        body_timeout: settings.body_timeout,
        master_key: key.clone(),
        callbacks: settings.callbacks()?,
        test_clocks: settings.test_clocks,
        account_requests_per_second: settings.account_requests_per_second,
        account_quotas: settings.account_quotas(),
        cors_origins: settings
            .cors_origins
            .clone()
            .map(|o| o.0)
            .unwrap_or_default(),
        console_session_ttl: settings.console.then_some(settings.console_session_ttl),
    };
    let mut app =
        Application::build(server, options.clone()).with_context(|| match metrics_bind {
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
        http_workers = settings.http_workers(),
        db_pool_size = settings.pool_size,
        "roomd listening"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let media = crate::app::media::attach(
        &crate::app::media::MediaOptions::from_settings(&settings),
        &options,
        key.clone(),
        app.local_addr(),
    )
    .await?;
    let media_worker = media.as_ref().map(|m| {
        app.attach_media(m.plane.clone());
        tokio::spawn(crate::media::worker::run(
            m.plane.pool.clone(),
            m.plane.clone(),
            crate::media::worker::WorkerSettings::default(),
            stopped(stop_rx.clone()),
        ))
    });
    // Recording conversions, where there is a media plane and the programs they need.
    let recording_jobs = match (&media, crate::media::convert::Tools::find()) {
        (Some(m), Some(tools)) if settings.recording_jobs > 0 => {
            Some(tokio::spawn(crate::media::recording_jobs::run(
                m.plane.clone(),
                app.metrics(),
                tools,
                crate::media::recording_jobs::JobSettings {
                    concurrency: settings.recording_jobs,
                    ..Default::default()
                },
                stopped(stop_rx.clone()),
            )))
        }
        (Some(_), None) => {
            tracing::warn!("janus-pp-rec not found: recordings stay processing until a process with it converts them (apt-get install janus-tools ffmpeg)");
            None
        }
        _ => None,
    };
    // Compositions, where there is a media plane (they read its recordings) and ffmpeg.
    let composition_jobs = match (&media, crate::media::convert::Tools::find()) {
        (Some(m), Some(tools)) if settings.composition_jobs > 0 && tools.ffmpeg.is_some() => {
            Some(tokio::spawn(crate::media::composition_jobs::run(
                m.plane.clone(),
                app.metrics(),
                tools,
                crate::media::composition_jobs::CompositionSettings {
                    concurrency: settings.composition_jobs,
                    ..Default::default()
                },
                stopped(stop_rx.clone()),
            )))
        }
        _ => None,
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
    if let Some(worker) = media_worker {
        let _ = worker.await;
    }
    for jobs in [recording_jobs, composition_jobs].into_iter().flatten() {
        let _ = jobs.await;
    }
    if let Some(media) = media {
        media.detach().await;
    }
    pool.close().await;
    tracing::info!("roomd stopped");
    result.context("serving HTTP")
}
