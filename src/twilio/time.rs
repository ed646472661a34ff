//! Twilio's date format: ISO-8601 UTC with whole seconds and a `Z` (`2015-07-30T20:00:00Z`).
//! twilio-python parses only that shape, so fractional seconds are never emitted.

use super::error::ApiError;
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use std::sync::LazyLock;

/// Twilio's format, for chrono (years are zero-padded to four digits).
const FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

/// `FORMAT`, parsed once rather than for every date written.
static ITEMS: LazyLock<Vec<Item<'static>>> = LazyLock::new(|| StrftimeItems::new(FORMAT).collect());

pub fn serialize<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&t.format_with_items(ITEMS.iter()))
}

pub fn serialize_opt<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize(t, s),
        None => s.serialize_none(),
    }
}

/// A date filter: `YYYY-MM-DD` (midnight UTC) or a full ISO-8601 / RFC 3339 timestamp, which is
/// what the helper libraries send (`2017-01-01T00:00:01Z`).
pub fn parse_filter(key: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .filter(|_| value.len() == 10)
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    date.or_else(|| {
        DateTime::parse_from_rfc3339(value)
            .map(|t| t.with_timezone(&Utc))
            // Without an offset, a date-time is taken as UTC, as Twilio's dates are.
            .or_else(|_| {
                chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S")
                    .map(|t| t.and_utc())
            })
            .ok()
    })
    // Years PostgreSQL cannot hold (or a client cannot mean) are bad input, not a 500.
    .filter(|t| (1..=9999).contains(&t.year()))
    .ok_or_else(|| {
        ApiError::invalid_parameter(format!(
            "Invalid value for {key}: expected YYYY-MM-DD or an ISO-8601 date-time in the years 0001 to 9999"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_whole_seconds_with_z() {
        let t = Utc.with_ymd_and_hms(2015, 7, 30, 20, 0, 0).unwrap()
            + chrono::Duration::milliseconds(999);
        assert_eq!(t.format(FORMAT).to_string(), "2015-07-30T20:00:00Z");
        let padded = Utc.with_ymd_and_hms(987, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(padded.format(FORMAT).to_string(), "0987-01-02T03:04:05Z");
        #[derive(serde::Serialize)]
        struct S(#[serde(serialize_with = "serialize")] DateTime<Utc>);
        assert_eq!(
            serde_json::to_string(&S(t)).unwrap(),
            "\"2015-07-30T20:00:00Z\""
        );
    }

    #[test]
    fn parses_dates_and_date_times() {
        let midnight = Utc.with_ymd_and_hms(2017, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(parse_filter("D", "2017-01-01").unwrap(), midnight);
        assert_eq!(parse_filter("D", "2017-01-01T00:00:00Z").unwrap(), midnight);
        assert_eq!(
            parse_filter("D", "2017-01-01T02:00:00+02:00").unwrap(),
            midnight
        );
        for bad in [
            "",
            "2017-13-01",
            "yesterday",
            "2017-01-01T25:00:00Z",
            "2017-1-1",
            "-5000-01-01T00:00:00",
            "+200000-01-01T00:00:00Z",
            "0000-12-31T23:00:00Z",
            "9999-12-31T23:00:00-05:00",
        ] {
            assert!(parse_filter("D", bad).is_err(), "{bad}");
        }
    }
}
