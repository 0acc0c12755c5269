//! A UAC and a UAS endpoint driven in virtual time over a simulated network.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sip_core::dialog::Dialog;
use sip_core::endpoint::{
    make_response, Endpoint, EndpointConfig, Event, Output, Target, Transmit,
};
use sip_core::message::{HeaderKind, Message, Method, Request, Response, SipMessage, Uri};
use sip_core::time::Time;
use sip_core::transaction::{State, Timer, Transport};
use std::net::SocketAddr;
use std::time::Duration;

const UAC: &str = "192.0.2.10:5060";
const UAS: &str = "192.0.2.20:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn endpoint(local: &str, seed: u64) -> Endpoint {
    Endpoint::new(
        EndpointConfig::new(addr(local)),
        Box::new(ChaCha8Rng::seed_from_u64(seed)),
    )
}

fn drain(ep: &mut Endpoint) -> (Vec<Transmit>, Vec<Event>) {
    let local = SocketAddr::new(
        ep.config()
            .via_host
            .ip()
            .expect("test endpoints have IP sent-by"),
        ep.config().via_port,
    );
    let mut tx: Vec<Transmit> = HELD.with(|h| {
        let mut h = h.borrow_mut();
        let (mine, rest): (Vec<_>, Vec<_>) = h.drain(..).partition(|(a, _)| *a == local);
        *h = rest;
        mine.into_iter().map(|(_, t)| t).collect()
    });
    let mut ev = vec![];
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit(t) => tx.push(t),
            Output::Event(e) => ev.push(e),
        }
    }
    (tx, ev)
}

fn parse(bytes: &[u8]) -> Message {
    Message::parse(bytes).expect("the endpoint writes parseable messages")
}

fn label(t: &Transmit) -> String {
    match parse(&t.bytes) {
        Message::Request(r) => r.method.to_string(),
        Message::Response(r) => r.status.to_string(),
    }
}

fn invite(to: &str) -> Request {
    let mut r = Request::new(
        Method::Invite,
        Uri::parse(&format!("sip:bob@{to}")).unwrap(),
    );
    r.headers
        .add(HeaderKind::From, "<sip:alice@192.0.2.10>;tag=a1");
    r.headers.add(HeaderKind::To, "<sip:bob@example.net>");
    r.headers.add(HeaderKind::CallId, "call-1@192.0.2.10");
    r.headers.add(HeaderKind::CSeq, "1 INVITE");
    r.headers
        .add(HeaderKind::Contact, "<sip:alice@192.0.2.10:5060>");
    r
}

fn options() -> Request {
    let mut r = Request::new(Method::Options, Uri::parse("sip:bob@192.0.2.20").unwrap());
    r.headers
        .add(HeaderKind::From, "<sip:alice@192.0.2.10>;tag=a1");
    r.headers.add(HeaderKind::To, "<sip:bob@example.net>");
    r.headers.add(HeaderKind::CallId, "opt-1@192.0.2.10");
    r.headers.add(HeaderKind::CSeq, "1 OPTIONS");
    r
}

fn udp(to: &str) -> Target {
    Target {
        addr: addr(to),
        transport: Transport::Udp,
    }
}

/// Runs the endpoint's timers from `start` to `end` and records when each transmit left.
fn run_timers(ep: &mut Endpoint, start: Time, end: Time) -> Vec<(u128, String)> {
    let mut sent = vec![];
    let mut now = start;
    while let Some(at) = ep.next_timeout() {
        if at > end {
            break;
        }
        now = now.max(at);
        ep.handle_timeout(now);
        let (tx, _) = drain(ep);
        sent.extend(tx.iter().map(|t| (now.as_millis(), label(t))));
    }
    sent
}

#[test]
fn invite_client_retransmits_on_timer_a_and_times_out_on_timer_b() {
    let mut uac = endpoint(UAC, 1);
    let id = uac
        .send_request(Time::ZERO, invite("192.0.2.20"), udp(UAS))
        .unwrap();
    let (tx, _) = drain(&mut uac);
    assert_eq!(tx.len(), 1);
    let mut times = vec![];
    let mut timeout_at = None;
    while let Some(at) = uac.next_timeout() {
        uac.handle_timeout(at);
        let (tx, ev) = drain(&mut uac);
        times.extend(tx.iter().map(|_| at.as_millis()));
        if ev.iter().any(|e| matches!(e, Event::Timeout { timer: Timer::B, transaction, .. } if *transaction == id)) {
            timeout_at = Some(at.as_millis());
        }
    }
    // RFC 3261 §17.1.1.2: A = T1, doubling; B = 64*T1 = 32 s.
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(timeout_at, Some(32_000));
    assert_eq!(uac.transaction_count(), 0);
}

#[test]
fn non_invite_client_timer_e_caps_at_t2_and_timer_f_ends_it() {
    let mut uac = endpoint(UAC, 1);
    uac.send_request(Time::ZERO, options(), udp(UAS)).unwrap();
    drain(&mut uac);
    let sent = run_timers(&mut uac, Time::ZERO, Time::from_millis(40_000));
    let times: Vec<u128> = sent.iter().map(|(t, _)| *t).collect();
    // RFC 3261 §17.1.2.2: 500, 1000, 2000, then every T2 = 4 s until F = 32 s.
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(uac.transaction_count(), 0);
}

