//! A private PostgreSQL, started from the server binaries already on the machine, used when no
//! `DATABASE_URL` is given: durable under `ROOMD_DATA_DIR` for `roomd serve`, disposable (fsync off,
//! in a temporary directory) for the test suite. It is a real PostgreSQL, never a stand-in.
//!
//! The cluster listens only on a Unix socket in a private directory, so no TCP port can clash.
//! It never outlives the process that started it: a tiny watchdog shell holds the read end of a
//! pipe whose write end only this process has; when this process exits for any reason (including
//! SIGKILL or a panic) the pipe closes, and the watchdog stops postgres and removes what was
//! temporary. `initdb` refuses to run as root, so as root both run as the `postgres` OS user.

pub mod host;
pub mod running;
pub mod watchdog;

use anyhow::{anyhow, bail, Context, Result};
use host::{command, own, private_temp_dir, run_as};
pub use host::{find_bindir, give_to_server_user};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};
use watchdog::spawn_watchdog;

/// The port only names the socket file (`.s.PGSQL.5432`); nothing listens on TCP.
const PORT: u16 = 5432;
pub const SUPERUSER: &str = "postgres";

/// Durable (for `serve`), disposable (for tests), or a scratch cluster with production settings
/// in a temporary directory (for benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Durable,
    Disposable,
    Scratch,
}

impl Mode {
    /// Whether the cluster lives in a temporary directory removed afterwards.
    fn temporary(self) -> bool {
        matches!(self, Mode::Disposable | Mode::Scratch)
    }
}

pub struct EmbeddedPostgres {
    bindir: PathBuf,
    who: Option<(u32, u32)>,
    mode: Mode,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_path: PathBuf,
    /// The port: it names the socket file, and is the TCP port when `tcp` is set.
    port: u16,
    /// Loopback TCP and the server settings that go with it (`start_on_tcp`).
    tcp: Vec<(String, String)>,
    /// `None` while stopped (see `stop`/`restart`).
    postgres: Option<Child>,
    watchdog: Option<(Child, ChildStdin)>,
}

impl std::fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("data_dir", &self.data_dir)
            .field("socket_dir", &self.socket_dir)
            .finish()
    }
}

impl EmbeddedPostgres {
    /// Starts a cluster. `Durable` keeps it in `data_root/pgdata` (creating it on first use);
    /// `Disposable` makes a fresh one in a temporary directory that is removed afterwards.
    pub fn start(mode: Mode, data_root: Option<&Path>) -> Result<EmbeddedPostgres> {
        Self::start_with(mode, data_root, PORT, Vec::new())
    }

    /// A disposable cluster that also listens on `127.0.0.1:port`, with `settings` (such as
    /// `ssl`, `ssl_cert_file`) on top of the defaults: how tests stand up a PostgreSQL that a
    /// client reaches over TCP and TLS. Files it reads must be the server user's
    /// (`give_to_server_user`).
    pub fn start_on_tcp(port: u16, settings: &[(&str, &str)]) -> Result<EmbeddedPostgres> {
        let mut tcp = vec![("listen_addresses".to_string(), "127.0.0.1".to_string())];
        tcp.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Self::start_with(Mode::Disposable, None, port, tcp)
    }

