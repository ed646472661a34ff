//! One classification of database errors, used by the pools (is the connection still usable?)
//! and by the API (503, 500, or a Twilio code): and the one helper that turns a named
//! constraint's violation into a Twilio code, so that constraints carry the business rules and
//! no route names one.

use crate::twilio::ApiError;
use sqlx::error::DatabaseError;

/// What a database error means for the connection it happened on and for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The database cannot be reached or ended the session (down, restarting, failing over, pool
    /// exhausted, connection lost): 503, and the connection is not reused.
    Unreachable,
    /// The database is too busy or stalled to answer in time (57014: cancelled by
    /// `statement_timeout`; 55P03: lock not available): 503, and the session stays usable.
    Overloaded,
    /// A statement failed (constraint, bad input, no row): the session stays usable.
    Statement,
    /// Anything else (a row that does not decode, a bug): 500, and the connection is not reused.
    Bug,
}

impl Class {
    pub fn breaks_connection(self) -> bool {
        matches!(self, Class::Unreachable | Class::Bug)
    }

    pub fn unavailable(self) -> bool {
        matches!(self, Class::Unreachable | Class::Overloaded)
    }
}

pub fn classify(e: &sqlx::Error) -> Class {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Class::Unreachable,
        sqlx::Error::Database(db) if is_fatal(db.as_ref()) => Class::Unreachable,
        sqlx::Error::Database(db) if is_overloaded(db.as_ref()) => Class::Overloaded,
        sqlx::Error::Database(_) | sqlx::Error::RowNotFound => Class::Statement,
        _ => Class::Bug,
    }
}

/// Class 08 (connection exception) and 57P01..57P03 (admin shutdown, crash shutdown, cannot
/// connect now) end the session.
fn is_fatal(e: &dyn DatabaseError) -> bool {
    e.code()
        .is_some_and(|c| c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03"))
}

fn is_overloaded(e: &dyn DatabaseError) -> bool {
    e.code()
        .is_some_and(|c| matches!(c.as_ref(), "57014" | "55P03"))
}

/// Whether a refused connection is final: class 28 (invalid authorization: wrong password, no
/// such role, pg_hba rejects) and 3D000 (no such database).
pub fn is_permanent_connect_error(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c.starts_with("28") || c.as_ref() == "3D000"))
}

/// Whether an error means the connection it happened on can no longer be trusted.
pub trait BreaksConnection {
    fn breaks_connection(&self) -> bool;
}

impl BreaksConnection for sqlx::Error {
    fn breaks_connection(&self) -> bool {
        classify(self).breaks_connection()
    }
}

/// A db function's error: the database's, or a refusal the data decided (a named constraint, a
/// page token naming nothing), with its Twilio code and message.
#[derive(Debug)]
pub enum DbError {
    Sql(sqlx::Error),
    Refused { code: u32, message: &'static str },
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Sql(e) => e.fmt(f),
            DbError::Refused { code, message } => write!(f, "{code} {message}"),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Sql(e) => Some(e),
            DbError::Refused { .. } => None,
        }
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Sql(e)
    }
}

impl BreaksConnection for DbError {
    fn breaks_connection(&self) -> bool {
        match self {
            DbError::Sql(e) => e.breaks_connection(),
            DbError::Refused { .. } => false,
        }
    }
}

/// Maps the violation of one named constraint to a refusal, in the manner of
/// realworld-axum-sqlx: `.on_constraint("rooms_in_progress_unique_name", code::ROOM_EXISTS,
/// "Room exists")`. Any other error passes through.
pub trait OnConstraint<T> {
    fn on_constraint(self, name: &str, code: u32, message: &'static str) -> Result<T, DbError>;
}

impl<T, E: Into<DbError>> OnConstraint<T> for Result<T, E> {
    fn on_constraint(self, name: &str, code: u32, message: &'static str) -> Result<T, DbError> {
        self.map_err(|e| match e.into() {
            DbError::Sql(sqlx::Error::Database(db)) if db.constraint() == Some(name) => {
                DbError::Refused { code, message }
            }
            other => other,
        })
    }
}

/// Whether `e` means the database cannot be reached right now (down, restarting, failing over,
/// pool exhausted, stalled) rather than that roomd did something wrong: such errors are
/// 503/20503, and the client may retry.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    classify(e).unavailable()
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if is_unavailable(&e) {
            ApiError::Unavailable(e.into())
        } else {
            ApiError::Internal(e.into())
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Sql(e) => e.into(),
            DbError::Refused { code, message } => ApiError::bad_request(code, message),
        }
    }
}
