//! DTMF interworking through the real `dialer run`, SIPp as the carrier and baresip as agent
//! 1000, each leg in the form its `dtmf` key says:
//! - SIP INFO keys from the carrier (`application/dtmf-relay` and `application/dtmf`) reach
//!   the agent as RFC 4733 telephone-events on its payload type (a tshark tap on its ports);
//!   an INFO of another body type gets 415 with Accept, one without a body 200;
//! - with the trunk in `dtmf = "info"`, keys the agent presses (baresip's `sndcode`, sent as
//!   telephone-events, seen on the tap) reach the carrier as INFO `application/dtmf-relay`
//!   with their `Signal=` (checked by the SIPp scenario and again here);
//! - with the agent in `dtmf = "inband"`, the carrier's INFO keys are Q.23 tone pairs in the
//!   PCMA audio the tap captured towards the agent, found by a Goertzel detector;
//! - with the trunk in `dtmf = "inband"`, key tones in the carrier's audio are recognised by
//!   the dialer and reach the agent as telephone-events, the tones themselves held back.
//!
//! The carrier's scenarios send their INFO requests 4 s after the ACK, when the agent has
//! answered (it answers automatically, within a second of the ACK); the tests wait for
//! observable events (the agent's established call, the dialer's INFO in its ladder, SIPp's
//! end), never for time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use regex::Regex;
use scenario_tests::interop::audio::{goertzel_power, Pcm};
use scenario_tests::interop::baresip::{AnswerMode, Baresip};
use scenario_tests::interop::call::{carrier, text, wait_cdr, CallOptions, CallTest};
use scenario_tests::interop::dialer::check_config;
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::{free_baresip_port, free_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::process::Peer;
use scenario_tests::interop::sipp::{Sipp, SippOutcome};
use scenario_tests::interop::tshark::{self, EventPacket, Tap};

/// The agent's telephone-event payload type (the dialer's offer, which baresip takes).
const AGENT_EVENT_PT: u8 = 101;
/// The keys carrier_info.xml sends, with the durations in its INFO bodies (`#` comes as
/// `application/dtmf`, without a duration: the dialer's default 250 ms).
const CARRIER_KEYS: [(u8, u32); 3] = [(1, 200), (9, 200), (11, 250)];

/// One call set up: the dialer between SIPp and baresip, a tap on the agent's RTP ports.
struct Bridged {
    test: CallTest,
    tap: Tap,
    carrier: Sipp,
    run: Peer,
    agent: Baresip,
    call: Peer,
    agent_ports: Range<u16>,
}

/// Starts the carrier with `scenario`, the dialer with the trunk's and the agent's `dtmf`
/// keys, and the agent; places the call and waits until the agent has answered.
fn bridged(name: &str, scenario: &str, trunk_dtmf: &str, agent_dtmf: &str) -> Bridged {
    bridged_with(name, scenario, trunk_dtmf, agent_dtmf, &[])
}

/// [`bridged`], with `files` written into the test directory first (what the carrier plays).
fn bridged_with(
    name: &str,
    scenario: &str,
    trunk_dtmf: &str,
    agent_dtmf: &str,
    files: &[(&str, &[u8])],
) -> Bridged {
    let test = CallTest::new(name, &["sipp", "baresip", "sox", "tshark"]).expect("setup");
    for (file, bytes) in files {
        std::fs::write(test.dir.join(file), bytes).expect("carrier media written");
    }
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let agent_rtp = free_udp_range(LOOPBACK, 20).expect("agent RTP range");
    let agent_ports = agent_rtp..agent_rtp + 20;
    let tap = Tap::start(
        "rtp",
        &format!(
            "udp and host 127.0.0.1 and (dst portrange {0}-{1} or src portrange {0}-{1})",
            agent_ports.start,
            agent_ports.end - 1
        ),
        test.dir.path(),
    )
    .expect("tshark taps the agent's RTP");
    let carrier = carrier(&test.dir, scenario, media_port).expect("carrier");
    let config = test
        .config(
            carrier.addr(),
            &CallOptions {
                agent_codecs: vec!["PCMA".into()],
                ..CallOptions::default()
            },
        )
        .expect("config");
    set_dtmf(&config, trunk_dtmf, agent_dtmf);
    check_config(&test.dialer, &config).expect("the dtmf keys are valid");
    let run = test.run(&config).expect("dialer run");
    let agent_config = test
        .agent_config(
            AnswerMode::Auto,
            &["PCMA"],
            SocketAddr::new(LOOPBACK, free_baresip_port(LOOPBACK).expect("agent SIP")),
            agent_rtp,
            SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("ctrl")),
        )
        .expect("agent config");
    let agent = Baresip::start(agent_config, test.dir.path()).expect("baresip starts");
    agent
        .wait_registered(Duration::from_secs(10))
        .expect("agent registers");
    let call = test.call("+15551234").expect("dialer call");
    agent
        .wait_established(Duration::from_secs(15))
        .expect("the agent answers");
    Bridged {
        test,
        tap,
        carrier,
        run,
        agent,
        call,
        agent_ports,
    }
}

