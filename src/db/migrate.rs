//! refinery migrations (`migrations/V*__*.sql`) applied over a sqlx connection, so roomd needs no
//! second PostgreSQL driver. Several replicas may start at once: the run holds a PostgreSQL
//! advisory lock, so one migrates and the others then find nothing left to do.

use anyhow::{Context, Result};
use refinery_core::traits::r#async::{AsyncQuery, AsyncTransaction};
use refinery_core::{AsyncMigrate, Migration};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, Executor, PgConnection, Row};
use std::future::Future;
use std::pin::Pin;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// An arbitrary, fixed key for `pg_advisory_lock`: "roomd" in ASCII.
const MIGRATION_LOCK_KEY: i64 = 0x72_6f6f_6d64;

struct SqlxMigrator<'c>(&'c mut PgConnection);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

#[allow(refining_impl_trait)]
impl AsyncTransaction for SqlxMigrator<'_> {
    type Error = sqlx::Error;

    fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &'a mut self,
        queries: T,
    ) -> BoxFuture<'a, usize> {
        let queries: Vec<&'a str> = queries.collect();
        Box::pin(async move {
            let mut tx = self.0.begin().await?;
            for query in &queries {
                // A &str without arguments goes over the simple-query protocol, which runs a
                // file of several statements.
                (&mut *tx).execute(*query).await?;
            }
            tx.commit().await?;
            Ok(queries.len())
        })
    }
}

#[allow(refining_impl_trait)]
impl AsyncQuery<Vec<Migration>> for SqlxMigrator<'_> {
    fn query<'a>(&'a mut self, query: &'a str) -> BoxFuture<'a, Vec<Migration>> {
        Box::pin(async move {
            let rows = (&mut *self.0).fetch_all(query).await?;
            rows.iter().map(applied_migration).collect()
        })
    }
}

fn applied_migration(row: &sqlx::postgres::PgRow) -> Result<Migration, sqlx::Error> {
    let applied_on: String = row.try_get(2)?;
    let checksum: String = row.try_get(3)?;
    let decode = |e: String| sqlx::Error::Decode(e.into());
    Ok(Migration::applied(
        row.try_get(0)?,
        row.try_get(1)?,
        OffsetDateTime::parse(&applied_on, &Rfc3339).map_err(|e| decode(e.to_string()))?,
        checksum.parse::<u64>().map_err(|e| decode(e.to_string()))?,
    ))
}

impl AsyncMigrate for SqlxMigrator<'_> {}

/// Applies every pending migration; returns how many were applied.
pub async fn run(options: &PgConnectOptions) -> Result<usize> {
    let mut conn = PgConnection::connect_with(options)
        .await
        .context("connecting to PostgreSQL to migrate")?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATION_LOCK_KEY)
        .execute(&mut conn)
        .await?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .run_async(&mut SqlxMigrator(&mut conn))
        .await;
    // Closing the session releases the advisory lock whatever happened above.
    let _ = conn.close().await;
    let report = report.context("applying migrations")?;
    for m in report.applied_migrations() {
        tracing::info!(migration = %m, "applied migration");
    }
    Ok(report.applied_migrations().len())
}
