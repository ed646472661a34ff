//! roomd-bench: roomd's throughput and latency as ratios to the same SQL run directly, in one run.
//!
//! `cargo run --release --bin roomd-bench -- [--quick] [--json PATH] [--rooms N] [--seconds S]`
//!
//! Preloads rooms with SQL, starts the real `roomd serve` (the binary beside this one) on that
//! database, drives it with a closed-loop HTTP/1.1 keep-alive load generator, and alternates each
//! API run with the same db functions roomd calls, run through an sqlx pool of the same size at
//! the same concurrency. Only loopback is used.

use anyhow::{bail, Context, Result};
use clap::Parser;
use roomd::db::embedded::{EmbeddedPostgres, Mode};
use roomd::db::rooms::{self, RoomFilter, RoomKey};
use roomd::db::worker_pool::BreaksConnection;
use roomd::db::{PoolLimits, WorkerPool};
use roomd::domain::room::{CreateRoom, RoomStatus};
use roomd::twilio::form::Params;
use roomd::twilio::paging::{Cursor, PageRequest};
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{PgConnection, PgPool};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(about = "roomd throughput and latency against direct SQL on the same database")]
struct Args {
    /// A small database and one-second runs (for CI: checks the benchmark works, not the numbers).
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Rooms to preload (default 1,000,000; 20,000 with --quick).
    #[arg(long)]
    rooms: Option<i64>,
    /// Seconds per run (default 10; 1 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Connections of the main measurement (a second one at 8 is always reported).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Run only these scenarios (comma-separated; default all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const ACCOUNTS: i64 = 100;
const POOL_SIZE: u32 = 10;

fn account_sid(i: i64) -> String {
    format!("AC{i:032x}")
}

// ---------------------------------------------------------------- preload

async fn preload(pool: &PgPool, rooms: i64) -> Result<()> {
    let hash = roomd::auth::hash_token(TOKEN);
    for i in 0..ACCOUNTS {
        roomd::db::accounts::upsert(pool, &account_sid(i), &format!("bench {i}"), &hash).await?;
    }
    // 60% of the rooms in account 0 (so a page 10,000 pages deep exists), the rest over the other
    // 99; every 10th room in progress; created over 100 days.
    let chunk = 100_000;
    let mut start = 0;
    while start < rooms {
        let end = (start + chunk).min(rooms);
        sqlx::query(
            "INSERT INTO rooms (sid, account_sid, status, type, unique_name, status_callback_method, \
                max_participants, max_participant_duration, max_concurrent_published_tracks, \
                record_participants_on_connect, video_codecs, media_region, audio_only, \
                empty_room_timeout, unused_room_timeout, large_room, date_created, date_updated, \
                end_time, duration, end_reason, deadline, deadline_reason) \
             SELECT 'RM' || md5('bench' || g), \
                'AC' || lpad(to_hex(CASE WHEN g % 10 < 6 THEN 0 ELSE 1 + g % 99 END), 32, '0'), \
                CASE WHEN ip THEN 'in-progress' ELSE 'completed' END, 'group', 'pre-' || g, 'POST', \
                50, 14400, 0, false, ARRAY['VP8'], 'us1', false, 5, 5, false, created, created, \
                CASE WHEN ip THEN NULL ELSE created + interval '10 minutes' END, \
                CASE WHEN ip THEN NULL ELSE 600 END, CASE WHEN ip THEN NULL ELSE 'rest' END, \
                CASE WHEN ip THEN now() + interval '1 day' END, CASE WHEN ip THEN 'unused_timeout' END \
             FROM (SELECT g, g % 10 = 3 AS ip, \
                     now() - (g % 100) * interval '1 day' - (g % 86400) * interval '1 second' AS created \
                   FROM generate_series($1::bigint, $2::bigint - 1) g) s",
        )
        .bind(start)
        .bind(end)
        .execute(pool)
        .await?;
        start = end;
    }
    sqlx::query("ANALYZE rooms").execute(pool).await?;
    Ok(())
}

// ---------------------------------------------------------------- the HTTP load generator

/// One keep-alive HTTP/1.1 connection. Minimal on purpose: the load generator shares two cores
/// with roomd and PostgreSQL, so it must cost as little as it can.
struct Conn {
    stream: BufReader<TcpStream>,
    auth: String,
    host: String,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{TOKEN}", account_sid(0)),
        );
        Ok(Conn {
            stream: BufReader::new(stream),
            auth: format!("Basic {basic}"),
            host: addr.to_string(),
            buf: Vec::new(),
        })
    }

    /// Sends one request and returns the status code (the body is read and dropped).
    async fn request(&mut self, method: &str, path: &str, form: Option<&str>) -> Result<u16> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n",
            self.host, self.auth
        );
        if let Some(body) = form {
            req.push_str(&format!("Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            req.push_str("\r\n");
        }
        self.stream.get_mut().write_all(req.as_bytes()).await?;
        // Headers, then Content-Length bytes of body.
        self.buf.clear();
        loop {
            let b = self.stream.read_u8().await?;
            self.buf.push(b);
            if self.buf.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let head = std::str::from_utf8(&self.buf)?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .context("no status")?
            .parse()?;
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                    .map(|(_, v)| v.trim())
            })
            .context("no content-length")?
            .parse()?;
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).await?;
        Ok(status)
    }
}

