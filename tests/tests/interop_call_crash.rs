//! The dialer killed outright (SIGKILL) during three bridged calls and started again on the
//! same store, through the real `dialer run` between SIPp as the carrier (`carrier.xml`,
//! which waits for the dialer's BYE) and SIPp behind three static agents
//! (`agent_answer.xml`):
//! - the restarted dialer writes one CDR per call the kill cut, outcome `interrupted`, with
//!   the call's own id (from the call journal in the store);
//! - it sends BYE on each leg's dialog, and the carrier and the agents, still up, answer 200;
//! - a call placed after the restart gets an id no earlier call had.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use dialer::control::{CallState, OriginateRequest};
use scenario_tests::interop::call::{carrier_for, CallOptions, CallTest};
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::{free_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::process::Stream;
use scenario_tests::interop::sipp::{Sipp, SippConfig};
use scenario_tests::interop::trace::{self, Direction, TracedMessage};

const AGENTS: [&str; 3] = ["1001", "1002", "1003"];

/// The Call-IDs of the BYEs in a SIPp trace that SIPp received and answered 200.
fn byes_answered(messages: &[TracedMessage]) -> BTreeSet<String> {
    let call_id = |m: &TracedMessage| m.header("Call-ID").unwrap_or_default().to_string();
    let received: BTreeSet<String> = messages
        .iter()
        .filter(|m| m.direction == Direction::Received && m.method() == Some("BYE"))
        .map(call_id)
        .collect();
    messages
        .iter()
        .filter(|m| {
            m.direction == Direction::Sent
                && m.status() == Some(200)
                && m.cseq_method() == Some("BYE")
        })
        .map(call_id)
        .filter(|c| received.contains(c))
        .collect()
}

#[test]
fn kill_9_during_three_bridged_calls_then_a_restart_writes_interrupted_cdrs_and_byes() {
    let t = CallTest::new("call-crash", &["sipp", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    // Two REGISTERs (one a run), three calls and the one after the restart.
    let carrier = carrier_for(&t.dir, "carrier.xml", media_port, 10).expect("carrier");
    let agent_media = free_udp_range(LOOPBACK, 4).expect("agent media ports");
    let mut agents_cfg = SippConfig::new(
        "agents",
        "agent_answer.xml",
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("agents port")),
    );
    agents_cfg.media = Some((LOOPBACK, agent_media));
    agents_cfg.calls = 4;
    agents_cfg.timeout = Duration::from_secs(60);
    let agents = Sipp::start(agents_cfg, t.dir.path()).expect("sipp agents start");

    let config = t
        .config(carrier.addr(), &CallOptions::default())
        .expect("config");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    for ext in AGENTS {
        toml.push_str(&format!(
            "\n[[agent]]\nextension = \"{ext}\"\npassword = \"crash-test-agent-{ext}\"\n\
             contact = \"sip:{ext}@{}\"\ncodecs = [\"PCMA\"]\n",
            agents.addr()
        ));
    }
    std::fs::write(&config, toml).unwrap();

    let run = t.run(&config).expect("dialer run comes up");
    let client = t.client().expect("API client");
    let mut ids = BTreeSet::new();
    for (i, ext) in AGENTS.iter().enumerate() {
        let call = client
            .originate(&OriginateRequest {
                number: format!("+1555123400{i}"),
                agent: Some(ext.to_string()),
                trunk: Some("carrier".into()),
                ..OriginateRequest::default()
            })
            .expect("the dialer places the call");
        ids.insert(call.id.0);
    }
    poll_until(
        "three calls bridged",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let calls = client.calls().ok()?;
            (calls
                .iter()
                .filter(|c| c.state == CallState::Bridged)
                .count()
                == 3)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", run.tail()));

    run.signal("KILL").expect("kill -9 the dialer");
    run.wait_exit(Duration::from_secs(10)).expect("killed");
    assert!(
        !run.output(Stream::Stdout).contains("\"outcome\""),
        "no CDR before the kill"
    );

    let run = t
        .run(&config)
        .expect("dialer run comes up again on the same store");
    let cdrs = poll_until(
        "three interrupted CDRs",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let out = run.output(Stream::Stdout);
            let cdrs: Vec<serde_json::Value> = out
                .lines()
                .filter(|l| l.contains("\"outcome\""))
                .filter_map(|l| serde_json::from_str(l.trim()).ok())
                .collect();
            (cdrs.len() >= 3).then_some(cdrs)
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", run.tail()));
    assert_eq!(cdrs.len(), 3, "one CDR per call the kill cut: {cdrs:?}");
    let cdr_ids: BTreeSet<u64> = cdrs.iter().filter_map(|c| c["id"].as_u64()).collect();
    assert_eq!(cdr_ids, ids, "each CDR keeps its call's id");
    for cdr in &cdrs {
        assert_eq!(cdr["outcome"], "interrupted", "{cdr}");
        assert_eq!(cdr["hung_up_by"], "dialer", "{cdr}");
        assert!(
            cdr["bridged"].as_f64().is_some(),
            "bridged before the kill: {cdr}"
        );
        assert!(
            cdr["ended"].as_f64() >= cdr["bridged"].as_f64(),
            "ended after the bridge: {cdr}"
        );
    }

    // The peers still up get a BYE on each dialog and answer it.
    let customer_ids: BTreeSet<String> = cdrs
        .iter()
        .map(|c| c["customer_call_id"].as_str().unwrap().to_string())
        .collect();
    let agent_ids: BTreeSet<String> = cdrs
        .iter()
        .map(|c| c["agent_call_id"].as_str().unwrap().to_string())
        .collect();
    for (who, sipp, want) in [
        ("carrier", &carrier, &customer_ids),
        ("agents", &agents, &agent_ids),
    ] {
        poll_until(
            &format!("the {who} answering the restarted dialer's BYEs"),
            Duration::from_secs(15),
            Duration::from_millis(100),
            || {
                let got = byes_answered(&trace::read(sipp.messages_path()).ok()?);
                want.is_subset(&got).then_some(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}: {}", run.tail()));
    }

    // A call after the restart: an id no earlier call had.
    let next = client
        .originate(&OriginateRequest {
            number: "+15551234009".into(),
            agent: Some("1001".into()),
            trunk: Some("carrier".into()),
            ..OriginateRequest::default()
        })
        .expect("a call after the restart");
    assert!(
        next.id.0 > *ids.iter().max().unwrap(),
        "call id {} reused or earlier than {ids:?}",
        next.id.0
    );
    // Hung up once bridged, so that nothing is left ringing at the shutdown.
    poll_until(
        "the call after the restart bridged",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let calls = client.calls().ok()?;
            calls
                .iter()
                .any(|c| c.id == next.id && c.state == CallState::Bridged)
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", run.tail()));
    client.hangup(next.id).expect("hang-up");
    poll_until(
        "its CDR",
        Duration::from_secs(15),
        Duration::from_millis(50),
        || {
            let out = run.output(Stream::Stdout);
            out.contains(&format!("{{\"id\":{},", next.id.0))
                .then_some(())
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {}", run.tail()));
    let exit = run
        .stop("TERM", Duration::from_secs(20))
        .expect("dialer run exits");
    assert!(exit.success(), "{exit:?}: {}", run.tail());
}
