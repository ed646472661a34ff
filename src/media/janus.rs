//! A Janus node's Admin API, the only way roomd talks to Janus: tokens (`add_token`,
//! `remove_token`, `list_tokens`), sessions (`list_sessions`, `hangup_webrtc`,
//! `destroy_session`) and, through `message_plugin`, every VideoRoom request roomd makes, so
//! roomd needs no Janus session of its own. Every call has a short timeout: a node that does not
//! answer is a failed call, never a stalled worker or request.

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::time::Duration;

/// How long one Admin API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// The most roomd reads of one Admin API answer (a `list` of many rooms stays far below).
const MAX_ANSWER_BYTES: usize = 8 << 20;
pub const VIDEOROOM: &str = "janus.plugin.videoroom";

/// Why a call failed.
#[derive(Debug)]
pub enum JanusError {
    /// No answer (connection refused, timeout, not JSON): the node may be down.
    Unreachable(String),
    /// Janus or the plugin answered with an error.
    Refused { code: i64, reason: String },
}

impl std::fmt::Display for JanusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JanusError::Unreachable(why) => write!(f, "Janus did not answer: {why}"),
            JanusError::Refused { code, reason } => write!(f, "Janus refused ({code}): {reason}"),
        }
    }
}

impl std::error::Error for JanusError {}

/// VideoRoom error codes roomd acts on.
pub mod plugin_code {
    pub const NO_SUCH_ROOM: i64 = 426;
    pub const ROOM_EXISTS: i64 = 427;
    pub const NO_SUCH_FEED: i64 = 428;
}
/// Janus core error codes roomd acts on.
pub mod core_code {
    pub const SESSION_NOT_FOUND: i64 = 458;
    pub const HANDLE_NOT_FOUND: i64 = 459;
    pub const TOKEN_NOT_FOUND: i64 = 470;
}

/// One node's Admin API, with its secrets. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct JanusAdmin {
    http: reqwest::Client,
    url: String,
    admin_secret: std::sync::Arc<SecretString>,
    room_admin_key: std::sync::Arc<SecretString>,
}

impl std::fmt::Debug for JanusAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JanusAdmin")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A room as roomd creates it on Janus.
pub struct RoomSpec<'a> {
    pub room: &'a str,
    pub secret: &'a SecretString,
    /// Active publishers at once (Janus's default is 3).
    pub publishers: u32,
    pub video_codecs: &'a [String],
    /// Tokens admitted from the start.
    pub allowed: Vec<String>,
    /// Whether Janus records the room's streams (into `rec_dir`, one file per stream).
    pub record: bool,
    pub rec_dir: String,
}

impl JanusAdmin {
    pub fn new(
        http: reqwest::Client,
        url: String,
        admin_secret: SecretString,
        room_admin_key: SecretString,
    ) -> JanusAdmin {
        JanusAdmin {
            http,
            url,
            admin_secret: std::sync::Arc::new(admin_secret),
            room_admin_key: std::sync::Arc::new(room_admin_key),
        }
    }

