//! The recording resource as Twilio writes it: the account's (`/v1/Recordings/{Sid}`) and a
//! room's (`/v1/Rooms/{RoomSid}/Recordings/{Sid}`).

use crate::db::recordings::RecordingRow;
use crate::twilio::time;
use crate::twilio::urls::{PublicUrl, ResourceUrl};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// A recording, keys in the order of Twilio's examples. The account's resource carries the
/// status callback; a room's carries `room_sid` (and links under the room).
#[derive(Serialize)]
pub struct RecordingResource<'a> {
    account_sid: &'a str,
    status: &'a str,
    #[serde(serialize_with = "time::serialize")]
    date_created: DateTime<Utc>,
    sid: &'a str,
    source_sid: &'a str,
    size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<ResourceUrl<'a>>,
    #[serde(rename = "type")]
    kind: &'a str,
    duration: i32,
    container_format: &'static str,
    codec: &'a str,
    track_name: &'a str,
    offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_callback: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_callback_method: Option<Option<&'a str>>,
    grouping_sids: BTreeMap<&'static str, &'a str>,
    media_external_location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_sid: Option<&'a str>,
    #[serde(rename = "url", skip_serializing_if = "Option::is_none")]
    room_url: Option<ResourceUrl<'a>>,
    links: Links<'a>,
}

#[derive(Serialize)]
struct Links<'a> {
    media: ResourceUrl<'a>,
}

impl<'a> RecordingResource<'a> {
    /// The account's resource (`/v1/Recordings/{Sid}`).
    pub fn account(row: &'a RecordingRow, base: &'a PublicUrl) -> Self {
        let url = ResourceUrl::new(base, &["Recordings", &row.sid]);
        RecordingResource {
            url: Some(url),
            status_callback: Some(row.status_callback.as_deref()),
            status_callback_method: Some(row.status_callback_method.as_deref()),
            room_sid: None,
            room_url: None,
            ..Self::common(row, url)
        }
    }

    /// A room's resource (`/v1/Rooms/{RoomSid}/Recordings/{Sid}`).
    pub fn in_room(row: &'a RecordingRow, base: &'a PublicUrl) -> Self {
        let url = ResourceUrl::new(base, &["Rooms", &row.room_sid, "Recordings", &row.sid]);
        RecordingResource {
            url: None,
            status_callback: None,
            status_callback_method: None,
            room_sid: Some(&row.room_sid),
            room_url: Some(url),
            ..Self::common(row, url)
        }
    }

    fn common(row: &'a RecordingRow, url: ResourceUrl<'a>) -> Self {
        RecordingResource {
            account_sid: &row.account_sid,
            status: &row.status,
            date_created: row.date_created,
            sid: &row.sid,
            source_sid: &row.source_sid,
            size: row.size.unwrap_or(0),
            url: None,
            kind: &row.kind,
            duration: row.duration.unwrap_or(0),
            container_format: row.container(),
            codec: &row.codec,
            track_name: &row.track_name,
            offset: row.offset(),
            status_callback: None,
            status_callback_method: None,
            grouping_sids: BTreeMap::from([
                ("participant_sid", row.participant_sid.as_str()),
                ("room_sid", row.room_sid.as_str()),
            ]),
            media_external_location: None,
            room_sid: None,
            room_url: None,
            links: Links {
                media: url.child("Media"),
            },
        }
    }
}
