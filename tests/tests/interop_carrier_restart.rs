//! A carrier that restarts under the real `dialer run` (issue 6, item 5): nothing is left
//! stuck.
//!
//! - The trunk's registrar dies (its socket closed: no answer, ICMP port unreachable), comes
//!   back answering 503 (then 503 with Retry-After), then 200. The dialer keeps retrying with
//!   growing spacing (bounded exponential backoff with jitter, sip-core's `backoff_delay`),
//!   honours Retry-After (RFC 3261 §21.5.4, §20.33) and reports the trunk registered again.
//!   A call placed while the carrier is dead ends on Timer B (RFC 3261 §17.1.1.2) with a CDR,
//!   and leaves nothing in `GET /calls`. The registrar is the small UDP peer of
//!   `scenario_tests::interop::restarting_registrar`, which logs each arrival's time.
//! - A bridged call whose carrier (SIPp) is killed mid-call ends on the media timeout: BYE to
//!   both legs (the carrier's goes unanswered), a `media_timeout` CDR, no call left.
//!
//! - A carrier that restarted while a call rang answers the dialer's CANCEL with 200 but never
//!   sends the INVITE's 487: the call still ends, 64*T1 after the CANCEL (RFC 3261 §9.1), with
//!   a CDR, whether it was hung up through the API or by SIGTERM.
//!
//! Timing is shortened through the configuration: T1 = 50 ms (Timer B and F = 3.2 s), the
//! registrar grants 4 s (refresh every 2 s), retries between 1 s and 6 s, media timeout 2 s.
//! Tolerances on the measured spacing allow for scheduling on a loaded machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dialer::control::{CallState, OriginateRequest};
use regex::Regex;
use scenario_tests::interop::baresip::AnswerMode;
use scenario_tests::interop::call::{carrier, text, wait_cdr, CallOptions, CallTest};
use scenario_tests::interop::ports::{free_udp_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::process::{now, Stream};
use scenario_tests::interop::restarting_registrar::{Reply, RestartingRegistrar};
use scenario_tests::interop::{dialer as dialer_bin, poll_until};

/// What the registrar grants.
const GRANTED_S: u32 = 4;
/// `register_retry_min_s` / `register_retry_max_s`.
const RETRY_MIN_S: f64 = 1.0;
const RETRY_MAX_S: f64 = 6.0;
/// The Retry-After of the last 503: above the longest backoff, so only honouring it explains
/// the wait.
const RETRY_AFTER_S: u32 = 7;

/// A dialer configuration for a trunk at `registrar` with short timers and agent 1000 at a
/// fixed contact where nothing answers (a call that never reaches the agent needs no agent);
/// RFC 3261 T1 is `t1_ms`.
fn restart_config(test: &CallTest, registrar: SocketAddr, t1_ms: u32) -> PathBuf {
    let mut rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
    while (rtp..rtp + 20).contains(&test.sip.port()) {
        rtp = free_udp_range(LOOPBACK, 20).expect("RTP ports");
    }
    let agent_port = free_udp_port(LOOPBACK).expect("agent port");
    let text = format!(
        r#"[sip]
listen = "{sip}"
t1_ms = {t1_ms}

[[trunk]]
name = "carrier"
proxy = "{registrar}"
domain = "carrier.test"
username = "dialer"
password = "s3cret"
register = true
expires = 60
transport = "udp"
codecs = ["PCMA"]
keepalive = "none"
register_retry_min_s = {min}
register_retry_max_s = {max}

[[agent]]
extension = "1000"
password = "agentpw"
contact = "sip:1000@127.0.0.1:{agent_port}"

[media]
rtp_ports = "{rtp}-{rtp_last}"

[calls]
originate_timeout_s = 30

[api]
listen = "127.0.0.1:{api}"
"#,
        sip = test.sip,
        min = RETRY_MIN_S as u32,
        max = RETRY_MAX_S as u32,
        rtp_last = rtp + 19,
        api = test.api_port,
    );
    let path = test.dir.join("dialer.toml");
    std::fs::write(&path, text).expect("write dialer.toml");
    dialer_bin::check_config(&test.dialer, &path).expect("the configuration is valid");
    path
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn a_carrier_that_dies_then_answers_503_is_registered_again_with_growing_retry_spacing() {
    let test = CallTest::new("carrier-restart-register", &[]).expect("setup");
    let addr = SocketAddr::new(LOOPBACK, free_udp_port(LOOPBACK).expect("registrar port"));
    let mut registrar = RestartingRegistrar::start(addr, GRANTED_S).expect("registrar");
    let config = restart_config(&test, addr, 50);
    let run = test.run(&config).expect("dialer run");
    let registered = Regex::new(&format!(
        r"INFO dialer: trunk carrier: registered expires in {GRANTED_S} s"
    ))
    .unwrap();
    run.wait_for_line(&registered, Duration::from_secs(10))
        .expect("the trunk registers");
    run.wait_for_line(
        &Regex::new(r"INFO dialer: trunk carrier: registered refreshed").unwrap(),
        Duration::from_secs(GRANTED_S.into()),
    )
    .expect("the trunk refreshes at half the granted 4 s");
    let trunk = |client: &dialer::client::Client| {
        let trunks = client.trunks().expect("GET /trunks");
        assert_eq!(trunks.len(), 1, "{trunks:?}");
        trunks.into_iter().next().expect("one trunk")
    };
    let client = test.client().expect("API client");
    let up = trunk(&client);
    assert_eq!(up.state, "registered", "{up:?}");
    assert!(
        up.expires_in_s.is_some_and(|s| s <= u64::from(GRANTED_S)),
        "{up:?}"
    );
    assert!(up.contact.is_some() && up.error.is_none(), "{up:?}");

    // The carrier dies.
    registrar.go_down();
    let down_at = now();
    let before_outage = registrar.registers().len();

    // A call placed meanwhile: its INVITE gets no answer at all.
    let info = client
        .originate(&OriginateRequest {
            number: "+15551234".into(),
            agent: Some("1000".into()),
            trunk: None,
            ringback: None,
            record: None,
            pcap: None,
            ..OriginateRequest::default()
        })
        .expect("the dialer accepts the call");
    let cdr = wait_cdr(&run, Duration::from_secs(15)).expect("the call ends with a CDR");
    let call_ended_after = now() - down_at;
    assert_eq!(text(&cdr, "id"), info.id.to_string(), "CDR: {cdr}");
    // Timer B (64 * T1 = 3.2 s) ends the INVITE: a failure with its own status, well before
    // originate_timeout_s (30 s).
    assert_eq!(text(&cdr, "outcome"), "failed", "CDR: {cdr}");
    assert_eq!(cdr["sip_status"].as_u64(), Some(408), "CDR: {cdr}");
    assert!(
        call_ended_after < Duration::from_secs(10),
        "the call hung for {call_ended_after:?}"
    );
    assert!(
        client.calls().expect("GET /calls").is_empty(),
        "a call is left in GET /calls"
    );

    // The refresh times out (Timer F, 3.2 s) and the first retry is scheduled.
    run.wait_for_line(
        &Regex::new(r"WARN dialer: trunk carrier: retrying attempt 1 in \S+ s after no response")
            .unwrap(),
        Duration::from_secs(10),
    )
    .expect("the unanswered refresh is retried");
    let down = trunk(&client);
    assert_eq!(down.state, "retrying", "{down:?}");
    assert_eq!(down.attempts, Some(1), "{down:?}");
    assert!(
        down.error
            .as_deref()
            .is_some_and(|e| e.contains("no response")),
        "{down:?}"
    );
    assert!(down.retry_in_s.is_some(), "{down:?}");
    // The carrier comes back, not ready yet: 503, 503, 503 with Retry-After, then 200.
    let up_at = now();
    let script = [
        Reply::Unavailable { retry_after: None },
        Reply::Unavailable { retry_after: None },
        Reply::Unavailable {
            retry_after: Some(RETRY_AFTER_S),
        },
    ];
    registrar.come_up(&script).expect("the registrar is back");
    run.wait_for_lines(&registered, 2, Duration::from_secs(30))
        .expect("the trunk is registered again");
    let again = trunk(&client);
    assert_eq!(again.state, "registered", "{again:?}");
    assert!(
        again.attempts.is_none() && again.error.is_none(),
        "{again:?}"
    );

    let all = registrar.registers();
    assert_eq!(
        all.len(),
        before_outage + 4,
        "nothing arrives while the registrar is down; then 3 retries refused and one accepted: \
         {all:?}"
    );
    let after: Vec<_> = all[before_outage..].to_vec();
    assert!(after.iter().all(|a| a.at >= up_at), "{after:?}");
    let statuses: Vec<u16> = after.iter().map(|a| a.status).collect();
    assert_eq!(statuses, vec![503, 503, 503, 200]);
    // One registration throughout: same Call-ID, CSeq up by one per REGISTER sent
    // (RFC 3261 §10.2.4), the ones lost while the registrar was down included.
    assert!(all.iter().all(|a| a.call_id == all[0].call_id), "{all:?}");
    assert!(all.windows(2).all(|w| w[1].cseq > w[0].cseq), "{all:?}");
    let gaps: Vec<f64> = after.windows(2).map(|w| secs(w[1].at - w[0].at)).collect();
    // Attempt 2 after the first 503: 2 s nominal, jitter up to half of it, so [2, 3).
    assert!(
        (2.0 - 0.05..3.0 + 0.5).contains(&gaps[0]),
        "second retry after {:.3} s: {gaps:?}",
        gaps[0]
    );
    // Attempt 3: 4 s nominal, at most the configured 6 s.
    assert!(
        (4.0 - 0.05..RETRY_MAX_S + 0.5).contains(&gaps[1]),
        "third retry after {:.3} s: {gaps:?}",
        gaps[1]
    );
    assert!(gaps[1] > gaps[0], "the spacing does not grow: {gaps:?}");
    // Retry-After 7 s is above retry_max: only honouring it explains a 7 s wait.
    let ra = f64::from(RETRY_AFTER_S);
    assert!(
        (ra - 0.05..ra + 0.7).contains(&gaps[2]),
        "the retry after Retry-After {RETRY_AFTER_S} s came after {:.3} s: {gaps:?}",
        gaps[2]
    );

    // The dialer told what it was doing: retries with their reasons, then registered.
    let stderr = run.output(Stream::Stderr);
    let retries: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains(" dialer: trunk carrier: retrying"))
        .collect();
    let line = Regex::new(r"retrying attempt (\d+) in ([0-9.]+) s after (.*)$").unwrap();
    let logged: Vec<(u32, f64, String)> = retries
        .iter()
        .filter_map(|l| line.captures(l))
        .map(|c| {
            (
                c[1].parse().unwrap(),
                c[2].parse().unwrap(),
                c[3].to_owned(),
            )
        })
        .collect();
    let reasons: Vec<&str> = logged.iter().map(|l| l.2.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "no response (timeout)",
            "503 Service Unavailable",
            "503 Service Unavailable",
            &format!("503 Service Unavailable (Retry-After {RETRY_AFTER_S} s)"),
        ],
        "{retries:#?}"
    );
    let attempts: Vec<u32> = logged.iter().map(|l| l.0).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4], "{retries:#?}");
    // The delays the dialer announced are the spacing the registrar saw.
    for (announced, seen) in logged[1..].iter().map(|l| l.1).zip(&gaps) {
        assert!(
            (announced - seen).abs() < 0.3,
            "announced {announced} s, seen {seen:.3} s: {retries:#?}"
        );
    }
    assert!(
        !stderr.contains("dialer: trunk carrier: failed"),
        "the dialer gave up:\n{stderr}"
    );
    // And it goes on refreshing.
    let refreshed = Regex::new(r"INFO dialer: trunk carrier: registered refreshed").unwrap();
    let refreshes = stderr.lines().filter(|l| refreshed.is_match(l)).count();
    run.wait_for_lines(&refreshed, refreshes + 1, Duration::from_secs(5))
        .expect("refreshes resume after the outage");

    let exit = run
        .stop("TERM", Duration::from_secs(10))
        .expect("dialer run exits");
    assert!(exit.success(), "dialer run exits 0: {exit}");
    let unregister = registrar
        .arrivals()
        .into_iter()
        .find(|a| a.method == "REGISTER" && a.expires == Some(0));
    assert!(unregister.is_some(), "no un-REGISTER on SIGTERM");
}

