//! SIPp's message trace (`-trace_msg`), split into messages, and digest checks over it.
//!
//! SIPp writes each message as a block: a line of dashes with a timestamp, a line saying
//! `UDP message sent (N bytes):` or `UDP message received [N] bytes :`, a blank line, then the
//! message as it went on the wire.

use std::path::Path;

use md5::{Digest, Md5};

use super::HarnessError;

/// Which way a message went, from SIPp's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// SIPp sent it.
    Sent,
    /// SIPp received it.
    Received,
}

/// One SIP message from the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracedMessage {
    /// Which way it went.
    pub direction: Direction,
    /// The timestamp SIPp printed.
    pub time: String,
    /// The request or status line.
    pub start_line: String,
    /// Header fields in order, names as written.
    pub headers: Vec<(String, String)>,
    /// The body (possibly empty).
    pub body: String,
}

impl TracedMessage {
    /// The method of a request, `None` for a response.
    pub fn method(&self) -> Option<&str> {
        (!self.start_line.starts_with("SIP/2.0"))
            .then(|| self.start_line.split(' ').next())
            .flatten()
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&str> {
        self.method()
            .and_then(|_| self.start_line.split(' ').nth(1))
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.start_line
            .strip_prefix("SIP/2.0 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
    }

    /// The first header named `name` (case-insensitive; compact forms are not expanded).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the headers named `name`, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The method named in CSeq.
    pub fn cseq_method(&self) -> Option<&str> {
        self.header("CSeq")
            .and_then(|v| v.split_whitespace().nth(1))
    }

    /// [`TracedMessage::time`] as seconds since 1970 in the zone SIPp printed it in
    /// (`2026-12-01 17:29:32.954763`): differences between two messages are exact.
    pub fn seconds(&self) -> Option<f64> {
        let (date, clock) = self.time.trim().split_once(' ')?;
        let mut ymd = date.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
        let mut hms = clock.split(':');
        let (h, min) = (
            hms.next()?.parse::<i64>().ok()?,
            hms.next()?.parse::<i64>().ok()?,
        );
        let s: f64 = hms.next()?.parse().ok()?;
        // Days from the civil date (proleptic Gregorian; H. Hinnant's days_from_civil).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some((days * 86_400 + h * 3600 + min * 60) as f64 + s)
    }

    /// `INVITE` for requests, `200 INVITE` for responses: a ladder entry.
    pub fn label(&self) -> String {
        match (self.method(), self.status()) {
            (Some(m), _) => m.to_owned(),
            (None, Some(s)) => format!("{s} {}", self.cseq_method().unwrap_or("?")),
            (None, None) => self.start_line.clone(),
        }
    }
}

/// Reads and splits a SIPp message trace.
pub fn read(path: &Path) -> Result<Vec<TracedMessage>, HarnessError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HarnessError::Peer(format!("reading SIPp trace {}: {e}", path.display())))?;
    Ok(parse(&text))
}

