//! `Message::parse` on arbitrary datagrams: never panics, and whatever it accepts survives
//! write-then-parse unchanged (`parse(write(m)) == m`), so the writer never emits something the
//! parser reads differently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::message::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = Message::parse(data) else {
        return;
    };
    let written = message.to_bytes();
    let again = match Message::parse(&written) {
        Ok(again) => again,
        Err(error) => panic!(
            "the writer produced a message the parser rejects: {error}\n{}",
            String::from_utf8_lossy(&written)
        ),
    };
    assert_eq!(message, again, "write then parse changed the message");
});
