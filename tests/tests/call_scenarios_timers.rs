//! Session timers (RFC 4028) on both legs, in virtual time: our refreshes at half the
//! interval, the BYE on both legs when the peer's refresh does not come, 422 retries.

mod scenario_net;

use dialer::b2bua::SessionTimerConfig;
use dialer::control::HungUpBy;
use media::sdp::{Codec, SessionDescription};
use scenario_net::*;
use sip_core::endpoint::make_response;
use sip_core::message::{HeaderKind, Method, Request, SipMessage};
use std::time::Duration;

fn timers(se: u64) -> Option<SessionTimerConfig> {
    Some(SessionTimerConfig {
        session_expires: Duration::from_secs(se),
        min_se: Duration::from_secs(90),
    })
}

/// The carrier answers the INVITE with a 2xx carrying this Session-Expires (and, when
/// given, an Allow list), then the agent answers with its own.
fn answered(
    net: &mut Net,
    carrier_se: &str,
    allow: Option<&str>,
    agent_se: Option<&str>,
) -> Request {
    let (tx, invite) = net.carrier_invite();
    let mut ok = carrier_ok(
        &invite,
        "c1",
        Some(answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000)),
    );
    ok.headers.add(HeaderKind::SessionExpires, carrier_se);
    ok.headers.add(HeaderKind::Require, "timer");
    if let Some(a) = allow {
        ok.headers.add(HeaderKind::Allow, a);
    }
    net.carrier.respond(net.now, tx, ok);
    net.settle();
    let (atx, ainv) = net
        .agent
        .take_request(Method::Invite)
        .expect("agent INVITE");
    let mut ok = make_response(&ainv, 200, Some("a1"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:1000@10.0.0.5:5060;ob>");
    if let Some(se) = agent_se {
        ok.headers.add(HeaderKind::SessionExpires, se);
    }
    ok.set_body(
        "application/sdp",
        answer(&ainv, vec![Codec::Pcmu], "10.0.0.5", 4000),
    );
    net.agent.respond(net.now, atx, ok);
    net.settle();
    invite
}

/// Answers every refresh re-INVITE or UPDATE a peer received with a 2xx keeping the
/// interval and the dialer as refresher; returns how many.
fn answer_refreshes(peer: &mut Peer, now: sip_core::time::Time, se: &str) -> usize {
    let mut n = 0;
    for m in [Method::Invite, Method::Update] {
        while let Some((tx, r)) = peer.take_request(m.clone()) {
            let mut ok = make_response(&r, 200, None);
            ok.headers.add(HeaderKind::SessionExpires, se);
            ok.headers.add(HeaderKind::Require, "timer");
            if !r.body.is_empty() {
                ok.set_body(
                    "application/sdp",
                    answer(&r, vec![Codec::Pcma], "192.0.2.51", 30000),
                );
            }
            peer.respond(now, tx, ok);
            n += 1;
        }
    }
    n
}

fn origin_version(body: &[u8]) -> u64 {
    SessionDescription::parse_bytes(body)
        .unwrap()
        .origin
        .session_version
}

#[test]
fn we_refresh_each_leg_at_half_its_own_interval_with_an_unchanged_offer() {
    let mut net = Net::with_timers(timers(120), timers(90));
    net.originate();
    let invite = answered(
        &mut net,
        "120;refresher=uac",
        None,
        Some("90;refresher=uac"),
    );
    // RFC 4028 §7.1: what we asked for.
    assert!(invite.has_option_tag(HeaderKind::Supported, "timer"));
    assert_eq!(
        invite.headers.get(HeaderKind::SessionExpires),
        Some("120;refresher=uac")
    );
    assert_eq!(invite.headers.get(HeaderKind::MinSe), Some("90"));
    let agent_invite = net.agent.received_requests(Method::Invite)[0].clone();
    assert_eq!(
        agent_invite.headers.get(HeaderKind::SessionExpires),
        Some("90;refresher=uac")
    );

    // Agent leg: 90 s, refreshed at 45 s; the carrier's 120 s leg not yet.
    net.advance(Duration::from_secs(44));
    assert_eq!(
        net.sent_requests(Method::Invite).len(),
        2,
        "no refresh before half the interval"
    );
    net.advance(Duration::from_secs(2));
    let refresh = net.agent.received_requests(Method::Invite);
    assert_eq!(refresh.len(), 2, "the agent got its refresh at 45 s");
    assert_eq!(
        origin_version(&refresh[1].body),
        origin_version(&agent_invite.body)
    );
    assert_eq!(
        answer_refreshes(&mut net.agent, net.now, "90;refresher=uac"),
        1
    );
    net.settle();
    assert_eq!(net.agent.received_requests(Method::Ack).len(), 2);
    assert_eq!(net.carrier.received_requests(Method::Invite).len(), 1);

    // Carrier leg: a re-INVITE at 60 s, with our offer unchanged (same o= version,
    // RFC 3264 §8) and the interval; its 2xx is ACKed.
    net.advance(Duration::from_secs(15));
    let reinvites = net.carrier.received_requests(Method::Invite);
    assert_eq!(reinvites.len(), 2);
    let re = &reinvites[1];
    assert_eq!(re.to_header().unwrap().tag(), Some("c1"));
    assert_eq!(
        re.headers.get(HeaderKind::SessionExpires),
        Some("120;refresher=uac")
    );
    assert_eq!(re.body, invite.body, "the same offer, same session version");
    assert_eq!(
        answer_refreshes(&mut net.carrier, net.now, "120;refresher=uac"),
        1
    );
    net.settle();
    let acks = net.carrier.received_requests(Method::Ack);
    assert_eq!(acks.len(), 2, "the refresh's 2xx was ACKed");
    assert_eq!(acks[1].cseq().unwrap().seq, re.cseq().unwrap().seq);

    // The next carrier refresh comes 60 s after the last 2xx; with the agent answering
    // its own refreshes, nothing ends the call.
    for _ in 0..61 {
        net.advance(Duration::from_secs(1));
        answer_refreshes(&mut net.agent, net.now, "90;refresher=uac");
        net.settle();
    }
    assert_eq!(net.agent.received_requests(Method::Invite).len(), 3);
    assert_eq!(net.carrier.received_requests(Method::Invite).len(), 3);
    assert!(net.sent_requests(Method::Bye).is_empty());
    assert_eq!(net.core.call_count(), 1);
}

#[test]
fn refresh_uses_update_without_a_body_when_the_peer_allows_it() {
    let mut net = Net::with_timers(timers(90), None);
    net.originate();
    answered(
        &mut net,
        "90;refresher=uac",
        Some("INVITE, ACK, BYE, CANCEL, UPDATE"),
        None,
    );
    net.advance(Duration::from_secs(46));
    let updates = net.carrier.received_requests(Method::Update);
    assert_eq!(updates.len(), 1);
    assert!(updates[0].body.is_empty());
    assert_eq!(
        updates[0].headers.get(HeaderKind::SessionExpires),
        Some("90;refresher=uac")
    );
    assert_eq!(
        answer_refreshes(&mut net.carrier, net.now, "90;refresher=uac"),
        1
    );
    net.settle();
    // The 2xx restarted the timer: the next UPDATE 45 s later, and the call is up.
    net.advance(Duration::from_secs(44));
    assert_eq!(net.carrier.received_requests(Method::Update).len(), 1);
    net.advance(Duration::from_secs(2));
    assert_eq!(net.carrier.received_requests(Method::Update).len(), 2);
    assert_eq!(net.core.call_count(), 1);
}

#[test]
fn peer_refresher_that_goes_silent_gets_bye_on_both_legs() {
    let mut net = Net::with_timers(timers(90), None);
    net.originate();
    answered(&mut net, "90;refresher=uas", None, None);
    // RFC 4028 §10: the session ends at 90 - min(32, 90/3) = 60 s without a refresh.
    net.advance(Duration::from_secs(59));
    assert!(net.sent_requests(Method::Bye).is_empty());
    net.advance(Duration::from_secs(2));
    let byes = net.sent_unique(Method::Bye);
    assert_eq!(byes.len(), 2, "BYE to both legs");
    assert!(byes.iter().any(|(to, _)| *to == addr(CARRIER)));
    assert!(byes.iter().any(|(to, _)| *to == addr(AGENT_PUBLIC)));
    assert_eq!(
        net.carrier.answer_byes(net.now) + net.agent.answer_byes(net.now),
        2
    );
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "session_timer_expired");
    assert_eq!(cdr.q850_cause, 102);
    assert_eq!(cdr.hung_up_by, HungUpBy::Dialer);
    assert_eq!(net.core.call_count(), 0);
}

