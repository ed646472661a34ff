//! The media plane with a real embedded Janus (no browser: the test speaks Janus's own HTTP API
//! as janus.js would, which is enough for everything but the media itself; the browser suite in
//! `tests/media/` carries real audio and video). Skipped, with the reason printed, where no
//! `janus` binary is installed.

use crate::helpers::{create_account, fresh_database, test_master_key, TestApp};
use roomd::app::media::{attach, AttachedMedia, MediaOptions};
use roomd::app::setting_values::MediaMode;
use roomd::app::startup::{Application, ServerSettings};
use roomd::media::janus::JanusAdmin;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct MediaApp {
    pub(crate) app: TestApp,
    pub(crate) media: AttachedMedia,
    /// Janus's HTTP API, as a client reaches it.
    pub(crate) janus_api: String,
    pub(crate) admin: JanusAdmin,
    pub(crate) node: String,
}

/// A server with its embedded Janus, or `None` (printed) where `janus` is not installed.
pub(crate) async fn spawn_media_app(connect_timeout: Duration) -> Option<MediaApp> {
    if roomd::media::embedded::find_binary().is_none() {
        eprintln!(
            "SKIPPED: no janus binary (apt-get install janus): the media plane is not tested here"
        );
        return None;
    }
    let db = fresh_database().await;
    let pool = roomd::db::pool(db.options.clone(), 10).await.unwrap();
    let key = Arc::new(test_master_key());
    let settings = ServerSettings {
        master_key: key.clone(),
        ..ServerSettings::local()
    };
    let mut application = Application::build(settings, db.options.clone()).unwrap();
    let data_dir = std::env::temp_dir().join(format!(
        "roomd-media-test-{}",
        &roomd::domain::sid::random_hex32()[..8]
    ));
    let options = MediaOptions {
        mode: MediaMode::Janus,
        janus_binary: None,
        media_ip: None,
        connect_timeout,
        data_dir,
        media_dir: None,
        external: None,
    };
    let media = attach(&options, &db.options, key, application.local_addr())
        .await
        .unwrap()
        .expect("ROOMD_MEDIA=janus attaches");
    application.attach_media(media.plane.clone());
    tokio::spawn(roomd::media::worker::run(
        media.plane.pool.clone(),
        media.plane.clone(),
        roomd::media::worker::WorkerSettings {
            reconcile_every: Duration::from_secs(1),
            down_after: 3,
        },
        std::future::pending(),
    ));
    // Recording conversions, where janus-pp-rec is installed.
    if let Some(tools) = roomd::media::convert::Tools::find() {
        tokio::spawn(roomd::media::recording_jobs::run(
            media.plane.clone(),
            application.metrics(),
            tools,
            roomd::media::recording_jobs::JobSettings::default(),
            std::future::pending(),
        ));
    }
    let address = format!("http://{}", application.local_addr());
    let metrics = application.metrics();
    tokio::spawn(application.run_until(std::future::pending()));
    let account = create_account(&pool, "media").await;
    let node = media.plane.owner.clone();
    let admin = media.plane.node(&node).await.unwrap().admin.clone();
    let janus_api = format!(
        "http://127.0.0.1:{}/janus",
        media.janus.as_ref().unwrap().ports.http
    );
    Some(MediaApp {
        app: TestApp {
            address,
            database_url: db.url.clone(),
            pool,
            metrics_address: None,
            metrics,
            account,
            client: reqwest::Client::new(),
            _db: db,
        },
        media,
        janus_api,
        admin,
        node,
    })
}

/// Janus's client API, as janus.js speaks it (over HTTP).
pub(crate) struct JanusClient {
    http: reqwest::Client,
    api: String,
    token: String,
    session: u64,
    handle: u64,
}

