//! The B2BUA core between a simulated carrier and a simulated agent behind NAT, in virtual
//! time: the whole call, failures, and the races between hang-ups and answers.

mod scenario_net;

use dialer::b2bua::MediaOp;
use dialer::control::{ApiEvent, HungUpBy};
use media::relay::Side;
use media::sdp::Codec;
use scenario_net::*;
use sip_core::auth::{DigestRequest, DigestServer, Secret, ServerConfig, Verification};
use sip_core::endpoint::{make_response, Event};
use sip_core::message::{HeaderKind, Message, Method, Request, SipMessage, Uri};
use sip_core::transaction::Transport;
use std::time::Duration;

/// The carrier challenges with 407, then answers 180 and a 200 whose Contact is its
/// gateway, behind a record-routing proxy.
fn carrier_answers(net: &mut Net, server: &mut DigestServer) {
    let (tx, invite) = net
        .carrier
        .take_request(Method::Invite)
        .expect("INVITE reached the carrier");
    assert!(invite.headers.get(HeaderKind::ProxyAuthorization).is_none());
    let mut challenge = make_response(&invite, 407, Some("c1"));
    for c in server.challenges(net.now.0, false) {
        challenge.headers.add(HeaderKind::ProxyAuthenticate, c);
    }
    net.carrier
        .endpoint
        .respond(net.now, tx, challenge)
        .unwrap();
    net.settle();
    let (tx, invite) = net
        .carrier
        .take_request(Method::Invite)
        .expect("INVITE retried with credentials");
    let auth = invite
        .headers
        .get(HeaderKind::ProxyAuthorization)
        .expect("Proxy-Authorization");
    let verdict = server.verify(
        net.now.0,
        &DigestRequest {
            method: "INVITE",
            uri: &invite.uri.to_string(),
            body: &invite.body,
        },
        auth,
        |u| (u == "dialer").then(|| Secret::Password("s3cret".into())),
    );
    assert!(
        matches!(verdict, Verification::Authenticated { .. }),
        "{verdict:?}"
    );
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&invite, 180, Some("c2")))
        .unwrap();
    let mut ok = make_response(&invite, 200, Some("c2"));
    ok.headers
        .add(HeaderKind::RecordRoute, "<sip:192.0.2.50:5060;lr>");
    ok.headers
        .add(HeaderKind::Contact, "<sip:gw@192.0.2.51:5060>");
    ok.set_body(
        "application/sdp",
        answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000),
    );
    net.carrier.endpoint.respond(net.now, tx, ok).unwrap();
    net.settle();
}

