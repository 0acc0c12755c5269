//! RFC 3263 §4.3 failover on the customer leg, in virtual time: a trunk whose proxy name
//! resolved to several targets sends the INVITE to the next one when the current one times
//! out (Timer B = 64*T1) or answers 503, as a new transaction of the same request; other
//! failures are not failed over, and the number of tries is bounded by the targets.

mod scenario_net;

use scenario_net::*;
use sip_core::endpoint::make_response;
use sip_core::message::{HeaderKind, Method, SipMessage};
use std::net::SocketAddr;
use std::time::Duration;

/// A second carrier edge (the scenario network delivers 192.0.2.50-59 to the carrier).
const EDGE_2: &str = "192.0.2.53:5060";
const EDGE_3: &str = "192.0.2.54:5060";

/// Timer B with the default T1 of 500 ms (RFC 3261 §17.1.1.2).
const TIMER_B: Duration = Duration::from_secs(32);

fn customer_invites(
    net: &Net,
) -> Vec<(sip_core::time::Time, SocketAddr, sip_core::message::Request)> {
    net.sent_unique_timed(Method::Invite)
        .into_iter()
        .filter(|(_, to, _)| *to != addr(AGENT_PUBLIC))
        .collect()
}

fn branch(r: &sip_core::message::Request) -> String {
    r.top_via().unwrap().branch().unwrap().to_owned()
}

fn net_with_targets(targets: &[&str]) -> Net {
    let mut net = Net::new();
    let rest = targets[1..].iter().map(|t| addr(t)).collect();
    net.core.set_trunk_targets(0, addr(targets[0]), rest);
    net
}

#[test]
fn an_invite_the_first_target_never_answers_goes_to_the_next_at_timer_b_and_the_call_completes() {
    let mut net = net_with_targets(&[CARRIER, EDGE_2]);
    net.silent = vec![addr(CARRIER)];
    net.originate();
    net.advance(TIMER_B - Duration::from_millis(1));
    assert_eq!(
        customer_invites(&net).len(),
        1,
        "the first target has all of Timer B"
    );
    net.advance(Duration::from_millis(1));
    let invites = customer_invites(&net);
    assert_eq!(invites.len(), 2, "{invites:?}");
    let (t0, to0, first) = &invites[0];
    let (t1, to1, second) = &invites[1];
    assert_eq!((*to0, *to1), (addr(CARRIER), addr(EDGE_2)));
    assert_eq!(t1.since(*t0), TIMER_B);
    // The same request (RFC 3263 §4.3): Call-ID, From tag, CSeq and body; a new branch.
    assert_eq!(second.call_id().unwrap(), first.call_id().unwrap());
    assert_eq!(second.cseq().unwrap(), first.cseq().unwrap());
    assert_eq!(
        second.from_header().unwrap().tag(),
        first.from_header().unwrap().tag()
    );
    assert_eq!(second.body, first.body);
    assert_ne!(branch(second), branch(first));
    // The second edge answers (record-routing itself): the dialog runs through it.
    let (tx, invite) = net.carrier_invite();
    let mut ok = make_response(&invite, 200, Some("edge2"));
    ok.headers
        .add(HeaderKind::RecordRoute, format!("<sip:{EDGE_2};lr>"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:gw@192.0.2.51:5060>");
    ok.set_body(
        "application/sdp",
        answer(&invite, vec![media::sdp::Codec::Pcma], "192.0.2.53", 30000),
    );
    net.carrier.respond(net.now, tx, ok);
    net.settle();
    let acks = net.sent_unique(Method::Ack);
    assert_eq!(acks.len(), 1, "{acks:?}");
    assert_eq!(acks[0].0, addr(EDGE_2), "the ACK follows the route set");
    assert!(
        net.agent.take_request(Method::Invite).is_some(),
        "the agent is called"
    );
}

#[test]
fn a_503_moves_the_invite_to_the_next_target_at_once() {
    let mut net = net_with_targets(&[CARRIER, EDGE_2]);
    net.originate();
    let (tx, invite) = net.carrier_invite();
    let at = net.now;
    net.carrier
        .respond(net.now, tx, make_response(&invite, 503, Some("busy-edge")));
    net.settle();
    let invites = customer_invites(&net);
    assert_eq!(invites.len(), 2, "{invites:?}");
    assert_eq!(invites[1].0, at, "no wait after a 503");
    assert_eq!(invites[1].1, addr(EDGE_2));
    assert_eq!(invites[1].2.cseq().unwrap(), invites[0].2.cseq().unwrap());
    assert!(net.cdrs().is_empty(), "the call is not over");
}

#[test]
fn when_every_target_answers_503_the_call_fails_with_503_after_one_try_each() {
    let mut net = net_with_targets(&[CARRIER, EDGE_2, EDGE_3]);
    net.originate();
    for _ in 0..3 {
        let (tx, invite) = net.carrier_invite();
        net.carrier
            .respond(net.now, tx, make_response(&invite, 503, Some("down")));
        net.settle();
    }
    let targets: Vec<SocketAddr> = customer_invites(&net)
        .iter()
        .map(|(_, to, _)| *to)
        .collect();
    assert_eq!(targets, [addr(CARRIER), addr(EDGE_2), addr(EDGE_3)]);
    assert_eq!(net.cdr().sip_status, 503);
    assert!(net.carrier.take_request(Method::Invite).is_none());
}

#[test]
fn a_busy_or_rejected_call_is_not_failed_over() {
    let mut net = net_with_targets(&[CARRIER, EDGE_2]);
    net.originate();
    let (tx, invite) = net.carrier_invite();
    net.carrier
        .respond(net.now, tx, make_response(&invite, 486, Some("busy")));
    net.settle();
    assert_eq!(customer_invites(&net).len(), 1);
    assert_eq!(net.cdr().sip_status, 486);
}

#[test]
fn with_every_target_silent_the_call_ends_in_timeout_after_one_timer_b_per_target() {
    let mut net = net_with_targets(&[CARRIER, EDGE_2]);
    net.silent = vec![addr(CARRIER), addr(EDGE_2)];
    net.originate();
    let start = net.now;
    let ended = net.wait_for(Duration::from_secs(120), |n| n.cdrs().first().cloned());
    let cdr = ended.expect("the call ends");
    let invites = customer_invites(&net);
    assert_eq!(invites.len(), 2, "one INVITE per target: {invites:?}");
    // Bounded: the originate timeout (60 s) or two Timer B, whichever comes first.
    assert!(net.now.since(start) <= 2 * TIMER_B + Duration::from_millis(200));
    assert_ne!(cdr.sip_status, 200);
}
