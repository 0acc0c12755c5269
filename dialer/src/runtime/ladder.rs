//! The SIP ladder as engineers read it: time, direction, peer, method or status, CSeq.
//!
//! Every piece of text in a line comes from a peer (a reason phrase, an extension method),
//! so it is made printable before it reaches a terminal or an event: ANSI/VT escape
//! sequences (CSI, OSC, two-character escapes), other control characters (C0, DEL, C1) and
//! bidirectional-override characters are removed, and a reason phrase is cut to
//! [`MAX_REASON`] characters.

use crate::control::LadderLine;
use sip_core::message::{Message, SipMessage};
use sip_core::transaction::Transport;
use std::net::SocketAddr;

/// A ladder line for a message we sent (`out`) or received (`in`) over `transport`; `None`
/// for bytes that are not SIP (keep-alives).
pub fn line(
    t: f64,
    out: bool,
    transport: Transport,
    peer: SocketAddr,
    bytes: &[u8],
) -> Option<LadderLine> {
    let m = Message::parse(bytes).ok()?;
    let what = match &m {
        Message::Request(r) => printable(&r.method.to_string(), MAX_REASON),
        Message::Response(r) => format!("{} {}", r.status, printable(&r.reason, MAX_REASON)),
    };
    let cseq = m
        .cseq()
        .map(|c| printable(&c.to_string(), MAX_REASON))
        .unwrap_or_default();
    Some(LadderLine {
        t,
        dir: if out { "out" } else { "in" }.into(),
        peer,
        transport: transport.via_token().to_ascii_lowercase(),
        what,
        cseq,
        call: None,
    })
}

/// One printed line: `  12.345  -> 192.0.2.1:5060      INVITE            (1 INVITE)`, in
/// colour on a terminal (requests cyan, 1xx yellow, 2xx green, failures red). A peer reached
/// over another transport than UDP is written `tcp:192.0.2.1:5060`.
pub fn format(l: &LadderLine, colour: bool) -> String {
    let arrow = if l.dir == "out" { "->" } else { "<-" };
    let peer = match l.transport.as_str() {
        "" | "udp" => l.peer.to_string(),
        other => format!("{}:{}", printable(other, 8), l.peer),
    };
    // A line may have been built elsewhere (an event read back): clean it again.
    let text = format!(
        "{:>9.3}  {arrow} {:<22} {:<28} ({})",
        l.t,
        peer,
        printable(&l.what, MAX_REASON + 4),
        printable(&l.cseq, MAX_REASON)
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

/// Longest peer text (reason phrase, method) kept in a line, in characters.
pub const MAX_REASON: usize = 80;

/// `text` without terminal escape sequences, control characters or bidirectional
/// overrides, at most `max` characters (a cut is marked with `…`). Tabs and line breaks
/// become spaces.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    let mut count = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let keep = match c {
            '\u{1b}' => {
                match chars.next() {
                    // CSI: parameters and intermediates up to a final byte 0x40-0x7E.
                    Some('[') => {
                        for c in chars.by_ref() {
                            if ('\u{40}'..='\u{7e}').contains(&c) {
                                break;
                            }
                        }
                    }
                    // OSC, DCS, SOS, PM, APC: a string up to BEL or ST (ESC \\).
                    Some(']' | 'P' | 'X' | '^' | '_') => {
                        while let Some(c) = chars.next() {
                            if c == '\u{7}' || c == '\u{9c}' {
                                break;
                            }
                            if c == '\u{1b}' && chars.peek() == Some(&'\\') {
                                chars.next();
                                break;
                            }
                        }
                    }
                    // A two-character escape (ESC c, ESC 7 ...): both go.
                    _ => {}
                }
                None
            }
            // C1 CSI (U+009B) opens a sequence as ESC [ does.
            '\u{9b}' => {
                for c in chars.by_ref() {
                    if ('\u{40}'..='\u{7e}').contains(&c) {
                        break;
                    }
                }
                None
            }
            '\t' | '\r' | '\n' => Some(' '),
            c if c.is_control() => None,
            // Bidirectional embeddings, overrides and isolates (Trojan Source, CVE-2021-42574).
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => None,
            c => Some(c),
        };
        if let Some(c) = keep {
            if count == max {
                out.push('…');
                break;
            }
            out.push(c);
            count += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_are_labelled_with_cseq() {
        let invite = b"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 3 INVITE\r\nContent-Length: 0\r\n\r\n";
        let l = line(
            1.5,
            true,
            Transport::Udp,
            "192.0.2.1:5060".parse().unwrap(),
            invite,
        )
        .unwrap();
        assert_eq!(l.what, "INVITE");
        assert_eq!(l.cseq, "3 INVITE");
        let s = format(&l, false);
        assert!(
            s.contains("-> 192.0.2.1:5060") && s.contains("(3 INVITE)"),
            "{s}"
        );
        assert!(line(
            0.0,
            false,
            Transport::Udp,
            "192.0.2.1:5060".parse().unwrap(),
            b"\r\n\r\n"
        )
        .is_none());
    }

    #[test]
    fn a_peers_reason_phrase_cannot_reach_the_terminal_as_escapes_or_controls() {
        let reply = "SIP/2.0 486 Busy\x1b[2J\x1b]0;owned\x07 Here\x1b[31m\x7f\u{9b}1m\u{202e}x\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: c\r\nCSeq: 3 INVITE\r\nContent-Length: 0\r\n\r\n";
        let l = line(
            1.0,
            false,
            Transport::Udp,
            "192.0.2.1:5060".parse().unwrap(),
            reply.as_bytes(),
        )
        .expect("a reason phrase may hold any UTF-8 and control bytes");
        assert_eq!(l.what, "486 Busy Herex");
        for colour in [false, true] {
            let s = format(&l, colour);
            let escapes = s.matches('\x1b').count();
            assert_eq!(escapes, if colour { 2 } else { 0 }, "{s:?}");
            assert!(!s.chars().any(|c| c.is_control() && c != '\x1b'), "{s:?}");
        }
    }

    #[test]
    fn printable_text_is_cut_and_line_breaks_become_spaces() {
        assert_eq!(printable("a\tb\nc", 80), "a b c");
        assert_eq!(
            printable(&"x".repeat(200), 80),
            format!("{}…", "x".repeat(80))
        );
        assert_eq!(printable("Ringing", 80), "Ringing");
        assert_eq!(printable("Occupé \u{1b}c", 80), "Occupé ");
        // A line built elsewhere is cleaned when printed.
        let l = LadderLine {
            t: 0.0,
            dir: "in".into(),
            peer: "192.0.2.1:5060".parse().unwrap(),
            transport: "udp".into(),
            what: "603 \x1b[8mDecline".into(),
            cseq: "1 INVITE\x1b]2;t\x1b\\".into(),
            call: None,
        };
        let s = format(&l, false);
        assert!(
            s.contains("603 Decline") && s.contains("(1 INVITE)"),
            "{s:?}"
        );
    }
}

#[cfg(test)]
mod transport_tests {
    use super::*;

    #[test]
    fn a_tcp_peer_is_written_with_its_transport() {
        let bytes = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let peer = "192.0.2.1:5060".parse().unwrap();
        let tcp = line(1.0, true, Transport::Tcp, peer, bytes).unwrap();
        assert_eq!(tcp.transport, "tcp");
        assert!(format(&tcp, false).contains("-> tcp:192.0.2.1:5060"));
        let udp = line(1.0, true, Transport::Udp, peer, bytes).unwrap();
        assert!(format(&udp, false).contains("-> 192.0.2.1:5060 "));
    }
}
