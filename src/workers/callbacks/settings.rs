//! How status callbacks are delivered: attempts, backoff, timeouts, concurrency, retention.

use super::destinations::DenyList;

use rand::Rng;
use std::time::Duration;

/// How callbacks are delivered.
#[derive(Clone, Debug)]
pub struct CallbackSettings {
    /// Attempts per event before it is marked failed (`ROOMD_CALLBACK_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles it, up to `MAX_BACKOFF`, with jitter
    /// (`ROOMD_CALLBACK_RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// One attempt's whole time, connecting included (`ROOMD_CALLBACK_TIMEOUT`; Twilio's 15 s).
    pub timeout: Duration,
    /// Destinations never called (`ROOMD_CALLBACK_DENY`).
    pub deny: DenyList,
    /// Deliveries in flight at once, per process (`ROOMD_CALLBACK_CONCURRENCY`).
    pub concurrency: usize,
    /// Deliveries in flight at once for one account, per process
    /// (`ROOMD_CALLBACK_ACCOUNT_CONCURRENCY`): an account whose receiver hangs holds no more.
    pub per_account: usize,
    /// Deliveries in flight at once to one host (and port), per process
    /// (`ROOMD_CALLBACK_HOST_CONCURRENCY`).
    pub per_host: usize,
    /// How long delivered and failed events are kept (`ROOMD_CALLBACK_RETENTION_DAYS`).
    pub retention: Duration,
}

pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
pub const DEFAULT_CONCURRENCY: usize = 256;
pub const DEFAULT_PER_ACCOUNT: usize = 64;
pub const DEFAULT_PER_HOST: usize = 128;
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often a dispatcher prunes settled events past the retention, and how many per statement.
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(60);
pub(super) const PRUNE_BATCH: i64 = 1000;

impl Default for CallbackSettings {
    fn default() -> Self {
        CallbackSettings {
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base: DEFAULT_RETRY_BASE,
            timeout: DEFAULT_TIMEOUT,
            deny: DenyList::default(),
            concurrency: DEFAULT_CONCURRENCY,
            per_account: DEFAULT_PER_ACCOUNT,
            per_host: DEFAULT_PER_HOST,
            retention: DEFAULT_RETENTION,
        }
    }
}

impl CallbackSettings {
    /// How long a claim holds an event: longer than an attempt can take, so that only a
    /// dispatcher that died (or stalled) loses its events to another.
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(10)
    }

    /// How often the dispatcher looks for due events without being woken (retries fall due
    /// without a notification).
    pub(super) fn poll_interval(&self) -> Duration {
        self.retry_base
            .clamp(Duration::from_millis(20), Duration::from_secs(1))
    }

    /// The wait after failed attempt `attempt` (1 for the first): `retry_base * 2^(attempt-1)`,
    /// capped, and scaled by a random factor in [0.5, 1] so that retries spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doubled = self
            .retry_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        doubled
            .min(MAX_BACKOFF)
            .mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_with_jitter_and_is_capped() {
        let s = CallbackSettings::default();
        for _ in 0..100 {
            let first = s.backoff(1);
            assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
            let fourth = s.backoff(4);
            assert!(fourth >= Duration::from_secs(4) && fourth <= Duration::from_secs(8));
            assert!(s.backoff(40) <= MAX_BACKOFF);
            assert!(s.backoff(40) >= MAX_BACKOFF / 2);
        }
    }
}
