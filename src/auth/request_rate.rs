//! Per-account request rate: a token bucket per account, in process memory, checked on every
//! authenticated request before any database work (for a credential in the auth cache). The
//! rate is the account's own (`roomd accounts update --max-requests-per-second`), else
//! `ROOMD_ACCOUNT_REQUESTS_PER_SECOND`; the bucket holds one second of it. Each process counts
//! its own requests: behind a load balancer over N replicas an account gets up to N times it.

use crate::domain::sid::AccountSid;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The default rate: far above what an honest test suite or application sends to one process,
/// low enough that one account's flood leaves the others the machine.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 2000;

/// Accounts remembered at most (the least used go first).
const MAX_BUCKETS: u64 = 100_000;
/// An account idle this long is forgotten (its bucket would be full again long before).
const IDLE: std::time::Duration = std::time::Duration::from_secs(300);

struct Bucket {
    tokens: f64,
    /// The account's rate, as last read with its credential.
    rate: u32,
    at: Instant,
}

pub struct RequestLimiter {
    default_rate: u32,
    buckets: moka::sync::Cache<AccountSid, Arc<Mutex<Bucket>>>,
}

impl RequestLimiter {
    pub fn new(default_rate: u32) -> RequestLimiter {
        RequestLimiter {
            default_rate: default_rate.max(1),
            buckets: moka::sync::Cache::builder()
                .max_capacity(MAX_BUCKETS)
                .time_to_idle(IDLE)
                .build(),
        }
    }

    /// Takes one request from `account`'s bucket; `Err(seconds)` (for `Retry-After`) when it is
    /// empty. `rate` is the account's own rate when the caller read it (Basic auth); `None`
    /// keeps the last one read (Access Tokens), else the default.
    pub fn admit(&self, account: &AccountSid, rate: Option<u32>) -> Result<(), u64> {
        let now = Instant::now();
        let default_rate = self.default_rate;
        let bucket = self.buckets.get_with_by_ref(account, || {
            let rate = rate.unwrap_or(default_rate).max(1);
            Arc::new(Mutex::new(Bucket {
                tokens: f64::from(rate),
                rate,
                at: now,
            }))
        });
        let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rate) = rate {
            bucket.rate = rate.max(1);
        }
        let rate = f64::from(bucket.rate);
        bucket.tokens =
            (bucket.tokens + now.duration_since(bucket.at).as_secs_f64() * rate).min(rate);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_gets_its_rate_and_another_account_is_not_affected() {
        let limiter = RequestLimiter::new(10);
        let (a, b) = (AccountSid::generate(), AccountSid::generate());
        let admitted = (0..25).filter(|_| limiter.admit(&a, None).is_ok()).count();
        assert!((10..=11).contains(&admitted), "{admitted}");
        assert_eq!(limiter.admit(&a, None), Err(1));
        assert!(limiter.admit(&b, None).is_ok());
        // An override read with the credential applies at once, and sticks.
        let c = AccountSid::generate();
        let admitted = (0..25)
            .filter(|_| limiter.admit(&c, Some(3)).is_ok())
            .count();
        assert_eq!(admitted, 3);
        std::thread::sleep(std::time::Duration::from_millis(400));
        assert!(limiter.admit(&c, None).is_ok());
    }
}
