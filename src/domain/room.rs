//! Rooms: their type and status, and the unique name. Constructors enforce Twilio's ranges and
//! return Twilio's codes.

use crate::twilio::error::{code, ApiError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomType {
    Group,
    GroupSmall,
    PeerToPeer,
    Go,
}

impl RoomType {
    pub fn parse(s: &str) -> Result<RoomType, ApiError> {
        match s {
            "group" => Ok(RoomType::Group),
            "group-small" => Ok(RoomType::GroupSmall),
            "peer-to-peer" => Ok(RoomType::PeerToPeer),
            "go" => Ok(RoomType::Go),
            _ => Err(ApiError::bad_request(
                code::ROOM_TYPE_INVALID,
                "RoomType is not valid",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoomType::Group => "group",
            RoomType::GroupSmall => "group-small",
            RoomType::PeerToPeer => "peer-to-peer",
            RoomType::Go => "go",
        }
    }

    /// The most participants a room of this type may hold (and the default).
    pub fn max_participants(self, large_room: bool) -> i32 {
        match self {
            RoomType::Group if large_room => 100,
            RoomType::Group => 50,
            RoomType::GroupSmall => 4,
            RoomType::PeerToPeer => 10,
            RoomType::Go => 2,
        }
    }

    /// Peer-to-peer and Go rooms are meshes: no media server, so no recording and no large rooms.
    pub fn is_mesh(self) -> bool {
        matches!(self, RoomType::PeerToPeer | RoomType::Go)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomStatus {
    InProgress,
    Completed,
    Failed,
}

impl RoomStatus {
    pub fn parse(s: &str) -> Option<RoomStatus> {
        match s {
            "in-progress" => Some(RoomStatus::InProgress),
            "completed" => Some(RoomStatus::Completed),
            "failed" => Some(RoomStatus::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RoomStatus::InProgress => "in-progress",
            RoomStatus::Completed => "completed",
            RoomStatus::Failed => "failed",
        }
    }
}

/// Reads an enum from the `text` column that holds its wire name (rows carry `RoomStatus`, not
/// strings).
macro_rules! decode_from_text {
    ($t:ty, $parse:expr) => {
        impl sqlx::Type<sqlx::Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $t {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                let parse: fn(&str) -> Option<$t> = $parse;
                parse(s).ok_or_else(|| format!("not a {}: {s:?}", stringify!($t)).into())
            }
        }
    };
}

decode_from_text!(RoomType, |s| RoomType::parse(s).ok());
decode_from_text!(RoomStatus, RoomStatus::parse);

pub const MEDIA_REGIONS: [&str; 10] = [
    "gll", "au1", "br1", "de1", "ie1", "in1", "jp1", "sg1", "us1", "us2",
];
pub const MAX_UNIQUE_NAME_CHARS: usize = 128;

/// A room name as Twilio accepts it: 1..=128 characters, no control characters (which also keeps
/// NUL, which PostgreSQL's `text` cannot hold, away from the database). Checked once, when
/// parsed; it derefs to `str`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueName(String);

impl UniqueName {
    /// The name, or the Twilio error (53100, 53101, 53102) that says why it cannot be one.
    pub fn parse(name: &str) -> Result<UniqueName, ApiError> {
        validate_unique_name(name)?;
        Ok(UniqueName(name.to_string()))
    }
}

impl std::ops::Deref for UniqueName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UniqueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_unique_name(name: &str) -> Result<(), ApiError> {
    const ERRORS: super::NameErrors = super::NameErrors {
        invalid: (code::ROOM_NAME_INVALID, "Room name is invalid"),
        too_long: (code::ROOM_NAME_TOO_LONG, "Room name is too long"),
        invalid_characters: (
            code::ROOM_NAME_INVALID_CHARACTERS,
            "Room name contains invalid characters",
        ),
    };
    super::check_name(name, MAX_UNIQUE_NAME_CHARS, &ERRORS)
}
