//! Hold and unhold in a bridged call, in virtual time: the holding leg is answered at once,
//! the other leg gets a re-INVITE with the same direction from our side (RFC 3264 §8.4),
//! and glare between re-INVITEs gets 491 and a retry after the Call-ID owner's back-off
//! (RFC 3261 §14.1, §14.2).

mod scenario_net;

use dialer::b2bua::MediaOp;
use media::relay::Side;
use media::sdp::{Codec, Direction, SessionDescription};
use scenario_net::*;
use sip_core::endpoint::{make_response, Event};
use sip_core::message::{HeaderKind, Method, Request, Response, SipMessage};
use sip_core::transaction::TransactionId;
use std::time::Duration;

/// The carrier's and the agent's ACKs of a call bridged with PCMA to the carrier (media on
/// 192.0.2.51:30000) and PCMU to the agent (10.0.0.5:4000).
fn bridged(net: &mut Net) -> (Request, Request) {
    let carrier_ack = net.customer_answers();
    net.agent_answers();
    let agent_ack = net.agent.received_requests(Method::Ack)[0].clone();
    (carrier_ack, agent_ack)
}

/// A peer's offer: one codec and telephone-event, the given direction and connection host.
fn offer(host: &str, port: u16, codec: Codec, direction: &str, version: u64) -> Vec<u8> {
    let (pt, name) = match codec {
        Codec::Pcma => (8, "PCMA"),
        _ => (0, "PCMU"),
    };
    format!(
        "v=0\r\no=peer 7 {version} IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {name}/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na={direction}\r\n"
    )
    .into_bytes()
}

/// A re-INVITE from a peer in the dialog of `ack` (the dialer's ACK to it).
fn reinvite(ack: &Request, cseq: u32, body: Vec<u8>) -> Request {
    let mut re = in_dialog(ack, Method::Invite, cseq, "sip:dialer@192.0.2.10:5060");
    re.headers
        .add(HeaderKind::Contact, "<sip:peer@192.0.2.99:5060>");
    re.set_body("application/sdp", body);
    re
}

/// A peer's re-INVITE with `body`, delivered and answered.
fn reoffer(net: &mut Net, side: Side, ack: &Request, cseq: u32, body: Vec<u8>) {
    let re = reinvite(ack, cseq, body);
    match side {
        Side::Customer => net.carrier.send(net.now, re),
        Side::Agent => net.agent.send(net.now, re),
    };
    net.settle();
}

/// The final response a peer got for its request with this CSeq number.
fn final_response(peer: &Peer, seq: u32) -> Option<Response> {
    peer.events.iter().find_map(|e| match e {
        Event::Response { response, .. }
            if response.status >= 200 && response.cseq().unwrap().seq == seq =>
        {
            Some(response.clone())
        }
        _ => None,
    })
}

fn audio(body: &[u8]) -> (Direction, u64) {
    let sdp = SessionDescription::parse_bytes(body).expect("SDP parses");
    (
        sdp.media.first().expect("an m= line").direction,
        sdp.origin.session_version,
    )
}

/// The direction of the last SetLeg for `side` after `from` media ops.
fn relay_direction(net: &Net, side: Side, from: usize) -> Option<Direction> {
    net.media_ops()[from..].iter().rev().find_map(|o| match o {
        MediaOp::SetLeg {
            side: s,
            negotiated,
        } if *s == side => Some(negotiated.direction),
        _ => None,
    })
}

