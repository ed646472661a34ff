//! HTTP Basic authentication of accounts (`AccountSid:AuthToken`).
//!
//! Tokens are stored as argon2id PHC hashes. Verifying one costs ~25 ms of CPU, so it runs on a
//! blocking thread, and a successful verification is remembered in-process, keyed by
//! SHA-256(sid, token), with a SHA-256 of the stored hash it verified against. Within the TTL a
//! request is served from memory. After it, the account's stored hash is read again (one indexed
//! query): if it is the one the token verified against, the token still verifies (argon2 is
//! deterministic for a given hash) and the entry is renewed without argon2; if the token was
//! rotated or the account suspended, the full path runs and fails. So a steady client pays
//! argon2 once per process, and a revoked credential stops working on every replica within the
//! TTL. The cache holds no token and is never consulted for a credential that has not verified.
//! Unknown SIDs verify against a dummy hash so the response time does not reveal which SIDs
//! exist. argon2 runs on `argon2_pool`'s fixed threads (bounded memory, fair between SIDs), and
//! repeated failures for a SID or from an address are refused with 429 before any of that work
//! (`failure_throttle`).

use crate::auth::argon2_pool::Verifier;
use crate::auth::failure_throttle::Throttle;
use crate::db;
use crate::db::WorkerPool;
use crate::domain::sid::{AccountSid, ApiKeySid};
use crate::twilio::ApiError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(30);
const MAX_CACHE_ENTRIES: u64 = 100_000;
/// How long a verified credential nobody uses is kept: within it, a return after the TTL costs
/// one read of the stored hash instead of argon2.
const STALE_KEEP: Duration = Duration::from_secs(3600);

/// Hashes a token as an argon2id PHC string with a fresh salt.
pub fn hash_token(token: &str) -> SecretString {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(token.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
        .into()
}

/// Whether `token` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_token(token: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(token.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn dummy_hash() -> &'static SecretString {
    static DUMMY: OnceLock<SecretString> = OnceLock::new();
    DUMMY.get_or_init(|| hash_token(&crate::domain::sid::random_hex32()))
}

/// A successful verification: until when it is trusted without a look at the database, and a
/// digest of the stored hash it verified against.
#[derive(Clone)]
struct Verified {
    fresh_until: Instant,
    hash_digest: [u8; 32],
    /// The account the credential acts for (its own SID, or an API key's account).
    account: AccountSid,
    /// The account's own request rate (`None`: the default), as read with the hash.
    rate: Option<u32>,
}

/// What the cache knows of a credential.
enum Lookup {
    Fresh(AccountSid, Option<u32>),
    /// Verified once, against the stored hash with this digest; to be checked again.
    Stale([u8; 32]),
    Unknown,
}

/// Successful verifications, by SHA-256 of sid and token.
pub struct CredentialCache {
    ttl: Duration,
    /// Bounded by `MAX_CACHE_ENTRIES` (least-used first when full); an entry stays past its TTL
    /// (stale, to be checked against the stored hash) until `STALE_KEEP` without use.
    entries: moka::sync::Cache<[u8; 32], Verified>,
    verifier: Verifier,
    throttle: Throttle,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
}

impl Drop for CredentialCache {
    fn drop(&mut self) {
        self.verifier.close();
    }
}

impl CredentialCache {
    pub fn new(ttl: Duration, metrics: Arc<crate::telemetry::metrics::Metrics>) -> Self {
        // Build the dummy hash now rather than on the first unknown SID.
        let _ = dummy_hash();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CredentialCache {
            ttl,
            entries: moka::sync::Cache::builder()
                .max_capacity(MAX_CACHE_ENTRIES)
                .time_to_idle(STALE_KEEP)
                .build(),
            verifier: Verifier::start(cores, metrics.argon2_verifications.clone()),
            throttle: Throttle::default(),
            metrics,
        }
    }

