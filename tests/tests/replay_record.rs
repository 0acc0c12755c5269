//! Records the project's own capture `pcaps/sipp-baresip-call.pcap`: SIPp as the carrier
//! (digest REGISTER, 407 on INVITE, 183, a 200 whose Contact is on 127.0.0.3 behind a
//! Record-Route, 440 Hz PCMA) and baresip as agent 1000 against the real `dialer run`, with
//! tshark on loopback filtered to the ports of this run only. `scripts/record_pcaps.sh` runs it;
//! it is `#[ignore]`d because it needs the interop tools and writes into the repository.
//! `RECORD_PCAPS_DIR` names the output directory.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use scenario_tests::interop::audio::{self, Law};
use scenario_tests::interop::baresip::{AnswerMode, Baresip, BaresipConfig};
use scenario_tests::interop::ports::{
    free_baresip_port, free_port, free_udp_range, loopback, LOOPBACK,
};
use scenario_tests::interop::sipp::{Sipp, SippConfig};
use scenario_tests::interop::tshark::Tap;
use scenario_tests::interop::{dialer, poll_until, require_tools, Peer, TestDir};

/// The trunk password `tests/tests/replay_own.rs` answers the recorded 407 with.
const TRUNK_PASSWORD: &str = "s3cret";
const AGENT_PASSWORD: &str = "agentpw";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::new(LOOPBACK, port)
}