/// Splits the text of a SIPp message trace.
pub fn parse(text: &str) -> Vec<TracedMessage> {
    let mut out = Vec::new();
    let mut blocks = text.split("\n-----------------------------------------------");
    // Text before the first separator (the file starts with one) carries no message.
    let first = blocks.next().unwrap_or_default();
    let rest = std::iter::once(first.trim_start_matches('-')).chain(blocks);
    for block in rest {
        let block = block.replace("\r\n", "\n");
        let mut lines = block.split('\n');
        let time = lines.next().unwrap_or_default().trim().to_owned();
        let what = lines.next().unwrap_or_default();
        let direction = if what.contains("message sent") {
            Direction::Sent
        } else if what.contains("message received") {
            Direction::Received
        } else {
            continue;
        };
        let message: Vec<&str> = lines.skip_while(|l| l.trim().is_empty()).collect();
        let Some((start, rest)) = message.split_first() else {
            continue;
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut body_lines = Vec::new();
        let mut in_body = false;
        for line in rest {
            if in_body {
                body_lines.push(*line);
            } else if line.is_empty() {
                in_body = true;
            } else if line.starts_with([' ', '\t']) {
                // RFC 3261 §7.3.1 line folding.
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        out.push(TracedMessage {
            direction,
            time,
            start_line: start.trim().to_owned(),
            headers,
            body: body_lines.join("\n").trim_end().to_owned(),
        });
    }
    out
}

/// The ladder of a trace, one label per message: `> INVITE`, `< 407 INVITE`, ...
/// (`>` = received by SIPp, `<` = sent by SIPp).
pub fn ladder(messages: &[TracedMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            let arrow = if m.direction == Direction::Received {
                ">"
            } else {
                "<"
            };
            format!("{arrow} {}", m.label())
        })
        .collect()
}

/// One parameter of a digest credentials or challenge value (`Digest a="x", b=y`).
pub fn digest_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let rest = value.trim_start().strip_prefix("Digest").unwrap_or(value);
    let mut s = rest;
    while !s.is_empty() {
        s = s.trim_start_matches([' ', ',', '\t']);
        let (key, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (val, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        if key.trim().eq_ignore_ascii_case(name) {
            return Some(val);
        }
        s = remaining;
    }
    None
}

fn md5_hex(input: &str) -> String {
    Md5::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether an `Authorization`/`Proxy-Authorization` value is a correct MD5 digest response
/// for `method` and `password` (RFC 2617 §3.2.2, with and without `qop=auth`). SIPp 3.6's
/// `verifyauth` reads only `Authorization`, so proxy credentials on INVITE are checked here.
pub fn digest_is_valid(credentials: &str, method: &str, password: &str) -> bool {
    let get = |name| digest_param(credentials, name).unwrap_or_default();
    let algorithm = get("algorithm");
    if !(algorithm.is_empty() || algorithm.eq_ignore_ascii_case("MD5")) {
        return false;
    }
    let ha1 = md5_hex(&format!("{}:{}:{password}", get("username"), get("realm")));
    let ha2 = md5_hex(&format!("{method}:{}", get("uri")));
    let expected = match get("qop") {
        "" => md5_hex(&format!("{ha1}:{}:{ha2}", get("nonce"))),
        qop => md5_hex(&format!(
            "{ha1}:{}:{}:{}:{qop}:{ha2}",
            get("nonce"),
            get("nc"),
            get("cnonce")
        )),
    };
    expected.eq_ignore_ascii_case(get("response"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str =
        "----------------------------------------------- 2026-12-01 17:29:32.954763\n\
UDP message sent (100 bytes):\n\
\n\
INVITE sip:1000@127.0.0.1:15060 SIP/2.0\n\
Via: SIP/2.0/UDP 127.0.0.1:15070;branch=z9hG4bK-1\n\
CSeq: 1 INVITE\n\
Content-Type: application/sdp\n\
\n\
v=0\n\
m=audio 16200 RTP/AVP 8\n\
\n\
----------------------------------------------- 2026-12-01 17:29:32.955329\n\
UDP message received [420] bytes :\n\
\n\
SIP/2.0 200 OK\n\
Record-Route: <sip:127.0.0.1:5060;lr>\n\
Record-Route: <sip:127.0.0.2;lr>\n\
CSeq: 1 INVITE\n\
\n\n";

    #[test]
    fn trace_splits_into_directed_messages() {
        let messages = parse(TRACE);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].direction, Direction::Sent);
        assert_eq!(messages[0].method(), Some("INVITE"));
        assert_eq!(messages[0].request_uri(), Some("sip:1000@127.0.0.1:15060"));
        assert_eq!(messages[0].body, "v=0\nm=audio 16200 RTP/AVP 8");
        assert_eq!(messages[1].direction, Direction::Received);
        assert_eq!(messages[1].status(), Some(200));
        assert_eq!(messages[1].headers_named("record-route").count(), 2);
        assert_eq!(ladder(&messages), ["< INVITE", "> 200 INVITE"]);
    }

    #[test]
    fn trace_times_are_seconds_since_1970() {
        let at = |time: &str| TracedMessage {
            direction: Direction::Sent,
            time: time.into(),
            start_line: String::new(),
            headers: Vec::new(),
            body: String::new(),
        };
        assert_eq!(at("1970-01-01 00:00:01.5").seconds(), Some(1.5));
        // 2026-12-01T17:29:32Z is 1796146172 (date -u -d @1796146172).
        let s = at("2026-12-01 17:29:32.954763").seconds().unwrap();
        assert!((s - 1_796_146_172.954763).abs() < 1e-6, "{s}");
        let midnight = at("2024-03-01 00:00:00.0").seconds().unwrap();
        let before = at("2024-02-29 23:59:59.0").seconds().unwrap();
        assert_eq!(midnight - before, 1.0, "across a leap day");
        assert_eq!(at("garbage").seconds(), None);
    }

    #[test]
    fn digest_params_are_read_quoted_and_bare() {
        let v = r#"Digest username="dialer",realm="carrier.test",nc=00000001,qop=auth,uri="sip:a""#;
        assert_eq!(digest_param(v, "username"), Some("dialer"));
        assert_eq!(digest_param(v, "nc"), Some("00000001"));
        assert_eq!(digest_param(v, "qop"), Some("auth"));
        assert_eq!(digest_param(v, "uri"), Some("sip:a"));
        assert_eq!(digest_param(v, "opaque"), None);
    }

    #[test]
    fn digest_check_accepts_the_right_password_only() {
        // Produced by SIPp 3.6.1's [authentication] for user "dialer", password "s3cret".
        let v = r#"Digest username="dialer",realm="carrier.test",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:15080",nonce="21178n1abc",response="e317ab3edc3e2a3eb69afe511e411b3f",algorithm=MD5"#;
        assert!(digest_is_valid(v, "REGISTER", "s3cret"));
        assert!(!digest_is_valid(v, "REGISTER", "wrong"));
        assert!(!digest_is_valid(v, "INVITE", "s3cret"));
    }

    #[test]
    fn digest_check_without_qop_uses_rfc2069_form() {
        // RFC 2617 §3.5's example credentials, recomputed for qop-less MD5.
        let ha1 = md5_hex("Mufasa:testrealm@host.com:Circle Of Life");
        let ha2 = md5_hex("GET:/dir/index.html");
        let response = md5_hex(&format!("{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}"));
        let v = format!(
            r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", response="{response}""#
        );
        assert!(digest_is_valid(&v, "GET", "Circle Of Life"));
    }

    #[test]
    fn rfc2617_example_response_is_reproduced() {
        // RFC 2617 §3.5: the worked example's response value.
        let v = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        assert!(digest_is_valid(v, "GET", "Circle Of Life"));
    }
}