#[test]
fn customer_answer_plays_ringback_then_agent_answer_bridges_and_agent_bye_ends_both() {
    let mut net = Net::with_credentials();
    let mut server = DigestServer::new(ServerConfig::new("carrier.example.net", b"k".to_vec()));
    net.originate();
    carrier_answers(&mut net, &mut server);

    // The ACK for the 2xx went to the proxy (first route, loose) with the Contact as
    // Request-URI (RFC 3261 §13.2.2.4).
    let acks = net.sent_requests(Method::Ack);
    let (to, ack) = acks
        .iter()
        .find(|(_, a)| a.to_header().unwrap().tag() == Some("c2"))
        .unwrap();
    assert_eq!(*to, addr(CARRIER));
    assert_eq!(ack.uri.to_string(), "sip:gw@192.0.2.51:5060");
    assert_eq!(
        ack.routes().unwrap()[0].uri.to_string(),
        "sip:192.0.2.50:5060;lr"
    );

    // Ringback to the customer, and the agent called at its NAT binding with its Contact.
    let ops = net.media_ops();
    assert!(
        matches!(ops[0], MediaOp::SetLeg { side: Side::Customer, negotiated } if negotiated.codec == Codec::Pcma)
    );
    assert!(matches!(
        ops[1],
        MediaOp::StartRingback {
            side: Side::Customer,
            ..
        }
    ));
    let agent_invites = net.sent_requests(Method::Invite);
    let (to, inv) = agent_invites.last().unwrap();
    assert_eq!(*to, addr(AGENT_PUBLIC));
    assert_eq!(inv.uri.to_string(), "sip:1000@10.0.0.5:5060;ob");

    net.agent_answers();
    let ops = net.media_ops();
    assert!(ops.iter().any(|o| matches!(o, MediaOp::SetLeg { side: Side::Agent, negotiated } if negotiated.codec == Codec::Pcmu)));
    assert!(matches!(
        ops.last().unwrap(),
        MediaOp::StopRingback {
            side: Side::Customer
        }
    ));
    assert!(net.events().iter().any(|e| matches!(
        e,
        ApiEvent::Bridged {
            transcoding: true,
            ..
        }
    )));
    // The agent's ACK also went through its NAT binding.
    assert!(net
        .sent_requests(Method::Ack)
        .iter()
        .any(|(to, _)| *to == addr(AGENT_PUBLIC)));

    net.advance(Duration::from_secs(30));
    // The agent hangs up: its BYE is answered, and the carrier gets a BYE by the route set.
    let agent_dialog_bye = {
        let (_, inv) = net
            .agent
            .received
            .iter()
            .rev()
            .find_map(|(t, m)| match m {
                Message::Request(r) if r.method == Method::Invite => Some((*t, r.clone())),
                _ => None,
            })
            .unwrap();
        let ok = net
            .agent
            .received
            .iter()
            .find_map(|(_, m)| match m {
                Message::Request(r) if r.method == Method::Ack => Some(r.clone()),
                _ => None,
            })
            .unwrap();
        let mut bye = Request::new(
            Method::Bye,
            Uri::parse("sip:dialer@192.0.2.10:5060").unwrap(),
        );
        bye.headers
            .add(HeaderKind::From, ok.to_header().unwrap().to_string());
        bye.headers
            .add(HeaderKind::To, inv.from_header().unwrap().to_string());
        bye.headers.add(HeaderKind::CallId, inv.call_id().unwrap());
        bye.headers.add(HeaderKind::CSeq, "1 BYE");
        bye
    };
    net.agent
        .endpoint
        .send_request(
            net.now,
            agent_dialog_bye,
            sip_core::endpoint::Target {
                addr: addr(DIALER),
                transport: Transport::Udp,
            },
        )
        .unwrap();
    net.settle();
    let byes = net.sent_requests(Method::Bye);
    let (to, bye) = byes.last().expect("BYE to the carrier");
    assert_eq!(*to, addr(CARRIER));
    assert_eq!(bye.uri.to_string(), "sip:gw@192.0.2.51:5060");
    let (tx, bye) = net.carrier.take_request(Method::Bye).unwrap();
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&bye, 200, None))
        .unwrap();
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "bridged");
    assert_eq!(cdr.hung_up_by, HungUpBy::Agent);
    assert_eq!(cdr.q850_cause, 16);
    assert_eq!(cdr.customer_codec.as_deref(), Some("PCMA"));
    assert_eq!(cdr.agent_codec.as_deref(), Some("PCMU"));
    assert_eq!(cdr.packets_to_agent, 250);
    assert!(cdr.bridged.is_some() && cdr.answered.is_some());
    assert_eq!(net.core.call_count(), 0);
}

#[test]
fn busy_carrier_ends_the_call_with_cause_17() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier.take_request(Method::Invite).unwrap();
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&invite, 486, Some("b")))
        .unwrap();
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "busy");
    assert_eq!(cdr.sip_status, 486);
    assert_eq!(cdr.q850_cause, 17);
    assert!(net.agent.received.is_empty(), "the agent was never called");
}

#[test]
fn no_answer_within_the_originate_timeout_cancels_the_invite() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier.take_request(Method::Invite).unwrap();
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&invite, 180, Some("r")))
        .unwrap();
    net.settle();
    net.advance(Duration::from_secs(61));
    assert_eq!(net.sent_requests(Method::Cancel).len(), 1);
    // The carrier's endpoint answered the CANCEL with 200 and reports it; it ends the
    // INVITE with 487.
    assert!(net
        .carrier
        .events
        .iter()
        .any(|e| matches!(e, Event::Cancelled { .. })));
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&invite, 487, Some("r")))
        .unwrap();
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "no_answer");
    assert_eq!(cdr.q850_cause, 19);
    assert_eq!(cdr.hung_up_by, HungUpBy::Dialer);
}

