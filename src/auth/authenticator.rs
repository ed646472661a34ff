//! The authentication service each HTTP worker holds (`web::Data<Authenticator>`), and the
//! extractors routes ask it through: `Account` (HTTP Basic, `AC...:token` or `SK...:secret`)
//! and `Caller` (an `Account`, or a participant by `Authorization: Bearer <Access Token>`).
//!
//! Every authenticated request passes the same three gates, in order: its credential (from the
//! caches when it verified recently), its account's request rate, and its account's clock.

use crate::auth::access_token::{AccessToken, TokenError};
use crate::auth::account_clocks::AccountClocks;
use crate::auth::console_sessions::SessionSecret;
use crate::auth::credentials::CredentialCache;
use crate::auth::request_rate::RequestLimiter;
use crate::auth::signing_keys::{token_error, SigningKeys};
use crate::db;
use crate::db::console_sessions::SessionRow;
use crate::db::WorkerPool;
use crate::domain::sid::{self, AccountSid, ApiKeySid};
use crate::telemetry::metrics::Metrics;
use crate::twilio::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

/// What every worker's `Authenticator` shares: built once per process.
#[derive(Clone)]
pub struct AuthServices {
    pub credentials: Arc<CredentialCache>,
    pub signing_keys: Arc<SigningKeys>,
    pub requests: Arc<RequestLimiter>,
    pub clocks: Arc<AccountClocks>,
    pub metrics: Arc<Metrics>,
}

impl AuthServices {
    /// The authenticator of one HTTP worker, reading through that worker's own pool.
    pub fn for_worker(&self, pool: Arc<WorkerPool>) -> Authenticator {
        Authenticator {
            pool,
            services: self.clone(),
        }
    }
}

/// One worker's authentication: the shared services and the worker's connections.
pub struct Authenticator {
    pool: Arc<WorkerPool>,
    services: AuthServices,
}

impl Authenticator {
    /// `sid:token` by Basic auth from `address`: the account it acts for, past its request rate,
    /// on its clock.
    pub async fn basic(
        &self,
        sid: &str,
        token: &SecretString,
        address: Option<IpAddr>,
    ) -> Result<AccountSid, ApiError> {
        // Only an account or API key SID can verify (checked without allocating: this runs on
        // every request).
        if !sid::is_sid(AccountSid::PREFIX, sid) && !sid::is_sid(ApiKeySid::PREFIX, sid) {
            return Err(ApiError::Unauthorized);
        }
        let verified = self
            .services
            .credentials
            .authenticate(&self.pool, sid, token, address)
            .await?;
        let (account, rate) = verified.ok_or(ApiError::Unauthorized)?;
        self.admit(&account, rate)?;
        self.services.clocks.enter(&self.pool, &account).await?;
        Ok(account)
    }

    /// A console sign-in with `sid:token` (an account's, or an API key's) from `address`:
    /// verified without the cache, throttled on failure as Basic auth is, counted against the
    /// account's request rate. The account, and the key when a key signed in.
    pub async fn sign_in(
        &self,
        sid: &str,
        token: &SecretString,
        address: Option<IpAddr>,
    ) -> Result<(AccountSid, Option<ApiKeySid>), ApiError> {
        if !sid::is_sid(AccountSid::PREFIX, sid) && !sid::is_sid(ApiKeySid::PREFIX, sid) {
            return Err(ApiError::Unauthorized);
        }
        let verified = self
            .services
            .credentials
            .authenticate_now(&self.pool, sid, token, address)
            .await?;
        let (account, rate) = verified.ok_or(ApiError::Unauthorized)?;
        self.admit(&account, rate)?;
        Ok((account, ApiKeySid::parse(sid)))
    }

    /// The account of the live console session `secret` names (`None`: none), past its request
    /// rate, on its clock.
    pub async fn session(
        &self,
        secret: &SessionSecret,
    ) -> Result<Option<(AccountSid, SessionRow)>, ApiError> {
        let digest = secret.digest();
        let found = self
            .pool
            .run(async |c| db::console_sessions::find(c, &digest).await)
            .await?;
        let Some((account, row)) =
            found.and_then(|row| Some((AccountSid::parse(&row.account_sid)?, row)))
        else {
            return Ok(None);
        };
        let rate = row
            .max_requests_per_second
            .and_then(|r| u32::try_from(r).ok());
        self.admit(&account, rate)?;
        self.services.clocks.enter(&self.pool, &account).await?;
        Ok(Some((account, row)))
    }

    /// An Access Token from `address`, verified, past its account's request rate, on its clock.
    pub async fn bearer(
        &self,
        token: &str,
        address: Option<IpAddr>,
    ) -> Result<AccessToken, ApiError> {
        let token = self
            .services
            .signing_keys
            .verify(&self.pool, token, address)
            .await?;
        self.admit(&token.account, None)?;
        self.services
            .clocks
            .enter(&self.pool, &token.account)
            .await?;
        Ok(token)
    }

    /// Counts a request of `account` against its rate (`rate`: its own, when just read); 429
    /// with `Retry-After` past it.
    fn admit(&self, account: &AccountSid, rate: Option<u32>) -> Result<(), ApiError> {
        self.services
            .requests
            .admit(account, rate)
            .map_err(|retry_after| {
                self.services
                    .metrics
                    .account_limits_hit
                    .with_label_values(&["requests"])
                    .inc();
                ApiError::TooManyRequests { retry_after }
            })
    }
}

/// The authenticated account of a request (HTTP Basic).
#[derive(Debug, Clone)]
pub struct Account {
    pub sid: AccountSid,
}

/// An account (Basic auth) or a participant (Bearer Access Token).
pub enum Caller {
    Account(Account),
    Participant(AccessToken),
}

/// An authenticated request's account, however it authenticated.
pub trait Authenticated {
    fn account_sid(&self) -> &AccountSid;
}

impl Authenticated for Account {
    fn account_sid(&self) -> &AccountSid {
        &self.sid
    }
}

impl Authenticated for Caller {
    fn account_sid(&self) -> &AccountSid {
        match self {
            Caller::Account(a) => &a.sid,
            Caller::Participant(t) => &t.account,
        }
    }
}

/// The worker's authenticator (registered by `app::startup` on every worker that serves the API).
fn authenticator(req: &HttpRequest) -> Result<web::Data<Authenticator>, ApiError> {
    req.app_data::<web::Data<Authenticator>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no Authenticator on this worker")))
}

/// `(sid, token)` from an `Authorization: Basic` header.
fn basic_credentials(req: &HttpRequest) -> Option<(String, SecretString)> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = SecretString::from(String::from_utf8(decoded).ok()?);
    let (sid, token) = decoded.expose_secret().split_once(':')?;
    if sid.is_empty() || token.is_empty() {
        return None;
    }
    Some((sid.to_string(), SecretString::from(token)))
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

impl FromRequest for Account {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let creds = basic_credentials(req);
        let address = req.peer_addr().map(|a| a.ip());
        let auth = authenticator(req);
        Box::pin(async move {
            let (sid, token) = creds.ok_or(ApiError::Unauthorized)?;
            let sid = auth?.basic(&sid, &token, address).await?;
            Ok(Account { sid })
        })
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let Some(token) = bearer_token(req) else {
            let account = Account::from_request(req, payload);
            return Box::pin(async move { Ok(Caller::Account(account.await?)) });
        };
        let address = req.peer_addr().map(|a| a.ip());
        let auth = authenticator(req);
        Box::pin(async move {
            let token = auth?.bearer(&token?, address).await?;
            Ok(Caller::Participant(token))
        })
    }
}
