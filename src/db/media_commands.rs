//! What roomd still has to tell a node (`media_commands`, written by triggers when a
//! participant admitted to media is disconnected or a room with media ends): claimed with a
//! lease (no transaction stays open while Janus is called), deleted when applied.

use sqlx::PgPool;

/// A claimed command, with what applying it needs.
#[derive(Debug)]
pub struct Command {
    pub id: i64,
    pub node: String,
    pub room_sid: String,
    /// `None`: the room ended.
    pub participant_sid: Option<String>,
    pub attempts: i32,
    /// The participants whose tokens are revoked (the one, or every one the room admitted).
    pub participants: Vec<String>,
    /// Their Janus handles `(session, handle)`, to hang up and close.
    pub handles: Vec<(i64, i64)>,
}

/// How long a claim holds a command before another process may take it.
const LEASE_SECONDS: f64 = 30.0;
/// Attempts before a command is dropped (the reconciler repairs what it left).
pub const MAX_ATTEMPTS: i32 = 5;

/// Claims up to `limit` due commands for `nodes`.
pub async fn claim(
    pool: &PgPool,
    nodes: &[String],
    limit: i64,
) -> Result<Vec<Command>, sqlx::Error> {
    let claimed: Vec<(i64, String, String, Option<String>, i32)> = sqlx::query_as(
        "UPDATE media_commands SET not_before = now() + make_interval(secs => $3), attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM media_commands WHERE not_before <= now() AND node = ANY($1) \
                      ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING id, node, room_sid, participant_sid, attempts",
    )
    .bind(nodes)
    .bind(limit)
    .bind(LEASE_SECONDS)
    .fetch_all(pool)
    .await?;
    let mut commands = Vec::with_capacity(claimed.len());
    for (id, node, room_sid, participant_sid, attempts) in claimed {
        let participants: Vec<String> = match &participant_sid {
            Some(p) => vec![p.clone()],
            None => {
                sqlx::query_scalar(
                    "SELECT sid FROM participants WHERE room_sid = $1 AND media_node = $2",
                )
                .bind(&room_sid)
                .bind(&node)
                .fetch_all(pool)
                .await?
            }
        };
        let handles: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT session_id, handle_id FROM media_handles \
             WHERE node = $1 AND participant_sid = ANY($2) ORDER BY session_id, handle_id",
        )
        .bind(&node)
        .bind(&participants)
        .fetch_all(pool)
        .await?;
        commands.push(Command {
            id,
            node,
            room_sid,
            participant_sid,
            attempts,
            participants,
            handles,
        });
    }
    Ok(commands)
}

/// A command applied: it and the handles it closed are forgotten.
pub async fn done(pool: &PgPool, command: &Command) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM media_commands WHERE id = $1")
        .bind(command.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM media_handles WHERE node = $1 AND participant_sid = ANY($2)")
        .bind(&command.node)
        .bind(&command.participants)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

/// A command that failed: tried again after a pause that doubles, or dropped after
/// `MAX_ATTEMPTS`.
pub async fn failed(pool: &PgPool, command: &Command) -> Result<(), sqlx::Error> {
    if command.attempts >= MAX_ATTEMPTS {
        return done(pool, command).await;
    }
    sqlx::query(
        "UPDATE media_commands SET not_before = now() + make_interval(secs => $2) WHERE id = $1",
    )
    .bind(command.id)
    .bind(0.5 * f64::from(1 << command.attempts.clamp(0, 10)))
    .execute(pool)
    .await
    .map(drop)
}