#[test]
fn hangup_by_the_api_before_the_answer_cancels_and_records_487() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier.take_request(Method::Invite).unwrap();
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&invite, 180, Some("r")))
        .unwrap();
    net.settle();
    let call = net.core.calls(net.now)[0].id;
    net.core.hangup(net.now, call).expect("the call exists");
    net.settle();
    assert_eq!(net.sent_requests(Method::Cancel).len(), 1);
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&invite, 487, Some("r")))
        .unwrap();
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "hangup");
    assert_eq!(cdr.sip_status, 487, "RFC 3261 §9.2: the INVITE ended 487");
    assert_eq!(cdr.hung_up_by, HungUpBy::Dialer);
}

#[test]
fn a_2xx_after_the_cancelled_call_ended_is_acked_and_ended_with_one_bye() {
    let mut net = Net::new();
    net.originate();
    let (tx, invite) = net.carrier.take_request(Method::Invite).unwrap();
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&invite, 180, Some("r")))
        .unwrap();
    net.settle();
    let call = net.core.calls(net.now)[0].id;
    net.core.hangup(net.now, call).expect("the call exists");
    net.settle();
    // The carrier takes the CANCEL but never ends the INVITE: the call is given up
    // (RFC 3261 §9.1) and ends.
    net.advance(Duration::from_secs(40));
    assert_eq!(net.cdrs().len(), 1, "the call ended");
    assert_eq!(net.core.call_count(), 0);

    // Then the carrier answers after all.
    net.carrier.respond(
        net.now,
        tx,
        carrier_ok(
            &invite,
            "late",
            Some(answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000)),
        ),
    );
    net.settle();
    net.advance(Duration::from_secs(5));
    net.carrier.answer_byes(net.now);
    net.settle();
    // RFC 3261 §13.2.2.4: the 2xx is ACKed and its dialog ended, both sent to the 2xx's
    // Contact through its Record-Route.
    let acks = net.sent_unique(Method::Ack);
    let ack = acks
        .iter()
        .find(|(_, r)| r.cseq().unwrap().seq == invite.cseq().unwrap().seq)
        .expect("the late 2xx is ACKed");
    assert_eq!(ack.0, addr(CARRIER));
    assert_eq!(ack.1.uri.to_string(), "sip:gw@192.0.2.51:5060");
    let byes = net.sent_unique(Method::Bye);
    assert_eq!(byes.len(), 1, "one BYE: {byes:?}");
    let (to, bye) = &byes[0];
    assert_eq!(*to, addr(CARRIER));
    assert_eq!(bye.uri.to_string(), "sip:gw@192.0.2.51:5060");
    assert_eq!(
        bye.headers.get(HeaderKind::Route),
        Some("<sip:192.0.2.50:5060;lr>")
    );
    assert_eq!(bye.to_header().unwrap().tag(), Some("late"));
    assert_eq!(net.cdrs().len(), 1, "no second CDR");
}

#[test]
fn carrier_bye_while_the_agent_rings_cancels_the_agent() {
    let mut net = Net::with_credentials();
    let mut server = DigestServer::new(ServerConfig::new("carrier.example.net", b"k".to_vec()));
    net.originate();
    carrier_answers(&mut net, &mut server);
    let (atx, ainv) = net.agent.take_request(Method::Invite).unwrap();
    net.agent
        .endpoint
        .respond(net.now, atx, make_response(&ainv, 180, Some("a1")))
        .unwrap();
    net.settle();
    // The customer hangs up during the ringback.
    let ack = net
        .carrier
        .received
        .iter()
        .rev()
        .find_map(|(_, m)| match m {
            Message::Request(r) if r.method == Method::Ack => Some(r.clone()),
            _ => None,
        })
        .unwrap();
    let mut bye = Request::new(
        Method::Bye,
        Uri::parse("sip:+15550100@192.0.2.10:5060").unwrap(),
    );
    bye.headers
        .add(HeaderKind::From, ack.to_header().unwrap().to_string());
    bye.headers
        .add(HeaderKind::To, ack.from_header().unwrap().to_string());
    bye.headers.add(HeaderKind::CallId, ack.call_id().unwrap());
    bye.headers.add(HeaderKind::CSeq, "1 BYE");
    net.carrier
        .endpoint
        .send_request(
            net.now,
            bye,
            sip_core::endpoint::Target {
                addr: addr(DIALER),
                transport: Transport::Udp,
            },
        )
        .unwrap();
    net.settle();
    let cancels = net.sent_requests(Method::Cancel);
    assert_eq!(cancels.len(), 1);
    assert_eq!(cancels[0].0, addr(AGENT_PUBLIC));
    net.agent
        .endpoint
        .respond(net.now, atx, make_response(&ainv, 487, Some("a1")))
        .unwrap();
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "abandoned");
    assert_eq!(cdr.hung_up_by, HungUpBy::Customer);
}

