use super::*;
use capture::Packet;

const ALICE: &str = "203.0.113.5:5060";
const PROXY: &str = "198.51.100.1:5060";
const BOB: &str = "198.51.100.20:5080";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test addresses are literals")
}

/// A message with the usual headers of one call between Alice and Bob.
fn sip(start: &str, via: &str, cseq: &str, to_tag: &str, extra: &[&str], body: &str) -> Vec<u8> {
    let mut m = format!(
        "{start}\r\nVia: {via}\r\nFrom: <sip:alice@example.com>;tag=alice1\r\n\
To: <sip:bob@example.com>{to_tag}\r\nCall-ID: call-1\r\nCSeq: {cseq}\r\nMax-Forwards: 70\r\n"
    );
    for h in extra {
        m.push_str(h);
        m.push_str("\r\n");
    }
    m.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    m.into_bytes()
}

fn udp(index: usize, src: &str, dst: &str, payload: Vec<u8>) -> Packet {
    Packet {
        index,
        time: Duration::from_millis(1000 + 10 * index as u64),
        src: addr(src),
        dst: addr(dst),
        transport: Transport::Udp,
        payload,
    }
}

const VIA_A: &str = "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa1";
const VIA_PA: &str =
    "SIP/2.0/UDP 198.51.100.1:5060;branch=z9hG4bKp1,SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa1";
const RR: &str = "Record-Route: <sip:198.51.100.1:5060;lr>";
const CONTACT_B: &str = "Contact: <sip:bob@198.51.100.20:5080>";
const TAG_B: &str = ";tag=bob1";

/// INVITE through a record-routing proxy, 180, 200 back to Alice.
fn invite_to_200() -> Vec<Packet> {
    vec![
        udp(
            1,
            ALICE,
            PROXY,
            sip(
                "INVITE sip:bob@example.com SIP/2.0",
                VIA_A,
                "1 INVITE",
                "",
                &["Contact: <sip:alice@203.0.113.5:5060>"],
                "",
            ),
        ),
        udp(
            2,
            PROXY,
            BOB,
            sip(
                "INVITE sip:bob@198.51.100.20:5080 SIP/2.0",
                VIA_PA,
                "1 INVITE",
                "",
                &[RR, "Contact: <sip:alice@203.0.113.5:5060>"],
                "",
            ),
        ),
        udp(
            3,
            BOB,
            PROXY,
            sip(
                "SIP/2.0 200 OK",
                VIA_PA,
                "1 INVITE",
                TAG_B,
                &[RR, CONTACT_B],
                "",
            ),
        ),
        udp(
            4,
            PROXY,
            ALICE,
            sip(
                "SIP/2.0 200 OK",
                VIA_A,
                "1 INVITE",
                TAG_B,
                &[RR, CONTACT_B],
                "",
            ),
        ),
    ]
}

fn ack(index: usize, dst: &str, uri: &str, route: Option<&str>) -> Packet {
    let extra: Vec<&str> = route.into_iter().collect();
    udp(
        index,
        ALICE,
        dst,
        sip(
            &format!("ACK {uri} SIP/2.0"),
            "SIP/2.0/UDP 203.0.113.5:5060;branch=z9hG4bKa2",
            "1 ACK",
            TAG_B,
            &extra,
            "",
        ),
    )
}

fn bye_from_bob(index: usize) -> Packet {
    let bye = "BYE sip:alice@203.0.113.5:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 198.51.100.20:5080;branch=z9hG4bKb1\r\n\
From: <sip:bob@example.com>;tag=bob1\r\nTo: <sip:alice@example.com>;tag=alice1\r\n\
Call-ID: call-1\r\nCSeq: 1 BYE\r\nMax-Forwards: 70\r\n\
Route: <sip:198.51.100.1:5060;lr>\r\nContent-Length: 0\r\n\r\n";
    udp(index, BOB, PROXY, bye.as_bytes().to_vec())
}

fn analyse_packets(packets: Vec<Packet>) -> Ladder {
    analyse(
        &Capture {
            packets,
            warnings: vec![],
        },
        None,
    )
}

fn kinds(call: &Call) -> Vec<FlagKind> {
    call.flags.iter().map(|f| f.kind).collect()
}

#[test]
fn ack_for_2xx_goes_to_contact_via_route_set() {
    let mut packets = invite_to_200();
    packets.push(ack(
        5,
        PROXY,
        "sip:bob@198.51.100.20:5080",
        Some("Route: <sip:198.51.100.1:5060;lr>"),
    ));
    packets.push(bye_from_bob(6));
    let ladder = analyse_packets(packets);
    assert_eq!(ladder.calls.len(), 1);
    let call = &ladder.calls[0];
    assert_eq!(call.messages.len(), 6);
    assert!(call.flags.is_empty(), "{:?}", call.flags);
    assert_eq!(
        call.outcome,
        "answered, ended by BYE from callee 198.51.100.20:5080"
    );
    assert_eq!(call.messages[0].label(), "INVITE sip:bob@example.com");
    assert_eq!(call.messages[3].label(), "200 OK");
    assert_eq!(call.messages[4].cseq, "1 ACK");
}

#[test]
fn ack_reusing_the_invite_request_uri_without_route_is_flagged() {
    let mut packets = invite_to_200();
    packets.push(ack(5, PROXY, "sip:bob@example.com", None));
    let ladder = analyse_packets(packets);
    let call = &ladder.calls[0];
    assert_eq!(kinds(call), vec![FlagKind::AckMisrouted]);
    let m = &call.flags[0].message;
    assert!(m.contains("Request-URI is sip:bob@example.com"), "{m}");
    assert!(m.contains("sip:bob@198.51.100.20:5080"), "{m}");
    assert!(m.contains("Route is []"), "{m}");
    assert_eq!(call.flags[0].packet, 5);
}