impl Bridged {
    /// Waits for the carrier's scenario (which ends the call with its BYE) and the dialer's
    /// CDR; stops the dialer and the capture. Returns the carrier's outcome, the pcap, the
    /// agent's ports and the test (whose directory holds the pcap).
    fn finish(self) -> (SippOutcome, std::path::PathBuf, Range<u16>, CallTest) {
        let outcome = self
            .carrier
            .expect_success(Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("the carrier scenario completes: {e}\n{}", self.run.tail()));
        let status = self
            .call
            .wait_exit(Duration::from_secs(15))
            .expect("dialer call ends");
        let cdr = wait_cdr(&self.run, Duration::from_secs(5)).expect("CDR");
        self.agent
            .wait_terminated(Duration::from_secs(10))
            .expect("the agent's call ends with the carrier's BYE");
        let pcap = self.tap.stop().expect("capture stops");
        self.run
            .stop("TERM", Duration::from_secs(10))
            .expect("dialer run stops");
        assert!(
            status.success(),
            "bridged call exits 0:\n{}",
            self.call.tail()
        );
        assert_eq!(text(&cdr, "outcome"), "bridged", "CDR: {cdr}");
        (outcome, pcap, self.agent_ports, self.test)
    }
}

/// Sets `dtmf` on the rendered configuration's trunk and agent.
fn set_dtmf(config: &Path, trunk: &str, agent: &str) {
    let text = std::fs::read_to_string(config).expect("config written");
    let text = text
        .replacen(
            "[[trunk]]\n",
            &format!("[[trunk]]\ndtmf = \"{trunk}\"\n"),
            1,
        )
        .replacen(
            "[[agent]]\n",
            &format!("[[agent]]\ndtmf = \"{agent}\"\n"),
            1,
        );
    std::fs::write(config, text).expect("config rewritten");
}

/// Each event's start timestamp and code, in order (RFC 4733 §2.5.1: every packet of one
/// event carries its start timestamp); a timestamp whose packets disagree on the code fails.
fn starts(events: &[EventPacket]) -> Vec<(u32, u8)> {
    let mut keys: Vec<(u32, u8)> = Vec::new();
    for e in events {
        match keys.last() {
            Some(&(timestamp, event)) if timestamp == e.timestamp => assert_eq!(
                event, e.event,
                "one event code per event timestamp: {events:?}"
            ),
            _ => keys.push((e.timestamp, e.event)),
        }
    }
    keys
}

#[test]
fn info_keys_from_the_carrier_reach_the_agent_as_telephone_events_on_its_payload_type() {
    let call = bridged("call-dtmf-info-in", "carrier_info.xml", "info", "rfc4733");
    let (outcome, pcap, agent_ports, _test) = call.finish();
    // The scenario's own checks passed: 200 to each key, 415 with Accept, 200 to no body.
    assert_eq!(
        outcome.with_status(415).count(),
        1,
        "{:?}",
        outcome.ladder()
    );
    let events: Vec<_> = tshark::rtp_events(&pcap, AGENT_EVENT_PT)
        .expect("rtpevent fields")
        .into_iter()
        .filter(|e| agent_ports.contains(&e.dst.port()))
        .collect();
    assert!(
        events.iter().all(|e| e.payload_type == AGENT_EVENT_PT),
        "{events:?}"
    );
    let keys = starts(&events);
    assert_eq!(
        keys.iter().map(|&(_, k)| k).collect::<Vec<_>>(),
        CARRIER_KEYS.iter().map(|&(k, _)| k).collect::<Vec<_>>(),
        "the agent got the carrier's keys in order: {events:?}"
    );
    for ((timestamp, key), (_, ms)) in keys.iter().zip(CARRIER_KEYS) {
        let packets: Vec<_> = events
            .iter()
            .filter(|e| e.timestamp == *timestamp)
            .collect();
        let ends: Vec<_> = packets.iter().filter(|e| e.end).collect();
        assert_eq!(
            ends.len(),
            3,
            "RFC 4733 §2.5.1.4: 3 end packets for {key}: {packets:?}"
        );
        assert!(
            ends.iter().all(|e| e.duration == ms * 8),
            "key {key} lasts its INFO Duration={ms} ms at 8 kHz: {ends:?}"
        );
        let updates: Vec<u32> = packets
            .iter()
            .filter(|e| !e.end)
            .map(|e| e.duration)
            .collect();
        assert!(
            updates.windows(2).all(|w| w[1] == w[0] + 160) && updates.first() == Some(&160),
            "durations grow by one 20 ms packet: {updates:?}"
        );
    }
}