#[test]
fn peer_refresh_is_answered_with_its_interval_and_restarts_the_expiry() {
    let mut net = Net::with_timers(timers(90), None);
    net.originate();
    let invite = answered(&mut net, "90;refresher=uas", None, None);
    net.advance(Duration::from_secs(40));
    let ack = net.carrier.received_requests(Method::Ack)[0].clone();
    let mut update = in_dialog(&ack, Method::Update, 1, "sip:+15550100@192.0.2.10:5060");
    update.headers.add(HeaderKind::Supported, "timer");
    update
        .headers
        .add(HeaderKind::SessionExpires, "90;refresher=uac");
    let _ = invite;
    net.carrier.send(net.now, update);
    net.settle();
    let ok = net
        .carrier
        .events
        .iter()
        .find_map(|e| match e {
            sip_core::endpoint::Event::Response { response, .. } => Some(response.clone()),
            _ => None,
        })
        .expect("the UPDATE was answered");
    assert_eq!(ok.status, 200);
    // RFC 4028 §9: the interval and refresher in the 2xx, with Require: timer.
    assert_eq!(
        ok.headers.get(HeaderKind::SessionExpires),
        Some("90;refresher=uac")
    );
    assert!(ok.has_option_tag(HeaderKind::Require, "timer"));
    assert!(ok.body.is_empty(), "an UPDATE without an offer gets no SDP");
    // Expiry moved to 40 + 60 s.
    net.advance(Duration::from_secs(50));
    assert!(net.sent_requests(Method::Bye).is_empty());
    net.advance(Duration::from_secs(11));
    assert_eq!(net.sent_unique(Method::Bye).len(), 2);
}

