//! The message parser: start line, folded headers, validation, body framing.

use super::headers::{HeaderKind, HeaderName, Headers};
use super::scan::{is_token, is_wsp};
use super::uri::Uri;
use super::values::{self, CSeq, HeaderError, Method, NameAddr, RAck, Via};
use super::{Message, Request, Response};
use std::fmt;

/// Bounds that keep a hostile or broken peer from making the parser do unbounded work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// Largest whole message (start line, headers and body) in bytes.
    pub max_message_bytes: usize,
    /// Most header lines (after unfolding).
    pub max_headers: usize,
    /// Longest single header value (after unfolding) in bytes.
    pub max_header_bytes: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            // The largest UDP payload; a stream message larger than this is refused too.
            max_message_bytes: 65_535,
            max_headers: 256,
            max_header_bytes: 16_384,
        }
    }
}

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The message is larger than [`ParseLimits::max_message_bytes`].
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// More header lines than [`ParseLimits::max_headers`].
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// One header value is longer than [`ParseLimits::max_header_bytes`].
    HeaderTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// Nothing but line ends (a keep-alive, RFC 5626 §4.4.1).
    Empty,
    /// The request or status line is malformed; says what was expected.
    StartLine(&'static str),
    /// A SIP version other than 2.0 (a UAS answers 505, RFC 3261 §8.2.2.1... §21.5.6).
    UnsupportedVersion(String),
    /// A header line is malformed; says what was expected.
    HeaderLine(&'static str),
    /// A header value does not follow its grammar.
    HeaderValue(HeaderError),
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    CSeqMethodMismatch,
    /// Content-Length is inconsistent with the bytes present, or missing on a stream.
    ContentLength(&'static str),
}

/// A rejected message: what was wrong and where (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What was wrong.
    pub kind: ParseErrorKind,
    /// 1-based line of the fault.
    pub line: usize,
    /// 1-based column of the fault.
    pub column: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: ", self.line, self.column)?;
        match &self.kind {
            ParseErrorKind::TooLarge { limit } => write!(f, "message larger than {limit} bytes"),
            ParseErrorKind::TooManyHeaders { limit } => write!(f, "more than {limit} header lines"),
            ParseErrorKind::HeaderTooLong { limit } => {
                write!(f, "a header value longer than {limit} bytes")
            }
            ParseErrorKind::Empty => f.write_str("no message, only line ends"),
            ParseErrorKind::StartLine(e) => write!(f, "malformed start line: expected {e}"),
            ParseErrorKind::UnsupportedVersion(v) => write!(f, "unsupported SIP version {v:?}"),
            ParseErrorKind::HeaderLine(e) => write!(f, "malformed header line: expected {e}"),
            ParseErrorKind::HeaderValue(e) => write!(f, "{e}"),
            ParseErrorKind::CSeqMethodMismatch => {
                f.write_str("the CSeq method differs from the request method")
            }
            ParseErrorKind::ContentLength(e) => write!(f, "Content-Length {e}"),
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// The status a UAS answers a request with this fault (RFC 3261 §21.4.1, §21.5.6).
    pub fn response_status(&self) -> u16 {
        match self.kind {
            ParseErrorKind::UnsupportedVersion(_) => 505,
            ParseErrorKind::TooLarge { .. } => 513,
            _ => 400,
        }
    }
}

fn perr<T>(kind: ParseErrorKind, line: usize, column: usize) -> Result<T, ParseError> {
    Err(ParseError { kind, line, column })
}

/// Result of [`parse_stream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamParse {
    /// A whole message and how many bytes of the buffer it used.
    Message(Box<Message>, usize),
    /// Leading line ends (a keep-alive ping, RFC 5626 §3.5.1) of this many bytes; the caller
    /// skips them, and answers a double CRLF with a single one.
    KeepAlive(usize),
    /// More bytes are needed.
    Incomplete,
}

/// Parses the one message in a UDP datagram. A missing Content-Length means the body runs
/// to the end of the datagram, and octets past the Content-Length are ignored
/// (RFC 3261 §18.3).
pub fn parse_datagram(bytes: &[u8], limits: &ParseLimits) -> Result<Message, ParseError> {
    if bytes.len() > limits.max_message_bytes {
        return perr(
            ParseErrorKind::TooLarge {
                limit: limits.max_message_bytes,
            },
            1,
            1,
        );
    }
    match parse_inner(bytes, limits, false)? {
        Some((m, _)) => Ok(m),
        // Unreachable for datagrams: parse_inner only reports "incomplete" on streams.
        None => perr(
            ParseErrorKind::ContentLength("larger than the datagram"),
            1,
            1,
        ),
    }
}

/// Parses the next message from a stream buffer (TCP): Content-Length is mandatory
/// (RFC 3261 §18.3) and frames the body.
pub fn parse_stream(buf: &[u8], limits: &ParseLimits) -> Result<StreamParse, ParseError> {
    let lead = leading_line_ends(buf);
    if lead > 0 {
        return Ok(StreamParse::KeepAlive(lead));
    }
    match parse_inner(buf, limits, true)? {
        Some((m, used)) => Ok(StreamParse::Message(Box::new(m), used)),
        None => {
            if buf.len() > limits.max_message_bytes {
                return perr(
                    ParseErrorKind::TooLarge {
                        limit: limits.max_message_bytes,
                    },
                    1,
                    1,
                );
            }
            Ok(StreamParse::Incomplete)
        }
    }
}

/// The text of a header value `b` (a slice of `buf`): a slice of the pre-validated header
/// section `head` (which starts at `buf[lead]`) when there is one, else checked on its own.
fn value_text<'a>(
    head: Option<&'a str>,
    buf: &'a [u8],
    lead: usize,
    b: &'a [u8],
) -> std::borrow::Cow<'a, str> {
    if let Some(h) = head {
        // `b` lies inside `buf`; its offset is plain address arithmetic.
        let start = (b.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize + lead);
        if let Some(s) = h.get(start..start + b.len()) {
            return std::borrow::Cow::Borrowed(s);
        }
    }
    utf8(b)
}

