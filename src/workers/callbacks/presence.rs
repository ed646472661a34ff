//! This dispatcher's row in `callback_dispatchers`: writers notify only while some dispatcher
//! is idle, waiting for them.

use crate::db::callback_claims::{self as outbox};

use sqlx::PgPool;
use std::time::Duration;

/// This dispatcher's row in `callback_dispatchers`: whether it is idle, so that commits notify
/// only while some dispatcher waits for them.
pub(super) struct Presence {
    id: String,
    /// What the row says (`None`: not written yet).
    idle: Option<bool>,
    written: std::time::Instant,
}

/// How often an idle dispatcher says it is still there (a row older than 30 s no longer counts).
const PRESENCE_REFRESH: Duration = Duration::from_secs(10);

impl Presence {
    pub(super) fn new() -> Presence {
        Presence {
            id: crate::domain::sid::random_hex32(),
            idle: None,
            written: std::time::Instant::now(),
        }
    }

    /// Records `idle` if it changed (or an idle row is due a refresh); true when it wrote.
    pub(super) async fn mark(&mut self, pool: &PgPool, idle: bool) -> bool {
        let refresh = idle && self.written.elapsed() >= PRESENCE_REFRESH;
        if self.idle == Some(idle) && !refresh {
            return false;
        }
        match outbox::set_idle(pool, &self.id, idle).await {
            Ok(()) => {
                let changed = self.idle != Some(idle);
                self.idle = Some(idle);
                self.written = std::time::Instant::now();
                changed
            }
            Err(e) => {
                // Without the mark, notifications may not come: polling still finds the events.
                tracing::warn!(error = %e, "recording the dispatcher's state failed");
                false
            }
        }
    }

    pub(super) async fn leave(&self, pool: &PgPool) {
        if let Err(e) = outbox::unregister(pool, &self.id).await {
            tracing::debug!(error = %e, "unregistering the dispatcher failed");
        }
    }
}
