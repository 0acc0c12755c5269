//! The call-facing half of "safe on a public address" against the real `dialer run` on
//! loopback:
//! - a third party's RTP stream (another address, a 2000 Hz tone) sent to the dialer's RTP port
//!   of a bridged call's customer leg never reaches the agent: not on the wire towards the
//!   agent (the tap), not in what baresip recorded, while the carrier's 440 Hz goes on;
//! - a `text/plain` POST /calls (what a web page's form can send without a CORS preflight)
//!   and a JSON POST with a foreign `Origin` place no call;
//! - a flood of 200 000 scanner INVITEs at 10 000 a second, half from outside every agent's
//!   network (dropped unanswered) and half from inside one (rate limited, each admitted one
//!   answered once, never retransmitted), leaves the dialer's memory within 50 MB of where it
//!   was, an agent's REGISTER answered within 1 s throughout, and a call placed during it
//!   bridged and ended normally;
//! - `dialer run | head -1`: once the reader of its standard output has gone, the dialer
//!   goes on placing and bridging calls, their CDRs in `--cdr FILE`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use scenario_tests::interop::audio;
use scenario_tests::interop::baresip::AnswerMode;
use scenario_tests::interop::call::{text, wait_cdr, CallOptions, CallTest, AGENT_PASSWORD};
use scenario_tests::interop::carrier::carrier_config;
use scenario_tests::interop::phone::Phone;
use scenario_tests::interop::ports::{free_udp_range, LOOPBACK};
use scenario_tests::interop::robust::{Bridged, Hangup};
use scenario_tests::interop::rtp_source;
use scenario_tests::interop::sipp::Sipp;
use scenario_tests::interop::trace::{self, Direction};
use scenario_tests::interop::{flood, poll_until, process, tshark, wire};

/// The attacker's tone: none of the call's own.
const ATTACK_HZ: f64 = 2000.0;

/// The port of the first `m=audio` line in a body.
fn audio_port(body: &str) -> Option<u16> {
    body.lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

/// The RTP port of the dialer's offer to the carrier (the `m=audio` of the INVITE it got).
fn dialer_port_towards_carrier(messages: &[trace::TracedMessage]) -> Option<u16> {
    messages
        .iter()
        .filter(|m| m.direction == Direction::Received && m.method() == Some("INVITE"))
        .find_map(|m| audio_port(&m.body))
}

#[test]
fn a_third_party_rtp_stream_into_a_bridged_call_never_reaches_the_agent() {
    let test = CallTest::new("rtp-hijack", &["sipp", "baresip", "sox", "tshark"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier =
        carrier_config(&test.dir, "carrier.xml", LOOPBACK, media_port, 2, &[]).expect("carrier");
    let call = Bridged::start(&test, carrier, None, &[]).expect("a bridged call");
    call.wait_heard(2.0, Duration::from_secs(15))
        .expect("the agent hears the carrier");
    let port = poll_until(
        "the dialer's offer in the carrier's trace",
        Duration::from_secs(5),
        Duration::from_millis(50),
        || dialer_port_towards_carrier(&trace::read(call.carrier.messages_path()).ok()?),
    )
    .expect("the dialer's RTP port");

    // 3 s from another address on loopback, as an off-path sender that guessed the port.
    let attacker = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9)), 0);
    let to = SocketAddr::new(LOOPBACK, port);
    let sent = rtp_source::send_alaw_tone(attacker, to, ATTACK_HZ, 150).expect("attack stream");
    assert_eq!(sent, 150);
    let heard_after_attack = call.agent.heard_seconds();
    call.wait_heard(heard_after_attack + 1.5, Duration::from_secs(10))
        .expect("the agent still hears the call after the attack");
    let ended = call.finish(Hangup::Agent).expect("the call ends");

    // On the wire towards the agent (its port from its answer): the carrier's tone, never
    // the attacker's.
    let agent_sip = wire::sip_messages(&ended.pcap, ended.agent_sip.port()).expect("agent SIP");
    let agent_port = agent_sip
        .iter()
        .filter(|m| m.src == ended.agent_sip && m.message.status() == Some(200))
        .find_map(|m| audio_port(&m.message.body))
        .expect("the agent's answer");
    let packets = ended.rtp_to(agent_port).expect("RTP towards the agent");
    let pcm = tshark::g711_timeline(&packets);
    let timeline = audio::tone_timeline(&pcm, &[440.0, ATTACK_HZ]);
    assert!(
        timeline.iter().all(|(_, f)| *f != Some(ATTACK_HZ)),
        "the attacker's tone reached the agent: {timeline:?}"
    );
    assert!(
        timeline.iter().filter(|(_, f)| *f == Some(440.0)).count() >= 10,
        "the carrier's tone flowed: {timeline:?}"
    );
    // And in what the agent recorded.
    let heard = audio::tone_timeline(&ended.heard, &[440.0, ATTACK_HZ]);
    assert!(
        heard.iter().all(|(_, f)| *f != Some(ATTACK_HZ)),
        "the agent heard the attacker: {heard:?}"
    );
    let last = ended.heard.duration_s();
    assert!(
        audio::tone_present_in(&ended.heard, 440.0, last - 1.0, last),
        "the carrier still heard at the end: {heard:?}"
    );
}

