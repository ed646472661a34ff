//! The console's pages as askama templates (`console/templates/`, checked at compile time; every
//! `{{ value }}` is HTML-escaped, so what a tenant names shows as text), the values they show,
//! and how those are worded.

use askama::Template;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The header of a signed-in page.
pub struct Nav {
    pub account: String,
    pub csrf: String,
    /// The account runs on a test clock (the Test clock page is linked).
    pub clock: bool,
    /// The page's place in the navigation: `rooms` or `clock`.
    pub section: &'static str,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub nav: Option<Nav>,
    pub sid: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub nav: Option<Nav>,
    pub title: String,
    pub message: String,
    pub back: String,
}

/// The room list's filters, as given (empty: not given).
#[derive(Default)]
pub struct RoomFilterForm {
    pub status: String,
    pub unique_name: String,
    pub after: String,
    pub before: String,
}

#[derive(Template)]
#[template(path = "rooms.html")]
pub struct RoomsPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub filter: RoomFilterForm,
    pub live_url: String,
    pub digest: String,
    pub live: String,
}

/// One room in a list.
pub struct RoomLine {
    pub sid: String,
    pub name: String,
    pub status: &'static str,
    pub kind: &'static str,
    pub created: String,
    pub duration: String,
}

/// A titled list of rooms; `more` when more rooms matched than are shown.
pub struct RoomSection {
    pub title: &'static str,
    pub rooms: Vec<RoomLine>,
    pub more: bool,
}

#[derive(Template)]
#[template(path = "rooms_live.html")]
pub struct RoomsLive {
    pub sections: Vec<RoomSection>,
}

#[derive(Template)]
#[template(path = "room.html")]
pub struct RoomPage {
    pub nav: Option<Nav>,
    pub name: String,
    pub live_url: String,
    pub digest: String,
    pub live: String,
}

pub struct ParticipantLine {
    pub sid: String,
    pub identity: String,
    pub start: String,
    pub end: String,
    pub duration: String,
    pub reason: String,
    /// Subscribe rules, as JSON (connected participants).
    pub rules: String,
}

pub struct TrackLine {
    pub sid: String,
    pub name: String,
    pub kind: String,
    pub publisher: String,
    pub enabled: &'static str,
}

pub struct EventLine {
    pub sid: String,
    pub sequence: i32,
    pub event: String,
    pub status: String,
    pub attempts: i32,
    /// Each attempt's outcome, oldest first.
    pub tries: Vec<String>,
    pub method: String,
    pub url: String,
}

/// A recording or a composition, with a link to play it when it is ready.
pub struct MediaLine {
    pub sid: String,
    pub label: String,
    pub status: String,
    pub duration: String,
    pub size: String,
    pub src: Option<String>,
    pub audio: bool,
    pub deletable: bool,
}

/// Everything the room page shows.
pub struct RoomView {
    pub sid: String,
    pub in_progress: bool,
    pub settings: Vec<(&'static str, String)>,
    pub connected: Vec<ParticipantLine>,
    pub past: Vec<ParticipantLine>,
    pub tracks: Vec<TrackLine>,
    pub recording_rules: String,
    pub events: Vec<EventLine>,
    pub recordings: Vec<MediaLine>,
    pub compositions: Vec<MediaLine>,
}

#[derive(Template)]
#[template(path = "room_live.html")]
pub struct RoomLive {
    pub room: RoomView,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "clock.html")]
pub struct ClockPage {
    pub nav: Option<Nav>,
    pub csrf: String,
    pub digest: String,
    pub live: String,
}

#[derive(Template)]
#[template(path = "clock_live.html")]
pub struct ClockLive {
    pub frozen_time: String,
    pub rooms: String,
}

/// A short digest of a live fragment: the page's script replaces the fragment only when the
/// digest it is sent differs from the one it shows.
pub fn digest(fragment: &str) -> String {
    crate::domain::sid::hex(&Sha256::digest(fragment.as_bytes())[..12])
}

/// A time as the console shows it (UTC, to the second).
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration in seconds, in words: `42 s`, `3 min 05 s`, `2 h 01 min 00 s`.
pub fn seconds(total: i64) -> String {
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s} s"),
        (0, _) => format!("{m} min {s:02} s"),
        _ => format!("{h} h {m:02} min {s:02} s"),
    }
}

/// A size in bytes, in the largest unit that keeps it at or over 1.
pub fn bytes(n: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_as_words() {
        assert_eq!(seconds(0), "0 s");
        assert_eq!(seconds(42), "42 s");
        assert_eq!(seconds(185), "3 min 05 s");
        assert_eq!(seconds(7260), "2 h 01 min 00 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }

    #[test]
    fn what_a_tenant_names_is_escaped() {
        let page = RoomsLive {
            sections: vec![RoomSection {
                title: "In progress",
                rooms: vec![RoomLine {
                    sid: "RM00".into(),
                    name: "<img src=x onerror=alert(1)>".into(),
                    status: "in-progress",
                    kind: "group",
                    created: String::new(),
                    duration: String::new(),
                }],
                more: false,
            }],
        }
        .render()
        .unwrap();
        assert!(page.contains("&#60;img src=x onerror=alert(1)&#62;") || page.contains("&lt;img"));
        assert!(!page.contains("<img"));
    }
}
