//! Wire conventions shared by every Twilio resource: errors, paging, form decoding, dates, URLs.
//! Nothing here knows about rooms.

pub mod error;
pub mod form;
pub mod paging;
pub mod signature;
pub mod time;
pub mod urls;

pub use error::ApiError;