#[test]
fn reliable_transport_never_retransmits() {
    let mut uac = endpoint(UAC, 1);
    let target = Target {
        addr: addr(UAS),
        transport: Transport::Tcp,
    };
    uac.send_request(Time::ZERO, invite("192.0.2.20"), target)
        .unwrap();
    drain(&mut uac);
    let sent = run_timers(&mut uac, Time::ZERO, Time::from_millis(40_000));
    assert!(sent.is_empty(), "{sent:?}");
}

thread_local! {
    /// Transmits an endpoint queued while the test was draining it for events; they are
    /// sent on its next `deliver`.
    static HELD: std::cell::RefCell<Vec<(SocketAddr, Transmit)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Delivers everything `from` has queued (and anything held from an earlier drain) to
/// `to`, and returns what was sent and `to`'s events. `to`'s own transmits are held for
/// its next `deliver`.
fn deliver(
    now: Time,
    from: &mut Endpoint,
    from_addr: &str,
    to: &mut Endpoint,
) -> (Vec<Transmit>, Vec<Event>) {
    let (tx, _) = drain(from);
    let mut sent = vec![];
    for t in tx {
        to.handle_datagram(now, t.transport, addr(from_addr), &t.bytes);
        sent.push(t);
    }
    let (to_tx, ev) = drain(to);
    let to_addr = SocketAddr::new(
        to.config()
            .via_host
            .ip()
            .expect("test endpoints have IP sent-by"),
        to.config().via_port,
    );
    HELD.with(|h| {
        h.borrow_mut()
            .extend(to_tx.into_iter().map(|t| (to_addr, t)))
    });
    (sent, ev)
}

fn request_of(ev: &[Event]) -> (sip_core::transaction::TransactionId, Request) {
    ev.iter()
        .find_map(|e| match e {
            Event::Request {
                transaction,
                request,
                ..
            } => Some((*transaction, request.clone())),
            _ => None,
        })
        .expect("a request event")
}

fn responses(ev: &[Event]) -> Vec<Response> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Response { response, .. } => Some(response.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn invite_180_200_ack_bye_between_two_endpoints() {
    let mut uac = endpoint(UAC, 1);
    let mut uas = endpoint(UAS, 2);
    let t0 = Time::ZERO;
    let inv = invite("192.0.2.20");
    let client = uac.send_request(t0, inv.clone(), udp(UAS)).unwrap();
    let (_, ev) = deliver(t0, &mut uac, UAC, &mut uas);
    let (server, req) = request_of(&ev);
    // The UAS stamped received? No: the sent-by is the source, so only rport is filled.
    assert_eq!(req.top_via().unwrap().rport(), Some(Some(5060)));
    // 100 Trying went out at once.
    let (tx, ev) = deliver(t0, &mut uas, UAS, &mut uac);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["100"]);
    assert_eq!(responses(&ev)[0].status, 100);

    let ringing = make_response(&req, 180, Some("b1"));
    uas.respond(t0, server, ringing).unwrap();
    let mut ok = make_response(&req, 200, Some("b1"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:bob@192.0.2.20:5060>");
    uas.respond(t0, server, ok).unwrap();
    let (_, ev) = deliver(t0, &mut uas, UAS, &mut uac);
    let rs = responses(&ev);
    assert_eq!(
        rs.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![180, 200]
    );
    assert_eq!(uac.state(client), Some(State::Accepted));

    // The UAC core builds the ACK from the dialog (RFC 3261 §13.2.2.4).
    let sent_invite = Request { ..inv };
    let mut dialog = Dialog::uac(&sent_invite, &rs[1]).unwrap();
    uac.send_stateless(dialog.ack(1), udp(UAS));
    let (_, ev) = deliver(t0, &mut uac, UAC, &mut uas);
    assert!(matches!(ev[0], Event::Ack { invite: Some(i), .. } if i == server));

    // No 2xx retransmission after the ACK.
    let later = run_timers(&mut uas, t0, Time::from_millis(40_000));
    assert!(later.is_empty(), "{later:?}");

    let bye = dialog.request(Method::Bye);
    let bye_tx = uac.send_request(t0, bye, udp(UAS)).unwrap();
    let (_, ev) = deliver(t0, &mut uac, UAC, &mut uas);
    let (bye_server, bye_req) = request_of(&ev);
    assert_eq!(bye_req.method, Method::Bye);
    assert_eq!(bye_req.cseq().unwrap().seq, 2);
    uas.respond(t0, bye_server, make_response(&bye_req, 200, None))
        .unwrap();
    let (_, ev) = deliver(t0, &mut uas, UAS, &mut uac);
    assert!(
        matches!(&ev[0], Event::Response { transaction, response } if *transaction == bye_tx && response.status == 200)
    );
}

#[test]
fn uas_retransmits_2xx_until_ack_and_reports_missing_ack() {
    let mut uac = endpoint(UAC, 1);
    let mut uas = endpoint(UAS, 2);
    uac.send_request(Time::ZERO, invite("192.0.2.20"), udp(UAS))
        .unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    let (server, req) = request_of(&ev);
    drain(&mut uas);
    let mut ok = make_response(&req, 200, Some("b1"));
    ok.headers.add(HeaderKind::Contact, "<sip:bob@192.0.2.20>");
    uas.respond(Time::ZERO, server, ok).unwrap();
    drain(&mut uas);
    let mut sent = vec![];
    let mut missing_ack = None;
    while let Some(at) = uas.next_timeout() {
        uas.handle_timeout(at);
        let (tx, ev) = drain(&mut uas);
        sent.extend(tx.iter().map(|_| at.as_millis()));
        if ev.iter().any(|e| {
            matches!(
                e,
                Event::Timeout {
                    timer: Timer::L,
                    ..
                }
            )
        }) {
            missing_ack = Some(at.as_millis());
        }
    }
    // RFC 3261 §13.3.1.4: T1 doubling up to T2, until 64*T1.
    assert_eq!(
        sent,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(missing_ack, Some(32_000));
}

#[test]
fn non_2xx_final_is_acked_by_the_transaction_and_retransmitted_until_ack() {
    let mut uac = endpoint(UAC, 1);
    let mut uas = endpoint(UAS, 2);
    uac.send_request(Time::ZERO, invite("192.0.2.20"), udp(UAS))
        .unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    let (server, req) = request_of(&ev);
    drain(&mut uas);
    uas.respond(Time::ZERO, server, make_response(&req, 486, Some("b1")))
        .unwrap();
    // Lose the first 486: the UAS retransmits it on timer G.
    drain(&mut uas);
    uas.handle_timeout(Time::from_millis(500));
    let (tx, ev) = deliver(Time::from_millis(500), &mut uas, UAS, &mut uac);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["486"]);
    assert_eq!(responses(&ev)[0].status, 486);
    // The UAC transaction sent the ACK itself (RFC 3261 §17.1.1.3), with the To tag.
    let (acks, _) = deliver(Time::from_millis(500), &mut uac, UAC, &mut uas);
    let ack = parse(&acks[0].bytes);
    assert_eq!(label(&acks[0]), "ACK");
    assert_eq!(ack.to_header().unwrap().tag(), Some("b1"));
    assert_eq!(ack.cseq().unwrap().to_string(), "1 ACK");
    assert_eq!(
        ack.top_via().unwrap().branch(),
        req.top_via().unwrap().branch()
    );
    assert_eq!(uas.state(server), Some(State::Confirmed));
    // Timer I (T4) then ends the server transaction without more retransmissions.
    let later = run_timers(&mut uas, Time::from_millis(500), Time::from_millis(60_000));
    assert!(later.is_empty());
    assert_eq!(uas.state(server), None);
}

#[test]
fn server_invite_without_ack_times_out_on_timer_h() {
    let mut uas = endpoint(UAS, 2);
    let mut uac = endpoint(UAC, 1);
    uac.send_request(Time::ZERO, invite("192.0.2.20"), udp(UAS))
        .unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    let (server, req) = request_of(&ev);
    drain(&mut uas);
    uas.respond(Time::ZERO, server, make_response(&req, 603, Some("b1")))
        .unwrap();
    drain(&mut uas);
    let mut g = vec![];
    let mut h = None;
    while let Some(at) = uas.next_timeout() {
        uas.handle_timeout(at);
        let (tx, ev) = drain(&mut uas);
        g.extend(tx.iter().map(|_| at.as_millis()));
        if ev.iter().any(|e| {
            matches!(
                e,
                Event::Timeout {
                    timer: Timer::H,
                    ..
                }
            )
        }) {
            h = Some(at.as_millis());
        }
    }
    assert_eq!(
        g,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(h, Some(32_000));
}

#[test]
fn retransmitted_request_gets_the_last_response_again() {
    let mut uac = endpoint(UAC, 1);
    let mut uas = endpoint(UAS, 2);
    uac.send_request(Time::ZERO, options(), udp(UAS)).unwrap();
    let (sent, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    let (server, req) = request_of(&ev);
    uas.respond(Time::ZERO, server, make_response(&req, 200, Some("b")))
        .unwrap();
    drain(&mut uas);
    uas.handle_datagram(
        Time::from_millis(500),
        Transport::Udp,
        addr(UAC),
        &sent[0].bytes,
    );
    let (tx, ev) = drain(&mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["200"]);
    assert!(
        ev.is_empty(),
        "a retransmission is not a new request: {ev:?}"
    );
}

#[test]
fn rfc2543_request_without_magic_cookie_is_matched_by_fallback() {
    let mut uas = endpoint(UAS, 2);
    let raw = "OPTIONS sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=old1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@c>\r\nCall-ID: x1\r\nCSeq: 5 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    uas.handle_datagram(Time::ZERO, Transport::Udp, addr(UAC), raw.as_bytes());
    let (_, ev) = drain(&mut uas);
    let (server, req) = request_of(&ev);
    uas.respond(Time::ZERO, server, make_response(&req, 200, Some("t")))
        .unwrap();
    drain(&mut uas);
    uas.handle_datagram(
        Time::from_millis(400),
        Transport::Udp,
        addr(UAC),
        raw.as_bytes(),
    );
    let (tx, ev) = drain(&mut uas);
    assert_eq!(tx.len(), 1);
    assert!(ev.is_empty());
}

#[test]
fn cancel_before_provisional_is_held_until_one_arrives() {
    let mut uac = endpoint(UAC, 1);
    let mut uas = endpoint(UAS, 2);
    let inv = uac
        .send_request(Time::ZERO, invite("192.0.2.20"), udp(UAS))
        .unwrap();
    assert_eq!(uac.cancel(Time::ZERO, inv).unwrap(), None);
    let (tx, _) = drain(&mut uac);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["INVITE"]);
    for t in tx {
        uas.handle_datagram(Time::ZERO, t.transport, addr(UAC), &t.bytes);
    }
    // The 100 Trying releases the CANCEL (RFC 3261 §9.1).
    let (_, ev) = deliver(Time::ZERO, &mut uas, UAS, &mut uac);
    assert_eq!(responses(&ev)[0].status, 100);
    let (tx, _) = drain(&mut uac);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["CANCEL"]);
}

#[test]
fn cancel_crosses_200_ok() {
    let mut uac = endpoint(UAC, 1);
    let mut uas = endpoint(UAS, 2);
    let inv_req = invite("192.0.2.20");
    let inv = uac
        .send_request(Time::ZERO, inv_req.clone(), udp(UAS))
        .unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    let (server, req) = request_of(&ev);
    deliver(Time::ZERO, &mut uas, UAS, &mut uac); // 100 Trying
                                                  // The UAS answers 200 while our CANCEL is on the wire.
    let mut ok = make_response(&req, 200, Some("b1"));
    ok.headers.add(HeaderKind::Contact, "<sip:bob@192.0.2.20>");
    uas.respond(Time::ZERO, server, ok).unwrap();
    let cancel = uac
        .cancel(Time::ZERO, inv)
        .unwrap()
        .expect("sent after the 100");
    let (_, uas_ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    // RFC 3261 §9.2: the INVITE already has its final answer: 200 to the CANCEL, no effect.
    assert!(!uas_ev.iter().any(|e| matches!(e, Event::Cancelled { .. })));
    let (_, ev) = deliver(Time::ZERO, &mut uas, UAS, &mut uac);
    let rs: Vec<(u16, String)> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Response {
                transaction,
                response,
            } => Some((
                response.status,
                if *transaction == cancel {
                    "CANCEL"
                } else {
                    "INVITE"
                }
                .to_owned(),
            )),
            _ => None,
        })
        .collect();
    assert!(rs.contains(&(200, "INVITE".into())), "{rs:?}");
    assert!(rs.contains(&(200, "CANCEL".into())), "{rs:?}");
    // The call logic must ACK the 2xx and then hang up with BYE.
    let ok = ev.iter().find_map(|e| match e {
        Event::Response {
            transaction,
            response,
        } if *transaction == inv => Some(response.clone()),
        _ => None,
    });
    let mut d = Dialog::uac(&inv_req, &ok.unwrap()).unwrap();
    uac.send_stateless(d.ack(1), udp(UAS));
    uac.send_request(Time::ZERO, d.request(Method::Bye), udp(UAS))
        .unwrap();
    let (tx, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["ACK", "BYE"]);
    assert!(matches!(ev[0], Event::Ack { invite: Some(i), .. } if i == server));
}

#[test]
fn cancel_of_pending_invite_reports_cancelled_and_the_uas_answers_487() {
    let mut uac = endpoint(UAC, 1);
    let mut uas = endpoint(UAS, 2);
    let inv = uac
        .send_request(Time::ZERO, invite("192.0.2.20"), udp(UAS))
        .unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    let (server, req) = request_of(&ev);
    deliver(Time::ZERO, &mut uas, UAS, &mut uac);
    uac.cancel(Time::ZERO, inv).unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Cancelled { invite } if *invite == server)));
    uas.respond(Time::ZERO, server, make_response(&req, 487, Some("b1")))
        .unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uas, UAS, &mut uac);
    let statuses: Vec<u16> = responses(&ev).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 487]);
}

