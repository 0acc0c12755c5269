//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), and other absolute URIs kept as text.
//!
//! The user part and parameters are kept as written (escapes included) so that a URI the
//! peer sent is echoed back byte for byte, as Contact and Request-URI handling requires
//! (RFC 3261 §12.1.2: the remote target is used exactly as received).

use super::params::{ParamSyntax, Params};
use super::scan::{check_escapes, class, is, is_unreserved};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a URI was rejected: the byte offset in the URI and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: expected {expected}")]
pub struct UriError {
    /// Byte offset of the fault inside the URI text.
    pub offset: usize,
    /// What the grammar expected at that point.
    pub expected: &'static str,
}

fn err<T>(offset: usize, expected: &'static str) -> Result<T, UriError> {
    Err(UriError { offset, expected })
}

/// A URI as found in a Request-URI or a name-addr.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other absolute URI (`http:`, `urn:`, `isbn:` ...), kept as text.
    Absolute(AbsoluteUri),
}

/// A host: a domain name or an IP address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A host name, as written.
    Domain(String),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address (written in brackets inside URIs, RFC 3261 §25.1 IPv6reference).
    Ipv6(Ipv6Addr),
}

impl Host {
    /// The IP address when the host is an address literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ipv4(a) => Some(IpAddr::V4(*a)),
            Host::Ipv6(a) => Some(IpAddr::V6(*a)),
            Host::Domain(_) => None,
        }
    }

    /// Parses `hostname / IPv4address / IPv6reference` (the whole string).
    pub fn parse(s: &str) -> Result<Host, UriError> {
        Ok(Self::scan(s)?.unwrap_or_else(|| Host::Domain(s.to_owned())))
    }

    /// Validates a host; an address literal is returned, a valid host name is `None`.
    pub(crate) fn scan(s: &str) -> Result<Option<Host>, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return err(s.len(), "']' closing the IPv6 reference");
            };
            return inner
                .parse::<Ipv6Addr>()
                .map(|a| Some(Host::Ipv6(a)))
                .or_else(|_| err(1, "an IPv6 address"));
        }
        if s.is_empty() {
            return err(0, "a host");
        }
        if let Some(a) = parse_ipv4(s.as_bytes()) {
            return Ok(Some(Host::Ipv4(a)));
        }
        if s.contains(':') {
            // An IPv6 address without the brackets RFC 3261 §25.1 asks for, as some phones
            // send it.
            return s
                .parse::<Ipv6Addr>()
                .map(|a| Some(Host::Ipv6(a)))
                .or_else(|_| err(0, "an IPv6 address in brackets"));
        }
        // hostname = *( domainlabel "." ) toplabel [ "." ]; '_' is accepted because
        // SRV-style and some vendors' host names carry it.
        if let Some(i) = s.bytes().position(|b| !is(b, class::HOST)) {
            return err(i, "a host name character");
        }
        Ok(None)
    }
}

/// Where a host written as a bare IPv6 address (no brackets, which RFC 3261 §25.1 requires
/// and some phones omit) ends in `s[start..]`: the whole run of hex digits, colons and dots
/// when it is an address, else the run without a trailing `:port`. `None` when the host is
/// not a bare IPv6 address.
pub(crate) fn bare_ipv6_end(s: &str, start: usize) -> Option<usize> {
    let rest = &s[start..];
    // Every IPv6 text form has a ':' among its first five characters; host names and IPv4
    // addresses are ruled out without scanning them.
    if !rest.as_bytes().iter().take(5).any(|&b| b == b':') {
        return None;
    }
    let run = rest
        .bytes()
        .position(|b| !(b.is_ascii_hexdigit() || b == b':' || b == b'.'))
        .unwrap_or(rest.len());
    let text = &rest[..run];
    if text.bytes().filter(|&b| b == b':').count() < 2 {
        return None;
    }
    if text.parse::<Ipv6Addr>().is_ok() {
        return Some(start + run);
    }
    let (host, port) = text.rsplit_once(':')?;
    (host.parse::<Ipv6Addr>().is_ok()
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit()))
    .then_some(start + host.len())
}

