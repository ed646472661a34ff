//! What a composition is made with (`POST /v1/Compositions`, and a composition hook's settings):
//! the layout, the audio sources, the picture size, the container, trimming and the status
//! callback. Parsed once from the form; a hook's update starts from what the hook holds.

use super::create_room::status_callback;
use super::video_layout::{check_sources, parse_layout, Layout, Resolution};
use crate::twilio::form::{parse_bool, Params};
use crate::twilio::ApiError;

/// A composition's container: `mp4` (H.264 and AAC) or `webm` (VP8 and Opus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Mp4,
    Webm,
}

impl Format {
    pub fn parse(raw: &str) -> Result<Format, ApiError> {
        match raw {
            "mp4" => Ok(Format::Mp4),
            "webm" => Ok(Format::Webm),
            _ => Err(ApiError::invalid_parameter("Format must be mp4 or webm")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Mp4 => "mp4",
            Format::Webm => "webm",
        }
    }
}

/// Everything a composition is made with.
#[derive(Debug, Clone, PartialEq)]
pub struct CompositionSpec {
    pub video_layout: Layout,
    pub audio_sources: Vec<String>,
    pub audio_sources_excluded: Vec<String>,
    pub resolution: Resolution,
    pub format: Format,
    pub trim: bool,
    pub status_callback: Option<String>,
    pub status_callback_method: &'static str,
}

impl Default for CompositionSpec {
    /// Twilio's defaults: no sources, 640x480, `webm`, trimmed.
    fn default() -> Self {
        CompositionSpec {
            video_layout: Layout::new(),
            audio_sources: Vec::new(),
            audio_sources_excluded: Vec::new(),
            resolution: Resolution::DEFAULT,
            format: Format::Webm,
            trim: true,
            status_callback: None,
            status_callback_method: "POST",
        }
    }
}

impl CompositionSpec {
    /// The form's values over `base` (a new composition: the defaults; a hook's update: what the
    /// hook holds). Refuses a spec that would compose nothing.
    pub fn from_params(
        params: &Params,
        base: CompositionSpec,
    ) -> Result<CompositionSpec, ApiError> {
        let mut spec = base;
        if let Some(r) = params.single("Resolution")? {
            spec.resolution = Resolution::parse(r)?;
        }
        if let Some(f) = params.single("Format")? {
            spec.format = Format::parse(f)?;
        }
        if let Some(t) = params.single("Trim")? {
            spec.trim = parse_bool("Trim", t)?;
        }
        if let Some(raw) = params.single("VideoLayout")? {
            spec.video_layout = match raw.trim() {
                "" => Layout::new(),
                raw => parse_layout(raw, spec.resolution)?,
            };
        } else if !spec.video_layout.is_empty() {
            // A hook's layout checked again against a new resolution.
            let raw = serde_json::to_string(&spec.video_layout).map_err(ApiError::internal)?;
            spec.video_layout = parse_layout(&raw, spec.resolution)?;
        }
        for (key, list) in [
            ("AudioSources", &mut spec.audio_sources),
            ("AudioSourcesExcluded", &mut spec.audio_sources_excluded),
        ] {
            let given: Vec<String> = params
                .all(key)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if given.is_empty() && params.all(key).next().is_none() {
                continue;
            }
            check_sources(&given).map_err(|e| ApiError::invalid_parameter(format!("{key} {e}")))?;
            *list = given;
        }
        if params.single("StatusCallback")?.is_some()
            || params.single("StatusCallbackMethod")?.is_some()
        {
            let (url, method) = status_callback(params)?;
            if params.single("StatusCallback")?.is_some() {
                spec.status_callback = url;
            }
            spec.status_callback_method = method;
        }
        if spec.video_layout.is_empty() && spec.audio_sources.is_empty() {
            return Err(ApiError::invalid_parameter(
                "A composition needs a VideoLayout with video_sources or AudioSources",
            ));
        }
        if spec.format == Format::Mp4
            && !spec.video_layout.is_empty()
            && (spec.resolution.width % 2 == 1 || spec.resolution.height % 2 == 1)
        {
            return Err(ApiError::invalid_parameter(
                "Resolution must have an even width and height for mp4 (H.264 in 4:2:0)",
            ));
        }
        Ok(spec)
    }

    /// The layout as stored and shown (every key of every region).
    pub fn layout_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.video_layout).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(q: &str) -> Result<CompositionSpec, ApiError> {
        CompositionSpec::from_params(&Params::parse(q.as_bytes()).unwrap(), Default::default())
    }

    #[test]
    fn defaults_and_refusals() {
        let s = spec("AudioSources=*").unwrap();
        assert_eq!(
            (s.format, s.resolution, s.trim),
            (Format::Webm, Resolution::DEFAULT, true)
        );
        assert!(spec("").is_err(), "nothing to compose");
        assert!(
            spec("AudioSources=").is_err(),
            "an empty source is no source"
        );
        assert!(spec("AudioSources=*&Format=avi").is_err());
        assert!(spec("AudioSources=*&Trim=maybe").is_err());
        assert_eq!(
            spec("AudioSources=*&StatusCallback=nope")
                .unwrap_err()
                .code(),
            53111
        );
        assert_eq!(
            spec("AudioSources=*&StatusCallbackMethod=PUT")
                .unwrap_err()
                .code(),
            53110
        );
        let layout = "VideoLayout=%7B%22g%22%3A%7B%22video_sources%22%3A%5B%22*%22%5D%7D%7D";
        assert!(spec(&format!("{layout}&Format=mp4&Resolution=641x480")).is_err());
        assert!(spec(&format!("{layout}&Format=webm&Resolution=641x480")).is_ok());
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name() {
        let base = spec("AudioSources=alice&Format=mp4&Trim=false").unwrap();
        let updated =
            CompositionSpec::from_params(&Params::parse(b"Resolution=1280x720").unwrap(), base)
                .unwrap();
        assert_eq!(updated.audio_sources, vec!["alice".to_string()]);
        assert_eq!((updated.format, updated.trim), (Format::Mp4, false));
        assert_eq!(updated.resolution.to_string(), "1280x720");
    }
}