#[test]
fn cancel_for_unknown_invite_gets_481() {
    let mut uas = endpoint(UAS, 2);
    let raw = "CANCEL sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnope\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@c>\r\nCall-ID: x1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n";
    uas.handle_datagram(Time::ZERO, Transport::Udp, addr(UAC), raw.as_bytes());
    let (tx, _) = drain(&mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["481"]);
}

#[test]
fn requests_behind_nat_are_answered_at_their_source_address() {
    let mut uas = endpoint(UAS, 2);
    // A phone behind NAT: private sent-by, the packet arrives from the public binding.
    let raw = "REGISTER sip:192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKnat;rport\r\nFrom: <sip:1000@192.0.2.20>;tag=1\r\nTo: <sip:1000@192.0.2.20>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:1000@10.0.0.5:5060>\r\nContent-Length: 0\r\n\r\n";
    let public = addr("203.0.113.9:40123");
    uas.handle_datagram(Time::ZERO, Transport::Udp, public, raw.as_bytes());
    let (_, ev) = drain(&mut uas);
    let (server, req) = request_of(&ev);
    let via = req.top_via().unwrap();
    assert_eq!(via.received(), Some("203.0.113.9"));
    assert_eq!(via.rport(), Some(Some(40123)));
    uas.respond(Time::ZERO, server, make_response(&req, 200, Some("t")))
        .unwrap();
    let (tx, _) = drain(&mut uas);
    assert_eq!(tx[0].to, public);
}

