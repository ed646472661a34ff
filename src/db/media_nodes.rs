//! The Janus nodes (`media_nodes`): registering them, placing rooms on them, the reconcile
//! lease, and what a node that stops answering implies.

use super::participants::{disconnect_sql, EndReason};
use sqlx::{PgExecutor, PgPool};
use std::sync::LazyLock;

/// A node as stored; its secrets sealed under the master key (the node's name as associated
/// data).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NodeRow {
    pub name: String,
    pub admin_url: String,
    pub client_url: String,
    pub admin_secret: Vec<u8>,
    pub room_admin_key: Vec<u8>,
    pub owner: Option<String>,
    pub up: bool,
}

const COLUMNS: &str = "name, admin_url, client_url, admin_secret, room_admin_key, owner, up";

impl NodeRow {
    /// `name` if it is a node name (what `media_nodes_name_format` allows).
    pub fn valid_name(name: &str) -> Option<&str> {
        ((1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)))
        .then_some(name)
    }
}

/// Registers a node, or updates one of that name (an external node at each start).
pub async fn upsert(pool: &PgPool, node: &NodeRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO media_nodes (name, admin_url, client_url, admin_secret, room_admin_key, owner, up) \
         VALUES ($1, $2, $3, $4, $5, $6, true) \
         ON CONFLICT (name) DO UPDATE SET admin_url = EXCLUDED.admin_url, \
            client_url = EXCLUDED.client_url, admin_secret = EXCLUDED.admin_secret, \
            room_admin_key = EXCLUDED.room_admin_key, owner = EXCLUDED.owner, \
            date_updated = now()",
    )
    .bind(&node.name)
    .bind(&node.admin_url)
    .bind(&node.client_url)
    .bind(&node.admin_secret)
    .bind(&node.room_admin_key)
    .bind(&node.owner)
    .execute(pool)
    .await
    .map(drop)
}

/// A node by name.
pub async fn find(db: impl PgExecutor<'_>, name: &str) -> Result<Option<NodeRow>, sqlx::Error> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {COLUMNS} FROM media_nodes WHERE name = $1"));
    sqlx::query_as(&SQL).bind(name).fetch_optional(db).await
}

/// The node a room in progress is placed on, if any.
pub async fn node_of_room(
    db: impl PgExecutor<'_>,
    room_sid: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT media_node FROM rooms WHERE sid = $1 AND status = 'in-progress'")
        .bind(room_sid)
        .fetch_optional(db)
        .await
        .map(Option::flatten)
}

/// The nodes a process drives: the external ones and its own embedded one.
pub async fn driven_by(pool: &PgPool, owner: &str) -> Result<Vec<NodeRow>, sqlx::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!("SELECT {COLUMNS} FROM media_nodes WHERE owner IS NULL OR owner = $1 ORDER BY name")
    });
    sqlx::query_as(&SQL).bind(owner).fetch_all(pool).await
}

/// Places a room on a node unless it has one: the node of this process's choice with the
/// fewest rooms in progress, among those that answer. Runs in the join's transaction, with the
/// room's row locked. `None`: no node is up.
pub async fn place_room(
    db: impl PgExecutor<'_>,
    room_sid: &str,
    owner: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE rooms SET media_node = COALESCE(media_node, ( \
            SELECT n.name FROM media_nodes n WHERE n.up AND (n.owner IS NULL OR n.owner = $2) \
            ORDER BY (SELECT count(*) FROM rooms r WHERE r.media_node = n.name AND r.status = 'in-progress'), \
                n.name \
            LIMIT 1)) \
         WHERE sid = $1 RETURNING media_node",
    )
    .bind(room_sid)
    .bind(owner)
    .fetch_one(db)
    .await
}

/// Takes the node's reconcile lease for `seconds` unless another process holds it.
pub async fn take_lease(pool: &PgPool, name: &str, seconds: f64) -> Result<bool, sqlx::Error> {
    let taken: Option<String> = sqlx::query_scalar(
        "UPDATE media_nodes SET reconcile_until = now() + make_interval(secs => $2) \
         WHERE name = $1 AND reconcile_until < now() RETURNING name",
    )
    .bind(name)
    .bind(seconds)
    .fetch_optional(pool)
    .await?;
    Ok(taken.is_some())
}

/// Records that a node answers (again).
pub async fn mark_up(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE media_nodes SET up = true, date_updated = now() WHERE name = $1 AND NOT up")
        .bind(name)
        .execute(pool)
        .await
        .map(drop)
}

