//! The call-facing half of "safe on a public address" against the real `dialer run` on
//! loopback:
//! - a third party's RTP stream (another address, a 2000 Hz tone) sent to the dialer's RTP port
//!   of a bridged call's customer leg never reaches the agent: not on the wire towards the
//!   agent (the tap), not in what baresip recorded, while the carrier's 440 Hz goes on;
//! - a `text/plain` POST /calls (what a web page's form can send without a CORS preflight)
//!   and a JSON POST with a foreign `Origin` place no call;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use scenario_tests::interop::audio;
use scenario_tests::interop::call::CallTest;
use scenario_tests::interop::carrier::carrier_config;
use scenario_tests::interop::ports::{free_udp_range, LOOPBACK};
use scenario_tests::interop::robust::{Bridged, Hangup};
use scenario_tests::interop::rtp_source;
use scenario_tests::interop::trace::{self, Direction};
use scenario_tests::interop::{poll_until, tshark, wire};

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
