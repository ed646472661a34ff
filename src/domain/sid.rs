//! Twilio SIDs: two uppercase letters and 32 lowercase hex digits.

use rand::RngCore;

pub const ACCOUNT: &str = "AC";
pub const ROOM: &str = "RM";
pub const API_KEY: &str = "SK";
pub const PARTICIPANT: &str = "PA";
pub const TRACK: &str = "MT";
pub const RECORDING: &str = "RT";
pub const COMPOSITION: &str = "CJ";
pub const COMPOSITION_HOOK: &str = "HK";
/// A status callback event in the delivery log (a roomd extension).
pub const CALLBACK_EVENT: &str = "EV";

/// A new random SID with the given prefix, from the thread-local CSPRNG (ChaCha, seeded from
/// the OS): unpredictable like the OS generator, without a system call per SID.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut s = String::with_capacity(34);
    s.push_str(prefix);
    s.push_str(&hex(&bytes));
    s
}

/// 32 lowercase hex digits straight from the OS CSPRNG (auth tokens).
pub fn random_hex32() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

/// Whether `s` has the shape of a SID with this prefix (hex digits in either case, as Twilio's
/// pattern `^RM[0-9a-fA-F]{32}$` allows).
pub fn is_sid(prefix: &str, s: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s.as_bytes()[2..].iter().all(u8::is_ascii_hexdigit)
}

/// The stored form of a SID-shaped string: hex in lowercase.
pub fn normalize(prefix: &str, s: &str) -> String {
    format!("{prefix}{}", s[2..].to_ascii_lowercase())
}

/// A SID type: validated and normalized once, at the edge, then passed around as itself. It
/// derefs to `str` and binds as `text`.
macro_rules! sid_type {
    ($(#[$doc:meta])* $name:ident, $prefix:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::Type, serde::Serialize)]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A SID-shaped string (hex in either case), in its stored form.
            pub fn parse(s: &str) -> Option<Self> {
                is_sid(Self::PREFIX, s).then(|| $name(normalize(Self::PREFIX, s)))
            }

            pub fn generate() -> Self {
                $name(generate(Self::PREFIX))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

sid_type!(
    /// An account's SID (`AC...`).
    AccountSid,
    ACCOUNT
);
sid_type!(
    /// An API key's SID (`SK...`).
    ApiKeySid,
    API_KEY
);
sid_type!(
    /// A room's SID (`RM...`).
    RoomSid,
    ROOM
);
sid_type!(
    /// A participant's SID (`PA...`).
    ParticipantSid,
    PARTICIPANT
);
sid_type!(
    /// A track's SID (`MT...`).
    TrackSid,
    TRACK
);
sid_type!(
    /// A recording's SID (`RT...`).
    RecordingSid,
    RECORDING
);
sid_type!(
    /// A composition's SID (`CJ...`).
    CompositionSid,
    COMPOSITION
);
sid_type!(
    /// A composition hook's SID (`HK...`).
    CompositionHookSid,
    COMPOSITION_HOOK
);
sid_type!(
    /// A status callback event's SID (`EV...`).
    CallbackEventSid,
    CALLBACK_EVENT
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sids_have_twilios_shape() {
        let a = generate(ROOM);
        assert!(is_sid(ROOM, &a));
        assert!(a[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert_ne!(a, generate(ROOM));
        assert_eq!(random_hex32().len(), 32);
    }

    #[test]
    fn recognises_sids() {
        assert!(is_sid(ROOM, "RM0123456789ABCDEF0123456789abcdef"));
        assert!(!is_sid(ROOM, "AC0123456789abcdef0123456789abcdef"));
        assert!(!is_sid(ROOM, "RM0123456789abcdef0123456789abcde"));
        assert!(!is_sid(ROOM, "RM0123456789abcdef0123456789abcdeg"));
        assert!(!is_sid(ROOM, "RMé123456789abcdef0123456789abcde"));
        assert_eq!(
            RoomSid::parse("RMABCDEF0123456789abcdef0123456789")
                .unwrap()
                .as_str(),
            "RMabcdef0123456789abcdef0123456789"
        );
        assert_eq!(RoomSid::parse("AC0123456789abcdef0123456789abcdef"), None);
        assert!(AccountSid::parse(&AccountSid::generate()).is_some());
    }
}
