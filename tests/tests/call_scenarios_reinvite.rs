//! A re-INVITE without SDP from the carrier: our 2xx carries the offer, the ACK the answer
//! (RFC 3261 §14.2, RFC 3264 §4), and the relay follows the answer.

mod scenario_net;

use dialer::b2bua::MediaOp;
use media::relay::Side;
use media::sdp::{answer_offer, Codec, LocalEndpoint, MediaConfig, SessionDescription};
use scenario_net::*;
use sip_core::endpoint::{Event, Target};
use sip_core::message::{HeaderKind, Method, SipMessage};
use sip_core::transaction::Transport;

#[test]
fn reinvite_without_sdp_gets_our_offer_and_the_answer_in_the_ack_moves_the_relay() {
    let mut net = Net::new();
    let ack = net.customer_answers();

    // The carrier re-INVITEs without a body (an offerless re-INVITE, RFC 3261 §14.1).
    let mut re = in_dialog(&ack, Method::Invite, 1, "sip:+15550100@192.0.2.10:5060");
    re.headers
        .add(HeaderKind::Contact, "<sip:gw@192.0.2.51:5060>");
    net.carrier.send(net.now, re.clone());
    net.settle();
    let ok = net
        .carrier
        .events
        .iter()
        .find_map(|e| match e {
            Event::Response { response, .. } if response.status == 200 => {
                (response.cseq().unwrap().seq == 1).then(|| response.clone())
            }
            _ => None,
        })
        .expect("the re-INVITE was answered 200");
    let offer = SessionDescription::parse_bytes(&ok.body).expect("the 2xx carries our offer");
    let before = net.media_ops().len();

    // The answer, in the ACK, moves the carrier's media to a new port.
    let config = MediaConfig {
        codecs: vec![Codec::Pcma],
        ..MediaConfig::default()
    };
    let local = LocalEndpoint {
        address: "192.0.2.51".parse().unwrap(),
        rtp_port: 30100,
        session_id: 7,
        session_version: 2,
    };
    let (sdp, _) = answer_offer(&offer, &config, &local).expect("our offer has PCMA");
    let mut ack2 = in_dialog(&ack, Method::Ack, 1, "sip:+15550100@192.0.2.10:5060");
    let mut to = ok.to_header().unwrap();
    to.params.set("tag", ok.to_header().unwrap().tag());
    ack2.headers.set(HeaderKind::To, to.to_string());
    ack2.set_body("application/sdp", sdp.to_sdp_string().into_bytes());
    net.carrier.endpoint.send_stateless(
        ack2,
        Target {
            addr: addr(DIALER),
            transport: Transport::Udp,
        },
    );
    net.settle();
    let moved = net.media_ops()[before..].iter().find_map(|o| match o {
        MediaOp::SetLeg {
            side: Side::Customer,
            negotiated,
        } => Some(negotiated.clone()),
        _ => None,
    });
    let moved = moved.expect("the answer in the ACK reached the relay");
    assert_eq!(moved.remote_rtp, Some("192.0.2.51:30100".parse().unwrap()));
    assert_eq!(moved.codec, Codec::Pcma);
}

#[test]
fn a_later_ack_without_a_pending_offer_changes_nothing() {
    let mut net = Net::new();
    let ack = net.customer_answers();
    let invite = net.carrier.received_requests(Method::Invite)[0].clone();
    let before = net.media_ops().len();
    // A stray ACK with a body, not answering anything we offered: ignored.
    let mut stray = in_dialog(&ack, Method::Ack, 1, "sip:+15550100@192.0.2.10:5060");
    stray.set_body(
        "application/sdp",
        answer(&invite, vec![Codec::Pcma], "192.0.2.99", 40000),
    );
    net.carrier.endpoint.send_stateless(
        stray,
        Target {
            addr: addr(DIALER),
            transport: Transport::Udp,
        },
    );
    net.settle();
    assert!(
        !net.media_ops()[before..]
            .iter()
            .any(|o| matches!(o, MediaOp::SetLeg { .. })),
        "no offer was pending"
    );
}
