//! `dialer pcap ladder|rtp` on captures built here: SIP over SCTP inside PPPoE sessions, and a
//! call that moves its media to T.38; compared with tshark where it is installed.

mod common;

use std::collections::BTreeMap;

use common::{dialer, pcap_file, scratch, tshark, udp_frame};

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];

fn sip(first: &str, cseq: &str, body: &str) -> Vec<u8> {
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{first}\r\nVia: SIP/2.0/SCTP 10.0.0.1;branch=z9hG4bK{}\r\nMax-Forwards: 70\r\n\
         From: <sip:a@10.0.0.1>;tag=1\r\nTo: <sip:b@10.0.0.2>;tag=2\r\nCall-ID: call-1\r\n\
         CSeq: {cseq}\r\nContact: <sip:a@10.0.0.1;transport=sctp>\r\n{content_type}\
         Content-Length: {}\r\n\r\n{body}",
        cseq.replace(' ', ""),
        body.len()
    )
    .into_bytes()
}

/// An Ethernet frame carrying a PPPoE session (RFC 2516 §4) with PPP protocol 0x0021 (IPv4),
/// then SCTP with one DATA chunk (RFC 9260 §3.3.1) of `tsn`.
fn sctp_in_pppoe(src: [u8; 4], dst: [u8; 4], tsn: u32, user: &[u8]) -> Vec<u8> {
    let mut chunk = vec![0, 3];
    chunk.extend_from_slice(&((16 + user.len()) as u16).to_be_bytes());
    chunk.extend_from_slice(&tsn.to_be_bytes());
    chunk.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
    chunk.extend_from_slice(user);
    chunk.resize(chunk.len().next_multiple_of(4), 0);
    let mut sctp = [5060u16.to_be_bytes(), 5060u16.to_be_bytes()].concat();
    let tag: u32 = if src == A { 0xA } else { 0xB };
    sctp.extend_from_slice(&tag.to_be_bytes());
    sctp.extend_from_slice(&[0; 4]);
    sctp.extend_from_slice(&chunk);
    let total = (20 + sctp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, 132, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&sctp);
    let mut ppp = vec![0x00, 0x21];
    ppp.extend_from_slice(&ip);
    let mut frame = vec![
        2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0x64, 0x11, 0, 0, 7,
    ];
    frame.extend_from_slice(&(ppp.len() as u16).to_be_bytes());
    frame.extend_from_slice(&ppp);
    frame
}

fn write(name: &str, frames: &[Vec<u8>]) -> String {
    let path = scratch(name);
    std::fs::write(&path, pcap_file(1, frames)).expect("scratch is writable");
    path.to_str().expect("UTF-8 path").to_string()
}

#[test]
fn ladder_of_a_call_over_sctp_inside_pppoe_shows_each_message_once_as_tshark() {
    let invite = sip("INVITE sip:b@10.0.0.2 SIP/2.0", "1 INVITE", "");
    let frames = [
        sctp_in_pppoe(A, B, 1, &invite),
        sctp_in_pppoe(A, B, 1, &invite), // SCTP retransmission: same TSN
        sctp_in_pppoe(B, A, 1, &sip("SIP/2.0 200 OK", "1 INVITE", "")),
        sctp_in_pppoe(A, B, 2, &sip("ACK sip:b@10.0.0.2 SIP/2.0", "1 ACK", "")),
        sctp_in_pppoe(A, B, 3, &sip("BYE sip:b@10.0.0.2 SIP/2.0", "2 BYE", "")),
        sctp_in_pppoe(B, A, 2, &sip("SIP/2.0 200 OK", "2 BYE", "")),
    ];
    let p = write("sctp-pppoe.pcap", &frames);
    let run = dialer(&["pcap", "ladder", "--json", &p]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let j = run.json();
    let messages = j["calls"][0]["messages"].as_array().expect("one call");
    let steps: Vec<(u64, &str)> = messages
        .iter()
        .map(|m| {
            let packet = m["packet"].as_u64().expect("packet");
            (packet, m["transport"].as_str().expect("transport"))
        })
        .collect();
    assert_eq!(
        steps,
        [1, 3, 4, 5, 6].map(|packet| (packet, "SCTP")),
        "{messages:#?}"
    );
    assert_eq!(j["sip_frames"], 5);
    if let Some(out) = tshark(&["-r", &p, "-Y", "sip", "-T", "fields", "-e", "frame.number"]) {
        let theirs: Vec<u64> = out.lines().map(|l| l.parse().expect("frame")).collect();
        assert_eq!(theirs, [1, 3, 4, 5, 6]);
    }
}

fn sdp(ip: &str, port: u16, image: bool) -> String {
    let m = if image {
        format!("m=image {port} udptl t38\r\n")
    } else {
        format!("m=audio {port} RTP/AVP 0\r\n")
    };
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n{m}")
}

/// An RTP-shaped datagram (version 2, PCMU): before the switch RTP, after it UDPTL whose
/// sequence number happens to start with RTP's version bits.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xFF; 160]);
    p
}

