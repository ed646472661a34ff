//! Twilio's composition layouts (`VideoLayout`): named regions of the picture, each a grid of
//! cells showing the video sources that match it, and the source patterns (track names with `*`
//! and `?`, or recording and track SIDs) that layouts and `AudioSources` use. Parsed once into a
//! normal form: every key present, unset numbers `0` (as Twilio echoes them).

use crate::twilio::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The most regions a layout has, sources a list names, and characters a source pattern has.
pub const MAX_REGIONS: usize = 16;
pub const MAX_SOURCES: usize = 64;
pub const MAX_PATTERN_CHARS: usize = 128;
/// The largest grid a region may ask for (columns or rows).
pub const MAX_GRID: u32 = 16;

/// How a region's cells are given to sources over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reuse {
    /// The first sources to appear keep the cells; later ones are never shown.
    None,
    /// The oldest sources still publishing are shown; a freed cell goes to the next waiting one.
    ShowOldest,
    /// The newest sources are shown; a new one takes the place of the oldest.
    ShowNewest,
}

/// One region, in normal form (Twilio's keys, `0` for "as large as allowed").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    #[serde(default)]
    pub video_sources: Vec<String>,
    #[serde(default)]
    pub video_sources_excluded: Vec<String>,
    #[serde(default = "default_reuse")]
    pub reuse: Reuse,
    #[serde(default)]
    pub x_pos: u32,
    #[serde(default)]
    pub y_pos: u32,
    #[serde(default)]
    pub z_pos: i32,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
    #[serde(default)]
    pub max_columns: u32,
    #[serde(default)]
    pub max_rows: u32,
    #[serde(default)]
    pub cells_excluded: Vec<u32>,
}

fn default_reuse() -> Reuse {
    Reuse::ShowOldest
}

/// A layout: regions by name (drawn by `z_pos`, then name).
pub type Layout = BTreeMap<String, Region>;

/// A composition's picture size (`Resolution`, `{width}x{height}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolution {
    pub width: u32,
    pub height: u32,
}

impl Resolution {
    pub const DEFAULT: Resolution = Resolution {
        width: 640,
        height: 480,
    };

    /// Twilio's bounds: 16..=1280 each way, at most 921,600 pixels.
    pub fn parse(raw: &str) -> Result<Resolution, ApiError> {
        let invalid = || {
            ApiError::invalid_parameter(
                "Resolution must be {width}x{height}, each 16 to 1280, at most 921600 pixels",
            )
        };
        let (w, h) = raw.split_once('x').ok_or_else(invalid)?;
        let number = |s: &str| -> Option<u32> {
            (!s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let (width, height) = (
            number(w).ok_or_else(invalid)?,
            number(h).ok_or_else(invalid)?,
        );
        if !(16..=1280).contains(&width)
            || !(16..=1280).contains(&height)
            || width * height > 921_600
        {
            return Err(invalid());
        }
        Ok(Resolution { width, height })
    }
}

impl std::fmt::Display for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// Parses `VideoLayout` (a JSON object of regions) against the composition's `resolution`.
pub fn parse_layout(raw: &str, resolution: Resolution) -> Result<Layout, ApiError> {
    let invalid =
        |why: String| ApiError::invalid_parameter(format!("VideoLayout is invalid: {why}"));
    let value: Value = serde_json::from_str(raw).map_err(|_| invalid("not JSON".into()))?;
    let Value::Object(regions) = value else {
        return Err(invalid("not an object of regions".into()));
    };
    if regions.len() > MAX_REGIONS {
        return Err(invalid(format!("more than {MAX_REGIONS} regions")));
    }
    let mut layout = Layout::new();
    for (name, region) in regions {
        if name.is_empty()
            || name.chars().count() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(format!(
                "a region's name is 1 to 64 letters, digits, '_' or '-' ({name:?} is not)"
            )));
        }
        let region: Region =
            serde_json::from_value(region).map_err(|e| invalid(format!("region {name}: {e}")))?;
        check_region(&name, &region, resolution).map_err(invalid)?;
        layout.insert(name, region);
    }
    Ok(layout)
}

fn check_region(name: &str, r: &Region, res: Resolution) -> Result<(), String> {
    if r.video_sources.is_empty() {
        return Err(format!("region {name} has no video_sources"));
    }
    check_sources(&r.video_sources).map_err(|e| format!("region {name}: video_sources {e}"))?;
    check_sources(&r.video_sources_excluded)
        .map_err(|e| format!("region {name}: video_sources_excluded {e}"))?;
    if r.x_pos >= res.width || r.y_pos >= res.height {
        return Err(format!("region {name} starts outside the picture"));
    }
    if !(-99..=99).contains(&r.z_pos) {
        return Err(format!("region {name}: z_pos is -99 to 99"));
    }
    let fits = |size: u32, pos: u32, whole: u32| size == 0 || (16..=whole - pos).contains(&size);
    if !fits(r.width, r.x_pos, res.width) || !fits(r.height, r.y_pos, res.height) {
        return Err(format!(
            "region {name}: width and height are at least 16 and stay inside the picture"
        ));
    }
    if r.max_columns > MAX_GRID || r.max_rows > MAX_GRID {
        return Err(format!(
            "region {name}: max_columns and max_rows are at most {MAX_GRID}"
        ));
    }
    if r.cells_excluded.len() > (MAX_GRID * MAX_GRID) as usize
        || r.cells_excluded.iter().any(|&c| c >= MAX_GRID * MAX_GRID)
    {
        return Err(format!(
            "region {name}: cells_excluded names cells that cannot exist"
        ));
    }
    Ok(())
}

