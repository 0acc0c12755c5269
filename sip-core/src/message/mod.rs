//! SIP messages (RFC 3261 §7): parsing, typed header access and writing.
//!
//! A message keeps its headers in order with the peer's spelling; values are unfolded text
//! and typed views are parsed on demand (`Message::via()`, `cseq()` ...). Parsing validates
//! the structured headers up front, so a message that parses has well-formed Via, From, To,
//! Contact, CSeq, Call-ID and scalar headers, and the accessors only fail when a header is
//! absent. Writing reproduces start line, header names, values and body, so
//! `parse(write(m)) == m`.

mod headers;
mod params;
pub(crate) mod parse;
pub mod scan;
mod uri;
mod values;
mod write;

pub use headers::{Header, HeaderIter, HeaderKind, HeaderName, Headers};
pub use params::Params;
pub use parse::{
    parse_datagram, parse_stream, ParseError, ParseErrorKind, ParseLimits, StreamParse,
};
pub use uri::{AbsoluteUri, Host, SipUri, TelUri, Uri, UriError};
pub use values::{
    parse_delta_with_params, parse_max_forwards, parse_u32, validate_call_id, CSeq, Contact,
    HeaderError, Method, NameAddr, RAck, Via,
};

/// A SIP request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// Headers in order.
    pub headers: Headers,
    /// The body (may be binary).
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The status code, 100..=699.
    pub status: u16,
    /// The reason phrase as received (may be empty).
    pub reason: String,
    /// Headers in order.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

/// A request or a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// A header the caller needed was absent or could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingHeader {
    /// The header is not in the message.
    #[error("the message has no {0} header")]
    Absent(&'static str),
    /// The header is present but malformed (only for messages built in code; parsed
    /// messages were validated).
    #[error(transparent)]
    Invalid(#[from] HeaderError),
}

/// Typed access to the headers every message carries. Implemented by [`Request`],
/// [`Response`] and [`Message`].
pub trait SipMessage {
    /// The headers.
    fn headers(&self) -> &Headers;
    /// The headers, mutable.
    fn headers_mut(&mut self) -> &mut Headers;
    /// The body.
    fn body(&self) -> &[u8];

    /// Every Via value, top first.
    fn vias(&self) -> Result<Vec<Via>, MissingHeader> {
        let mut out = Vec::new();
        for v in self.headers().get_all(HeaderKind::Via) {
            out.extend(Via::parse_list(v)?);
        }
        if out.is_empty() {
            return Err(MissingHeader::Absent("Via"));
        }
        Ok(out)
    }

    /// The topmost Via.
    fn top_via(&self) -> Result<Via, MissingHeader> {
        let v = self
            .headers()
            .get(HeaderKind::Via)
            .ok_or(MissingHeader::Absent("Via"))?;
        let first = scan::split_list(v).next().unwrap_or("");
        Ok(Via::parse(first)?)
    }

    /// The From header.
    // Named after the header it reads, not a `From`-style conversion.
    #[allow(clippy::wrong_self_convention)]
    fn from_header(&self) -> Result<NameAddr, MissingHeader> {
        name_addr(self.headers(), HeaderKind::From, "From")
    }

    /// The To header.
    fn to_header(&self) -> Result<NameAddr, MissingHeader> {
        name_addr(self.headers(), HeaderKind::To, "To")
    }

    /// The Call-ID.
    fn call_id(&self) -> Result<&str, MissingHeader> {
        self.headers()
            .get(HeaderKind::CallId)
            .ok_or(MissingHeader::Absent("Call-ID"))
    }

    /// The CSeq.
    fn cseq(&self) -> Result<CSeq, MissingHeader> {
        let v = self
            .headers()
            .get(HeaderKind::CSeq)
            .ok_or(MissingHeader::Absent("CSeq"))?;
        Ok(CSeq::parse(v)?)
    }

    /// Every Contact value, in order.
    fn contacts(&self) -> Result<Vec<Contact>, MissingHeader> {
        let mut out = Vec::new();
        for v in self.headers().get_all(HeaderKind::Contact) {
            out.extend(Contact::parse_list(v)?);
        }
        Ok(out)
    }

    /// Every Record-Route value, in order.
    fn record_routes(&self) -> Result<Vec<NameAddr>, MissingHeader> {
        addr_list(self.headers(), HeaderKind::RecordRoute, "Record-Route")
    }

    /// Every Route value, in order.
    fn routes(&self) -> Result<Vec<NameAddr>, MissingHeader> {
        addr_list(self.headers(), HeaderKind::Route, "Route")
    }

    /// The Expires header, if present.
    fn expires(&self) -> Result<Option<u32>, MissingHeader> {
        self.headers()
            .get(HeaderKind::Expires)
            .map(|v| parse_u32("Expires", v))
            .transpose()
            .map_err(Into::into)
    }

    /// The Content-Type value, if present.
    fn content_type(&self) -> Option<&str> {
        self.headers().get(HeaderKind::ContentType)
    }

    /// True when an option tag is listed in Supported or Require (RFC 3261 §20.37, §20.32).
    fn has_option_tag(&self, kind: HeaderKind, tag: &str) -> bool {
        self.headers()
            .get_all(kind)
            .flat_map(scan::split_list)
            .any(|t| t.eq_ignore_ascii_case(tag))
    }
}

fn name_addr(h: &Headers, kind: HeaderKind, name: &'static str) -> Result<NameAddr, MissingHeader> {
    let v = h.get(kind).ok_or(MissingHeader::Absent(name))?;
    Ok(NameAddr::parse(name, v)?)
}

fn addr_list(
    h: &Headers,
    kind: HeaderKind,
    name: &'static str,
) -> Result<Vec<NameAddr>, MissingHeader> {
    let mut out = Vec::new();
    for v in h.get_all(kind) {
        out.extend(NameAddr::parse_list(name, v)?);
    }
    Ok(out)
}

impl SipMessage for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl SipMessage for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl SipMessage for Message {
    fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
    fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }
    fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }
}

impl Message {
    /// Parses one message from a UDP datagram (RFC 3261 §18.3), with default limits.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        parse_datagram(bytes, &ParseLimits::default())
    }

    /// The request, if this is one.
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            Message::Request(r) => Some(r),
            Message::Response(_) => None,
        }
    }

    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            Message::Response(r) => Some(r),
            Message::Request(_) => None,
        }
    }
}

impl Request {
    /// A request with no headers and an empty body.
    pub fn new(method: Method, uri: Uri) -> Self {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Sets the body with its Content-Type, and Content-Length to match.
    pub fn set_body(&mut self, content_type: &str, body: Vec<u8>) {
        set_body(&mut self.headers, &mut self.body, content_type, body);
    }
}

impl Response {
    /// A response with no headers and an empty body; the reason is the RFC 3261 §21 phrase.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            reason: reason_phrase(status).to_owned(),
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// Sets the body with its Content-Type, and Content-Length to match.
    pub fn set_body(&mut self, content_type: &str, body: Vec<u8>) {
        set_body(&mut self.headers, &mut self.body, content_type, body);
    }

    /// 1xx.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

fn set_body(headers: &mut Headers, slot: &mut Vec<u8>, content_type: &str, body: Vec<u8>) {
    if body.is_empty() {
        headers.remove(HeaderKind::ContentType);
    } else {
        headers.set(HeaderKind::ContentType, content_type);
    }
    headers.set(HeaderKind::ContentLength, body.len().to_string());
    *slot = body;
}

/// The reason phrase RFC 3261 §21 (and later RFCs) give a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}
