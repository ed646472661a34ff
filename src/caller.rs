//! Who is calling an endpoint a participant may call itself (the join, leaving): an account by
//! Basic auth (`AC...:token` or `SK...:secret`, see `auth`), or a participant by
//! `Authorization: Bearer <Access Token>`.
//!
//! A token is checked in two steps (`access_token`): its claimed key's secret is unsealed with the
//! master key and remembered, with the key's account, for the credential-cache TTL, so a steady
//! client costs one HMAC per request, and a deleted key stops working within the TTL, as a
//! deleted key's Basic auth does.

use crate::access_token::{self, AccessToken, TokenError};
use crate::auth::Account;
use crate::db::WorkerPool;
use crate::domain::sid::{AccountSid, ApiKeySid};
use crate::seal::MasterKey;
use crate::throttle::Throttle;
use crate::twilio::ApiError;
use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::{ExposeSecret, SecretSlice};
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MAX_KEYS: usize = 10_000;

/// An authenticated request's account, however it authenticated.
pub trait Authenticated {
    fn account_sid(&self) -> &AccountSid;
}

impl Authenticated for Account {
    fn account_sid(&self) -> &AccountSid {
        &self.sid
    }
}

/// An account (Basic auth) or a participant (Bearer Access Token).
pub enum Caller {
    Account(Account),
    Participant(AccessToken),
}

impl Authenticated for Caller {
    fn account_sid(&self) -> &AccountSid {
        match self {
            Caller::Account(a) => &a.sid,
            Caller::Participant(t) => &t.account,
        }
    }
}

/// An API key's secret and account, unsealed.
struct SigningKey {
    account: AccountSid,
    secret: SecretSlice<u8>,
    fresh_until: Instant,
}

/// The unsealed secrets of the keys that signed recent tokens, for at most the TTL each.
pub struct SigningKeys {
    master: Arc<MasterKey>,
    ttl: Duration,
    keys: Mutex<HashMap<ApiKeySid, Arc<SigningKey>>>,
    /// Failures by client address (not by key: a key's SID is in every token it signs).
    throttle: Throttle,
}

impl SigningKeys {
    pub fn new(master: Arc<MasterKey>, ttl: Duration) -> SigningKeys {
        SigningKeys {
            master,
            ttl,
            keys: Mutex::new(HashMap::new()),
            throttle: Throttle::default(),
        }
    }

    fn cached(&self, sid: &ApiKeySid) -> Option<Arc<SigningKey>> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.get(sid)
            .filter(|k| k.fresh_until > Instant::now())
            .cloned()
    }

    fn remember(&self, sid: ApiKeySid, key: Arc<SigningKey>) {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if keys.len() >= MAX_KEYS && !keys.contains_key(&sid) {
            keys.retain(|_, k| k.fresh_until > now);
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
        }
        keys.insert(sid, key);
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
        let key = Arc::new(SigningKey {
            account,
            secret,
            fresh_until: Instant::now() + self.ttl,
        });
        self.remember(sid.clone(), key.clone());
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

/// The token of an `Authorization: Bearer` header, if that is the scheme.
fn bearer_token(req: &HttpRequest) -> Option<Result<String, ApiError>> {
    let value = req.headers().get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return None;
    };
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    Some(if token.is_empty() {
        Err(token_error(TokenError::Invalid))
    } else {
        Ok(token.to_string())
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let Some(token) = bearer_token(req) else {
            let account = Account::from_request(req, payload);
            return Box::pin(async move { Ok(Caller::Account(account.await?)) });
        };
        let state = req.app_data::<web::Data<crate::state::AppState>>().cloned();
        let address = req.peer_addr().map(|a| a.ip());
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("no app state")))?;
            let token = state
                .signing_keys
                .verify(&state.pool, &token?, address)
                .await?;
            state.auth.admit(&token.account, None)?;
            state.clocks.enter(&state.pool, &token.account).await?;
            Ok(Caller::Participant(token))
        })
    }
}
