//! Which URLs the edge may fetch to build a link preview, so that a message cannot make the
//! server fetch something on its own network (server-side request forgery).
//!
//! URLs are parsed with the WHATWG rules (the `url` crate), the same rules `fetch` applies, so
//! the host checked here is the host fetched: decimal, hex, octal and short IPv4 forms such as
//! `http://2130706433/`, `http://0x7f.1/`, `http://0177.0.0.1/` and `http://127.1/` all become
//! `127.0.0.1` before any rule sees them, and internationalised names become their ASCII form.
//!
//! A Worker cannot resolve a name before fetching it, so a public name that points at a
//! private address is not caught here: Cloudflare's network refuses to connect a Worker's
//! subrequest to private and reserved addresses in production. Every redirect is fetched
//! manually and checked again with [`check_redirect`], at most [`MAX_REDIRECTS`] times.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

use super::link::LINK_MAX_BYTES;

/// How many redirects a preview fetch follows before giving up.
pub const MAX_REDIRECTS: usize = 3;
/// How long a preview fetch may take in all, in milliseconds.
pub const TIMEOUT_MS: u64 = 3_000;
/// How much of a page's body is read; a preview's tags are in its head.
pub const MAX_BODY_BYTES: usize = 512 * 1024;

/// What the fetch may reach besides the public internet.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// test-only: allow loopback hosts and any port (the edge sets it only for a localhost
    /// request with the test switch on)
    pub allow_loopback: bool,
}

/// A URL the edge may fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as parsed, to fetch as is.
    pub url: Url,
}

/// Why a URL may not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not a URL, or longer than [`LINK_MAX_BYTES`].
    Malformed,
    /// Not `http` or `https`.
    Scheme,
    /// A port other than 80 or 443.
    Port,
    /// A user name or password in the URL.
    Credentials,
    /// The name or address is not allowed (private, local, reserved, or not a public name).
    Host,
}

impl Refusal {
    /// A stable, snake_case code for logs and error replies.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Malformed => "preview_url_malformed",
            Refusal::Scheme => "preview_url_scheme",
            Refusal::Port => "preview_url_port",
            Refusal::Credentials => "preview_url_credentials",
            Refusal::Host => "preview_url_host",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Malformed => "the link is not a valid URL",
            Refusal::Scheme => "only http and https links get a preview",
            Refusal::Port => "only links on the standard ports get a preview",
            Refusal::Credentials => "links with a user name or password get no preview",
            Refusal::Host => "links to local or private addresses get no preview",
        })
    }
}

impl std::error::Error for Refusal {}

/// Checks a URL before the edge fetches it.
pub fn check(raw: &str, policy: Policy) -> Result<Target, Refusal> {
    if raw.len() > LINK_MAX_BYTES {
        return Err(Refusal::Malformed);
    }
    let url = Url::parse(raw).map_err(|_| Refusal::Malformed)?;
    check_url(url, policy)
}

/// A redirect's Location, resolved against the URL that answered it, checked like the first URL.
pub fn check_redirect(from: &Url, location: &str, policy: Policy) -> Result<Target, Refusal> {
    if location.len() > LINK_MAX_BYTES {
        return Err(Refusal::Malformed);
    }
    let url = from.join(location).map_err(|_| Refusal::Malformed)?;
    if url.as_str().len() > LINK_MAX_BYTES {
        return Err(Refusal::Malformed);
    }
    check_url(url, policy)
}

fn check_url(url: Url, policy: Policy) -> Result<Target, Refusal> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refusal::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    // `port()` is None for the scheme's default port; `https://x:80` is still a web port.
    if !policy.allow_loopback && !matches!(url.port(), None | Some(80 | 443)) {
        return Err(Refusal::Port);
    }
    let allowed = match url.host() {
        Some(Host::Ipv4(ip)) => v4_allowed(ip, policy),
        Some(Host::Ipv6(ip)) => v6_allowed(ip, policy),
        Some(Host::Domain(name)) => name_allowed(name, policy),
        None => return Err(Refusal::Malformed),
    };
    if allowed {
        Ok(Target { url })
    } else {
        Err(Refusal::Host)
    }
}

