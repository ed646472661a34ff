//! The configuration files roomd writes for a Janus it runs (embedded, or as `roomd
//! janus-node`): the core with stored-token auth and an admin secret, the VideoRoom alone with
//! string ids and an admin key, the HTTP and WebSocket transports, the event handler posting to
//! roomd. Only the owner reads them (they hold secrets).

use anyhow::{Context, Result};
use secrecy::ExposeSecret;
use secrecy::SecretString;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};

/// What the embedded Janus is started with.
pub struct EmbeddedSpec {
    pub binary: PathBuf,
    /// Its own folder (configuration), under the data directory.
    pub dir: PathBuf,
    pub name: String,
    /// The only address ICE candidates are offered on (`None`: Janus's own choice).
    pub media_ip: Option<IpAddr>,
    /// The address its HTTP, Admin and WebSocket listeners bind (loopback when embedded).
    pub listen: IpAddr,
    /// Fixed ports (a standalone node), or `None` for free ones picked at start.
    pub ports: Option<Ports>,
    /// The public address announced in place of the host's (`nat_1_1_mapping`).
    pub nat_1_1: Option<IpAddr>,
    /// Where its event handler posts, and as whom.
    pub events_url: String,
    pub events_password: SecretString,
    pub admin_secret: SecretString,
    pub room_admin_key: SecretString,
}

/// The ports one run of Janus listens on.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub admin: u16,
    pub websocket: u16,
    pub rtp: (u16, u16),
}

impl Ports {
    /// Ports free right now (picked by the kernel), and an RTP range of 200 from a free UDP
    /// port. Another process may take one before Janus binds it: a start that fails is tried
    /// again with new ports.
    pub fn pick() -> std::io::Result<Ports> {
        let tcp = || -> std::io::Result<TcpListener> { TcpListener::bind("127.0.0.1:0") };
        let (a, b, c) = (tcp()?, tcp()?, tcp()?);
        let udp = UdpSocket::bind("0.0.0.0:0")?.local_addr()?.port();
        let low = udp.clamp(10_000, 65_335);
        Ok(Ports {
            http: a.local_addr()?.port(),
            admin: b.local_addr()?.port(),
            websocket: c.local_addr()?.port(),
            rtp: (low, low + 199),
        })
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}/admin", self.admin)
    }

    /// The URL janus.js is given (WebSocket: a closed tab ends its session at once).
    pub fn client_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.websocket)
    }
}

/// Every plugin but the VideoRoom is off.
const OTHER_PLUGINS: &str = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,\
libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,\
libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so";

pub fn write(spec: &EmbeddedSpec, ports: &Ports) -> Result<()> {
    let dir = &spec.dir;
    let mut nat = String::new();
    if let Some(ip) = spec.media_ip {
        nat.push_str(&format!("\tice_enforce_list = \"{ip}\"\n"));
    }
    if let Some(ip) = spec.nat_1_1 {
        nat.push_str(&format!("\tnat_1_1_mapping = \"{ip}\"\n"));
    }
    let nat = if nat.is_empty() {
        nat
    } else {
        format!("nat: {{\n{nat}}}\n")
    };
    let listen = spec.listen;
    let files = [
        (
            "janus.jcfg",
            format!(
                "general: {{\n\tconfigs_folder = \"{dir}\"\n\tlog_to_stdout = true\n\tdebug_level = 3\n\
                 \tserver_name = \"{name}\"\n\tadmin_secret = \"{admin}\"\n\ttoken_auth = true\n\
                 \tsession_timeout = 60\n}}\n\
                 media: {{\n\trtp_port_range = \"{low}-{high}\"\n}}\n{nat}\
                 plugins: {{\n\tdisable = \"{OTHER_PLUGINS}\"\n}}\n\
                 transports: {{\n\tdisable = \"libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so\"\n}}\n\
                 loggers: {{\n\tdisable = \"libjanus_jsonlog.so\"\n}}\n\
                 events: {{\n\tbroadcast = true\n\tdisable = \"libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,libjanus_wsevh.so\"\n\tstats_period = 60\n}}\n",
                dir = dir.display(),
                name = spec.name,
                admin = spec.admin_secret.expose_secret(),
                low = ports.rtp.0,
                high = ports.rtp.1,
            ),
        ),
        (
            "janus.plugin.videoroom.jcfg",
            format!(
                "general: {{\n\tadmin_key = \"{}\"\n\tlock_rtp_forward = true\n\tevents = true\n\tstring_ids = true\n}}\n",
                spec.room_admin_key.expose_secret()
            ),
        ),
        (
            "janus.transport.http.jcfg",
            format!(
                "general: {{\n\tjson = \"plain\"\n\tbase_path = \"/janus\"\n\thttp = true\n\tport = {}\n\
                 \tip = \"{listen}\"\n\thttps = false\n}}\n\
                 admin: {{\n\tadmin_base_path = \"/admin\"\n\tadmin_http = true\n\tadmin_port = {}\n\
                 \tadmin_ip = \"{listen}\"\n\tadmin_https = false\n}}\ncors: {{\n}}\n",
                ports.http, ports.admin
            ),
        ),
        (
            "janus.transport.websockets.jcfg",
            format!(
                "general: {{\n\tjson = \"plain\"\n\tws = true\n\tws_port = {}\n\tws_ip = \"{listen}\"\n\twss = false\n}}\n\
                 admin: {{\n\tadmin_ws = false\n\tadmin_wss = false\n}}\n",
                ports.websocket
            ),
        ),
        (
            "janus.eventhandler.sampleevh.jcfg",
            event_handler_config(
                &spec.events_url,
                &spec.name,
                spec.events_password.expose_secret(),
            ),
        ),
    ];
    for (name, text) in files {
        write_private(&dir.join(name), &text)?;
    }
    Ok(())
}

/// The event handler's configuration: the events roomd acts on, grouped, to `url` as `user`.
pub fn event_handler_config(url: &str, user: &str, password: &str) -> String {
    format!(
        "general: {{\n\tenabled = true\n\tevents = \"sessions,handles,webrtc,plugins,core\"\n\
         \tgrouping = true\n\tjson = \"plain\"\n\tbackend = \"{url}\"\n\tbackend_user = \"{user}\"\n\
         \tbackend_pwd = \"{password}\"\n\tmax_retransmissions = 5\n\tretransmissions_backoff = 100\n}}\n"
    )
}

/// Writes a file only its owner reads (it holds secrets).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
