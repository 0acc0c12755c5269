//! Peers that bend the rules, in virtual time: refresh 2xx without Record-Route, Contact
//! changes in target refreshes, a 1xx without To tag, 183 SDP differing from the 200's,
//! telephone-event at 48000 with Opus.

mod scenario_net;

use dialer::b2bua::{MediaOp, SessionTimerConfig};
use media::relay::Side;
use media::sdp::{Codec, Negotiated};
use scenario_net::*;
use sip_core::endpoint::make_response;
use sip_core::message::{HeaderKind, Method, SipMessage};
use std::time::Duration;

fn last_set_leg(net: &Net, side: Side) -> Negotiated {
    net.media_ops()
        .into_iter()
        .rev()
        .find_map(|o| match o {
            MediaOp::SetLeg {
                side: s,
                negotiated,
            } if *s == side => Some(negotiated.clone()),
            _ => None,
        })
        .expect("a SetLeg for the side")
}

#[test]
fn refresh_2xx_without_record_route_keeps_the_route_set_and_takes_the_new_contact() {
    let mut net = Net::with_timers(
        Some(SessionTimerConfig {
            session_expires: Duration::from_secs(90),
            min_se: Duration::from_secs(90),
        }),
        None,
    );
    net.originate();
    let (tx, invite) = net.carrier_invite();
    let mut ok = carrier_ok(
        &invite,
        "c1",
        Some(answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000)),
    );
    ok.headers
        .add(HeaderKind::SessionExpires, "90;refresher=uac");
    net.carrier.respond(net.now, tx, ok);
    net.settle();
    net.agent_answers();
    net.advance(Duration::from_secs(46));
    let (rtx, re) = net.carrier.take_request(Method::Invite).expect("refresh");
    // The 2xx to the re-INVITE has no Record-Route and moves the gateway (RFC 3261
    // §12.2.1.2: the remote target changes, the route set does not).
    let mut ok = make_response(&re, 200, None);
    ok.headers
        .add(HeaderKind::Contact, "<sip:gw@192.0.2.52:5060>");
    ok.headers
        .add(HeaderKind::SessionExpires, "90;refresher=uac");
    ok.set_body(
        "application/sdp",
        answer(&re, vec![Codec::Pcma], "192.0.2.51", 30000),
    );
    net.carrier.respond(net.now, rtx, ok);
    net.settle();
    let (to, ack) = net.sent_unique(Method::Ack).last().cloned().unwrap();
    assert_eq!(to, addr(CARRIER), "the ACK still goes through the proxy");
    assert_eq!(ack.uri.to_string(), "sip:gw@192.0.2.52:5060");
    assert_eq!(
        ack.routes().unwrap()[0].uri.to_string(),
        "sip:192.0.2.50:5060;lr"
    );
    let call = net.core.calls(net.now)[0].id;
    net.core.hangup(net.now, call).unwrap();
    net.settle();
    let (to, bye) = net.sent_unique(Method::Bye)[0].clone();
    assert_eq!(to, addr(CARRIER));
    assert_eq!(bye.uri.to_string(), "sip:gw@192.0.2.52:5060");
    assert_eq!(bye.routes().unwrap().len(), 1);
}

#[test]
fn contact_change_in_a_peer_reinvite_retargets_our_requests() {
    let mut net = Net::new();
    let ack = net.customer_answers();
    let mut re = in_dialog(&ack, Method::Invite, 1, "sip:+15550100@192.0.2.10:5060");
    re.headers
        .add(HeaderKind::Contact, "<sip:gw@192.0.2.52:5060>");
    net.carrier.send(net.now, re);
    net.settle();
    let call = net.core.calls(net.now)[0].id;
    net.core.hangup(net.now, call).unwrap();
    net.settle();
    let (to, bye) = net
        .sent_unique(Method::Bye)
        .into_iter()
        .find(|(_, b)| b.call_id().unwrap() == ack.call_id().unwrap())
        .unwrap();
    assert_eq!(to, addr(CARRIER), "route set unchanged");
    assert_eq!(
        bye.uri.to_string(),
        "sip:gw@192.0.2.52:5060",
        "new remote target"
    );
}

