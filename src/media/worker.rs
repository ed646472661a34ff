//! The media worker (one per process, on its own connections): applies what the database says a
//! node must be told (`media_commands`: a participant's or a room's media to end), disconnects
//! participants whose media never came (`ROOMD_MEDIA_CONNECT_TIMEOUT`), watches that each node
//! answers, and converges each node with the database. `LISTEN roomd_media` wakes it when a
//! command commits; polling is the safety net.

use super::janus::JanusError;
use super::replies::close_sessions;
use super::{MediaPlane, Node};
use crate::db::media_commands::{self, Command};
use crate::db::media_nodes;
use secrecy::ExposeSecret;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the worker paces itself.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// How often each node is pinged and converged.
    pub reconcile_every: Duration,
    /// Failed pings in a row after which a node is down.
    pub down_after: u32,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            reconcile_every: Duration::from_secs(5),
            down_after: 3,
        }
    }
}

/// Commands applied at once, per process.
const CONCURRENCY: i64 = 16;

/// Runs until `shutdown` resolves.
pub async fn run(
    pool: PgPool,
    plane: Arc<MediaPlane>,
    settings: WorkerSettings,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut listener = match PgListener::connect_with(&pool).await {
        Ok(mut l) => match l.listen("roomd_media").await {
            Ok(()) => Some(l),
            Err(_) => None,
        },
        Err(_) => None,
    };
    let mut failures: HashMap<String, u32> = HashMap::new();
    let mut reconciled = Instant::now() - settings.reconcile_every;
    loop {
        let nodes = match media_nodes::driven_by(&pool, &plane.owner).await {
            Ok(nodes) => nodes,
            Err(e) => {
                tracing::warn!(error = %e, "media worker: reading the nodes failed");
                Vec::new()
            }
        };
        let names: Vec<String> = nodes
            .iter()
            .filter(|n| n.up || n.owner.is_some())
            .map(|n| n.name.clone())
            .collect();
        apply_commands(&pool, &plane, &names).await;
        if let Err(e) = sweep_deadlines(&pool).await {
            tracing::warn!(error = %e, "media worker: the media deadline sweep failed");
        }
        if reconciled.elapsed() >= settings.reconcile_every {
            reconciled = Instant::now();
            for row in &nodes {
                check_node(&pool, &plane, row, &mut failures, settings).await;
            }
        }
        let wake = async {
            match listener.as_mut() {
                Some(l) => match tokio::time::timeout(Duration::from_secs(1), l.recv()).await {
                    // A notification, or a second without one.
                    Ok(Ok(_)) | Err(_) => {}
                    // The listening connection failed (and could not reconnect at once): poll
                    // at the safety net's pace until it comes back.
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(500)).await,
                },
                None => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        tokio::select! {
            _ = wake => {}
            _ = plane.restarted.notified() => {
                reconciled = Instant::now() - settings.reconcile_every;
            }
            _ = &mut shutdown => return,
        }
    }
}

async fn sweep_deadlines(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let gone = crate::db::media_events::sweep_media_deadlines(&mut tx).await?;
    tx.commit().await?;
    if gone > 0 {
        tracing::info!(
            participants = gone,
            "participants whose media never came were disconnected"
        );
    }
    Ok(())
}

/// Claims and applies due commands, a batch at a time, concurrently.
async fn apply_commands(pool: &PgPool, plane: &Arc<MediaPlane>, nodes: &[String]) {
    if nodes.is_empty() {
        return;
    }
    loop {
        let batch = match media_commands::claim(pool, nodes, CONCURRENCY).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "media worker: claiming commands failed");
                return;
            }
        };
        let full = batch.len() as i64 == CONCURRENCY;
        let mut running = tokio::task::JoinSet::new();
        for command in batch {
            let (pool, plane) = (pool.clone(), plane.clone());
            running.spawn(async move {
                let result = match plane.node(&command.node).await {
                    Ok(node) => apply(&plane, &node, &command).await.map_err(anyhow::Error::from),
                    Err(e) => Err(e),
                };
                let recorded = match result {
                    Ok(()) => media_commands::done(&pool, &command).await,
                    Err(e) => {
                        tracing::warn!(error = %e, node = %command.node, room_sid = %command.room_sid, attempt = command.attempts, "ending media on a node failed");
                        media_commands::failed(&pool, &command).await
                    }
                };
                if let Err(e) = recorded {
                    tracing::warn!(error = %e, "media worker: recording a command's outcome failed");
                }
            });
        }
        while running.join_next().await.is_some() {}
        if !full {
            return;
        }
    }
}

