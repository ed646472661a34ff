//! Building and running the HTTP application. `Application::build` binds the listener (port 0 in
//! tests) and `run_until` serves until the shutdown future resolves, then drains in-flight
//! requests: SIGTERM in production and a test's end share that one path.

use crate::auth::account_clocks::AccountClocks;
use crate::auth::authenticator::AuthServices;
use crate::auth::credentials::CredentialCache;
use crate::auth::master_key::MasterKey;
use crate::auth::request_rate::RequestLimiter;
use crate::auth::signing_keys::SigningKeys;
use crate::console::session::ConsoleSettings;
use crate::db::WorkerPools;
use crate::http;
use crate::http::state::{AppState, DEFAULT_BODY_TIMEOUT};
use crate::http::unread_body::close_on_unread_body;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::request_log::{observe, RoomdRootSpan};
use crate::twilio::urls::PublicUrl;
use crate::workers::callbacks::{deliver::Deliverer, settings::CallbackSettings};
use actix_web::{web, App, HttpServer};
use sqlx::postgres::PgConnectOptions;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// How to serve: the settings `Application::build` needs.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// `None` means `http://` + the bound address.
    pub public_url: Option<PublicUrl>,
    pub auth_cache_ttl: Duration,
    /// A separate listener for `/metrics`; `None` serves it on the main listener.
    pub metrics_bind: Option<SocketAddr>,
    /// When `metrics_bind`'s address is taken: serve without a metrics listener (with a
    /// warning) instead of failing (the default address, not one the operator asked for).
    pub metrics_bind_optional: bool,
    /// HTTP worker threads (one per core by default).
    pub workers: usize,
    /// PostgreSQL connections for serving requests, split evenly between the workers.
    pub db_pool_size: u32,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// The key API key secrets and auth tokens are sealed under (Access Tokens are verified,
    /// and status callbacks signed, with them).
    pub master_key: Arc<MasterKey>,
    /// How status callbacks are delivered (every server runs a dispatcher).
    pub callbacks: CallbackSettings,
    /// Whether test-clock accounts are served (`ROOMD_TEST_CLOCKS`).
    pub test_clocks: bool,
    /// Requests per second one account may make of this process, unless its own limit says
    /// otherwise (`ROOMD_ACCOUNT_REQUESTS_PER_SECOND`).
    pub account_requests_per_second: u32,
    /// Rooms in progress and participants connected one account may have at once, unless its
    /// own quota says otherwise (0: unlimited): `ROOMD_ACCOUNT_MAX_ROOMS_IN_PROGRESS`,
    /// `ROOMD_ACCOUNT_MAX_PARTICIPANTS_CONNECTED`. They travel with the serving connections.
    pub account_quotas: AccountQuotas,
    /// Origins whose pages may join and leave from a browser (`ROOMD_CORS_ORIGINS`).
    pub cors_origins: Vec<String>,
    /// How long a console session lasts; `None`: no console (`ROOMD_CONSOLE=false`).
    pub console_session_ttl: Option<Duration>,
}

/// The default quotas of accounts (see `ServerSettings::account_quotas`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountQuotas {
    pub rooms_in_progress: u32,
    pub participants_connected: u32,
}

impl Default for AccountQuotas {
    /// Twilio's: 10,000 concurrent rooms and 10,000 concurrent participants per account.
    fn default() -> Self {
        AccountQuotas {
            rooms_in_progress: 10_000,
            participants_connected: 10_000,
        }
    }
}

impl AccountQuotas {
    /// `database` with these quotas as its connections' defaults (read by the quota functions
    /// of migration V8).
    pub fn on(&self, database: PgConnectOptions) -> PgConnectOptions {
        database.options([
            (
                "roomd.max_rooms_in_progress",
                self.rooms_in_progress.to_string(),
            ),
            (
                "roomd.max_participants_connected",
                self.participants_connected.to_string(),
            ),
        ])
    }
}

impl ServerSettings {
    /// Loopback, a random port, defaults otherwise (tests, tools).
    pub fn local() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            auth_cache_ttl: crate::auth::credentials::DEFAULT_CACHE_TTL,
            metrics_bind: None,
            metrics_bind_optional: false,
            workers: default_workers(),
            db_pool_size: 10,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            master_key: Arc::new(MasterKey::generate()),
            callbacks: CallbackSettings::default(),
            test_clocks: true,
            account_requests_per_second: crate::auth::request_rate::DEFAULT_REQUESTS_PER_SECOND,
            account_quotas: AccountQuotas::default(),
            cors_origins: Vec::new(),
            console_session_ttl: Some(DEFAULT_CONSOLE_SESSION_TTL),
        }
    }
}

