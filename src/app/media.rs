//! Attaching the media plane at `roomd serve`: the external Janus nodes registered
//! (`ROOMD_JANUS_NODES`), or else the embedded Janus started (or none, as `ROOMD_MEDIA` says),
//! registered as this process's node, its restarts announced to the media worker; at exit, its
//! participants disconnected and the node removed before Janus stops.

use crate::app::setting_values::MediaMode;
use crate::auth::master_key::MasterKey;
use crate::media::embedded::{self, EmbeddedJanus, EmbeddedSpec};
use crate::media::janus::JanusAdmin;
use crate::media::MediaPlane;
use anyhow::{bail, Context, Result};
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use std::net::SocketAddr;
use std::sync::Arc;

/// The media plane of this process, while it runs.
pub struct AttachedMedia {
    pub plane: Arc<MediaPlane>,
    /// The embedded Janus (none with external nodes).
    pub janus: Option<EmbeddedJanus>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

/// What the media connections are named in `pg_stat_activity`.
pub const MEDIA_APPLICATION_NAME: &str = "roomd media";

/// The settings the media plane is attached with.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    pub mode: MediaMode,
    pub janus_binary: Option<std::path::PathBuf>,
    pub media_ip: Option<std::net::IpAddr>,
    /// Zero: no limit.
    pub connect_timeout: std::time::Duration,
    /// The embedded Janus's folder goes under it.
    pub data_dir: std::path::PathBuf,
    /// External nodes, used instead of an embedded Janus.
    pub external: Option<ExternalNodes>,
    /// The media directory (stream files, recordings) [default: `media` in `data_dir`].
    pub media_dir: Option<std::path::PathBuf>,
}

/// `ROOMD_JANUS_NODES` with the secrets they share.
#[derive(Debug, Clone)]
pub struct ExternalNodes {
    pub nodes: Vec<crate::app::setting_values::JanusNode>,
    pub admin_secret: SecretString,
    pub room_admin_key: SecretString,
}

impl MediaOptions {
    pub fn from_settings(settings: &crate::app::config::Settings) -> MediaOptions {
        MediaOptions {
            mode: settings.media,
            janus_binary: settings.janus_binary.clone(),
            media_ip: settings.media_ip,
            connect_timeout: settings.media_connect_timeout,
            data_dir: settings.data_dir.clone(),
            media_dir: settings.media_dir.clone(),
            external: match (
                &settings.janus_nodes,
                &settings.janus_admin_secret,
                &settings.janus_room_admin_key,
            ) {
                (Some(nodes), Some(secret), Some(key)) if !nodes.0.is_empty() => {
                    Some(ExternalNodes {
                        nodes: nodes.0.clone(),
                        admin_secret: secret.clone(),
                        room_admin_key: key.clone(),
                    })
                }
                _ => None,
            },
        }
    }
}