/// Ends a participant's media (kick, revoke its token, close its sessions) or a room's
/// (close every session in it, destroy it, revoke every token it admitted).
async fn apply(plane: &MediaPlane, node: &Node, command: &Command) -> Result<(), JanusError> {
    let admin = &node.admin;
    let secret = plane.secrets.room_secret(&command.room_sid);
    let handles: Vec<(u64, u64)> = command
        .handles
        .iter()
        .map(|&(s, h)| (s as u64, h as u64))
        .collect();
    let tokens: Vec<_> = command
        .participants
        .iter()
        .map(|p| plane.secrets.token(p))
        .collect();
    match &command.participant_sid {
        Some(participant) => {
            let listed: Vec<String> = tokens
                .iter()
                .map(|t| t.expose_secret().to_string())
                .collect();
            match admin
                .allowed(&command.room_sid, &secret, "remove", &listed)
                .await
            {
                Err(JanusError::Refused {
                    code: super::janus::plugin_code::NO_SUCH_ROOM,
                    ..
                })
                | Ok(()) => {}
                Err(e) => return Err(e),
            }
            for token in &tokens {
                admin.remove_token(token).await?;
            }
            admin.kick(&command.room_sid, &secret, participant).await?;
            close_sessions(admin, &handles, &[]).await
        }
        None => {
            close_sessions(admin, &handles, &[]).await?;
            admin.destroy_room(&command.room_sid, &secret).await?;
            for token in &tokens {
                admin.remove_token(token).await?;
            }
            Ok(())
        }
    }
}

/// Pings a node (marking it down after `down_after` failures in a row, up when it answers
/// again) and, holding its lease, converges it with the database.
async fn check_node(
    pool: &PgPool,
    plane: &MediaPlane,
    row: &media_nodes::NodeRow,
    failures: &mut HashMap<String, u32>,
    settings: WorkerSettings,
) {
    let node = match plane.client(row) {
        Ok(node) => node,
        Err(e) => {
            tracing::warn!(error = %e, node = %row.name, "media node skipped");
            return;
        }
    };
    match node.admin.ping().await {
        Ok(()) => {
            failures.remove(&row.name);
            if !row.up {
                tracing::info!(node = %row.name, "media node answers again");
                let _ = media_nodes::mark_up(pool, &row.name).await;
            }
        }
        Err(e) => {
            let n = failures.entry(row.name.clone()).or_default();
            *n += 1;
            if *n == settings.down_after && row.up {
                tracing::warn!(node = %row.name, error = %e, "media node stopped answering: its participants are disconnected, its rooms placed anew");
                match media_nodes::mark_down(pool, &row.name).await {
                    Ok(gone) => {
                        tracing::info!(node = %row.name, participants = gone, "media node marked down")
                    }
                    Err(e) => tracing::warn!(error = %e, "marking a media node down failed"),
                }
            }
            return;
        }
    }
    let lease = settings.reconcile_every.as_secs_f64().max(1.0);
    match media_nodes::take_lease(pool, &row.name, lease).await {
        Ok(true) => {
            if let Err(e) = reconcile(pool, plane, &node).await {
                tracing::warn!(error = %e, node = %row.name, "converging a media node failed");
            }
        }
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "taking a media node's lease failed"),
    }
}