/// Offset just past the CRLF of the last header line, when an empty line follows it.
fn header_section_end(b: &[u8]) -> Option<usize> {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));
    FINDER.find(b).map(|p| p + 2)
}

fn leading_line_ends(b: &[u8]) -> usize {
    b.iter().take_while(|&&c| c == b'\r' || c == b'\n').count()
}

struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its line end, and the offset where it started; `None` when no
    /// line end remains.
    fn next_line(&mut self) -> Option<(&'a [u8], usize)> {
        let start = self.pos;
        let nl = memchr::memchr(b'\n', &self.buf[start..])?;
        let mut end = start + nl;
        self.pos = end + 1;
        if end > start && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        Some((&self.buf[start..end], start))
    }
}

/// The text of `b`: borrowed when it is UTF-8 (the fast validator, not the lossy decoder's
/// byte-by-byte walk), with replacement characters otherwise.
fn utf8(b: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(b) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

fn text(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_owned(),
        // Header text is UTF-8 (RFC 3261 §25.1 TEXT-UTF8); bytes that are not are shown with
        // the replacement character rather than losing the whole message.
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

enum Start {
    Request(Method, Uri),
    Response(u16, String),
}

fn parse_start_line(line: &[u8]) -> Result<Start, ParseError> {
    let sl = ParseErrorKind::StartLine;
    let s = std::str::from_utf8(line).map_err(|e| ParseError {
        kind: sl("UTF-8 text"),
        line: 1,
        column: e.valid_up_to() + 1,
    })?;
    if s.as_bytes()
        .get(..4)
        .is_some_and(|b| b.eq_ignore_ascii_case(b"SIP/"))
    {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let (version, rest) = s.split_once(' ').unwrap_or((s, ""));
        check_version(version)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let col = version.len() + 2;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return perr(sl("a three-digit status code"), 1, col);
        }
        let status: u16 = code.parse().map_err(|_| ParseError {
            kind: sl("a three-digit status code"),
            line: 1,
            column: col,
        })?;
        if !(100..=699).contains(&status) {
            return perr(sl("a status code from 100 to 699"), 1, col);
        }
        return Ok(Start::Response(status, text(reason.as_bytes())));
    }
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF, single spaces only
    // (RFC 3261 §7.1, RFC 4475 §3.1.2.9 and §3.1.2.10).
    let mut parts = s.split(' ');
    let (Some(m), Some(u), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let col = s.find("  ").map_or(s.len(), |p| p + 2);
        return perr(
            sl("METHOD SP Request-URI SP SIP/2.0, separated by single spaces"),
            1,
            col,
        );
    };
    let method = Method::parse(m).ok_or(ParseError {
        kind: sl("a method token"),
        line: 1,
        column: 1,
    })?;
    if u.is_empty() {
        return perr(sl("a Request-URI"), 1, m.len() + 2);
    }
    let uri = Uri::parse(u).map_err(|e| ParseError {
        kind: sl(e.expected),
        line: 1,
        column: m.len() + 2 + e.offset,
    })?;
    if let Uri::Sip(su) = &uri {
        // RFC 3261 §19.1.1 Table 1: headers are not allowed in a Request-URI.
        if su.headers.is_some() {
            return perr(sl("a Request-URI without URI headers"), 1, m.len() + 2);
        }
    }
    check_version(v).map_err(|mut e| {
        e.column = m.len() + u.len() + 3;
        e
    })?;
    Ok(Start::Request(method, uri))
}

fn check_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if v.len() > 4 && v.as_bytes()[..4].eq_ignore_ascii_case(b"SIP/") {
        perr(ParseErrorKind::UnsupportedVersion(v.to_owned()), 1, 1)
    } else {
        perr(ParseErrorKind::StartLine("SIP/2.0"), 1, 1)
    }
}

