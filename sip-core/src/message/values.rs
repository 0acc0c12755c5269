//! Typed header values: methods, name-addr, Via, CSeq, RAck and the scalar headers.

use super::params::{ParamSyntax, Params};
use super::scan::{is_token, is_token_char, is_word_char, is_wsp, quoted_string_end, unquote};
use super::uri::{Host, Uri};
use std::fmt;

/// Why a header value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header}: at offset {offset}: expected {expected}")]
pub struct HeaderError {
    /// The header's canonical name.
    pub header: &'static str,
    /// Byte offset inside the (unfolded) value.
    pub offset: usize,
    /// What the grammar expected there.
    pub expected: &'static str,
}

pub(crate) fn herr<T>(
    header: &'static str,
    offset: usize,
    expected: &'static str,
) -> Result<T, HeaderError> {
    Err(HeaderError {
        header,
        offset,
        expected,
    })
}

/// A SIP method (RFC 3261 §7.1 and extensions). Methods are case-sensitive.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// REGISTER
    Register,
    /// OPTIONS
    Options,
    /// INFO (RFC 6086)
    Info,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// REFER (RFC 3515)
    Refer,
    /// MESSAGE (RFC 3428)
    Message,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Any other token.
    Extension(String),
}

impl Method {
    /// Parses a method token.
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other if is_token(other) => Method::Extension(other.to_owned()),
            _ => return None,
        })
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route,
/// Record-Route, P-Asserted-Identity, Reply-To, Refer-To.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (quotes kept for a quoted string).
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters after the URI (`tag`, `expires`, `+sip.instance` ...).
    pub params: Params,
}

impl NameAddr {
    /// `<uri>` with no display name and no parameters.
    pub fn new(uri: Uri) -> Self {
        NameAddr {
            display: None,
            uri,
            params: Params::new(),
        }
    }

    /// The display name with quotes and escapes resolved.
    pub fn display_name(&self) -> Option<String> {
        self.display.as_deref().map(|d| {
            if d.starts_with('"') {
                unquote(d)
            } else {
                d.to_owned()
            }
        })
    }

    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    /// Parses one element of the header (after a list split).
    pub fn parse(header: &'static str, s: &str) -> Result<NameAddr, HeaderError> {
        let (display, uri_text, uri_offset, params) = Self::scan(header, s)?;
        let uri = Uri::parse(uri_text).map_err(|e| HeaderError {
            header,
            offset: uri_offset + e.offset,
            expected: e.expected,
        })?;
        Ok(NameAddr {
            display: display.map(str::to_owned),
            uri,
            params: Params::from_validated(params),
        })
    }

    /// Validates one element without building it.
    pub(crate) fn check(header: &'static str, s: &str) -> Result<(), HeaderError> {
        Self::scan(header, s).map(drop)
    }

