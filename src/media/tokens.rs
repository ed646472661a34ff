//! The secrets roomd gives Janus, derived from the master key so that every replica computes the
//! same ones and none is stored: a participant's media token (its Janus session token and its
//! room join token) and a room's secret.
//!
//! A media token is `<participant SID>.<MAC>`: the SID says whose it is (Janus reports the token
//! of every handle and every join), the MAC (HMAC-SHA256 under a key derived from the master
//! key) that roomd made it.

use crate::auth::master_key::MasterKey;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Derives media secrets; holds only a key derived from the master key, and never prints it.
pub struct MediaSecrets {
    key: secrecy::SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for MediaSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaSecrets([redacted])")
    }
}

impl MediaSecrets {
    pub fn new(master: &MasterKey) -> MediaSecrets {
        let key: [u8; 32] = master.derive("roomd media secrets v1");
        MediaSecrets {
            key: secrecy::SecretBox::new(Box::new(key)),
        }
    }

    fn hmac(&self, purpose: &str, subject: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose_secret())
            .expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(subject.as_bytes());
        mac
    }

    fn mac(&self, purpose: &str, subject: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.hmac(purpose, subject).finalize().into_bytes())
    }

    /// The media token of a participant.
    pub fn token(&self, participant_sid: &str) -> SecretString {
        format!("{participant_sid}.{}", self.mac("token", participant_sid)).into()
    }

    /// The participant a token was made for, if roomd made it.
    pub fn participant_of<'t>(&self, token: &'t str) -> Option<&'t str> {
        let (sid, mac) = token.split_once('.')?;
        crate::domain::sid::ParticipantSid::parse(sid)?;
        let mac = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(mac)
            .ok()?;
        // `verify_slice` compares in constant time: the MAC is a secret until it matches.
        self.hmac("token", sid).verify_slice(&mac).ok()?;
        Some(sid)
    }

    /// A room's Janus secret (needed to edit, kick in or destroy it).
    pub fn room_secret(&self, room_sid: &str) -> SecretString {
        self.mac("room", room_sid).into()
    }

    /// The signature of a link to a recording's media until `expires` (Unix seconds).
    pub fn media_signature(&self, recording_sid: &str, expires: i64) -> String {
        self.mac("media link", &format!("{recording_sid}/{expires}"))
    }

    /// Whether `signature` is that of a link to the recording's media until `expires`
    /// (compared in constant time).
    pub fn media_signature_matches(
        &self,
        recording_sid: &str,
        expires: i64,
        signature: &str,
    ) -> bool {
        let Ok(mac) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.hmac("media link", &format!("{recording_sid}/{expires}"))
            .verify_slice(&mac)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_participant_and_a_forged_one_names_nobody() {
        let secrets = MediaSecrets::new(&MasterKey::generate());
        let sid = "PA0123456789abcdef0123456789abcdef";
        let token = secrets.token(sid);
        assert_eq!(secrets.participant_of(token.expose_secret()), Some(sid));
        let other = "PAffffffffffffffffffffffffffffffff";
        let forged = token.expose_secret().replace(sid, other);
        assert_eq!(secrets.participant_of(&forged), None);
        assert_eq!(secrets.participant_of(sid), None);
        assert_eq!(secrets.participant_of("x.y"), None);
        let elsewhere = MediaSecrets::new(&MasterKey::generate());
        assert_eq!(elsewhere.participant_of(token.expose_secret()), None);
        assert!(!format!("{secrets:?}").contains(&token.expose_secret()[35..]));
    }

    #[test]
    fn a_media_link_signature_names_its_recording_and_expiry() {
        let secrets = MediaSecrets::new(&MasterKey::generate());
        let sid = "RT0123456789abcdef0123456789abcdef";
        let sig = secrets.media_signature(sid, 1000);
        assert!(secrets.media_signature_matches(sid, 1000, &sig));
        assert!(!secrets.media_signature_matches(sid, 1001, &sig));
        assert!(!secrets.media_signature_matches("RTffffffffffffffffffffffffffffffff", 1000, &sig));
        assert!(!secrets.media_signature_matches(sid, 1000, "not base64!"));
    }

    #[test]
    fn every_replica_derives_the_same_secrets_from_one_master_key() {
        let key = MasterKey::generate();
        let (a, b) = (MediaSecrets::new(&key), MediaSecrets::new(&key));
        let room = "RM0123456789abcdef0123456789abcdef";
        assert_eq!(
            a.room_secret(room).expose_secret(),
            b.room_secret(room).expose_secret()
        );
        assert_ne!(
            a.room_secret(room).expose_secret(),
            a.token("PA0123456789abcdef0123456789abcdef")
                .expose_secret()
        );
    }
}
