use super::*;
use crate::message::Message;

fn req(s: &str) -> Request {
    match Message::parse(s.replace('\n', "\r\n").as_bytes()).unwrap() {
        Message::Request(r) => r,
        _ => panic!("not a request"),
    }
}

fn resp(s: &str) -> Response {
    match Message::parse(s.replace('\n', "\r\n").as_bytes()).unwrap() {
        Message::Response(r) => r,
        _ => panic!("not a response"),
    }
}

const INVITE: &str = "INVITE sip:+15551234567@carrier.example.net SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKaaa;rport
From: <sip:dialer@carrier.example.net>;tag=ours
To: <sip:+15551234567@carrier.example.net>
Call-ID: call-1
CSeq: 7 INVITE
Contact: <sip:dialer@192.0.2.10:5060>
Content-Length: 0

";

const OK_WITH_ROUTES: &str = "SIP/2.0 200 OK
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKaaa;rport=5060
Record-Route: <sip:proxy2.example.net;lr>, <sip:198.51.100.1:5060;lr;ftag=ours>
From: <sip:dialer@carrier.example.net>;tag=ours
To: <sip:+15551234567@carrier.example.net>;tag=theirs
Call-ID: call-1
CSeq: 7 INVITE
Contact: <sip:gw@203.0.113.50:5080;transport=udp>
Content-Length: 0

";

#[test]
fn ack_for_2xx_goes_to_contact_via_route_set() {
    let invite = req(INVITE);
    let ok = resp(OK_WITH_ROUTES);
    let d = Dialog::uac(&invite, &ok).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    let ack = d.ack(7);
    // RFC 3261 §13.2.2.4: Request-URI is the 2xx Contact; Route is the reversed Record-Route.
    assert_eq!(
        ack.uri.to_string(),
        "sip:gw@203.0.113.50:5080;transport=udp"
    );
    let routes = ack.routes().unwrap();
    assert_eq!(
        routes[0].uri.to_string(),
        "sip:198.51.100.1:5060;lr;ftag=ours"
    );
    assert_eq!(routes[1].uri.to_string(), "sip:proxy2.example.net;lr");
    assert_eq!(ack.cseq().unwrap().to_string(), "7 ACK");
    assert_eq!(ack.to_header().unwrap().tag(), Some("theirs"));
    assert_eq!(ack.from_header().unwrap().tag(), Some("ours"));
    // The datagram goes to the first route, not to the Contact.
    assert_eq!(
        d.next_hop().to_string(),
        "sip:198.51.100.1:5060;lr;ftag=ours"
    );
}

#[test]
fn bye_uses_next_cseq_and_same_route_set() {
    let mut d = Dialog::uac(&req(INVITE), &resp(OK_WITH_ROUTES)).unwrap();
    let bye = d.request(Method::Bye);
    assert_eq!(bye.cseq().unwrap().to_string(), "8 BYE");
    assert_eq!(
        bye.uri.to_string(),
        "sip:gw@203.0.113.50:5080;transport=udp"
    );
    assert_eq!(bye.routes().unwrap().len(), 2);
    assert!(bye.headers.get(HeaderKind::Contact).is_none());
}

#[test]
fn strict_router_becomes_request_uri_and_target_goes_last() {
    let ok = OK_WITH_ROUTES.replace(
        "Record-Route: <sip:proxy2.example.net;lr>, <sip:198.51.100.1:5060;lr;ftag=ours>",
        "Record-Route: <sip:strict.example.net>",
    );
    let mut d = Dialog::uac(&req(INVITE), &resp(&ok)).unwrap();
    let bye = d.request(Method::Bye);
    assert_eq!(bye.uri.to_string(), "sip:strict.example.net");
    let routes = bye.routes().unwrap();
    assert_eq!(routes.len(), 1);
    assert_eq!(
        routes[0].uri.to_string(),
        "sip:gw@203.0.113.50:5080;transport=udp"
    );
}

#[test]
fn early_dialog_from_180_is_confirmed_by_the_200_route_set() {
    let ringing = "SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKaaa
From: <sip:dialer@carrier.example.net>;tag=ours
To: <sip:+15551234567@carrier.example.net>;tag=theirs
Call-ID: call-1
CSeq: 7 INVITE
Content-Length: 0

";
    let mut d = Dialog::uac(&req(INVITE), &resp(ringing)).unwrap();
    assert_eq!(d.state, DialogState::Early);
    assert!(d.route_set.is_empty());
    d.confirm(&resp(OK_WITH_ROUTES)).unwrap();
    assert_eq!(d.state, DialogState::Confirmed);
    assert_eq!(d.route_set.len(), 2);
    assert_eq!(
        d.remote_target.to_string(),
        "sip:gw@203.0.113.50:5080;transport=udp"
    );
}

#[test]
fn forked_provisionals_make_separate_early_dialogs() {
    let mk = |tag: &str| {
        resp(&format!(
            "SIP/2.0 183 Session Progress
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKaaa
From: <sip:dialer@carrier.example.net>;tag=ours
To: <sip:+15551234567@carrier.example.net>;tag={tag}
Call-ID: call-1
CSeq: 7 INVITE
Contact: <sip:{tag}@203.0.113.9>
Content-Length: 0

"
        ))
    };
    let a = Dialog::uac(&req(INVITE), &mk("a")).unwrap();
    let b = Dialog::uac(&req(INVITE), &mk("b")).unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.call_id, b.id.call_id);
    assert_eq!(b.remote_target.to_string(), "sip:b@203.0.113.9");
}

#[test]
fn uas_dialog_keeps_record_route_order_and_rejects_old_cseq() {
    let invite = req(&INVITE.replace(
        "Contact: <sip:dialer@192.0.2.10:5060>",
        "Record-Route: <sip:p1;lr>, <sip:p2;lr>\nContact: <sip:dialer@192.0.2.10:5060>",
    ));
    let mut ok = crate::endpoint::make_response(&invite, 200, Some("uas-tag"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:agent@192.0.2.20>");
    let mut d = Dialog::uas(&invite, &ok).unwrap();
    assert_eq!(d.id.local_tag, "uas-tag");
    assert_eq!(d.route_set[0].uri.to_string(), "sip:p1;lr");
    let bye = d.request(Method::Bye);
    assert_eq!(bye.uri.to_string(), "sip:dialer@192.0.2.10:5060");
    assert_eq!(bye.to_header().unwrap().tag(), Some("ours"));
    let mut old = invite.clone();
    old.headers.set(HeaderKind::CSeq, "3 INFO");
    old.method = Method::Info;
    assert_eq!(
        d.on_remote_request(&old),
        Err(DialogError::CSeqOutOfOrder { got: 3, last: 7 })
    );
}

#[test]
fn target_refresh_replaces_contact_but_not_route_set() {
    let mut d = Dialog::uac(&req(INVITE), &resp(OK_WITH_ROUTES)).unwrap();
    let reinvite_ok = OK_WITH_ROUTES
        .replace(
            "Record-Route: <sip:proxy2.example.net;lr>, <sip:198.51.100.1:5060;lr;ftag=ours>\n",
            "",
        )
        .replace("sip:gw@203.0.113.50:5080", "sip:gw@203.0.113.77:5090");
    d.refresh_target(&resp(&reinvite_ok));
    assert_eq!(
        d.remote_target.to_string(),
        "sip:gw@203.0.113.77:5090;transport=udp"
    );
    assert_eq!(d.route_set.len(), 2);
}