/// Dotted-quad IPv4 (RFC 3261 §25.1 IPv4address), without the generic address parser's
/// cost on every Via and URI host.
fn parse_ipv4(b: &[u8]) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    let mut value: u16 = 0;
    let mut digits = 0;
    for &c in b {
        match c {
            b'0'..=b'9' => {
                value = value * 10 + u16::from(c - b'0');
                digits += 1;
                if digits > 3 || value > 255 {
                    return None;
                }
            }
            b'.' if digits > 0 && n < 3 => {
                octets[n] = value as u8;
                n += 1;
                value = 0;
                digits = 0;
            }
            _ => return None,
        }
    }
    if n != 3 || digits == 0 {
        return None;
    }
    octets[3] = value as u8;
    Some(Ipv4Addr::from(octets))
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::Ipv4(a),
            IpAddr::V6(a) => Host::Ipv6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escapes kept as written.
    pub user: Option<String>,
    /// The password part (deprecated by RFC 3261 §19.1.1, kept when present).
    pub password: Option<String>,
    /// The host.
    pub host: Host,
    /// The port, when written.
    pub port: Option<u16>,
    /// `uri-parameters`.
    pub params: Params,
    /// `headers` after `?`, without the `?`, as written.
    pub headers: Option<String>,
}

impl SipUri {
    /// `sip:user@host[:port]` without parameters.
    pub fn new(user: Option<&str>, host: Host, port: Option<u16>) -> Self {
        SipUri {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Params::new(),
            headers: None,
        }
    }

    /// The `transport` parameter, lower-cased, if any.
    pub fn transport(&self) -> Option<String> {
        self.params
            .value("transport")
            .map(|t| t.to_ascii_lowercase())
    }

    /// True when the URI carries `lr` (a loose router, RFC 3261 §16.12.1).
    pub fn is_loose_router(&self) -> bool {
        self.params.contains("lr")
    }

    /// The port to use: the explicit one, else 5061 for sips and 5060 otherwise (§19.1.2).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(if self.secure { 5061 } else { 5060 })
    }

    /// Validates the part after `sip:`; the pieces borrow from `s`.
    fn scan_after_scheme(s: &str, base: usize) -> Result<SipParts<'_>, UriError> {
        let b = s.as_bytes();
        let (user, password, host_start) = match memchr::memchr(b'@', s.as_bytes()) {
            Some(at) => {
                let userinfo = &s[..at];
                let (u, p) = match memchr::memchr(b':', userinfo.as_bytes()) {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if u.is_empty() {
                    return err(base, "a user before '@'");
                }
                // user = 1*( unreserved / escaped / user-unreserved )
                if let Some(i) = u.bytes().position(|c| !is(c, class::USER)) {
                    return err(base + i, "a user-part character");
                }
                check_escapes(u.as_bytes())
                    .or_else(|i| err(base + i, "'%' followed by two hex digits"))?;
                if let Some(p) = p {
                    for (i, c) in p.bytes().enumerate() {
                        if !(is_unreserved(c)
                            || matches!(c, b'%' | b'&' | b'=' | b'+' | b'$' | b','))
                        {
                            return err(base + u.len() + 1 + i, "a password character");
                        }
                    }
                }
                (Some(u), p, at + 1)
            }
            None => (None, None, 0),
        };
        let mut i = host_start;
        let host_end = if b.get(i) == Some(&b'[') {
            match s[i..].find(']') {
                Some(close) => i + close + 1,
                None => return err(base + s.len(), "']' closing the IPv6 reference"),
            }
        } else if let Some(end) = bare_ipv6_end(s, i) {
            end
        } else {
            while i < b.len() && !matches!(b[i], b':' | b';' | b'?') {
                i += 1;
            }
            i
        };
        let host_text = &s[host_start..host_end];
        let host = Host::scan(host_text).map_err(|e| UriError {
            offset: base + host_start + e.offset,
            expected: e.expected,
        })?;
        i = host_end;
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return err(base + start, "a port number");
            }
            port = Some(
                s[start..i]
                    .parse::<u16>()
                    .or_else(|_| err(base + start, "a port number up to 65535"))?,
            );
        }
        let params_end = memchr::memchr(b'?', &s.as_bytes()[i..]).map_or(s.len(), |q| i + q);
        if i < params_end && b[i] != b';' {
            return err(base + i, "';', '?' or the end of the URI");
        }
        let params = &s[i..params_end];
        Params::check(params, ParamSyntax::Uri).map_err(|(o, e)| UriError {
            offset: base + i + o,
            expected: e,
        })?;
        let headers = if params_end < s.len() {
            let h = &s[params_end + 1..];
            for (k, c) in h.bytes().enumerate() {
                // hname/hvalue = hnv-unreserved / unreserved / escaped, joined by '=' and '&'
                if !(is_unreserved(c)
                    || matches!(
                        c,
                        b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'=' | b'&'
                    ))
                {
                    return err(base + params_end + 1 + k, "a URI header character");
                }
            }
            Some(h)
        } else {
            None
        };
        Ok(SipParts {
            user,
            password,
            host,
            host_text,
            port,
            params,
            headers,
        })
    }
}

