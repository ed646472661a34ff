//! The embedded Janus: a `janus` process of roomd's own, as the embedded PostgreSQL is. Its
//! configuration is written under the data directory; it listens on loopback only, on ports
//! picked free at each start (its RTP range too), so several roomd processes run side by side;
//! it is restarted when it dies and stopped when roomd stops (or dies: the kernel sends it
//! SIGTERM then, `PR_SET_PDEATHSIG`).

use super::janus::JanusAdmin;
pub use super::janus_config::{EmbeddedSpec, Ports};
use anyhow::{bail, Context, Result};
use futures_util::FutureExt;
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
            super::janus_config::write(&spec, &ports)?;
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