#[test]
#[ignore = "records pcaps/ with SIPp, baresip and tshark: run scripts/record_pcaps.sh"]
fn record_sipp_carrier_baresip_agent_call() {
    let out_dir = PathBuf::from(
        std::env::var_os("RECORD_PCAPS_DIR").expect("RECORD_PCAPS_DIR names the output dir"),
    );
    require_tools(&["sipp", "baresip", "sox", "tshark"]).expect("interop tools");
    let binary = dialer::require(&["run", "call"]).unwrap_or_else(|e| panic!("{e}"));
    let dir = TestDir::new("record-sipp-baresip").expect("temp dir");
    let sip_port = free_port(LOOPBACK).expect("dialer SIP port");
    let api_port = free_port(LOOPBACK).expect("dialer API port");
    let carrier_port = free_port(LOOPBACK).expect("carrier SIP port");
    let agent_port = free_baresip_port(LOOPBACK).expect("agent SIP port");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let dialer_rtp = free_udp_range(LOOPBACK, 40).expect("dialer RTP range");
    let agent_rtp = free_udp_range(LOOPBACK, 20).expect("agent RTP range");

    // Only this run's ports: other tests may use loopback at the same time.
    let filter = format!(
        "udp and (port {sip_port} or port {carrier_port} or port {agent_port} or \
         portrange {media_port}-{} or portrange {dialer_rtp}-{} or portrange {agent_rtp}-{})",
        media_port + 3,
        dialer_rtp + 39,
        agent_rtp + 19
    );
    // dumpcap writes the recording (and closes it completely on SIGINT); the tshark tap on
    // the carrier's RTP port only tells when ringback is flowing.
    let recorded = dir.join("recorded.pcap");
    let mut dumpcap = Command::new("dumpcap");
    dumpcap
        .args(["-i", "lo", "-P", "-f", &filter, "-w"])
        .arg(&recorded);
    let recorder = Peer::spawn("dumpcap", dumpcap, dir.path()).expect("dumpcap starts");
    recorder
        .wait_for_line(
            &regex::Regex::new("Capturing on").expect("literal regex"),
            Duration::from_secs(10),
        )
        .expect("dumpcap captures");
    let tap = Tap::start(
        "carrier-rtp",
        &format!("udp and dst port {media_port}"),
        dir.path(),
    )
    .expect("tshark taps lo");

    audio::g711_raw(&dir.join("carrier.al"), Law::A, 440, 40).expect("sox makes the 440 Hz");
    let mut sipp = SippConfig::new("carrier", "carrier.xml", addr(carrier_port))
        .key("user", "dialer")
        .key("password", TRUNK_PASSWORD)
        .key("realm", "carrier.test")
        .key("contact_ip", loopback(3));
    sipp.media = Some((LOOPBACK, media_port));
    sipp.calls = 2;
    sipp.timeout = Duration::from_secs(40);
    let carrier = Sipp::start(sipp, dir.path()).expect("sipp carrier starts");

    let ringback = dir.join("ringback.wav");
    audio::ringback_wav(&ringback, 3).expect("sox makes the ringback");
    let config = dialer::write_config(
        "call.toml.tmpl",
        &[
            ("SIP_PORT", sip_port.to_string()),
            ("CARRIER_PORT", carrier_port.to_string()),
            ("TRUNK_PASSWORD", TRUNK_PASSWORD.into()),
            ("AGENT_PASSWORD", AGENT_PASSWORD.into()),
            ("RTP_FIRST", dialer_rtp.to_string()),
            ("RTP_LAST", (dialer_rtp + 39).to_string()),
            ("RINGBACK", ringback.to_string_lossy().into_owned()),
            ("API_PORT", api_port.to_string()),
        ],
        dir.path(),
    )
    .expect("dialer config");
    let mut cmd = Command::new(&binary);
    cmd.args(["run", "--config"])
        .arg(&config)
        .current_dir(dir.path());
    let run = Peer::spawn("dialer-run", cmd, dir.path()).expect("dialer run starts");
    poll_until(
        "dialer run's API",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            let up =
                TcpStream::connect_timeout(&addr(api_port), Duration::from_millis(200)).is_ok();
            (up || run.status().is_some()).then_some(())
        },
    )
    .expect("dialer run comes up");

    let source = dir.join("agent1000.wav");
    audio::tone_wav(&source, 1000, 30, 8000).expect("sox makes the agent's 1000 Hz");
    let agent = Baresip::start(
        BaresipConfig {
            name: "agent".into(),
            user: "1000".into(),
            sip_listen: addr(agent_port),
            registrar: Some((addr(sip_port), AGENT_PASSWORD.into())),
            answer: AnswerMode::Manual,
            codecs: vec!["PCMA".into(), "PCMU".into()],
            source_wav: source,
            rtp_base: agent_rtp,
            ctrl: addr(free_port(LOOPBACK).expect("agent ctrl port")),
        },
        dir.path(),
    )
    .expect("baresip starts");
    agent
        .wait_registered(Duration::from_secs(10))
        .expect("agent registers");

    let mut cmd = Command::new(&binary);
    cmd.args(["call", "+15551234", "--agent", "1000", "--api"])
        .arg(format!("http://127.0.0.1:{api_port}"))
        .current_dir(dir.path());
    let call = Peer::spawn("dialer-call", cmd, dir.path()).expect("dialer call starts");
    agent
        .wait_incoming(Duration::from_secs(15))
        .expect("the agent rings");
    // About 1 s of ringback reaches the carrier while the agent rings, then 1 s of talk:
    // the capture stays small.
    tap.wait_packets(60, Duration::from_secs(10))
        .expect("ringback flows");
    agent.accept().expect("agent answers");
    agent
        .wait_established(Duration::from_secs(5))
        .expect("agent call established");
    poll_until(
        "1 s of audio at the agent",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (agent.heard_bytes() >= 16_000).then_some(()),
    )
    .expect("audio flows");
    agent.hangup().expect("agent hangs up");
    agent
        .wait_terminated(Duration::from_secs(5))
        .expect("agent call ends");
    let status = call
        .wait_exit(Duration::from_secs(15))
        .expect("dialer call ends");
    assert!(status.success(), "dialer call: {status}\n{}", call.tail());
    carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier scenario completes");
    tap.stop().expect("tap stops");
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");
    std::fs::create_dir_all(&out_dir).expect("output dir");
    recorder
        .stop("INT", Duration::from_secs(5))
        .expect("dumpcap stops");
    std::fs::copy(&recorded, out_dir.join("sipp-baresip-call.pcap")).expect("capture copied");
}
