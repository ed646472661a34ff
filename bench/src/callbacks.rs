//! The `callbacks` scenario: status callbacks from roomd's dispatcher to a local receiver that
//! answers 204 at once. Events are made by the same statement roomd runs to create a room (the
//! event is written with it), called directly, so that the load generator costs little.
//! Two measures: a burst (how fast a backlog drains: events delivered per second), and a paced
//! load (the lag from each event's commit to its arrival, at a fixed rate).

use super::*;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Serialize)]
pub(crate) struct CallbackResult {
    pub(crate) burst_events: usize,
    pub(crate) burst_events_per_s: f64,
    /// How fast the burst's rooms (and events) were made: delivery cannot outrun it.
    pub(crate) burst_created_per_s: f64,
    pub(crate) paced_events_per_s: f64,
    pub(crate) paced_events: usize,
    pub(crate) lag_p50_ms: f64,
    pub(crate) lag_p99_ms: f64,
    pub(crate) lag_max_ms: f64,
}

/// When each event arrived, by `RoomSid`, with its `Timestamp` (the commit, to the ms).
type Arrivals =
    Arc<Mutex<HashMap<String, (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>>>;

/// A keep-alive HTTP/1.1 receiver on loopback answering 204 at once; its URL.
async fn receiver(arrivals: Arrivals) -> Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/events", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let _ = serve(stream, arrivals).await;
            });
        }
    });
    Ok(url)
}

async fn serve(stream: TcpStream, arrivals: Arrivals) -> Result<()> {
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    let mut head = Vec::new();
    loop {
        head.clear();
        loop {
            let b = match stream.read_u8().await {
                Ok(b) => b,
                Err(_) => return Ok(()),
            };
            head.push(b);
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let text = std::str::from_utf8(&head)?;
        let len: usize = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        let now = chrono::Utc::now();
        let (mut room, mut at) = (None, None);
        for (k, v) in url::form_urlencoded::parse(&body) {
            match &*k {
                "RoomSid" => room = Some(v.into_owned()),
                "Timestamp" => {
                    at = chrono::DateTime::parse_from_rfc3339(&v)
                        .ok()
                        .map(|t| t.with_timezone(&chrono::Utc))
                }
                _ => {}
            }
        }
        if let (Some(room), Some(at)) = (room, at) {
            arrivals.lock().unwrap().insert(room, (at, now));
        }
        stream
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await?;
    }
}

/// Creates `n` rooms calling `url`, `tasks` at a time, at most `rate` per second (unpaced with
/// `None`); their SIDs.
async fn create_rooms(
    pool: &PgPool,
    url: &str,
    n: usize,
    tasks: usize,
    rate: Option<f64>,
) -> Result<Vec<String>> {
    let params = Params::parse(format!("StatusCallback={}", urlencode(url)).as_bytes())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let form = Arc::new(CreateRoom::from_params(&params).map_err(|e| anyhow::anyhow!("{e}"))?);
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (pool, form, next) = (pool.clone(), form.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut sids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, anyhow::Error>(sids);
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let sid = roomd::domain::sid::RoomSid::generate();
                rooms::insert(&pool, &account_sid(0), &sid, &form)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                sids.push(sid.to_string());
            }
        }));
    }
    let mut sids = Vec::with_capacity(n);
    for h in handles {
        sids.extend(h.await??);
    }
    Ok(sids)
}

fn urlencode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Waits until every room of `sids` has its event (up to `limit`); when the last arrived. It
/// counts rather than looks each one up: at 30,000 events, a look-up of each every 2 ms took
/// the load generator's cores from the receiver.
async fn all_arrived(arrivals: &Arrivals, sids: &[String], limit: Duration) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    let before = {
        let got = arrivals.lock().unwrap();
        got.len() - sids.iter().filter(|s| got.contains_key(*s)).count()
    };
    loop {
        if arrivals.lock().unwrap().len() >= before + sids.len() {
            let got = arrivals.lock().unwrap();
            let missing = sids.iter().filter(|s| !got.contains_key(*s)).count();
            if missing == 0 {
                return Ok(Instant::now());
            }
            bail!("{missing} status callbacks are missing, and others arrived instead");
        }
        if Instant::now() > deadline {
            let got = arrivals.lock().unwrap().len() - before;
            bail!(
                "{} of {} status callbacks never arrived",
                sids.len() - got,
                sids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

pub(crate) async fn run(pool: &PgPool, secs: f64) -> Result<CallbackResult> {
    let arrivals: Arrivals = Arc::default();
    let url = receiver(arrivals.clone()).await?;
    // Burst: a backlog made as fast as 16 tasks can, drained by the dispatcher meanwhile.
    let burst = (3_000.0 * secs).max(2_000.0) as usize;
    let t = Instant::now();
    let sids = create_rooms(pool, &url, burst, 16, None).await?;
    let created = t.elapsed();
    let last = all_arrived(&arrivals, &sids, Duration::from_secs(300)).await?;
    let burst_rate = burst as f64 / (last - t).as_secs_f64();
    // Paced: 500 events/s for the run's length; the lag of each from its commit.
    let rate = 500.0;
    let paced = (rate * secs) as usize;
    let sids = create_rooms(pool, &url, paced, 16, Some(rate)).await?;
    all_arrived(&arrivals, &sids, Duration::from_secs(60)).await?;
    let mut lags: Vec<f64> = {
        let got = arrivals.lock().unwrap();
        sids.iter()
            .map(|s| {
                let (at, arrived) = got[s];
                ((arrived - at).num_microseconds().unwrap_or(0) as f64 / 1000.0).max(0.0)
            })
            .collect()
    };
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| lags[((lags.len() as f64 * p) as usize).min(lags.len() - 1)];
    Ok(CallbackResult {
        burst_events: burst,
        burst_events_per_s: burst_rate,
        burst_created_per_s: burst as f64 / created.as_secs_f64(),
        paced_events_per_s: rate,
        paced_events: paced,
        lag_p50_ms: pct(0.5),
        lag_p99_ms: pct(0.99),
        lag_max_ms: lags.last().copied().unwrap_or(0.0),
    })
}
