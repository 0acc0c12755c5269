//! Addresses as the configuration writes them: `host[:port]`, CIDRs, port ranges, SIP URIs.
//!
//! Each parser returns the "expected ..." half of an error message, so the caller can put the
//! file position and key in front of it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The default SIP port for UDP and TCP (RFC 3261 §19.1.2).
pub const DEFAULT_SIP_PORT: u16 = 5060;

/// A host: a DNS name, an IPv4 or an IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, stored in lowercase (DNS names compare case-insensitively).
    Name(String),
    /// An IPv4 literal.
    Ipv4(Ipv4Addr),
    /// An IPv6 literal (written in brackets in SIP and in this file).
    Ipv6(Ipv6Addr),
}

impl Host {
    /// The address if the host is an IP literal; `None` for a name that needs DNS.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Name(_) => None,
            Host::Ipv4(a) => Some(IpAddr::V4(*a)),
            Host::Ipv6(a) => Some(IpAddr::V6(*a)),
        }
    }
}

impl fmt::Display for Host {
    /// As it is written in a SIP URI: IPv6 in brackets (RFC 3261 §25.1 `IPv6reference`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A host and a port; the port defaults to 5060 when the file leaves it out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Where.
    pub host: Host,
    /// Which port.
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

const HOSTPORT_EXPECTED: &str =
    "expected host[:port] with a DNS name, an IPv4 address or a bracketed IPv6 address, like \"sip.example.net:5060\" or \"[2001:db8::1]:5060\"";

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`.
pub(crate) fn parse_host_port(text: &str) -> Result<HostPort, String> {
    let bad = |why: &str| format!("{why} in {text:?}, {HOSTPORT_EXPECTED}");
    if text.is_empty() {
        return Err(format!("empty address, {HOSTPORT_EXPECTED}"));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(bad("missing ']'"));
        };
        let ip: Ipv6Addr = rest[..close]
            .parse()
            .map_err(|_| bad("invalid IPv6 address"))?;
        let after = &rest[close + 1..];
        let port = if after.is_empty() {
            None
        } else if let Some(p) = after.strip_prefix(':') {
            Some(p)
        } else {
            return Err(bad("unexpected text after ']'"));
        };
        (Host::Ipv6(ip), port)
    } else {
        if text.matches(':').count() > 1 {
            return Err(bad("an IPv6 address must be in brackets"));
        }
        let (h, p) = match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        };
        (parse_host_name_or_v4(h).map_err(|why| bad(&why))?, p)
    };
    let port = match port {
        None => DEFAULT_SIP_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(bad("invalid port (1-65535)")),
        },
    };
    Ok(HostPort { host, port })
}

/// True when `text` (as [`parse_host_port`] takes it) names a port.
pub(crate) fn names_port(text: &str) -> bool {
    match text.strip_prefix('[') {
        Some(rest) => rest
            .find(']')
            .is_some_and(|i| rest[i + 1..].starts_with(':')),
        None => text.contains(':'),
    }
}

/// Parses a host without a port: a DNS name, IPv4, or `[v6]`.
pub(crate) fn parse_host(text: &str) -> Result<Host, String> {
    const EXPECTED: &str =
        "expected a DNS name, an IPv4 address or a bracketed IPv6 address, without a port";
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner
            .parse()
            .map(Host::Ipv6)
            .map_err(|_| format!("invalid IPv6 address in {text:?}, {EXPECTED}"));
    }
    if text.contains(':') {
        return Err(format!("unexpected ':' in {text:?}, {EXPECTED}"));
    }
    parse_host_name_or_v4(text).map_err(|why| format!("{why} in {text:?}, {EXPECTED}"))
}

/// A DNS name (RFC 1123 §2.1 labels) or a dotted IPv4 literal.
fn parse_host_name_or_v4(text: &str) -> Result<Host, String> {
    if text.is_empty() {
        return Err("empty host".into());
    }
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Ok(Host::Ipv4(v4));
    }
    if text.len() > 253 {
        return Err("host name longer than 253 characters".into());
    }
    for label in text.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err("invalid host name".into());
        }
    }
    // A name whose last label is all digits is a mistyped IPv4 address, not a DNS name
    // (RFC 1123 §2.1 keeps the top-level label alphabetic for this reason).
    let last = text.rsplit('.').next().unwrap_or(text);
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid IPv4 address".into());
    }
    Ok(Host::Name(text.to_ascii_lowercase()))
}

/// Parses a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare address (one host: /32 or /128).
/// Host bits below the prefix must be zero, since `10.0.0.5/8` is almost always a typo.
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, String> {
    const EXPECTED: &str =
        "expected a CIDR like \"192.168.1.0/24\" or \"2001:db8::/32\", or a single address";
    if !text.contains('/') {
        return text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| format!("invalid address {text:?}, {EXPECTED}"));
    }
    let net: IpNet = text
        .parse()
        .map_err(|_| format!("invalid CIDR {text:?}, {EXPECTED}"))?;
    if net.trunc() != net {
        return Err(format!(
            "CIDR {text:?} has host bits set, expected the network address \"{}\"",
            net.trunc()
        ));
    }
    Ok(net)
}

/// An inclusive UDP port range for RTP. Each call leg takes an even RTP port and the odd port
/// above it for RTCP (RFC 3550 §11), so a range holds at least one such pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port, even.
    pub first: u16,
    /// Last port, at least `first + 1`.
    pub last: u16,
}

impl PortRange {
    /// How many RTP/RTCP pairs fit: the number of media streams the dialer can hold open at once.
    pub fn pairs(&self) -> u32 {
        let ports = u32::from(self.last) - u32::from(self.first) + 1;
        ports / 2
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Parses `"20000-29999"`.
pub(crate) fn parse_port_range(text: &str) -> Result<PortRange, String> {
    const EXPECTED: &str =
        "expected \"FIRST-LAST\" with an even FIRST, FIRST < LAST, ports 1024-65535, like \"20000-29999\"";
    let Some((a, b)) = text.split_once('-') else {
        return Err(format!("invalid port range {text:?}, {EXPECTED}"));
    };
    let (Ok(first), Ok(last)) = (a.trim().parse::<u16>(), b.trim().parse::<u16>()) else {
        return Err(format!("invalid port range {text:?}, {EXPECTED}"));
    };
    if first < 1024 {
        return Err(format!("port range {text:?} starts below 1024, {EXPECTED}"));
    }
    if last <= first {
        return Err(format!(
            "port range {text:?} is empty (it needs at least one RTP/RTCP pair), {EXPECTED}"
        ));
    }
    if first % 2 != 0 {
        return Err(format!(
            "port range {text:?} starts on an odd port; RTP uses even ports (RFC 3550 §11), {EXPECTED}"
        ));
    }
    Ok(PortRange { first, last })
}

/// A fixed contact for an agent that does not REGISTER: `sip:[user@]host[:port][;params]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticContact {
    /// The URI as written.
    pub uri: String,
    /// The user part, if any.
    pub user: Option<String>,
    /// Where INVITEs for the agent go (port defaults to 5060).
    pub target: HostPort,
}

/// Parses a `sip:` URI far enough to know where to send requests (RFC 3261 §19.1.1).
pub(crate) fn parse_static_contact(text: &str) -> Result<StaticContact, String> {
    const EXPECTED: &str = "expected a SIP URI like \"sip:1000@10.0.0.5:5060\"";
    let Some(rest) = text
        .get(..4)
        .filter(|s| s.eq_ignore_ascii_case("sip:"))
        .map(|_| &text[4..])
    else {
        return Err(format!(
            "{text:?} is not a sip: URI (sips: is not supported), {EXPECTED}"
        ));
    };
    let end = rest.find([';', '?']).unwrap_or(rest.len());
    let userinfo_host = &rest[..end];
    let (user, hostport) = match userinfo_host.rsplit_once('@') {
        Some((u, h)) => {
            if u.is_empty() {
                return Err(format!("empty user part in {text:?}, {EXPECTED}"));
            }
            (Some(u.to_string()), h)
        }
        None => (None, userinfo_host),
    };
    let target = parse_host_port(hostport).map_err(|e| format!("{e}; {EXPECTED}"))?;
    Ok(StaticContact {
        uri: text.to_string(),
        user,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_accepts_name_ipv4_and_bracketed_ipv6_with_default_port() {
        let hp = parse_host_port("SIP.Example.net").unwrap();
        assert_eq!(
            hp,
            HostPort {
                host: Host::Name("sip.example.net".into()),
                port: 5060
            }
        );
        let hp = parse_host_port("192.0.2.1:5080").unwrap();
        assert_eq!(hp.to_string(), "192.0.2.1:5080");
        let hp = parse_host_port("[2001:db8::1]").unwrap();
        assert_eq!(hp.to_string(), "[2001:db8::1]:5060");
        let hp = parse_host_port("[2001:db8::1]:5062").unwrap();
        assert_eq!(hp.port, 5062);
    }

    #[test]
    fn host_port_rejects_unbracketed_ipv6_bad_ports_and_bad_names() {
        assert!(parse_host_port("2001:db8::1")
            .unwrap_err()
            .contains("must be in brackets"));
        assert!(parse_host_port("host:0")
            .unwrap_err()
            .contains("invalid port"));
        assert!(parse_host_port("host:70000")
            .unwrap_err()
            .contains("invalid port"));
        assert!(parse_host_port("host:")
            .unwrap_err()
            .contains("invalid port"));
        assert!(parse_host_port("300.1.1.1")
            .unwrap_err()
            .contains("invalid IPv4"));
        assert!(parse_host_port("bad_name.net")
            .unwrap_err()
            .contains("invalid host name"));
        assert!(parse_host_port("-a.net")
            .unwrap_err()
            .contains("invalid host name"));
        assert!(parse_host_port("[::1").unwrap_err().contains("missing ']'"));
        assert!(parse_host_port("").unwrap_err().contains("empty"));
    }

    #[test]
    fn cidr_accepts_networks_and_single_hosts_and_rejects_host_bits() {
        assert_eq!(parse_cidr("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("10.0.0.5").unwrap().to_string(), "10.0.0.5/32");
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        let e = parse_cidr("10.0.0.5/8").unwrap_err();
        assert!(
            e.contains("host bits") && e.contains("\"10.0.0.0/8\""),
            "{e}"
        );
        assert!(parse_cidr("10.0.0.0/33")
            .unwrap_err()
            .contains("invalid CIDR"));
        assert!(parse_cidr("ten").unwrap_err().contains("invalid address"));
    }

    #[test]
    fn port_range_needs_even_start_and_one_pair() {
        let r = parse_port_range("20000-29999").unwrap();
        assert_eq!(r.pairs(), 5000);
        assert!(r.contains(20000) && r.contains(29999) && !r.contains(30000));
        assert_eq!(parse_port_range("20000-20001").unwrap().pairs(), 1);
        assert!(parse_port_range("20000-20000")
            .unwrap_err()
            .contains("empty"));
        assert!(parse_port_range("30000-20000")
            .unwrap_err()
            .contains("empty"));
        assert!(parse_port_range("20001-29999").unwrap_err().contains("odd"));
        assert!(parse_port_range("100-200")
            .unwrap_err()
            .contains("below 1024"));
        assert!(parse_port_range("20000")
            .unwrap_err()
            .contains("invalid port range"));
        assert!(parse_port_range("a-b")
            .unwrap_err()
            .contains("invalid port range"));
    }

    #[test]
    fn static_contact_takes_user_host_and_port() {
        let c = parse_static_contact("sip:1000@10.0.0.5:5070;transport=udp").unwrap();
        assert_eq!(c.user.as_deref(), Some("1000"));
        assert_eq!(c.target.to_string(), "10.0.0.5:5070");
        let c = parse_static_contact("SIP:phone.lan").unwrap();
        assert_eq!((c.user, c.target.port), (None, 5060));
        assert!(parse_static_contact("sips:1000@x").is_err());
        assert!(parse_static_contact("tel:+1555").is_err());
        assert!(parse_static_contact("sip:@x").is_err());
    }
}
