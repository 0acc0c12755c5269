//! Reliable provisional responses (RFC 3262) on the customer leg, in virtual time: PRACK
//! once per RSeq in the right early dialog, early media from a reliable 183, forks.

mod scenario_net;

use media::relay::Side;
use media::sdp::Codec;
use scenario_net::*;
use sip_core::endpoint::make_response;
use sip_core::message::{HeaderKind, Method, RAck, Request, Response, SipMessage};

/// A reliable 1xx (RFC 3262 §3) from a carrier gateway, with its own To tag and Contact.
fn reliable(invite: &Request, status: u16, tag: &str, rseq: u32, contact: &str) -> Response {
    let mut r = make_response(invite, status, Some(tag));
    r.headers.add(HeaderKind::Require, "100rel");
    r.headers.add(HeaderKind::RSeq, rseq.to_string());
    r.headers.add(HeaderKind::Contact, contact);
    r
}

fn pracks(net: &Net) -> Vec<Request> {
    net.sent_requests(Method::Prack)
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

/// The carrier answers every PRACK it received with 200.
fn answer_pracks(net: &mut Net) {
    while let Some((tx, p)) = net.carrier.take_request(Method::Prack) {
        net.carrier
            .respond(net.now, tx, make_response(&p, 200, None));
    }
    net.settle();
}

#[test]
fn reliable_183_is_pracked_once_and_its_answer_serves_a_2xx_without_sdp() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier_invite();
    assert!(invite.has_option_tag(HeaderKind::Supported, "100rel"));
    let invite_seq = invite.cseq().unwrap().seq;

    let mut ringing = reliable(&invite, 183, "c1", 7, "<sip:gw@192.0.2.51:5060>");
    ringing
        .headers
        .add(HeaderKind::RecordRoute, "<sip:192.0.2.50:5060;lr>");
    ringing.set_body(
        "application/sdp",
        answer(&invite, vec![Codec::Pcmu], "192.0.2.51", 31000),
    );
    net.carrier.respond(net.now, tx, ringing.clone());
    net.settle();
    // RFC 3262 §7.1: PRACK in the early dialog (To tag of the 183), CSeq after the
    // INVITE's, RAck naming the RSeq and the INVITE's CSeq, sent by the route set.
    let sent = net.sent_requests(Method::Prack);
    assert_eq!(sent.len(), 1);
    let (to, prack) = &sent[0];
    assert_eq!(*to, addr(CARRIER));
    assert_eq!(prack.uri.to_string(), "sip:gw@192.0.2.51:5060");
    assert_eq!(prack.to_header().unwrap().tag(), Some("c1"));
    assert_eq!(prack.cseq().unwrap().seq, invite_seq + 1);
    let rack = RAck::parse(prack.headers.get(HeaderKind::RAck).unwrap()).unwrap();
    assert_eq!(
        (rack.rseq, rack.cseq, rack.method),
        (7, invite_seq, Method::Invite)
    );
    // Early media: the relay learns the 183's address and codec.
    assert!(net.media_ops().iter().any(|o| matches!(o,
        dialer::b2bua::MediaOp::SetLeg { side: Side::Customer, negotiated }
            if negotiated.codec == Codec::Pcmu
                && negotiated.remote_rtp == Some(addr("192.0.2.51:31000")))));
    answer_pracks(&mut net);

    // The carrier retransmits the 183 (its PRACK arrived, but say it crossed): no second
    // PRACK (RFC 3262 §4: retransmissions are discarded).
    net.carrier.respond(net.now, tx, ringing);
    net.settle();
    assert_eq!(pracks(&net).len(), 1);

    // The 2xx carries no SDP: the reliable 183 completed the offer/answer.
    net.carrier
        .respond(net.now, tx, carrier_ok(&invite, "c1", None));
    net.settle();
    let acks = net.sent_requests(Method::Ack);
    assert_eq!(acks.len(), 1);
    assert!(net.events().iter().any(
        |e| matches!(e, dialer::control::ApiEvent::Answered { codec, .. } if codec == "PCMU")
    ));
    assert_eq!(
        net.sent_requests(Method::Invite).last().unwrap().0,
        addr(AGENT_PUBLIC)
    );

    // In-dialog requests continue after the PRACK's CSeq (RFC 3261 §12.2.1.1).
    let call = net.core.calls(net.now)[0].id;
    net.core.hangup(net.now, call).unwrap();
    net.settle();
    let byes: Vec<_> = net
        .sent_requests(Method::Bye)
        .into_iter()
        .filter(|(to, _)| *to == addr(CARRIER))
        .collect();
    assert_eq!(byes.len(), 1);
    assert!(byes[0].1.cseq().unwrap().seq > invite_seq + 1);
}