async fn janus_post(http: &reqwest::Client, url: &str, mut body: Value, token: &str) -> Value {
    body["transaction"] = json!(roomd::domain::sid::random_hex32());
    body["token"] = json!(token);
    http.post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

impl JanusClient {
    /// A session and a VideoRoom handle opened with `token`; `Err` with Janus's answer when
    /// Janus refuses the token.
    pub(crate) async fn open(api: &str, token: &str) -> Result<JanusClient, Value> {
        let http = reqwest::Client::new();
        let created = janus_post(&http, api, json!({"janus": "create"}), token).await;
        let Some(session) = created["data"]["id"].as_u64() else {
            return Err(created);
        };
        let attached = janus_post(
            &http,
            &format!("{api}/{session}"),
            json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
            token,
        )
        .await;
        let Some(handle) = attached["data"]["id"].as_u64() else {
            return Err(attached);
        };
        Ok(JanusClient {
            http,
            api: api.to_string(),
            token: token.to_string(),
            session,
            handle,
        })
    }

    /// Joins `room` as publisher `id`; the plugin's answer.
    pub(crate) async fn join(&self, room: &str, id: &str) -> Value {
        let url = format!("{}/{}/{}", self.api, self.session, self.handle);
        let body = json!({"janus": "message", "body": {
            "request": "join", "ptype": "publisher", "room": room, "id": id,
            "token": self.token, "display": id}});
        let ack = janus_post(&self.http, &url, body, &self.token).await;
        assert_eq!(ack["janus"], "ack", "{ack}");
        self.next_event().await
    }

    /// The next event of the session (long poll, up to 10 s).
    async fn next_event(&self) -> Value {
        let url = format!(
            "{}/{}?maxev=1&token={}",
            self.api,
            self.session,
            urlencoding(&self.token)
        );
        let polled: Value = self
            .http
            .get(url)
            .timeout(Duration::from_secs(40))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        match polled {
            Value::Array(mut events) if !events.is_empty() => events.remove(0),
            other => other,
        }
    }

    /// Whether the session still exists (a keepalive is answered `ack`).
    async fn alive(&self) -> bool {
        let url = format!("{}/{}", self.api, self.session);
        let answer = janus_post(&self.http, &url, json!({"janus": "keepalive"}), &self.token).await;
        answer["janus"] == "ack"
    }
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Polls `check` every 100 ms for up to 10 s.
pub(crate) async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 10 s: {what}");
}

async fn participant_status(app: &TestApp, room: &str, sid: &str) -> Value {
    let r = app
        .get(&format!("/v1/Rooms/{room}/Participants/{sid}"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn end_reason(app: &TestApp, sid: &str) -> Option<String> {
    sqlx::query_scalar("SELECT end_reason FROM participants WHERE sid = $1")
        .bind(sid)
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_join_admits_the_participant_to_its_rooms_janus_room_with_a_token_of_its_own() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let joined = m.app.join("Standup", "alice").await;
    let media = &joined["media"];
    let (room, id) = (
        joined["room_sid"].as_str().unwrap(),
        joined["sid"].as_str().unwrap(),
    );
    assert_eq!(media["room"], room);
    assert_eq!(media["id"], id);
    assert!(
        media["url"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:"),
        "{media}"
    );
    let token = media["token"].as_str().unwrap();
    assert!(token.starts_with(&format!("{id}.")), "{token}");
    // Janus has the room, and the token (only roomd's tokens open sessions).
    assert!(m.admin.rooms().await.unwrap().contains(&room.to_string()));
    assert!(m.admin.tokens().await.unwrap().contains(&token.to_string()));
    let client = JanusClient::open(&m.janus_api, token).await.unwrap();
    let answer = client.join(room, id).await;
    assert_eq!(
        answer["plugindata"]["data"]["videoroom"], "joined",
        "{answer}"
    );
    let refused = JanusClient::open(&m.janus_api, &format!("{id}.forged")).await;
    assert_eq!(refused.err().unwrap()["error"]["code"], 403);
    // The joined event reached roomd.
    eventually("media_joined_at recorded", async || {
        sqlx::query_scalar::<_, bool>(
            "SELECT media_joined_at IS NOT NULL FROM participants WHERE sid = $1",
        )
        .bind(id)
        .fetch_one(&m.app.pool)
        .await
        .unwrap()
    })
    .await;
    // A join without media settings stays as it was: the same resource, plus `media`.
    assert_eq!(joined["status"], "connected");
    assert!(joined["links"]["published_tracks"].is_string());
    drop(m.media);
}

#[tokio::test]
async fn a_rest_kick_revokes_the_token_ends_the_janus_session_and_a_rooms_end_destroys_its_room() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let alice = m.app.join("Standup", "alice").await;
    let bob = m.app.join("Standup", "bob").await;
    let room = alice["room_sid"].as_str().unwrap().to_string();
    let (a_sid, a_token) = (
        alice["sid"].as_str().unwrap().to_string(),
        alice["media"]["token"].as_str().unwrap().to_string(),
    );
    let b_token = bob["media"]["token"].as_str().unwrap().to_string();
    let a = JanusClient::open(&m.janus_api, &a_token).await.unwrap();
    a.join(&room, &a_sid).await;
    let b = JanusClient::open(&m.janus_api, &b_token).await.unwrap();
    b.join(&room, bob["sid"].as_str().unwrap()).await;
    // The handles reach roomd before the kick (the kick closes what roomd knows of).
    eventually("both handles recorded", async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM media_handles")
            .fetch_one(&m.app.pool)
            .await
            .unwrap()
            == 2
    })
    .await;

    let kicked = m
        .app
        .post(
            &format!("/v1/Rooms/{room}/Participants/{a_sid}"),
            "Status=disconnected",
        )
        .await;
    assert_eq!(kicked.status, 202, "{}", kicked.body);
    eventually("alice's Janus session ended", async || !a.alive().await).await;
    eventually("alice's token revoked", async || {
        !m.admin.tokens().await.unwrap().contains(&a_token)
    })
    .await;
    assert_eq!(
        JanusClient::open(&m.janus_api, &a_token)
            .await
            .err()
            .unwrap()["error"]["code"],
        403
    );
    let listed = m.admin.participants(&room).await.unwrap().unwrap();
    assert!(!listed.contains(&a_sid), "{listed:?}");
    assert!(b.alive().await, "bob stays");

    m.app.complete_room(&room).await;
    eventually("the Janus room destroyed", async || {
        !m.admin.rooms().await.unwrap().contains(&room)
    })
    .await;
    eventually("bob's session ended", async || !b.alive().await).await;
    assert!(!m.admin.tokens().await.unwrap().contains(&b_token));
    assert_eq!(end_reason(&m.app, &a_sid).await.as_deref(), Some("kicked"));
}

#[tokio::test]
async fn a_token_used_to_join_as_another_participant_is_kicked() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let mallory = m.app.join("Standup", "mallory").await;
    let alice = m.app.join("Standup", "alice").await;
    let room = mallory["room_sid"].as_str().unwrap();
    let token = mallory["media"]["token"].as_str().unwrap();
    let client = JanusClient::open(&m.janus_api, token).await.unwrap();
    // Janus lets the token join under alice's id (it ties no id to a token): roomd kicks it.
    client.join(room, alice["sid"].as_str().unwrap()).await;
    let mallory_sid = mallory["sid"].as_str().unwrap();
    eventually("mallory disconnected", async || {
        participant_status(&m.app, room, mallory_sid).await["status"] == "disconnected"
    })
    .await;
    assert_eq!(
        end_reason(&m.app, mallory_sid).await.as_deref(),
        Some("kicked")
    );
    eventually("the impostor is out of the Janus room", async || {
        let ids = m.admin.participants(room).await.unwrap().unwrap();
        !ids.iter().any(|id| id == alice["sid"].as_str().unwrap())
    })
    .await;
    // Alice herself is untouched.
    assert_eq!(
        participant_status(&m.app, room, alice["sid"].as_str().unwrap()).await["status"],
        "connected"
    );
}

/// The embedded node's event-handler password (its admin secret), from its configuration.
fn events_password(m: &MediaApp) -> String {
    let janus = m.media.janus.as_ref().unwrap();
    let config =
        std::fs::read_to_string(janus.dir().join("janus.eventhandler.sampleevh.jcfg")).unwrap();
    let line = config.lines().find(|l| l.contains("backend_pwd")).unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

/// Posts events to roomd as the node's event handler does.
pub(crate) async fn post_events(
    m: &MediaApp,
    events: Value,
    password: Option<&str>,
) -> reqwest::Response {
    let secret = events_password(m);
    let password = password.unwrap_or(&secret);
    m.app
        .client
        .post(m.app.url(&format!("/v1/Media/Nodes/{}/Events", m.node)))
        .basic_auth(&m.node, Some(password))
        .body(events.to_string())
        .send()
        .await
        .unwrap()
}

pub(crate) fn videoroom_event(data: Value) -> Value {
    json!({"emitter": "test", "type": 64, "timestamp": 1, "session_id": 1, "handle_id": 2,
           "event": {"plugin": "janus.plugin.videoroom", "data": data}})
}

#[tokio::test]
async fn published_streams_become_tracks_once_and_rest_cannot_change_them() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let alice = m.app.join("Standup", "alice").await;
    let (room, id) = (
        alice["room_sid"].as_str().unwrap(),
        alice["sid"].as_str().unwrap(),
    );
    let joined = videoroom_event(json!({"event": "joined", "room": room, "id": id,
        "token": alice["media"]["token"]}));
    assert_eq!(post_events(&m, json!([joined]), None).await.status(), 200);
    let published = videoroom_event(json!({"event": "published", "room": room, "id": id,
        "streams": [{"type": "audio", "mid": "0", "codec": "opus"},
                    {"type": "video", "mid": "1", "codec": "vp8", "description": "camera"}]}));
    // Janus sends `published` once and `unpublished` twice; twice of anything changes nothing.
    for _ in 0..2 {
        assert_eq!(
            post_events(&m, json!([published.clone()]), None)
                .await
                .status(),
            200
        );
    }
    let tracks = m
        .app
        .get(&format!(
            "/v1/Rooms/{room}/Participants/{id}/PublishedTracks"
        ))
        .await;
    let list = tracks.body["published_tracks"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{}", tracks.body);
    assert_eq!(
        (list[0]["kind"].as_str(), list[0]["name"].as_str()),
        (Some("audio"), Some("0"))
    );
    assert_eq!(
        (list[1]["kind"].as_str(), list[1]["name"].as_str()),
        (Some("video"), Some("camera"))
    );
    let refused = m
        .app
        .post(
            &format!("/v1/Rooms/{room}/Participants/{id}/PublishedTracks/camera"),
            "Enabled=false",
        )
        .await;
    refused.assert_error(400, 53300);
    let refused = m
        .app
        .request_as(
            Some(&m.app.account),
            reqwest::Method::DELETE,
            &format!("/v1/Rooms/{room}/Participants/{id}/PublishedTracks/camera"),
            None,
        )
        .await;
    refused.assert_error(400, 53300);

    let unpublished = videoroom_event(json!({"event": "unpublished", "room": room, "id": id}));
    assert_eq!(
        post_events(&m, json!([unpublished.clone(), unpublished]), None)
            .await
            .status(),
        200
    );
    let tracks = m
        .app
        .get(&format!(
            "/v1/Rooms/{room}/Participants/{id}/PublishedTracks"
        ))
        .await;
    assert_eq!(tracks.body["published_tracks"].as_array().unwrap().len(), 0);
    let counted: i32 = sqlx::query_scalar("SELECT tracks_published FROM rooms WHERE sid = $1")
        .bind(room)
        .fetch_one(&m.app.pool)
        .await
        .unwrap();
    assert_eq!(counted, 0);

    // `leaving` disconnects, once.
    let leaving = videoroom_event(json!({"event": "leaving", "room": room, "id": id}));
    assert_eq!(
        post_events(&m, json!([leaving.clone(), leaving]), None)
            .await
            .status(),
        200
    );
    assert_eq!(
        participant_status(&m.app, room, id).await["status"],
        "disconnected"
    );
    assert_eq!(end_reason(&m.app, id).await.as_deref(), Some("left"));
}

#[tokio::test]
async fn an_audio_only_room_lists_no_video_a_node_publishes() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let room = m.app.create_room("UniqueName=Radio&AudioOnly=true").await;
    let room = room["sid"].as_str().unwrap();
    let alice = m.app.join(room, "alice").await;
    let id = alice["sid"].as_str().unwrap();
    let published = videoroom_event(json!({"event": "published", "room": room, "id": id,
        "streams": [{"type": "audio", "mid": "0"}, {"type": "video", "mid": "1"}]}));
    assert_eq!(
        post_events(&m, json!([published]), None).await.status(),
        200
    );
    let tracks = m
        .app
        .get(&format!(
            "/v1/Rooms/{room}/Participants/{id}/PublishedTracks"
        ))
        .await;
    let list = tracks.body["published_tracks"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{}", tracks.body);
    assert_eq!(list[0]["kind"], "audio");
}

#[tokio::test]
async fn the_events_endpoint_takes_only_its_nodes_credentials_and_janus_json() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let url = m.app.url(&format!("/v1/Media/Nodes/{}/Events", m.node));
    let anonymous = m.app.client.post(&url).body("[]").send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = post_events(&m, json!([]), Some("not-the-password")).await;
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["code"], 20003);
    // Another node's name with this node's password: refused too.
    let secret = events_password(&m);
    let other = m
        .app
        .client
        .post(m.app.url("/v1/Media/Nodes/other/Events"))
        .basic_auth("other", Some(&secret))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401);
    let garbage = m
        .app
        .client
        .post(&url)
        .basic_auth(&m.node, Some(&secret))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    // Events for rooms and participants that do not exist change nothing and are accepted.
    let stray = videoroom_event(
        json!({"event": "leaving", "room": "RM00000000000000000000000000000000", "id": "PA00000000000000000000000000000000"}),
    );
    assert_eq!(
        post_events(&m, json!([stray, {"type": 999}, 42]), None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_participant_whose_media_never_comes_is_disconnected_after_the_connect_timeout() {
    let Some(m) = spawn_media_app(Duration::from_secs(1)).await else {
        return;
    };
    let quiet = m.app.join("Standup", "quiet").await;
    let joining = m.app.join("Standup", "joining").await;
    let room = quiet["room_sid"].as_str().unwrap();
    let client = JanusClient::open(&m.janus_api, joining["media"]["token"].as_str().unwrap())
        .await
        .unwrap();
    client.join(room, joining["sid"].as_str().unwrap()).await;
    let quiet_sid = quiet["sid"].as_str().unwrap();
    eventually("the quiet participant disconnected", async || {
        participant_status(&m.app, room, quiet_sid).await["status"] == "disconnected"
    })
    .await;
    assert_eq!(
        end_reason(&m.app, quiet_sid).await.as_deref(),
        Some("media_lost")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        participant_status(&m.app, room, joining["sid"].as_str().unwrap()).await["status"],
        "connected"
    );
}

#[tokio::test]
async fn a_janus_killed_is_restarted_and_roomd_converges() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let joined = m.app.join("Standup", "alice").await;
    let waiting = m.app.join("Standup", "bob").await;
    let room = joined["room_sid"].as_str().unwrap().to_string();
    let id = joined["sid"].as_str().unwrap();
    let client = JanusClient::open(&m.janus_api, joined["media"]["token"].as_str().unwrap())
        .await
        .unwrap();
    client.join(&room, id).await;
    eventually("alice joined", async || {
        sqlx::query_scalar::<_, bool>(
            "SELECT media_joined_at IS NOT NULL FROM participants WHERE sid = $1",
        )
        .bind(id)
        .fetch_one(&m.app.pool)
        .await
        .unwrap()
    })
    .await;
    let pid = m
        .media
        .janus
        .as_ref()
        .unwrap()
        .pid
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(pid > 0);
    // SAFETY: kill(2) on the embedded Janus's PID.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
    // Restarted (on the same ports), the room is there again, alice (whose media died) is
    // disconnected, and bob, who had not joined yet, can still join with his token.
    eventually("Janus restarted with the room", async || {
        m.admin
            .rooms()
            .await
            .is_ok_and(|rooms| rooms.contains(&room))
    })
    .await;
    eventually("alice disconnected", async || {
        participant_status(&m.app, &room, id).await["status"] == "disconnected"
    })
    .await;
    assert_eq!(end_reason(&m.app, id).await.as_deref(), Some("media_lost"));
    let bob = JanusClient::open(&m.janus_api, waiting["media"]["token"].as_str().unwrap())
        .await
        .unwrap();
    let answer = bob.join(&room, waiting["sid"].as_str().unwrap()).await;
    assert_eq!(
        answer["plugindata"]["data"]["videoroom"], "joined",
        "{answer}"
    );
    assert_ne!(
        m.media
            .janus
            .as_ref()
            .unwrap()
            .pid
            .load(std::sync::atomic::Ordering::Relaxed),
        pid
    );
}

/// A Janus of the test's own, run as an external node would be: its event handler posts to
/// `api` as `name` with `secret`.
async fn external_janus(
    api: std::net::SocketAddr,
    name: &str,
    secret: &str,
    key: &str,
) -> roomd::media::embedded::EmbeddedJanus {
    use roomd::media::embedded::{find_binary, EmbeddedJanus, EmbeddedSpec};
    let spec = EmbeddedSpec {
        binary: find_binary().unwrap(),
        dir: std::env::temp_dir().join(format!(
            "roomd-external-{name}-{}",
            &roomd::domain::sid::random_hex32()[..8]
        )),
        name: name.to_string(),
        media_ip: None,
        listen: std::net::Ipv4Addr::LOCALHOST.into(),
        ports: None,
        nat_1_1: None,
        events_url: format!("http://{api}/v1/Media/Nodes/{name}/Events"),
        events_password: secret.to_string().into(),
        admin_secret: secret.to_string().into(),
        room_admin_key: key.to_string().into(),
    };
    let (secret, key) = (secret.to_string(), key.to_string());
    EmbeddedJanus::start(spec, move |ports| {
        JanusAdmin::new(
            JanusAdmin::client(),
            ports.admin_url(),
            secret.clone().into(),
            key.clone().into(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn rooms_are_placed_on_the_external_node_with_fewest_rooms_and_placed_anew_when_it_stops_answering(
) {
    if roomd::media::embedded::find_binary().is_none() {
        eprintln!("SKIPPED: no janus binary (apt-get install janus)");
        return;
    }
    let db = fresh_database().await;
    let pool = roomd::db::pool(db.options.clone(), 10).await.unwrap();
    let key = Arc::new(test_master_key());
    let mut application = Application::build(
        ServerSettings {
            master_key: key.clone(),
            ..ServerSettings::local()
        },
        db.options.clone(),
    )
    .unwrap();
    let api = application.local_addr();
    let (secret, room_key) = ("external-admin-secret", "external-room-key");
    let a = external_janus(api, "media-a", secret, room_key).await;
    let b = external_janus(api, "media-b", secret, room_key).await;
    let node = |name: &str, j: &roomd::media::embedded::EmbeddedJanus| {
        roomd::app::setting_values::JanusNode {
            name: name.to_string(),
            admin_url: j.ports.admin_url(),
            client_url: j.ports.client_url(),
        }
    };
    let options = MediaOptions {
        mode: MediaMode::Auto,
        janus_binary: None,
        media_ip: None,
        connect_timeout: Duration::ZERO,
        data_dir: std::env::temp_dir(),
        media_dir: None,
        external: Some(roomd::app::media::ExternalNodes {
            nodes: vec![node("media-a", &a), node("media-b", &b)],
            admin_secret: secret.to_string().into(),
            room_admin_key: room_key.to_string().into(),
        }),
    };
    let media = attach(&options, &db.options, key, api)
        .await
        .unwrap()
        .unwrap();
    assert!(
        media.janus.is_none(),
        "no embedded Janus beside external nodes"
    );
    application.attach_media(media.plane.clone());
    tokio::spawn(roomd::media::worker::run(
        media.plane.pool.clone(),
        media.plane.clone(),
        roomd::media::worker::WorkerSettings {
            reconcile_every: Duration::from_millis(500),
            down_after: 3,
        },
        std::future::pending(),
    ));
    tokio::spawn(application.run_until(std::future::pending()));
    let app = TestApp {
        address: format!("http://{api}"),
        database_url: db.url.clone(),
        account: create_account(&pool, "external").await,
        pool,
        metrics_address: None,
        metrics: Arc::new(roomd::telemetry::metrics::Metrics::new()),
        client: reqwest::Client::new(),
        _db: db,
    };

    // Two rooms: one on each node (the fewest rooms; a tie goes by name).
    let first = app.join("First", "alice").await;
    let second = app.join("Second", "bob").await;
    assert_eq!(first["media"]["url"], a.ports.client_url());
    assert_eq!(second["media"]["url"], b.ports.client_url());
    // A second participant of a room goes where its room is.
    let carol = app.join("First", "carol").await;
    assert_eq!(carol["media"]["url"], a.ports.client_url());
    // The external node's events are taken (its event handler posts with the admin secret).
    let janus_api = format!("http://127.0.0.1:{}/janus", a.ports.http);
    let client = JanusClient::open(&janus_api, first["media"]["token"].as_str().unwrap())
        .await
        .unwrap();
    client
        .join(
            first["room_sid"].as_str().unwrap(),
            first["sid"].as_str().unwrap(),
        )
        .await;
    let alice_sid = first["sid"].as_str().unwrap().to_string();
    eventually("alice's join recorded from media-a's events", async || {
        sqlx::query_scalar::<_, bool>(
            "SELECT media_joined_at IS NOT NULL FROM participants WHERE sid = $1",
        )
        .bind(&alice_sid)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;

    // media-a stops answering: its participants are disconnected, its room placed anew.
    a.stop().await;
    let room = first["room_sid"].as_str().unwrap().to_string();
    eventually("media-a's participants disconnected", async || {
        participant_status(&app, &room, &alice_sid).await["status"] == "disconnected"
            && participant_status(&app, &room, carol["sid"].as_str().unwrap()).await["status"]
                == "disconnected"
    })
    .await;
    assert_eq!(
        end_reason(&app, &alice_sid).await.as_deref(),
        Some("media_lost")
    );
    let again = app.join("First", "dave").await;
    assert_eq!(again["room_sid"], first["room_sid"]);
    assert_eq!(again["media"]["url"], b.ports.client_url());
    let bob_status = participant_status(
        &app,
        second["room_sid"].as_str().unwrap(),
        second["sid"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        bob_status["status"], "connected",
        "media-b's participants stay"
    );
    b.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn roomd_janus_node_runs_janus_as_an_external_node_until_sigterm() {
    if roomd::media::embedded::find_binary().is_none() {
        eprintln!("SKIPPED: no janus binary (apt-get install janus)");
        return;
    }
    let db = fresh_database().await;
    let pool = roomd::db::pool(db.options.clone(), 10).await.unwrap();
    let key = Arc::new(test_master_key());
    let mut application = Application::build(
        ServerSettings {
            master_key: key.clone(),
            ..ServerSettings::local()
        },
        db.options.clone(),
    )
    .unwrap();
    let api = application.local_addr();
    let (http, admin, ws) = (free_port(), free_port(), free_port());
    let rtp = free_port();
    let config_dir = std::env::temp_dir().join(format!(
        "roomd-janus-node-{}",
        &roomd::domain::sid::random_hex32()[..8]
    ));
    let mut node = std::process::Command::new(env!("CARGO_BIN_EXE_roomd"))
        .arg("janus-node")
        .env("ROOMD_JANUS_NODE_NAME", "media1")
        .env("ROOMD_JANUS_EVENTS_TO", format!("http://{api}"))
        .env("ROOMD_JANUS_LISTEN", "127.0.0.1")
        .env("ROOMD_JANUS_RTP_PORTS", format!("{rtp}-{}", rtp + 20))
        .env("ROOMD_JANUS_HTTP_PORT", http.to_string())
        .env("ROOMD_JANUS_ADMIN_PORT", admin.to_string())
        .env("ROOMD_JANUS_WS_PORT", ws.to_string())
        .env("ROOMD_JANUS_CONFIG_DIR", &config_dir)
        .env("ROOMD_JANUS_ADMIN_SECRET", "node-secret")
        .env("ROOMD_JANUS_ROOM_ADMIN_KEY", "node-room-key")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let janus = JanusAdmin::new(
        JanusAdmin::client(),
        format!("http://127.0.0.1:{admin}/admin"),
        "node-secret".to_string().into(),
        "node-room-key".to_string().into(),
    );
    eventually("the node's Janus answers", async || {
        janus.ping().await.is_ok()
    })
    .await;
    let options = MediaOptions {
        mode: MediaMode::Auto,
        janus_binary: None,
        media_ip: None,
        connect_timeout: Duration::ZERO,
        data_dir: std::env::temp_dir(),
        media_dir: None,
        external: Some(roomd::app::media::ExternalNodes {
            nodes: vec![roomd::app::setting_values::JanusNode {
                name: "media1".into(),
                admin_url: format!("http://127.0.0.1:{admin}/admin"),
                client_url: format!("ws://127.0.0.1:{ws}/"),
            }],
            admin_secret: "node-secret".to_string().into(),
            room_admin_key: "node-room-key".to_string().into(),
        }),
    };
    let media = attach(&options, &db.options, key, api)
        .await
        .unwrap()
        .unwrap();
    application.attach_media(media.plane.clone());
    tokio::spawn(application.run_until(std::future::pending()));
    let account = create_account(&pool, "node").await;
    let app = TestApp {
        address: format!("http://{api}"),
        database_url: db.url.clone(),
        account,
        pool,
        metrics_address: None,
        metrics: Arc::new(roomd::telemetry::metrics::Metrics::new()),
        client: reqwest::Client::new(),
        _db: db,
    };
    let joined = app.join("Standup", "alice").await;
    assert_eq!(joined["media"]["url"], format!("ws://127.0.0.1:{ws}/"));
    let room = joined["room_sid"].as_str().unwrap().to_string();
    assert!(janus.rooms().await.unwrap().contains(&room));
    // Its events reach roomd (the node's event handler posts with the admin secret).
    let client = JanusClient::open(
        &format!("http://127.0.0.1:{http}/janus"),
        joined["media"]["token"].as_str().unwrap(),
    )
    .await
    .unwrap();
    client.join(&room, joined["sid"].as_str().unwrap()).await;
    let sid = joined["sid"].as_str().unwrap().to_string();
    eventually("the join recorded from the node's events", async || {
        sqlx::query_scalar::<_, bool>(
            "SELECT media_joined_at IS NOT NULL FROM participants WHERE sid = $1",
        )
        .bind(&sid)
        .fetch_one(&app.pool)
        .await
        .unwrap()
    })
    .await;
    // SIGTERM stops Janus with the node, and the node exits 0.
    // SAFETY: kill(2) on the child's PID.
    unsafe {
        libc::kill(node.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = node.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(janus.ping().await.is_err(), "Janus stopped with its node");
    assert!(!config_dir.exists(), "its configuration is removed");
}

#[tokio::test]
async fn a_hang_up_of_a_publishers_peer_connection_disconnects_it_and_a_subscribers_does_not() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let alice = m.app.join("Standup", "alice").await;
    let (room, id) = (
        alice["room_sid"].as_str().unwrap(),
        alice["sid"].as_str().unwrap(),
    );
    let token = alice["media"]["token"].as_str().unwrap();
    let attached = |handle: u64| {
        json!({"type": 2, "session_id": 11, "handle_id": handle,
               "event": {"name": "attached", "plugin": "janus.plugin.videoroom", "token": token}})
    };
    let joined = json!({"type": 64, "session_id": 11, "handle_id": 12, "event": {
        "plugin": "janus.plugin.videoroom",
        "data": {"event": "joined", "room": room, "id": id, "token": token}}});
    let hangup = |handle: u64| {
        json!({"type": 16, "subtype": 6, "session_id": 11, "handle_id": handle,
               "event": {"connection": "hangup", "reason": "Close PC"}})
    };
    let batch = json!([attached(12), attached(13), joined, hangup(13)]);
    assert_eq!(post_events(&m, batch, None).await.status(), 200);
    assert_eq!(
        participant_status(&m.app, room, id).await["status"],
        "connected"
    );
    assert_eq!(
        post_events(&m, json!([hangup(12)]), None).await.status(),
        200
    );
    assert_eq!(
        participant_status(&m.app, room, id).await["status"],
        "disconnected"
    );
    assert_eq!(end_reason(&m.app, id).await.as_deref(), Some("media_lost"));
}

#[tokio::test]
async fn a_takeover_and_the_max_duration_sweep_end_the_media_of_those_they_disconnect() {
    let Some(m) = spawn_media_app(Duration::ZERO).await else {
        return;
    };
    let first = m.app.join("Standup", "alice").await;
    let room = first["room_sid"].as_str().unwrap().to_string();
    let first_token = first["media"]["token"].as_str().unwrap().to_string();
    let first_session = JanusClient::open(&m.janus_api, &first_token).await.unwrap();
    first_session
        .join(&room, first["sid"].as_str().unwrap())
        .await;
    eventually("the first alice's handle recorded", async || {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM media_handles")
            .fetch_one(&m.app.pool)
            .await
            .unwrap()
            == 1
    })
    .await;
    // A second join as alice takes the identity over: the first one's media ends.
    let second = m.app.join("Standup", "alice").await;
    eventually("the replaced alice's session ended", async || {
        !first_session.alive().await
    })
    .await;
    assert!(!m.admin.tokens().await.unwrap().contains(&first_token));
    assert_eq!(
        end_reason(&m.app, first["sid"].as_str().unwrap())
            .await
            .as_deref(),
        Some("duplicate_identity")
    );
    let second_token = second["media"]["token"].as_str().unwrap();
    assert!(m
        .admin
        .tokens()
        .await
        .unwrap()
        .contains(&second_token.to_string()));

    // The sweeper ends a participant past its room's MaxParticipantDuration: its media too.
    let session = JanusClient::open(&m.janus_api, second_token).await.unwrap();
    session.join(&room, second["sid"].as_str().unwrap()).await;
    eventually("the second alice's handle recorded", async || {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM media_handles WHERE participant_sid = $1",
        )
        .bind(second["sid"].as_str().unwrap())
        .fetch_one(&m.app.pool)
        .await
        .unwrap()
            == 1
    })
    .await;
    sqlx::query("UPDATE participants SET deadline = now() - interval '1 second' WHERE sid = $1")
        .bind(second["sid"].as_str().unwrap())
        .execute(&m.app.pool)
        .await
        .unwrap();
    roomd::workers::sweeper::sweep_once(&m.app.pool, None)
        .await
        .unwrap();
    eventually("the swept alice's session ended", async || {
        !session.alive().await
    })
    .await;
    assert_eq!(
        end_reason(&m.app, second["sid"].as_str().unwrap())
            .await
            .as_deref(),
        Some("max_duration")
    );
}