/// `ROOMD_CONSOLE_SESSION_TTL`'s default: a working day.
pub const DEFAULT_CONSOLE_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// One HTTP worker per core, as actix-web would pick.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    /// Whether `/metrics` stays off the main listener (it has one of its own, or none at all).
    metrics_off_main: bool,
    shared: Arc<Shared>,
    dispatcher: Dispatcher,
}

/// What the status callback dispatcher runs on: connections of its own (one listens).
struct Dispatcher {
    database: PgConnectOptions,
    deliverer: Arc<Deliverer>,
    settings: CallbackSettings,
}

/// What the dispatcher's connections (at most 3, see `callbacks::Connections`) are named in
/// `pg_stat_activity`.
pub const DISPATCHER_APPLICATION_NAME: &str = "roomd callbacks";

/// What the workers share.
struct Shared {
    workers: usize,
    cors_origins: Vec<String>,
    console: Option<ConsoleSettings>,
    media: Option<Arc<crate::media::MediaPlane>>,
    auth: AuthServices,
    public_url: PublicUrl,
    metrics: Arc<Metrics>,
    pools: Arc<WorkerPools>,
    body_timeout: Duration,
}

impl Shared {
    /// The state of one worker, with a pool of its own (of `max` connections, or its share).
    fn worker_state(&self, max: Option<u32>) -> web::Data<AppState> {
        web::Data::new(AppState {
            pool: self.pools.add(max),
            public_url: self.public_url.clone(),
            metrics: self.metrics.clone(),
            pools: self.pools.clone(),
            body_timeout: self.body_timeout,
            media: self.media.clone(),
        })
    }
}

impl Application {
    /// Binds the listener(s); port 0 picks a free port. The workers connect to `database`.
    pub fn build(
        settings: ServerSettings,
        database: PgConnectOptions,
    ) -> std::io::Result<Application> {
        let listener = TcpListener::bind(settings.bind)?;
        let metrics_listener = match settings.metrics_bind.map(TcpListener::bind) {
            Some(Err(e)) if settings.metrics_bind_optional => {
                tracing::warn!(
                    address = %settings.metrics_bind.expect("bound above"),
                    error = %e,
                    "the default metrics listener's address is taken (another roomd?): serving without /metrics; set ROOMD_METRICS_BIND to choose one"
                );
                None
            }
            other => other.transpose()?,
        };
        let metrics_off_main = settings.metrics_bind.is_some();
        let local = listener.local_addr()?;
        let public_url = settings
            .public_url
            .unwrap_or_else(|| PublicUrl::new(&format!("http://{local}")));
        let metrics = Arc::new(Metrics::new());
        // Each worker keeps connections of its own, so there are never more workers than
        // connections: ROOMD_DB_POOL_SIZE bounds what the process opens.
        let pool_size = settings.db_pool_size.max(1);
        let workers = settings.workers.clamp(1, pool_size as usize);
        if workers < settings.workers {
            tracing::warn!(
                http_workers = workers,
                db_pool_size = pool_size,
                "fewer HTTP workers than asked for: each needs one of ROOMD_DB_POOL_SIZE's connections"
            );
        }
        let deliverer = Deliverer::new(
            settings.callbacks.deny.clone(),
            settings.master_key.clone(),
            settings.callbacks.timeout,
        )
        .map_err(std::io::Error::other)?;
        Ok(Application {
            listener,
            metrics_listener,
            metrics_off_main,
            dispatcher: Dispatcher {
                database: database.clone(),
                deliverer: Arc::new(deliverer),
                settings: settings.callbacks,
            },
            shared: Arc::new(Shared {
                workers,
                cors_origins: settings.cors_origins,
                console: settings
                    .console_session_ttl
                    .map(|session_ttl| ConsoleSettings {
                        session_ttl,
                        secure: public_url.as_str().starts_with("https://"),
                        public_origin: public_url.origin(),
                    }),
                media: None,
                pools: Arc::new(WorkerPools::new(
                    settings.account_quotas.on(database),
                    pool_size,
                    workers,
                )),
                auth: AuthServices {
                    credentials: Arc::new(CredentialCache::new(
                        settings.auth_cache_ttl,
                        metrics.clone(),
                    )),
                    signing_keys: Arc::new(SigningKeys::new(
                        settings.master_key.clone(),
                        settings.auth_cache_ttl,
                    )),
                    requests: Arc::new(RequestLimiter::new(settings.account_requests_per_second)),
                    clocks: Arc::new(AccountClocks::new(settings.test_clocks)),
                    metrics: metrics.clone(),
                },
                public_url,
                metrics,
                body_timeout: settings.body_timeout,
            }),
        })
    }

