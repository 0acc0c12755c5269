//! `dialer sip parse`: one SIP message's structure as JSON.
//!
//! The output keeps what the peer wrote (header names as spelled, raw values, parameters in
//! order) next to what the parser understood (canonical names, URIs broken into parts, numbers),
//! so a user can see exactly how a carrier's message was read:
//! ```json
//! {"type": "request", "method": "INVITE", "uri": {"text": "sip:bob@example.com", "scheme": "sip", ...},
//!  "version": "SIP/2.0", "call_id": "a84b4c76e66710",
//!  "headers": [{"name": "v", "canonical": "Via", "value": "SIP/2.0/UDP ...", "parsed": [...]}, ...],
//!  "body": {"length": 0}}
//! ```
//! A rejected message prints `{"error": "...", "line": L, "column": C}`.

use std::io::{self, Read};
use std::path::Path;

use serde_json::{json, Map, Value};
use sip_core::message::{
    parse_delta_with_params, parse_max_forwards, parse_u32, CSeq, Contact, HeaderKind, HeaderName,
    Message, NameAddr, Params, ParseError, RAck, SipMessage, Uri, Via,
};

use super::{Exit, Streams};

/// Reads the message from `file` (or standard input for `None` and `-`), prints its JSON and
/// returns [`Exit::Success`], or prints the error JSON (and a human line on the error stream)
/// and returns [`Exit::Rejected`].
pub(super) fn parse_command(file: Option<&Path>, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let (name, bytes) = match file {
        None => ("<stdin>".to_string(), read_all(streams.stdin)),
        Some(p) if p == Path::new("-") => ("<stdin>".to_string(), read_all(streams.stdin)),
        Some(p) => (p.display().to_string(), std::fs::read(p)),
    };
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            writeln!(streams.stderr, "{name}: cannot read: {e}")?;
            let out = json!({ "error": format!("cannot read {name}: {e}") });
            writeln!(streams.stdout, "{out:#}")?;
            return Ok(Exit::Rejected);
        }
    };
    match Message::parse(&bytes) {
        Ok(message) => {
            writeln!(streams.stdout, "{:#}", message_json(&message))?;
            Ok(Exit::Success)
        }
        Err(e) => {
            writeln!(
                streams.stderr,
                "{name}:{}:{}: {}",
                e.line,
                e.column,
                error_text(&e)
            )?;
            writeln!(streams.stdout, "{:#}", error_json(&e))?;
            Ok(Exit::Rejected)
        }
    }
}

fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.read_to_end(&mut v)?;
    Ok(v)
}

/// What was wrong, without the `line L, column C: ` prefix of [`ParseError`]'s Display.
pub fn error_text(e: &ParseError) -> String {
    let full = e.to_string();
    let prefix = format!("line {}, column {}: ", e.line, e.column);
    full.strip_prefix(&prefix).unwrap_or(&full).to_string()
}

/// `{"error": "...", "line": L, "column": C}`.
pub fn error_json(e: &ParseError) -> Value {
    json!({ "error": error_text(e), "line": e.line, "column": e.column })
}

/// The structure of a parsed message.
pub fn message_json(message: &Message) -> Value {
    let mut out = Map::new();
    match message {
        Message::Request(r) => {
            out.insert("type".into(), json!("request"));
            out.insert("method".into(), json!(r.method.as_str()));
            out.insert("uri".into(), uri_json(&r.uri));
        }
        Message::Response(r) => {
            out.insert("type".into(), json!("response"));
            out.insert("status".into(), json!(r.status));
            out.insert("reason".into(), json!(r.reason));
        }
    }
    out.insert("version".into(), json!("SIP/2.0"));
    out.insert(
        "call_id".into(),
        message.call_id().map_or(Value::Null, |c| json!(c)),
    );
    let headers: Vec<Value> = message
        .headers()
        .iter()
        .map(|h| header_json(h.name, h.value))
        .collect();
    out.insert("headers".into(), Value::Array(headers));
    let body = message.body();
    let mut b = Map::new();
    b.insert("length".into(), json!(body.len()));
    if !body.is_empty() {
        match std::str::from_utf8(body) {
            Ok(text) => {
                b.insert("text".into(), json!(text));
            }
            Err(_) => {
                b.insert("utf8".into(), json!(false));
            }
        }
    }
    out.insert("body".into(), Value::Object(b));
    Value::Object(out)
}