    /// Validates one element; returns the display name, the URI text and its offset, and
    /// the parameter text, borrowed from `s`.
    fn scan<'a>(
        header: &'static str,
        s: &'a str,
    ) -> Result<(Option<&'a str>, &'a str, usize, &'a str), HeaderError> {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && is_wsp(b[i]) {
            i += 1;
        }
        let display_start = i;
        let mut display_end = i;
        let angle_open;
        if i < b.len() && b[i] == b'"' {
            let end = quoted_string_end(b, i).ok_or(HeaderError {
                header,
                offset: i,
                expected: "a closing '\"' for the display name",
            })?;
            display_end = end;
            i = end;
            while i < b.len() && is_wsp(b[i]) {
                i += 1;
            }
            if i >= b.len() || b[i] != b'<' {
                return herr(header, i, "'<' after the quoted display name");
            }
            angle_open = Some(i);
        } else {
            // A token display name ends at '<'; a ';' or '"' before any '<' means an
            // addr-spec whose parameters may quote a '<' (`+sip.instance="<urn:...>"`).
            let limit = memchr::memchr2(b';', b'"', b).unwrap_or(b.len());
            angle_open = memchr::memchr(b'<', &b[..limit]);
            if let Some(lt) = angle_open {
                // display-name = *(token LWS) (RFC 3261 §25.1)
                for (k, &c) in b[display_start..lt].iter().enumerate() {
                    if !(is_token_char(c) || is_wsp(c)) {
                        return herr(
                            header,
                            display_start + k,
                            "a token or quoted string as display name",
                        );
                    }
                }
                display_end = lt;
            }
        }
        let (uri, after) = match angle_open {
            Some(lt) => {
                let close = memchr::memchr(b'>', &s.as_bytes()[lt..])
                    .map(|c| lt + c)
                    .ok_or(HeaderError {
                        header,
                        offset: lt,
                        expected: "'>' closing the URI",
                    })?;
                let inner = &s[lt + 1..close];
                // LAQUOT addr-spec RAQUOT: no white space inside the brackets (§25.1).
                if inner.starts_with([' ', '\t']) || inner.ends_with([' ', '\t']) {
                    return herr(header, lt + 1, "no white space inside '<' '>'");
                }
                Uri::check(inner).map_err(|e| HeaderError {
                    header,
                    offset: lt + 1 + e.offset,
                    expected: e.expected,
                })?;
                ((inner, lt + 1), close + 1)
            }
            None => {
                // addr-spec: the URI ends at the first ';' after the host, at white space or
                // the end; URIs with ';', ',' or '?' MUST use angle brackets (RFC 3261 §20).
                let start = i;
                let host_search =
                    memchr::memchr(b'@', &s.as_bytes()[start..]).map_or(start, |a| start + a);
                let end = s[host_search..]
                    .find([';', ' ', '\t'])
                    .map_or(s.len(), |e| host_search + e);
                let text = &s[start..end];
                if let Some(q) = memchr::memchr(b'?', text.as_bytes()) {
                    return herr(
                        header,
                        start + q,
                        "angle brackets around a URI with headers",
                    );
                }
                Uri::check(text).map_err(|e| HeaderError {
                    header,
                    offset: start + e.offset,
                    expected: e.expected,
                })?;
                ((text, start), end)
            }
        };
        let params = &s[after..];
        Params::check(params, ParamSyntax::Header).map_err(|(o, e)| HeaderError {
            header,
            offset: after + o,
            expected: e,
        })?;
        let display = s[display_start..display_end].trim_end();
        let (uri_text, uri_offset) = uri;
        Ok((
            (!display.is_empty()).then_some(display),
            uri_text,
            uri_offset,
            params,
        ))
    }

    /// Validates every element of a comma-separated header value.
    pub(crate) fn check_list(header: &'static str, value: &str) -> Result<(), HeaderError> {
        let mut n = 0;
        for item in super::scan::split_list(value) {
            if item.is_empty() {
                return herr(header, 0, "a URI, not an empty list element");
            }
            Self::check(header, item)?;
            n += 1;
        }
        if n == 0 {
            return herr(header, 0, "a URI");
        }
        Ok(())
    }

    /// Parses every element of a comma-separated header value.
    pub fn parse_list(header: &'static str, value: &str) -> Result<Vec<NameAddr>, HeaderError> {
        let mut out = Vec::new();
        for item in super::scan::split_list(value) {
            if item.is_empty() {
                return herr(header, 0, "a URI, not an empty list element");
            }
            out.push(NameAddr::parse(header, item)?);
        }
        if out.is_empty() {
            return herr(header, 0, "a URI");
        }
        Ok(out)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Contact value: `*` (only in REGISTER, RFC 3261 §10.2.2) or an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact {
    /// `Contact: *`
    Star,
    /// An address with parameters such as `expires`, `q`, `+sip.instance`.
    Address(NameAddr),
}

impl Contact {
    /// Parses every element of a Contact header value.
    pub fn parse_list(value: &str) -> Result<Vec<Contact>, HeaderError> {
        if value.trim() == "*" {
            return Ok(vec![Contact::Star]);
        }
        Ok(NameAddr::parse_list("Contact", value)?
            .into_iter()
            .map(Contact::Address)
            .collect())
    }

    /// The address, unless this is `*`.
    pub fn address(&self) -> Option<&NameAddr> {
        match self {
            Contact::Star => None,
            Contact::Address(a) => Some(a),
        }
    }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    /// The transport token, as written (`UDP`, `TCP`, `TLS`, `WS` ...).
    pub transport: String,
    /// The sent-by host.
    pub host: Host,
    /// The sent-by port.
    pub port: Option<u16>,
    /// Via parameters (`branch`, `received`, `rport`, `maddr`, `ttl` ...).
    pub params: Params,
}

impl Via {
    /// A Via for a request we send: `SIP/2.0/<transport> host[:port];branch=..;rport`.
    pub fn new(transport: &str, host: Host, port: Option<u16>, branch: &str) -> Via {
        let mut params = Params::new();
        params.set("branch", Some(branch));
        // RFC 3581 §3: ask for the source port in the response.
        params.set("rport", None);
        Via {
            transport: transport.to_owned(),
            host,
            port,
            params,
        }
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// The `received` parameter (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// The `rport` parameter: `Some(None)` when present without a value (RFC 3581).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// Parses one Via element.
    pub fn parse(s: &str) -> Result<Via, HeaderError> {
        let (transport, host, host_text, port, params) = Self::scan(s)?;
        Ok(Via {
            transport: transport.to_owned(),
            host: host.unwrap_or_else(|| Host::Domain(host_text.to_owned())),
            port,
            params: Params::from_validated(params),
        })
    }

    /// Validates every element of a Via header value without building them.
    pub(crate) fn check_list(value: &str) -> Result<(), HeaderError> {
        let mut n = 0;
        for item in super::scan::split_list(value) {
            if item.is_empty() {
                return herr("Via", 0, "a Via value, not an empty list element");
            }
            Self::scan(item)?;
            n += 1;
        }
        if n == 0 {
            return herr("Via", 0, "a Via value");
        }
        Ok(())
    }

    /// Validates one element; returns transport, host (address literal or `None` for a
    /// name), host text, port and parameter text, borrowed from `s`.
    #[allow(clippy::type_complexity)]
    fn scan(s: &str) -> Result<(&str, Option<Host>, &str, Option<u16>, &str), HeaderError> {
        const H: &str = "Via";
        let b = s.as_bytes();
        let mut i = 0;
        // sent-protocol = protocol-name SLASH protocol-version SLASH transport,
        // SLASH = SWS "/" SWS (RFC 3261 §25.1)
        let mut parts: [&str; 3] = [""; 3];
        for (n, part) in parts.iter_mut().enumerate() {
            i = skip(b, i);
            let start = i;
            while i < b.len() && is_token_char(b[i]) {
                i += 1;
            }
            if i == start {
                return herr(H, i, "a sent-protocol token");
            }
            *part = &s[start..i];
            if n < 2 {
                i = skip(b, i);
                if i >= b.len() || b[i] != b'/' {
                    return herr(H, i, "'/' in the sent-protocol");
                }
                i += 1;
            }
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" {
            return herr(H, 0, "SIP/2.0 as the sent-protocol");
        }
        let lws_start = i;
        i = skip(b, i);
        if i == lws_start {
            return herr(H, i, "white space before the sent-by");
        }
        let host_start = i;
        if b.get(i) == Some(&b'[') {
            i = s[i..].find(']').map(|c| i + c + 1).ok_or(HeaderError {
                header: H,
                offset: i,
                expected: "']' closing the IPv6 reference",
            })?;
        } else if let Some(end) = super::uri::bare_ipv6_end(s, i) {
            i = end;
        } else {
            while i < b.len() && !matches!(b[i], b':' | b';' | b' ' | b'\t') {
                i += 1;
            }
        }
        let host_text = &s[host_start..i];
        let host = Host::scan(host_text).map_err(|e| HeaderError {
            header: H,
            offset: host_start + e.offset,
            expected: e.expected,
        })?;
        let mut j = skip(b, i);
        let mut port = None;
        if b.get(j) == Some(&b':') {
            j = skip(b, j + 1);
            let ps = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            port = Some(
                s[ps..j]
                    .parse::<u16>()
                    .or_else(|_| herr(H, ps, "a port number"))?,
            );
            i = j;
        }
        Params::check(&s[i..], ParamSyntax::Header).map_err(|(o, e)| HeaderError {
            header: H,
            offset: i + o,
            expected: e,
        })?;
        Ok((parts[2], host, host_text, port, &s[i..]))
    }

    /// Parses every element of a Via header value.
    pub fn parse_list(value: &str) -> Result<Vec<Via>, HeaderError> {
        let mut out = Vec::with_capacity(1);
        for item in super::scan::split_list(value) {
            if item.is_empty() {
                return herr("Via", 0, "a Via value, not an empty list element");
            }
            out.push(Via::parse(item)?);
        }
        if out.is_empty() {
            return herr("Via", 0, "a Via value");
        }
        Ok(out)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        f.write_str(self.params.as_str())
    }
}

fn skip(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_wsp(b[i]) {
        i += 1;
    }
    i
}

/// The CSeq header (RFC 3261 §20.16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number (a 32-bit unsigned integer, §8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &str) -> Result<CSeq, HeaderError> {
        let (seq, rest) = leading_u32("CSeq", s)?;
        let rest_trim = rest.trim_start_matches([' ', '\t']);
        if rest_trim.len() == rest.len() {
            return herr(
                "CSeq",
                s.len() - rest.len(),
                "white space between number and method",
            );
        }
        let m = rest_trim.trim_end();
        let method = Method::parse(m).ok_or(HeaderError {
            header: "CSeq",
            offset: s.len() - rest_trim.len(),
            expected: "a method token",
        })?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// The RAck header of a PRACK (RFC 3262 §7.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RAck {
    /// The RSeq of the provisional response being acknowledged.
    pub rseq: u32,
    /// The CSeq number of the INVITE.
    pub cseq: u32,
    /// The CSeq method of the INVITE.
    pub method: Method,
}

impl RAck {
    /// Parses `response-num LWS CSeq-num LWS Method`.
    pub fn parse(s: &str) -> Result<RAck, HeaderError> {
        let (rseq, rest) = leading_u32("RAck", s.trim_start())?;
        let c = CSeq::parse(rest.trim_start()).map_err(|e| HeaderError {
            header: "RAck",
            ..e
        })?;
        Ok(RAck {
            rseq,
            cseq: c.seq,
            method: c.method,
        })
    }
}

impl fmt::Display for RAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.rseq, self.cseq, self.method)
    }
}

