//! The web console's session secrets. A session is 32 random bytes, given to the browser once as
//! an `HttpOnly` cookie; the database keeps only their SHA-256 (`db::console_sessions`). The
//! CSRF token every console form carries is derived from the secret (HMAC-SHA256 under it), so
//! it needs no storage and no page can compute it without the cookie, which scripts cannot read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A cookie value's length: 32 bytes in unpadded base64url.
const ENCODED_LEN: usize = 43;

/// A session's secret; its `Debug` prints nothing of it.
pub struct SessionSecret(SecretString);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret([redacted])")
    }
}

impl SessionSecret {
    /// A fresh secret from the operating system's generator.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionSecret(URL_SAFE_NO_PAD.encode(bytes).into())
    }

    /// A cookie's value, when it has a secret's shape (anything else names no session, and
    /// costs no database read).
    pub fn from_cookie(value: &str) -> Option<Self> {
        let shaped = value.len() == ENCODED_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        shaped.then(|| SessionSecret(value.into()))
    }

    /// What the cookie carries.
    pub fn cookie_value(&self) -> &str {
        self.0.expose_secret()
    }

    /// What the database keeps.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.expose_secret().as_bytes()).into()
    }

    /// The CSRF token of this session's forms.
    pub fn csrf_token(&self) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(b"roomd console csrf v1");
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, given: &str) -> bool {
        self.csrf_token().as_bytes().ct_eq(given.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_through_the_cookie_and_never_print() {
        let s = SessionSecret::generate();
        let back = SessionSecret::from_cookie(s.cookie_value()).unwrap();
        assert_eq!(s.digest(), back.digest());
        assert!(back.csrf_matches(&s.csrf_token()));
        assert!(!back.csrf_matches(&SessionSecret::generate().csrf_token()));
        assert!(!back.csrf_matches(""));
        assert!(!format!("{s:?}").contains(s.cookie_value()));
        assert_ne!(s.csrf_token(), s.cookie_value());
        for bad in ["", "x", &"a".repeat(44), &format!("{}=", &"a".repeat(42))] {
            assert!(SessionSecret::from_cookie(bad).is_none(), "{bad}");
        }
    }
}