#[test]
fn malformed_request_gets_400_and_malformed_response_is_dropped() {
    let mut uas = endpoint(UAS, 2);
    let bad = "INVITE sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKbad\r\nFrom: <sip:a@b>;tag=1\r\nTo: \"unterminated <sip:bob@c>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    uas.handle_datagram(Time::ZERO, Transport::Udp, addr(UAC), bad.as_bytes());
    let (tx, ev) = drain(&mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["400"]);
    assert_eq!(tx[0].to, addr(UAC));
    assert!(matches!(&ev[0], Event::Malformed { .. }));
    let bad_resp = "SIP/2.0 999999 Huge\r\nVia: SIP/2.0/UDP 192.0.2.20;branch=z9hG4bKx\r\n\r\n";
    uas.handle_datagram(Time::ZERO, Transport::Udp, addr(UAC), bad_resp.as_bytes());
    let (tx, _) = drain(&mut uas);
    assert!(tx.is_empty());
}

#[test]
fn request_missing_call_id_gets_400_naming_it() {
    let mut uas = endpoint(UAS, 2);
    let raw = "OPTIONS sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKm\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:bob@c>\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    uas.handle_datagram(Time::ZERO, Transport::Udp, addr(UAC), raw.as_bytes());
    let (tx, _) = drain(&mut uas);
    let Message::Response(r) = parse(&tx[0].bytes) else {
        panic!()
    };
    assert_eq!(r.status, 400);
    assert!(r.reason.contains("Call-ID"), "{}", r.reason);
}

