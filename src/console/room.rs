//! A room's page: its settings, participants (connected, and those who left, with how long they
//! stayed), published tracks and rules, the status callback log, recordings and compositions
//! with a player; all of it refreshed in place.

use super::error::{html, render, ConsoleError};
use super::session::Signed;
use super::views::{
    self, EventLine, MediaLine, ParticipantLine, RoomLive, RoomPage, RoomView, TrackLine,
};
use crate::auth::authenticator::Account;
use crate::db::compositions::{self, CompositionFilter, CompositionRow};
use crate::db::participants::{self, ParticipantFilter, ParticipantRow};
use crate::db::recordings::{self, RecordingFilter, RecordingRow};
use crate::db::room_contents::{self, Attempt};
use crate::db::rooms::RoomRow;
use crate::db::DbError;
use crate::db::{callbacks, recording_rules};
use crate::domain::participant::ParticipantStatus;
use crate::domain::room::RoomStatus;
use crate::http::extract::path_segment;
use crate::http::room_ref::RoomRef;
use crate::http::state::AppState;
use crate::twilio::paging::{Cursor, PageRequest};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use std::collections::HashMap;

/// What each list of the page shows at most.
const PARTICIPANTS: u32 = 50;
const TRACKS: i64 = 200;
const EVENTS: u32 = 100;
const MEDIA: u32 = 50;

fn first(n: u32) -> PageRequest {
    PageRequest {
        page_size: n,
        page: 0,
        token: None,
        cursor: Cursor::Start,
    }
}

/// The room `{room}` names, for the signed-in account.
pub(super) fn room_ref(req: &HttpRequest, signed: &Signed) -> Result<RoomRef, ConsoleError> {
    let segment = path_segment(req, "room")?;
    Ok(RoomRef::parse(
        Account {
            sid: signed.account.sid.clone(),
        },
        segment,
    )?)
}

/// Media links on the page stay the same for an hour at least (so that a refresh does not
/// replace a player that is playing), and work for up to two.
fn media_src(state: &AppState, sid: &str, ready: bool) -> Option<String> {
    let media = state.media.as_ref().filter(|_| ready)?;
    let hour = 3600;
    let expires = (Utc::now().timestamp() / hour + 2) * hour;
    Some(media.media_link("", sid, expires))
}

fn settings(r: &RoomRow) -> Vec<(&'static str, String)> {
    let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
    vec![
        ("SID", r.sid.clone()),
        ("Unique name", r.unique_name.clone()),
        ("Status", r.status.as_str().into()),
        ("Type", r.room_type.as_str().into()),
        ("Created", views::when(r.date_created)),
        ("Ended", or_none(r.end_time.map(views::when))),
        (
            "Duration",
            or_none(r.duration.map(|d| views::seconds(d.into()))),
        ),
        ("Max participants", r.max_participants.to_string()),
        (
            "Max participant duration",
            views::seconds(r.max_participant_duration.into()),
        ),
        (
            "Record participants on connect",
            r.record_participants_on_connect.to_string(),
        ),
        (
            "Status callback",
            or_none(
                r.status_callback
                    .as_ref()
                    .map(|u| format!("{} {u}", r.status_callback_method)),
            ),
        ),
        (
            "Empty room timeout",
            format!("{} min", r.empty_room_timeout),
        ),
        (
            "Unused room timeout",
            format!("{} min", r.unused_room_timeout),
        ),
        ("Video codecs", r.video_codecs.join(", ")),
        ("Media region", r.media_region.clone()),
        ("Audio only", r.audio_only.to_string()),
    ]
}

fn participant(p: &ParticipantRow, rules: Option<&serde_json::Value>) -> ParticipantLine {
    ParticipantLine {
        sid: p.sid.clone(),
        identity: p.identity.clone(),
        start: views::when(p.start_time),
        end: p.end_time.map(views::when).unwrap_or_default(),
        duration: p
            .duration
            .map(|d| views::seconds(d.into()))
            .unwrap_or_default(),
        reason: p.end_reason.clone().unwrap_or_default(),
        rules: rules.map(|r| r.to_string()).unwrap_or_default(),
    }
}

/// An attempt as the callback log shows it: `#2 20:15:04 UTC: HTTP 500`.
fn attempt(a: &Attempt) -> String {
    let outcome = match (a.status, &a.error) {
        (Some(s), _) => format!("HTTP {s}"),
        (None, Some(e)) => e.clone(),
        (None, None) => "no answer".into(),
    };
    format!("#{} {}: {outcome}", a.attempt, a.at.format("%H:%M:%S UTC"))
}

fn recording(state: &AppState, r: &RecordingRow) -> MediaLine {
    MediaLine {
        sid: r.sid.clone(),
        label: format!("{} ({})", r.track_name, r.kind),
        status: r.status.clone(),
        duration: r
            .duration
            .map(|d| views::seconds(d.into()))
            .unwrap_or_default(),
        size: r.size.map(views::bytes).unwrap_or_default(),
        src: media_src(
            state,
            &r.sid,
            r.status == "completed" && r.media_path.is_some(),
        ),
        audio: r.kind == "audio",
        deletable: r.status != "deleted",
    }
}