/// The next re-INVITE the peer received, answered 200 with its default answer (it mirrors
/// the offered direction, RFC 3264 §6.1).
fn answer_reinvite(net: &mut Net, side: Side) -> Request {
    let (peer, codec, host, port) = match side {
        Side::Customer => (&mut net.carrier, Codec::Pcma, "192.0.2.51", 30000),
        Side::Agent => (&mut net.agent, Codec::Pcmu, "10.0.0.5", 4000),
    };
    let (tx, re) = peer
        .take_request(Method::Invite)
        .unwrap_or_else(|| panic!("no re-INVITE reached the {side:?} leg"));
    let mut ok = make_response(&re, 200, None);
    ok.headers
        .add(HeaderKind::Contact, "<sip:peer@192.0.2.99:5060>");
    ok.set_body("application/sdp", answer(&re, vec![codec], host, port));
    let now = net.now;
    match side {
        Side::Customer => net.carrier.respond(now, tx, ok),
        Side::Agent => net.agent.respond(now, tx, ok),
    }
    net.settle();
    re
}

#[test]
fn customer_hold_is_answered_recvonly_and_passed_to_the_agent_then_unhold_restores_both() {
    let mut net = Net::new();
    let (carrier_ack, _) = bridged(&mut net);
    let agent_offer_version = audio(&net.agent.received_requests(Method::Invite)[0].body).1;

    let ops = net.media_ops().len();
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        1,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendonly", 2),
    );
    let ok = final_response(&net.carrier, 1).expect("the hold was answered");
    assert_eq!(ok.status, 200);
    let (held_answer, held_version) = audio(&ok.body);
    assert_eq!(held_answer, Direction::RecvOnly, "RFC 3264 §8.4");
    assert_eq!(
        relay_direction(&net, Side::Customer, ops),
        Some(Direction::RecvOnly),
        "the relay stops sending to the holding customer"
    );

    let to_agent = answer_reinvite(&mut net, Side::Agent);
    let (direction, version) = audio(&to_agent.body);
    assert_eq!(
        direction,
        Direction::SendOnly,
        "the agent is offered what the customer still sends"
    );
    assert!(version > agent_offer_version, "RFC 3264 §8: a new version");
    assert_eq!(
        relay_direction(&net, Side::Agent, ops),
        Some(Direction::SendOnly),
        "the relay keeps sending the customer's audio to the agent"
    );

    let ops = net.media_ops().len();
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        2,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendrecv", 3),
    );
    let ok = final_response(&net.carrier, 2).expect("the unhold was answered");
    let (answer_dir, answer_version) = audio(&ok.body);
    assert_eq!(answer_dir, Direction::SendRecv);
    assert!(
        answer_version > held_version,
        "each new answer has a higher o= version"
    );
    let to_agent = answer_reinvite(&mut net, Side::Agent);
    assert_eq!(audio(&to_agent.body), (Direction::SendRecv, version + 1));
    assert_eq!(
        relay_direction(&net, Side::Customer, ops),
        Some(Direction::SendRecv)
    );
    assert_eq!(
        relay_direction(&net, Side::Agent, ops),
        Some(Direction::SendRecv)
    );
    assert!(net.cdrs().is_empty(), "the call goes on");
}

#[test]
fn agent_hold_with_c_0_0_0_0_reaches_the_carrier_as_sendonly() {
    let mut net = Net::new();
    let (_, agent_ack) = bridged(&mut net);
    let ops = net.media_ops().len();
    // RFC 3264 §8.4 (RFC 2543 style): c=0.0.0.0 with sendrecv asks not to be sent to.
    reoffer(
        &mut net,
        Side::Agent,
        &agent_ack,
        1,
        offer("0.0.0.0", 4000, Codec::Pcmu, "sendrecv", 2),
    );
    let ok = final_response(&net.agent, 1).expect("answered");
    assert_eq!(audio(&ok.body).0, Direction::RecvOnly);
    assert_eq!(
        relay_direction(&net, Side::Agent, ops),
        Some(Direction::RecvOnly)
    );
    let to_carrier = answer_reinvite(&mut net, Side::Customer);
    assert_eq!(audio(&to_carrier.body).0, Direction::SendOnly);
    assert_eq!(
        to_carrier.uri.to_string(),
        "sip:gw@192.0.2.51:5060",
        "RFC 3261 §12.2.1.1: the remote target"
    );
    assert_eq!(
        to_carrier.headers.get(HeaderKind::Route),
        Some("<sip:192.0.2.50:5060;lr>"),
        "through the carrier's route set"
    );
    assert_eq!(
        relay_direction(&net, Side::Customer, ops),
        Some(Direction::SendOnly)
    );
}

