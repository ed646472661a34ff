//! The Room resource as Twilio writes it.

use crate::db::rooms::RoomRow;
use crate::twilio::time;
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The Room resource, keys in the order of Twilio's examples. It borrows the row and writes
/// its URLs and dates straight into the JSON output (a page of 50 rooms would otherwise build
/// some 400 short-lived strings).
#[derive(Serialize)]
pub struct RoomResource<'a> {
    account_sid: &'a str,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    #[serde(serialize_with = "time::serialize")]
    date_updated: DateTime<Utc>,
    status: &'a str,
    #[serde(rename = "type")]
    room_type: &'a str,
    sid: &'a str,
    enable_turn: bool,
    unique_name: &'a str,
    max_participants: i32,
    max_participant_duration: i32,
    max_concurrent_published_tracks: i32,
    duration: Option<i32>,
    status_callback_method: &'a str,
    status_callback: Option<&'a str>,
    record_participants_on_connect: bool,
    video_codecs: &'a [String],
    media_region: &'a str,
    audio_only: bool,
    empty_room_timeout: i32,
    unused_room_timeout: i32,
    #[serde(serialize_with = "time::serialize_opt")]
    end_time: Option<DateTime<Utc>>,
    large_room: bool,
    url: ResourceUrl<'a>,
    links: RoomLinks<'a>,
}

#[derive(Serialize)]
struct RoomLinks<'a> {
    participants: ResourceUrl<'a>,
    recordings: ResourceUrl<'a>,
    transcriptions: ResourceUrl<'a>,
    recording_rules: ResourceUrl<'a>,
}

impl<'a> RoomResource<'a> {
    pub fn new(row: &'a RoomRow, base: &'a PublicUrl) -> Self {
        let url = ResourceUrl::new(base, &["Rooms", &row.sid]);
        RoomResource {
            account_sid: &row.account_sid,
            date_created: row.date_created,
            date_updated: row.date_updated,
            status: row.status.as_str(),
            room_type: row.room_type.as_str(),
            sid: &row.sid,
            enable_turn: true,
            unique_name: &row.unique_name,
            max_participants: row.max_participants,
            max_participant_duration: row.max_participant_duration,
            max_concurrent_published_tracks: row.max_concurrent_published_tracks,
            duration: row.duration,
            status_callback_method: &row.status_callback_method,
            status_callback: row.status_callback.as_deref(),
            record_participants_on_connect: row.record_participants_on_connect,
            video_codecs: &row.video_codecs,
            media_region: &row.media_region,
            audio_only: row.audio_only,
            empty_room_timeout: row.empty_room_timeout,
            unused_room_timeout: row.unused_room_timeout,
            end_time: row.end_time,
            large_room: row.large_room,
            url,
            links: RoomLinks {
                participants: url.child("Participants"),
                recordings: url.child("Recordings"),
                transcriptions: url.child("Transcriptions"),
                recording_rules: url.child("RecordingRules"),
            },
        }
    }
}

/// About what one room's JSON takes, to size the output buffer once.
pub const ROOM_JSON_BYTES: usize = 1280;
