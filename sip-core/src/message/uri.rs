//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), and other absolute URIs kept as text.
//!
//! The user part and parameters are kept as written (escapes included) so that a URI the
//! peer sent is echoed back byte for byte, as Contact and Request-URI handling requires
//! (RFC 3261 §12.1.2: the remote target is used exactly as received).

use super::params::{ParamSyntax, Params};
use super::scan::{check_escapes, is_unreserved};
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
        if let Some(inner) = s.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                return err(s.len(), "']' closing the IPv6 reference");
            };
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::Ipv6)
                .or_else(|_| err(1, "an IPv6 address"));
        }
        if s.is_empty() {
            return err(0, "a host");
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            if let Ok(a) = s.parse::<Ipv4Addr>() {
                return Ok(Host::Ipv4(a));
            }
        }
        // hostname = *( domainlabel "." ) toplabel [ "." ]; '_' is accepted because
        // SRV-style and some vendors' host names carry it.
        for (i, b) in s.bytes().enumerate() {
            if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
                return err(i, "a host name character");
            }
        }
        Ok(Host::Domain(s.to_owned()))
    }
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

    fn parse_after_scheme(secure: bool, s: &str, base: usize) -> Result<SipUri, UriError> {
        let b = s.as_bytes();
        let (user, password, host_start) = match s.find('@') {
            Some(at) => {
                let userinfo = &s[..at];
                let (u, p) = match userinfo.find(':') {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if u.is_empty() {
                    return err(base, "a user before '@'");
                }
                for (i, c) in u.bytes().enumerate() {
                    // user = 1*( unreserved / escaped / user-unreserved ); '#' is accepted
                    // because equipment sends it unescaped in dialled digits.
                    if !(is_unreserved(c)
                        || matches!(
                            c,
                            b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' | b'#'
                        ))
                    {
                        return err(base + i, "a user-part character");
                    }
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
                (Some(u.to_owned()), p.map(str::to_owned), at + 1)
            }
            None => (None, None, 0),
        };
        let mut i = host_start;
        let host_end = if b.get(i) == Some(&b'[') {
            match s[i..].find(']') {
                Some(close) => i + close + 1,
                None => return err(base + s.len(), "']' closing the IPv6 reference"),
            }
        } else {
            while i < b.len() && !matches!(b[i], b':' | b';' | b'?') {
                i += 1;
            }
            i
        };
        let host = Host::parse(&s[host_start..host_end]).map_err(|e| UriError {
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
        let params_end = s[i..].find('?').map_or(s.len(), |q| i + q);
        if i < params_end && b[i] != b';' {
            return err(base + i, "';', '?' or the end of the URI");
        }
        let params =
            Params::parse(&s[i..params_end], ParamSyntax::Uri).map_err(|(o, e)| UriError {
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
            Some(h.to_owned())
        } else {
            None
        };
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
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

impl Uri {
    /// Parses a whole URI.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let Some(colon) = s.find(':') else {
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
            return SipUri::parse_after_scheme(secure, rest, colon + 1).map(Uri::Sip);
        }
        if scheme.eq_ignore_ascii_case("tel") {
            let end = rest.find(';').unwrap_or(rest.len());
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
            let params =
                Params::parse(&rest[end..], ParamSyntax::Uri).map_err(|(o, e)| UriError {
                    offset: colon + 1 + end + o,
                    expected: e,
                })?;
            return Ok(Uri::Tel(TelUri {
                number: number.to_owned(),
                params,
            }));
        }
        if rest.is_empty() {
            return err(colon + 1, "the rest of the URI after the scheme");
        }
        for (i, c) in rest.bytes().enumerate() {
            if c <= b' ' || matches!(c, b'<' | b'>' | b'"' | 0x7f) {
                return err(colon + 1 + i, "a URI character");
            }
        }
        Ok(Uri::Absolute(AbsoluteUri {
            scheme: scheme.to_owned(),
            rest: rest.to_owned(),
        }))
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