/// A validated SIP URI whose text pieces borrow from the input.
struct SipParts<'a> {
    user: Option<&'a str>,
    password: Option<&'a str>,
    /// The host when it is an address literal; `None` for a host name (`host_text`).
    host: Option<Host>,
    host_text: &'a str,
    port: Option<u16>,
    params: &'a str,
    headers: Option<&'a str>,
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        f.write_str(self.params.as_str())?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// A `tel:` URI (RFC 3966).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelUri {
    /// The number as written: `+` and digits for a global number, with visual separators.
    pub number: String,
    /// Parameters such as `phone-context` and `ext`.
    pub params: Params,
}

impl TelUri {
    /// The number with visual separators (`-.()`) removed (RFC 3966 §5.1.1).
    pub fn digits(&self) -> String {
        self.number
            .chars()
            .filter(|c| !matches!(c, '-' | '.' | '(' | ')'))
            .collect()
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tel:{}{}", self.number, self.params)
    }
}

/// An absolute URI of a scheme this stack does not interpret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AbsoluteUri {
    /// The scheme, as written.
    pub scheme: String,
    /// Everything after the `:`.
    pub rest: String,
}

impl fmt::Display for AbsoluteUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.scheme, self.rest)
    }
}

enum UriParts<'a> {
    Sip(bool, SipParts<'a>),
    Tel(&'a str, &'a str),
    Absolute(&'a str, &'a str),
}

impl Uri {
    /// Parses a whole URI.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        Ok(match Self::scan(s)? {
            UriParts::Sip(secure, p) => Uri::Sip(SipUri {
                secure,
                user: p.user.map(str::to_owned),
                password: p.password.map(str::to_owned),
                host: p
                    .host
                    .unwrap_or_else(|| Host::Domain(p.host_text.to_owned())),
                port: p.port,
                params: Params::from_validated(p.params),
                headers: p.headers.map(str::to_owned),
            }),
            UriParts::Tel(number, params) => Uri::Tel(TelUri {
                number: number.to_owned(),
                params: Params::from_validated(params),
            }),
            UriParts::Absolute(scheme, rest) => Uri::Absolute(AbsoluteUri {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            }),
        })
    }

    /// Validates a whole URI without building it.
    pub(crate) fn check(s: &str) -> Result<(), UriError> {
        Self::scan(s).map(drop)
    }

    fn scan(s: &str) -> Result<UriParts<'_>, UriError> {
        let Some(colon) = memchr::memchr(b':', s.as_bytes()) else {
            return err(0, "a URI scheme followed by ':'");
        };
        let scheme = &s[..colon];
        let sb = scheme.as_bytes();
        // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3261 §25.1)
        if sb.is_empty()
            || !sb[0].is_ascii_alphabetic()
            || !sb
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return err(0, "a URI scheme");
        }
        let rest = &s[colon + 1..];
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            let secure = scheme.len() == 4;
            return SipUri::scan_after_scheme(rest, colon + 1).map(|p| UriParts::Sip(secure, p));
        }
        if scheme.eq_ignore_ascii_case("tel") {
            let end = memchr::memchr(b';', rest.as_bytes()).unwrap_or(rest.len());
            let number = &rest[..end];
            if number.is_empty() {
                return err(colon + 1, "a telephone number");
            }
            for (i, c) in number.bytes().enumerate() {
                if !(c.is_ascii_hexdigit()
                    || matches!(c, b'+' | b'*' | b'#' | b'-' | b'.' | b'(' | b')'))
                {
                    return err(colon + 1 + i, "a telephone number character");
                }
            }
            Params::check(&rest[end..], ParamSyntax::Uri).map_err(|(o, e)| UriError {
                offset: colon + 1 + end + o,
                expected: e,
            })?;
            return Ok(UriParts::Tel(number, &rest[end..]));
        }
        if rest.is_empty() {
            return err(colon + 1, "the rest of the URI after the scheme");
        }
        for (i, c) in rest.bytes().enumerate() {
            if c <= b' ' || matches!(c, b'<' | b'>' | b'"' | 0x7f) {
                return err(colon + 1 + i, "a URI character");
            }
        }
        Ok(UriParts::Absolute(scheme, rest))
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The user part of a SIP URI or the number of a tel URI.
    pub fn user(&self) -> Option<&str> {
        match self {
            Uri::Sip(u) => u.user.as_deref(),
            Uri::Tel(t) => Some(&t.number),
            Uri::Absolute(_) => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(t) => t.fmt(f),
            Uri::Absolute(a) => a.fmt(f),
        }
    }
}

