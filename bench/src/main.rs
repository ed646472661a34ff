//! roomd-bench: roomd's throughput and latency as ratios to the same SQL run directly, in one run.
//!
//! `cargo run --release -p roomd-bench -- [--quick] [--json PATH] [--rooms N] [--seconds S]`
//!
//! Preloads rooms with SQL, starts the real `roomd serve` (the binary beside this one) on that
//! database, drives it with a closed-loop HTTP/1.1 keep-alive load generator, and alternates each
//! API run with the same db functions roomd calls, run through an sqlx pool of the same size at
//! the same concurrency. Only loopback is used.

use anyhow::{bail, Context, Result};
use clap::Parser;
use roomd::auth::master_key::MasterKey;
use roomd::db::embedded::{EmbeddedPostgres, Mode};
use roomd::db::participant_join::Join;
use roomd::db::participants::{self, ParticipantFilter};
use roomd::db::room_list::RoomFilter;
use roomd::db::rooms::{self, RoomKey};
use roomd::db::worker_pool::BreaksConnection;
use roomd::db::{PoolLimits, WorkerPool};
use roomd::domain::create_room::CreateRoom;
use roomd::domain::participant::Identity;
use roomd::domain::room::RoomStatus;
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

mod callbacks;
mod claims;
mod composition;
mod console;
mod conversion;
mod data;
mod direct;
mod load;
mod report;
mod server;

use data::*;
use direct::*;
use load::*;
use report::*;
use server::*;