fn header_json(name: &HeaderName, value: &str) -> Value {
    let mut h = Map::new();
    h.insert("name".into(), json!(name.as_str()));
    h.insert(
        "canonical".into(),
        name.kind().canonical().map_or(Value::Null, |c| json!(c)),
    );
    h.insert("value".into(), json!(value));
    if let Some(parsed) = parsed_value(name.kind(), value) {
        h.insert("parsed".into(), parsed);
    }
    Value::Object(h)
}

/// The typed view of the headers the stack interprets; `None` for the others. A value that does
/// not parse (only possible for headers the message parser does not validate) gives
/// `{"error": ...}`.
fn parsed_value(kind: HeaderKind, value: &str) -> Option<Value> {
    fn or_error<T>(r: Result<T, impl std::fmt::Display>, f: impl FnOnce(T) -> Value) -> Value {
        match r {
            Ok(v) => f(v),
            Err(e) => json!({ "error": e.to_string() }),
        }
    }
    let list = |name: &'static str| {
        or_error(NameAddr::parse_list(name, value), |l| {
            Value::Array(l.iter().map(name_addr_json).collect())
        })
    };
    let single =
        |name: &'static str| or_error(NameAddr::parse(name, value), |a| name_addr_json(&a));
    let number = |name: &'static str| or_error(parse_u32(name, value), |n| json!(n));
    Some(match kind {
        HeaderKind::Via => or_error(Via::parse_list(value), |l| {
            Value::Array(l.iter().map(via_json).collect())
        }),
        HeaderKind::From => single("From"),
        HeaderKind::To => single("To"),
        HeaderKind::Contact => or_error(Contact::parse_list(value), |l| {
            Value::Array(
                l.iter()
                    .map(|c| match c {
                        Contact::Star => json!("*"),
                        Contact::Address(a) => name_addr_json(a),
                    })
                    .collect(),
            )
        }),
        HeaderKind::Route => list("Route"),
        HeaderKind::RecordRoute => list("Record-Route"),
        HeaderKind::PAssertedIdentity => list("P-Asserted-Identity"),
        HeaderKind::PPreferredIdentity => list("P-Preferred-Identity"),
        HeaderKind::ReplyTo => single("Reply-To"),
        HeaderKind::ReferTo => single("Refer-To"),
        HeaderKind::ReferredBy => single("Referred-By"),
        HeaderKind::CSeq => or_error(
            CSeq::parse(value),
            |c| json!({ "seq": c.seq, "method": c.method.as_str() }),
        ),
        HeaderKind::RAck => or_error(
            RAck::parse(value),
            |r| json!({ "rseq": r.rseq, "cseq": r.cseq, "method": r.method.as_str() }),
        ),
        HeaderKind::CallId => json!(value),
        HeaderKind::ContentLength => number("Content-Length"),
        HeaderKind::Expires => number("Expires"),
        HeaderKind::MinExpires => number("Min-Expires"),
        HeaderKind::RSeq => number("RSeq"),
        HeaderKind::MaxForwards => or_error(parse_max_forwards(value), |n| json!(n)),
        HeaderKind::SessionExpires | HeaderKind::MinSe => {
            let name = if kind == HeaderKind::MinSe {
                "Min-SE"
            } else {
                "Session-Expires"
            };
            or_error(
                parse_delta_with_params(name, value),
                |(n, p)| json!({ "delta_seconds": n, "params": params_json(&p) }),
            )
        }
        _ => return None,
    })
}

