//! PostgreSQL access: one file per aggregate, plain async functions over a pool or connection.
//! Routes and workers share them; none of them knows about HTTP.

pub mod accounts;
pub mod embedded;
pub mod migrate;
pub mod rooms;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::time::Duration;

/// The pool the server and workers share.
pub async fn pool(options: PgConnectOptions, size: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
}

/// Unique-violation constraint name, if `e` is one.
pub fn violated_unique_constraint(e: &sqlx::Error) -> Option<&str> {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}