#[test]
fn refresh_below_our_min_se_is_refused_with_422() {
    let mut net = Net::with_timers(timers(120), None);
    net.originate();
    answered(&mut net, "120;refresher=uac", None, None);
    let ack = net.carrier.received_requests(Method::Ack)[0].clone();
    let mut update = in_dialog(&ack, Method::Update, 1, "sip:+15550100@192.0.2.10:5060");
    update.headers.add(HeaderKind::SessionExpires, "30");
    net.carrier.send(net.now, update);
    net.settle();
    let resp = net
        .carrier
        .events
        .iter()
        .find_map(|e| match e {
            sip_core::endpoint::Event::Response { response, .. } => Some(response.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(resp.status, 422);
    assert_eq!(resp.headers.get(HeaderKind::MinSe), Some("90"));
}

#[test]
fn invite_answered_422_is_retried_with_the_larger_min_se() {
    let mut net = Net::with_timers(timers(90), None);
    net.originate();
    let (tx, invite) = net.carrier_invite();
    let mut too_small = make_response(&invite, 422, Some("x"));
    too_small.headers.add(HeaderKind::MinSe, "300");
    net.carrier.respond(net.now, tx, too_small);
    net.settle();
    let (tx, retry) = net.carrier_invite();
    // RFC 4028 §7.3: same Call-ID and From tag, a new CSeq, the 422's Min-SE as both
    // Session-Expires and Min-SE.
    assert_eq!(retry.call_id().unwrap(), invite.call_id().unwrap());
    assert_eq!(
        retry.from_header().unwrap().tag(),
        invite.from_header().unwrap().tag()
    );
    assert_eq!(retry.cseq().unwrap().seq, invite.cseq().unwrap().seq + 1);
    assert_eq!(
        retry.headers.get(HeaderKind::SessionExpires),
        Some("300;refresher=uac")
    );
    assert_eq!(retry.headers.get(HeaderKind::MinSe), Some("300"));
    // A second 422 asking for nothing larger ends the call instead of looping.
    let mut again = make_response(&retry, 422, Some("x"));
    again.headers.add(HeaderKind::MinSe, "300");
    net.carrier.respond(net.now, tx, again);
    net.settle();
    assert_eq!(net.sent_requests(Method::Invite).len(), 2);
    assert_eq!(net.cdr().sip_status, 422);
}