    fn key(sid: &str, token: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(sid.as_bytes());
        h.update([0u8]);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    fn digest(hash: &str) -> [u8; 32] {
        Sha256::digest(hash.as_bytes()).into()
    }

    fn hash_digest(hash: &SecretString) -> [u8; 32] {
        Self::digest(hash.expose_secret())
    }

    fn lookup(&self, key: &[u8; 32]) -> Lookup {
        match self.entries.get(key) {
            Some(v) if v.fresh_until > Instant::now() => Lookup::Fresh(v.account.clone(), v.rate),
            Some(v) => Lookup::Stale(v.hash_digest),
            None => Lookup::Unknown,
        }
    }

    fn remember(
        &self,
        key: [u8; 32],
        hash_digest: [u8; 32],
        account: AccountSid,
        rate: Option<u32>,
    ) {
        self.entries.insert(
            key,
            Verified {
                fresh_until: Instant::now() + self.ttl,
                hash_digest,
                account,
                rate,
            },
        );
    }

    fn forget(&self, key: &[u8; 32]) {
        self.entries.invalidate(key);
    }

    /// The stored credential `sid` names: the account it acts for, the hash its secret must
    /// match and the account's own request rate. An account SID is its own account; an API key
    /// acts for its account.
    async fn stored(pool: &WorkerPool, sid: &str) -> Result<Option<Stored>, ApiError> {
        let rate = |r: Option<i32>| r.and_then(|r| u32::try_from(r).ok());
        if let Some(account) = AccountSid::parse(sid) {
            let found = pool
                .run(async |c| db::accounts::active_token_hash(c, sid).await)
                .await?;
            return Ok(found.map(|(hash, r)| (account, hash, rate(r))));
        }
        if ApiKeySid::parse(sid).is_none() {
            return Ok(None);
        }
        let found = pool
            .run(async |c| db::api_keys::active_secret_hash(c, sid).await)
            .await?;
        Ok(
            found
                .and_then(|(account, hash, r)| Some((AccountSid::parse(&account)?, hash, rate(r)))),
        )
    }

    /// Verifies `sid:token` as `authenticate` does, but never from the cache: a console
    /// sign-in opens a session that outlives the cache's TTL, so it must see a rotation at once.
    pub async fn authenticate_now(
        &self,
        pool: &WorkerPool,
        sid: &str,
        token: &SecretString,
        address: Option<IpAddr>,
    ) -> Result<Option<(AccountSid, Option<u32>)>, ApiError> {
        self.forget(&Self::key(sid, token.expose_secret()));
        self.authenticate(pool, sid, token, address).await
    }

    /// Verifies `sid:token` (from `address`), from the cache when it verified within the TTL;
    /// the account it acts for (and its own request rate), or `None`.
    pub async fn authenticate(
        &self,
        pool: &WorkerPool,
        sid: &str,
        token: &SecretString,
        address: Option<IpAddr>,
    ) -> Result<Option<(AccountSid, Option<u32>)>, ApiError> {
        let token = token.expose_secret();
        let key = Self::key(sid, token);
        let stale = match self.lookup(&key) {
            Lookup::Fresh(account, rate) => {
                self.metrics.auth_cache_hits.inc();
                return Ok(Some((account, rate)));
            }
            Lookup::Stale(digest) => Some(digest),
            Lookup::Unknown => None,
        };
        self.metrics.auth_cache_misses.inc();
        if let Some(digest) = stale {
            match Self::stored(pool, sid).await? {
                Some((account, hash, rate)) if Self::hash_digest(&hash) == digest => {
                    self.remember(key, digest, account.clone(), rate);
                    return Ok(Some((account, rate)));
                }
                // Rotated, deleted or suspended: verify from scratch (and most likely fail).
                _ => self.forget(&key),
            }
        }
        // Not verified before: refused at once after too many failures, known SID or not.
        let sid_key = Self::digest(sid);
        if let Some(retry_after) = self.throttle.check(Some(sid_key), address) {
            return Err(ApiError::TooManyRequests { retry_after });
        }
        let stored = Self::stored(pool, sid).await?;
        let (account, hash, rate) = match stored {
            Some((account, hash, rate)) => (Some(account), hash, rate),
            None => (None, dummy_hash().clone(), None),
        };
        let digest = Self::hash_digest(&hash);
        let verified = self
            .verifier
            .verify(sid_key, key, token, hash)
            .await
            .map_err(|_busy| ApiError::TooManyRequests { retry_after: 1 })?;
        match account {
            Some(account) if verified => {
                self.remember(key, digest, account.clone(), rate);
                Ok(Some((account, rate)))
            }
            _ => {
                self.throttle.failed(Some(sid_key), address);
                Ok(None)
            }
        }
    }
}

/// A stored credential: the account, the hash, the account's own request rate.
type Stored = (AccountSid, SecretString, Option<u32>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_token() {
        let h = hash_token("0123456789abcdef0123456789abcdef");
        let h = h.expose_secret();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_token("0123456789abcdef0123456789abcdef", h));
        assert!(!verify_token("0123456789abcdef0123456789abcdee", h));
        assert!(!verify_token("x", "not a hash"));
    }

    #[test]
    fn cache_entries_expire() {
        let cache = CredentialCache::new(
            Duration::from_millis(30),
            Arc::new(crate::telemetry::metrics::Metrics::new()),
        );
        let k = CredentialCache::key("AC1", "t");
        let d = CredentialCache::digest("$argon2id$...");
        assert!(matches!(cache.lookup(&k), Lookup::Unknown));
        cache.remember(k, d, AccountSid::generate(), None);
        assert!(matches!(cache.lookup(&k), Lookup::Fresh(..)));
        assert!(matches!(
            cache.lookup(&CredentialCache::key("AC1", "u")),
            Lookup::Unknown
        ));
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(cache.lookup(&k), Lookup::Stale(s) if s == d));
        cache.forget(&k);
        assert!(matches!(cache.lookup(&k), Lookup::Unknown));
    }
}
