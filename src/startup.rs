//! Building and running the HTTP application. `Application::build` binds the listener (port 0 in
//! tests) and `run_until` serves until the shutdown future resolves, then drains in-flight
//! requests: SIGTERM in production and a test's end share that one path.

use crate::auth::AuthCache;
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
}

pub struct Application {
    listener: TcpListener,
    state: web::Data<AppState>,
}

impl Application {
    /// Binds `bind`; `public_url: None` means `http://` + the bound address.
    pub fn build(
        bind: SocketAddr,
        public_url: Option<PublicUrl>,
        pool: PgPool,
        auth_cache_ttl: Duration,
    ) -> std::io::Result<Application> {
        let listener = TcpListener::bind(bind)?;
        let local = listener.local_addr()?;
        let public_url = public_url.unwrap_or_else(|| PublicUrl::new(&format!("http://{local}")));
        let state = web::Data::new(AppState {
            pool,
            auth: Arc::new(AuthCache::new(auth_cache_ttl)),
            public_url,
        });
        Ok(Application { listener, state })
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
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(tracing_actix_web::TracingLogger::default())
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
        .listen(self.listener)?
        .disable_signals()
        .shutdown_timeout(10)
        .run();
        let handle = server.handle();
        let server = tokio::spawn(server);
        shutdown.await;
        handle.stop(true).await;
        server.await.map_err(std::io::Error::other)?
    }
}
