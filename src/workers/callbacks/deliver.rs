//! One HTTP attempt at a status callback: the destination policy, the request (signed with the
//! account's auth token), and what its answer means.

use super::destinations::{allowed_addresses, AllowedOnly, Denied, DenyList};
use crate::auth::master_key::MasterKey;
use crate::db::callback_claims::Claimed;
use secrecy::ExposeSecret;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why an attempt failed, as the delivery log says it: an answered attempt's reason is its
/// status (`last_response_status`); an unanswered one gets only one of these words, never the
/// error's text, so that a tenant cannot tell closed ports from filtered ones or from servers
/// that speak something other than HTTP.
pub mod reason {
    /// The destination is denied by the policy (never retried).
    pub const DENIED: &str = "denied";
    /// No HTTP answer: the name did not resolve, the connection was refused or cut.
    pub const CONNECT: &str = "connect";
    /// No answer within `ROOMD_CALLBACK_TIMEOUT`.
    pub const TIMEOUT: &str = "timeout";
    /// The TLS handshake failed (a certificate, say).
    pub const TLS: &str = "tls";
    /// Answered with a redirect (3xx), which roomd does not follow.
    pub const REDIRECT: &str = "redirect";
    /// Answered with another status that is not 2xx (in `last_response_status`).
    pub const STATUS: &str = "status";
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt {
    /// A 2xx answer.
    Delivered(u16),
    /// Another answer, or none (connection error, timeout): worth another try.
    Failed { status: Option<u16>, error: String },
    /// The destination is denied: never retried.
    Denied,
}

/// Delivers status callbacks: one client (connection reuse, timeouts, no redirects) and the
/// master key that opens the accounts' sealed auth tokens.
pub struct Deliverer {
    client: reqwest::Client,
    deny: Arc<DenyList>,
    master_key: Arc<MasterKey>,
    timeout: Duration,
    /// Accounts already warned about for unsigned callbacks (one warning each).
    warned: Mutex<HashSet<String>>,
}

/// How many accounts `warned` remembers (after that, no more warnings rather than more memory).
const MAX_WARNED: usize = 10_000;

impl Deliverer {
    pub fn new(
        deny: DenyList,
        master_key: Arc<MasterKey>,
        timeout: Duration,
    ) -> reqwest::Result<Deliverer> {
        let deny = Arc::new(deny);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!(
                "roomd/",
                env!("CARGO_PKG_VERSION"),
                " (status callbacks)"
            ))
            .dns_resolver(Arc::new(AllowedOnly(deny.clone())))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build()?;
        Ok(Deliverer {
            client,
            deny,
            master_key,
            timeout,
            warned: Mutex::new(HashSet::new()),
        })
    }

    /// Makes one attempt: POST with the form, or GET with the parameters in the query string
    /// (`StatusCallbackMethod`), signed with the account's auth token. The whole attempt,
    /// resolving the host included, takes at most the timeout.
    pub async fn attempt(&self, event: &Claimed) -> Attempt {
        tokio::time::timeout(self.timeout, self.try_once(event))
            .await
            .unwrap_or_else(|_| Attempt::Failed {
                status: None,
                error: reason::TIMEOUT.into(),
            })
    }

    async fn try_once(&self, event: &Claimed) -> Attempt {
        let Ok(mut url) = reqwest::Url::parse(&event.url) else {
            return Attempt::Failed {
                status: None,
                error: reason::CONNECT.into(),
            };
        };
        match self.destination_denied(&url).await {
            Ok(true) => return Attempt::Denied,
            Ok(false) => {}
            Err(error) => {
                return Attempt::Failed {
                    status: None,
                    error,
                }
            }
        }
        let params: Vec<(&str, &str)> = event
            .params
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
        let token = self.auth_token(event);
        if event.method == "GET" {
            url.query_pairs_mut().extend_pairs(&params);
        }
        // Credentials in the URL go as Basic auth (reqwest takes them from it); the receiver
        // sees, and validates, the URL without them.
        let mut signed_url = url.clone();
        let _ = signed_url.set_username("");
        let _ = signed_url.set_password(None);
        let request = if event.method == "GET" {
            let request = self.client.get(url.clone());
            match &token {
                Some(t) => request.header(
                    "X-Twilio-Signature",
                    crate::twilio::signature::sign(t.expose_secret(), signed_url.as_str(), &[]),
                ),
                None => request,
            }
        } else {
            let body = form_urlencoded(&params);
            let request = self
                .client
                .post(url.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body);
            match &token {
                Some(t) => request.header(
                    "X-Twilio-Signature",
                    crate::twilio::signature::sign(t.expose_secret(), signed_url.as_str(), &params),
                ),
                None => request,
            }
        };
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                Attempt::Delivered(response.status().as_u16())
            }
            Ok(response) => Attempt::Failed {
                status: Some(response.status().as_u16()),
                error: if response.status().is_redirection() {
                    reason::REDIRECT
                } else {
                    reason::STATUS
                }
                .into(),
            },
            Err(e) if is_denied(&e) => Attempt::Denied,
            Err(e) => {
                // The cause stays in the operator's log, never in the tenant's.
                tracing::debug!(event_sid = %event.sid, error = %describe(&e), "status callback attempt failed");
                Attempt::Failed {
                    status: None,
                    error: coarse_reason(&e).into(),
                }
            }
        }
    }

    /// Whether every address the URL's host stands for is denied. An IP literal is checked as
    /// it is (the client connects to it without resolving); a name is resolved here, and the
    /// client's resolver drops denied addresses again when it connects.
    async fn destination_denied(&self, url: &reqwest::Url) -> Result<bool, String> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) => Ok(self.deny.denies(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => Ok(self.deny.denies(IpAddr::V6(ip))),
            Some(url::Host::Domain(name)) => {
                match allowed_addresses(&self.deny, name, url.port_or_known_default().unwrap_or(0))
                    .await
                {
                    Ok(_) => Ok(false),
                    Err(e) if e.is::<Denied>() => Ok(true),
                    Err(e) => {
                        tracing::debug!(error = %e, "resolving a status callback host failed");
                        Err(reason::CONNECT.into())
                    }
                }
            }
            None => Err(reason::CONNECT.into()),
        }
    }

    /// The account's auth token, opened; `None` (unsigned callbacks, one warning per account)
    /// for an account whose token was never sealed, or does not open.
    fn auth_token(&self, event: &Claimed) -> Option<secrecy::SecretSlice<u8>> {
        let opened = event
            .auth_token_sealed
            .as_deref()
            .map(|sealed| self.master_key.open(&event.account_sid, sealed));
        match opened {
            Some(Ok(token)) => return Some(token),
            Some(Err(_)) => self.warn_once(
                &event.account_sid,
                "the account's sealed auth token does not open with this master key: its status callbacks go unsigned",
            ),
            None => self.warn_once(
                &event.account_sid,
                "the account has no sealed auth token (created before tokens were sealed): its status callbacks go unsigned until `roomd accounts rotate-token`",
            ),
        }
        None
    }

    fn warn_once(&self, account_sid: &str, message: &str) {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        if warned.len() < MAX_WARNED && warned.insert(account_sid.to_string()) {
            tracing::warn!(account_sid, "{message}");
        }
    }
}

