//! The digest header parsers (RFC 7616 §3.3, §3.4; RFC 7235 §4.1 lists) on arbitrary text:
//! never panic. A challenge or credentials value that parses is written out with
//! `to_header_value` and must parse back to the same value, since that is what we send
//! (a challenge's uninterpreted `other` parameters excepted: the writer documents that it writes
//! only the RFC 7616 §3.3 parameters it knows).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::auth::{parse_challenge, parse_challenges, parse_credentials, select_challenge};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(mut challenge) = parse_challenge(&text) {
        challenge.other.clear();
        let written = challenge.to_header_value();
        let again = parse_challenge(&written)
            .unwrap_or_else(|e| panic!("challenge {written:?} written by us does not parse: {e}"));
        assert_eq!(challenge, again, "challenge changed by write then parse");
    }
    let _ = parse_challenges(&text);
    // Several WWW-Authenticate headers of one response: split on newlines.
    let _ = select_challenge(text.lines());
    if let Ok(credentials) = parse_credentials(&text) {
        let written = credentials.to_header_value();
        let again = parse_credentials(&written)
            .unwrap_or_else(|e| panic!("credentials {written:?} written by us do not parse: {e}"));
        assert_eq!(
            credentials, again,
            "credentials changed by write then parse"
        );
    }
});
