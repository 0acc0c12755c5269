//! SRTP in a bridged call under the real `dialer run`: agent 1000 is baresip registered over
//! TLS to `[sip] tls_listen` (certificate from a CA the test makes with openssl) with SRTP
//! media (module `srtp`, `;mediaenc=srtp-mand`: `RTP/SAVP`, SDES keys in `a=crypto`,
//! RFC 4568), and `srtp = "required"` for it in the dialer; the carrier is SIPp with plain
//! RTP (PCMA, 440 Hz). The relay decrypts what the agent sends and encrypts what it gets.
//!
//! The same call with `srtp = "optional"` and baresip's `mediaenc=srtp` (`RTP/AVP` offers with
//! `a=crypto`, answered with a key) is encrypted as well; and with SRTP on both legs (a
//! second baresip as the carrier, called by an unregistered trunk with `srtp = "required"`)
//! each side hears the other and neither side's packets decode.
//!
//! - Audio both ways: baresip, which decrypts with the key the dialer put in its SDP, hears
//!   the carrier's 440 Hz; the carrier, which gets the plain RTP the relay decrypted, hears
//!   the agent's 1000 Hz.
//! - What went to the agent on the wire is not G.711: a tap on the agent's RTP ports decodes
//!   no 440 Hz from it, and its payload bytes are as random as a cipher's output (entropy near
//!   8 bits a byte) where the plain carrier side's are not. The dialer's own capture of the
//!   call (`dialer call --pcap`) holds the same encrypted packets to the agent and the plain
//!   ones to the carrier.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use regex::Regex;
use scenario_tests::interop::audio;
use scenario_tests::interop::baresip::{AnswerMode, Baresip};
use scenario_tests::interop::call::{
    carrier, text, wait_cdr, CallOptions, CallTest, AGENT_PASSWORD, TONES,
};
use scenario_tests::interop::certs;
use scenario_tests::interop::dialer as dialer_bin;
use scenario_tests::interop::ports::{free_baresip_port, free_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::tshark::{self, RtpPacket, Tap};
use scenario_tests::interop::{poll_until, Peer};

/// Shannon entropy of the bytes, in bits per byte.
fn entropy(bytes: &[u8]) -> f64 {
    let mut counts: HashMap<u8, usize> = HashMap::new();
    for b in bytes {
        *counts.entry(*b).or_default() += 1;
    }
    let n = bytes.len() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn payload_bytes(packets: &[RtpPacket]) -> Vec<u8> {
    packets.iter().flat_map(|p| p.payload.clone()).collect()
}

/// `[sip]` with a TLS listener at `tls` presenting the test CA's certificate for the dialer.
fn tls_listener(tls: SocketAddr, certs: &certs::Certs) -> String {
    format!(
        "[sip]\ntls_listen = \"{tls}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        certs.cert.display(),
        certs.key.display()
    )
}

/// Agent 1000: baresip registered over TLS to `tls` (trusting `ca`), auto-answering with
/// SRTP media `mediaenc`, RTP from `rtp`, playing 1000 Hz.
fn tls_srtp_agent(
    test: &CallTest,
    tls: SocketAddr,
    ca: &std::path::Path,
    rtp: u16,
    mediaenc: &str,
) -> Baresip {
    let mut config = test
        .agent_config(
            AnswerMode::Auto,
            &["PCMA"],
            SocketAddr::new(
                LOOPBACK,
                free_baresip_port(LOOPBACK).expect("agent SIP port"),
            ),
            rtp,
            SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agent ctrl")),
        )
        .expect("agent settings");
    config.registrar = Some((tls, AGENT_PASSWORD.into()));
    let agent = Baresip::start_over_with_srtp(config, test.dir.path(), "tls", Some(ca), mediaenc)
        .expect("baresip agent with SRTP");
    agent
        .wait_registered(Duration::from_secs(10))
        .expect("agent 1000 registers over TLS");
    agent
}

#[test]
fn an_srtp_agent_over_tls_and_a_plain_carrier_hear_each_other_and_the_agent_side_is_encrypted() {
    srtp_agent_call("srtp-agent", "required", "srtp-mand");
}

#[test]
fn an_optional_srtp_agent_answering_rtp_avp_with_a_key_is_encrypted_too() {
    srtp_agent_call("srtp-agent-optional", "optional", "srtp");
}

/// One bridged call: agent 1000 with `srtp = POLICY` in the dialer and baresip's
/// `mediaenc=MEDIAENC`, the carrier plain; every check of the module docs.
fn srtp_agent_call(name: &str, policy: &str, mediaenc: &str) {
    let test =
        CallTest::new(name, &["sipp", "baresip", "sox", "tshark", "openssl"]).expect("setup");
    let certs = certs::make(
        test.dir.path(),
        "dialer",
        &["DNS:dialer.test", "IP:127.0.0.1"],
    )
    .expect("certificates");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let agent_rtp = free_udp_range(LOOPBACK, 20).expect("agent RTP ports");
    let carrier_tap = Tap::start(
        "carrier-rtp",
        &format!("udp and dst host 127.0.0.1 and dst port {media_port}"),
        test.dir.path(),
    )
    .expect("tshark taps the carrier side");
    let agent_tap = Tap::start(
        "agent-rtp",
        &format!(
            "udp and dst host 127.0.0.1 and dst portrange {agent_rtp}-{}",
            agent_rtp + 19
        ),
        test.dir.path(),
    )
    .expect("tshark taps the agent side");
    let carrier = carrier(&test.dir, "carrier.xml", media_port).expect("carrier");

    // The call-test configuration, with a TLS listener and SRTP required of agent 1000.
    let config = test
        .config(carrier.addr(), &CallOptions::default())
        .expect("config");
    let tls = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("TLS port"));
    let pcap_dir = test.dir.join("pcaps");
    std::fs::create_dir_all(&pcap_dir).expect("pcap_dir");
    let original = std::fs::read_to_string(&config).expect("config written");
    let patched = original
        .replacen("[sip]\n", &tls_listener(tls, &certs), 1)
        .replacen(
            "[[agent]]\n",
            // Held to TLS: its SDES keys never travel in clear.
            &format!("[[agent]]\nsrtp = \"{policy}\"\ntransport = \"tls\"\n"),
            1,
        )
        .replacen(
            "[media]\n",
            &format!("[media]\npcap_dir = \"{}\"\n", pcap_dir.display()),
            1,
        );
    assert_ne!(original, patched, "the template has [sip] and [[agent]]");
    std::fs::write(&config, patched).expect("config patched");
    dialer_bin::check_config(&test.dialer, &config).expect("dialer config check accepts it");
    let run = test.run(&config).expect("dialer run");

    let agent = tls_srtp_agent(&test, tls, &certs.ca, agent_rtp, mediaenc);

    // `dialer call --pcap`: the dialer's own capture of the call.
    let mut command = test.command(&["call", "+15551234", "--agent", "1000", "--pcap"]);
    command.arg("call.pcap").arg("--api").arg(test.api_url());
    let call = Peer::spawn("dialer-call", command, test.dir.path()).expect("dialer call");
    agent
        .wait_established(Duration::from_secs(20))
        .expect("the agent answers the SRTP offer");
    agent
        .peer()
        .wait_for_line(
            &Regex::new(r"SRTP is Enabled \(cryptosuite=AES_CM_128_HMAC_SHA1_80\)").unwrap(),
            Duration::from_secs(5),
        )
        .expect("baresip keys SRTP with the first suite the dialer offered");
    poll_until(
        "3 s of audio heard by the agent",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (agent.heard_seconds() >= 3.0).then_some(()),
    )
    .expect("audio flows to the agent");
    agent_tap
        .wait_packets(100, Duration::from_secs(10))
        .expect("RTP reaches the agent's ports");
    agent.hangup().expect("agent hangs up");
    agent
        .wait_terminated(Duration::from_secs(5))
        .expect("agent call ends");
    let status = call
        .wait_exit(Duration::from_secs(15))
        .expect("dialer call ends");
    carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier scenario completes");
    let cdr = wait_cdr(&run, Duration::from_secs(5)).expect("CDR");
    let carrier_pcap = carrier_tap.stop().expect("carrier capture stops");
    let agent_pcap = agent_tap.stop().expect("agent capture stops");
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");

    assert!(status.success(), "bridged call exits 0:\n{}", call.tail());
    assert_eq!(text(&cdr, "outcome"), "bridged", "CDR: {cdr}");
    assert_eq!(text(&cdr, "agent_codec"), "PCMA", "CDR: {cdr}");
    assert!(
        !text(&cdr, "packets_to_agent").starts_with('0'),
        "CDR: {cdr}"
    );

    // The agent decrypted and decoded the carrier's 440 Hz.
    let heard = audio::Pcm::read_wav(&agent.heard().expect("agent recording")).unwrap();
    assert!(
        audio::tone_present_in(&heard, 440.0, 0.5, heard.duration_s() - 0.5),
        "the SRTP agent did not hear 440 Hz; timeline {:?}",
        audio::tone_timeline(&heard, &TONES)
    );
    // The carrier got the agent's 1000 Hz as plain PCMA.
    let to_carrier = tshark::rtp_to_port(&carrier_pcap, media_port).expect("carrier RTP");
    let received = tshark::g711_timeline(&to_carrier);
    let timeline = audio::tone_timeline(&received, &TONES);
    let voice = audio::first_block_with(&timeline, 1000.0)
        .unwrap_or_else(|| panic!("no agent audio at the carrier: {timeline:?}"));
    assert!(
        audio::tone_present_in(&received, 1000.0, voice, voice + 2.0),
        "the agent's 1000 Hz, decrypted by the relay, lasts at the carrier: {timeline:?}"
    );

    // What reached the agent's RTP port: SRTP, whose payload decodes to no tone as G.711.
    let to_agent: Vec<RtpPacket> = (agent_rtp..agent_rtp + 20)
        .step_by(2)
        .map(|port| tshark::rtp_to_port(&agent_pcap, port).expect("agent-side RTP"))
        .max_by_key(Vec::len)
        .unwrap_or_default();
    assert!(
        to_agent.len() >= 100,
        "only {} RTP packets to the agent",
        to_agent.len()
    );
    assert!(
        to_agent.iter().all(|p| p.payload_type == 8),
        "the header stays in the clear (RFC 3711 §3.1): PCMA"
    );
    let as_g711 = tshark::g711_timeline(&to_agent);
    for tone in TONES {
        assert!(
            !audio::tone_present_in(&as_g711, tone, 0.0, as_g711.duration_s()),
            "{tone} Hz decodable from the agent-side packets: not encrypted; {:?}",
            audio::tone_timeline(&as_g711, &TONES)
        );
    }
    let encrypted = entropy(&payload_bytes(&to_agent));
    let plain = entropy(&payload_bytes(&to_carrier));
    assert!(
        encrypted > 7.9,
        "agent-side payload entropy {encrypted:.3} bits/byte: not a cipher's output"
    );
    assert!(
        plain < 7.5,
        "carrier-side (plain G.711) payload entropy {plain:.3} bits/byte"
    );
    // The dialer's own capture (`--pcap`) holds the same: SRTP to the agent's port, as sent.
    let agent_port = to_agent[0].dst.port();
    let own = pcap_dir.join("call.pcap");
    let own_to_agent = tshark::rtp_to_port(&own, agent_port).expect("--pcap RTP to the agent");
    assert!(own_to_agent.len() >= 100, "{} packets", own_to_agent.len());
    let own_g711 = tshark::g711_timeline(&own_to_agent);
    assert!(
        !audio::tone_present_in(&own_g711, 440.0, 0.0, own_g711.duration_s()),
        "the --pcap holds decodable audio to the agent"
    );
    let own_entropy = entropy(&payload_bytes(&own_to_agent));
    assert!(
        own_entropy > 7.9,
        "--pcap agent-side entropy {own_entropy:.3}"
    );
    let own_to_carrier = tshark::rtp_to_port(&own, media_port).expect("--pcap RTP to the carrier");
    let own_plain = tshark::g711_timeline(&own_to_carrier);
    assert!(
        audio::tone_present_in(&own_plain, 1000.0, 0.0, own_plain.duration_s()),
        "the --pcap holds the plain carrier side: {:?}",
        audio::tone_timeline(&own_plain, &TONES)
    );
    eprintln!(
        "{name}: payload entropy: agent side (SRTP) {encrypted:.3} bits/byte over {} packets, carrier side (RTP) {plain:.3} over {}",
        to_agent.len(),
        to_carrier.len()
    );
}

/// SRTP on both legs: the carrier is a second baresip (SIPp has no SRTP), called directly
/// by an unregistered trunk with `srtp = "required"`, playing 440 Hz; agent 1000 is baresip
/// over TLS with SRTP required, playing 1000 Hz. Each hears the other through the relay,
/// which decrypts each leg with its peer's key and encrypts with its own, and neither side's
/// packets on the wire decode as G.711.
#[test]
fn srtp_on_both_legs_between_two_baresips_is_heard_both_ways_and_encrypted_on_each_side() {
    let test = CallTest::new("srtp-both", &["baresip", "sox", "tshark", "openssl"]).expect("setup");
    let certs = certs::make(
        test.dir.path(),
        "dialer",
        &["DNS:dialer.test", "IP:127.0.0.1"],
    )
    .expect("certificates");
    let carrier_rtp = free_udp_range(LOOPBACK, 20).expect("carrier RTP ports");
    let agent_rtp = free_udp_range(LOOPBACK, 20).expect("agent RTP ports");
    let tap = |name: &str, base: u16| {
        Tap::start(
            name,
            &format!(
                "udp and dst host 127.0.0.1 and dst portrange {base}-{}",
                base + 19
            ),
            test.dir.path(),
        )
        .expect("tshark taps a side")
    };
    let carrier_tap = tap("carrier-rtp", carrier_rtp);
    let agent_tap = tap("agent-rtp", agent_rtp);

    // The carrier: baresip answering calls for +15551234 with SRTP required, playing 440 Hz.
    let carrier_wav = test.dir.join("carrier440.wav");
    audio::tone_wav(&carrier_wav, 440, 30, 8000).expect("carrier tone");
    let carrier_sip = SocketAddr::new(
        LOOPBACK,
        free_baresip_port(LOOPBACK).expect("carrier SIP port"),
    );
    let carrier = Baresip::start_over_with_srtp(
        scenario_tests::interop::baresip::BaresipConfig {
            name: "carrier".into(),
            user: "+15551234".into(),
            sip_listen: carrier_sip,
            registrar: None,
            answer: AnswerMode::Auto,
            codecs: vec!["PCMA".into()],
            source_wav: carrier_wav,
            rtp_base: carrier_rtp,
            ctrl: SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("carrier ctrl")),
        },
        test.dir.path(),
        "udp",
        None,
        "srtp-mand",
    )
    .expect("baresip as an SRTP carrier");

    let config = test
        .config(carrier_sip, &CallOptions::default())
        .expect("config");
    let tls = SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("TLS port"));
    let original = std::fs::read_to_string(&config).expect("config written");
    let patched = original
        .replacen("[sip]\n", &tls_listener(tls, &certs), 1)
        // A trunk that calls the carrier directly: no registration, no domain, SRTP.
        .replacen(
            "register = true\n",
            "register = false\nsrtp = \"required\"\n",
            1,
        )
        .replacen("domain = \"carrier.test\"\n", "", 1)
        .replacen(
            "[[agent]]\n",
            "[[agent]]\nsrtp = \"required\"\ntransport = \"tls\"\n",
            1,
        );
    assert!(
        patched.contains("register = false") && patched.contains("tls_listen"),
        "the template has what the test changes"
    );
    std::fs::write(&config, patched).expect("config patched");
    dialer_bin::check_config(&test.dialer, &config).expect("dialer config check accepts it");
    let run = test.run(&config).expect("dialer run");

    let agent = tls_srtp_agent(&test, tls, &certs.ca, agent_rtp, "srtp-mand");

    let mut command = test.command(&["call", "+15551234", "--agent", "1000", "--api"]);
    command.arg(test.api_url());
    let call = Peer::spawn("dialer-call", command, test.dir.path()).expect("dialer call");
    let srtp_on = Regex::new(r"SRTP is Enabled").unwrap();
    for (who, phone) in [("carrier", &carrier), ("agent", &agent)] {
        phone
            .wait_established(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("the {who} answers: {e}"));
        phone
            .peer()
            .wait_for_line(&srtp_on, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("the {who} keys SRTP: {e}"));
    }
    for (who, phone) in [("carrier", &carrier), ("agent", &agent)] {
        poll_until(
            &format!("3 s of audio heard by the {who}"),
            Duration::from_secs(15),
            Duration::from_millis(50),
            || (phone.heard_seconds() >= 3.0).then_some(()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    agent_tap
        .wait_packets(100, Duration::from_secs(10))
        .expect("RTP reaches the agent's ports");
    carrier_tap
        .wait_packets(100, Duration::from_secs(10))
        .expect("RTP reaches the carrier's ports");
    agent.hangup().expect("agent hangs up");
    agent
        .wait_terminated(Duration::from_secs(5))
        .expect("agent call ends");
    carrier
        .wait_terminated(Duration::from_secs(10))
        .expect("the carrier gets the BYE");
    let status = call
        .wait_exit(Duration::from_secs(15))
        .expect("dialer call ends");
    let cdr = wait_cdr(&run, Duration::from_secs(5)).expect("CDR");
    let carrier_pcap = carrier_tap.stop().expect("carrier capture stops");
    let agent_pcap = agent_tap.stop().expect("agent capture stops");
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");
    assert!(status.success(), "bridged call exits 0:\n{}", call.tail());
    assert_eq!(text(&cdr, "outcome"), "bridged", "CDR: {cdr}");

    // Each side heard the other's tone, decrypted by its own SRTP stack.
    for (who, phone, tone) in [("agent", &agent, 440.0), ("carrier", &carrier, 1000.0)] {
        let heard = audio::Pcm::read_wav(&phone.heard().expect("recording")).unwrap();
        assert!(
            audio::tone_present_in(&heard, tone, 0.5, heard.duration_s() - 0.5),
            "the {who} did not hear {tone} Hz; timeline {:?}",
            audio::tone_timeline(&heard, &TONES)
        );
    }
    // On the wire towards each: SRTP, not G.711.
    for (who, pcap, base) in [
        ("agent", &agent_pcap, agent_rtp),
        ("carrier", &carrier_pcap, carrier_rtp),
    ] {
        let packets: Vec<RtpPacket> = (base..base + 20)
            .step_by(2)
            .map(|port| tshark::rtp_to_port(pcap, port).expect("RTP"))
            .max_by_key(Vec::len)
            .unwrap_or_default();
        assert!(
            packets.len() >= 100,
            "only {} RTP packets to the {who}",
            packets.len()
        );
        let as_g711 = tshark::g711_timeline(&packets);
        for tone in TONES {
            assert!(
                !audio::tone_present_in(&as_g711, tone, 0.0, as_g711.duration_s()),
                "{tone} Hz decodable from the packets to the {who}: not encrypted"
            );
        }
        let bits = entropy(&payload_bytes(&packets));
        assert!(bits > 7.9, "{who}-side payload entropy {bits:.3} bits/byte");
        eprintln!(
            "srtp-both: {who} side {bits:.3} bits/byte over {} packets",
            packets.len()
        );
    }
    agent.stop().expect("agent stops");
    carrier.stop().expect("carrier stops");
}
