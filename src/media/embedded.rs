//! The embedded Janus: a `janus` process of roomd's own, as the embedded PostgreSQL is. Its
//! configuration is written under the data directory; it listens on loopback only, on ports
//! picked free at each start (its RTP range too), so several roomd processes run side by side;
//! it is restarted when it dies and stopped when roomd stops (or dies: the kernel sends it
//! SIGTERM then, `PR_SET_PDEATHSIG`).

use super::janus::JanusAdmin;
use anyhow::{bail, Context, Result};
use futures_util::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;

/// The `janus` binary: on PATH, or Debian's path.
pub fn find_binary() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("janus"))
        .find(|p| p.is_file())
}

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
    fn pick() -> std::io::Result<Ports> {
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

/// A running embedded Janus. Dropping it (or `stop`) stops the process.
pub struct EmbeddedJanus {
    pub ports: Ports,
    /// The running process's PID (0 between a death and its restart).
    pub pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// Counts the starts that answered: a change means Janus started anew, empty.
    pub generation: watch::Receiver<u64>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    dir: PathBuf,
}

impl EmbeddedJanus {
    /// Starts Janus and waits (up to 20 s) until its Admin API answers.
    pub async fn start(spec: EmbeddedSpec, admin: impl Fn(&Ports) -> JanusAdmin) -> Result<Self> {
        if let Some(parent) = spec.dir.parent() {
            remove_abandoned(parent);
        }
        std::fs::create_dir_all(&spec.dir)
            .with_context(|| format!("creating {}", spec.dir.display()))?;
        std::fs::write(spec.dir.join(OWNER_FILE), std::process::id().to_string())
            .with_context(|| format!("writing {}", spec.dir.display()))?;
        let mut last = None;
        for _ in 0..3 {
            let ports = match spec.ports {
                Some(ports) => ports,
                None => Ports::pick().context("picking ports for Janus")?,
            };
            write_config(&spec, &ports)?;
            let mut child = spawn(&spec)?;
            let admin = admin(&ports);
            match answers(&admin, &mut child).await {
                Ok(()) => {
                    let (stop, stopping) = watch::channel(false);
                    let (generation_tx, generation) = watch::channel(1);
                    let dir = spec.dir.clone();
                    let pid = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(
                        child.id().unwrap_or(0),
                    ));
                    let task = tokio::spawn(supervise(
                        spec,
                        ports,
                        child,
                        admin,
                        stopping,
                        generation_tx,
                        pid.clone(),
                    ));
                    tracing::info!(admin = %ports.admin_url(), client = %ports.client_url(), rtp = ?ports.rtp, "embedded Janus started");
                    return Ok(EmbeddedJanus {
                        ports,
                        pid,
                        generation,
                        stop,
                        task: Some(task),
                        dir,
                    });
                }
                Err(e) => {
                    let _ = child.kill().await;
                    last = Some(e);
                }
            }
        }
        Err(last.expect("tried at least once"))
    }

    /// Its folder (configuration).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops Janus (SIGTERM, then SIGKILL after 3 s) and removes its folder.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for EmbeddedJanus {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The file in an embedded Janus's folder naming the roomd process that owns it.
const OWNER_FILE: &str = "roomd.pid";

/// Removes the folders beside ours that a roomd which died without stopping its Janus left
/// (their owner process is gone); those of live processes stay.
fn remove_abandoned(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join(OWNER_FILE))
            .ok()
            .and_then(|p| p.trim().parse::<libc::pid_t>().ok());
        // SAFETY: kill(2) with signal 0 only asks whether the process exists.
        let gone = owner.is_some_and(|pid| {
            pid > 0
                && unsafe { libc::kill(pid, 0) } != 0
                && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
        });
        if gone {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Waits until the Admin API answers, or the process exits, or 20 s pass.
async fn answers(admin: &JanusAdmin, child: &mut tokio::process::Child) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("Janus exited at start ({status}); its log lines are at debug level, target roomd::media::janus_log");
        }
        if admin.ping().await.is_ok() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("Janus did not answer on its Admin API within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Restarts Janus whenever it exits (after a second, on the same ports: clients and the
/// database know them) until stopped.
async fn supervise(
    spec: EmbeddedSpec,
    ports: Ports,
    mut child: tokio::process::Child,
    admin: JanusAdmin,
    mut stopping: watch::Receiver<bool>,
    generation: watch::Sender<u64>,
    pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
) {
    use std::sync::atomic::Ordering;
    loop {
        let exited = tokio::select! {
            status = child.wait() => status,
            _ = stopping.wait_for(|s| *s).map(drop) => {
                terminate(&mut child).await;
                return;
            }
        };
        {
            {
                pid.store(0, Ordering::Relaxed);
                tracing::warn!(status = ?exited.ok(), "the embedded Janus exited; restarting it");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopping.wait_for(|s| *s).map(drop) => return,
                }
                match spawn(&spec) {
                    Ok(new) => {
                        child = new;
                        pid.store(child.id().unwrap_or(0), Ordering::Relaxed);
                        if answers(&admin, &mut child).await.is_ok() {
                            generation.send_modify(|g| *g += 1);
                            tracing::info!(admin = %ports.admin_url(), "the embedded Janus restarted");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "restarting the embedded Janus failed");
                        // A child that exited at once: try again after the pause above.
                        child = match sleeping_child() {
                            Ok(c) => c,
                            Err(_) => return,
                        };
                    }
                }
            }
        }
    }
}

/// A stand-in child that exits at once, so the loop above waits and tries again.
fn sleeping_child() -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new("true").spawn()
}

async fn terminate(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's PID; no memory is touched.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(3), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

fn spawn(spec: &EmbeddedSpec) -> Result<tokio::process::Child> {
    let mut command = tokio::process::Command::new(&spec.binary);
    command
        .arg("-F")
        .arg(&spec.dir)
        .arg("-C")
        .arg(spec.dir.join("janus.jcfg"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // SAFETY: prctl(2) in the child between fork and exec, async-signal-safe, no allocation.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", spec.binary.display()))?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_log(out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_log(err));
    }
    Ok(child)
}

/// Janus's log lines, at debug level (errors at warn), each cut to 500 characters.
async fn forward_log(stream: impl tokio::io::AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let line: String = line.chars().take(500).collect();
        if line.contains("[ERR]") || line.contains("[FATAL]") {
            tracing::warn!(target: "roomd::media::janus_log", "{line}");
        } else {
            tracing::debug!(target: "roomd::media::janus_log", "{line}");
        }
    }
}

/// Every plugin but the VideoRoom is off.
const OTHER_PLUGINS: &str = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_echotest.so,\
libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,libjanus_sip.so,libjanus_streaming.so,\
libjanus_textroom.so,libjanus_videocall.so,libjanus_voicemail.so";

fn write_config(spec: &EmbeddedSpec, ports: &Ports) -> Result<()> {
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
