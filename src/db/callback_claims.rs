//! What the callback dispatcher does to the outbox: claim due events (each room's head, accounts
//! taking turns), settle their outcomes, release what it could not send, prune what is old.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use std::time::Duration;

/// An event as a dispatcher delivers it.
#[derive(Debug, sqlx::FromRow)]
pub struct Claimed {
    pub sid: String,
    pub account_sid: String,
    pub room_sid: String,
    pub sequence_number: i32,
    pub url: String,
    pub method: String,
    pub params: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    /// This claim's attempt number (1 for the first): the fence of `settle`.
    pub attempts: i32,
    pub date_created: DateTime<Utc>,
    /// The destination its delivery slot counts against (`callback_host`).
    pub host: String,
    /// The account's auth token, sealed (NULL for an account created before tokens were sealed).
    pub auth_token_sealed: Option<Vec<u8>>,
}

/// What a claim may take: free slots in all, per account and per destination host, given the
/// deliveries this process has in flight.
#[derive(Debug, Clone, Default)]
pub struct ClaimLimits {
    /// Events to claim at most.
    pub free: i64,
    /// Deliveries in flight at once for one account.
    pub per_account: i64,
    /// Deliveries in flight at once to one host (`callback_host`: host and port).
    pub per_host: i64,
    /// `(account_sid, deliveries in flight)` for the accounts with any.
    pub busy_accounts: Vec<(String, i64)>,
    /// `(host, deliveries in flight)` for the hosts with any.
    pub busy_hosts: Vec<(String, i64)>,
}

/// Claims due head events (a room's next event waits for the one before it), leasing them for
/// `lease`: until it ends, no dispatcher takes them again. Accounts take turns: every account's
/// oldest due head comes before any account's second, and none gets more than its free slots
/// (per account, then per host). The accounts are walked one index probe each (a loose index
/// scan), then each account's due heads through the same index, so a claim reads about as much
/// with a million events queued behind dead receivers as with none. The candidates are locked
/// as they are read (`FOR UPDATE SKIP LOCKED`, which re-checks them against their latest
/// version), so replicas claim at once without waiting for each other, and every step is an
/// index probe whatever the plan's age: the dispatcher's connections keep generic plans.
pub async fn claim(
    db: impl PgExecutor<'_>,
    limits: &ClaimLimits,
    lease: Duration,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let (busy_accounts, account_counts): (Vec<&str>, Vec<i64>) = limits
        .busy_accounts
        .iter()
        .map(|(a, n)| (a.as_str(), *n))
        .unzip();
    let (busy_hosts, host_counts): (Vec<&str>, Vec<i64>) = limits
        .busy_hosts
        .iter()
        .map(|(h, n)| (h.as_str(), *n))
        .unzip();
    sqlx::query_as(
        "WITH RECURSIVE accounts_with_heads(account_sid) AS ( \
            (SELECT h.account_sid FROM callback_events h WHERE h.status = 'pending' AND h.head \
             ORDER BY h.account_sid LIMIT 1) \
            UNION ALL \
            SELECT (SELECT h.account_sid FROM callback_events h \
                    WHERE h.status = 'pending' AND h.head AND h.account_sid > a.account_sid \
                    ORDER BY h.account_sid LIMIT 1) \
            FROM accounts_with_heads a WHERE a.account_sid IS NOT NULL), \
         busy_accounts AS (SELECT * FROM unnest($4::text[], $5::bigint[]) AS b(account_sid, n)), \
         busy_hosts AS (SELECT * FROM unnest($7::text[], $8::bigint[]) AS b(host, n)), \
         candidates AS ( \
            SELECT c.sid, c.account_sid, c.next_attempt, c.host, \
                row_number() OVER (PARTITION BY c.account_sid ORDER BY c.next_attempt, c.sid) AS turn \
            FROM accounts_with_heads a CROSS JOIN LATERAL ( \
                SELECT h.sid, h.account_sid, h.next_attempt, callback_host(h.url) AS host \
                FROM callback_events h \
                WHERE h.account_sid = a.account_sid AND h.status = 'pending' AND h.head \
                AND h.next_attempt <= now() \
                ORDER BY h.next_attempt \
                LIMIT greatest(0, $3 - coalesce((SELECT b.n FROM busy_accounts b \
                                                 WHERE b.account_sid = a.account_sid), 0)) \
                FOR UPDATE SKIP LOCKED) c \
            WHERE a.account_sid IS NOT NULL), \
         placed AS ( \
            SELECT c.*, row_number() OVER (PARTITION BY c.host ORDER BY c.turn, c.next_attempt, c.sid) \
                AS host_turn \
            FROM candidates c), \
         picked AS ( \
            SELECT p.sid FROM placed p \
            WHERE p.host_turn <= $6 - coalesce((SELECT b.n FROM busy_hosts b WHERE b.host = p.host), 0) \
            ORDER BY p.turn, p.next_attempt, p.sid LIMIT $1), \
         claimed AS ( \
            UPDATE callback_events e SET attempts = e.attempts + 1, \
                next_attempt = now() + make_interval(secs => $2), date_updated = now() \
            FROM picked k WHERE e.sid = k.sid \
            RETURNING e.sid, e.account_sid, e.room_sid, e.sequence_number, e.url, e.method, \
                e.params, e.attempts, e.date_created) \
         SELECT c.*, callback_host(c.url) AS host, a.auth_token_sealed \
         FROM claimed c JOIN accounts a ON a.sid = c.account_sid",
    )
    .bind(limits.free)
    .bind(lease.as_secs_f64())
    .bind(limits.per_account)
    .bind(busy_accounts)
    .bind(account_counts)
    .bind(limits.per_host)
    .bind(busy_hosts)
    .bind(host_counts)
    .fetch_all(db)
    .await
}

