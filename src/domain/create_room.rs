//! What creating a room asks for (`POST /v1/Rooms`, and a join that creates its room), parsed
//! from Twilio's form: each value in Twilio's range or refused with Twilio's code, so a
//! `CreateRoom` that exists is one the database may store.

use super::room::{RoomType, UniqueName, MEDIA_REGIONS};
use crate::twilio::error::{code, ApiError};
use crate::twilio::form::{parse_bool, Params};

const MAX_STATUS_CALLBACK_CHARS: usize = 1024;

/// A validated `POST /v1/Rooms`. `unique_name: None` means "use the new SID".
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRoom {
    pub room_type: RoomType,
    pub unique_name: Option<UniqueName>,
    pub status_callback: Option<String>,
    pub status_callback_method: &'static str,
    pub max_participants: i32,
    pub max_participant_duration: i32,
    pub max_concurrent_published_tracks: i32,
    pub record_participants_on_connect: bool,
    pub video_codecs: Vec<String>,
    pub media_region: String,
    pub recording_rules: Option<serde_json::Value>,
    pub audio_only: bool,
    pub empty_room_timeout: i32,
    pub unused_room_timeout: i32,
    pub large_room: bool,
}

fn int_in(
    params: &Params,
    key: &str,
    range: std::ops::RangeInclusive<i32>,
    default: i32,
    err: impl Fn() -> ApiError,
) -> Result<i32, ApiError> {
    match params.single(key)? {
        None => Ok(default),
        Some(v) => match v.trim().parse::<i32>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(err()),
        },
    }
}

fn bool_param(params: &Params, key: &str) -> Result<bool, ApiError> {
    params
        .single(key)?
        .map_or(Ok(false), |v| parse_bool(key, v))
}

impl CreateRoom {
    pub fn from_params(params: &Params) -> Result<CreateRoom, ApiError> {
        let room_type = params
            .single("Type")?
            .map_or(Ok(RoomType::Group), RoomType::parse)?;
        let large_room = bool_param(params, "LargeRoom")?;
        let audio_only = bool_param(params, "AudioOnly")?;
        let record_participants_on_connect = bool_param(params, "RecordParticipantsOnConnect")?;
        // Deprecated and always true; still checked so a malformed value is not silently taken.
        params
            .single("EnableTurn")?
            .map(|v| parse_bool("EnableTurn", v))
            .transpose()?;

        if room_type.is_mesh() && (large_room || record_participants_on_connect) {
            return Err(ApiError::bad_request(
                code::INCOMPATIBLE_PARAMETERS,
                "Room creation parameter(s) incompatible with the Room type",
            ));
        }

        // An empty UniqueName is absent (applications send it when the user typed no name):
        // Twilio's OpenAPI gives it no minimum length, and the room is named by its SID.
        let unique_name = params
            .single("UniqueName")?
            .filter(|name| !name.is_empty())
            .map(UniqueName::parse)
            .transpose()?;

        let (status_callback, status_callback_method) = status_callback(params)?;

        let type_max = room_type.max_participants(large_room);
        let max_participants = int_in(params, "MaxParticipants", 1..=type_max, type_max, || {
            ApiError::bad_request(
                code::MAX_PARTICIPANTS_OUT_OF_RANGE,
                "MaxParticipants is out of range",
            )
        })?;
        let max_participant_duration =
            int_in(params, "MaxParticipantDuration", 600..=86400, 14400, || {
                ApiError::bad_request(
                    code::MAX_PARTICIPANT_DURATION_OUT_OF_RANGE,
                    "MaxParticipantDuration is out of range",
                )
            })?;
        let timeout_err =
            || ApiError::bad_request(code::TIMEOUT_OUT_OF_RANGE, "Timeout is out of range");
        let empty_room_timeout = int_in(params, "EmptyRoomTimeout", 1..=60, 5, timeout_err)?;
        let unused_room_timeout = int_in(params, "UnusedRoomTimeout", 1..=60, 5, timeout_err)?;

        let media_region = match params.single("MediaRegion")? {
            None => "us1".to_string(),
            Some(r) if MEDIA_REGIONS.contains(&r) => r.to_string(),
            Some(_) => {
                return Err(ApiError::bad_request(
                    code::MEDIA_REGION_INVALID,
                    "MediaRegion is invalid",
                ))
            }
        };

        let mut video_codecs: Vec<String> = Vec::new();
        for codec in params.all("VideoCodecs") {
            let codec = match codec {
                c if c.eq_ignore_ascii_case("VP8") => "VP8",
                c if c.eq_ignore_ascii_case("H264") => "H264",
                _ => {
                    return Err(ApiError::bad_request(
                        code::INCOMPATIBLE_PARAMETERS,
                        "VideoCodecs must be VP8 or H264",
                    ))
                }
            };
            if !video_codecs.iter().any(|c| c == codec) {
                video_codecs.push(codec.to_string());
            }
        }
        if audio_only {
            video_codecs.clear();
        } else if video_codecs.is_empty() {
            video_codecs.push("VP8".to_string());
        }

        let recording_rules = params
            .single("RecordingRules")?
            .map(parse_recording_rules)
            .transpose()?;

        Ok(CreateRoom {
            room_type,
            unique_name,
            status_callback,
            status_callback_method,
            max_participants,
            max_participant_duration,
            max_concurrent_published_tracks: if large_room { 16 } else { 0 },
            record_participants_on_connect,
            video_codecs,
            media_region,
            recording_rules,
            audio_only,
            empty_room_timeout,
            unused_room_timeout,
            large_room,
        })
    }
}