impl std::str::FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn user_part_may_hold_reserved_characters_up_to_the_at_sign() {
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host, Host::Domain("example.com".into()));
    }

    #[test]
    fn dotted_quads_are_addresses_and_other_digit_strings_are_names() {
        assert_eq!(
            Host::parse("192.0.2.1").unwrap(),
            Host::Ipv4([192, 0, 2, 1].into())
        );
        assert_eq!(
            Host::parse("255.255.255.255")
                .unwrap()
                .ip()
                .unwrap()
                .to_string(),
            "255.255.255.255"
        );
        for name in [
            "192.0.2",
            "1.2.3.4.5",
            "256.1.1.1",
            "1..2.3",
            "1.2.3.",
            "0192.0.2.1",
        ] {
            assert!(matches!(Host::parse(name), Ok(Host::Domain(_))), "{name}");
        }
    }

    #[test]
    fn bare_ipv6_hosts_from_real_phones_parse_with_and_without_port() {
        let u = sip("sip:4321@fec0:0:0:0:216:d3ff:fe0d:22c:5060");
        assert_eq!(
            u.host,
            Host::Ipv6("fec0::216:d3ff:fe0d:22c".parse().unwrap())
        );
        assert_eq!(u.port, Some(5060));
        let u = sip("sip:9876@fe80:0:0:0:21a:a0ff:fe07:32e0");
        assert_eq!(
            u.host,
            Host::Ipv6("fe80::21a:a0ff:fe07:32e0".parse().unwrap())
        );
        assert_eq!(u.port, None);
        // Written back with the brackets, and that form reads the same.
        assert_eq!(Uri::parse(&u.to_string()).unwrap(), Uri::Sip(u));
    }

    #[test]
    fn ipv6_reference_with_port_and_params() {
        let u = sip("sip:[2001:db8::10]:5070;transport=TCP;lr");
        assert_eq!(u.host, Host::Ipv6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.is_loose_router());
        assert_eq!(u.to_string(), "sip:[2001:db8::10]:5070;transport=TCP;lr");
    }

    #[test]
    fn escapes_and_headers_are_kept_as_written() {
        let u =
            sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31?Route=%3Csip:x%3E");
        assert_eq!(u.user.as_deref(), Some("cal%6Cer"));
        assert_eq!(u.headers.as_deref(), Some("Route=%3Csip:x%3E"));
        assert_eq!(
            u.to_string(),
            "sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31?Route=%3Csip:x%3E"
        );
    }

    #[test]
    fn tel_and_unknown_schemes_parse() {
        match Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap() {
            Uri::Tel(t) => {
                assert_eq!(t.digits(), "+12015550123");
                assert_eq!(t.params.value("phone-context"), Some("example.com"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Uri::parse("isbn:2983792873"),
            Ok(Uri::Absolute(_))
        ));
        assert!(matches!(
            Uri::parse("soap.beep://192.0.2.103:3002"),
            Ok(Uri::Absolute(_))
        ));
    }

    #[test]
    fn malformed_uris_are_rejected_with_position() {
        assert!(Uri::parse("<sip:user@example.com>").is_err());
        assert!(Uri::parse("sip:user@exa mple.com").is_err());
        assert_eq!(
            Uri::parse("sip:u@h:99999").unwrap_err().expected,
            "a port number up to 65535"
        );
        assert!(Uri::parse("sip:@example.com").is_err());
        assert!(Uri::parse("sip:u@[::1").is_err());
        assert!(Uri::parse("sip:u%4@h").is_err());
    }
}