#[test]
fn agent_rfc4733_keys_reach_an_info_trunk_as_info_dtmf_relay() {
    let call = bridged(
        "call-dtmf-info-out",
        "carrier_info_recv.xml",
        "info",
        "rfc4733",
    );
    // Audio flows from the agent before it presses anything.
    poll_until(
        "1 s of the call at the agent",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || (call.agent.heard_seconds() >= 1.0).then_some(()),
    )
    .expect("the call is bridged");
    let info_sent = Regex::new(r"->\s+\S+\s+INFO\s").expect("literal regex");
    for (n, key) in ["1", "9", "#"].into_iter().enumerate() {
        call.agent.send_keys(key).expect("baresip presses the key");
        // The next key only once the dialer has sent this one's INFO.
        call.run
            .wait_for_lines(&info_sent, n + 1, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("INFO for {key}: {e}\n{}", call.run.tail()));
    }
    let (outcome, pcap, agent_ports, _test) = call.finish();
    let infos: Vec<_> = outcome
        .received("INFO")
        .filter(|m| m.cseq_method() == Some("INFO"))
        .collect();
    let signals: Vec<String> = infos
        .iter()
        .map(|m| {
            assert_eq!(m.header("Content-Type"), Some("application/dtmf-relay"));
            let signal = Regex::new(r"Signal=(\S+)").expect("literal regex");
            let duration = Regex::new(r"Duration=(\d+)").expect("literal regex");
            let ms: u32 = duration.captures(&m.body).expect("Duration=")[1]
                .parse()
                .expect("ms");
            assert!((40..=5000).contains(&ms), "Duration in ms: {}", m.body);
            signal.captures(&m.body).expect("Signal=")[1].to_owned()
        })
        .collect();
    assert_eq!(signals, ["1", "9", "#"], "INFO bodies: {infos:?}");
    // What the agent sent was RFC 4733 (its events towards the dialer), and none of it was
    // relayed back as RTP towards the carrier's leg.
    let from_agent: Vec<_> = tshark::rtp_events(&pcap, AGENT_EVENT_PT)
        .expect("rtpevent fields")
        .into_iter()
        .filter(|e| !agent_ports.contains(&e.dst.port()))
        .collect();
    assert_eq!(
        starts(&from_agent)
            .iter()
            .map(|&(_, k)| k)
            .collect::<Vec<_>>(),
        [1, 9, 11],
        "baresip sent the keys as telephone-events: {from_agent:?}"
    );
}

#[test]
fn info_keys_towards_an_inband_agent_are_q23_tones_in_its_audio() {
    let call = bridged("call-dtmf-inband", "carrier_info.xml", "info", "inband");
    let (_, pcap, agent_ports, _test) = call.finish();
    let events = tshark::rtp_events(&pcap, AGENT_EVENT_PT).expect("rtpevent fields");
    assert!(
        events.iter().all(|e| !agent_ports.contains(&e.dst.port())),
        "no telephone-event towards an in-band agent: {events:?}"
    );
    let port = busiest_port(&pcap, &agent_ports);
    let packets = tshark::rtp_to_port(&pcap, port).expect("agent RTP");
    let pcm = tshark::g711_timeline(&packets);
    let keys = dtmf_keys(&pcm);
    assert_eq!(
        keys.iter().map(|k| k.0).collect::<Vec<_>>(),
        ['1', '9', '#'],
        "tones heard by the agent: {keys:?}"
    );
    for ((key, ms), (_, expected)) in keys.iter().zip(CARRIER_KEYS) {
        assert!(
            ms.abs_diff(expected) <= 40,
            "{key} lasts {ms} ms, its INFO said {expected} ms"
        );
    }
}