#[test]
fn forked_180s_reach_the_uac_as_separate_early_dialogs_and_the_200_picks_one() {
    let mut uac = endpoint(UAC, 1);
    let inv_req = invite("192.0.2.20");
    let inv = uac
        .send_request(Time::ZERO, inv_req.clone(), udp(UAS))
        .unwrap();
    let (tx, _) = drain(&mut uac);
    let Message::Request(sent) = parse(&tx[0].bytes) else {
        panic!()
    };
    let mk = |status: u16, tag: &str| {
        let mut r = make_response(&sent, status, Some(tag));
        r.headers
            .add(HeaderKind::Contact, format!("<sip:bob@{tag}.example.net>"));
        r
    };
    for (status, tag) in [(180, "x"), (180, "y"), (200, "y")] {
        uac.handle_datagram(
            Time::ZERO,
            Transport::Udp,
            addr(UAS),
            &mk(status, tag).to_bytes(),
        );
    }
    let (_, ev) = drain(&mut uac);
    let rs = responses(&ev);
    assert_eq!(rs.len(), 3);
    let dialogs: Vec<Dialog> = rs[..2]
        .iter()
        .map(|r| Dialog::uac(&inv_req, r).unwrap())
        .collect();
    assert_ne!(dialogs[0].id.remote_tag, dialogs[1].id.remote_tag);
    let winner = rs[2].to_header().unwrap();
    assert_eq!(winner.tag(), Some("y"));
    assert_eq!(uac.state(inv), Some(State::Accepted));
}

#[test]
fn retransmitted_2xx_after_accepted_goes_up_for_re_ack() {
    let mut uac = endpoint(UAC, 1);
    let inv = uac
        .send_request(Time::ZERO, invite("192.0.2.20"), udp(UAS))
        .unwrap();
    let (tx, _) = drain(&mut uac);
    let Message::Request(sent) = parse(&tx[0].bytes) else {
        panic!()
    };
    let mut ok = make_response(&sent, 200, Some("b1"));
    ok.headers.add(HeaderKind::Contact, "<sip:bob@192.0.2.20>");
    for ms in [0, 500] {
        uac.handle_datagram(
            Time::from_millis(ms),
            Transport::Udp,
            addr(UAS),
            &ok.to_bytes(),
        );
    }
    let (_, ev) = drain(&mut uac);
    assert_eq!(
        responses(&ev).len(),
        2,
        "RFC 6026 §8.4: each 2xx goes to the TU"
    );
    // After Timer M the transaction is gone and a late 2xx is a stray for the dialog.
    uac.handle_timeout(Time::from_millis(32_000));
    assert_eq!(uac.state(inv), None);
    uac.handle_datagram(
        Time::from_millis(33_000),
        Transport::Udp,
        addr(UAS),
        &ok.to_bytes(),
    );
    let (_, ev) = drain(&mut uac);
    assert!(matches!(ev[0], Event::StrayResponse { .. }));
}