#[test]
fn agent_200_crossing_the_cancel_is_acked_then_ended_with_bye() {
    let mut net = Net::with_credentials();
    let mut server = DigestServer::new(ServerConfig::new("carrier.example.net", b"k".to_vec()));
    net.originate();
    carrier_answers(&mut net, &mut server);
    let (atx, ainv) = net.agent.take_request(Method::Invite).unwrap();
    net.agent
        .endpoint
        .respond(net.now, atx, make_response(&ainv, 180, Some("a1")))
        .unwrap();
    net.settle();
    // The API hangs the call up while the agent's 200 is already on the wire.
    let mut ok = make_response(&ainv, 200, Some("a1"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:1000@10.0.0.5:5060>");
    ok.set_body(
        "application/sdp",
        answer(&ainv, vec![Codec::Pcmu], "10.0.0.5", 4000),
    );
    net.agent.endpoint.respond(net.now, atx, ok).unwrap();
    let call = net.core.calls(net.now)[0].id;
    net.core.hangup(net.now, call).unwrap();
    net.settle();
    let to_agent: Vec<String> = net
        .sent
        .iter()
        .filter(|(to, _)| *to == addr(AGENT_PUBLIC))
        .filter_map(|(_, m)| m.as_request().map(|r| r.method.to_string()))
        .collect();
    assert_eq!(to_agent, vec!["INVITE", "CANCEL", "ACK", "BYE"]);
}

#[test]
fn agent_busy_ends_the_answered_customer_with_bye() {
    let mut net = Net::with_credentials();
    let mut server = DigestServer::new(ServerConfig::new("carrier.example.net", b"k".to_vec()));
    net.originate();
    carrier_answers(&mut net, &mut server);
    let (atx, ainv) = net.agent.take_request(Method::Invite).unwrap();
    net.agent
        .endpoint
        .respond(net.now, atx, make_response(&ainv, 486, Some("a1")))
        .unwrap();
    net.settle();
    let byes = net.sent_requests(Method::Bye);
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].0, addr(CARRIER));
    let (tx, bye) = net.carrier.take_request(Method::Bye).unwrap();
    net.carrier
        .endpoint
        .respond(net.now, tx, make_response(&bye, 200, None))
        .unwrap();
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "agent_busy");
    assert_eq!(cdr.q850_cause, 17);
    assert_eq!(cdr.hung_up_by, HungUpBy::Agent);
}

#[test]
fn wrong_trunk_password_ends_the_call_as_rejected_without_looping() {
    let mut net = Net::with_credentials();
    let mut server = DigestServer::new(ServerConfig::new("carrier.example.net", b"k".to_vec()));
    net.originate();
    for _ in 0..3 {
        let Some((tx, invite)) = net.carrier.take_request(Method::Invite) else {
            break;
        };
        let mut challenge = make_response(&invite, 407, Some("c1"));
        for c in server.challenges(net.now.0, false) {
            challenge.headers.add(HeaderKind::ProxyAuthenticate, c);
        }
        net.carrier
            .endpoint
            .respond(net.now, tx, challenge)
            .unwrap();
        net.settle();
    }
    assert_eq!(
        net.sent_requests(Method::Invite).len(),
        2,
        "one retry with credentials, no more"
    );
    assert_eq!(net.cdr().outcome, "rejected");
    let _ = &mut server;
}
