//! Twilio Access Tokens with a Video grant, as twilio-python's and twilio-node's `AccessToken`
//! mint them: a JWT (HS256, or HS384/HS512 from Node) with header `cty: twilio-fpa;v=1`, signed
//! with an API key's secret; `iss` the key, `sub` its account, `exp` (and `nbf` if present) in
//! real time, `grants.identity` and `grants.video` (optionally naming one room).
//!
//! Checking one takes two steps, because the secret depends on the token: `peek` reads the
//! issuer and subject without trusting them, the caller fetches that key's secret (unsealed) and
//! account, and `verify` checks everything against them. Each failure carries Twilio's code.

use crate::domain::sid::{AccountSid, ApiKeySid};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The header Twilio's libraries write.
const CONTENT_TYPE: &str = "twilio-fpa;v=1";
const ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
/// Twilio's longest identity.
const MAX_IDENTITY_CHARS: usize = 128;
/// How far ahead of roomd's clock a token's `nbf` may be: the clock of the server that minted
/// it may run ahead of roomd's (twilio-python sets `nbf` to its own now). `exp` gets none.
pub const NBF_LEEWAY_SECS: u64 = 60;

/// Why a token was refused, as Twilio's codes (all 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// 20101: not a JWT at all, or claims of the wrong shape.
    Invalid,
    /// 20102: the header is not Twilio's (`cty`, or an algorithm other than HS256/384/512).
    InvalidHeader,
    /// 20103: the issuer is no API key (unknown, deleted), or the subject is not its account.
    InvalidIssuerOrSubject,
    /// 20104
    Expired,
    /// 20105
    NotYetValid,
    /// 20106: no video grant, or no (valid) identity.
    InvalidGrants,
    /// 20107
    InvalidSignature,
}

impl TokenError {
    pub fn code(self) -> u32 {
        match self {
            TokenError::Invalid => 20101,
            TokenError::InvalidHeader => 20102,
            TokenError::InvalidIssuerOrSubject => 20103,
            TokenError::Expired => 20104,
            TokenError::NotYetValid => 20105,
            TokenError::InvalidGrants => 20106,
            TokenError::InvalidSignature => 20107,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            TokenError::Invalid => "Invalid Access Token",
            TokenError::InvalidHeader => "Invalid Access Token header",
            TokenError::InvalidIssuerOrSubject => "Invalid Access Token issuer/subject",
            TokenError::Expired => "Access Token expired or expiration date invalid",
            TokenError::NotYetValid => "Access Token not yet valid",
            TokenError::InvalidGrants => "Invalid Access Token grants",
            TokenError::InvalidSignature => "Invalid Access Token signature",
        }
    }
}

/// A token's claimed issuer and subject, not yet trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub key: ApiKeySid,
    pub account: AccountSid,
}

/// A verified token: who it lets in, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub account: AccountSid,
    pub key: ApiKeySid,
    pub identity: String,
    /// `grants.video.room`: the one room (unique name or SID) the token may join.
    pub room: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    /// Checked here rather than by `jsonwebtoken`, whose one leeway would stretch `exp` too.
    #[serde(default)]
    nbf: Option<f64>,
    #[serde(default)]
    grants: Grants,
}

#[derive(Deserialize, Default)]
struct Grants {
    identity: Option<String>,
    video: Option<VideoGrant>,
}

#[derive(Deserialize)]
struct VideoGrant {
    room: Option<String>,
}

fn header_is_twilios(token: &str) -> Result<(), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
    if header.cty.as_deref() != Some(CONTENT_TYPE) || !ALGORITHMS.contains(&header.alg) {
        return Err(TokenError::InvalidHeader);
    }
    Ok(())
}

/// The issuer and subject a token claims, read without checking its signature or times.
pub fn peek(token: &str) -> Result<Claimed, TokenError> {
    header_is_twilios(token)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.insecure_disable_signature_validation();
    validation.algorithms = ALGORITHMS.to_vec();
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&[]), &validation)
        .map_err(|_| TokenError::Invalid)?
        .claims;
    Ok(Claimed {
        key: ApiKeySid::parse(&claims.iss).ok_or(TokenError::InvalidIssuerOrSubject)?,
        account: AccountSid::parse(&claims.sub).ok_or(TokenError::InvalidIssuerOrSubject)?,
    })
}