/// How one attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Delivered {
        status: u16,
    },
    /// Retried at `retry_at`, or marked failed when `None`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_at: Option<Duration>,
    },
}

/// Records attempts' outcomes (`(sid, attempt, outcome)`) in one call (one commit for many
/// deliveries); an outcome counts only if the event is still that attempt's (a dispatcher
/// whose lease ran out, and whose event another took, changes nothing). A settled event's room
/// gets its next event as head. Returns the events taken, each with whether its outcome
/// counted; an event not returned was held by a writer for a moment, and is to be tried again.
pub async fn settle(
    db: impl PgExecutor<'_>,
    outcomes: &[(&str, i32, &Outcome)],
) -> Result<Vec<(String, bool)>, sqlx::Error> {
    let n = outcomes.len();
    let (mut sids, mut attempts, mut statuses, mut codes, mut errors, mut retries) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (sid, attempt, outcome) in outcomes {
        let (status, code, error, retry_in) = match outcome {
            Outcome::Delivered { status } => ("delivered", Some(*status), None, None),
            Outcome::Failed {
                status,
                error,
                retry_at: Some(after),
            } => (
                "pending",
                *status,
                Some(error.as_str()),
                Some(after.as_secs_f64()),
            ),
            Outcome::Failed { status, error, .. } => {
                ("failed", *status, Some(error.as_str()), None)
            }
        };
        sids.push(*sid);
        attempts.push(*attempt);
        statuses.push(status);
        codes.push(code.map(i32::from));
        errors.push(error);
        retries.push(retry_in);
    }
    sqlx::query_as("SELECT sid, recorded FROM callback_settle($1, $2, $3, $4, $5, $6)")
        .bind(sids)
        .bind(attempts)
        .bind(statuses)
        .bind(codes)
        .bind(errors)
        .bind(retries)
        .fetch_all(db)
        .await
}

/// Deletes up to `limit` delivered or failed events last changed more than `retention` ago,
/// except each room's last event (the next one's `SequenceNumber` follows it). How many.
pub async fn prune(
    db: impl PgExecutor<'_>,
    retention: Duration,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM callback_events WHERE sid IN ( \
            SELECT e.sid FROM callback_events e \
            WHERE e.status <> 'pending' AND e.date_updated < now() - make_interval(secs => $1) \
            AND EXISTS (SELECT 1 FROM callback_events n \
                        WHERE n.room_sid = e.room_sid AND n.sequence_number > e.sequence_number) \
            ORDER BY e.date_updated LIMIT $2 FOR UPDATE SKIP LOCKED)",
    )
    .bind(retention.as_secs_f64())
    .bind(limit)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Gives leased events back at once (a dispatcher stopping with deliveries unfinished): as if
/// the attempt had not been made.
pub async fn release(db: impl PgExecutor<'_>, claims: &[(String, i32)]) -> Result<(), sqlx::Error> {
    let (sids, attempts): (Vec<&str>, Vec<i32>) =
        claims.iter().map(|(s, a)| (s.as_str(), *a)).unzip();
    sqlx::query(
        "UPDATE callback_events e SET attempts = e.attempts - 1, next_attempt = now(), \
            date_updated = now() \
         FROM unnest($1::text[], $2::integer[]) AS c(sid, attempts) \
         WHERE e.sid = c.sid AND e.attempts = c.attempts AND e.status = 'pending'",
    )
    .bind(sids)
    .bind(attempts)
    .execute(db)
    .await?;
    Ok(())
}

/// Registers a dispatcher, or says whether it is idle (a commit notifies only while one is),
/// and that it is alive. Rows of dispatchers gone for an hour are cleared.
pub async fn set_idle(db: impl PgExecutor<'_>, id: &str, idle: bool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH gone AS (DELETE FROM callback_dispatchers WHERE seen < now() - interval '1 hour') \
         INSERT INTO callback_dispatchers (id, idle, seen) VALUES ($1, $2, now()) \
         ON CONFLICT (id) DO UPDATE SET idle = EXCLUDED.idle, seen = EXCLUDED.seen",
    )
    .bind(id)
    .bind(idle)
    .execute(db)
    .await?;
    Ok(())
}

/// A dispatcher that stops.
pub async fn unregister(db: impl PgExecutor<'_>, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM callback_dispatchers WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}