/// Checks a header value against its grammar, for the headers whose structure the stack
/// relies on.
pub(crate) fn validate_value(kind: HeaderKind, v: &str) -> Result<(), HeaderError> {
    match kind {
        HeaderKind::Via => Via::check_list(v),
        HeaderKind::From => NameAddr::check("From", v),
        HeaderKind::To => NameAddr::check("To", v),
        HeaderKind::Contact if v.trim() == "*" => Ok(()),
        HeaderKind::Contact => NameAddr::check_list("Contact", v),
        HeaderKind::Route => NameAddr::check_list("Route", v),
        HeaderKind::RecordRoute => NameAddr::check_list("Record-Route", v),
        HeaderKind::CallId => values::validate_call_id(v),
        HeaderKind::CSeq => CSeq::parse(v).map(drop),
        HeaderKind::MaxForwards => values::parse_max_forwards(v).map(drop),
        HeaderKind::ContentLength => values::parse_u32("Content-Length", v).map(drop),
        HeaderKind::Expires => values::parse_u32("Expires", v).map(drop),
        HeaderKind::MinExpires => values::parse_u32("Min-Expires", v).map(drop),
        HeaderKind::RSeq => values::parse_u32("RSeq", v).map(drop),
        HeaderKind::RAck => RAck::parse(v).map(drop),
        HeaderKind::SessionExpires => {
            values::parse_delta_with_params("Session-Expires", v).map(drop)
        }
        HeaderKind::MinSe => values::parse_delta_with_params("Min-SE", v).map(drop),
        HeaderKind::Date => values::validate_date(v),
        HeaderKind::RetryAfter => values::validate_retry_after(v).map(drop),
        HeaderKind::Warning => values::validate_warning(v),
        _ => Ok(()),
    }
}