/// `StatusCallback` and `StatusCallbackMethod` as rooms, compositions and hooks take them: a URL
/// (53111) or none, and `POST` (the default) or `GET` (53110).
pub fn status_callback(params: &Params) -> Result<(Option<String>, &'static str), ApiError> {
    let url = match params.single("StatusCallback")? {
        None | Some("") => None,
        Some(url) => Some(validate_callback_url(url)?),
    };
    let method = match params.single("StatusCallbackMethod")? {
        None => "POST",
        Some(m) if m.eq_ignore_ascii_case("POST") => "POST",
        Some(m) if m.eq_ignore_ascii_case("GET") => "GET",
        Some(_) => {
            return Err(ApiError::bad_request(
                code::STATUS_CALLBACK_METHOD_INVALID,
                "StatusCallbackMethod is invalid",
            ))
        }
    };
    Ok((url, method))
}

fn validate_callback_url(raw: &str) -> Result<String, ApiError> {
    let invalid =
        || ApiError::bad_request(code::STATUS_CALLBACK_INVALID, "StatusCallback is invalid");
    if raw.len() >= MAX_STATUS_CALLBACK_CHARS {
        return Err(invalid());
    }
    let url = url::Url::parse(raw).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(invalid());
    }
    Ok(raw.to_string())
}

