//! `{RoomNameOrSid}`: the room a path names, for the authenticated account, resolved the same
//! way for the room and for every sub-resource under it.

use super::extract::path_segment;
use super::respond::resource_not_found;
use crate::auth::authenticator::Account;
use crate::auth::authenticator::Authenticated;
use crate::db::rooms::{self, RoomKey, RoomRow};
use crate::domain::room::UniqueName;
use crate::domain::sid::RoomSid;
use crate::twilio::ApiError;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use sqlx::PgConnection;
use std::future::Future;
use std::pin::Pin;

/// The authenticated caller (an `Account` by default) and the decoded `{room}` segment. A segment
/// that no room could be named (e.g. with control characters) is a 404 here, before any database
/// work.
pub struct RoomRef<A = Account> {
    pub account: A,
    /// The segment as decoded: any segment that can name a room can be a room's name.
    pub segment: UniqueName,
    /// The segment as a room SID, when it has a SID's shape.
    pub sid: Option<RoomSid>,
}

impl<A: Authenticated> RoomRef<A> {
    /// The room `segment` names for `account` (a 404 for a segment no room could be named).
    pub fn parse(account: A, segment: String) -> Result<RoomRef<A>, ApiError> {
        let segment = UniqueName::parse(&segment)
            .map_err(|_| resource_not_found(&format!("/Rooms/{segment}")))?;
        let sid = RoomSid::parse(&segment);
        Ok(RoomRef {
            account,
            segment,
            sid,
        })
    }

    /// The ways the segment may name a room, in order: a SID-shaped segment is first a SID (any
    /// status), then, like any other segment, the name of an in-progress room (a name may look
    /// like a SID).
    pub fn keys(&self) -> impl Iterator<Item = RoomKey<'_>> {
        self.sid
            .as_deref()
            .map(RoomKey::Sid)
            .into_iter()
            .chain(std::iter::once(RoomKey::Name(&self.segment)))
    }

    /// The room, on one connection (within the caller's transaction, if it has one).
    pub async fn find(&self, conn: &mut PgConnection) -> Result<Option<RoomRow>, sqlx::Error> {
        rooms::find(conn, self.account.account_sid(), self.keys()).await
    }

    /// The 404 for this room, or for `sub_path` under it (e.g. `/Participants/PA...`).
    pub fn not_found(&self, sub_path: &str) -> ApiError {
        resource_not_found(&format!("/Rooms/{}{sub_path}", self.segment))
    }
}

impl<A> FromRequest for RoomRef<A>
where
    A: Authenticated + FromRequest<Error = ApiError> + 'static,
{
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let account = A::from_request(req, payload);
        let segment = path_segment(req, "room");
        Box::pin(async move { RoomRef::parse(account.await?, segment?) })
    }
}
