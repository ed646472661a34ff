//! Where status callbacks may go: the deny list (CIDR ranges, its default by where roomd listens,
//! the ranges the operator opens), checked on every resolved address, never on the name.

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The ranges roomd never calls when it listens on loopback only (the quick start, test
/// suites: its callers are on the same machine, so loopback and private receivers are theirs):
/// link-local (which holds the cloud metadata service 169.254.169.254) and "this network".
pub const DEFAULT_DENY_LOOPBACK: &str = "169.254.0.0/16,fe80::/10,0.0.0.0/8,::/128";

/// The ranges roomd never calls when it listens on any other address (a server others reach):
/// everything that is not the public internet. Loopback, RFC 1918 private, CGNAT
/// (100.64.0.0/10), link-local and metadata, ULA (fc00::/7, which holds fd00:ec2::254), IPv6
/// written IPv4 (IPv4-compatible, NAT64), benchmarking, multicast and reserved ranges.
pub const DEFAULT_DENY_PUBLIC: &str = "0.0.0.0/8,10.0.0.0/8,100.64.0.0/10,127.0.0.0/8,\
169.254.0.0/16,172.16.0.0/12,192.0.0.0/24,192.0.2.0/24,192.168.0.0/16,198.18.0.0/15,\
198.51.100.0/24,203.0.113.0/24,224.0.0.0/4,240.0.0.0/4,::/96,::1/128,64:ff9b::/96,\
64:ff9b:1::/48,100::/64,2001:db8::/32,fc00::/7,fe80::/10,fec0::/10,ff00::/8";

/// Where status callbacks may go: never to an address in `deny` (`ROOMD_CALLBACK_DENY`, whose
/// default depends on the listening address), unless it is in `allow` (`ROOMD_CALLBACK_ALLOW`,
/// which the operator opens for receivers of its own network).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenyList {
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
}

/// A comma-separated list of CIDR ranges (a bare address is its own /32 or /128).
fn parse_ranges(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a CIDR range"))
        })
        .collect()
}

impl DenyList {
    /// Denies the ranges of `list` and allows everything else.
    pub fn parse(list: &str) -> Result<DenyList, String> {
        Ok(DenyList {
            deny: parse_ranges(list)?,
            allow: Vec::new(),
        })
    }

    /// The default for a server listening on `bind`: `DEFAULT_DENY_LOOPBACK` when that is a
    /// loopback address, else `DEFAULT_DENY_PUBLIC`.
    pub fn default_for(bind: IpAddr) -> DenyList {
        let list = if bind.is_loopback() {
            DEFAULT_DENY_LOOPBACK
        } else {
            DEFAULT_DENY_PUBLIC
        };
        DenyList::parse(list).expect("the default deny lists parse")
    }

    /// Opens the ranges of `list` (CIDRs) even where the deny list covers them.
    pub fn allowing(mut self, list: &str) -> Result<DenyList, String> {
        self.allow = parse_ranges(list)?;
        Ok(self)
    }

    pub fn denies(&self, ip: IpAddr) -> bool {
        // An IPv4 address written as IPv6 (::ffff:a.b.c.d) is checked as the IPv4 one it is.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.deny.iter().any(|net| net.contains(&ip))
            && !self.allow.iter().any(|net| net.contains(&ip))
    }
}

impl Default for DenyList {
    /// The loopback default (what tests and the quick start run with).
    fn default() -> Self {
        DenyList::parse(DEFAULT_DENY_LOOPBACK).expect("the default deny list parses")
    }
}

/// The error a destination in the deny list gives (never retried).
#[derive(Debug)]
pub(super) struct Denied;

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("destination address is in ROOMD_CALLBACK_DENY")
    }
}

impl std::error::Error for Denied {}

/// The HTTP client's resolver: the system's, with denied addresses dropped. The connection
/// goes to an address this returned, so a name that resolves elsewhere the second time (DNS
/// rebinding) still never reaches a denied one.
pub(super) struct AllowedOnly(pub(super) Arc<DenyList>);

impl Resolve for AllowedOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let deny = self.0.clone();
        Box::pin(async move {
            let allowed = allowed_addresses(&deny, name.as_str(), 0).await?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

pub(super) async fn allowed_addresses(
    deny: &DenyList,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let allowed: Vec<SocketAddr> = found
        .iter()
        .copied()
        .filter(|a| !deny.denies(a.ip()))
        .collect();
    if allowed.is_empty() && !found.is_empty() {
        return Err(Box::new(Denied));
    }
    Ok(allowed)
}
