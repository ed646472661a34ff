//! `X-Twilio-Signature`, as Twilio signs the requests it sends (status callbacks) and as the
//! official `RequestValidator`s check them: base64 of HMAC-SHA1, keyed by the account's auth
//! token, over the full URL followed by every POST parameter's name and value, names in ascending
//! order and each name's distinct values in ascending order. A GET request signs its URL alone
//! (its parameters are in the query string).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

/// The signature of a request to `url` with the form `params` (none for GET).
pub fn sign(auth_token: &[u8], url: &str, params: &[(&str, &str)]) -> String {
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        by_name.entry(name).or_default().insert(value);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token).expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, values) in by_name {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"12345";
    const CALL: [(&str, &str); 5] = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];

    /// The vectors of twilio-python's `tests/unit/test_request_validator.py` (notes 6.1).
    #[test]
    fn twilios_own_vectors_reproduce() {
        for (url, expected) in [
            (
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            ),
            (
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
        ] {
            assert_eq!(sign(TOKEN, url, &CALL), expected, "{url}");
        }
        // Parameters in any order; a repeated name's values deduplicated and sorted.
        let multi = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ];
        assert_eq!(
            sign(TOKEN, "https://mycompany.com/myapp.php?foo=1&bar=2", &multi),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        // A JSON body is signed through its hash in the URL, with no parameters.
        assert_eq!(
            sign(
                TOKEN,
                "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
                &[]
            ),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
    }

    #[test]
    fn a_room_event_vector_reproduces() {
        let params = [
            ("AccountSid", "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("RoomName", "DailyStandup"),
            ("RoomSid", "RMaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            ("RoomStatus", "in-progress"),
            ("RoomType", "group"),
            ("SequenceNumber", "0"),
            ("StatusCallbackEvent", "room-created"),
            ("Timestamp", "2020-08-19T17:40:05.273Z"),
        ];
        assert_eq!(
            sign(TOKEN, "https://hooks.example.com/room-events", &params),
            "2LrqRUMdK36AVewvPJDbVcjI0Rc="
        );
        assert_ne!(
            sign(b"12346", "https://hooks.example.com/room-events", &params),
            "2LrqRUMdK36AVewvPJDbVcjI0Rc="
        );
    }
}