/// Leading `1*DIGIT` as a u32; values beyond u32 are rejected (RFC 4475 §3.1.2.4).
fn leading_u32<'a>(header: &'static str, s: &'a str) -> Result<(u32, &'a str), HeaderError> {
    let s = s.trim_start_matches([' ', '\t']);
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    if end == 0 {
        return herr(header, 0, "a number");
    }
    let n = s[..end]
        .parse::<u32>()
        .or_else(|_| herr(header, 0, "a number below 2^32"))?;
    Ok((n, &s[end..]))
}

/// A header that is a whole `1*DIGIT` (Content-Length, Expires, Min-Expires, RSeq, Min-SE).
pub fn parse_u32(header: &'static str, s: &str) -> Result<u32, HeaderError> {
    let s = s.trim();
    if s.starts_with('-') {
        return herr(header, 0, "a non-negative number");
    }
    let (n, rest) = leading_u32(header, s)?;
    if !rest.is_empty() {
        return herr(header, s.len() - rest.len(), "only digits");
    }
    Ok(n)
}

/// Max-Forwards: `1*DIGIT` in 0..=255 (RFC 3261 §20.22, RFC 4475 §3.1.2.4).
pub fn parse_max_forwards(s: &str) -> Result<u8, HeaderError> {
    let n = parse_u32("Max-Forwards", s)?;
    u8::try_from(n).or_else(|_| herr("Max-Forwards", 0, "a number from 0 to 255"))
}