/// `{"display", "uri", "params", "tag"}` of a name-addr.
fn name_addr_json(a: &NameAddr) -> Value {
    json!({
        "display": a.display_name(),
        "uri": uri_json(&a.uri),
        "params": params_json(&a.params),
        "tag": a.tag(),
    })
}

fn via_json(v: &Via) -> Value {
    json!({
        "protocol": "SIP/2.0",
        "transport": v.transport,
        "host": v.host.to_string(),
        "port": v.port,
        "branch": v.branch(),
        "params": params_json(&v.params),
    })
}

/// A URI broken into scheme, user, password, host, port, parameters and headers.
pub fn uri_json(u: &Uri) -> Value {
    match u {
        Uri::Sip(s) => json!({
            "text": u.to_string(),
            "scheme": if s.secure { "sips" } else { "sip" },
            "user": s.user,
            "password": s.password,
            "host": s.host.to_string(),
            "port": s.port,
            "params": params_json(&s.params),
            "headers": s.headers,
        }),
        Uri::Tel(t) => json!({
            "text": u.to_string(),
            "scheme": "tel",
            "number": t.number,
            "params": params_json(&t.params),
        }),
        Uri::Absolute(a) => json!({
            "text": u.to_string(),
            "scheme": a.scheme,
            "rest": a.rest,
        }),
    }
}

/// Parameters in order as `[{"name": n, "value": v-or-null}]`.
fn params_json(p: &Params) -> Value {
    Value::Array(
        p.iter()
            .map(|(name, value)| json!({ "name": name, "value": value }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_has_headers_in_order_with_spelling_and_parsed_uri() {
        let raw = b"INVITE sip:bob@example.com:5070;transport=udp;lr SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\n\
From: \"Alice\" <sip:alice@example.com>;tag=a1\r\n\
t: <sip:bob@example.com>\r\n\
i: call-1@192.0.2.1\r\n\
CSeq: 7 INVITE\r\n\
Max-Forwards: 70\r\n\
X-Custom: keep me\r\n\
l: 0\r\n\r\n";
        let m = Message::parse(raw).expect("the test message is valid");
        let j = message_json(&m);
        assert_eq!(j["method"], "INVITE");
        assert_eq!(j["call_id"], "call-1@192.0.2.1");
        assert_eq!(j["uri"]["user"], "bob");
        assert_eq!(j["uri"]["port"], 5070);
        assert_eq!(j["uri"]["params"][0]["name"], "transport");
        assert_eq!(j["uri"]["params"][0]["value"], "udp");
        assert_eq!(j["uri"]["params"][1]["name"], "lr");
        assert_eq!(j["uri"]["params"][1]["value"], Value::Null);
        let h = j["headers"].as_array().expect("headers is an array");
        assert_eq!(h.len(), 8);
        assert_eq!(h[0]["name"], "v");
        assert_eq!(h[0]["canonical"], "Via");
        assert_eq!(h[0]["parsed"][0]["branch"], "z9hG4bK1");
        assert_eq!(h[1]["parsed"]["display"], "Alice");
        assert_eq!(h[1]["parsed"]["tag"], "a1");
        assert_eq!(h[4]["parsed"]["seq"], 7);
        assert_eq!(h[6]["canonical"], Value::Null);
        assert!(h[6].get("parsed").is_none());
        assert_eq!(h[7]["parsed"], 0);
        assert_eq!(j["body"]["length"], 0);
    }

    #[test]
    fn error_json_carries_line_and_column_without_repeating_them() {
        let e = Message::parse(b"INVITE sip:a@b SIP/2.0\r\nVia SIP/2.0/UDP x\r\n\r\n")
            .expect_err("a header line without a colon is rejected");
        let j = error_json(&e);
        assert_eq!(j["line"], e.line);
        assert_eq!(j["column"], e.column);
        assert!(!j["error"].as_str().unwrap_or("").starts_with("line "));
    }
}