    /// The address of the separate metrics listener, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Attaches a media plane (before `run_until`): joins admit participants to media, and the
    /// nodes' events are received.
    pub fn attach_media(&mut self, plane: Arc<crate::media::MediaPlane>) {
        Arc::get_mut(&mut self.shared)
            .expect("attached before the application runs")
            .media = Some(plane);
    }

    /// This application's metrics (shared with its sweeper).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn public_url(&self) -> &PublicUrl {
        &self.shared.public_url
    }

    /// Serves (and dispatches status callbacks) until `shutdown` resolves, then stops
    /// accepting and drains in-flight requests (up to 10 s) and deliveries.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let Application {
            listener,
            metrics_listener,
            metrics_off_main,
            shared,
            dispatcher,
        } = self;
        let (stop_dispatcher, stopping) = tokio::sync::watch::channel(false);
        let dispatcher = tokio::spawn(crate::workers::callbacks::run(
            crate::workers::callbacks::Connections::lazy(
                dispatcher
                    .database
                    .application_name(DISPATCHER_APPLICATION_NAME),
            ),
            dispatcher.deliverer,
            dispatcher.settings,
            shared.metrics.clone(),
            async move {
                let mut stopping = stopping;
                let _ = stopping.wait_for(|stop| *stop).await;
            },
        ));
        let separate_metrics = metrics_off_main;
        let app = shared.clone();
        // The factory runs once for each worker: each gets a pool of its own.
        let server = HttpServer::new(move || {
            let state = app.worker_state(None);
            let auth = web::Data::new(app.auth.for_worker(state.pool.clone()));
            App::new()
                .app_data(web::Data::from(state.metrics.clone()))
                .app_data(auth)
                .app_data(state)
                .wrap(actix_web::middleware::from_fn(observe))
                .wrap(tracing_actix_web::TracingLogger::<RoomdRootSpan>::new())
                .wrap(actix_web::middleware::from_fn(close_on_unread_body))
                .configure(|cfg| http::configure(cfg, !separate_metrics, &app.cors_origins))
                .configure(|cfg| {
                    if let Some(console) = &app.console {
                        crate::console::configure(cfg, console.clone());
                    }
                })
                .default_service(web::to(http::respond::not_found))
        })
        .listen(listener)?
        .workers(shared.workers)
        // A request's headers must arrive within 5 s of its connection (or of the previous
        // response), an idle keep-alive connection is closed after 5 s, and one being closed
        // (after a 408 or 413, say, with its body still arriving) gets 1 s to go.
        .client_request_timeout(Duration::from_secs(5))
        .keep_alive(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
        .disable_signals()
        .shutdown_timeout(10)
        .run();
        let metrics_server = match metrics_listener {
            Some(listener) => {
                let shared = shared.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.worker_state(Some(1)))
                        .wrap(actix_web::middleware::from_fn(close_on_unread_body))
                        .route("/metrics", http::respond::get().to(http::health::metrics))
                        .default_service(web::to(http::respond::not_found))
                })
                .listen(listener)?
                .workers(1)
                .disable_signals()
                .shutdown_timeout(1)
                .run();
                Some(server)
            }
            None => None,
        };
        let handle = server.handle();
        let server = tokio::spawn(server);
        let metrics_handle = metrics_server.map(|s| {
            let handle = s.handle();
            tokio::spawn(s);
            handle
        });
        shutdown.await;
        let _ = stop_dispatcher.send(true);
        handle.stop(true).await;
        if let Some(h) = metrics_handle {
            h.stop(true).await;
        }
        let _ = dispatcher.await;
        server.await.map_err(std::io::Error::other)?
    }
}