    fn start_with(
        mode: Mode,
        data_root: Option<&Path>,
        port: u16,
        tcp: Vec<(String, String)>,
    ) -> Result<EmbeddedPostgres> {
        let bindir = find_bindir().ok_or_else(|| {
            anyhow!("no DATABASE_URL and no PostgreSQL server binaries found (set PG_BINDIR, or install Debian's postgresql package)")
        })?;
        let who = run_as()?;

        let (root, data_dir) = match mode {
            Mode::Durable => {
                let root =
                    data_root.ok_or_else(|| anyhow!("a durable cluster needs a data directory"))?;
                fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
                let root = root.canonicalize()?;
                let data_dir = root.join("pgdata");
                (root, data_dir)
            }
            Mode::Disposable | Mode::Scratch => {
                let root = private_temp_dir("pg")?;
                let data_dir = root.join("pgdata");
                (root, data_dir)
            }
        };
        own(&root, who)?;
        let socket_dir = private_temp_dir("sock")?;
        own(&socket_dir, who)?;

        // From here on, a failure must not leave the temporary directories behind.
        let cleanup = |e: anyhow::Error| {
            let _ = fs::remove_dir_all(&socket_dir);
            if mode.temporary() {
                let _ = fs::remove_dir_all(&root);
            }
            e
        };

        if !data_dir.join("PG_VERSION").exists() {
            initdb(&bindir, &data_dir, mode, who).map_err(cleanup)?;
        }

        let remove_on_exit = mode.temporary().then_some(root.as_path());
        let watchdog = spawn_watchdog(&data_dir, &socket_dir, remove_on_exit).map_err(cleanup)?;
        let mut pg = EmbeddedPostgres {
            bindir,
            who,
            mode,
            log_path: root.join("postgres.log"),
            data_dir,
            socket_dir,
            port,
            tcp,
            postgres: None,
            watchdog: Some(watchdog),
        };
        pg.spawn_postmaster()?;
        Ok(pg)
    }

    fn spawn_postmaster(&mut self) -> Result<()> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let mut cmd = command(&self.bindir, "postgres", self.who);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .arg("-k")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=",
                "-c",
                "max_connections=200",
            ])
            .args(
                self.tcp
                    .iter()
                    .flat_map(|(k, v)| ["-c".to_string(), format!("{k}={v}")]),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C meant for roomd must not stop the database while
            // roomd is still draining requests; roomd stops it afterwards.
            .process_group(0);
        if self.mode == Mode::Disposable {
            cmd.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.bindir.join("postgres").display()))?;
        self.postgres = Some(child);
        self.wait_until_ready()
    }

    /// Stops the postmaster (fast shutdown) and waits for it; the directories stay.
    pub fn stop(&mut self) {
        let Some(mut child) = self.postgres.take() else {
            return;
        };
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the postmaster again after `stop`, on the same data and socket directories.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.spawn_postmaster()
    }

    /// Options for connecting as the superuser to `database`.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        crate::db::connect::without_tls_on_sockets(
            PgConnectOptions::new()
                .socket(&self.socket_dir)
                .port(self.port)
                .username(SUPERUSER)
                .database(database),
        )
    }

    /// A `postgres://` URL for `database`, for other processes (e.g. `roomd serve` in tests).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}@localhost:{}/{database}?host={}",
            self.port,
            self.socket_dir.display()
        )
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let log_path = self.log_path.clone();
        let log_path = log_path.as_path();
        let deadline = Instant::now() + Duration::from_secs(60);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        loop {
            let postgres = self.postgres.as_mut().expect("postmaster spawned");
            if let Some(status) = postgres.try_wait()? {
                bail!(
                    "postgres exited at start ({status}); its log ({}) ends with:\n{}",
                    log_path.display(),
                    tail(log_path)
                );
            }
            let opts = self.connect_options("postgres").disable_statement_logging();
            let ok = std::thread::scope(|s| {
                s.spawn(|| {
                    rt.block_on(async {
                        sqlx::PgConnection::connect_with(&opts).await?.close().await
                    })
                })
                .join()
                .expect("probe thread")
            });
            if ok.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not accept connections within 60 s; log:\n{}",
                    tail(log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn initdb(bindir: &Path, data_dir: &Path, mode: Mode, who: Option<(u32, u32)>) -> Result<()> {
    let mut cmd = command(bindir, "initdb", who);
    cmd.arg("-D").arg(data_dir).args([
        "-U",
        SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
    ]);
    if mode == Mode::Disposable {
        cmd.arg("--no-sync");
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", bindir.join("initdb").display()))?;
    if !out.status.success() {
        let hint = if who.is_some() {
            " (roomd runs as root, so PostgreSQL runs as the postgres user, which must be able to \
             enter every parent directory of ROOMD_DATA_DIR)"
        } else {
            ""
        };
        bail!(
            "initdb {} failed{hint}: {}",
            data_dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn tail(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

impl Drop for EmbeddedPostgres {
    /// Stops postgres (fast shutdown) and waits for it, then lets the watchdog clean up.
    fn drop(&mut self) {
        self.stop();
        if let Some((mut child, stdin)) = self.watchdog.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}