/// Verifies `token` against the secret of the key it claims and that key's account (as stored).
pub fn verify(
    token: &str,
    claimed: &Claimed,
    key_account: &AccountSid,
    secret: &[u8],
) -> Result<AccessToken, TokenError> {
    header_is_twilios(token)?;
    if &claimed.account != key_account {
        return Err(TokenError::InvalidIssuerOrSubject);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = ALGORITHMS.to_vec();
    validation.leeway = 0;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let claims =
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidSignature => TokenError::InvalidSignature,
                ErrorKind::InvalidAlgorithm => TokenError::InvalidHeader,
                _ => TokenError::Invalid,
            })?
            .claims;
    if let Some(nbf) = claims.nbf {
        let now = jsonwebtoken::get_current_timestamp();
        if !nbf.is_finite() || nbf > (now + NBF_LEEWAY_SECS) as f64 {
            return Err(TokenError::NotYetValid);
        }
    }
    if claims.iss != claimed.key.as_str() || claims.sub != claimed.account.as_str() {
        return Err(TokenError::InvalidIssuerOrSubject);
    }
    let video = claims.grants.video.ok_or(TokenError::InvalidGrants)?;
    let identity = claims
        .grants
        .identity
        .filter(|i| {
            !i.is_empty()
                && i.chars().count() <= MAX_IDENTITY_CHARS
                && !i.chars().any(char::is_control)
                && !crate::domain::participant::is_participant_sid_shaped(i)
        })
        .ok_or(TokenError::InvalidGrants)?;
    Ok(AccessToken {
        account: claimed.account.clone(),
        key: claimed.key.clone(),
        identity,
        room: video.room,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::{json, Value};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn sids() -> (ApiKeySid, AccountSid) {
        (ApiKeySid::generate(), AccountSid::generate())
    }

    /// A token as twilio-python mints one (nbf = now, no iat), with `claims` merged over it.
    fn mint(key: &ApiKeySid, account: &AccountSid, claims: Value, alg: Algorithm) -> String {
        let mut header = Header::new(alg);
        header.cty = Some(CONTENT_TYPE.into());
        let mut body = json!({
            "jti": format!("{key}-{}", now()),
            "iss": key.as_str(),
            "sub": account.as_str(),
            "nbf": now(),
            "exp": now() + 3600,
            "grants": {"identity": "alice", "video": {"room": "standup"}},
        });
        for (k, v) in claims.as_object().unwrap() {
            body[k] = v.clone();
        }
        jsonwebtoken::encode(&header, &body, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn check(token: &str, account: &AccountSid) -> Result<AccessToken, TokenError> {
        let claimed = peek(token)?;
        verify(token, &claimed, account, SECRET)
    }

    #[test]
    fn twilio_tokens_verify_with_their_identity_and_room() {
        let (key, account) = sids();
        for alg in ALGORITHMS {
            let t = check(&mint(&key, &account, json!({}), alg), &account).unwrap();
            assert_eq!(
                t,
                AccessToken {
                    account: account.clone(),
                    key: key.clone(),
                    identity: "alice".into(),
                    room: Some("standup".into()),
                }
            );
        }
        // Node's shape: no nbf, an iat, and a video grant naming no room.
        let token = mint(
            &key,
            &account,
            json!({"nbf": null, "iat": now(), "grants": {"identity": "bob", "video": {}}}),
            Algorithm::HS256,
        );
        let t = check(&token, &account).unwrap();
        assert_eq!((t.identity.as_str(), t.room), ("bob", None));
    }

    /// Minted by twilio-python 9.11 (`AccessToken("AC"+"a"*32, "SK"+"b"*32, "s3cret",
    /// identity="alice")` with `VideoGrant(room="standup")`), expiring 2026-11-28T23:28:54Z.
    const PYTHON_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsImN0eSI6InR3aWxpby1mcGE7dj0xIiwidHlwIjoiSldUIn0.eyJqdGkiOiJTS2JiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiLTE3OTU5MDQ5MzQiLCJncmFudHMiOnsidmlkZW8iOnsicm9vbSI6InN0YW5kdXAifSwiaWRlbnRpdHkiOiJhbGljZSJ9LCJpc3MiOiJTS2JiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiIiwiZXhwIjoxNzk1OTA4NTM0LCJuYmYiOjE3OTU5MDQ5MzQsInN1YiI6IkFDYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWEifQ.vssIi-Z5J_tPAfWB0q-UlBe7nTVY1JahGBMDc6lyTlY";

    #[test]
    fn a_token_twilio_python_minted_checks_out_with_its_secret_only() {
        let claimed = peek(PYTHON_TOKEN).unwrap();
        assert_eq!(claimed.key.as_str(), format!("SK{}", "b".repeat(32)));
        let account = AccountSid::parse(&format!("AC{}", "a".repeat(32))).unwrap();
        // The signature is checked before the times, so "expired" also means "signed right".
        match verify(PYTHON_TOKEN, &claimed, &account, b"s3cret") {
            Ok(t) => assert_eq!(
                (t.identity.as_str(), t.room.as_deref()),
                ("alice", Some("standup"))
            ),
            Err(e) => assert_eq!(e, TokenError::Expired),
        }
        assert_eq!(
            verify(PYTHON_TOKEN, &claimed, &account, b"s3creT").unwrap_err(),
            TokenError::InvalidSignature
        );
    }

    #[test]
    fn a_token_from_a_server_whose_clock_runs_a_little_ahead_is_accepted() {
        let (key, account) = sids();
        for ahead in [1, 5, NBF_LEEWAY_SECS as i64 - 5] {
            let token = mint(
                &key,
                &account,
                json!({"nbf": now() + ahead}),
                Algorithm::HS256,
            );
            let claimed = peek(&token).unwrap();
            assert!(
                verify(&token, &claimed, &account, SECRET).is_ok(),
                "{ahead}"
            );
        }
    }

    #[test]
    fn each_failure_has_its_code() {
        let (key, account) = sids();
        let ok = |claims| mint(&key, &account, claims, Algorithm::HS256);
        let cases = [
            (ok(json!({"exp": now() - 5})), TokenError::Expired),
            (ok(json!({"nbf": now() + 600})), TokenError::NotYetValid),
            (
                ok(json!({"nbf": now() + NBF_LEEWAY_SECS as i64 + 5})),
                TokenError::NotYetValid,
            ),
            (ok(json!({"exp": now() - 1})), TokenError::Expired),
            (
                ok(json!({"grants": {"identity": "a"}})),
                TokenError::InvalidGrants,
            ),
            (
                ok(json!({"grants": {"video": {}}})),
                TokenError::InvalidGrants,
            ),
            (
                ok(json!({"grants": {"identity": "", "video": {}}})),
                TokenError::InvalidGrants,
            ),
            (
                ok(json!({"grants": {"identity": "x".repeat(129), "video": {}}})),
                TokenError::InvalidGrants,
            ),
            (
                ok(json!({"iss": "AC123"})),
                TokenError::InvalidIssuerOrSubject,
            ),
            (
                ok(json!({"sub": "nobody"})),
                TokenError::InvalidIssuerOrSubject,
            ),
            ("not.a.jwt".to_string(), TokenError::Invalid),
            ("".to_string(), TokenError::Invalid),
        ];
        for (token, want) in cases {
            assert_eq!(check(&token, &account).unwrap_err(), want, "{token}");
        }
        // Signed with another secret.
        let token = ok(json!({}));
        let claimed = peek(&token).unwrap();
        assert_eq!(
            verify(&token, &claimed, &account, b"another secret").unwrap_err(),
            TokenError::InvalidSignature
        );
        // A key of another account.
        assert_eq!(
            verify(&token, &claimed, &AccountSid::generate(), SECRET).unwrap_err(),
            TokenError::InvalidIssuerOrSubject
        );
        // Not Twilio's header.
        let mut header = Header::new(Algorithm::HS256);
        header.cty = None;
        let plain = jsonwebtoken::encode(
            &header,
            &json!({"iss": key.as_str(), "sub": account.as_str(), "exp": now() + 60}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(
            check(&plain, &account).unwrap_err(),
            TokenError::InvalidHeader
        );
        // Codes are Twilio's.
        assert_eq!(TokenError::Expired.code(), 20104);
        assert_eq!(TokenError::InvalidSignature.code(), 20107);
    }
}
