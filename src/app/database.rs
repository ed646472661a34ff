//! The database a command runs on: `DATABASE_URL`, another roomd's embedded PostgreSQL on the
//! same data directory, or an embedded one started here; migrated before any use.

use crate::app::config::Settings;
use crate::auth::master_key::MasterKey;
use crate::db;
use crate::db::embedded::running::{self, Postmaster};
use crate::db::embedded::{EmbeddedPostgres, Mode};
use anyhow::Result;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgPool};
use std::future::Future;

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
        let previous = running::live_postmaster(&settings.data_dir);
        if let (Some(Postmaster::Owned(_)), Some(options)) =
            (previous, running::find_running(&settings.data_dir))
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

pub async fn with_database<F, Fut, T>(settings: &Settings, f: F) -> Result<T>
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

/// Runs a CLI command on a small pool to the (migrated) database, closed afterwards.
pub async fn with_pool<T>(
    settings: &Settings,
    f: impl AsyncFnOnce(&PgPool) -> Result<T>,
) -> Result<T> {
    with_database(settings, |options| async move {
        let pool = db::pool(options, 2).await?;
        let result = f(&pool).await;
        pool.close().await;
        result
    })
    .await
}

/// The master key, checked against the one this database's secrets are sealed with.
pub async fn master_key(pool: &PgPool, settings: &Settings) -> Result<MasterKey> {
    let key = settings.load_master_key()?;
    key.check(pool).await?;
    Ok(key)
}