/// Session-Expires / Min-SE: `delta-seconds *(;param)` (RFC 4028 §4, §5).
pub fn parse_delta_with_params(
    header: &'static str,
    s: &str,
) -> Result<(u32, Params), HeaderError> {
    let (n, rest) = leading_u32(header, s.trim_start())?;
    let params = Params::parse(rest, ParamSyntax::Header).map_err(|(o, e)| HeaderError {
        header,
        offset: s.len() - rest.len() + o,
        expected: e,
    })?;
    Ok((n, params))
}

/// Call-ID: `word [ "@" word ]` (RFC 3261 §25.1).
pub fn validate_call_id(s: &str) -> Result<(), HeaderError> {
    let mut parts = s.splitn(2, '@');
    for part in parts.by_ref() {
        if part.is_empty() {
            return herr("Call-ID", 0, "a word (and optionally @word)");
        }
        if let Some(p) = part.bytes().position(|b| !is_word_char(b)) {
            return herr("Call-ID", p, "a Call-ID word character");
        }
    }
    if s.matches('@').count() > 1 {
        return herr("Call-ID", 0, "at most one '@'");
    }
    Ok(())
}

/// Date: `rfc1123-date`, which is always GMT (RFC 3261 §20.17).
pub fn validate_date(s: &str) -> Result<(), HeaderError> {
    const H: &str = "Date";
    // wkday "," SP 2DIGIT SP month SP 4DIGIT SP 2DIGIT ":" 2DIGIT ":" 2DIGIT SP "GMT"
    let f: Vec<&str> = s.split(' ').collect();
    let wk = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let digits = |x: &str, n: usize| x.len() == n && x.bytes().all(|b| b.is_ascii_digit());
    if f.len() != 6 || !wk.contains(&f[0]) {
        return herr(
            H,
            0,
            "an RFC 1123 date such as 'Sat, 13 Nov 2010 23:29:00 GMT'",
        );
    }
    if !digits(f[1], 2) || !months.contains(&f[2]) || !digits(f[3], 4) {
        return herr(H, f[0].len() + 1, "day month year");
    }
    let t: Vec<&str> = f[4].split(':').collect();
    if t.len() != 3 || !t.iter().all(|x| digits(x, 2)) {
        return herr(H, s.len() - f[4].len() - f[5].len() - 1, "hh:mm:ss");
    }
    if f[5] != "GMT" {
        return herr(H, s.len() - f[5].len(), "the time zone GMT");
    }
    Ok(())
}