#[test]
fn glare_gets_491_and_our_reinvite_is_retried_after_2_1_to_4_s() {
    let mut net = Net::new();
    let (carrier_ack, agent_ack) = bridged(&mut net);
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        1,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendonly", 2),
    );
    let (tx, ours): (TransactionId, Request) = net
        .agent
        .take_request(Method::Invite)
        .expect("our hold re-INVITE reached the agent");

    // The agent's own re-INVITE crosses ours.
    reoffer(
        &mut net,
        Side::Agent,
        &agent_ack,
        1,
        offer("10.0.0.5", 4000, Codec::Pcmu, "sendrecv", 2),
    );
    assert_eq!(
        final_response(&net.agent, 1).map(|r| r.status),
        Some(491),
        "RFC 3261 §14.2: an INVITE while ours is in progress"
    );
    // And the agent refuses ours the same way.
    net.agent
        .respond(net.now, tx, make_response(&ours, 491, None));
    net.settle();
    let refused_at = net.now;
    let retried = net
        .wait_for(Duration::from_secs(5), |n| {
            n.agent
                .take_request(Method::Invite)
                .map(|(tx, r)| (tx, r, n.now))
        })
        .expect("the re-INVITE is sent again");
    let (tx, again, at) = retried;
    let waited = at.since(refused_at);
    assert!(
        (Duration::from_millis(2_100)..=Duration::from_millis(4_100)).contains(&waited),
        "RFC 3261 §14.1: the Call-ID owner waits 2.1-4 s, waited {waited:?}"
    );
    assert!(again.cseq().unwrap().seq > ours.cseq().unwrap().seq);
    assert_eq!(audio(&again.body).0, Direction::SendOnly);
    let mut ok = make_response(&again, 200, None);
    ok.set_body(
        "application/sdp",
        answer(&again, vec![Codec::Pcmu], "10.0.0.5", 4000),
    );
    net.agent.respond(net.now, tx, ok);
    net.settle();
    assert_eq!(
        net.sent_unique(Method::Ack)
            .iter()
            .filter(|(to, r)| *to == addr(AGENT_PUBLIC)
                && r.cseq().unwrap().seq == again.cseq().unwrap().seq)
            .count(),
        1,
        "the 2xx to the retry is ACKed"
    );
    assert!(net.cdrs().is_empty());
}

#[test]
fn mutual_hold_then_unhold_on_both_sides_restores_sendrecv_everywhere() {
    let mut net = Net::new();
    let (carrier_ack, agent_ack) = bridged(&mut net);
    // The customer holds; the agent is offered sendonly and answers recvonly.
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        1,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendonly", 2),
    );
    answer_reinvite(&mut net, Side::Agent);
    // The agent holds too (inactive: it was already not sent to).
    reoffer(
        &mut net,
        Side::Agent,
        &agent_ack,
        1,
        offer("10.0.0.5", 4000, Codec::Pcmu, "inactive", 2),
    );
    assert_eq!(
        audio(&final_response(&net.agent, 1).unwrap().body).0,
        Direction::Inactive
    );
    let to_carrier = answer_reinvite(&mut net, Side::Customer);
    assert_eq!(audio(&to_carrier.body).0, Direction::Inactive);

    // The customer resumes: the agent still holds, so nothing flows to or from the
    // customer, and the agent, holding, need not be asked again.
    let ops = net.media_ops().len();
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        2,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendrecv", 3),
    );
    assert_eq!(
        audio(&final_response(&net.carrier, 2).unwrap().body).0,
        Direction::Inactive,
        "the agent holds: nothing flows to or from the customer"
    );
    assert!(
        net.agent.take_request(Method::Invite).is_none(),
        "the agent's own hold stands"
    );

    // The agent resumes: both legs end up sendrecv.
    reoffer(
        &mut net,
        Side::Agent,
        &agent_ack,
        2,
        offer("10.0.0.5", 4000, Codec::Pcmu, "sendrecv", 4),
    );
    assert_eq!(
        audio(&final_response(&net.agent, 2).unwrap().body).0,
        Direction::SendRecv
    );
    let to_carrier = answer_reinvite(&mut net, Side::Customer);
    assert_eq!(audio(&to_carrier.body).0, Direction::SendRecv);
    assert_eq!(
        relay_direction(&net, Side::Customer, ops),
        Some(Direction::SendRecv)
    );
    assert_eq!(
        relay_direction(&net, Side::Agent, ops),
        Some(Direction::SendRecv)
    );
}

