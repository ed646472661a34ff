//! The load generators: HTTP/1.1 keep-alive connections against roomd, and the same calls made
//! directly; both closed-loop at a fixed concurrency.

use super::*;

/// One keep-alive HTTP/1.1 connection. Minimal on purpose: the load generator shares two cores
/// with roomd and PostgreSQL, so it must cost as little as it can.
pub(crate) struct Conn {
    pub(crate) stream: BufReader<TcpStream>,
    pub(crate) auth: String,
    pub(crate) host: String,
    /// Further header lines (`Name: value\r\n`) every request carries.
    pub(crate) extra: String,
    pub(crate) buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str, extra: &str) -> Result<Conn> {
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
            extra: extra.to_string(),
            buf: Vec::new(),
        })
    }

    /// Sends one request and returns the status code (the body is read and dropped).
    async fn request(&mut self, method: &str, path: &str, form: Option<&str>) -> Result<u16> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n{}",
            self.host, self.auth, self.extra
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
pub(crate) type MakeRequest =
    Arc<dyn Fn(usize, u64) -> (&'static str, String, Option<String>) + Send + Sync>;

#[derive(Default, Clone, Copy, Serialize)]
pub(crate) struct Run {
    pub(crate) ops_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
}

pub(crate) fn summarize(mut latencies_us: Vec<u32>, elapsed: Duration, errors: u64) -> Run {
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

pub(crate) async fn http_run(
    addr: &str,
    concurrency: usize,
    secs: f64,
    expect: u16,
    make: MakeRequest,
) -> Result<Run> {
    http_run_with(addr, concurrency, secs, expect, make, "").await
}

/// `http_run` with further header lines on every request (a console session's cookie).
pub(crate) async fn http_run_with(
    addr: &str,
    concurrency: usize,
    secs: f64,
    expect: u16,
    make: MakeRequest,
    extra: &str,
) -> Result<Run> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let counter = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let extra = extra.to_string();
        let (addr, make, counter, errors) = (
            addr.to_string(),
            make.clone(),
            counter.clone(),
            errors.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&addr, &extra).await?;
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

pub(crate) async fn sql_run<F, Fut>(concurrency: usize, secs: f64, op: F) -> Result<Run>
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
