//! RTP stream lists of the corpus captures against `tshark -z rtp,streams`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use capture::read_file;
use capture::rtp::{streams, RtpOptions};

/// One row of tshark's `rtp,streams` table.
#[derive(Debug)]
struct Row {
    src: SocketAddr,
    dst: SocketAddr,
    ssrc: u32,
    packets: u64,
    lost: i64,
    max_delta: f64,
    mean_jitter: f64,
    max_jitter: f64,
}

/// Parses the table: start, end, src, port, dst, port, SSRC, payload names (may contain
/// spaces), packets, "lost (pct%)", six delta/jitter columns, an optional "X".
fn parse_table(text: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let mut t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 16 || !t[6].starts_with("0x") {
            continue;
        }
        if t.last() == Some(&"X") {
            t.pop();
        }
        let n = t.len();
        let f = |i: usize| t[i].parse::<f64>().expect("numeric column");
        rows.push(Row {
            src: format!("{}:{}", t[2], t[3])
                .parse()
                .or_else(|_| format!("[{}]:{}", t[2], t[3]).parse())
                .unwrap(),
            dst: format!("{}:{}", t[4], t[5])
                .parse()
                .or_else(|_| format!("[{}]:{}", t[4], t[5]).parse())
                .unwrap(),
            ssrc: u32::from_str_radix(&t[6][2..], 16).unwrap(),
            packets: t[n - 9].parse().unwrap(),
            lost: t[n - 8].parse().unwrap(),
            max_delta: f(n - 4),
            mean_jitter: f(n - 2),
            max_jitter: f(n - 1),
        });
    }
    rows
}

#[test]
fn parse_table_reads_multi_word_payload_names_and_negative_loss() {
    let text = "\
   Start time      End time     Src IP addr  Port    Dest IP addr  Port       SSRC          Payload  Pkts         Lost   Min Delta(ms)  Mean Delta(ms)   Max Delta(ms)  Min Jitter(ms) Mean Jitter(ms)  Max Jitter(ms) Problems?
    76.878653     96.829533 192.168.105.172  4376 192.168.105.110  4376 0x5711BF84 g711A, telephone-event   666    -2 (0.0%)          29.930          30.001          30.068           0.002           1.522          15.767 X
";
    let rows = parse_table(text);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].ssrc, rows[0].packets, rows[0].lost),
        (0x5711_BF84, 666, -2)
    );
    assert_eq!(rows[0].max_jitter, 15.767);
}

#[test]
fn rtp_streams_match_tshark_on_every_corpus_file() {
    let Some(dir) = common::pcaps_dir() else {
        return;
    };
    if !common::tshark_available() {
        return;
    }
    for file in common::corpus_files(&dir) {
        let capture = read_file(&file).unwrap();
        let ours = streams(&capture, &RtpOptions::default());
        let text = common::tshark(
            &file,
            &["-q", "-z", "rtp,streams", "-o", "rtp.heuristic_rtp:TRUE"],
        );
        let theirs = parse_table(&text);
        let name = file.display();
        let key = |src: SocketAddr, dst: SocketAddr, ssrc: u32| (src, dst, ssrc);
        let ours_map: BTreeMap<_, _> = ours
            .iter()
            .map(|s| (key(s.src, s.dst, s.ssrc), (s.packets, s.lost)))
            .collect();
        let theirs_map: BTreeMap<_, _> = theirs
            .iter()
            .map(|r| (key(r.src, r.dst, r.ssrc), (r.packets, r.lost)))
            .collect();
        assert_eq!(
            ours_map, theirs_map,
            "{name}: (src, dst, SSRC) -> (packets, lost)"
        );
        // Timing agrees to tshark's printed precision where no SDP-learned clock rate is
        // involved (tshark learns dynamic rates from SDP; these runs have none).
        for r in &theirs {
            let s = ours
                .iter()
                .find(|s| (s.src, s.dst, s.ssrc) == (r.src, r.dst, r.ssrc))
                .expect("matched above");
            let dynamic = s.payload_types.iter().any(|pt| *pt >= 96);
            if dynamic {
                continue;
            }
            let close = |a: f64, b: f64| (a - b).abs() <= 0.0015;
            assert!(
                close(s.max_delta_ms, r.max_delta),
                "{name} {:#x}: max delta {} vs {}",
                r.ssrc,
                s.max_delta_ms,
                r.max_delta
            );
            assert!(
                close(s.max_jitter_ms, r.max_jitter),
                "{name} {:#x}: max jitter {} vs {}",
                r.ssrc,
                s.max_jitter_ms,
                r.max_jitter
            );
            assert!(
                close(s.mean_jitter_ms, r.mean_jitter),
                "{name} {:#x}: mean jitter {} vs {}",
                r.ssrc,
                s.mean_jitter_ms,
                r.mean_jitter
            );
        }
    }
}