#[test]
fn ack_bypassing_the_first_route_is_flagged_with_where_it_went() {
    let mut packets = invite_to_200();
    packets.push(ack(
        5,
        BOB,
        "sip:bob@198.51.100.20:5080",
        Some("Route: <sip:198.51.100.1:5060;lr>"),
    ));
    let call = &analyse_packets(packets).calls[0];
    assert_eq!(kinds(call), vec![FlagKind::AckMisrouted]);
    let m = &call.flags[0].message;
    assert!(
        m.contains("sent to 198.51.100.20:5080 but the first route is 198.51.100.1:5060"),
        "{m}"
    );
}

#[test]
fn a_2xx_without_ack_is_flagged_missing() {
    let call = &analyse_packets(invite_to_200()).calls[0];
    assert_eq!(kinds(call), vec![FlagKind::MissingAck]);
    assert_eq!(call.flags[0].packet, 3);
    assert_eq!(call.outcome, "answered, no BYE in the capture");
}

#[test]
fn private_contact_and_sdp_from_a_public_source_are_nat_traces() {
    let sdp = "v=0\r\no=- 1 1 IN IP4 192.168.1.10\r\ns=-\r\nc=IN IP4 192.168.1.10\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0\r\n";
    let invite = |index, src| {
        udp(
            index,
            src,
            PROXY,
            sip(
                "INVITE sip:bob@example.com SIP/2.0",
                "SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bKn1",
                "1 INVITE",
                "",
                &["Contact: <sip:alice@192.168.1.10:5060>"],
                sdp,
            ),
        )
    };
    let call = &analyse_packets(vec![invite(1, ALICE)]).calls[0];
    assert_eq!(kinds(call), vec![FlagKind::Nat; 3]);
    let all: String = call.flags.iter().map(|f| f.message.clone()).collect();
    for what in [
        "Contact 192.168.1.10",
        "Via sent-by 192.168.1.10",
        "SDP c= 192.168.1.10",
    ] {
        assert!(all.contains(what), "{what} missing from {all}");
    }
    // The same message seen inside the NAT (private source) is not a trace.
    let inside = &analyse_packets(vec![invite(1, "192.168.1.10:5060")]).calls[0];
    assert!(inside.flags.is_empty(), "{:?}", inside.flags);
}

#[test]
fn retransmitted_invite_is_marked_and_flagged_once() {
    let first = invite_to_200().remove(0);
    let mut again = first.clone();
    again.index = 2;
    let mut third = first.clone();
    third.index = 3;
    let call = &analyse_packets(vec![first, again, third]).calls[0];
    let marks: Vec<bool> = call.messages.iter().map(|s| s.retransmission).collect();
    assert_eq!(marks, vec![false, true, true]);
    assert_eq!(kinds(call), vec![FlagKind::Retransmission]);
    assert!(call.flags[0].message.contains("sent 3 times"));
    assert!(call.flags[0].message.contains("repeated in 2, 3"));
}

#[test]
fn same_branch_and_cseq_from_another_hop_is_not_a_retransmission() {
    let call = &analyse_packets(invite_to_200()).calls[0];
    assert!(call.messages.iter().all(|s| !s.retransmission));
}

fn final_response(index: usize, status: &str, cseq: &str) -> Packet {
    udp(
        index,
        PROXY,
        ALICE,
        sip(status, VIA_A, cseq, TAG_B, &[], ""),
    )
}

#[test]
fn busy_and_cancelled_calls_have_their_outcome() {
    let invite = invite_to_200().remove(0);
    let busy = analyse_packets(vec![
        invite.clone(),
        final_response(2, "SIP/2.0 486 Busy Here", "1 INVITE"),
    ]);
    assert_eq!(busy.calls[0].outcome, "486 Busy Here");
    let cancel = udp(
        2,
        ALICE,
        PROXY,
        sip(
            "CANCEL sip:bob@example.com SIP/2.0",
            VIA_A,
            "1 CANCEL",
            "",
            &[],
            "",
        ),
    );
    let cancelled = analyse_packets(vec![
        invite,
        cancel,
        final_response(3, "SIP/2.0 200 OK", "1 CANCEL"),
        final_response(4, "SIP/2.0 487 Request Terminated", "1 INVITE"),
    ]);
    assert_eq!(
        cancelled.calls[0].outcome,
        "cancelled (487 Request Terminated)"
    );
}

#[test]
fn garbage_that_looks_like_sip_is_listed_with_its_packet_and_position() {
    let ladder = analyse_packets(vec![udp(
        7,
        ALICE,
        PROXY,
        b"INVITE sip:bob@example.com SIP/2.0\r\nVia SIP/2.0/UDP x\r\n\r\n".to_vec(),
    )]);
    assert!(ladder.calls.is_empty());
    assert_eq!(ladder.unparsed.len(), 1);
    assert_eq!(ladder.unparsed[0].packet, 7);
    assert_eq!(ladder.unparsed[0].line, Some(2));
    assert_eq!(ladder.sip_frames, 1);
    assert_eq!(ladder.parsed_messages, 0);
}

#[test]
fn private_ranges_include_shared_space_and_unique_local() {
    for ip in [
        "10.1.2.3",
        "172.31.0.1",
        "192.168.0.1",
        "100.64.0.1",
        "100.127.255.254",
        "127.0.0.1",
        "fd00::1",
        "fe80::1",
        "::1",
    ] {
        assert!(is_private(ip.parse().expect("literal")), "{ip}");
    }
    for ip in [
        "100.128.0.1",
        "172.32.0.1",
        "8.8.8.8",
        "2001:db8::1",
        "203.0.113.5",
    ] {
        assert!(!is_private(ip.parse().expect("literal")), "{ip}");
    }
}
