//! `Uri::parse` on arbitrary UTF-8: never panics, and a parsed URI's `Display` form parses back
//! to an equal URI (it is what the writer puts in Request-Lines, To, From and Contact).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::message::Uri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(uri) = Uri::parse(text) else {
        return;
    };
    let shown = uri.to_string();
    match Uri::parse(&shown) {
        Ok(again) => assert_eq!(
            uri, again,
            "Display then parse changed {text:?} (shown {shown:?})"
        ),
        Err(error) => panic!("{text:?} displays as {shown:?}, which does not parse: {error}"),
    }
});
