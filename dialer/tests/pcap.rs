//! `dialer pcap ladder|rtp|audio` on corpus captures and on broken input, run as the real
//! binary; counts are compared with tshark when it is installed.

mod common;

use common::{dialer, pcap, pcap_file, scratch, tshark, udp_frame};
use serde_json::Value;
use std::collections::BTreeMap;

fn ladder_json(name: &str) -> Option<Value> {
    let path = pcap(name)?;
    let run = dialer(&[
        "pcap",
        "ladder",
        "--json",
        path.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(run.code, 0, "{name}: {}", run.stderr);
    Some(run.json())
}

fn calls(j: &Value) -> &Vec<Value> {
    j["calls"].as_array().expect("calls is an array")
}

/// Every step label of every call: `INVITE`, `401 Unauthorized`, ...
fn labels(j: &Value) -> Vec<String> {
    calls(j)
        .iter()
        .flat_map(|c| c["messages"].as_array().expect("messages").iter())
        .map(|s| match s["method"].as_str() {
            Some(m) => m.to_string(),
            None => format!("{} {}", s["status"], s["reason"].as_str().unwrap_or("")),
        })
        .collect()
}

fn outcomes(j: &Value) -> Vec<String> {
    calls(j)
        .iter()
        .map(|c| c["outcome"].as_str().unwrap_or("").to_string())
        .collect()
}

fn transports(j: &Value) -> Vec<String> {
    calls(j)
        .iter()
        .flat_map(|c| c["messages"].as_array().expect("messages").iter())
        .map(|s| s["transport"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Every SIP message of the call is a parsed message, none rejected.
fn assert_all_parsed(name: &str, j: &Value) {
    let unparsed = j["unparsed"].as_array().expect("unparsed is an array");
    assert!(
        unparsed.is_empty(),
        "{name}: sip-core rejects real messages (a parser bug for sip-core): {unparsed:#?}"
    );
}

#[test]
fn ladder_sip_frame_counts_match_tshark_on_every_corpus_capture() {
    let Some(dir) = common::corpus() else { return };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("pcaps"))
        .expect("corpus pcaps directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    for path in files {
        let p = path.to_str().expect("UTF-8 path");
        let run = dialer(&["pcap", "ladder", "--json", p]);
        assert_eq!(run.code, 0, "{p}: {}", run.stderr);
        let ours = run.json()["sip_frames"].as_u64().expect("sip_frames");
        let Some(out) = tshark(&["-r", p, "-Y", "sip", "-T", "fields", "-e", "frame.number"])
        else {
            return;
        };
        assert_eq!(
            ours,
            out.lines().count() as u64,
            "{p}: SIP frames, ours vs tshark"
        );
    }
}

#[test]
fn ladder_of_wireshark_pcap_shows_register_challenges_cancel_and_failures() {
    let Some(j) = ladder_json("wireshark.pcap") else {
        return;
    };
    assert_all_parsed("wireshark.pcap", &j);
    let l = labels(&j);
    let count = |x: &str| l.iter().filter(|s| s.as_str() == x).count();
    assert_eq!(count("REGISTER"), 18);
    assert_eq!(
        count("401 Unauthorized") + count("401 nonce has changed"),
        14
    );
    assert_eq!(count("CANCEL"), 11);
    assert!(count("407 authentication required") >= 1);
    let o = outcomes(&j);
    for wanted in [
        "408 Request Timeout",
        "480 Error",
        "403 Wrong password or domain",
    ] {
        assert!(o.iter().any(|x| x == wanted), "{wanted} missing from {o:?}");
    }
    // The CANCEL of the 408 call is retransmitted: flagged, not counted as new requests.
    let flags: Vec<&Value> = calls(&j)
        .iter()
        .flat_map(|c| c["flags"].as_array().expect("flags").iter())
        .collect();
    assert!(flags.iter().any(|f| f["kind"] == "retransmission"
        && f["message"].as_str().unwrap_or("").starts_with("CANCEL")));
}

#[test]
fn ladder_of_asterisk_zfone_xlite_shows_the_challenged_answered_call() {
    let Some(j) = ladder_json("Asterisk_ZFONE_XLITE.pcap") else {
        return;
    };
    assert_all_parsed("Asterisk_ZFONE_XLITE.pcap", &j);
    let l = labels(&j);
    for wanted in [
        "REGISTER",
        "SUBSCRIBE",
        "OPTIONS",
        "INVITE",
        "180 Ringing",
        "ACK",
        "BYE",
    ] {
        assert!(l.iter().any(|x| x == wanted), "{wanted} missing from {l:?}");
    }
    let o = outcomes(&j);
    assert!(
        o.iter()
            .any(|x| x.starts_with("answered, ended by BYE from")),
        "{o:?}"
    );
}

#[test]
fn ladder_over_tcp_deframes_the_whole_call() {
    let Some(j) = ladder_json("sip_ipv4_tcp.pcap") else {
        return;
    };
    assert_all_parsed("sip_ipv4_tcp.pcap", &j);
    assert_eq!(
        labels(&j),
        [
            "INVITE",
            "100 Trying",
            "180 Ringing",
            "200 OK",
            "ACK",
            "BYE",
            "200 OK"
        ]
    );
    assert!(transports(&j).iter().all(|t| t == "TCP"));
    assert_eq!(
        outcomes(&j),
        ["answered, ended by BYE from callee 10.33.6.101:5060"]
    );
}

#[test]
fn ladder_over_websocket_shows_407_and_early_media() {
    let Some(j) = ladder_json("sip_tcp_websocket.pcap") else {
        return;
    };
    assert_all_parsed("sip_tcp_websocket.pcap", &j);
    let l = labels(&j);
    assert!(l.iter().any(|x| x == "407 Proxy Authentication Required"));
    assert_eq!(
        l.iter()
            .filter(|x| x.as_str() == "183 Session Progress")
            .count(),
        8
    );
    let t = transports(&j);
    assert!(t.iter().any(|x| x == "WS") && t.iter().any(|x| x == "UDP"));
    assert!(outcomes(&j).iter().any(|o| o.starts_with("answered")));
}

#[test]
fn ladder_over_ipv6_udp_parses_the_call() {
    let Some(j) = ladder_json("sip_ipv6_udp.pcap") else {
        return;
    };
    // The capture's phones write IPv6 hosts without brackets (sip:4321@fec0:0:0:0:...:22c:5060);
    // sip-core must accept them as tshark does.
    assert_all_parsed("sip_ipv6_udp.pcap", &j);
    assert_eq!(calls(&j).len(), 1);
    assert_eq!(calls(&j)[0]["messages"].as_array().map(Vec::len), Some(6));
}

#[test]
fn ladder_call_filter_keeps_one_call() {
    let Some(path) = pcap("wireshark.pcap") else {
        return;
    };
    let p = path.to_str().expect("UTF-8 path");
    let id = "105090259-446faf7a@192.168.1.2";
    let run = dialer(&["pcap", "ladder", "--json", "--call", id, p]);
    assert_eq!(run.code, 0);
    let j = run.json();
    assert_eq!(calls(&j).len(), 1);
    assert_eq!(calls(&j)[0]["call_id"], id);
    let text = dialer(&["pcap", "ladder", p, "--call", id]);
    assert!(
        text.stdout.contains("outcome: 408 Request Timeout"),
        "{}",
        text.stdout
    );
    let none = dialer(&["pcap", "ladder", p, "--call", "no-such-call"]);
    assert_eq!(none.code, 1);
    assert!(none.stderr.contains("no-such-call"));
}

#[test]
fn truncated_capture_names_file_and_packet_and_keeps_earlier_packets() {
    let Some(path) = pcap("sip_ipv4_tcp.pcap") else {
        return;
    };
    let bytes = std::fs::read(&path).expect("corpus file");
    let cut = scratch("truncated.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).expect("scratch is writable");
    let p = cut.to_str().expect("UTF-8 path");
    let run = dialer(&["pcap", "ladder", "--json", p]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let warning = run
        .stderr
        .lines()
        .find(|l| l.starts_with(&format!("{p}: packet ")))
        .unwrap_or_else(|| panic!("no warning naming the file and packet: {}", run.stderr));
    assert!(!warning.is_empty());
    let j = run.json();
    assert!(!calls(&j).is_empty(), "packets before the cut are read");
    assert!(j["warnings"].as_array().is_some_and(|w| !w.is_empty()));
}

const INVITE: &[u8] = b"INVITE sip:bob@192.0.2.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKg1\r\nFrom: <sip:a@192.0.2.1>;tag=1\r\n\
To: <sip:bob@192.0.2.2>\r\nCall-ID: good-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn garbage_sip_payload_is_reported_by_packet_and_the_rest_is_read() {
    let garbage = b"INVITE sip:bob@192.0.2.2 SIP/2.0\r\nVia SIP/2.0/UDP no-colon\r\n\r\n";
    let file = pcap_file(
        1,
        &[
            udp_frame([192, 0, 2, 1], 5060, [192, 0, 2, 2], 5060, garbage),
            udp_frame([192, 0, 2, 1], 5060, [192, 0, 2, 2], 5060, INVITE),
        ],
    );
    let path = scratch("garbage.pcap");
    std::fs::write(&path, file).expect("scratch is writable");
    let p = path.to_str().expect("UTF-8 path");
    let run = dialer(&["pcap", "ladder", "--json", p]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "{p}: packet 1: SIP message from 192.0.2.1:5060 rejected: line 2"
        )),
        "{}",
        run.stderr
    );
    let j = run.json();
    assert_eq!(j["unparsed"][0]["packet"], 1);
    assert_eq!(j["unparsed"][0]["line"], 2);
    assert_eq!(calls(&j).len(), 1);
    assert_eq!(calls(&j)[0]["call_id"], "good-1");
}

#[test]
fn unknown_link_type_is_reported_by_packet() {
    let file = pcap_file(
        147, // LINKTYPE_USER0: no decoder knows its framing
        &[udp_frame(
            [192, 0, 2, 1],
            5060,
            [192, 0, 2, 2],
            5060,
            INVITE,
        )],
    );
    let path = scratch("user0.pcap");
    std::fs::write(&path, file).expect("scratch is writable");
    let p = path.to_str().expect("UTF-8 path");
    let run = dialer(&["pcap", "ladder", p]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!("{p}: packet 1: ")),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("0 calls"), "{}", run.stdout);
}

#[test]
fn a_file_that_is_no_capture_exits_1_naming_it() {
    let path = scratch("not-a-capture.pcap");
    std::fs::write(&path, b"this is a text file, not a capture\n").expect("scratch is writable");
    let p = path.to_str().expect("UTF-8 path");
    for cmd in ["ladder", "rtp"] {
        let run = dialer(&["pcap", cmd, p]);
        assert_eq!(run.code, 1, "{cmd}");
        assert!(run.stderr.contains(p), "{cmd}: {}", run.stderr);
    }
}

/// (ssrc, packets, lost) per stream from `tshark -z rtp,streams`.
fn tshark_streams(p: &str) -> Option<BTreeMap<(u32, String), (u64, i64)>> {
    let out = tshark(&[
        "-r",
        p,
        "-q",
        "-z",
        "rtp,streams",
        "-o",
        "rtp.heuristic_rtp:TRUE",
    ])?;
    let mut streams = BTreeMap::new();
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let Some(ssrc_at) = t.iter().position(|x| x.starts_with("0x")) else {
            continue;
        };
        let lost_pct = t
            .iter()
            .position(|x| x.starts_with('(') && x.ends_with("%)"))
            .expect("a stream row has a lost percentage");
        let ssrc = u32::from_str_radix(&t[ssrc_at][2..], 16).expect("hex SSRC");
        let src = format!("{}:{}", t[ssrc_at - 4], t[ssrc_at - 3]);
        let packets = t[lost_pct - 2].parse().expect("packet count");
        let lost = t[lost_pct - 1].parse().expect("lost count");
        streams.insert((ssrc, src), (packets, lost));
    }
    Some(streams)
}

#[test]
fn rtp_streams_have_the_packet_and_loss_counts_of_capture_and_tshark() {
    for name in ["g711a.pcap", "speech_8k_ulaw.pcap", "SIP_DTMF2.cap"] {
        let Some(path) = pcap(name) else { return };
        let p = path.to_str().expect("UTF-8 path");
        let run = dialer(&["pcap", "rtp", "--json", p]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let j = run.json();
        let ours: BTreeMap<(u32, String), (u64, i64)> = j["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .map(|s| {
                (
                    (
                        s["ssrc"].as_u64().expect("ssrc") as u32,
                        s["src"].as_str().expect("src").to_string(),
                    ),
                    (
                        s["packets"].as_u64().expect("packets"),
                        s["lost"].as_i64().expect("lost"),
                    ),
                )
            })
            .collect();
        assert!(!ours.is_empty(), "{name}");
        let cap = capture::read_file(&path).expect("corpus capture reads");
        let direct: BTreeMap<_, _> =
            capture::rtp::streams(&cap, &capture::rtp::RtpOptions::default())
                .into_iter()
                .map(|s| ((s.ssrc, s.src.to_string()), (s.packets, s.lost)))
                .collect();
        assert_eq!(ours, direct, "{name}: ours vs capture::rtp");
        if let Some(t) = tshark_streams(p) {
            assert_eq!(ours, t, "{name}: ours vs tshark");
        }
    }
}

#[test]
fn rtp_codec_names_and_digits_come_from_the_sdp() {
    let Some(path) = pcap("SIP_DTMF2.cap") else {
        return;
    };
    let run = dialer(&["pcap", "rtp", "--json", path.to_str().expect("UTF-8 path")]);
    let j = run.json();
    let with_events = j["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["payload_types"].as_array().is_some_and(|p| p.len() > 1))
        .expect("one stream carries PCMA and telephone events");
    // PT 96 is telephone-event only because the SDP says so.
    assert_eq!(with_events["payload_types"], serde_json::json!([8, 96]));
    assert_eq!(
        with_events["codecs"],
        serde_json::json!(["PCMA", "telephone-event"])
    );
    assert!(!with_events["digits"].as_str().unwrap_or("").is_empty());
}

#[test]
fn audio_of_speech_8k_ulaw_is_a_non_silent_wav_of_the_stream_duration() {
    let Some(path) = pcap("speech_8k_ulaw.pcap") else {
        return;
    };
    let p = path.to_str().expect("UTF-8 path");
    let rtp = dialer(&["pcap", "rtp", "--json", p]).json();
    let stream = &rtp["streams"][0];
    let ssrc = stream["ssrc_hex"].as_str().expect("ssrc_hex").to_string();
    let packets = stream["packets"].as_u64().expect("packets");
    let out = scratch("speech.wav");
    let run = dialer(&[
        "pcap",
        "audio",
        p,
        "--ssrc",
        &ssrc,
        "-o",
        out.to_str().expect("UTF-8"),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut wav = hound::WavReader::open(&out).expect("a WAV file was written");
    let spec = wav.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 8000, 16)
    );
    let samples: Vec<i16> = wav
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("WAV samples read back");
    // No loss in this stream: one 20 ms frame (160 samples) per packet.
    assert_eq!(samples.len() as u64, packets * 160);
    let rms =
        (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt();
    assert!(rms > 100.0, "speech is not silence: rms {rms}");
}

#[test]
fn audio_of_an_unknown_ssrc_exits_1() {
    let Some(path) = pcap("g711a.pcap") else {
        return;
    };
    let out = scratch("none.wav");
    let run = dialer(&[
        "pcap",
        "audio",
        path.to_str().expect("UTF-8 path"),
        "--ssrc",
        "0x1",
        "-o",
        out.to_str().expect("UTF-8"),
    ]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("no RTP stream with SSRC 0x00000001"),
        "{}",
        run.stderr
    );
}
