//! Absolute URLs on the configured public base (`ROOMD_PUBLIC_URL`), the only place they are built.

/// The base every `url`, `links` and paging URL starts with, e.g. `http://127.0.0.1:8080`.
#[derive(Clone, Debug)]
pub struct PublicUrl(String);

impl PublicUrl {
    pub fn new(base: &str) -> Self {
        PublicUrl(base.trim_end_matches('/').to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The base's origin, `scheme://host[:port]` (without any path a proxy mounts roomd under).
    pub fn origin(&self) -> String {
        let after_scheme = self.0.find("://").map_or(0, |i| i + 3);
        let end = self.0[after_scheme..]
            .find('/')
            .map_or(self.0.len(), |i| after_scheme + i);
        self.0[..end].to_string()
    }

    /// `{base}{path}`, where `path` starts with `/v1/`.
    pub fn join(&self, path: &str) -> String {
        let mut s = String::with_capacity(self.0.len() + path.len());
        s.push_str(&self.0);
        s.push_str(path);
        s
    }
}

/// The most path segments after `/v1` a resource URL has (e.g. `Rooms/RM../Participants/PA..
/// /SubscribeRules`).
const MAX_SEGMENTS: usize = 6;

/// `{base}/v1/{segment}/{segment}...`, written straight into the output when serialized (a page
/// of 50 resources would otherwise build hundreds of short-lived strings). Segments are SIDs and
/// fixed resource names, which need no escaping.
#[derive(Clone, Copy)]
pub struct ResourceUrl<'a> {
    base: &'a PublicUrl,
    segments: [&'a str; MAX_SEGMENTS],
    len: usize,
}

impl<'a> ResourceUrl<'a> {
    pub fn new(base: &'a PublicUrl, segments: &[&'a str]) -> Self {
        let mut url = ResourceUrl {
            base,
            segments: [""; MAX_SEGMENTS],
            len: 0,
        };
        for s in segments {
            url = url.child(s);
        }
        url
    }

    /// This URL with one more segment, e.g. a resource's link to `Participants`.
    pub fn child(mut self, segment: &'a str) -> Self {
        assert!(
            self.len < MAX_SEGMENTS,
            "resource URLs have at most {MAX_SEGMENTS} segments"
        );
        self.segments[self.len] = segment;
        self.len += 1;
        self
    }
}

impl std::fmt::Display for ResourceUrl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.base.as_str())?;
        f.write_str("/v1")?;
        for s in &self.segments[..self.len] {
            f.write_str("/")?;
            f.write_str(s)?;
        }
        Ok(())
    }
}

impl serde::Serialize for ResourceUrl<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trailing_slashes_are_dropped() {
        let u = super::PublicUrl::new("http://127.0.0.1:8080/");
        assert_eq!(u.join("/v1/Rooms"), "http://127.0.0.1:8080/v1/Rooms");
    }

    #[test]
    fn resource_urls_join_their_segments() {
        let base = super::PublicUrl::new("http://127.0.0.1:8080");
        let room = super::ResourceUrl::new(&base, &["Rooms", "RM1"]);
        assert_eq!(room.to_string(), "http://127.0.0.1:8080/v1/Rooms/RM1");
        assert_eq!(
            serde_json::to_string(&room.child("Participants")).unwrap(),
            "\"http://127.0.0.1:8080/v1/Rooms/RM1/Participants\""
        );
    }
}
