//! A status callback receiver on loopback: a bare HTTP/1.1 server (one request per connection)
//! that records every request it gets and answers as the test tells it: a status, no answer at
//! all (a hang), or a reset connection.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request, as the receiver read it.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    /// The path and query, as requested.
    pub target: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// The form parameters: the body's for a POST, the query's for a GET.
    pub params: Vec<(String, String)>,
    /// What the receiver answered (`None`: a hang or a reset).
    pub answered: Option<u16>,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn event(&self) -> &str {
        self.param("StatusCallbackEvent").unwrap_or("")
    }

    pub fn sequence(&self) -> i64 {
        self.param("SequenceNumber").unwrap().parse().unwrap()
    }

    /// Whether `X-Twilio-Signature` is the one the auth token gives for this request, as
    /// Twilio's validators compute it: the URL requested, plus the POST parameters.
    pub fn signed_with(&self, base: &str, token: &str) -> bool {
        let url = format!("{base}{}", self.target);
        let params: Vec<(&str, &str)> = if self.method == "POST" {
            self.params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        self.headers.get("x-twilio-signature")
            == Some(&roomd::twilio::signature::sign(
                token.as_bytes(),
                &url,
                &params,
            ))
    }
}

pub enum Answer {
    Status(u16),
    /// Read the request, never answer (until the receiver is dropped).
    Hang,
    /// Read the request, then reset the connection.
    Reset,
}

type Handler = Arc<dyn Fn(Received) -> Pin<Box<dyn Future<Output = Answer> + Send>> + Send + Sync>;

pub struct Receiver {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    log: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// A receiver that answers every request with 204.
    pub async fn ok() -> Receiver {
        Receiver::answering(|_| async { Answer::Status(204) }).await
    }

    /// A receiver whose answer to each request `answer` decides (it may first look around:
    /// read the API, wait).
    pub async fn answering<F, Fut>(answer: F) -> Receiver
    where
        F: Fn(Received) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |r| Box::pin(answer(r)));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (l, a) = (log.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, log, arrived) = (handler.clone(), l.clone(), a.clone());
                connections.spawn(async move {
                    let _ = serve_one(stream, handler, log, arrived).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Receiver {
            base,
            log,
            arrived,
            task,
        }
    }

    /// The URL to give as a `StatusCallback`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// The requests answered 2xx, once `n` of them have arrived (panics after 20 s).
    pub async fn delivered(&self, n: usize) -> Vec<Received> {
        self.until(|all| {
            let ok: Vec<Received> = all
                .iter()
                .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
                .cloned()
                .collect();
            (ok.len() >= n).then_some(ok)
        })
        .await
    }

    /// Waits until `done` finds what it wants among the requests so far (panics after 20 s).
    pub async fn until<T>(&self, done: impl Fn(&[Received]) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.arrived.notified();
            if let Some(t) = done(&self.log.lock().unwrap()) {
                return t;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("receiver: not there after 20 s; got {:#?}", self.received());
            }
        }
    }
}

async fn serve_one(
    mut stream: TcpStream,
    handler: Handler,
    log: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        assert!(buf.len() < 65536, "receiver: headers too long");
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_string();
    let target = request_line.next().unwrap_or("").to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let form = if method == "GET" {
        target
            .split_once('?')
            .map_or("", |(_, q)| q)
            .as_bytes()
            .to_vec()
    } else {
        body
    };
    let params = url::form_urlencoded::parse(&form).into_owned().collect();
    let mut received = Received {
        method,
        target,
        headers,
        params,
        answered: None,
    };
    let answer = handler(received.clone()).await;
    if let Answer::Status(s) = answer {
        received.answered = Some(s);
    }
    log.lock().unwrap().push(received);
    arrived.notify_waiters();
    match answer {
        Answer::Status(s) => {
            let response =
                format!("HTTP/1.1 {s} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
        }
        Answer::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
        Answer::Reset => {
            // A zero linger resets at once (it cannot block the thread, the concern of the
            // deprecation).
            #[allow(deprecated)]
            stream.set_linger(Some(Duration::ZERO))?;
            drop(stream);
        }
    }
    Ok(())
}