#[test]
fn a_bridged_call_whose_carrier_vanished_ends_on_the_media_timeout_with_a_cdr() {
    let test =
        CallTest::new("carrier-restart-bridged", &["sipp", "baresip", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier(&test.dir, "carrier.xml", media_port).expect("carrier");
    let config = test
        .config(carrier.addr(), &CallOptions::default())
        .expect("config");
    // T1 = 50 ms so the carrier's unanswered BYE times out in 3.2 s (Timer F); 2 s without
    // RTP from a leg ends the call.
    let toml = std::fs::read_to_string(&config).expect("read dialer.toml");
    let toml = toml.replacen("[sip]\n", "[sip]\nt1_ms = 50\n", 1).replacen(
        "[media]\n",
        "[media]\nmedia_timeout_s = 2\n",
        1,
    );
    std::fs::write(&config, toml).expect("write dialer.toml");
    dialer_bin::check_config(&test.dialer, &config).expect("valid configuration");
    let run = test.run(&config).expect("dialer run");
    let agent = test.agent(AnswerMode::Auto, &["PCMA"]).expect("agent");

    let call = test.call("+15551234").expect("dialer call");
    agent
        .wait_established(Duration::from_secs(15))
        .expect("the agent answers");
    poll_until(
        "1 s of audio heard by the agent",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (agent.heard_seconds() >= 1.0).then_some(()),
    )
    .expect("the call is bridged");
    let client = test.client().expect("API client");
    assert_eq!(client.calls().expect("GET /calls").len(), 1);

    // The carrier vanishes: its process is killed (by its PID), its RTP stops, nothing
    // answers on its SIP port.
    carrier.peer().signal("KILL").expect("kill the carrier");
    let vanished_at = now();
    let cdr = wait_cdr(&run, Duration::from_secs(15)).expect("the call ends with a CDR");
    let ended_after = now() - vanished_at;
    agent
        .wait_terminated(Duration::from_secs(5))
        .expect("the agent's leg is ended with a BYE");
    let _ = call.wait_exit(Duration::from_secs(10));

    assert_eq!(text(&cdr, "outcome"), "media_timeout", "CDR: {cdr}");
    // 2 s of silence, then at most Timer F (3.2 s) for the carrier's BYE.
    assert!(
        ended_after >= Duration::from_millis(1900) && ended_after < Duration::from_secs(9),
        "the call ended {ended_after:?} after the carrier vanished"
    );
    assert!(
        client.calls().expect("GET /calls").is_empty(),
        "a call is left in GET /calls"
    );
    // The dialer sent the carrier a BYE (retransmitted, never answered).
    let stderr = run.output(Stream::Stderr);
    let to_carrier = format!("-> {}", carrier.addr());
    let byes = stderr
        .lines()
        .filter(|l| l.contains(&to_carrier) && l.contains("BYE"))
        .count();
    assert!(byes >= 2, "no retransmitted BYE to the carrier:\n{stderr}");
    assert!(run.status().is_none(), "dialer run died with the carrier");
    let exit = run
        .stop("TERM", Duration::from_secs(10))
        .expect("dialer run exits");
    assert!(exit.success(), "dialer run exits 0: {exit}");
}

#[test]
fn a_carrier_that_lost_a_ringing_call_does_not_leave_it_stuck_after_cancel() {
    let test = CallTest::new("carrier-restart-lost-cancel", &[]).expect("setup");
    let addr = SocketAddr::new(LOOPBACK, free_udp_port(LOOPBACK).expect("carrier port"));
    let registrar = RestartingRegistrar::start(addr, GRANTED_S).expect("carrier");
    registrar.ring_and_lose_cancelled_calls();
    let config = restart_config(&test, addr, 50);
    let run = test.run(&config).expect("dialer run");
    run.wait_for_line(
        &Regex::new(r"INFO dialer: trunk carrier: registered").unwrap(),
        Duration::from_secs(10),
    )
    .expect("the trunk registers");
    let client = test.client().expect("API client");
    let ringing_call = || {
        let info = client
            .originate(&OriginateRequest {
                number: "+15551234".into(),
                agent: Some("1000".into()),
                trunk: None,
                ringback: None,
                record: None,
                pcap: None,
                ..OriginateRequest::default()
            })
            .expect("the dialer places the call");
        poll_until(
            "the customer ringing (180 received)",
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                client
                    .calls()
                    .ok()?
                    .iter()
                    .any(|c| c.id == info.id && c.state == CallState::Progress)
                    .then_some(())
            },
        )
        .expect("the call rings");
        info
    };
    let cancels = || {
        registrar
            .arrivals()
            .iter()
            .filter(|a| a.method == "CANCEL")
            .count()
    };

    // Hung up through the API: CANCEL, its 200, then no 487. RFC 3261 §9.1: after 64*T1
    // (3.2 s here) without a final response the INVITE counts as cancelled.
    let first = ringing_call();
    client.hangup(first.id).expect("DELETE /calls/{id}");
    let asked = now();
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("the call ends with a CDR");
    let took = now() - asked;
    assert_eq!(text(&cdr, "id"), first.id.to_string(), "CDR: {cdr}");
    assert_eq!(text(&cdr, "hung_up_by"), "dialer", "CDR: {cdr}");
    assert_eq!(cancels(), 1, "{:?}", registrar.arrivals());
    assert!(
        took >= Duration::from_millis(3100) && took < Duration::from_secs(6),
        "the cancelled call ended {took:?} after the hangup"
    );
    assert!(client.calls().expect("GET /calls").is_empty());

    // The same at SIGTERM: the dialer waits for the INVITE as long as RFC 3261 §9.1 says,
    // then writes the CDR and exits 0.
    let second = ringing_call();
    run.signal("TERM").expect("SIGTERM to dialer run");
    let cdr = run
        .wait_for_lines(
            &Regex::new(r#"^\s*\{.*"outcome""#).unwrap(),
            2,
            Duration::from_secs(10),
        )
        .expect("the second CDR");
    let cdr: serde_json::Value = serde_json::from_str(cdr[1].trim()).expect("CDR JSON");
    assert_eq!(text(&cdr, "id"), second.id.to_string(), "CDR: {cdr}");
    let exit = run
        .wait_exit(Duration::from_secs(10))
        .expect("dialer run exits");
    assert!(exit.success(), "dialer run exits 0: {exit}\n{}", run.tail());
    assert_eq!(cancels(), 2, "{:?}", registrar.arrivals());
}

#[test]
fn sigterm_before_any_provisional_sends_no_cancel_and_ends_the_call_at_timer_b() {
    let test = CallTest::new("carrier-restart-silent-invite", &[]).expect("setup");
    let addr = SocketAddr::new(LOOPBACK, free_udp_port(LOOPBACK).expect("carrier port"));
    let registrar = RestartingRegistrar::start(addr, GRANTED_S).expect("carrier");
    registrar.ignore_invites();
    // T1 = 100 ms: Timer B (6.4 s) comes after the 5 s the trunks get to un-register.
    let config = restart_config(&test, addr, 100);
    let run = test.run(&config).expect("dialer run");
    run.wait_for_line(
        &Regex::new(r"INFO dialer: trunk carrier: registered").unwrap(),
        Duration::from_secs(10),
    )
    .expect("the trunk registers");
    let client = test.client().expect("API client");
    let info = client
        .originate(&OriginateRequest {
            number: "+15551234".into(),
            agent: Some("1000".into()),
            trunk: None,
            ringback: None,
            record: None,
            pcap: None,
            ..OriginateRequest::default()
        })
        .expect("the dialer places the call");
    poll_until(
        "the INVITE at the carrier",
        Duration::from_secs(5),
        Duration::from_millis(10),
        || {
            registrar
                .arrivals()
                .iter()
                .any(|a| a.method == "INVITE")
                .then_some(())
        },
    )
    .expect("the INVITE arrives");

    run.signal("TERM").expect("SIGTERM to dialer run");
    let asked = now();
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("the call ends with a CDR");
    let took = now() - asked;
    let exit = run
        .wait_exit(Duration::from_secs(10))
        .expect("dialer run exits");
    assert!(exit.success(), "dialer run exits 0: {exit}\n{}", run.tail());
    assert_eq!(text(&cdr, "id"), info.id.to_string(), "CDR: {cdr}");
    assert_eq!(text(&cdr, "hung_up_by"), "dialer", "CDR: {cdr}");
    // RFC 3261 §9.1: no CANCEL before a provisional response; the INVITE ends at Timer B
    // (64 * T1 = 6.4 s after it was sent), and the dialer waits for it past the 5 s it
    // gives the trunks to un-register.
    let arrivals = registrar.arrivals();
    assert!(
        arrivals.iter().all(|a| a.method != "CANCEL"),
        "a CANCEL was sent before any provisional: {arrivals:?}"
    );
    assert!(
        took >= Duration::from_millis(6000) && took < Duration::from_secs(9),
        "the call ended {took:?} after SIGTERM"
    );
    assert!(
        arrivals
            .iter()
            .any(|a| a.method == "REGISTER" && a.expires == Some(0)),
        "no un-REGISTER: {arrivals:?}"
    );
}