fn form_urlencoded(params: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish()
}

fn is_denied(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<Denied>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// The delivery log's word for an attempt that got no answer (see `reason`).
fn coarse_reason(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        return reason::TIMEOUT;
    }
    if e.is_redirect() {
        return reason::REDIRECT;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            return reason::TLS;
        }
        source = err.source();
    }
    reason::CONNECT
}

/// What went wrong, without the URL (which may carry credentials): the kind, then the innermost
/// cause.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirected"
    } else {
        "request failed"
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    let mut last = None;
    while let Some(c) = cause {
        last = Some(c.to_string());
        cause = c.source();
    }
    match last {
        Some(c) => format!("{kind}: {c}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_default_holds_link_local_and_this_network_but_not_loopback_or_private() {
        let deny = DenyList::default_for("127.0.0.1".parse().unwrap());
        assert_eq!(deny, DenyList::default());
        for denied in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "0.0.0.0",
            "::",
            "::ffff:169.254.169.254",
        ] {
            assert!(deny.denies(denied.parse().unwrap()), "{denied}");
        }
        for allowed in [
            "127.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.1.1",
            "172.16.0.1",
            "8.8.8.8",
        ] {
            assert!(!deny.denies(allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn a_server_others_reach_calls_only_the_public_internet_unless_a_range_is_opened() {
        for bind in ["0.0.0.0", "192.168.1.10", "::"] {
            let deny = DenyList::default_for(bind.parse().unwrap());
            for denied in [
                "127.0.0.1",
                "127.1.2.3",
                "::1",
                "::ffff:127.0.0.1",
                "::127.0.0.1",
                "10.1.2.3",
                "172.20.0.5",
                "192.168.0.1",
                "100.64.0.1",
                "169.254.169.254",
                "fd00:ec2::254",
                "fc00::1",
                "fe80::1",
                "0.0.0.0",
                "::",
                "64:ff9b::7f00:1",
                "224.0.0.1",
                "255.255.255.255",
            ] {
                assert!(deny.denies(denied.parse().unwrap()), "{bind}: {denied}");
            }
            for allowed in ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"] {
                assert!(!deny.denies(allowed.parse().unwrap()), "{bind}: {allowed}");
            }
        }
        let opened = DenyList::default_for("0.0.0.0".parse().unwrap())
            .allowing("172.28.0.0/16")
            .unwrap();
        assert!(!opened.denies("172.28.0.9".parse().unwrap()));
        assert!(opened.denies("172.29.0.9".parse().unwrap()));
        assert!(opened.denies("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn a_deny_list_takes_ranges_and_bare_addresses_and_refuses_anything_else() {
        let deny = DenyList::parse(" 127.0.0.0/8, ::1 ,10.1.2.3").unwrap();
        assert!(deny.denies("127.9.9.9".parse().unwrap()));
        assert!(deny.denies("::1".parse().unwrap()));
        assert!(deny.denies("10.1.2.3".parse().unwrap()));
        assert!(!deny.denies("10.1.2.4".parse().unwrap()));
        assert_eq!(
            DenyList::parse("").unwrap(),
            DenyList::parse(" , ").unwrap()
        );
        assert!(DenyList::parse("10.0.0.0/33").is_err());
        assert!(DenyList::parse("example.com").is_err());
        assert!(DenyList::default().allowing("nope").is_err());
    }
}