// ---------------------------------------------------------------- scenarios

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
    let fresh = match name {
        "complete" => completions,
        // Joins run a few times slower than completions.
        "join" => completions / 4 / JOINS_PER_ROOM as i64,
        // Joins with the media plane's work (a Janus room, a token, the allowed list) each.
        "join_media" => completions / 16 / JOINS_PER_ROOM as i64,
        _ => 0,
    };
    let (to_complete_api, to_complete_sql) = if fresh > 0 {
        (
            fresh_rooms(pool, fresh).await?,
            fresh_rooms(pool, fresh).await?,
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
        "list_completed_by_name" => {
            let names = data.completed_names.clone();
            (
                200,
                Arc::new(move |_, n| {
                    (
                        "GET",
                        format!(
                            "/v1/Rooms?Status=completed&UniqueName={}&PageSize=50",
                            roomd::twilio::form::encode(pick(&names, n))
                        ),
                        None,
                    )
                }),
            )
        }
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
        "join" | "join_media" => {
            let (sids, tag) = (to_complete_api.clone(), run_tag.clone());
            (
                201,
                Arc::new(move |_, n| {
                    let sid = sids
                        .get((n / JOINS_PER_ROOM) as usize)
                        .map_or("exhausted", String::as_str);
                    (
                        "POST",
                        format!("/v1/Rooms/{sid}/Participants"),
                        Some(format!("Identity=api-{tag}-{n}")),
                    )
                }),
            )
        }
        "list_participants" => {
            let room = data.crowded_room.clone();
            (
                200,
                Arc::new(move |_, _| {
                    (
                        "GET",
                        format!("/v1/Rooms/{room}/Participants?PageSize=50"),
                        None,
                    )
                }),
            )
        }
        "subscribed_tracks" => {
            let room = data.crowded_room.clone();
            (
                200,
                Arc::new(move |_, _| {
                    (
                        "GET",
                        format!(
                            "/v1/Rooms/{room}/Participants/user-1/SubscribedTracks?PageSize=50"
                        ),
                        None,
                    )
                }),
            )
        }
        other => bail!("unknown scenario {other}"),
    };
    let api = http_run(addr, concurrency, secs, expect, make).await?;

    // The same db functions roomd calls for this scenario, straight through an sqlx pool (the
    // baseline) and, at the main concurrency, through roomd's own worker pool.
    // A join with media runs the same statements as one without: its baseline is the same.
    let baseline = if name == "join_media" { "join" } else { name };
    let sql = direct_run(
        baseline,
        Direct::Sqlx(pool.clone()),
        data,
        concurrency,
        secs,
        to_complete_sql,
    )
    .await?;
    let own_pool = if with_own_pool {
        let to_complete = if fresh > 0 {
            fresh_rooms(pool, fresh).await?
        } else {
            Arc::new(Vec::new())
        };
        let own = WorkerPool::new(
            (*pool.connect_options()).clone(),
            POOL_SIZE,
            PoolLimits::default(),
        );
        Some(
            direct_run(
                baseline,
                Direct::Own(own),
                data,
                concurrency,
                secs,
                to_complete,
            )
            .await?,
        )
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
            Ok(url) if !url.is_empty() => {
                (roomd::app::setting_values::parse_database_url(&url)?, None)
            }
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
    // One master key for the tokens the preload seals and the server that opens them.
    let key_b64 = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &roomd::domain::sid::random_hex32().as_bytes()[..32],
    );
    let key =
        roomd::auth::master_key::MasterKey::from_base64("the benchmark's master key", &key_b64)?;
    preload(&pool, rooms_n, &key).await?;
    eprintln!("preloaded in {:.1} s", t.elapsed().as_secs_f64());
    let data = load_data(&pool).await?;

    let server = start_roomd(&bin, &url, &key_b64, false).await?;
    // The same binary with its embedded Janus, for `join_media` (where Janus is installed).
    let media_server = if roomd::media::embedded::find_binary().is_some() {
        Some(start_roomd(&bin, &url, &key_b64, true).await?)
    } else {
        eprintln!("no janus binary: join_media is left out");
        None
    };
    let cpu0 = own_cpu_seconds();
    let wall0 = Instant::now();
    let names = [
        "create",
        "fetch",
        "fetch_by_name",
        "list",
        "list_completed_by_name",
        "list_deep",
        "complete",
        "join",
        "join_media",
        "list_participants",
        "subscribed_tracks",
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
            let addr = match (name, &media_server) {
                ("join_media", Some(m)) => &m.addr,
                ("join_media", None) => continue,
                _ => &server.addr,
            };
            let r = scenario(name, addr, &pool, &data, concurrency, secs, main).await?;
            eprintln!("{:>14} c={:<3} api {:>8.0}/s p50 {:>6.2} ms p99 {:>6.2} ms | sql {:>8.0}/s | ratio {:.2} | own pool {} | api errors {}",
                r.name, r.concurrency, r.api_ops_per_s, r.p50_ms, r.p99_ms, r.sql_ops_per_s, r.ratio,
                r.own_pool_sql_ops_per_s.map_or("-".into(), |o| format!("{o:.0}/s")), r.api_errors);
            results.push(r);
        }
    }
    let argon2_steady = argon2_count(&server.addr).await? - argon2_before;
    // The console's polling, against the API lists its pages resemble.
    let console = if args.only.is_empty() || args.only.iter().any(|o| o == "console") {
        let c = console::run(&server.addr, &data, secs).await?;
        eprintln!(
            "       console rooms page poll {:.0}/s p50 {:.2} ms (API list {:.0}/s, ratio {:.2}) | room page poll {:.0}/s p50 {:.2} ms (API participants {:.0}/s, ratio {:.2})",
            c.rooms_polls_per_s, c.rooms_poll_p50_ms, c.api_rooms_list_per_s, c.rooms_ratio,
            c.room_polls_per_s, c.room_poll_p50_ms, c.api_participants_list_per_s, c.room_ratio
        );
        Some(c)
    } else {
        None
    };
    let callbacks = if args.only.is_empty() || args.only.iter().any(|o| o == "callbacks") {
        let c = callbacks::run(&pool, secs).await?;
        eprintln!(
            "     callbacks burst of {} made at {:.0}/s, delivered at {:.0}/s | at {:.0}/s: lag p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            c.burst_events, c.burst_created_per_s, c.burst_events_per_s, c.paced_events_per_s, c.lag_p50_ms, c.lag_p99_ms, c.lag_max_ms
        );
        Some(c)
    } else {
        None
    };
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
    drop(media_server);

    // The sweeper: up to 100,000 rooms (10% of the preload) made due, then ended in batches.
    // (Set-up, not measured: exempt from the statement timeout every roomd connection carries.
    // The statistics are brought up to date first, as autovacuum keeps them in production: the
    // participants' were taken when only the crowded room had any.)
    sqlx::query("ANALYZE participants").execute(&pool).await?;
    let due = (rooms_n / 10).min(100_000);
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE rooms SET deadline = now() - interval '1 second', deadline_reason = 'unused_timeout' WHERE sid IN \
         (SELECT sid FROM rooms WHERE status = 'in-progress' LIMIT $1)",
    )
    .bind(due)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let t = Instant::now();
    let ended = roomd::workers::sweeper::sweep_once(&pool, None)
        .await?
        .rooms
        .len();
    let sweeper_rate = ended as f64 / t.elapsed().as_secs_f64();

    // The dispatcher's claim with no backlog, then with one (1,000,000 events; 20,000 quick)
    // queued behind receivers that never answer.
    let claim_cost = if args.only.is_empty() || args.only.iter().any(|o| o == "claims") {
        let backlog = if args.quick { 20_000 } else { 1_000_000 };
        let c = claims::run(&pool, backlog, if args.quick { 50 } else { 500 }).await?;
        eprintln!(
            "        claims p50 {:.2} ms p99 {:.2} ms with no backlog | p50 {:.2} ms p99 {:.2} ms with {} events queued behind dead receivers",
            c.empty_p50_ms, c.empty_p99_ms, c.backlog_p50_ms, c.backlog_p99_ms, c.backlog_events
        );
        Some(c)
    } else {
        None
    };

    // Recording conversion: roomd's against janus-pp-rec alone.
    let conversion = if args.only.is_empty() || args.only.iter().any(|o| o == "conversion") {
        conversion::run(args.quick).await?
    } else {
        None
    };

    // Composition: a 4-participant grid against the encoder alone on one participant.
    let composition = if args.only.is_empty() || args.only.iter().any(|o| o == "composition") {
        composition::run(args.quick).await?
    } else {
        Vec::new()
    };

    let p50 = |n: &str| {
        results
            .iter()
            .find(|r| r.name == n && r.concurrency == args.concurrency)
            .map_or(0.0, |r| r.p50_ms)
    };
    let join_media_vs_join = (p50("join_media") > 0.0).then(|| {
        let ops = |n: &str| {
            results
                .iter()
                .find(|r| r.name == n && r.concurrency == args.concurrency)
                .map_or(0.0, |r| r.api_ops_per_s)
        };
        ratio(ops("join_media"), ops("join"))
    });
    let report = Report {
        join_media_vs_join,
        conversion,
        composition,
        deep_page_ratio: if p50("list") > 0.0 {
            p50("list_deep") / p50("list")
        } else {
            0.0
        },
        scenarios: results,
        console,
        callbacks,
        claims: claim_cost,
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
