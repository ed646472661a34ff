//! `roomd janus-node`: Janus run as an external media node (in a container of its own, or on a
//! media host), configured as roomd's embedded Janus is, but listening where it is told, on fixed
//! ports, with the public address it announces.

use crate::app::config::Settings;
use crate::media::embedded::{find_binary, EmbeddedJanus, EmbeddedSpec, Ports};
use crate::media::janus::JanusAdmin;
use anyhow::{anyhow, Context, Result};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct JanusNodeArgs {
    /// The node's name, as ROOMD_JANUS_NODES lists it
    #[arg(long, env = "ROOMD_JANUS_NODE_NAME")]
    pub name: String,
    /// roomd's base URL as this node reaches it (its events go to
    /// <URL>/v1/Media/Nodes/<name>/Events)
    #[arg(long, env = "ROOMD_JANUS_EVENTS_TO", value_name = "URL")]
    pub events_to: url::Url,
    /// The address Janus's listeners bind
    #[arg(long, env = "ROOMD_JANUS_LISTEN", default_value = "0.0.0.0")]
    pub listen: IpAddr,
    /// The public address announced in ICE candidates (Janus's nat_1_1_mapping)
    #[arg(long, env = "ROOMD_JANUS_PUBLIC_IP")]
    pub public_ip: Option<IpAddr>,
    /// The UDP ports media uses (open them to clients)
    #[arg(long, env = "ROOMD_JANUS_RTP_PORTS", default_value = "20000-20099", value_parser = port_range)]
    pub rtp_ports: (u16, u16),
    /// Janus's HTTP API port (clients may use http://host:port/janus)
    #[arg(long, env = "ROOMD_JANUS_HTTP_PORT", default_value = "8088")]
    pub http_port: u16,
    /// Janus's Admin API port (roomd only; keep it off the public network)
    #[arg(long, env = "ROOMD_JANUS_ADMIN_PORT", default_value = "7088")]
    pub admin_port: u16,
    /// Janus's WebSocket port (what janus.js uses: ws://host:port/)
    #[arg(long, env = "ROOMD_JANUS_WS_PORT", default_value = "8188")]
    pub ws_port: u16,
    /// Where its configuration is written
    #[arg(
        long,
        env = "ROOMD_JANUS_CONFIG_DIR",
        default_value = "/tmp/roomd-janus-node"
    )]
    pub config_dir: PathBuf,
}

fn port_range(v: &str) -> Result<(u16, u16), String> {
    let (low, high) = v
        .split_once('-')
        .ok_or_else(|| "not a range such as 20000-20099".to_string())?;
    let parse = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("{p:?} is not a port"))
    };
    let (low, high) = (parse(low)?, parse(high)?);
    if low == 0 || low > high {
        return Err("not a range such as 20000-20099".into());
    }
    Ok((low, high))
}

pub async fn run(settings: &Settings, args: JanusNodeArgs) -> Result<()> {
    let secret = settings
        .janus_admin_secret
        .clone()
        .ok_or_else(|| anyhow!("roomd janus-node needs ROOMD_JANUS_ADMIN_SECRET"))?;
    let key = settings
        .janus_room_admin_key
        .clone()
        .ok_or_else(|| anyhow!("roomd janus-node needs ROOMD_JANUS_ROOM_ADMIN_KEY"))?;
    crate::db::media_nodes::NodeRow::valid_name(&args.name)
        .ok_or_else(|| anyhow!("invalid ROOMD_JANUS_NODE_NAME: 1..64 of A-Z a-z 0-9 . _ -"))?;
    let binary = settings
        .janus_binary
        .clone()
        .or_else(find_binary)
        .ok_or_else(|| anyhow!("no janus binary (apt-get install janus)"))?;
    let events_url = args
        .events_to
        .join(&format!("v1/Media/Nodes/{}/Events", args.name))
        .context("ROOMD_JANUS_EVENTS_TO")?;
    let spec = EmbeddedSpec {
        binary,
        dir: args.config_dir.clone(),
        name: args.name.clone(),
        media_ip: settings.media_ip,
        listen: args.listen,
        ports: Some(Ports {
            http: args.http_port,
            admin: args.admin_port,
            websocket: args.ws_port,
            rtp: args.rtp_ports,
        }),
        nat_1_1: args.public_ip,
        events_url: events_url.to_string(),
        events_password: secret.clone(),
        admin_secret: secret.clone(),
        room_admin_key: key.clone(),
    };
    let janus = EmbeddedJanus::start(spec, move |ports| {
        JanusAdmin::new(
            JanusAdmin::client(),
            ports.admin_url(),
            secret.clone(),
            key.clone(),
        )
    })
    .await
    .context("starting Janus")?;
    tracing::info!(name = %args.name, events = %events_url, "Janus media node running");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    janus.stop().await;
    Ok(())
}
