//! The SIP ladder as engineers read it: time, direction, peer, method or status, CSeq.

use crate::control::LadderLine;
use sip_core::message::{Message, SipMessage};
use std::net::SocketAddr;

/// A ladder line for a message we sent (`out`) or received (`in`); `None` for bytes that
/// are not SIP (keep-alives).
pub fn line(t: f64, out: bool, peer: SocketAddr, bytes: &[u8]) -> Option<LadderLine> {
    let m = Message::parse(bytes).ok()?;
    let what = match &m {
        Message::Request(r) => r.method.to_string(),
        Message::Response(r) => format!("{} {}", r.status, r.reason),
    };
    let cseq = m.cseq().map(|c| c.to_string()).unwrap_or_default();
    Some(LadderLine {
        t,
        dir: if out { "out" } else { "in" }.into(),
        peer,
        what,
        cseq,
        call: None,
    })
}

/// One printed line: `  12.345  -> 192.0.2.1:5060      INVITE            (1 INVITE)`, in
/// colour on a terminal (requests cyan, 1xx yellow, 2xx green, failures red).
pub fn format(l: &LadderLine, colour: bool) -> String {
    let arrow = if l.dir == "out" { "->" } else { "<-" };
    let text = format!(
        "{:>9.3}  {arrow} {:<22} {:<28} ({})",
        l.t,
        l.peer.to_string(),
        l.what,
        l.cseq
    );
    if !colour {
        return text;
    }
    let code = match l.what.as_bytes().first() {
        Some(b'1') => "33",
        Some(b'2') => "32",
        Some(b'3'..=b'6') => "31",
        _ => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_labelled_with_cseq() {
        let invite = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 3 INVITE\r\nContent-Length: 0\r\n\r\n";
        let l = line(1.5, true, "192.0.2.1:5060".parse().unwrap(), invite).unwrap();
        assert_eq!(l.what, "INVITE");
        assert_eq!(l.cseq, "3 INVITE");
        let s = format(&l, false);
        assert!(
            s.contains("-> 192.0.2.1:5060") && s.contains("(3 INVITE)"),
            "{s}"
        );
        assert!(line(0.0, false, "192.0.2.1:5060".parse().unwrap(), b"\r\n\r\n").is_none());
    }
}