/// Recording rules (`[{"type":"include","all":true}]`, or `{"rules":[...]}` as some callers wrap
/// them). Returns the rule array with unused keys omitted, as Twilio renders it.
pub fn parse_recording_rules(raw: &str) -> Result<serde_json::Value, ApiError> {
    super::rules::parse(raw, &super::rules::RECORDING)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(q: &str) -> Result<CreateRoom, ApiError> {
        CreateRoom::from_params(&Params::parse(q.as_bytes()).unwrap())
    }

    fn code_of(q: &str) -> u32 {
        create(q).unwrap_err().code()
    }

    #[test]
    fn defaults_are_twilios() {
        let r = create("").unwrap();
        assert_eq!(r.room_type, RoomType::Group);
        assert_eq!(r.unique_name, None);
        assert_eq!(create("UniqueName=").unwrap().unique_name, None);
        assert_eq!(r.status_callback_method, "POST");
        assert_eq!(
            (r.max_participants, r.max_participant_duration),
            (50, 14400)
        );
        assert_eq!((r.empty_room_timeout, r.unused_room_timeout), (5, 5));
        assert_eq!(r.max_concurrent_published_tracks, 0);
        assert_eq!(r.video_codecs, ["VP8"]);
        assert_eq!(r.media_region, "us1");
        assert!(!r.audio_only && !r.large_room && !r.record_participants_on_connect);
    }

    #[test]
    fn type_maximums() {
        assert_eq!(create("Type=group-small").unwrap().max_participants, 4);
        assert_eq!(create("Type=peer-to-peer").unwrap().max_participants, 10);
        assert_eq!(create("Type=go").unwrap().max_participants, 2);
        let large = create("LargeRoom=true").unwrap();
        assert_eq!(
            (
                large.max_participants,
                large.max_concurrent_published_tracks
            ),
            (100, 16)
        );
        assert_eq!(
            create("LargeRoom=true&MaxParticipants=90")
                .unwrap()
                .max_participants,
            90
        );
        assert_eq!(code_of("MaxParticipants=51"), 53107);
        assert_eq!(code_of("Type=go&MaxParticipants=3"), 53107);
        assert_eq!(code_of("MaxParticipants=0"), 53107);
        assert_eq!(code_of("MaxParticipants=ten"), 53107);
    }

    #[test]
    fn every_validation_code() {
        assert_eq!(code_of("Type=huge"), 53108);
        assert_eq!(code_of("EmptyRoomTimeout=0"), 53109);
        assert_eq!(code_of("UnusedRoomTimeout=61"), 53109);
        assert_eq!(code_of("UnusedRoomTimeout=1.5"), 53109);
        assert_eq!(code_of("StatusCallbackMethod=PUT"), 53110);
        assert_eq!(code_of("StatusCallback=not-a-url"), 53111);
        assert_eq!(code_of("StatusCallback=ftp%3A%2F%2F127.0.0.1%2Fx"), 53111);
        let long = format!("StatusCallback=http://127.0.0.1/{}", "a".repeat(1010));
        assert_eq!(code_of(&long), 53111);
        assert_eq!(code_of("MediaRegion=mars1"), 53115);
        assert_eq!(code_of("MaxParticipantDuration=599"), 53123);
        assert_eq!(code_of("MaxParticipantDuration=86401"), 53123);
        assert_eq!(code_of(&format!("UniqueName={}", "x".repeat(129))), 53101);
        assert_eq!(code_of("UniqueName=a%01b"), 53102);
        assert_eq!(code_of("VideoCodecs=VP9"), 53114);
        assert_eq!(code_of("Type=go&RecordParticipantsOnConnect=true"), 53114);
        assert_eq!(code_of("RecordingRules=nope"), 53120);
        assert_eq!(code_of("AudioOnly=yes"), 20001);
    }

    #[test]
    fn names_count_characters_not_bytes() {
        let name = "é".repeat(128);
        assert!(create(&format!("UniqueName={name}")).is_ok());
    }

    #[test]
    fn audio_only_rooms_have_no_video_codecs() {
        assert!(create("AudioOnly=true&VideoCodecs=H264")
            .unwrap()
            .video_codecs
            .is_empty());
        assert_eq!(
            create("VideoCodecs=H264&VideoCodecs=VP8&VideoCodecs=H264")
                .unwrap()
                .video_codecs,
            ["H264", "VP8"]
        );
    }

    #[test]
    fn recording_rules_grammar() {
        let ok = |s: &str| parse_recording_rules(s).unwrap().to_string();
        assert_eq!(
            ok(r#"[{"type": "include", "all": true}]"#),
            r#"[{"all":true,"type":"include"}]"#
        );
        assert!(parse_recording_rules(
            r#"{"rules":[{"type":"exclude","kind":"video","publisher":"alice"}]}"#
        )
        .is_ok());
        assert!(parse_recording_rules(
            r#"[{"type":"include","track":"t","kind":"audio","publisher":null}]"#
        )
        .is_ok());
        for bad in [
            "",
            "[]",
            "{}",
            "[1]",
            r#"[{"all":true}]"#,
            r#"[{"type":"maybe","all":true}]"#,
            r#"[{"type":"include","all":false}]"#,
            r#"[{"type":"include","all":true,"kind":"audio"}]"#,
            r#"[{"type":"include","kind":"data"}]"#,
            r#"[{"type":"include"}]"#,
            r#"[{"type":"include","colour":"red"}]"#,
            r#"[{"type":"include","all":true},{"type":"include","all":true}]"#,
        ] {
            assert!(parse_recording_rules(bad).is_err(), "{bad}");
        }
    }
}
