//! The HTTP API: one file (or folder) of routes per Twilio resource, the extractors and
//! answers they share (`extract`, `respond`, `room_ref`), the handles a handler reaches (`state`)
//! and the middleware that bounds what a client can make a connection hold (`unread_body`).
//! Routes parse with `domain/`, act through `db/`, and answer in `twilio/`'s conventions; they
//! never build SQL.

pub mod callbacks;
pub mod composition_hooks;
pub mod compositions;
pub mod cors;
pub mod extract;
pub mod health;
pub mod media_events;
pub mod media_settings;
pub mod participant_ref;
pub mod participants;
pub mod recordings;
pub mod respond;
pub mod room_ref;
pub mod rooms;
pub mod rules;
pub mod state;
pub mod test_clock;
pub mod tracks;
pub mod transcriptions;
pub mod unread_body;

use actix_web::web;

/// Every route; `/metrics` too unless it has a listener of its own (`ROOMD_METRICS_BIND`);
/// `cors_origins` may join and leave from a browser page.
pub fn configure(cfg: &mut web::ServiceConfig, with_metrics: bool, cors_origins: &[String]) {
    cfg.route("/healthz", respond::get().to(health::healthz))
        .configure(rooms::configure)
        .configure(|cfg| participants::configure(cfg, cors_origins))
        .configure(tracks::configure)
        .configure(rules::configure)
        .configure(callbacks::configure)
        .configure(test_clock::configure)
        .configure(media_events::configure)
        .configure(recordings::configure)
        .configure(transcriptions::configure)
        .configure(compositions::configure)
        .configure(composition_hooks::configure)
        .configure(media_settings::configure);
    if with_metrics {
        cfg.route("/metrics", respond::get().to(health::metrics));
    }
}
