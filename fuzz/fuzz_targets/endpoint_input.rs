//! The endpoint's whole input side: a sequence of datagrams at increasing virtual times, the
//! timers they start, and answers from a simple call logic. Never panics, and everything the
//! endpoint transmits is a message our own parser accepts.
//!
//! Input layout, repeated until the data runs out (a short tail is taken as it is):
//!
//! | bytes | meaning |
//! |---|---|
//! | 1 | time step before this datagram, in 250 ms units (up to ~64 s, past Timer B's 32 s) |
//! | 1 | flags: bit 0 TCP (else UDP); bits 1-2 which of four peers sent it; bit 3 send it as our own request when it is one; bits 4-7 the status the call logic answers requests with |
//! | 2 | datagram length, big-endian |
//! | n | the datagram |
//!
//! `fuzz/seed.sh` writes seeds in this layout from the SIP messages of the corpus captures.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use sip_core::endpoint::{make_response, Endpoint, EndpointConfig, Event, Output, Target};
use sip_core::message::{parse_datagram, Message, Method, ParseLimits, Request};
use sip_core::time::Time;
use sip_core::transaction::{TransactionId, Transport};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

/// What the call logic answers a new request with; 0 leaves it unanswered.
const ANSWERS: [u16; 16] = [
    0, 100, 180, 183, 200, 202, 301, 401, 407, 408, 486, 487, 488, 500, 503, 603,
];

const PEERS: [&str; 4] = [
    "192.0.2.10:5060",
    "192.0.2.20:5080",
    "[2001:db8::1]:5060",
    "198.51.100.7:1024",
];

fuzz_target!(|data: &[u8]| {
    let local: SocketAddr = "192.0.2.1:5060".parse().expect("a literal socket address");
    let mut endpoint = Endpoint::new(
        EndpointConfig::new(local),
        Box::new(rand_chacha::ChaCha8Rng::seed_from_u64(1)),
    );
    let mut pending = HashMap::new();
    let mut now = Time::ZERO;
    let mut rest = data;
    while !rest.is_empty() {
        let step = rest[0];
        let flags = rest.get(1).copied().unwrap_or(0);
        let len = match rest.get(2..4) {
            Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])),
            None => 0,
        };
        let body_start = rest.len().min(4);
        let body_end = rest.len().min(4 + len);
        let datagram = &rest[body_start..body_end];
        rest = &rest[body_end..];

        now = now + Duration::from_millis(u64::from(step) * 250);
        let transport = if flags & 1 == 1 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        let peer: SocketAddr = PEERS[usize::from((flags >> 1) & 3)]
            .parse()
            .expect("a literal socket address");
        let answer = ANSWERS[usize::from(flags >> 4)];

        endpoint.handle_timeout(now);
        drain(&mut endpoint, &mut pending, now, answer);
        let as_request = match Message::parse(datagram) {
            Ok(Message::Request(request)) if flags & 8 == 8 => Some(request),
            _ => None,
        };
        match as_request {
            Some(request) => {
                let target = Target {
                    addr: peer,
                    transport,
                };
                let _ = endpoint.send_request(now, request, target);
            }
            None => endpoint.handle_datagram(now, transport, peer, datagram),
        }
        drain(&mut endpoint, &mut pending, now, answer);
    }
    // Let every timer run out: retransmissions, Timer B/F/H/J/K/L/M.
    for _ in 0..64 {
        let Some(at) = endpoint.next_timeout() else {
            break;
        };
        assert!(
            at >= now,
            "next timeout {at:?} is before the last handled time {now:?}"
        );
        now = at;
        endpoint.handle_timeout(now);
        drain(&mut endpoint, &mut pending, now, 0);
    }
});

/// Takes every output; answers new requests with `answer` and cancelled INVITEs with 487
/// (`pending` keeps the requests of server transactions, to build that 487 from).
fn drain(
    endpoint: &mut Endpoint,
    pending: &mut HashMap<TransactionId, Request>,
    now: Time,
    answer: u16,
) {
    while let Some(output) = endpoint.poll_output() {
        match output {
            Output::Transmit(transmit) => {
                // A response repeats the request's Via lines and adds a few of its own, so a
                // request at the header limit is answered with a response slightly above it:
                // the check allows for those few lines.
                let limits = ParseLimits {
                    max_headers: ParseLimits::default().max_headers + 16,
                    ..ParseLimits::default()
                };
                if let Err(error) = parse_datagram(&transmit.bytes, &limits) {
                    panic!(
                        "the endpoint sent a message it cannot parse: {error}\n{}",
                        String::from_utf8_lossy(&transmit.bytes)
                    );
                }
            }
            Output::Event(Event::Request {
                transaction,
                request,
                ..
            }) => {
                if answer != 0 && request.method != Method::Ack {
                    let response = make_response(&request, answer, Some("fuzz-tag"));
                    let _ = endpoint.respond(now, transaction, response);
                }
                pending.insert(transaction, request);
            }
            Output::Event(Event::Cancelled { invite }) => {
                if let Some(request) = pending.get(&invite) {
                    let response = make_response(request, 487, Some("fuzz-tag"));
                    let _ = endpoint.respond(now, invite, response);
                }
            }
            Output::Event(_) => {}
        }
    }
}