#[test]
fn reliable_provisional_out_of_order_is_neither_pracked_nor_processed() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier_invite();
    net.carrier.respond(
        net.now,
        tx,
        reliable(&invite, 180, "c1", 1, "<sip:gw@192.0.2.51:5060>"),
    );
    net.settle();
    answer_pracks(&mut net);
    // RSeq 3 skips 2: RFC 3262 §4 forbids PRACKing or processing it.
    let mut skipped = reliable(&invite, 183, "c1", 3, "<sip:gw@192.0.2.51:5060>");
    skipped.set_body(
        "application/sdp",
        answer(&invite, vec![Codec::Pcma], "192.0.2.51", 32000),
    );
    net.carrier.respond(net.now, tx, skipped);
    net.settle();
    assert_eq!(pracks(&net).len(), 1);
    assert!(
        !net.media_ops()
            .iter()
            .any(|o| matches!(o, dialer::b2bua::MediaOp::SetLeg { .. })),
        "the out-of-order 183's SDP was not used"
    );
    // RSeq 2 is next in order: PRACKed.
    net.carrier.respond(
        net.now,
        tx,
        reliable(&invite, 183, "c1", 2, "<sip:gw@192.0.2.51:5060>"),
    );
    net.settle();
    let p = pracks(&net);
    assert_eq!(p.len(), 2);
    assert_eq!(
        RAck::parse(p[1].headers.get(HeaderKind::RAck).unwrap())
            .unwrap()
            .rseq,
        2
    );
    assert!(p[1].cseq().unwrap().seq > p[0].cseq().unwrap().seq);
}

#[test]
fn forked_reliable_183s_are_pracked_in_their_own_dialogs_and_the_2xx_picks_one() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier_invite();
    let mut a = reliable(&invite, 183, "fork-a", 1, "<sip:gw@192.0.2.51:5060>");
    a.set_body(
        "application/sdp",
        answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000),
    );
    let mut b = reliable(&invite, 183, "fork-b", 1, "<sip:gw2@192.0.2.52:5060>");
    b.set_body(
        "application/sdp",
        answer(&invite, vec![Codec::Pcmu], "192.0.2.52", 30002),
    );
    net.carrier.respond(net.now, tx, a);
    net.carrier.respond(net.now, tx, b);
    net.settle();
    // Each fork has its own RSeq space and its own PRACK, to its own Contact (no route
    // set: RFC 3261 §12.1.2).
    let sent = net.sent_requests(Method::Prack);
    assert_eq!(sent.len(), 2);
    let by_tag = |tag: &str| {
        sent.iter()
            .find(|(_, p)| p.to_header().unwrap().tag() == Some(tag))
            .cloned()
            .unwrap_or_else(|| panic!("a PRACK for {tag}"))
    };
    let (to_a, pa) = by_tag("fork-a");
    let (to_b, pb) = by_tag("fork-b");
    assert_eq!(
        (to_a, pa.uri.to_string()),
        (addr(CARRIER_GW), "sip:gw@192.0.2.51:5060".into())
    );
    assert_eq!(
        (to_b, pb.uri.to_string()),
        (addr(CARRIER_GW2), "sip:gw2@192.0.2.52:5060".into())
    );
    answer_pracks(&mut net);

    // Fork b answers without SDP: its early answer (PCMU at .52) is the session.
    let mut ok = make_response(&invite, 200, Some("fork-b"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:gw2@192.0.2.52:5060>");
    net.carrier.respond(net.now, tx, ok);
    net.settle();
    let last_set = net
        .media_ops()
        .into_iter()
        .rev()
        .find_map(|o| match o {
            dialer::b2bua::MediaOp::SetLeg {
                side: Side::Customer,
                negotiated,
            } => Some(negotiated.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_set.codec, Codec::Pcmu);
    assert_eq!(last_set.remote_rtp, Some(addr("192.0.2.52:30002")));
    let acks = net.sent_requests(Method::Ack);
    assert_eq!(acks.len(), 1);
    assert_eq!(acks[0].1.to_header().unwrap().tag(), Some("fork-b"));

    // A late 2xx from fork a: ACKed and ended with BYE in its own dialog (RFC 3261
    // §13.2.2.4); the call on fork b goes on and the agent is called once.
    let mut late = make_response(&invite, 200, Some("fork-a"));
    late.headers
        .add(HeaderKind::Contact, "<sip:gw@192.0.2.51:5060>");
    late.set_body(
        "application/sdp",
        answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000),
    );
    net.carrier.respond(net.now, tx, late);
    net.settle();
    let byes = net.sent_requests(Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].0, addr(CARRIER_GW));
    assert_eq!(byes[0].1.to_header().unwrap().tag(), Some("fork-a"));
    let (btx, bye) = net.carrier.take_request(Method::Bye).unwrap();
    net.carrier
        .respond(net.now, btx, make_response(&bye, 200, None));
    net.settle();
    assert_eq!(net.core.call_count(), 1);
    let agent_invites = net
        .sent_requests(Method::Invite)
        .into_iter()
        .filter(|(to, _)| *to == addr(AGENT_PUBLIC))
        .count();
    assert_eq!(agent_invites, 1);
    net.agent_answers();
    assert!(net
        .events()
        .iter()
        .any(|e| matches!(e, dialer::control::ApiEvent::Bridged { .. })));
}