/// Retry-After: `delta-seconds [ comment ] *( SEMI retry-param )` (RFC 3261 §20.33).
pub fn validate_retry_after(s: &str) -> Result<u32, HeaderError> {
    let (n, _) = leading_u32("Retry-After", s.trim_start())?;
    Ok(n)
}

/// Warning: each value is `warn-code SP warn-agent SP warn-text` with a 3-digit code
/// (RFC 3261 §20.43).
pub fn validate_warning(s: &str) -> Result<(), HeaderError> {
    for item in super::scan::split_list(s) {
        let code = item.split(' ').next().unwrap_or("");
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return herr("Warning", 0, "a three-digit warn-code");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_white_space_everywhere_parses() {
        let v = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let list =
            Via::parse_list("SIP  / 2.0  / TCP     spindle.example.com   ; branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239")
                .unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(list[1].host, Host::Ipv4("192.168.255.111".parse().unwrap()));
    }

    #[test]
    fn via_with_bare_ipv6_sent_by_and_port() {
        let v =
            Via::parse("SIP/2.0/UDP fe80:0:0:0:21a:a0ff:fe07:32e0:5060;branch=z9hG4bKkdjuw8376")
                .unwrap();
        assert_eq!(
            v.host,
            Host::Ipv6("fe80::21a:a0ff:fe07:32e0".parse().unwrap())
        );
        assert_eq!(v.port, Some(5060));
    }

    #[test]
    fn via_rport_and_received() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKx;rport=40000;received=203.0.113.5",
        )
        .unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(Some(40000)));
        assert_eq!(v.received(), Some("203.0.113.5"));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(
            "To",
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display_name().as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(a.tag(), Some("98asjd8"));
        let b = NameAddr::parse("From", "caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(b.display.as_deref(), Some("caller"));
        let c = NameAddr::parse("From", "sip:caller@example.net;tag=134161461246").unwrap();
        assert_eq!(c.tag(), Some("134161461246"));
        assert_eq!(c.uri.to_string(), "sip:caller@example.net");
        let d = NameAddr::parse("Contact", r#"<sip:1000@10.0.0.2:5060;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";expires=3600"#).unwrap();
        assert_eq!(
            d.params.value("+sip.instance"),
            Some("<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>")
        );
        assert_eq!(d.params.value("expires"), Some("3600"));
    }

    #[test]
    fn name_addr_rejections() {
        assert!(NameAddr::parse("To", r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse("To", "Watson, Thomas <sip:t.watson@example.org>").is_err());
        assert!(NameAddr::parse("To", r#""Watson" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse(
            "Contact",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
        )
        .is_err());
        assert!(NameAddr::parse("Contact", r#""Joe" <sip:joe@example.org>;;;;"#).is_err());
    }

    #[test]
    fn scalars() {
        assert_eq!(CSeq::parse("0009\tINVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(parse_max_forwards("300").is_err());
        assert_eq!(parse_max_forwards("0068").unwrap(), 68);
        assert!(parse_u32("Content-Length", "-999").is_err());
        assert!(validate_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
        assert!(validate_date("Sat, 13 Nov 2010 23:29:00 GMT").is_ok());
        assert!(validate_warning("1812 overture \"In Progress\"").is_err());
        assert!(validate_call_id("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(validate_call_id("a b").is_err());
        assert_eq!(RAck::parse("776656 1 INVITE").unwrap().rseq, 776656);
    }
}