#[test]
fn provisional_without_to_tag_makes_no_early_dialog_and_the_call_goes_on() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier_invite();
    let mut odd = make_response(&invite, 183, None);
    odd.headers.add(HeaderKind::Require, "100rel");
    odd.headers.add(HeaderKind::RSeq, "1");
    net.carrier.respond(net.now, tx, odd);
    net.settle();
    assert!(
        net.sent_requests(Method::Prack).is_empty(),
        "no dialog to PRACK in"
    );
    assert!(net
        .events()
        .iter()
        .any(|e| matches!(e, dialer::control::ApiEvent::Progress { status: 183, .. })));
    net.carrier.respond(
        net.now,
        tx,
        carrier_ok(
            &invite,
            "c1",
            Some(answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000)),
        ),
    );
    net.settle();
    assert_eq!(net.sent_unique(Method::Ack).len(), 1);
    assert_eq!(net.agent.received_requests(Method::Invite).len(), 1);
}

#[test]
fn sdp_of_the_200_wins_over_a_differing_183() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier_invite();
    let mut early = make_response(&invite, 183, Some("c1"));
    early.set_body(
        "application/sdp",
        answer(&invite, vec![Codec::Pcmu], "192.0.2.51", 31000),
    );
    net.carrier.respond(net.now, tx, early);
    net.settle();
    assert_eq!(last_set_leg(&net, Side::Customer).codec, Codec::Pcmu);
    net.carrier.respond(
        net.now,
        tx,
        carrier_ok(
            &invite,
            "c1",
            Some(answer(&invite, vec![Codec::Pcma], "192.0.2.53", 30000)),
        ),
    );
    net.settle();
    let n = last_set_leg(&net, Side::Customer);
    assert_eq!(n.codec, Codec::Pcma);
    assert_eq!(n.remote_rtp, Some(addr("192.0.2.53:30000")));
    net.agent_answers();
    let call = net.core.calls(net.now)[0].id;
    net.core.hangup(net.now, call).unwrap();
    net.settle();
    net.carrier.answer_byes(net.now);
    net.agent.answer_byes(net.now);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.cdr().customer_codec.as_deref(), Some("PCMA"));
}

#[test]
fn opus_agent_with_telephone_event_at_48000_keeps_its_event_payload_type() {
    let mut net = Net::new();
    net.agent_codecs = vec![Codec::Opus, Codec::Pcmu];
    net.customer_answers();
    let (atx, ainv) = net.agent.take_request(Method::Invite).unwrap();
    let offer = String::from_utf8(ainv.body.clone()).unwrap();
    assert!(offer.contains("telephone-event/48000"), "{offer}");
    // The agent answers with its own numbers: Opus 111, telephone-event/48000 on 101.
    let sdp = "v=0\r\no=- 7 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
               m=audio 4000 RTP/AVP 111 101\r\na=rtpmap:111 opus/48000/2\r\n\
               a=rtpmap:101 telephone-event/48000\r\na=fmtp:101 0-16\r\n";
    let mut ok = make_response(&ainv, 200, Some("a1"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:1000@10.0.0.5:5060;ob>");
    ok.set_body("application/sdp", sdp.as_bytes().to_vec());
    net.agent.respond(net.now, atx, ok);
    net.settle();
    let n = last_set_leg(&net, Side::Agent);
    assert_eq!(n.codec, Codec::Opus);
    let te = n.telephone_event.expect("telephone-event negotiated");
    assert_eq!(te.clock_rate, 48000);
    assert_eq!(te.send_payload_type.0, 101);
    assert!(net.events().iter().any(|e| matches!(
        e,
        dialer::control::ApiEvent::Bridged {
            transcoding: true,
            ..
        }
    )));
}