/// Checks a list of source patterns: at most `MAX_SOURCES`, each 1..=128 characters without
/// control characters.
pub fn check_sources(sources: &[String]) -> Result<(), String> {
    if sources.len() > MAX_SOURCES {
        return Err(format!("names more than {MAX_SOURCES} sources"));
    }
    for s in sources {
        if s.is_empty() || s.chars().count() > MAX_PATTERN_CHARS || s.chars().any(char::is_control)
        {
            return Err(format!(
                "has a source that is not 1 to {MAX_PATTERN_CHARS} printable characters"
            ));
        }
    }
    Ok(())
}

/// What a source pattern is compared with: a recording's track name, its SID and its track's.
pub struct SourceNames<'a> {
    pub track_name: &'a str,
    pub recording_sid: &'a str,
    pub track_sid: &'a str,
}

/// Whether `included` (and not `excluded`) selects a recording.
pub fn selects(included: &[String], excluded: &[String], names: &SourceNames<'_>) -> bool {
    let matches =
        |p: &String| p == names.recording_sid || p == names.track_sid || glob(p, names.track_name);
    included.iter().any(matches) && !excluded.iter().any(matches)
}

/// `*` matches any run of characters (none included), `?` any one character; the rest matches
/// itself. Linear in the text for each star (the classic backtracking-to-the-last-star walk).
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_twilio_documents() {
        assert!(glob("student*", "student"));
        assert!(glob("student*", "studentTeam"));
        assert!(!glob("student*", "teacher"));
        assert!(glob("*", ""));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*cam*", "my-camera"));
        assert!(glob("*a*b*c", "xxaxxbxxc"));
        assert!(!glob("*a*b*c", "xxaxxcxxb"));
        assert!(glob("exact", "exact"));
    }

    #[test]
    fn resolutions_keep_twilios_bounds() {
        assert_eq!(
            Resolution::parse("1280x720").unwrap(),
            Resolution {
                width: 1280,
                height: 720
            }
        );
        for bad in [
            "",
            "640",
            "640x",
            "x480",
            "15x480",
            "1281x16",
            "1280x1280",
            "64ox480",
            "+640x480",
            "640x480x1",
        ] {
            assert!(Resolution::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn layouts_are_normalised_and_bad_ones_refused() {
        let res = Resolution::DEFAULT;
        let l = parse_layout(r#"{"grid": {"video_sources": ["*"]}}"#, res).unwrap();
        let g = &l["grid"];
        assert_eq!((g.reuse, g.width, g.max_columns), (Reuse::ShowOldest, 0, 0));
        let echoed = serde_json::to_value(&l).unwrap();
        assert_eq!(echoed["grid"]["cells_excluded"], serde_json::json!([]));
        for bad in [
            "[]",
            "{",
            r#"{"g": {}}"#,
            r#"{"g": {"video_sources": ["*"], "colour": 1}}"#,
            r#"{"g": {"video_sources": ["*"], "x_pos": 640}}"#,
            r#"{"g": {"video_sources": ["*"], "x_pos": 600, "width": 100}}"#,
            r#"{"g": {"video_sources": ["*"], "width": 8}}"#,
            r#"{"g": {"video_sources": ["*"], "max_rows": 17}}"#,
            r#"{"g": {"video_sources": ["*"], "reuse": "sometimes"}}"#,
            r#"{"g": {"video_sources": ["*"], "z_pos": 100}}"#,
            r#"{"g": {"video_sources": [""]}}"#,
            r#"{"g": {"video_sources": ["*"], "x_pos": -1}}"#,
            r#"{"a b": {"video_sources": ["*"]}}"#,
        ] {
            assert!(parse_layout(bad, res).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_select_by_name_pattern_or_sid() {
        let names = SourceNames {
            track_name: "alice-cam",
            recording_sid: "RT0123",
            track_sid: "MT0123",
        };
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(selects(&v(&["alice*"]), &[], &names));
        assert!(selects(&v(&["RT0123"]), &[], &names));
        assert!(selects(&v(&["MT0123"]), &[], &names));
        assert!(!selects(&v(&["*"]), &v(&["*-cam"]), &names));
        assert!(!selects(&v(&["bob*"]), &[], &names));
    }
}