/// One raw HTTP/1.1 request to the API; the status code of its answer.
fn http(api: SocketAddr, request: &str) -> u16 {
    let mut s = TcpStream::connect_timeout(&api, Duration::from_secs(5)).expect("API");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_text_plain_post_and_a_foreign_origin_place_no_call() {
    let test = CallTest::new("api-csrf", &["sipp", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier_config(&test.dir, "carrier.xml", LOOPBACK, media_port, 2, &[])
        .expect("carrier settings");
    let carrier =
        scenario_tests::interop::sipp::Sipp::start(carrier, test.dir.path()).expect("carrier");
    let config = test
        .config(carrier.addr(), &Default::default())
        .expect("config");
    let run = test.run(&config).expect("dialer run");
    let api = SocketAddr::new(LOOPBACK, test.api_port);
    let host = format!("127.0.0.1:{}", test.api_port);
    let body = r#"{"number":"+15551234","agent":"1000"}"#;
    // A form post: text/plain is one of the three types a browser sends cross-site unasked.
    let form = format!(
        "POST /calls HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(http(api, &form), 415, "text/plain refused");
    let foreign = format!(
        "POST /calls HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Origin: http://evil.example\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(http(api, &foreign), 403, "a foreign Origin refused");
    let rebound = format!(
        "POST /calls HTTP/1.1\r\nHost: evil.example:{}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        test.api_port,
        body.len()
    );
    assert_eq!(http(api, &rebound), 403, "a DNS-rebound Host refused");
    let client = test.client().expect("client");
    assert!(client.calls().expect("GET /calls").is_empty(), "no call");
    let exit = run.stop("TERM", Duration::from_secs(20)).expect("stops");
    assert!(exit.success());
    let messages = trace::read(carrier.messages_path()).unwrap_or_default();
    assert!(
        !messages.iter().any(|m| m.method() == Some("INVITE")),
        "the carrier saw no INVITE"
    );
    assert!(
        !run.output(scenario_tests::interop::process::Stream::Stdout)
            .contains("\"outcome\""),
        "no CDR"
    );
}

/// The resident memory of a process, in bytes (`VmRSS` of /proc/PID/status).
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// `dialer_sip_requests_dropped_total{reason="REASON"}` in an exposition.
fn dropped(metrics: &str, reason: &str) -> u64 {
    let series = format!("dialer_sip_requests_dropped_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_invite_flood_leaves_memory_bounded_an_agent_register_answered_and_a_call_working() {
    const PER_SOURCE: u64 = 100_000;
    const RATE: u64 = 5_000;
    let test = CallTest::new("invite-flood", &["sipp", "baresip", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier_config(&test.dir, "carrier.xml", LOOPBACK, media_port, 2, &[])
        .expect("carrier settings");
    let carrier = Sipp::start(carrier, test.dir.path()).expect("carrier");
    // The agent phones on 127.0.0.1; 127.0.0.77 is inside an agent network too (a scanner on
    // the agents' LAN), 127.0.0.66 is outside every one.
    let options = CallOptions {
        agent_allow: vec!["127.0.0.1/32".into(), "127.0.0.77/32".into()],
        ..CallOptions::default()
    };
    let config = test.config(carrier.addr(), &options).expect("config");
    let run = test.run(&config).expect("dialer run");
    let agent = test
        .agent(AnswerMode::Auto, &["PCMA"])
        .expect("agent 1000 registered");
    let before = resident_bytes(run.pid());
    assert!(before > 0, "the dialer's memory is readable");

    let outside: IpAddr = Ipv4Addr::new(127, 0, 0, 66).into();
    let inside: IpAddr = Ipv4Addr::new(127, 0, 0, 77).into();
    let sip = test.sip;
    let floods: Vec<_> = [outside, inside]
        .into_iter()
        .map(|from| {
            std::thread::spawn(move || {
                flood::invites(from, sip, PER_SOURCE, RATE, Duration::from_secs(2))
            })
        })
        .collect();

    // During the flood: a call, and the agent's REGISTER every second.
    let call = test.call("+15551234").expect("dialer call");
    agent
        .wait_established(Duration::from_secs(20))
        .expect("the call reaches the agent during the flood");
    let mut phone = Phone::new(sip, "1000", AGENT_PASSWORD);
    let mut peak = before;
    let mut registers = 0;
    let mut slowest = Duration::ZERO;
    while floods.iter().any(|f| !f.is_finished()) {
        let asked = process::now();
        let status = phone.register(Duration::from_secs(1));
        assert_eq!(
            status,
            Some(200),
            "REGISTER {registers} answered within 1 s per request during the flood"
        );
        registers += 1;
        slowest = slowest.max(process::now() - asked);
        peak = peak.max(resident_bytes(run.pid()));
        let next = asked + Duration::from_secs(1);
        poll_until(
            "the next REGISTER",
            Duration::from_secs(2),
            Duration::from_millis(50),
            || (process::now() >= next).then_some(()),
        )
        .expect("a second passes");
    }
    let reports: Vec<flood::FloodReport> = floods
        .into_iter()
        .map(|f| f.join().expect("flood thread").expect("flood"))
        .collect();
    peak = peak.max(resident_bytes(run.pid()));
    assert!(registers >= 15, "{registers} REGISTERs during a 20 s flood");
    assert!(
        peak.saturating_sub(before) <= 50 * 1024 * 1024,
        "memory grew from {before} to {peak} bytes"
    );
    let (outside, inside) = (&reports[0], &reports[1]);
    eprintln!(
        "flood: memory {before} -> {peak} bytes; {registers} REGISTERs, slowest (challenge and \
         answer) {slowest:?}; {} INVITEs from inside answered",
        inside.finals_per_call.len()
    );
    assert_eq!(outside.sent, PER_SOURCE);
    assert_eq!(inside.sent, PER_SOURCE);
    assert_eq!(
        outside.received, 0,
        "a source outside every agent network gets nothing back"
    );
    assert!(
        !inside.finals_per_call.is_empty(),
        "the admitted INVITEs from inside got their 480"
    );
    assert_eq!(
        inside.most_finals_for_one_invite(),
        1,
        "no final answer is retransmitted"
    );
    // 100 at once and 50 a second after: far fewer answers than INVITEs.
    assert!(
        inside.finals_per_call.len() < 5_000,
        "{} INVITEs from inside answered",
        inside.finals_per_call.len()
    );

    // The call placed during the flood is still up, and ends normally.
    let heard = agent.heard_seconds();
    poll_until(
        "the agent hearing the carrier after the flood",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (agent.heard_seconds() >= heard + 1.0).then_some(()),
    )
    .expect("audio flows after the flood");
    agent.hangup().expect("agent hangs up");
    agent
        .wait_terminated(Duration::from_secs(20))
        .expect("the call ends");
    call.wait_exit(Duration::from_secs(20))
        .expect("dialer call exits");
    carrier
        .expect_success(Duration::from_secs(30))
        .expect("the carrier's call completed");
    let cdr = wait_cdr(&run, Duration::from_secs(5)).expect("a CDR");
    assert_eq!(text(&cdr, "outcome"), "bridged", "{cdr}");

    let metrics = test
        .client()
        .expect("client")
        .get_text("/metrics")
        .expect("GET /metrics");
    assert!(dropped(&metrics, "unknown_source") > 0, "{metrics}");
    assert!(dropped(&metrics, "rate_limited") > 0, "{metrics}");
    assert!(
        run.output(process::Stream::Stderr)
            .contains("WARN dialer::gate: rate limited source=127.0.0.77"),
        "one line names the rate-limited source"
    );
    let exit = run.stop("TERM", Duration::from_secs(20)).expect("stops");
    assert!(exit.success());
    agent.stop().expect("agent stops");
}

/// `dialer run` with its standard output on a pipe this test reads, as `| head -1` would;
/// killed by its PID when dropped.
struct PipedRun {
    child: std::process::Child,
}

impl Drop for PipedRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn with_its_standard_output_closed_after_one_line_the_dialer_goes_on_placing_calls() {
    use std::io::BufRead;
    let test = CallTest::new("head-1", &["sipp", "baresip", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    // The trunk's REGISTER and three calls.
    let carrier =
        scenario_tests::interop::call::carrier_for(&test.dir, "carrier.xml", media_port, 4)
            .expect("carrier");
    let config = test
        .config(carrier.addr(), &CallOptions::default())
        .expect("config");
    let cdr_file = test.dir.join("cdr.jsonl");
    let stderr = std::fs::File::create(test.dir.join("dialer-run.stderr")).expect("stderr file");
    let mut child = test.command(&["run", "--config"]);
    child
        .arg(&config)
        .arg("--cdr")
        .arg(&cdr_file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr);
    let mut run = PipedRun {
        child: child.spawn().expect("dialer run starts"),
    };
    let mut stdout = std::io::BufReader::new(run.child.stdout.take().expect("piped stdout"));
    let api = SocketAddr::new(LOOPBACK, test.api_port);
    poll_until(
        "dialer run's API",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || {
            TcpStream::connect_timeout(&api, Duration::from_millis(200))
                .is_ok()
                .then_some(())
        },
    )
    .expect("dialer run comes up");
    let agent = test
        .agent(AnswerMode::Auto, &["PCMA"])
        .expect("agent 1000 registered");
    let established = regex::Regex::new("Call established").unwrap();
    let ended = regex::Regex::new("terminate call|terminated|Call closed|session closed").unwrap();
    for n in 1..=3 {
        let call = test.call(&format!("+1555123{n}")).expect("dialer call");
        agent
            .peer()
            .wait_for_lines(&established, n, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("call {n} reaches the agent: {e}"));
        agent.hangup().expect("agent hangs up");
        agent
            .peer()
            .wait_for_lines(&ended, n, Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("call {n} ends: {e}"));
        call.wait_exit(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("dialer call {n} exits: {e}"));
        if n == 1 {
            // `head -1`: one line read, then the pipe's reading end is gone.
            let mut line = String::new();
            stdout.read_line(&mut line).expect("the first line");
            assert!(line.contains("\"outcome\":\"bridged\""), "{line}");
            drop(std::mem::replace(
                &mut stdout,
                std::io::BufReader::new(
                    std::process::Command::new("true")
                        .stdout(std::process::Stdio::piped())
                        .spawn()
                        .expect("a stand-in pipe")
                        .stdout
                        .take()
                        .expect("piped"),
                ),
            ));
        }
        assert!(
            run.child.try_wait().expect("dialer run's status").is_none(),
            "dialer run is still running after call {n}"
        );
    }
    carrier
        .expect_success(Duration::from_secs(30))
        .expect("the carrier's three calls completed");
    let cdrs: Vec<serde_json::Value> = poll_until(
        "three CDRs in the CDR file",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            let text = std::fs::read_to_string(&cdr_file).ok()?;
            let lines: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            (lines.len() >= 3).then_some(lines)
        },
    )
    .expect("the CDRs of the calls placed after stdout closed");
    assert_eq!(cdrs.len(), 3, "{cdrs:?}");
    for cdr in &cdrs {
        assert_eq!(text(cdr, "outcome"), "bridged", "{cdr}");
    }
    // TERM: it still shuts down cleanly.
    let pid = run.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = poll_until(
        "dialer run's exit",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || run.child.try_wait().ok().flatten(),
    )
    .expect("dialer run exits on TERM");
    assert!(status.success(), "{status}");
    agent.stop().expect("agent stops");
}