#[test]
fn hold_reinvite_answered_481_ends_the_call_with_bye_on_both_legs() {
    let mut net = Net::new();
    let (carrier_ack, _) = bridged(&mut net);
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        1,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendonly", 2),
    );
    let (tx, ours) = net
        .agent
        .take_request(Method::Invite)
        .expect("hold passed on");
    net.agent
        .respond(net.now, tx, make_response(&ours, 481, None));
    net.settle();
    assert_eq!(net.carrier.answer_byes(net.now), 1, "BYE to the carrier");
    net.agent.answer_byes(net.now);
    net.settle();
    // RFC 3261 §14.1: a 481 to a re-INVITE ends the dialog; the bridge cannot go on.
    assert_eq!(net.cdr().outcome, "reinvite_failed");
    assert_eq!(net.cdr().sip_status, 481);
    assert_eq!(net.core.call_count(), 0);
}

#[test]
fn customer_hold_during_the_ringback_reaches_the_agent_once_it_answers() {
    let mut net = Net::new();
    let carrier_ack = net.customer_answers();
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        1,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendonly", 2),
    );
    assert_eq!(
        audio(&final_response(&net.carrier, 1).unwrap().body).0,
        Direction::RecvOnly
    );
    net.agent_answers();
    let to_agent = answer_reinvite(&mut net, Side::Agent);
    assert_eq!(audio(&to_agent.body).0, Direction::SendOnly);
}

#[test]
fn reinvite_answered_only_180_is_cancelled_and_the_next_change_goes_through() {
    let mut net = Net::new();
    let (carrier_ack, _) = bridged(&mut net);
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        1,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendonly", 2),
    );
    let (agent_tx, stuck) = net
        .agent
        .take_request(Method::Invite)
        .expect("hold passed on");
    // The agent rings (a 180 to a re-INVITE) and never answers.
    net.agent
        .respond(net.now, agent_tx, make_response(&stuck, 180, None));
    net.settle();
    net.advance(Duration::from_secs(45));
    let cancels = net.sent_unique(Method::Cancel);
    assert_eq!(
        cancels.len(),
        1,
        "RFC 3261 §9.1: the stuck re-INVITE is cancelled"
    );
    assert_eq!(cancels[0].1.cseq().unwrap().seq, stuck.cseq().unwrap().seq);
    assert!(net.cdrs().is_empty(), "the call goes on");
    // RFC 3261 §14.1: the cancelled offer changed nothing, so the customer's next hold
    // is offered to the agent in a fresh re-INVITE.
    reoffer(
        &mut net,
        Side::Customer,
        &carrier_ack,
        2,
        offer("192.0.2.51", 30000, Codec::Pcma, "sendonly", 3),
    );
    let to_agent = answer_reinvite(&mut net, Side::Agent);
    assert_eq!(audio(&to_agent.body).0, Direction::SendOnly);
    assert!(to_agent.cseq().unwrap().seq > stuck.cseq().unwrap().seq);
}