#[test]
fn dtmf_2833_pound_yields_one_pound_event_with_end() {
    let Some(dir) = common::pcaps_dir() else {
        return;
    };
    let capture = read_file(&dir.join("dtmf_2833_pound.pcap")).unwrap();
    let s = streams(&capture, &RtpOptions::default());
    assert_eq!(s.len(), 1);
    let digits: Vec<_> = s[0].events.iter().map(|e| (e.digit, e.end)).collect();
    assert_eq!(digits, [(Some('#'), true)]);
}

/// With the clock rates their SDP declares, dynamic payload types get tshark's timing too.
#[test]
fn sdp_clock_rates_reproduce_tshark_jitter_for_opus_and_pt96_events() {
    let Some(dir) = common::pcaps_dir() else {
        return;
    };
    let opus = RtpOptions {
        // a=rtpmap:96 opus/48000
        clock_rates: BTreeMap::from([(96, 48000)]),
        ..RtpOptions::default()
    };
    let pt96_events = RtpOptions {
        // a=rtpmap:96 telephone-event/8000
        telephone_event_types: [96].into(),
        ..RtpOptions::default()
    };
    let dtmf_capture = read_file(&dir.join("SIP_DTMF2.cap")).unwrap();
    let with_events = streams(&dtmf_capture, &pt96_events);
    assert!(
        with_events
            .iter()
            .any(|s| !s.events.is_empty() && s.events.iter().all(|e| e.end)),
        "PT 96 events decoded"
    );
    if !common::tshark_available() {
        return;
    }
    for (name, options) in [
        ("invite-opus-bye.pcap", opus),
        ("SIP_DTMF2.cap", pt96_events),
    ] {
        let file = dir.join(name);
        let ours = streams(&read_file(&file).unwrap(), &options);
        let text = common::tshark(
            &file,
            &["-q", "-z", "rtp,streams", "-o", "rtp.heuristic_rtp:TRUE"],
        );
        let theirs = parse_table(&text);
        assert_eq!(ours.len(), theirs.len(), "{name}");
        for r in theirs {
            let s = ours
                .iter()
                .find(|s| (s.src, s.dst, s.ssrc) == (r.src, r.dst, r.ssrc))
                .unwrap_or_else(|| panic!("{name}: stream {:#x} missing", r.ssrc));
            let close = |a: f64, b: f64| (a - b).abs() <= 0.0015;
            assert!(
                close(s.max_delta_ms, r.max_delta),
                "{name}: max delta {} vs {}",
                s.max_delta_ms,
                r.max_delta
            );
            assert!(
                close(s.max_jitter_ms, r.max_jitter),
                "{name}: max jitter {} vs {}",
                s.max_jitter_ms,
                r.max_jitter
            );
            assert!(
                close(s.mean_jitter_ms, r.mean_jitter),
                "{name}: mean jitter {} vs {}",
                s.mean_jitter_ms,
                r.mean_jitter
            );
        }
    }
}
