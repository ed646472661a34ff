//! Building and running the HTTP application. `Application::build` binds the listener (port 0 in
//! tests) and `run_until` serves until the shutdown future resolves, then drains in-flight
//! requests: SIGTERM in production and a test's end share that one path.

use crate::auth::AuthCache;
use crate::metrics::Metrics;
use crate::observe::{observe, RoomdRootSpan};
use crate::routes;
use crate::twilio::urls::PublicUrl;
use actix_web::{web, App, HttpServer};
use sqlx::PgPool;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

/// What every request handler can reach.
pub struct AppState {
    pub pool: PgPool,
    pub auth: Arc<AuthCache>,
    pub public_url: PublicUrl,
    pub metrics: Arc<Metrics>,
}

/// How to serve: the settings `Application::build` needs.
#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// `None` means `http://` + the bound address.
    pub public_url: Option<PublicUrl>,
    pub auth_cache_ttl: Duration,
    /// A separate listener for `/metrics`; `None` serves it on the main listener.
    pub metrics_bind: Option<SocketAddr>,
}

impl ServerSettings {
    /// Loopback, a random port, defaults otherwise (tests, tools).
    pub fn local() -> Self {
        ServerSettings {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            auth_cache_ttl: crate::auth::DEFAULT_CACHE_TTL,
            metrics_bind: None,
        }
    }
}

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: web::Data<AppState>,
}

impl Application {
    /// Binds the listener(s); port 0 picks a free port.
    pub fn build(settings: ServerSettings, pool: PgPool) -> std::io::Result<Application> {
        let listener = TcpListener::bind(settings.bind)?;
        let metrics_listener = settings.metrics_bind.map(TcpListener::bind).transpose()?;
        let local = listener.local_addr()?;
        let public_url = settings
            .public_url
            .unwrap_or_else(|| PublicUrl::new(&format!("http://{local}")));
        let metrics = Arc::new(Metrics::new());
        let state = web::Data::new(AppState {
            pool,
            auth: Arc::new(AuthCache::new(settings.auth_cache_ttl, metrics.clone())),
            public_url,
            metrics,
        });
        Ok(Application {
            listener,
            metrics_listener,
            state,
        })
    }

    /// The address of the separate metrics listener, if there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// This application's metrics (shared with its sweeper).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.state.metrics.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn public_url(&self) -> &PublicUrl {
        &self.state.public_url
    }

    /// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests
    /// (up to 10 s).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        let state = self.state;
        let separate_metrics = self.metrics_listener.is_some();
        let app_state = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(web::Data::from(app_state.metrics.clone()))
                .wrap(actix_web::middleware::from_fn(observe))
                .wrap(tracing_actix_web::TracingLogger::<RoomdRootSpan>::new())
                .configure(|cfg| routes::configure(cfg, !separate_metrics))
                .default_service(web::to(routes::not_found))
        })
        .listen(self.listener)?
        .disable_signals()
        .shutdown_timeout(10)
        .run();
        let metrics_server = match self.metrics_listener {
            Some(listener) => {
                let state = state.clone();
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .route("/metrics", web::get().to(routes::metrics))
                        .default_service(web::to(routes::not_found))
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
        handle.stop(true).await;
        if let Some(h) = metrics_handle {
            h.stop(true).await;
        }
        server.await.map_err(std::io::Error::other)?
    }
}
