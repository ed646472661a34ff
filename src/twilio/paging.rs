//! Twilio paging: `PageSize`/`Page`/`PageToken` in, `meta` out.
//!
//! Tokens follow Twilio's convention: `PA<sid>` continues after the item with that SID (next
//! page), `PB<sid>` continues before it (previous page). The SID names a row, and the database
//! resolves it to its keyset position, so page 10,000 costs what page 1 costs.

use super::error::{code, ApiError};
use super::form::{encode, Params};
use super::urls::PublicUrl;
use serde::Serialize;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 1000;
/// The most items a `Page` number without a `PageToken` may skip: deeper pages are reached by
/// following `next_page_url` (keyset tokens), so no request scans an account's whole history.
pub const MAX_PAGE_OFFSET: u64 = 10_000;

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    /// From the newest item (optionally skipping `page * page_size` items when a client asks
    /// for a page number without a token).
    Start,
    /// The items after the one with this SID.
    After(String),
    /// The items before the one with this SID.
    Before(String),
}

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub page_size: u32,
    pub page: u32,
    pub token: Option<String>,
    pub cursor: Cursor,
}

impl PageRequest {
    /// Reads `PageSize`, `Page` and `PageToken`; `sid_prefix` is the listed resource's prefix.
    pub fn from_params(params: &Params, sid_prefix: &str) -> Result<PageRequest, ApiError> {
        Self::from_params_up_to(params, sid_prefix, MAX_PAGE_SIZE)
    }

    /// `from_params` for a list whose pages hold at most `max_page_size` items (Twilio's
    /// `/v1/Recordings`: 100).
    pub fn from_params_up_to(
        params: &Params,
        sid_prefix: &str,
        max_page_size: u32,
    ) -> Result<PageRequest, ApiError> {
        let page_size = match params.single("PageSize")? {
            None => DEFAULT_PAGE_SIZE.min(max_page_size),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=max_page_size).contains(&n) => n,
                _ => {
                    return Err(ApiError::invalid_parameter(format!(
                        "PageSize must be an integer between 1 and {max_page_size}"
                    )))
                }
            },
        };
        let page = match params.single("Page")? {
            None => 0,
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| ApiError::invalid_parameter("Page must be a non-negative integer"))?,
        };
        let (token, cursor) = match params.single("PageToken")? {
            None | Some("") => (None, Cursor::Start),
            Some(t) => (Some(t.to_string()), parse_token(t, sid_prefix)?),
        };
        if cursor == Cursor::Start && u64::from(page) * u64::from(page_size) > MAX_PAGE_OFFSET {
            return Err(ApiError::invalid_parameter(format!(
                "Page * PageSize may not exceed {MAX_PAGE_OFFSET} without a PageToken: follow next_page_url"
            )));
        }
        Ok(PageRequest {
            page_size,
            page,
            token,
            cursor,
        })
    }

    /// Rows to skip when a page number was given without a token (clients that do their own
    /// paging arithmetic); token-driven paging never skips.
    pub fn offset(&self) -> u64 {
        match self.cursor {
            Cursor::Start => u64::from(self.page) * u64::from(self.page_size),
            _ => 0,
        }
    }
}

fn parse_token(token: &str, sid_prefix: &str) -> Result<Cursor, ApiError> {
    let invalid = || ApiError::bad_request(code::INVALID_PAGE_TOKEN, "Invalid PageToken");
    let (dir, sid) = (token.get(..2).ok_or_else(invalid)?, &token[2..]);
    let well_formed = sid.len() == 34
        && sid.starts_with(sid_prefix)
        && sid[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(invalid());
    }
    let sid = format!("{sid_prefix}{}", sid[2..].to_ascii_lowercase());
    match dir {
        "PA" => Ok(Cursor::After(sid)),
        "PB" => Ok(Cursor::Before(sid)),
        _ => Err(invalid()),
    }
}

/// Twilio's `meta` object, keys in Twilio's order.
#[derive(Debug, Serialize)]
pub struct Meta {
    pub page: u32,
    pub page_size: u32,
    pub first_page_url: String,
    pub previous_page_url: Option<String>,
    pub url: String,
    pub next_page_url: Option<String>,
    pub key: &'static str,
}

/// What a list query found, in display order, plus whether more lies beyond either end.
pub struct PageResult<'a> {
    pub first_sid: Option<&'a str>,
    pub last_sid: Option<&'a str>,
    pub has_next: bool,
    pub has_previous: bool,
}

/// A listed item, as paging sees it: tokens name items by SID.
pub trait HasSid {
    fn sid(&self) -> &str;
}