/// Starts the embedded Janus, unless `ROOMD_MEDIA` or a missing `janus` binary says not to.
/// `api` is the address roomd listens on (where Janus posts its events).
pub async fn attach(
    settings: &MediaOptions,
    database: &PgConnectOptions,
    master_key: Arc<MasterKey>,
    api: SocketAddr,
) -> Result<Option<AttachedMedia>> {
    if settings.mode == MediaMode::Off {
        tracing::info!("media plane off (ROOMD_MEDIA=off): rooms carry no media");
        return Ok(None);
    }
    let timeout = (!settings.connect_timeout.is_zero()).then_some(settings.connect_timeout);
    // Absolute: the nodes are told where to write by path.
    let media_dir = std::path::absolute(
        settings
            .media_dir
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("media")),
    )
    .context("ROOMD_MEDIA_DIR")?;
    std::fs::create_dir_all(&media_dir)
        .with_context(|| format!("creating the media directory {}", media_dir.display()))?;
    // Eight connections: the media, recording and composition workers each hold one to LISTEN on.
    let new_plane = || {
        let pool =
            crate::db::lazy_pool(database.clone().application_name(MEDIA_APPLICATION_NAME), 8);
        Arc::new(MediaPlane::new(
            pool,
            master_key.clone(),
            timeout,
            media_dir.clone(),
        ))
    };
    if let Some(external) = &settings.external {
        let plane = new_plane();
        for node in &external.nodes {
            plane
                .register(
                    &node.name,
                    &node.admin_url,
                    &node.client_url,
                    external.admin_secret.clone(),
                    external.room_admin_key.clone(),
                    false,
                )
                .await
                .with_context(|| format!("registering the media node {}", node.name))?;
        }
        tracing::info!(
            nodes = external.nodes.len(),
            "media plane: external Janus nodes (ROOMD_JANUS_NODES)"
        );
        return Ok(Some(AttachedMedia {
            plane,
            janus: None,
            watcher: None,
        }));
    }
    let binary = match settings.janus_binary.clone().or_else(embedded::find_binary) {
        Some(binary) => binary,
        None if settings.mode == MediaMode::Janus => {
            bail!("ROOMD_MEDIA=janus but no janus binary was found (apt-get install janus, or set ROOMD_JANUS_BINARY)")
        }
        None => {
            tracing::info!("no janus binary found: media plane off, rooms carry no media (apt-get install janus to add it)");
            return Ok(None);
        }
    };
    let plane = new_plane();
    let name = plane.owner.clone();
    let admin_secret: SecretString = crate::domain::sid::random_hex32().into();
    let room_admin_key: SecretString = crate::domain::sid::random_hex32().into();
    let host = if api.ip().is_unspecified() {
        if api.is_ipv4() {
            "127.0.0.1".to_string()
        } else {
            "[::1]".to_string()
        }
    } else if api.is_ipv6() {
        format!("[{}]", api.ip())
    } else {
        api.ip().to_string()
    };
    let spec = EmbeddedSpec {
        binary,
        // Absolute: Janus is given it on its command line, which `ps` shows.
        dir: std::path::absolute(settings.data_dir.join("janus").join(&name))
            .context("ROOMD_DATA_DIR")?,
        name: name.clone(),
        media_ip: settings.media_ip,
        listen: std::net::Ipv4Addr::LOCALHOST.into(),
        ports: None,
        nat_1_1: None,
        events_url: format!("http://{host}:{}/v1/Media/Nodes/{name}/Events", api.port()),
        events_password: admin_secret.clone(),
        admin_secret: admin_secret.clone(),
        room_admin_key: room_admin_key.clone(),
    };
    let client = JanusAdmin::client();
    let (secret, key) = (admin_secret.clone(), room_admin_key.clone());
    let janus = EmbeddedJanus::start(spec, move |ports| {
        JanusAdmin::new(
            client.clone(),
            ports.admin_url(),
            secret.clone(),
            key.clone(),
        )
    })
    .await
    .context("starting the embedded Janus (ROOMD_MEDIA=off runs without media)")?;
    plane
        .register(
            &name,
            &janus.ports.admin_url(),
            &janus.ports.client_url(),
            admin_secret,
            room_admin_key,
            true,
        )
        .await
        .context("registering the embedded Janus in the database")?;
    let mut generation = janus.generation.clone();
    let announced = plane.clone();
    let watcher = tokio::spawn(async move {
        while generation.changed().await.is_ok() {
            announced.restarted.notify_waiters();
        }
    });
    Ok(Some(AttachedMedia {
        plane,
        janus: Some(janus),
        watcher: Some(watcher),
    }))
}

impl AttachedMedia {
    /// At exit, for the embedded Janus: the node's participants are disconnected (their media
    /// ends with Janus), the node removed, Janus stopped. External nodes stay as they are (other
    /// replicas use them).
    pub async fn detach(self) {
        if let Some(janus) = self.janus {
            let name = self.plane.owner.clone();
            match crate::db::media_nodes::mark_down(&self.plane.pool, &name).await {
                Ok(gone) if gone > 0 => {
                    tracing::info!(
                        participants = gone,
                        "media participants disconnected at exit"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "disconnecting the media participants at exit failed")
                }
            }
            if let Err(e) = crate::db::media_nodes::remove(&self.plane.pool, &name).await {
                tracing::warn!(error = %e, "removing the embedded Janus's node failed");
            }
            janus.stop().await;
        }
        if let Some(watcher) = self.watcher {
            watcher.abort();
        }
        self.plane.pool.close().await;
    }
}