/// A node that stopped answering (or is going away): nothing is placed there any more, the
/// participants admitted there are disconnected (`media_lost`, with their callbacks), and its
/// rooms in progress are placed anew by their next join. Returns the participants disconnected.
pub async fn mark_down(pool: &PgPool, name: &str) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE media_nodes SET up = false, date_updated = now() WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let gone = disconnect_media_participants(&mut tx, "p.media_node = $1", name).await?;
    sqlx::query(
        "UPDATE rooms SET media_node = NULL WHERE media_node = $1 AND status = 'in-progress'",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    // Nothing is left to tell a node that is gone.
    sqlx::query("DELETE FROM media_commands WHERE node = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM media_handles WHERE node = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(gone)
}

/// Removes an embedded node at its process's exit (after `mark_down`).
pub async fn remove(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM media_nodes WHERE name = $1")
        .bind(name)
        .execute(pool)
        .await
        .map(drop)
}

/// Disconnects (`media_lost`) the connected participants `condition` selects (`$1` bound to
/// `value`), their rooms locked first in SID order (the lock order every change keeps).
pub(super) async fn disconnect_media_participants(
    conn: &mut sqlx::PgConnection,
    condition: &str,
    value: &str,
) -> Result<u64, sqlx::Error> {
    sqlx::query(&format!(
        "SELECT 1 FROM rooms WHERE sid IN (SELECT p.room_sid FROM participants p \
            WHERE {condition} AND p.status = 'connected') ORDER BY sid FOR UPDATE"
    ))
    .bind(value)
    .execute(&mut *conn)
    .await?;
    let gone = sqlx::query(&disconnect_sql(condition, EndReason::MediaLost))
        .bind(value)
        .execute(&mut *conn)
        .await?;
    Ok(gone.rows_affected())
}

/// A room in progress on a node, as the reconciler compares it with Janus.
#[derive(Debug, sqlx::FromRow)]
pub struct PlacedRoom {
    pub sid: String,
    pub video_codecs: Vec<String>,
    pub max_participants: i32,
    pub max_concurrent_published_tracks: i32,
    /// The connected participants admitted there.
    pub admitted: Vec<String>,
    /// Those of them whose publisher joined there.
    pub joined: Vec<String>,
    /// Whether its recording rules record anything (the node then records the room).
    pub records: bool,
}

/// The rooms in progress on a node.
pub async fn placed_rooms(pool: &PgPool, node: &str) -> Result<Vec<PlacedRoom>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.sid, r.video_codecs, r.max_participants, r.max_concurrent_published_tracks, \
            COALESCE(array_agg(p.sid) FILTER (WHERE p.sid IS NOT NULL), '{}') AS admitted, \
            COALESCE(array_agg(p.sid) FILTER (WHERE p.media_joined_at IS NOT NULL), '{}') AS joined, \
            EXISTS (SELECT 1 FROM jsonb_array_elements(room_recording_rules(r.recording_rules, \
                r.record_participants_on_connect)) x WHERE x->>'type' = 'include') AS records \
         FROM rooms r LEFT JOIN participants p \
            ON p.room_sid = r.sid AND p.status = 'connected' AND p.media_node = r.media_node \
         WHERE r.media_node = $1 AND r.status = 'in-progress' \
         GROUP BY r.sid ORDER BY r.sid",
    )
    .bind(node)
    .fetch_all(pool)
    .await
}

/// Which of `participants` are connected on the node now.
pub async fn connected_among(
    pool: &PgPool,
    node: &str,
    participants: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT sid FROM participants WHERE sid = ANY($1) AND media_node = $2 AND status = 'connected'",
    )
    .bind(participants)
    .bind(node)
    .fetch_all(pool)
    .await
}

/// Disconnects (`media_lost`) participants the node no longer has: those of `participants`
/// still connected there and whose publisher had joined.
pub async fn media_gone(pool: &PgPool, participants: &[String]) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let gone = disconnect_media_participants(
        &mut tx,
        "p.media_joined_at IS NOT NULL AND p.sid = ANY(string_to_array($1, ','))",
        &participants.join(","),
    )
    .await?;
    tx.commit().await?;
    Ok(gone)
}

/// Which of `rooms` are in progress on the node now.
pub async fn in_progress_among(
    pool: &PgPool,
    node: &str,
    rooms: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT sid FROM rooms WHERE sid = ANY($1) AND media_node = $2 AND status = 'in-progress'",
    )
    .bind(rooms)
    .bind(node)
    .fetch_all(pool)
    .await
}