/// (SSRC, packets) per stream from `tshark -z rtp,streams`.
fn tshark_packets(p: &str) -> Option<BTreeMap<u32, u64>> {
    let args = [
        "-r",
        p,
        "-q",
        "-z",
        "rtp,streams",
        "-o",
        "rtp.heuristic_rtp:TRUE",
    ];
    let out = tshark(&args)?;
    let mut streams = BTreeMap::new();
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = t.iter().position(|x| x.starts_with("0x")) else {
            continue;
        };
        let packets = t[at + 2]
            .parse()
            .expect("packet count after the payload name");
        let ssrc = u32::from_str_radix(&t[at][2..], 16).expect("hex SSRC");
        streams.insert(ssrc, packets);
    }
    Some(streams)
}

#[test]
fn rtp_stops_counting_a_port_from_the_answer_that_moves_it_to_t38() {
    let to_b = |body: Vec<u8>| udp_frame(A, 5060, B, 5060, &body);
    let to_a = |body: Vec<u8>| udp_frame(B, 5060, A, 5060, &body);
    let mut frames = vec![
        to_b(sip(
            "INVITE sip:b@10.0.0.2 SIP/2.0",
            "1 INVITE",
            &sdp("10.0.0.1", 4000, false),
        )),
        to_a(sip(
            "SIP/2.0 200 OK",
            "1 INVITE",
            &sdp("10.0.0.2", 5000, false),
        )),
    ];
    for i in 0..10 {
        frames.push(udp_frame(A, 4000, B, 5000, &rtp(i, 0x11)));
        frames.push(udp_frame(B, 5000, A, 4000, &rtp(100 + i, 0x22)));
    }
    frames.push(to_b(sip(
        "INVITE sip:b@10.0.0.2 SIP/2.0",
        "2 INVITE",
        &sdp("10.0.0.1", 4000, true),
    )));
    // Between the offer and its answer the port still carries RTP.
    for i in 10..13 {
        frames.push(udp_frame(A, 4000, B, 5000, &rtp(i, 0x11)));
    }
    frames.push(to_a(sip(
        "SIP/2.0 200 OK",
        "2 INVITE",
        &sdp("10.0.0.2", 5000, true),
    )));
    for i in 13..18 {
        frames.push(udp_frame(A, 4000, B, 5000, &rtp(i, 0x11)));
        frames.push(udp_frame(B, 5000, A, 4000, &rtp(100 + i, 0x22)));
    }
    let p = write("t38-switch.pcap", &frames);
    let run = dialer(&["pcap", "rtp", "--json", &p]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ours: BTreeMap<u32, u64> = run.json()["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            (
                s["ssrc"].as_u64().expect("ssrc") as u32,
                s["packets"].as_u64().expect("packets"),
            )
        })
        .collect();
    assert_eq!(ours, BTreeMap::from([(0x11, 13), (0x22, 10)]));
    if let Some(theirs) = tshark_packets(&p) {
        assert_eq!(ours, theirs, "ours vs tshark");
    }
}
