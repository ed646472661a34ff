//! The media plane: Janus WebRTC Server nodes that roomd drives. roomd decides in PostgreSQL
//! first (admission, kicks, room ends), then tells the room's node (`janus`: its Admin API);
//! each node's events come back to `events` and change the database idempotently; `worker`
//! applies what the database says a node must be told (`media_commands`) and converges each node
//! with the database. `embedded` runs a Janus of roomd's own. Nothing here holds a database
//! transaction open while it waits on Janus.

pub mod compose;
pub mod composition_jobs;
pub mod convert;
pub mod embedded;
pub mod events;
pub mod janus;
pub mod janus_config;
pub mod janus_sessions;
pub mod layout;
pub mod mjr;
pub mod recording;
pub mod recording_jobs;
pub mod replies;
pub mod tokens;
pub mod worker;

use crate::auth::master_key::MasterKey;
use crate::db::media_nodes::{self, NodeRow};
use crate::db::rooms::RoomRow;
use janus::{JanusAdmin, JanusError, RoomSpec};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokens::MediaSecrets;

/// A node roomd can call.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub admin: JanusAdmin,
    pub client_url: String,
    /// What its event handler posts with (its admin secret: both sides know it already).
    events_password: SecretString,
}

impl Node {
    /// Whether `given` is the node's event-handler password (compared in constant time).
    pub fn events_password_matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.events_password
            .expose_secret()
            .as_bytes()
            .ct_eq(given.as_bytes())
            .into()
    }
}

/// What a participant admitted to media is given: where janus.js connects, the token it uses
/// (as its session token and in the VideoRoom `join`), the room to join, and its publisher id.
#[derive(Serialize)]
pub struct MediaGrant {
    pub url: String,
    #[serde(serialize_with = "expose")]
    pub token: SecretString,
    pub room: String,
    pub id: String,
}

fn expose<S: serde::Serializer>(token: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(token.expose_secret())
}

/// The media plane as one process sees it.
pub struct MediaPlane {
    /// Connections of its own (events, the worker, node lookups).
    pub pool: PgPool,
    /// This process, as the owner of its embedded node.
    pub owner: String,
    pub secrets: MediaSecrets,
    master: Arc<MasterKey>,
    http: reqwest::Client,
    nodes: RwLock<HashMap<String, Arc<Node>>>,
    /// Seconds a participant has to join its room's media (`None`: no limit).
    pub connect_timeout: Option<Duration>,
    /// Where the nodes write their rooms' stream files and roomd keeps converted recordings
    /// (absolute; the same path on every node and process: one shared volume).
    pub media_dir: std::path::PathBuf,
    /// Signalled when a node restarted (its `started` event): the worker converges it at once.
    pub restarted: tokio::sync::Notify,
    /// When a name not in `nodes` was last looked up (at most one such lookup a second: the
    /// events endpoint must not let anyone make roomd query the database at will).
    last_miss: std::sync::Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for MediaPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaPlane")
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl MediaPlane {
    pub fn new(
        pool: PgPool,
        master: Arc<MasterKey>,
        connect_timeout: Option<Duration>,
        media_dir: std::path::PathBuf,
    ) -> MediaPlane {
        MediaPlane {
            pool,
            owner: format!("roomd-{}", &crate::domain::sid::random_hex32()[..12]),
            secrets: MediaSecrets::new(&master),
            master,
            http: JanusAdmin::client(),
            nodes: RwLock::new(HashMap::new()),
            connect_timeout,
            media_dir,
            restarted: tokio::sync::Notify::new(),
            last_miss: std::sync::Mutex::new(None),
        }
    }

    /// Registers a node (sealing its secrets) and keeps its client.
    pub async fn register(
        &self,
        name: &str,
        admin_url: &str,
        client_url: &str,
        admin_secret: SecretString,
        room_admin_key: SecretString,
        embedded: bool,
    ) -> Result<(), sqlx::Error> {
        let row = NodeRow {
            name: name.to_string(),
            admin_url: admin_url.to_string(),
            client_url: client_url.to_string(),
            admin_secret: self
                .master
                .seal(name, admin_secret.expose_secret().as_bytes()),
            room_admin_key: self
                .master
                .seal(name, room_admin_key.expose_secret().as_bytes()),
            owner: embedded.then(|| self.owner.clone()),
            up: true,
        };
        media_nodes::upsert(&self.pool, &row).await?;
        self.forget(name);
        Ok(())
    }

    /// A node's client, from the cache or the database.
    pub async fn node(&self, name: &str) -> anyhow::Result<Arc<Node>> {
        if let Some(node) = self.nodes.read().expect("not poisoned").get(name) {
            return Ok(node.clone());
        }
        let row = media_nodes::find(&self.pool, name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("media node {name} is not registered"))?;
        let node = Arc::new(self.client(&row)?);
        self.nodes
            .write()
            .expect("not poisoned")
            .insert(name.to_string(), node.clone());
        Ok(node)
    }

    /// A client for a stored node (its secrets opened).
    pub fn client(&self, row: &NodeRow) -> anyhow::Result<Node> {
        let open = |sealed: &[u8]| -> anyhow::Result<SecretString> {
            let secret = self.master.open(&row.name, sealed).map_err(|_| {
                anyhow::anyhow!(
                    "the secrets of media node {} do not open under this master key",
                    row.name
                )
            })?;
            Ok(String::from_utf8_lossy(secret.expose_secret())
                .into_owned()
                .into())
        };
        let admin_secret = open(&row.admin_secret)?;
        Ok(Node {
            name: row.name.clone(),
            admin: JanusAdmin::new(
                self.http.clone(),
                row.admin_url.clone(),
                admin_secret.clone(),
                open(&row.room_admin_key)?,
            ),
            client_url: row.client_url.clone(),
            events_password: admin_secret,
        })
    }

    /// A node's client for the events endpoint: from the cache, or (at most once a second for
    /// names not cached) from the database.
    pub async fn known_node(&self, name: &str) -> Option<Arc<Node>> {
        if let Some(node) = self.nodes.read().expect("not poisoned").get(name) {
            return Some(node.clone());
        }
        {
            let mut last = self.last_miss.lock().expect("not poisoned");
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return None;
            }
            *last = Some(std::time::Instant::now());
        }
        self.node(name).await.ok()
    }

