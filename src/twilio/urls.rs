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

    /// `{base}{path}`, where `path` starts with `/v1/`.
    pub fn join(&self, path: &str) -> String {
        let mut s = String::with_capacity(self.0.len() + path.len());
        s.push_str(&self.0);
        s.push_str(path);
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn trailing_slashes_are_dropped() {
        let u = super::PublicUrl::new("http://127.0.0.1:8080/");
        assert_eq!(u.join("/v1/Rooms"), "http://127.0.0.1:8080/v1/Rooms");
    }
}