impl<'a> PageResult<'a> {
    /// What a page read for `req` found: `items` in display order, and whether more lie beyond
    /// them in the direction the page was read. Read backwards (a `PB` token), a page always has
    /// a next one (the token's own item); read forwards, it has a previous one when it did not
    /// start at the top.
    pub fn of<T: HasSid>(req: &PageRequest, items: &'a [T], more_beyond: bool) -> Self {
        let backwards = matches!(req.cursor, Cursor::Before(_));
        PageResult {
            first_sid: items.first().map(HasSid::sid),
            last_sid: items.last().map(HasSid::sid),
            has_next: backwards || more_beyond,
            has_previous: if backwards {
                more_beyond
            } else {
                req.token.is_some() || req.offset() > 0
            },
        }
    }
}

/// A Twilio list body: `{"<key>": [items], "meta": {...}}`, the key being `meta.key`.
pub struct ListBody<T> {
    pub items: Vec<T>,
    pub meta: Meta,
}

impl<T: Serialize> Serialize for ListBody<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry(self.meta.key, &self.items)?;
        map.serialize_entry("meta", &self.meta)?;
        map.end()
    }
}

/// Builds `meta` for a list at `path` (e.g. `/v1/Rooms`) with its filters, which every paging
/// URL carries so that following `next_page_url` keeps the same query.
pub fn meta(
    base: &PublicUrl,
    path: &str,
    key: &'static str,
    filters: &[(&str, String)],
    req: &PageRequest,
    found: PageResult<'_>,
) -> Meta {
    let mut prefix = base.join(path);
    prefix.push('?');
    for (k, v) in filters {
        prefix.push_str(k);
        prefix.push('=');
        prefix.push_str(&encode(v));
        prefix.push('&');
    }
    let page_url = |page: u32, token: Option<&str>| {
        let mut u = format!("{prefix}PageSize={}&Page={page}", req.page_size);
        if let Some(t) = token {
            u.push_str("&PageToken=");
            u.push_str(&encode(t));
        }
        u
    };
    let next_page_url = match (found.has_next, found.last_sid) {
        (true, Some(last)) => Some(page_url(
            req.page.saturating_add(1),
            Some(&format!("PA{last}")),
        )),
        _ => None,
    };
    let previous_page_url = match (found.has_previous, found.first_sid) {
        (true, Some(first)) => Some(page_url(
            req.page.saturating_sub(1),
            Some(&format!("PB{first}")),
        )),
        _ => None,
    };
    Meta {
        page: req.page,
        page_size: req.page_size,
        first_page_url: page_url(0, None),
        previous_page_url,
        url: page_url(req.page, req.token.as_deref()),
        next_page_url,
        key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(q: &str) -> Result<PageRequest, ApiError> {
        PageRequest::from_params(&Params::parse(q.as_bytes()).unwrap(), "RM")
    }

    #[test]
    fn defaults_and_bounds() {
        let r = req("").unwrap();
        assert_eq!((r.page_size, r.page, r.cursor), (50, 0, Cursor::Start));
        assert_eq!(req("PageSize=1000").unwrap().page_size, 1000);
        for bad in [
            "PageSize=0",
            "PageSize=1001",
            "PageSize=-1",
            "PageSize=abc",
            "Page=-1",
            "Page=x",
        ] {
            assert!(req(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_name_a_sid_and_a_direction() {
        let sid = "RM0123456789abcdef0123456789abcdef";
        assert_eq!(
            req(&format!("PageToken=PA{sid}")).unwrap().cursor,
            Cursor::After(sid.into())
        );
        assert_eq!(
            req(&format!("PageToken=PB{sid}")).unwrap().cursor,
            Cursor::Before(sid.into())
        );
        for bad in [
            "PageToken=PX",
            "PageToken=P",
            "PageToken=PARM123",
            &format!("PageToken=PC{sid}"),
            "PageToken=PAPA0123456789abcdef0123456789abcdef",
            "PageToken=PA\u{e9}",
        ] {
            let e = req(bad).unwrap_err();
            assert_eq!(e.code(), 21481, "{bad}");
        }
    }

    #[test]
    fn meta_carries_filters_and_tokens() {
        let base = PublicUrl::new("http://127.0.0.1:9");
        let r = req("PageSize=2&Page=1&PageToken=PARM0123456789abcdef0123456789abcdef").unwrap();
        let m = meta(
            &base,
            "/v1/Rooms",
            "rooms",
            &[
                ("Status", "completed".into()),
                ("DateCreatedAfter", "2017-01-01T00:00:01Z".into()),
            ],
            &r,
            PageResult {
                first_sid: Some("RMa"),
                last_sid: Some("RMb"),
                has_next: true,
                has_previous: true,
            },
        );
        let p = "http://127.0.0.1:9/v1/Rooms?Status=completed&DateCreatedAfter=2017-01-01T00%3A00%3A01Z&PageSize=2";
        assert_eq!(m.first_page_url, format!("{p}&Page=0"));
        assert_eq!(
            m.url,
            format!("{p}&Page=1&PageToken=PARM0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            m.next_page_url.unwrap(),
            format!("{p}&Page=2&PageToken=PARMb")
        );
        assert_eq!(
            m.previous_page_url.unwrap(),
            format!("{p}&Page=0&PageToken=PBRMa")
        );
    }
}