#[test]
fn ack_for_2xx_with_record_route_goes_to_the_proxy_with_contact_as_request_uri() {
    let mut uac = endpoint(UAC, 1);
    let inv_req = invite("192.0.2.20");
    uac.send_request(Time::ZERO, inv_req.clone(), udp("198.51.100.1:5060"))
        .unwrap();
    let (tx, _) = drain(&mut uac);
    let Message::Request(sent) = parse(&tx[0].bytes) else {
        panic!()
    };
    let mut ok = make_response(&sent, 200, Some("b1"));
    ok.headers
        .add(HeaderKind::RecordRoute, "<sip:198.51.100.1:5060;lr>");
    ok.headers
        .add(HeaderKind::Contact, "<sip:bob@203.0.113.50:5080>");
    uac.handle_datagram(
        Time::ZERO,
        Transport::Udp,
        addr("198.51.100.1:5060"),
        &ok.to_bytes(),
    );
    let (_, ev) = drain(&mut uac);
    let d = Dialog::uac(&inv_req, &responses(&ev)[0]).unwrap();
    let ack = d.ack(1);
    assert_eq!(ack.uri.to_string(), "sip:bob@203.0.113.50:5080");
    assert_eq!(d.next_hop().to_string(), "sip:198.51.100.1:5060;lr");
    assert_eq!(
        ack.routes().unwrap()[0].uri.to_string(),
        "sip:198.51.100.1:5060;lr"
    );
    let _ = Duration::ZERO;
}

#[test]
fn invite_challenged_with_401_is_retried_with_credentials_same_call_id_next_cseq() {
    use sip_core::auth::{
        AuthOutcome, ChallengedResponse, ClientAuthState, Credentials, DigestRequest, DigestServer,
        Secret, ServerConfig, Verification,
    };
    let mut uac = endpoint(UAC, 1);
    let mut uas = endpoint(UAS, 2);
    let mut server = DigestServer::new(ServerConfig::new("carrier.example.net", b"k".to_vec()));
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let creds = Credentials::with_password("dialer", "s3cret");
    let mut auth = ClientAuthState::new();

    let first = invite("192.0.2.20");
    uac.send_request(Time::ZERO, first.clone(), udp(UAS))
        .unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    let (tx, req) = request_of(&ev);
    assert!(req.headers.get(HeaderKind::Authorization).is_none());
    let mut challenge = make_response(&req, 401, Some("b1"));
    for c in server.challenges(Duration::ZERO, false) {
        challenge.headers.add(HeaderKind::WwwAuthenticate, c);
    }
    uas.respond(Time::ZERO, tx, challenge).unwrap();
    let (_, ev) = deliver(Time::ZERO, &mut uas, UAS, &mut uac);
    let challenged = responses(&ev)
        .into_iter()
        .find(|r| r.status == 401)
        .unwrap();
    // The transaction ACKed the 401 by itself.
    let (acks, _) = deliver(Time::ZERO, &mut uac, UAC, &mut uas);
    assert_eq!(acks.iter().map(label).collect::<Vec<_>>(), vec!["ACK"]);

    let values: Vec<&str> = challenged
        .headers
        .get_all(HeaderKind::WwwAuthenticate)
        .collect();
    let uri = first.uri.to_string();
    let outcome = auth
        .handle_challenge(
            &ChallengedResponse {
                status: 401,
                challenges: &values,
                sent: &[],
            },
            &creds,
            &DigestRequest {
                method: "INVITE",
                uri: &uri,
                body: &[],
            },
            &mut rng,
        )
        .unwrap();
    let AuthOutcome::Retry { headers } = outcome else {
        panic!("{outcome:?}")
    };
    let mut retry = first.clone();
    retry.headers.set(HeaderKind::CSeq, "2 INVITE");
    for h in &headers {
        retry.headers.push(
            sip_core::message::HeaderName::parse(h.name.as_str()),
            h.value.clone(),
        );
    }
    uac.send_request(Time::from_millis(10), retry, udp(UAS))
        .unwrap();
    let (_, ev) = deliver(Time::from_millis(10), &mut uac, UAC, &mut uas);
    let (_, req2) = request_of(&ev);
    assert_eq!(req2.call_id().unwrap(), req.call_id().unwrap());
    assert_eq!(req2.cseq().unwrap().seq, 2);
    let value = req2.headers.get(HeaderKind::Authorization).unwrap();
    let verdict = server.verify(
        Duration::from_millis(10),
        &DigestRequest {
            method: "INVITE",
            uri: &req2.uri.to_string(),
            body: &[],
        },
        value,
        |user| (user == "dialer").then(|| Secret::Password("s3cret".into())),
    );
    assert!(
        matches!(verdict, Verification::Authenticated { .. }),
        "{verdict:?}"
    );
}

fn tcp(to: &str) -> Target {
    Target {
        addr: addr(to),
        transport: Transport::Tcp,
    }
}

#[test]
fn tcp_invite_runs_no_timer_a_but_timer_b_still_ends_it_at_64_t1() {
    let mut uac = endpoint(UAC, 1);
    let id = uac
        .send_request(Time::ZERO, invite("192.0.2.20"), tcp(UAS))
        .unwrap();
    let (tx, _) = drain(&mut uac);
    assert_eq!(tx.len(), 1);
    assert_eq!(tx[0].transport, Transport::Tcp);
    let via = parse(&tx[0].bytes).top_via().unwrap();
    assert_eq!(via.transport, "TCP");
    // RFC 3261 §17.1.1.2: no Timer A on a reliable transport; Timer B (64*T1) all the same.
    assert_eq!(uac.next_timeout(), Some(Time::from_millis(32_000)));
    uac.handle_timeout(Time::from_millis(32_000));
    let (tx, ev) = drain(&mut uac);
    assert!(tx.is_empty(), "nothing is retransmitted: {tx:?}");
    assert!(
        matches!(&ev[..], [Event::Timeout { timer: Timer::B, transaction, .. }] if *transaction == id),
        "{ev:?}"
    );
    assert_eq!(uac.transaction_count(), 0);
}

