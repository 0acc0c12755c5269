//! `dialer pcap rtp|audio` on a call whose SDP keys SRTP with SDES (RFC 4568): the streams are
//! marked SRTP, and their audio is not decoded; a call whose offer had `a=crypto` but whose
//! answer had none stays plain RTP. Keys the capture's writer starred out still mark it.

mod common;

use common::{dialer, pcap_file, scratch, udp_frame};

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

fn sip(first: &str, cseq: &str, body: &str) -> Vec<u8> {
    format!(
        "{first}\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK{}\r\nMax-Forwards: 70\r\n\
         From: <sip:a@10.0.0.1>;tag=1\r\nTo: <sip:b@10.0.0.2>;tag=2\r\nCall-ID: call-1\r\n\
         CSeq: {cseq}\r\nContact: <sip:a@10.0.0.1>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{body}",
        cseq.replace(' ', ""),
        body.len()
    )
    .into_bytes()
}

fn sdp(ip: &str, port: u16, proto: &str, key: Option<&str>) -> String {
    let crypto = key.map_or(String::new(), |k| {
        format!("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}\r\n")
    });
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} {proto} 0\r\n{crypto}"
    )
}

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0x5A; 170]);
    p
}

/// A capture of one call with these two SDP bodies and 20 packets each way.
fn call(name: &str, offer: &str, answer: &str) -> String {
    let mut frames = vec![
        udp_frame(
            A,
            5060,
            B,
            5060,
            &sip("INVITE sip:b@10.0.0.2 SIP/2.0", "1 INVITE", offer),
        ),
        udp_frame(B, 5060, A, 5060, &sip("SIP/2.0 200 OK", "1 INVITE", answer)),
    ];
    for i in 0..20 {
        frames.push(udp_frame(A, 4000, B, 5000, &rtp(i, 0x11)));
        frames.push(udp_frame(B, 5000, A, 4000, &rtp(100 + i, 0x22)));
    }
    let path = scratch(name);
    std::fs::write(&path, pcap_file(1, &frames)).expect("scratch is writable");
    path.to_str().expect("UTF-8 path").to_string()
}

fn srtp_flags(p: &str) -> Vec<bool> {
    let run = dialer(&["pcap", "rtp", "--json", p]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.json()["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["srtp"].as_bool().expect("srtp"))
        .collect()
}

#[test]
fn sdes_keyed_streams_are_marked_srtp_and_their_audio_is_not_decoded() {
    let stars = "*".repeat(KEY.len());
    for (name, offer, answer) in [
        (
            "srtp-savp.pcap",
            sdp("10.0.0.1", 4000, "RTP/SAVP", Some(KEY)),
            sdp("10.0.0.2", 5000, "RTP/SAVP", Some(KEY)),
        ),
        (
            "srtp-avp-crypto.pcap",
            sdp("10.0.0.1", 4000, "RTP/AVP", Some(KEY)),
            sdp("10.0.0.2", 5000, "RTP/AVP", Some(KEY)),
        ),
        (
            "srtp-starred.pcap",
            sdp("10.0.0.1", 4000, "RTP/AVP", Some(&stars)),
            sdp("10.0.0.2", 5000, "RTP/AVP", Some(&stars)),
        ),
    ] {
        let p = call(name, &offer, &answer);
        assert_eq!(srtp_flags(&p), [true, true], "{name}");
        let text = dialer(&["pcap", "rtp", &p]);
        assert!(
            text.stdout.contains("0 PCMU, SRTP"),
            "{name}: {}",
            text.stdout
        );
        let wav = scratch(&format!("{name}.wav"));
        let audio = dialer(&[
            "pcap",
            "audio",
            &p,
            "--ssrc",
            "0x00000011",
            "-o",
            wav.to_str().expect("UTF-8 path"),
        ]);
        assert_eq!(audio.code, 1, "{name}: {}", audio.stdout);
        assert!(
            audio.stderr.contains("is SRTP") && audio.stderr.contains("encrypted"),
            "{name}: {}",
            audio.stderr
        );
    }
}

#[test]
fn an_offer_with_a_crypto_answered_plainly_stays_rtp() {
    let p = call(
        "srtp-declined.pcap",
        &sdp("10.0.0.1", 4000, "RTP/AVP", Some(KEY)),
        &sdp("10.0.0.2", 5000, "RTP/AVP", None),
    );
    assert_eq!(srtp_flags(&p), [false, false]);
}
