//! Failed-authentication throttling: past a number of failures in a window, for one account SID
//! or from one client address, requests with a credential that is not already verified get 429
//! (Twilio's 20429, with `Retry-After`) before any database or argon2 work. A credential that is
//! in the verification cache is never throttled, so a flood against an account does not lock out
//! its own running clients.
//!
//! The counts are per process (each replica throttles what it sees) and bounded in memory.
//! Loopback clients are counted by SID only: they are the machine's own processes (a test suite,
//! a local reverse proxy carrying every client), and one address for all of them would let a
//! single noisy one lock out the rest.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failures per SID in a window before its unverified credentials are refused.
pub const MAX_FAILURES_PER_SID: u32 = 20;
/// Failures per client address in a window (higher: a proxy or NAT may carry many clients).
pub const MAX_FAILURES_PER_ADDRESS: u32 = 100;
/// Keys tracked at most; past it the least used go first (a flood of new addresses cannot wipe
/// the counts of a SID under attack).
const MAX_KEYS: u64 = 100_000;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Sid([u8; 32]),
    Address(IpAddr),
}

struct Window {
    started: Instant,
    failures: u32,
}

/// Each key's window, gone a window after it started.
pub struct Throttle {
    windows: moka::sync::Cache<Key, Arc<Mutex<Window>>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            windows: moka::sync::Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(WINDOW)
                .build(),
        }
    }
}

impl Throttle {
    /// `Some(seconds to wait)` when `sid` (as a digest) or `address` has failed too often. `sid`
    /// is `None` for a credential whose failures are counted by address only (Access Tokens: a
    /// key's SID is public, and counting by it would let anyone lock a key's users out).
    pub fn check(&self, sid: Option<[u8; 32]>, address: Option<IpAddr>) -> Option<u64> {
        let address = address.filter(|a| !a.is_loopback());
        let now = Instant::now();
        let over = |key: Key, max: u32| {
            let window = self.windows.get(&key)?;
            let w = window.lock().unwrap_or_else(|e| e.into_inner());
            let age = now.duration_since(w.started);
            (age < WINDOW && w.failures >= max).then(|| (WINDOW - age).as_secs().max(1))
        };
        let by_sid = sid.and_then(|sid| over(Key::Sid(sid), MAX_FAILURES_PER_SID));
        let by_address = address.and_then(|a| over(Key::Address(a), MAX_FAILURES_PER_ADDRESS));
        by_sid.max(by_address)
    }

    /// Counts one failed authentication for `sid` (if counted by SID) and `address`.
    pub fn failed(&self, sid: Option<[u8; 32]>, address: Option<IpAddr>) {
        let address = address.filter(|a| !a.is_loopback());
        let now = Instant::now();
        for key in sid
            .map(Key::Sid)
            .into_iter()
            .chain(address.map(Key::Address))
        {
            let window = self.windows.get_with(key, || {
                Arc::new(Mutex::new(Window {
                    started: now,
                    failures: 0,
                }))
            });
            let mut w = window.lock().unwrap_or_else(|e| e.into_inner());
            if now.duration_since(w.started) >= WINDOW {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sid_or_an_address_is_throttled_after_its_failures() {
        let t = Throttle::default();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let here: IpAddr = "192.0.2.1".parse().unwrap();
        let there: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_SID {
            assert_eq!(t.check(Some(a), Some(here)), None);
            t.failed(Some(a), Some(here));
        }
        let wait = t.check(Some(a), Some(there)).expect("the SID is throttled");
        assert!((1..=WINDOW.as_secs()).contains(&wait));
        assert_eq!(t.check(Some(b), Some(there)), None, "another SID is not");
        for _ in MAX_FAILURES_PER_SID..MAX_FAILURES_PER_ADDRESS {
            t.failed(Some(b), Some(here));
        }
        assert!(
            t.check(Some([3u8; 32]), Some(here)).is_some(),
            "the address is"
        );
        assert_eq!(t.check(Some([3u8; 32]), Some(there)), None);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_ADDRESS {
            t.failed(Some([4u8; 32]), Some(local));
        }
        assert_eq!(
            t.check(Some([5u8; 32]), Some(local)),
            None,
            "loopback: by SID only"
        );
        for _ in 0..MAX_FAILURES_PER_ADDRESS {
            t.failed(None, Some(there));
        }
        assert!(t.check(None, Some(there)).is_some(), "by address alone");
        assert_eq!(t.check(None, Some(local)), None);
    }
}