    /// An HTTP client for Admin API calls: no proxy, no redirects, bounded connecting.
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .timeout(CALL_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("a client without TLS settings builds")
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// One Admin API request: `{"janus": what, ...fields, "transaction", "admin_secret"}`. An
    /// answer other than `success` is `Refused` with Janus's code.
    pub(super) async fn call(&self, what: &str, fields: Value) -> Result<Value, JanusError> {
        let mut body = match fields {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        body.insert("janus".into(), what.into());
        body.insert("transaction".into(), transaction().into());
        body.insert(
            "admin_secret".into(),
            self.admin_secret.expose_secret().into(),
        );
        let unreachable = |e: reqwest::Error| JanusError::Unreachable(e.without_url().to_string());
        let mut response = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(Value::Object(body).to_string())
            .send()
            .await
            .map_err(unreachable)?;
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(JanusError::Unreachable("answer too large".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|_| JanusError::Unreachable("answer is not JSON".into()))?;
        if answer["janus"] == "success" || answer["janus"] == "pong" {
            Ok(answer)
        } else {
            Err(JanusError::Refused {
                code: answer["error"]["code"].as_i64().unwrap_or(0),
                reason: answer["error"]["reason"]
                    .as_str()
                    .unwrap_or("no reason")
                    .chars()
                    .take(200)
                    .collect(),
            })
        }
    }

    /// A VideoRoom request through `message_plugin`; a plugin error is `Refused` with its code.
    async fn videoroom(&self, mut request: Value) -> Result<Value, JanusError> {
        if let Some(map) = request.as_object_mut() {
            map.insert(
                "admin_key".into(),
                self.room_admin_key.expose_secret().into(),
            );
        }
        let answer = self
            .call(
                "message_plugin",
                json!({"plugin": VIDEOROOM, "request": request}),
            )
            .await?;
        let response = answer["response"].clone();
        match response["error_code"].as_i64() {
            Some(code) => Err(JanusError::Refused {
                code,
                reason: response["error"]
                    .as_str()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            }),
            None => Ok(response),
        }
    }

    /// Whether the node answers (and knows roomd's admin secret).
    pub async fn ping(&self) -> Result<(), JanusError> {
        self.call("ping", json!({})).await.map(drop)
    }

    /// Creates a room unless it exists (then its `allowed` list is extended with the spec's).
    pub async fn ensure_room(&self, spec: &RoomSpec<'_>) -> Result<(), JanusError> {
        let codecs = if spec.video_codecs.is_empty() {
            "vp8".to_string()
        } else {
            spec.video_codecs
                .iter()
                .map(|c| c.to_ascii_lowercase())
                .collect::<Vec<_>>()
                .join(",")
        };
        let created = self
            .videoroom(json!({
                "request": "create",
                "room": spec.room,
                "description": spec.room,
                "secret": spec.secret.expose_secret(),
                "is_private": true,
                "permanent": false,
                "publishers": spec.publishers.max(1),
                "audiocodec": "opus",
                "videocodec": codecs,
                "allowed": spec.allowed,
                "record": spec.record,
                "rec_dir": spec.rec_dir,
                // Only roomd (with the room's secret) starts or stops a recording, or names
                // its file.
                "lock_record": true,
            }))
            .await;
        match created {
            Err(JanusError::Refused {
                code: plugin_code::ROOM_EXISTS,
                ..
            }) if !spec.allowed.is_empty() => {
                self.allowed(spec.room, spec.secret, "add", &spec.allowed)
                    .await
            }
            Err(JanusError::Refused {
                code: plugin_code::ROOM_EXISTS,
                ..
            }) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Changes a room's `allowed` list (`add` or `remove`).
    pub async fn allowed(
        &self,
        room: &str,
        secret: &SecretString,
        action: &str,
        tokens: &[String],
    ) -> Result<(), JanusError> {
        self.videoroom(json!({
            "request": "allowed", "room": room, "secret": secret.expose_secret(),
            "action": action, "allowed": tokens,
        }))
        .await
        .map(drop)
    }

    /// Destroys a room (its publishers are kicked); a room that does not exist is no error.
    pub async fn destroy_room(&self, room: &str, secret: &SecretString) -> Result<(), JanusError> {
        ignore(
            self.videoroom(json!({
                "request": "destroy", "room": room, "secret": secret.expose_secret(),
            }))
            .await
            .map(drop),
            &[plugin_code::NO_SUCH_ROOM],
        )
    }

    /// Kicks a participant out of a room; one that is not there is no error.
    pub async fn kick(
        &self,
        room: &str,
        secret: &SecretString,
        id: &str,
    ) -> Result<(), JanusError> {
        ignore(
            self.videoroom(json!({
                "request": "kick", "room": room, "secret": secret.expose_secret(), "id": id,
            }))
            .await
            .map(drop),
            &[plugin_code::NO_SUCH_ROOM, plugin_code::NO_SUCH_FEED],
        )
    }

    /// Mutes one stream of a publisher for every subscriber.
    pub async fn mute(
        &self,
        room: &str,
        secret: &SecretString,
        id: &str,
        mid: &str,
    ) -> Result<(), JanusError> {
        self.videoroom(json!({
            "request": "moderate", "room": room, "secret": secret.expose_secret(),
            "id": id, "mid": mid, "mute": true,
        }))
        .await
        .map(drop)
    }

    /// The rooms on the node.
    pub async fn rooms(&self) -> Result<Vec<String>, JanusError> {
        Ok(self.rooms_recording().await?.into_keys().collect())
    }

    /// The node's rooms, each with whether it records.
    pub async fn rooms_recording(
        &self,
    ) -> Result<std::collections::HashMap<String, bool>, JanusError> {
        let answer = self.videoroom(json!({"request": "list"})).await?;
        Ok(answer["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r["room"].as_str()?.to_string(), r["record"] == true)))
            .collect())
    }

    /// Starts or stops recording every stream of a room.
    pub async fn enable_recording(
        &self,
        room: &str,
        secret: &SecretString,
        record: bool,
    ) -> Result<(), JanusError> {
        self.videoroom(json!({
            "request": "enable_recording",
            "room": room,
            "secret": secret.expose_secret(),
            "record": record,
        }))
        .await
        .map(drop)
    }

    /// The ids of a room's participants (publishers or not); `None` when the room is gone.
    pub async fn participants(&self, room: &str) -> Result<Option<Vec<String>>, JanusError> {
        match self
            .videoroom(json!({"request": "listparticipants", "room": room}))
            .await
        {
            Ok(answer) => Ok(Some(strings(&answer["participants"], "id"))),
            Err(JanusError::Refused {
                code: plugin_code::NO_SUCH_ROOM,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `result`, with the refusals whose codes are listed taken as done.
pub(super) fn ignore(result: Result<(), JanusError>, codes: &[i64]) -> Result<(), JanusError> {
    match result {
        Err(JanusError::Refused { code, .. }) if codes.contains(&code) => Ok(()),
        other => other,
    }
}

pub(super) fn strings(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item[key].as_str().map(str::to_string))
        .collect()
}

pub(super) fn numbers(list: &Value) -> Vec<u64> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect()
}

/// A random transaction id (Janus echoes it; roomd does not need it unique beyond a call).
fn transaction() -> String {
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(12)
        .map(char::from)
        .collect()
}
