//! HTTP Basic authentication of accounts (`AccountSid:AuthToken`).
//!
//! Tokens are stored as argon2id PHC hashes. Verifying one costs ~25 ms of CPU, so it runs on a
//! blocking thread, and a successful verification is cached in-process for a short TTL, keyed by
//! SHA-256(sid, token): a steady client pays argon2 once per TTL. The cache holds no token and
//! is never consulted for a credential that has not verified, so a rotated token stops working
//! on every replica within the TTL. Unknown SIDs verify against a dummy hash so the response time
//! does not reveal which SIDs exist.

use crate::db;
use crate::twilio::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(10);
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(30);
const MAX_CACHE_ENTRIES: usize = 100_000;

/// The authenticated account of a request.
#[derive(Debug, Clone)]
pub struct Account {
    pub sid: String,
}

/// Hashes a token as an argon2id PHC string with a fresh salt.
pub fn hash_token(token: &str) -> String {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(token.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
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

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_token(&crate::domain::sid::random_hex32()))
}

/// Successful verifications, by SHA-256 of sid and token, with the moment they expire.
pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Instant>>,
    /// Bounds concurrent argon2 runs (each takes ~19 MiB and a core for ~25 ms): a burst of
    /// requests with one new credential waits here, then finds the first verification cached,
    /// and a flood of wrong tokens cannot exhaust memory.
    verifications: tokio::sync::Semaphore,
    metrics: Arc<crate::metrics::Metrics>,
}

impl AuthCache {
    pub fn new(ttl: Duration, metrics: Arc<crate::metrics::Metrics>) -> Self {
        // Build the dummy hash now rather than on the first unknown SID.
        let _ = dummy_hash();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        AuthCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
            verifications: tokio::sync::Semaphore::new(cores),
            metrics,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn key(sid: &str, token: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(sid.as_bytes());
        h.update([0u8]);
        h.update(token.as_bytes());
        h.finalize().into()
    }

    fn hit(&self, key: &[u8; 32]) -> bool {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("auth cache lock");
        match entries.get(key) {
            Some(expires) if *expires > now => true,
            Some(_) => {
                entries.remove(key);
                false
            }
            None => false,
        }
    }

    fn remember(&self, key: [u8; 32]) {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("auth cache lock");
        if entries.len() >= MAX_CACHE_ENTRIES {
            entries.retain(|_, expires| *expires > now);
            if entries.len() >= MAX_CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, now + self.ttl);
    }

    /// Verifies `sid:token`, from the cache when it verified within the TTL.
    pub async fn authenticate(
        &self,
        pool: &PgPool,
        sid: &str,
        token: &str,
    ) -> Result<bool, ApiError> {
        let key = Self::key(sid, token);
        if self.hit(&key) {
            self.metrics.auth_cache_hits.inc();
            return Ok(true);
        }
        self.metrics.auth_cache_misses.inc();
        let _permit = self
            .verifications
            .acquire()
            .await
            .map_err(ApiError::internal)?;
        // Another request may have verified this credential while we waited.
        if self.hit(&key) {
            return Ok(true);
        }
        let stored = if crate::domain::sid::is_sid(crate::domain::sid::ACCOUNT, sid) {
            db::accounts::active_token_hash(pool, sid).await?
        } else {
            None
        };
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy_hash().to_string());
        let token = token.to_string();
        self.metrics.argon2_verifications.inc();
        let verified = web::block(move || verify_token(&token, &hash))
            .await
            .map_err(ApiError::internal)?;
        if verified && known {
            self.remember(key);
            return Ok(true);
        }
        Ok(false)
    }
}

/// `(sid, token)` from an `Authorization: Basic` header.
fn basic_credentials(req: &HttpRequest) -> Option<(String, String)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (sid, token) = decoded.split_once(':')?;
    if sid.is_empty() || token.is_empty() {
        return None;
    }
    Some((sid.to_string(), token.to_string()))
}

impl FromRequest for Account {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let creds = basic_credentials(req);
        let state = req
            .app_data::<web::Data<crate::startup::AppState>>()
            .cloned();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let (sid, token) = creds.ok_or(ApiError::Unauthorized)?;
            let cache: &Arc<AuthCache> = &state.auth;
            if cache.authenticate(&state.pool, &sid, &token).await? {
                Ok(Account { sid })
            } else {
                Err(ApiError::Unauthorized)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_token() {
        let h = hash_token("0123456789abcdef0123456789abcdef");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_token("0123456789abcdef0123456789abcdef", &h));
        assert!(!verify_token("0123456789abcdef0123456789abcdee", &h));
        assert!(!verify_token("x", "not a hash"));
    }

    #[test]
    fn cache_entries_expire() {
        let cache = AuthCache::new(
            Duration::from_millis(30),
            Arc::new(crate::metrics::Metrics::new()),
        );
        let k = AuthCache::key("AC1", "t");
        assert!(!cache.hit(&k));
        cache.remember(k);
        assert!(cache.hit(&k));
        assert!(!cache.hit(&AuthCache::key("AC1", "u")));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!cache.hit(&k));
    }
}