/// Returns the message and the bytes used, or `None` when a stream needs more bytes.
fn parse_inner(
    buf: &[u8],
    limits: &ParseLimits,
    stream: bool,
) -> Result<Option<(Message, usize)>, ParseError> {
    let lead = leading_line_ends(buf);
    if lead == buf.len() {
        if stream {
            return Ok(None);
        }
        return perr(ParseErrorKind::Empty, 1, 1);
    }
    // The header section validated as UTF-8 once, so that each value is a slice of it; when
    // it is not UTF-8 (or has no empty line), each value is checked on its own.
    let head = header_section_end(&buf[lead..])
        .and_then(|end| simdutf8::basic::from_utf8(&buf[lead..lead + end]).ok());
    let mut lines = Lines { buf, pos: lead };
    let Some((start_line, _)) = lines.next_line() else {
        if stream {
            return Ok(None);
        }
        return perr(
            ParseErrorKind::StartLine("a line end after the start line"),
            1,
            1,
        );
    };
    let start = parse_start_line(start_line)?;
    // One buffer for every header value: the datagram's size bounds them.
    let mut headers = Headers::with_capacities(24, buf.len().min(4096));
    let mut state = HeaderState::default();
    let mut line_no = 1;
    let body_start;
    loop {
        let Some((line, _off)) = lines.next_line() else {
            if stream {
                return Ok(None);
            }
            // A datagram whose headers end without the empty line: the body is empty.
            state.finish(&mut headers, limits)?;
            body_start = buf.len();
            break;
        };
        line_no += 1;
        if line.is_empty() {
            state.finish(&mut headers, limits)?;
            body_start = lines.pos;
            break;
        }
        if is_wsp(line[0]) {
            // RFC 3261 §7.3.1: a line starting with white space continues the previous
            // header; the fold is replaced by a single space.
            if state.current.is_none() {
                return perr(
                    ParseErrorKind::HeaderLine("a header name, not white space"),
                    line_no,
                    1,
                );
            }
            let cont = trim_wsp(line);
            if !cont.is_empty() {
                headers.extend_last(&value_text(head, buf, lead, cont));
            }
            if headers.last().map_or(0, |h| h.value.len()) > limits.max_header_bytes {
                return perr(
                    ParseErrorKind::HeaderTooLong {
                        limit: limits.max_header_bytes,
                    },
                    line_no,
                    1,
                );
            }
            continue;
        }
        state.finish(&mut headers, limits)?;
        let Some(colon) = memchr::memchr(b':', line) else {
            return perr(
                ParseErrorKind::HeaderLine("':' after the header name"),
                line_no,
                line.len() + 1,
            );
        };
        let name_bytes = trim_wsp_end(&line[..colon]);
        let name = std::str::from_utf8(name_bytes).unwrap_or("");
        if !is_token(name) {
            return perr(
                ParseErrorKind::HeaderLine("a header name token"),
                line_no,
                1,
            );
        }
        let raw_value = &line[colon + 1..];
        let lead_ws = raw_value.iter().take_while(|&&c| is_wsp(c)).count();
        // Header text is UTF-8 (RFC 3261 §25.1 TEXT-UTF8); bytes that are not are shown with
        // the replacement character rather than losing the whole message.
        let value = value_text(head, buf, lead, trim_wsp(raw_value));
        if value.len() > limits.max_header_bytes {
            return perr(
                ParseErrorKind::HeaderTooLong {
                    limit: limits.max_header_bytes,
                },
                line_no,
                colon + 2,
            );
        }
        if headers.len() >= limits.max_headers {
            return perr(
                ParseErrorKind::TooManyHeaders {
                    limit: limits.max_headers,
                },
                line_no,
                1,
            );
        }
        headers.push_parsed(HeaderName::parse(name), &value);
        state.current = Some((line_no, colon + 2 + lead_ws));
    }

    let HeaderState {
        content_length,
        cl_conflict,
        cseq_method,
        ..
    } = state;
    let available = buf.len() - body_start;
    let body_len = match content_length {
        Some(cl) if stream && cl_conflict => {
            let _ = cl;
            return perr(
                ParseErrorKind::ContentLength("has conflicting values on a stream"),
                line_no,
                1,
            );
        }
        Some(cl) => {
            if body_start + cl > limits.max_message_bytes {
                return perr(
                    ParseErrorKind::TooLarge {
                        limit: limits.max_message_bytes,
                    },
                    line_no,
                    1,
                );
            }
            if cl > available {
                if stream {
                    return Ok(None);
                }
                return perr(
                    ParseErrorKind::ContentLength("is larger than the datagram's body"),
                    line_no,
                    1,
                );
            }
            cl
        }
        None if stream => {
            return perr(
                ParseErrorKind::ContentLength(
                    "is missing; it is mandatory on a stream (RFC 3261 §18.3)",
                ),
                line_no,
                1,
            );
        }
        None => available,
    };
    let body = buf[body_start..body_start + body_len].to_vec();
    let used = body_start + body_len;
    let msg = match start {
        Start::Request(method, uri) => {
            if let Some((m, line)) = cseq_method {
                if m != method {
                    return perr(ParseErrorKind::CSeqMethodMismatch, line, 1);
                }
            }
            Message::Request(Request {
                method,
                uri,
                headers,
                body,
            })
        }
        Start::Response(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    };
    Ok(Some((msg, used)))
}

/// What the header loop knows beyond the headers themselves.
#[derive(Default)]
struct HeaderState {
    /// The last header line is pushed at once and validated when the next one starts (it
    /// may continue on folded lines): its line and the column where its value starts.
    current: Option<(usize, usize)>,
    /// The first Content-Length.
    content_length: Option<usize>,
    /// Another Content-Length disagreed with the first.
    cl_conflict: bool,
    /// The CSeq method and its line, to compare with the request method.
    cseq_method: Option<(Method, usize)>,
}

impl HeaderState {
    /// Validates the pending header line and records what framing needs from it.
    fn finish(&mut self, headers: &mut Headers, limits: &ParseLimits) -> Result<(), ParseError> {
        let HeaderState {
            current,
            content_length,
            cl_conflict,
            cseq_method,
        } = self;
        let Some((line, column)) = current.take() else {
            return Ok(());
        };
        let Some(last) = headers.last() else {
            return Ok(());
        };
        let (kind, value) = (last.name.kind(), last.value);
        validate_value(kind, value).map_err(|e| ParseError {
            column: column + e.offset,
            kind: ParseErrorKind::HeaderValue(e),
            line,
        })?;
        match kind {
            HeaderKind::ContentLength => {
                let n = value.trim().parse::<usize>().map_err(|_| ParseError {
                    kind: ParseErrorKind::ContentLength("is not a number"),
                    line,
                    column,
                })?;
                if n > limits.max_message_bytes {
                    return perr(
                        ParseErrorKind::TooLarge {
                            limit: limits.max_message_bytes,
                        },
                        line,
                        column,
                    );
                }
                match *content_length {
                    // Several Content-Length lines are accepted here (RFC 4475 §3.3.9 leaves the
                    // 400 to the UAS); the first one frames a datagram.
                    Some(prev) if prev != n => *cl_conflict = true,
                    Some(_) => {}
                    None => *content_length = Some(n),
                }
            }
            HeaderKind::CSeq if cseq_method.is_none() => {
                // Validated just above, so this parse succeeds.
                if let Ok(c) = CSeq::parse(value) {
                    *cseq_method = Some((c.method, line));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn trim_wsp(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|&c| !is_wsp(c)).unwrap_or(b.len());
    trim_wsp_end(&b[start..])
}

fn trim_wsp_end(b: &[u8]) -> &[u8] {
    let end = b.iter().rposition(|&c| !is_wsp(c)).map_or(0, |p| p + 1);
    &b[..end]
}