fn composition(state: &AppState, c: &CompositionRow) -> MediaLine {
    let ready = c.status == "completed" && c.media_path.is_some();
    MediaLine {
        sid: c.sid.clone(),
        label: format!("{} {}", c.format, c.resolution),
        status: c.status.clone(),
        duration: if ready {
            views::seconds(c.duration.into())
        } else {
            String::new()
        },
        size: if ready {
            views::bytes(c.size)
        } else {
            String::new()
        },
        src: media_src(state, &c.sid, ready),
        audio: false,
        deletable: false,
    }
}

/// Everything the page shows of the room `room` names, read on one connection.
async fn view(state: &AppState, room: &RoomRef) -> Result<RoomView, ConsoleError> {
    let account = room.account.sid.as_str();
    let found = state
        .pool
        .run(async |c| -> Result<Option<RoomView>, DbError> {
            let Some(r) = room.find(c).await? else {
                return Ok(None);
            };
            let people = |status| ParticipantFilter {
                status: Some(status),
                identity: None,
                created_on_or_after: None,
                created_before: None,
            };
            let (now, gone) = (
                people(ParticipantStatus::Connected),
                people(ParticipantStatus::Disconnected),
            );
            let page = first(PARTICIPANTS);
            let connected = participants::list(c, &r, &now, &page).await?.rows;
            let past = participants::list(c, &r, &gone, &page).await?.rows;
            let rules: HashMap<String, serde_json::Value> =
                room_contents::subscribe_rules(&mut *c, &r.sid, PARTICIPANTS.into())
                    .await?
                    .into_iter()
                    .collect();
            let published = room_contents::tracks(&mut *c, account, &r.sid, TRACKS).await?;
            let (recording_rules, _) = recording_rules::recording_rules(&mut *c, &r.sid).await?;
            let events = callbacks::list(c, account, &r.sid, &first(EVENTS))
                .await?
                .rows;
            let tries: HashMap<String, Vec<Attempt>> =
                room_contents::callback_attempts(&mut *c, account, &r.sid, EVENTS.into())
                    .await?
                    .into_iter()
                    .map(|(sid, log)| (sid, log.0))
                    .collect();
            let media = first(MEDIA);
            let recorded = recordings::list(
                c,
                account,
                Some(&r.sid),
                &RecordingFilter::default(),
                &media,
            )
            .await?
            .rows;
            let composed = CompositionFilter {
                room_sid: Some(r.sid.clone()),
                ..Default::default()
            };
            let composed = compositions::list(c, account, &composed, &media)
                .await?
                .rows;
            let identity: HashMap<&str, &str> = connected
                .iter()
                .map(|p| (p.sid.as_str(), p.identity.as_str()))
                .collect();
            Ok(Some(RoomView {
                sid: r.sid.clone(),
                in_progress: r.status == RoomStatus::InProgress,
                settings: settings(&r),
                connected: connected
                    .iter()
                    .map(|p| participant(p, rules.get(&p.sid)))
                    .collect(),
                past: past.iter().map(|p| participant(p, None)).collect(),
                tracks: published
                    .iter()
                    .map(|t| TrackLine {
                        sid: t.sid.clone(),
                        name: t.name.clone(),
                        kind: t.kind.clone(),
                        publisher: identity
                            .get(t.participant_sid.as_str())
                            .unwrap_or(&"")
                            .to_string(),
                        enabled: if t.enabled { "yes" } else { "no" },
                    })
                    .collect(),
                recording_rules: recording_rules.to_string(),
                events: events
                    .iter()
                    .map(|e| EventLine {
                        sid: e.sid.clone(),
                        sequence: e.sequence_number,
                        event: e.event.clone(),
                        status: e.status.clone(),
                        attempts: e.attempts,
                        tries: tries
                            .get(&e.sid)
                            .map_or_else(Vec::new, |log| log.iter().map(attempt).collect()),
                        method: e.method.clone(),
                        url: e.url.clone(),
                    })
                    .collect(),
                recordings: recorded.iter().map(|x| recording(state, x)).collect(),
                compositions: composed.iter().map(|x| composition(state, x)).collect(),
            }))
        })
        .await?;
    Ok(found.ok_or_else(|| room.not_found(""))?)
}

async fn live(state: &AppState, signed: &Signed, room: &RoomRef) -> Result<String, ConsoleError> {
    let room = view(state, room).await?;
    render(RoomLive {
        room,
        csrf: signed.csrf(),
    })
}

/// `GET /console/rooms/{room}`.
pub(super) async fn page(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let room = room_ref(&req, &signed)?;
    let view = view(&state, &room).await?;
    let name = view.settings[1].1.clone();
    let sid = view.sid.clone();
    let live = render(RoomLive {
        room: view,
        csrf: signed.csrf(),
    })?;
    let page = RoomPage {
        nav: Some(super::page::nav(&state, &signed, "rooms").await?),
        name,
        live_url: format!("/console/rooms/{sid}/live"),
        digest: views::digest(&live),
        live,
    };
    Ok(html(HttpResponse::Ok(), &page))
}

/// `GET /console/rooms/{room}/live`: the live part alone.
pub(super) async fn live_part(
    req: HttpRequest,
    signed: Signed,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let room = room_ref(&req, &signed)?;
    Ok(super::page::fragment(live(&state, &signed, &room).await?))
}
