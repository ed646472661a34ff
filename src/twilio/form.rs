//! Strict `application/x-www-form-urlencoded` decoding for request bodies and query strings.
//!
//! Twilio's clients send PascalCase keys, repeat a key for arrays (`VideoCodecs=VP8&VideoCodecs=H264`)
//! and encode spaces as `+`. Unlike a lossy decoder, this one rejects malformed escapes and
//! non-UTF-8 bytes, so they become a Twilio 400 rather than silently altered data.

use super::error::ApiError;

/// Decoded parameters in the order they arrived.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(input: &[u8]) -> Result<Params, ApiError> {
        let mut out = Vec::new();
        for pair in input.split(|b| *b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &b""[..]),
            };
            let key = decode(k)?;
            if key.is_empty() || key.contains('\0') {
                return Err(ApiError::invalid_parameter(
                    "Malformed form data: empty parameter name, or a NUL character in one",
                ));
            }
            let value = decode(v)?;
            if value.contains('\0') {
                // PostgreSQL's text cannot hold NUL: refused here, for every parameter of every
                // route, so that no such value reaches a statement.
                return Err(ApiError::invalid_parameter(format!(
                    "Invalid value for {key}: NUL characters are not allowed"
                )));
            }
            out.push((key, value));
        }
        Ok(Params(out))
    }

    /// The one value of a single-valued parameter; a repeated key is an error, since it is
    /// ambiguous which value the client meant.
    pub fn single(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut found = None;
        for (k, v) in &self.0 {
            if k == key {
                if found.is_some() {
                    return Err(ApiError::invalid_parameter(format!(
                        "Parameter {key} may be given only once"
                    )));
                }
                found = Some(v.as_str());
            }
        }
        Ok(found)
    }

    /// The one value of a required single-valued parameter (missing: 20001, in Twilio's words).
    pub fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.single(key)?.ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "Missing required parameter {key} in the post body"
            ))
        })
    }

    /// These parameters without the keys `drop` names and without empty values (an HTML form
    /// sends every field, filled or not).
    pub fn filled_without(self, drop: &[&str]) -> Params {
        Params(
            self.0
                .into_iter()
                .filter(|(k, v)| !v.is_empty() && !drop.contains(&k.as_str()))
                .collect(),
        )
    }

    /// Every value of a repeated parameter, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn decode(raw: &[u8]) -> Result<String, ApiError> {
    percent_decode(raw, true).ok_or_else(|| {
        ApiError::invalid_parameter(
            "Malformed form data: invalid percent-encoding or non-UTF-8 text",
        )
    })
}

/// Percent-decodes `raw` into UTF-8 text; `None` for a malformed escape or non-UTF-8 bytes.
/// Forms encode spaces as `+` (`plus_as_space`); URL paths do not.
pub fn percent_decode(raw: &[u8], plus_as_space: bool) -> Option<String> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' if plus_as_space => bytes.push(b' '),
            b'%' => {
                let hi = hex(*raw.get(i + 1)?)?;
                let lo = hex(*raw.get(i + 2)?)?;
                bytes.push((hi * 16 + lo) as u8);
                i += 2;
            }
            b => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).ok()
}

/// Percent-encodes a value for a query string the way Twilio's own URLs do.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Parses Twilio's boolean strings (`true`/`false`, any case).
pub fn parse_bool(key: &str, value: &str) -> Result<bool, ApiError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ApiError::invalid_parameter(format!(
            "Invalid value for {key}: expected true or false"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_percent_and_repeated_keys() {
        let p =
            Params::parse(b"UniqueName=a+b%2Fc&VideoCodecs=VP8&VideoCodecs=H264&Empty=").unwrap();
        assert_eq!(p.single("UniqueName").unwrap(), Some("a b/c"));
        assert_eq!(p.all("VideoCodecs").collect::<Vec<_>>(), ["VP8", "H264"]);
        assert_eq!(p.single("Empty").unwrap(), Some(""));
        assert_eq!(p.single("Missing").unwrap(), None);
    }

    #[test]
    fn rejects_duplicates_of_single_valued_keys() {
        let p = Params::parse(b"Type=go&Type=group").unwrap();
        assert!(p.single("Type").is_err());
    }

    #[test]
    fn rejects_bad_escapes_and_non_utf8() {
        assert!(Params::parse(b"A=%zz").is_err());
        assert!(Params::parse(b"A=%4").is_err());
        assert!(Params::parse(b"A=%ff%fe").is_err());
        assert!(Params::parse(b"A=\xff").is_err());
        assert!(Params::parse(b"=x").is_err());
    }

    #[test]
    fn refuses_nul_in_any_key_or_value() {
        for input in [
            &b"StatusCallback=http://x/a%00b"[..],
            b"A%00=x",
            b"A=%00",
            b"A=\0",
        ] {
            let e = Params::parse(input).unwrap_err();
            assert_eq!(e.code(), crate::twilio::error::code::INVALID_PARAMETER);
        }
    }

    #[test]
    fn booleans_are_true_or_false_only() {
        assert!(parse_bool("X", "true").unwrap());
        assert!(!parse_bool("X", "False").unwrap());
        assert!(parse_bool("X", "1").is_err());
    }
}