/// Converges a node with the database. The database is read first, Janus second: a participant
/// the database had joined and Janus no longer has left (its media is gone); one Janus has and
/// the database does not is checked again before it is kicked (it may have joined since).
/// Rooms Janus lacks (it restarted) are created again, with the tokens of the participants who
/// had not joined yet; those who had are disconnected.
pub async fn reconcile(pool: &PgPool, plane: &MediaPlane, node: &Node) -> anyhow::Result<()> {
    let admin = &node.admin;
    let placed = media_nodes::placed_rooms(pool, &node.name).await?;
    let recording = admin.rooms_recording().await?;
    let on_janus: HashSet<String> = recording.keys().cloned().collect();
    let held: HashSet<String> = admin.tokens().await?.into_iter().collect();
    let mut lost = Vec::new();
    let mut kick = Vec::new();
    for room in &placed {
        let secret = plane.secrets.room_secret(&room.sid);
        let participants = if on_janus.contains(&room.sid) {
            admin.participants(&room.sid).await?
        } else {
            None
        };
        let waiting: Vec<&String> = room
            .admitted
            .iter()
            .filter(|p| !room.joined.contains(p))
            .collect();
        match participants {
            None => {
                // Janus lost the room: whoever had joined lost their media.
                lost.extend(room.joined.iter().cloned());
                let spec = super::janus::RoomSpec {
                    room: &room.sid,
                    secret: &secret,
                    publishers: super::publishers(
                        room.max_participants,
                        room.max_concurrent_published_tracks,
                    ),
                    video_codecs: &room.video_codecs,
                    allowed: waiting
                        .iter()
                        .map(|p| plane.secrets.token(p).expose_secret().to_string())
                        .collect(),
                    record: room.records,
                    rec_dir: plane.rec_dir(&room.sid),
                };
                admin.ensure_room(&spec).await?;
            }
            Some(ids) => {
                if recording.get(&room.sid) != Some(&room.records) {
                    admin
                        .enable_recording(&room.sid, &secret, room.records)
                        .await?;
                }
                let ids: HashSet<String> = ids.into_iter().collect();
                lost.extend(room.joined.iter().filter(|p| !ids.contains(*p)).cloned());
                for id in ids {
                    if !room.admitted.contains(&id) {
                        kick.push((room.sid.clone(), id));
                    }
                }
            }
        }
        for p in waiting {
            let token = plane.secrets.token(p);
            if !held.contains(token.expose_secret()) {
                admin.add_token(&token).await?;
            }
        }
    }
    if !lost.is_empty() {
        let gone = media_nodes::media_gone(pool, &lost).await?;
        tracing::info!(node = %node.name, participants = gone, "participants whose media the node no longer has were disconnected");
    }
    if !kick.is_empty() {
        let ids: Vec<String> = kick.iter().map(|(_, id)| id.clone()).collect();
        let still = media_nodes::connected_among(pool, &node.name, &ids).await?;
        for (room, id) in kick.into_iter().filter(|(_, id)| !still.contains(id)) {
            tracing::info!(node = %node.name, room_sid = %room, participant = %id, "kicking a participant the database says is gone");
            admin
                .kick(&room, &plane.secrets.room_secret(&room), &id)
                .await?;
        }
    }
    // Rooms Janus has that are not in progress here (read again: one may have been placed
    // since): destroyed.
    let in_progress: HashSet<&str> = placed.iter().map(|r| r.sid.as_str()).collect();
    let others: Vec<String> = on_janus
        .iter()
        .filter(|r| !in_progress.contains(r.as_str()))
        .cloned()
        .collect();
    if !others.is_empty() {
        let still = media_nodes::in_progress_among(pool, &node.name, &others).await?;
        for room in others.iter().filter(|r| !still.contains(r)) {
            admin
                .destroy_room(room, &plane.secrets.room_secret(room))
                .await?;
        }
    }
    // Tokens of participants who are not connected any more: revoked.
    let tokens: Vec<&String> = held
        .iter()
        .filter(|t| plane.secrets.participant_of(t).is_some())
        .collect();
    if !tokens.is_empty() {
        let owners: Vec<String> = tokens
            .iter()
            .filter_map(|t| plane.secrets.participant_of(t).map(str::to_string))
            .collect();
        let connected = media_nodes::connected_among(pool, &node.name, &owners).await?;
        for token in tokens {
            let owner = plane.secrets.participant_of(token).unwrap_or_default();
            if !connected.iter().any(|c| c == owner) {
                admin.remove_token(&token.clone().into()).await?;
            }
        }
    }
    Ok(())
}