    pub fn forget(&self, name: &str) {
        self.nodes.write().expect("not poisoned").remove(name);
    }

    /// Admits a participant to its room's media on `node`: creates the Janus room on first
    /// need (publishers bounded by the room, its video codecs), adds the participant's token to
    /// Janus and to the room's `allowed` list.
    pub async fn admit(
        &self,
        node: &Node,
        room: &RoomRow,
        participant_sid: &str,
    ) -> Result<MediaGrant, JanusError> {
        let token = self.secrets.token(participant_sid);
        let secret = self.secrets.room_secret(&room.sid);
        let spec = RoomSpec {
            room: &room.sid,
            secret: &secret,
            publishers: publishers(room.max_participants, room.max_concurrent_published_tracks),
            video_codecs: &room.video_codecs,
            allowed: vec![token.expose_secret().to_string()],
            record: false,
            rec_dir: self.rec_dir(&room.sid),
        };
        // Most joins find their room on the node already: admit the token to it first, and
        // create the room (with the token) only when Janus says it has none.
        let (allowed, added) = tokio::join!(
            node.admin.allowed(&room.sid, &secret, "add", &spec.allowed),
            node.admin.add_token(&token)
        );
        added?;
        match allowed {
            Ok(()) => {}
            Err(JanusError::Refused {
                code: janus::plugin_code::NO_SUCH_ROOM,
                ..
            }) => {
                // A failed read leaves the room unrecorded until convergence repairs it.
                let record = crate::db::recordings::room_records(&self.pool, &room.sid)
                    .await
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "reading whether a room records failed"),
                    )
                    .unwrap_or(false);
                node.admin.ensure_room(&RoomSpec { record, ..spec }).await?
            }
            Err(e) => return Err(e),
        }
        Ok(MediaGrant {
            url: node.client_url.clone(),
            token,
            room: room.sid.clone(),
            id: participant_sid.to_string(),
        })
    }
}

impl MediaPlane {
    /// Admits a participant a join just placed on `node` (after the join committed: no
    /// transaction waits on Janus). If the node does not take it, the participant is
    /// disconnected again (`media_lost`, with its callbacks) and the error says why.
    pub async fn admit_joined(
        &self,
        node: &str,
        joined: &crate::db::participant_join::Joined,
    ) -> anyhow::Result<MediaGrant> {
        let p = &joined.participant;
        let admitted = match self.node(node).await {
            Ok(n) => self
                .admit(&n, &joined.room, &p.sid)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        let e = match admitted {
            Ok(grant) => return Ok(grant),
            Err(e) => e,
        };
        tracing::warn!(error = %e, node, participant_sid = %p.sid, "the media node did not admit a participant: disconnected again");
        let undone = crate::db::transaction(&self.pool, async |c| {
            crate::db::media_events::left(
                c,
                node,
                &p.room_sid,
                &p.sid,
                crate::db::participants::EndReason::MediaLost,
            )
            .await
        })
        .await;
        if let Err(e) = undone {
            tracing::warn!(error = %e, participant_sid = %p.sid, "disconnecting a participant the media node refused failed");
        }
        Err(e.context(format!(
            "the media node {node} did not admit the participant"
        )))
    }
}

/// Janus's bound on active publishers: one per participant, and no more than the room's
/// published-track bound (0: none).
pub fn publishers(max_participants: i32, max_tracks: i32) -> u32 {
    let participants = max_participants.max(1) as u32;
    if max_tracks > 0 {
        participants.min(max_tracks as u32)
    } else {
        participants
    }
}