#[test]
fn tcp_non_invite_runs_no_timer_e_but_timer_f_still_ends_it() {
    let mut uac = endpoint(UAC, 1);
    uac.send_request(Time::ZERO, options(), tcp(UAS)).unwrap();
    drain(&mut uac);
    // RFC 3261 §17.1.2.2: Timer E only when unreliable; Timer F = 64*T1 always.
    assert_eq!(uac.next_timeout(), Some(Time::from_millis(32_000)));
    uac.handle_timeout(Time::from_millis(32_000));
    let (tx, ev) = drain(&mut uac);
    assert!(tx.is_empty());
    assert!(
        matches!(
            &ev[..],
            [Event::Timeout {
                timer: Timer::F,
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn a_failed_connection_ends_the_client_transactions_on_it_at_once_and_no_others() {
    let mut uac = endpoint(UAC, 1);
    let on_flow = uac
        .send_request(Time::ZERO, invite("192.0.2.20"), tcp(UAS))
        .unwrap();
    let mut register = options();
    register.method = Method::Register;
    register
        .headers
        .replace_first(HeaderKind::CSeq, "1 REGISTER");
    let also_on_flow = uac.send_request(Time::ZERO, register, tcp(UAS)).unwrap();
    let elsewhere = uac
        .send_request(Time::ZERO, options(), tcp("192.0.2.30:5060"))
        .unwrap();
    let over_udp = uac.send_request(Time::ZERO, options(), udp(UAS)).unwrap();
    drain(&mut uac);
    uac.flow_failed(tcp(UAS));
    let (tx, ev) = drain(&mut uac);
    assert!(tx.is_empty());
    let ended: Vec<_> = ev
        .iter()
        .map(|e| match e {
            Event::Timeout {
                transaction,
                timer,
                method,
            } => (*transaction, *timer, method.clone()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        ended,
        vec![
            (on_flow, Timer::B, Method::Invite),
            (also_on_flow, Timer::F, Method::Register)
        ]
    );
    assert_eq!(uac.state(on_flow), None);
    assert!(uac.state(elsewhere).is_some());
    assert!(uac.state(over_udp).is_some());
    // A UDP "flow" has no connection to lose.
    uac.flow_failed(udp(UAS));
    assert!(drain(&mut uac).1.is_empty());
    assert!(uac.state(over_udp).is_some());
}

#[test]
fn responses_over_tcp_go_back_on_the_connection_whatever_the_via_says() {
    let mut uas = endpoint(UAS, 2);
    // The connection's remote end is an ephemeral port; Via names the listening port.
    let raw = "OPTIONS sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKtcp1;rport\r\nFrom: <sip:a@192.0.2.10>;tag=1\r\nTo: <sip:bob@192.0.2.20>\r\nCall-ID: t1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let connection = addr("192.0.2.10:40111");
    uas.handle_datagram(Time::ZERO, Transport::Tcp, connection, raw.as_bytes());
    let (_, ev) = drain(&mut uas);
    let (server, req) = request_of(&ev);
    // RFC 3581 §4: rport is filled on any transport.
    assert_eq!(req.top_via().unwrap().rport(), Some(Some(40111)));
    uas.respond(Time::ZERO, server, make_response(&req, 200, Some("t")))
        .unwrap();
    let (tx, _) = drain(&mut uas);
    assert_eq!((tx[0].transport, tx[0].to), (Transport::Tcp, connection));
    // A stateless 400 too (RFC 3261 §18.2.2).
    let bad = "OPTIONS sip:bob@192.0.2.20 SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bKtcp2\r\nFrom: <sip:a@192.0.2.10>;tag=1\r\nTo: <sip:bob@192.0.2.20>\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    uas.handle_datagram(Time::ZERO, Transport::Tcp, connection, bad.as_bytes());
    let (tx, _) = drain(&mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["400"]);
    assert_eq!((tx[0].transport, tx[0].to), (Transport::Tcp, connection));
}

#[test]
fn a_tls_request_has_a_tls_via_at_the_tls_port_and_no_retransmissions() {
    let mut config = EndpointConfig::new(addr(UAC));
    config.tls_via_port = Some(5061);
    let mut uac = Endpoint::new(config, Box::new(ChaCha8Rng::seed_from_u64(1)));
    let target = Target {
        addr: addr("192.0.2.20:5061"),
        transport: Transport::Tls,
    };
    uac.send_request(Time::ZERO, options(), target).unwrap();
    let (tx, _) = drain(&mut uac);
    let via = parse(&tx[0].bytes).top_via().unwrap();
    assert_eq!((via.transport.as_str(), via.port), ("TLS", Some(5061)));
    // RFC 3261 §17.1.2.2: reliable, so Timer F only.
    assert_eq!(uac.next_timeout(), Some(Time::from_millis(32_000)));
    // Over UDP the sent-by port stays the UDP one.
    uac.send_request(Time::ZERO, options(), udp(UAS)).unwrap();
    let (tx, _) = drain(&mut uac);
    assert_eq!(parse(&tx[0].bytes).top_via().unwrap().port, Some(5060));
}

/// An INVITE from `uac` (as `from`, a distinct Call-ID per `n`) straight into `uas`.
fn flood_invite(uas: &mut Endpoint, now: Time, n: u32) {
    let text = format!(
        "INVITE sip:100@192.0.2.20 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-flood-{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:100@198.51.100.7>;tag=f{n}\r\n\
         To: <sip:100@192.0.2.20>\r\n\
         Call-ID: flood-{n}\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    uas.handle_datagram(
        now,
        Transport::Udp,
        addr("198.51.100.7:5060"),
        text.as_bytes(),
    );
}

#[test]
fn a_final_answer_sent_once_is_never_retransmitted_and_keeps_nothing() {
    let mut uas = endpoint(UAS, 2);
    flood_invite(&mut uas, Time::ZERO, 1);
    let (tx, ev) = drain(&mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["100"]);
    let (server, req) = request_of(&ev);
    uas.respond_once(server, make_response(&req, 480, Some("t")))
        .unwrap();
    let (tx, _) = drain(&mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["480"]);
    assert_eq!(tx[0].to, addr("198.51.100.7:5060"));
    assert_eq!(uas.state(server), None, "the transaction is gone");
    assert_eq!(uas.transaction_count(), 0);
    // No Timer G: nothing more is sent, whatever the time.
    assert!(run_timers(&mut uas, Time::ZERO, Time::from_millis(64_000)).is_empty());
    // A provisional cannot be sent "once": it would leave the caller waiting.
    flood_invite(&mut uas, Time::ZERO, 2);
    let (_, ev) = drain(&mut uas);
    let (server, req) = request_of(&ev);
    assert!(uas
        .respond_once(server, make_response(&req, 180, Some("t")))
        .is_err());
}

#[test]
fn server_transactions_beyond_the_bound_get_one_stateless_503_each() {
    let mut config = EndpointConfig::new(addr(UAS));
    config.max_server_transactions = 3;
    let mut uas = Endpoint::new(config, Box::new(ChaCha8Rng::seed_from_u64(2)));
    for n in 0..3 {
        flood_invite(&mut uas, Time::ZERO, n);
    }
    let (_, ev) = drain(&mut uas);
    let taken: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Request {
                transaction,
                request,
                ..
            } => Some((*transaction, request.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(taken.len(), 3);
    flood_invite(&mut uas, Time::ZERO, 3);
    let (tx, ev) = drain(&mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["503"]);
    let busy = match parse(&tx[0].bytes) {
        Message::Response(r) => r,
        Message::Request(_) => unreachable!(),
    };
    assert!(busy.headers.get(HeaderKind::RetryAfter).is_some());
    assert!(matches!(
        ev.as_slice(),
        [Event::Overloaded {
            method: Method::Invite,
            ..
        }]
    ));
    assert_eq!(uas.transaction_count(), 3, "the 503 kept nothing");
    // Once one ends, a new request is taken again.
    let (id, req) = &taken[0];
    uas.respond_once(*id, make_response(req, 480, Some("t")))
        .unwrap();
    drain(&mut uas);
    flood_invite(&mut uas, Time::ZERO, 4);
    let (tx, ev) = drain(&mut uas);
    assert_eq!(tx.iter().map(label).collect::<Vec<_>>(), vec!["100"]);
    assert!(matches!(ev.as_slice(), [Event::Request { .. }]));
}

#[test]
fn a_response_whose_connection_closed_goes_to_received_at_the_sent_by_port() {
    use sip_core::endpoint::reliable_fallback;
    let via = |text: &str| {
        let r = Message::parse(
            format!(
                "SIP/2.0 200 OK\r\nVia: {text}\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\n\
                 Call-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        r.top_via().unwrap()
    };
    // RFC 3261 §18.2.2: the received address, the sent-by port (rport is for UDP).
    let v = via("SIP/2.0/TCP phone.lan:5070;branch=z9hG4bK1;received=192.0.2.9;rport=40000");
    assert_eq!(
        reliable_fallback(&v, Transport::Tcp),
        Some(addr("192.0.2.9:5070"))
    );
    // No port: the transport's default.
    let v = via("SIP/2.0/TLS 192.0.2.10;branch=z9hG4bK2");
    assert_eq!(
        reliable_fallback(&v, Transport::Tls),
        Some(addr("192.0.2.10:5061"))
    );
    let v = via("SIP/2.0/TCP 192.0.2.10;branch=z9hG4bK3");
    assert_eq!(
        reliable_fallback(&v, Transport::Tcp),
        Some(addr("192.0.2.10:5060"))
    );
    // A name and no received: nothing to connect to without a lookup.
    let v = via("SIP/2.0/TCP phone.lan:5070;branch=z9hG4bK4");
    assert_eq!(reliable_fallback(&v, Transport::Tcp), None);
}
