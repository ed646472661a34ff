//! The API keys that sign Access Tokens (`Authorization: Bearer`), unsealed and remembered.
//!
//! A token is checked in two steps (`access_token`): its claimed key's secret is unsealed with the
//! master key and remembered, with the key's account, for the credential-cache TTL, so a steady
//! client costs one HMAC per request, and a deleted key stops working within the TTL, as a
//! deleted key's Basic auth does.

use crate::auth::access_token::{self, AccessToken, TokenError};
use crate::auth::failure_throttle::Throttle;
use crate::auth::master_key::MasterKey;
use crate::db::WorkerPool;
use crate::domain::sid::{AccountSid, ApiKeySid};
use crate::twilio::ApiError;
use actix_web::http::StatusCode;
use secrecy::{ExposeSecret, SecretSlice};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

const MAX_KEYS: u64 = 10_000;

/// An API key's secret and account, unsealed.
struct SigningKey {
    account: AccountSid,
    secret: SecretSlice<u8>,
}

/// The unsealed secrets of the keys that signed recent tokens, for at most the TTL each.
pub struct SigningKeys {
    master: Arc<MasterKey>,
    /// At most `MAX_KEYS` (least-used first when full), each for the TTL.
    keys: moka::sync::Cache<ApiKeySid, Arc<SigningKey>>,
    /// Failures by client address (not by key: a key's SID is in every token it signs).
    throttle: Throttle,
}

impl SigningKeys {
    pub fn new(master: Arc<MasterKey>, ttl: Duration) -> SigningKeys {
        SigningKeys {
            master,
            keys: moka::sync::Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(ttl)
                .build(),
            throttle: Throttle::default(),
        }
    }

    fn cached(&self, sid: &ApiKeySid) -> Option<Arc<SigningKey>> {
        self.keys.get(sid)
    }

    /// The key `sid` (an active key of an active account), read and unsealed.
    async fn load(
        &self,
        pool: &WorkerPool,
        sid: &ApiKeySid,
    ) -> Result<Option<Arc<SigningKey>>, ApiError> {
        let stored = pool
            .run(async |c| crate::db::api_keys::active_secret_sealed(c, sid).await)
            .await?;
        let Some((account, sealed)) = stored else {
            return Ok(None);
        };
        let account = AccountSid::parse(&account)
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("key {sid}: bad account SID")))?;
        let secret = self.master.open(sid, &sealed).map_err(|_| {
            ApiError::internal(anyhow::anyhow!(
                "the sealed secret of key {sid} does not open with the master key"
            ))
        })?;
        let key = Arc::new(SigningKey { account, secret });
        self.keys.insert(sid.clone(), key.clone());
        Ok(Some(key))
    }

    /// Verifies an Access Token from `address`: its key must be active, of the token's account,
    /// and its secret must have signed it. A key in memory costs one HMAC; reading one costs a
    /// query, so past too many failures from one (non-loopback) address that read is refused
    /// with 429 first, as Basic auth's verification is.
    pub async fn verify(
        &self,
        pool: &WorkerPool,
        token: &str,
        address: Option<IpAddr>,
    ) -> Result<AccessToken, ApiError> {
        let claimed = access_token::peek(token).map_err(token_error)?;
        let key = match self.cached(&claimed.key) {
            Some(key) => key,
            None => {
                if let Some(retry_after) = self.throttle.check(None, address) {
                    return Err(ApiError::TooManyRequests { retry_after });
                }
                match self.load(pool, &claimed.key).await? {
                    Some(key) => key,
                    None => {
                        self.throttle.failed(None, address);
                        return Err(token_error(TokenError::InvalidIssuerOrSubject));
                    }
                }
            }
        };
        access_token::verify(token, &claimed, &key.account, key.secret.expose_secret()).map_err(
            |e| {
                if matches!(
                    e,
                    TokenError::InvalidSignature | TokenError::InvalidIssuerOrSubject
                ) {
                    self.throttle.failed(None, address);
                }
                token_error(e)
            },
        )
    }
}

/// A refused token: 401 with its code.
pub fn token_error(e: TokenError) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.message())
}