/// IPv4 ranges that are not the public internet (RFC 6890 and friends): (network, prefix).
const V4_REFUSED: [(u32, u8); 16] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0A00_0000, 8),  // 10/8 private
    (0x6440_0000, 10), // 100.64/10 carrier-grade NAT
    (0x7F00_0000, 8),  // 127/8 loopback
    (0xA9FE_0000, 16), // 169.254/16 link-local, cloud metadata
    (0xAC10_0000, 12), // 172.16/12 private
    (0xC000_0000, 24), // 192.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2/24 documentation
    (0xC058_6300, 24), // 192.88.99/24 6to4 relay anycast
    (0xC0A8_0000, 16), // 192.168/16 private
    (0xC612_0000, 15), // 198.18/15 benchmarking
    (0xC633_6400, 24), // 198.51.100/24 documentation
    (0xCB00_7100, 24), // 203.0.113/24 documentation
    (0xE000_0000, 4),  // 224/4 multicast
    (0xF000_0000, 4),  // 240/4 reserved
    (0xFFFF_FFFF, 32), // broadcast
];

/// IPv6 ranges that are not the public internet, or that wrap an IPv4 address the fetch would
/// reach instead: (network, prefix).
const V6_REFUSED: [(u128, u8); 13] = [
    (0, 96),                                         // ::/96 IPv4-compatible, with :: and ::1
    (0x0000_0000_0000_0000_0000_ffff_0000_0000, 96), // ::ffff:0:0/96 IPv4-mapped
    (0x0000_0000_0000_0000_ffff_0000_0000_0000, 96), // ::ffff:0:0:0/96 IPv4-translated
    (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96), // 64:ff9b::/96 NAT64
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // 64:ff9b:1::/48 local NAT64
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // 100::/64 discard
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 32), // 2001::/32 Teredo (wraps IPv4)
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // 2001:db8::/32 documentation
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16), // 2002::/16 6to4 (wraps IPv4)
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // fc00::/7 unique local
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // fe80::/10 link-local
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // fec0::/10 site-local
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // ff00::/8 multicast
];

fn v4_allowed(ip: Ipv4Addr, policy: Policy) -> bool {
    if policy.allow_loopback && ip.is_loopback() {
        return true;
    }
    let ip = u32::from(ip);
    !V4_REFUSED.iter().any(|&(net, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        ip & mask == net
    })
}

fn v6_allowed(ip: Ipv6Addr, policy: Policy) -> bool {
    // Only `::1` itself: an IPv4-mapped loopback stays refused even in tests, like every
    // mapped address.
    if policy.allow_loopback && ip == Ipv6Addr::LOCALHOST {
        return true;
    }
    let ip = u128::from(ip);
    !V6_REFUSED.iter().any(|&(net, len)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        ip & mask == net
    })
}

/// Suffixes of names that only mean something on a local network.
const LOCAL_SUFFIXES: [&str; 8] = [
    "local",
    "internal",
    "intranet",
    "lan",
    "home.arpa",
    "corp",
    "localdomain",
    "arpa",
];

fn name_allowed(name: &str, policy: Policy) -> bool {
    // `example.com.` is the same name as `example.com`.
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return policy.allow_loopback;
    }
    if !name.contains('.') {
        // A single label resolves through the local search domain, never to a public site.
        return false;
    }
    let local = LOCAL_SUFFIXES.iter().any(|suffix| {
        name.strip_suffix(suffix)
            .is_some_and(|rest| rest.is_empty() || rest.ends_with('.'))
    });
    // A name made only of numbers is an address in disguise; the parser turns most of them
    // into one, and this catches whatever it leaves as a name.
    let numeric = name.split('.').all(is_number_label);
    !local && !numeric
}

/// A decimal, octal or `0x` hex number, as IPv4 parsers read an address part.
fn is_number_label(label: &str) -> bool {
    match label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"))
    {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !label.is_empty() && label.bytes().all(|b| b.is_ascii_digit()),
    }
}
