//! The `roomd serve` under test: the binary beside this one, started on the benchmark database.

use super::*;

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    pub(crate) work: PathBuf,
}

/// Stops roomd however the benchmark ends, an error included: no server is left behind.
impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

pub(crate) fn roomd_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("no parent")?;
    let bin = dir.join("roomd");
    let profile = if dir.ends_with("release") {
        vec!["--release"]
    } else {
        vec![]
    };
    // `cargo run -p roomd-bench` builds only the benchmark: build the server beside it.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "-p", "roomd", "--bin", "roomd"])
        .args(profile)
        .status();
    if !bin.exists() {
        bail!(
            "{} not found and could not be built ({status:?})",
            bin.display()
        );
    }
    Ok(bin)
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A `roomd serve` on the benchmark's database; with `media`, with its embedded Janus
/// (`ROOMD_MEDIA=janus`), else without any (`ROOMD_MEDIA=off`).
pub(crate) async fn start_roomd(
    bin: &PathBuf,
    url: &str,
    master_key: &str,
    media: bool,
) -> Result<Server> {
    let port = free_port()?;
    let work = std::env::temp_dir().join(format!(
        "roomd-bench-{}-{}",
        std::process::id(),
        if media { "media" } else { "api" }
    ));
    std::fs::create_dir_all(&work)?;
    let child = Command::new(bin)
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("ROOMD_BIND", format!("127.0.0.1:{port}"))
        .env("ROOMD_METRICS_BIND", "main")
        .env("ROOMD_DB_POOL_SIZE", POOL_SIZE.to_string())
        .env("ROOMD_MASTER_KEY", master_key)
        .env("ROOMD_MEDIA", if media { "janus" } else { "off" })
        .env("ROOMD_DATA_DIR", &work)
        // The load is one account's, far past the default per-account rate: the benchmark
        // measures the service, not the limit (the limit's check still runs on every request).
        .env("ROOMD_ACCOUNT_REQUESTS_PER_SECOND", "1000000")
        .env("RUST_LOG", "warn")
        .env("ROOMD_LOG_FORMAT", "text")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("roomd.log"))?)
        .spawn()?;
    let server = Server {
        child,
        addr: format!("127.0.0.1:{port}"),
        work,
    };
    for _ in 0..600 {
        if let Ok(mut s) = TcpStream::connect(&server.addr).await {
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            if out.starts_with("HTTP/1.1 200") || out.starts_with("HTTP/1.0 200") {
                return Ok(server);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(server.work.join("roomd.log")).unwrap_or_default();
    bail!("roomd did not become healthy; its log:\n{log}")
}

pub(crate) fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub(crate) fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

pub(crate) async fn argon2_count(addr: &str) -> Result<f64> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out
        .lines()
        .find_map(|l| l.strip_prefix("roomd_argon2_verifications_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}