#[test]
fn key_tones_from_an_inband_trunk_reach_the_agent_as_telephone_events_without_the_tones() {
    let audio = carrier_keys_alaw();
    let call = bridged_with(
        "call-dtmf-inband-in",
        "carrier_info_tones.xml",
        "inband",
        "rfc4733",
        &[("carrier_keys.al", &audio)],
    );
    // The keys sound 4.0-5.3 s into the carrier's stream, which starts at the ACK, before
    // the agent answers: 6 s heard by the agent is past them.
    poll_until(
        "6 s of the call at the agent",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || (call.agent.heard_seconds() >= 6.0).then_some(()),
    )
    .expect("the call runs past the key tones");
    call.agent.hangup().expect("agent hangs up");
    let (_, pcap, agent_ports, _test) = call.finish();
    let events: Vec<_> = tshark::rtp_events(&pcap, AGENT_EVENT_PT)
        .expect("rtpevent fields")
        .into_iter()
        .filter(|e| agent_ports.contains(&e.dst.port()))
        .collect();
    let keys = starts(&events);
    assert_eq!(
        keys.iter().map(|&(_, k)| k).collect::<Vec<_>>(),
        TONE_KEYS.iter().map(|&(k, _)| k).collect::<Vec<_>>(),
        "the agent got the carrier's key tones as events: {events:?}"
    );
    for ((timestamp, key), (_, ms)) in keys.iter().zip(TONE_KEYS) {
        let ends: Vec<_> = events
            .iter()
            .filter(|e| e.timestamp == *timestamp && e.end)
            .collect();
        assert_eq!(ends.len(), 3, "3 end packets for {key}: {ends:?}");
        let measured = ends[0].duration / 8;
        assert!(
            measured.abs_diff(ms) <= 26,
            "key {key} of {ms} ms measured {measured} ms"
        );
    }
    // The tones were held back: the agent's audio has no key a receiver would take.
    let port = busiest_port(&pcap, &agent_ports);
    let packets = tshark::rtp_to_port(&pcap, port).expect("agent RTP");
    let heard = dtmf_keys(&tshark::g711_timeline(&packets));
    assert!(
        heard.is_empty(),
        "key tones leaked into the agent's audio: {heard:?}"
    );
}

/// The keys in carrier_keys.al and their durations in ms.
const TONE_KEYS: [(u8, u32); 3] = [(1, 200), (9, 200), (11, 250)];

/// 10 s of A-law: 440 Hz at about -16 dBm0 (a voice stand-in the detector must ignore), with
/// the [`TONE_KEYS`] from 4 s on, 150 ms of silence around each.
fn carrier_keys_alaw() -> Vec<u8> {
    use media::codec::g711::{encode, Law};
    use media::dtmf::ToneGenerator;
    let hum =
        |n: usize| (3600.0 * (std::f64::consts::TAU * 440.0 * n as f64 / 8000.0).sin()) as i16;
    let mut pcm: Vec<i16> = (0..32_000).map(hum).collect();
    for (key, ms) in TONE_KEYS {
        pcm.extend(std::iter::repeat_n(0, 1200));
        let mut tone = vec![0i16; ms as usize * 8];
        ToneGenerator::new(key, Duration::from_millis(u64::from(ms)), 8000)
            .expect("a key")
            .fill(&mut tone);
        pcm.extend(tone);
    }
    pcm.extend(std::iter::repeat_n(0, 1200));
    let start = pcm.len();
    pcm.extend((start..80_000).map(hum));
    let mut alaw = vec![0u8; pcm.len()];
    encode(Law::A, &pcm, &mut alaw);
    alaw
}

/// The destination port in `range` with the most UDP packets in `pcap`.
fn busiest_port(pcap: &Path, range: &Range<u16>) -> u16 {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-n", "-T", "fields", "-e", "udp.dstport"])
        .output()
        .expect("tshark runs");
    let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
    for port in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse::<u16>().ok())
        .filter(|p| range.contains(p))
    {
        *counts.entry(port).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(p, _)| p)
        .expect("RTP reached the agent")
}

/// The DTMF keys in `pcm` with how long each lasted (ms), by Goertzel power of the eight
/// Q.23 frequencies over 10 ms blocks: a block is a key when its strongest low-group and
/// strongest high-group tones carry most of its energy.
fn dtmf_keys(pcm: &Pcm) -> Vec<(char, u32)> {
    const LOW: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const HIGH: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYPAD: [[char; 4]; 4] = [
        ['1', '2', '3', 'A'],
        ['4', '5', '6', 'B'],
        ['7', '8', '9', 'C'],
        ['*', '0', '#', 'D'],
    ];
    let block = (pcm.rate / 100) as usize;
    let strongest = |chunk: &[f32], group: &[f64; 4]| {
        group
            .iter()
            .enumerate()
            .map(|(i, &f)| (i, goertzel_power(chunk, pcm.rate, f)))
            .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a })
    };
    let mut keys: Vec<(char, u32)> = Vec::new();
    let mut previous = None;
    for chunk in pcm.samples.chunks_exact(block) {
        let energy: f64 = chunk.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let (row, low) = strongest(chunk, &LOW);
        let (col, high) = strongest(chunk, &HIGH);
        let key = (energy > 1e-3
            && low > 0.2 * energy
            && high > 0.2 * energy
            && low + high > 0.7 * energy)
            .then(|| KEYPAD[row][col]);
        match (key, previous) {
            (Some(k), Some(p)) if k == p => {
                if let Some(last) = keys.last_mut() {
                    last.1 += 10;
                }
            }
            (Some(k), _) => keys.push((k, 10)),
            _ => {}
        }
        previous = key;
    }
    // Keys of 40 ms and more: what an ITU-T Q.24 receiver must accept (a 20 ms stretch of
    // tone can span three 10 ms blocks).
    keys.retain(|&(_, ms)| ms >= 40);
    keys
}