/// What one scenario's request is: method, path and form body for the `i`-th request.
type MakeRequest = Arc<dyn Fn(usize, u64) -> (&'static str, String, Option<String>) + Send + Sync>;

#[derive(Default, Clone, Copy, Serialize)]
struct Run {
    ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn summarize(mut latencies_us: Vec<u32>, elapsed: Duration, errors: u64) -> Run {
    latencies_us.sort_unstable();
    let pct = |p: f64| {
        if latencies_us.is_empty() {
            0.0
        } else {
            latencies_us[((latencies_us.len() - 1) as f64 * p) as usize] as f64 / 1000.0
        }
    };
    Run {
        ops_per_s: latencies_us.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
        errors,
    }
}

async fn http_run(
    addr: &str,
    concurrency: usize,
    secs: f64,
    expect: u16,
    make: MakeRequest,
) -> Result<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (addr, make, counter, errors) = (
            addr.to_string(),
            make.clone(),
            counter.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr).await?;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let (method, path, form) = make(c, counter.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                let status = conn.request(method, &path, form.as_deref()).await?;
                lat.push(t.elapsed().as_micros() as u32);
                if status != expect {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(summarize(
        all,
        started.elapsed(),
        errors.load(Ordering::Relaxed),
    ))
}

async fn sql_run<F, Fut>(concurrency: usize, secs: f64, op: F) -> Result<Run>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, counter) = (op.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                op(counter.fetch_add(1, Ordering::Relaxed)).await?;
                lat.push(t.elapsed().as_micros() as u32);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(summarize(all, started.elapsed(), 0))
}

// ---------------------------------------------------------------- roomd, the process

struct Server {
    child: Child,
    addr: String,
    work: PathBuf,
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

fn roomd_binary() -> Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().context("no parent")?;
    let bin = dir.join("roomd");
    let profile = if dir.ends_with("release") {
        vec!["--release"]
    } else {
        vec![]
    };
    // `cargo run --bin roomd-bench` builds only the benchmark: build the server beside it.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--quiet", "--bin", "roomd"])
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

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn start_roomd(bin: &PathBuf, url: &str) -> Result<Server> {
    let port = free_port()?;
    let work = std::env::temp_dir().join(format!("roomd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let child = Command::new(bin)
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("ROOMD_BIND", format!("127.0.0.1:{port}"))
        .env("ROOMD_METRICS_BIND", "main")
        .env("ROOMD_DB_POOL_SIZE", POOL_SIZE.to_string())
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

fn peak_rss_mb(pid: u32) -> f64 {
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

fn own_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

async fn argon2_count(addr: &str) -> Result<f64> {
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

// ---------------------------------------------------------------- scenarios

#[derive(Serialize)]
struct ScenarioResult {
    name: String,
    concurrency: usize,
    api_ops_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    api_errors: u64,
    sql_ops_per_s: f64,
    sql_p50_ms: f64,
    ratio: f64,
    /// The same statements through roomd's own worker pool (main concurrency only): what the
    /// HTTP layer costs over the best direct path, without sqlx's release round trip.
    own_pool_sql_ops_per_s: Option<f64>,
    ratio_to_own_pool: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    scenarios: Vec<ScenarioResult>,
    sweeper_rooms_per_s: f64,
    deep_page_ratio: f64,
    argon2_verifications_steady: f64,
    requests_steady: f64,
    peak_rss_mb: f64,
    concurrency: usize,
    rooms_preloaded: i64,
    load_generator_cpu_share: f64,
    seconds_per_run: f64,
}

struct Data {
    sids: Arc<Vec<String>>,
    names: Arc<Vec<String>>,
    deep_token: String,
}

/// `n` fresh in-progress rooms of account 0 for a `complete` run to end (made untimed, with SQL),
/// so that every timed completion ends a room that is really in progress.
async fn rooms_to_complete(pool: &PgPool, n: i64) -> Result<Arc<Vec<String>>> {
    let prefix = format!("complete-{:x}", rand_u64());
    Ok(Arc::new(
        rooms::insert_many_in_progress(pool, &account_sid(0), &prefix, n, 86_400.0).await?,
    ))
}

async fn load_data(pool: &PgPool) -> Result<Data> {
    let acct = account_sid(0);
    let in_progress: Vec<(String, String)> = sqlx::query_as(
        "SELECT sid, unique_name FROM rooms WHERE account_sid = $1 AND status = 'in-progress' ORDER BY sid",
    )
    .bind(&acct)
    .fetch_all(pool)
    .await?;
    let completed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rooms WHERE account_sid = $1 AND status = 'completed'",
    )
    .bind(&acct)
    .fetch_one(pool)
    .await?;
    // The room about 10,000 pages of 50 in (or as deep as the data goes).
    let depth = (10_000 * 50).min((completed - 100).max(0));
    let deep_sid: String = sqlx::query_scalar(
        "SELECT sid FROM rooms WHERE account_sid = $1 AND status = 'completed' \
         ORDER BY date_created DESC, sid DESC OFFSET $2 LIMIT 1",
    )
    .bind(&acct)
    .bind(depth)
    .fetch_one(pool)
    .await?;
    Ok(Data {
        sids: Arc::new(in_progress.iter().map(|r| r.0.clone()).collect()),
        names: Arc::new(in_progress.iter().map(|r| r.1.clone()).collect()),
        deep_token: format!("PA{deep_sid}"),
    })
}

fn pick(v: &[String], n: u64) -> &str {
    // A cheap scramble so consecutive requests hit scattered rows.
    &v[(n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16) as usize % v.len()]
}

async fn scenario(
    name: &str,
    addr: &str,
    pool: &PgPool,
    data: &Data,
    concurrency: usize,
    secs: f64,
    with_own_pool: bool,
) -> Result<ScenarioResult> {
    // Enough fresh rooms for a completion run at up to 40,000/s: the direct-SQL baseline on its
    // own pool passed 10,000/s on a quiet machine and ran out.
    let completions = (40_000.0 * secs) as i64;
    let (to_complete_api, to_complete_sql) = if name == "complete" {
        (
            rooms_to_complete(pool, completions).await?,
            rooms_to_complete(pool, completions).await?,
        )
    } else {
        (Arc::new(Vec::new()), Arc::new(Vec::new()))
    };
    let run_tag = format!("{:x}", rand_u64());
    let (expect, make): (u16, MakeRequest) = match name {
        "create" => {
            let tag = run_tag.clone();
            (
                201,
                Arc::new(move |c, n| {
                    (
                        "POST",
                        "/v1/Rooms".to_string(),
                        Some(format!("UniqueName=api-{tag}-{c}-{n}")),
                    )
                }),
            )
        }
        "fetch" => {
            let sids = data.sids.clone();
            (
                200,
                Arc::new(move |_, n| ("GET", format!("/v1/Rooms/{}", pick(&sids, n)), None)),
            )
        }
        "fetch_by_name" => {
            let names = data.names.clone();
            (
                200,
                Arc::new(move |_, n| ("GET", format!("/v1/Rooms/{}", pick(&names, n)), None)),
            )
        }
        "list" => (
            200,
            Arc::new(|_, _| ("GET", "/v1/Rooms?PageSize=50".to_string(), None)),
        ),
        "list_deep" => {
            let token = data.deep_token.clone();
            (
                200,
                Arc::new(move |_, _| {
                    (
                        "GET",
                        format!(
                            "/v1/Rooms?Status=completed&PageSize=50&Page=10000&PageToken={token}"
                        ),
                        None,
                    )
                }),
            )
        }
        "complete" => {
            let sids = to_complete_api.clone();
            (
                202,
                Arc::new(move |_, n| {
                    let sid = sids.get(n as usize).map_or("exhausted", String::as_str);
                    (
                        "POST",
                        format!("/v1/Rooms/{sid}"),
                        Some("Status=completed".to_string()),
                    )
                }),
            )
        }
        other => bail!("unknown scenario {other}"),
    };
    let api = http_run(addr, concurrency, secs, expect, make).await?;

    // The same db functions roomd calls for this scenario, straight through an sqlx pool (the
    // baseline) and, at the main concurrency, through roomd's own worker pool.
    let sql = direct_run(
        name,
        Direct::Sqlx(pool.clone()),
        data,
        concurrency,
        secs,
        to_complete_sql,
    )
    .await?;
    let own_pool = if with_own_pool {
        let to_complete = if name == "complete" {
            rooms_to_complete(pool, completions).await?
        } else {
            Arc::new(Vec::new())
        };
        let own = WorkerPool::new(
            (*pool.connect_options()).clone(),
            POOL_SIZE,
            PoolLimits::default(),
        );
        Some(direct_run(name, Direct::Own(own), data, concurrency, secs, to_complete).await?)
    } else {
        None
    };
    Ok(ScenarioResult {
        name: name.to_string(),
        concurrency,
        api_ops_per_s: api.ops_per_s,
        p50_ms: api.p50_ms,
        p99_ms: api.p99_ms,
        api_errors: api.errors,
        sql_ops_per_s: sql.ops_per_s,
        sql_p50_ms: sql.p50_ms,
        ratio: ratio(api.ops_per_s, sql.ops_per_s),
        own_pool_sql_ops_per_s: own_pool.map(|r| r.ops_per_s),
        ratio_to_own_pool: own_pool.map(|r| ratio(api.ops_per_s, r.ops_per_s)),
    })
}

fn ratio(api: f64, sql: f64) -> f64 {
    if sql > 0.0 {
        api / sql
    } else {
        0.0
    }
}

/// Where a direct run sends its statements: an sqlx pool (the baseline), or roomd's own
/// worker pool (to show what the pool itself is worth).
enum Direct {
    Sqlx(PgPool),
    Own(Arc<WorkerPool>),
}

impl Direct {
    async fn run<T, E>(
        &self,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<sqlx::Error> + BreaksConnection,
    {
        match self {
            // What `query.fetch_*(&pool)` does: acquire, run, and release (sqlx pings on release).
            Direct::Sqlx(pool) => work(&mut *pool.acquire().await?).await,
            Direct::Own(pool) => pool.run(work).await,
        }
    }
}

/// The direct-SQL side of one scenario.
async fn direct_run(
    name: &str,
    direct: Direct,
    data: &Data,
    concurrency: usize,
    secs: f64,
    to_complete: Arc<Vec<String>>,
) -> Result<Run> {
    let acct = account_sid(0);
    let run_tag = format!("{:x}", rand_u64());
    let pool = Arc::new(direct);
    let run = match name {
        "create" => {
            let room =
                CreateRoom::from_params(&Params::parse(b"").map_err(|e| anyhow::anyhow!("{e}"))?)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            sql_run(concurrency, secs, move |n| {
                let (pool, acct, mut room, tag) =
                    (pool.clone(), acct.clone(), room.clone(), run_tag.clone());
                async move {
                    room.unique_name = Some(
                        roomd::domain::room::UniqueName::parse(&format!("sql-{tag}-{n}"))
                            .map_err(|e| anyhow::anyhow!("{e}"))?,
                    );
                    let sid = roomd::domain::sid::RoomSid::generate();
                    pool.run(async |c| rooms::insert(c, &acct, &sid, &room).await)
                        .await?;
                    Ok(())
                }
            })
            .await?
        }
        "fetch" | "fetch_by_name" => {
            let by_name = name == "fetch_by_name";
            let keys = if by_name {
                data.names.clone()
            } else {
                data.sids.clone()
            };
            sql_run(concurrency, secs, move |n| {
                let (pool, acct, keys) = (pool.clone(), acct.clone(), keys.clone());
                async move {
                    let k = pick(&keys, n);
                    let key = if by_name {
                        RoomKey::Name(k)
                    } else {
                        RoomKey::Sid(k)
                    };
                    pool.run(async |c| rooms::fetch(c, &acct, key).await)
                        .await?
                        .context("room missing")?;
                    Ok(())
                }
            })
            .await?
        }
        "list" | "list_deep" => {
            let deep = name == "list_deep";
            let query = if deep {
                format!(
                    "Status=completed&PageSize=50&Page=10000&PageToken={}",
                    data.deep_token
                )
            } else {
                "PageSize=50".to_string()
            };
            let page = PageRequest::from_params(
                &Params::parse(query.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?,
                "RM",
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            assert!(deep == matches!(page.cursor, Cursor::After(_)));
            let filter = RoomFilter {
                status: if deep {
                    RoomStatus::Completed
                } else {
                    RoomStatus::InProgress
                },
                unique_name: None,
                created_on_or_after: None,
                created_before: None,
            };
            sql_run(concurrency, secs, move |_| {
                let (pool, acct, filter, page) =
                    (pool.clone(), acct.clone(), filter.clone(), page.clone());
                async move {
                    match pool
                        .run(async |c| rooms::list(c, &acct, &filter, &page).await)
                        .await
                    {
                        Ok(p) if p.rows.len() == 50 => Ok(()),
                        Ok(_) => bail!("short page"),
                        Err(_) => bail!("list failed"),
                    }
                }
            })
            .await?
        }
        "complete" => {
            let sids = to_complete.clone();
            sql_run(concurrency, secs, move |n| {
                let (pool, acct, sids) = (pool.clone(), acct.clone(), sids.clone());
                async move {
                    let sid = sids
                        .get(n as usize)
                        .context("ran out of rooms to complete")?;
                    pool.run(async |c| rooms::complete(c, &acct, RoomKey::Sid(sid)).await)
                        .await?
                        .context("room was not in progress")?;
                    Ok(())
                }
            })
            .await?
        }
        _ => unreachable!(),
    };
    Ok(run)
}

fn rand_u64() -> u64 {
    u64::from_str_radix(&roomd::domain::sid::random_hex32()[..16], 16).unwrap_or(0)
}

// ---------------------------------------------------------------- main

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let rooms_n = args
        .rooms
        .unwrap_or(if args.quick { 20_000 } else { 1_000_000 });
    let secs = args.seconds.unwrap_or(if args.quick { 1.0 } else { 10.0 });
    let bin = roomd_binary()?;

    // The database: DATABASE_URL's server (a fresh database in it), else a scratch embedded
    // cluster with production durability settings (fsync on).
    let (admin, _pg): (PgConnectOptions, Option<EmbeddedPostgres>) =
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => (roomd::config::parse_database_url(&url)?, None),
            _ => {
                let pg =
                    tokio::task::spawn_blocking(|| EmbeddedPostgres::start(Mode::Scratch, None))
                        .await??;
                (pg.connect_options("postgres"), Some(pg))
            }
        };
    let db_name = format!("roomd_bench_{}", &roomd::domain::sid::random_hex32()[..8]);
    {
        use sqlx::{Connection, Executor};
        let mut c = sqlx::PgConnection::connect_with(&admin).await?;
        c.execute(format!("CREATE DATABASE {db_name}").as_str())
            .await?;
        c.close().await?;
    }
    let options = admin.clone().database(&db_name);
    let url = match &_pg {
        Some(pg) => pg.url(&db_name),
        None => {
            let mut u = url::Url::parse(&std::env::var("DATABASE_URL")?)?;
            u.set_path(&format!("/{db_name}"));
            u.to_string()
        }
    };
    roomd::db::migrate::run(&options).await?;
    let pool = roomd::db::pool(options.clone(), POOL_SIZE).await?;
    let t = Instant::now();
    eprintln!("preloading {rooms_n} rooms over {ACCOUNTS} accounts ...");
    preload(&pool, rooms_n).await?;
    eprintln!("preloaded in {:.1} s", t.elapsed().as_secs_f64());
    let data = load_data(&pool).await?;

    let server = start_roomd(&bin, &url).await?;
    let cpu0 = own_cpu_seconds();
    let wall0 = Instant::now();
    let names = [
        "create",
        "fetch",
        "fetch_by_name",
        "list",
        "list_deep",
        "complete",
    ];
    // Warm up: connections, statement caches and the credential cache.
    http_run(
        &server.addr,
        4,
        0.5,
        200,
        Arc::new(|_, _| ("GET", "/v1/Rooms?PageSize=1".into(), None)),
    )
    .await?;
    let argon2_before = argon2_count(&server.addr).await?;
    let mut results = Vec::new();
    for concurrency in [args.concurrency, 8] {
        for name in names {
            if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
                continue;
            }
            let main = concurrency == args.concurrency;
            let r = scenario(name, &server.addr, &pool, &data, concurrency, secs, main).await?;
            eprintln!("{:>14} c={:<3} api {:>8.0}/s p50 {:>6.2} ms p99 {:>6.2} ms | sql {:>8.0}/s | ratio {:.2} | own pool {} | api errors {}",
                r.name, r.concurrency, r.api_ops_per_s, r.p50_ms, r.p99_ms, r.sql_ops_per_s, r.ratio,
                r.own_pool_sql_ops_per_s.map_or("-".into(), |o| format!("{o:.0}/s")), r.api_errors);
            results.push(r);
        }
    }
    let argon2_steady = argon2_count(&server.addr).await? - argon2_before;
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.api_errors > 0)
        .map(|r| r.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("API requests failed in {failed:?}: the numbers would mean nothing");
    }
    let requests_steady: f64 = results.iter().map(|r| r.api_ops_per_s * secs).sum();
    let cpu_share = (own_cpu_seconds() - cpu0)
        / wall0.elapsed().as_secs_f64()
        / std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let peak = peak_rss_mb(server.child.id());
    drop(server);

    // The sweeper: up to 100,000 rooms (10% of the preload) made due, then ended in batches.
    let due = (rooms_n / 10).min(100_000);
    sqlx::query(
        "UPDATE rooms SET deadline = now() - interval '1 second' WHERE sid IN \
         (SELECT sid FROM rooms WHERE status = 'in-progress' LIMIT $1)",
    )
    .bind(due)
    .execute(&pool)
    .await?;
    let t = Instant::now();
    let ended = roomd::sweeper::sweep_once(&pool, None).await?.len();
    let sweeper_rate = ended as f64 / t.elapsed().as_secs_f64();

    let p50 = |n: &str| {
        results
            .iter()
            .find(|r| r.name == n && r.concurrency == args.concurrency)
            .map_or(0.0, |r| r.p50_ms)
    };
    let report = Report {
        deep_page_ratio: if p50("list") > 0.0 {
            p50("list_deep") / p50("list")
        } else {
            0.0
        },
        scenarios: results,
        sweeper_rooms_per_s: sweeper_rate,
        argon2_verifications_steady: argon2_steady,
        requests_steady,
        peak_rss_mb: peak,
        concurrency: args.concurrency,
        rooms_preloaded: rooms_n,
        load_generator_cpu_share: cpu_share,
        seconds_per_run: secs,
    };
    print_table(&report, ended);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    pool.close().await;
    if _pg.is_none() {
        use sqlx::{Connection, Executor};
        let mut c = sqlx::PgConnection::connect_with(&admin).await?;
        c.execute(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)").as_str())
            .await?;
    }
    Ok(())
}

fn print_table(r: &Report, swept: usize) {
    println!(
        "| scenario | conns | API ops/s | p50 ms | p99 ms | direct SQL ops/s | ratio API/SQL | SQL via roomd's pool ops/s | ratio API/that |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let or_dash =
        |v: Option<f64>, decimals: usize| v.map_or("-".to_string(), |v| format!("{v:.decimals$}"));
    for s in &r.scenarios {
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {} | {} |",
            s.name,
            s.concurrency,
            s.api_ops_per_s,
            s.p50_ms,
            s.p99_ms,
            s.sql_ops_per_s,
            s.ratio,
            or_dash(s.own_pool_sql_ops_per_s, 0),
            or_dash(s.ratio_to_own_pool, 2)
        );
    }
    println!();
    println!(
        "rooms preloaded: {}; seconds per run: {}",
        r.rooms_preloaded, r.seconds_per_run
    );
    println!(
        "sweeper: {:.0} rooms/s ({swept} rooms)",
        r.sweeper_rooms_per_s
    );
    println!(
        "list_deep p50 / list p50 (at {} conns): {:.2}",
        r.concurrency, r.deep_page_ratio
    );
    println!(
        "argon2 verifications in the steady state: {} over {:.0} requests",
        r.argon2_verifications_steady, r.requests_steady
    );
    println!("roomd peak RSS: {:.1} MB", r.peak_rss_mb);
    println!(
        "load generator CPU share (of all cores): {:.0}%",
        r.load_generator_cpu_share * 100.0
    );
}
