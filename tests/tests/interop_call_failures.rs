//! Calls that end without a conversation, or are ended by one side, through the real `dialer
//! run` between SIPp as the carrier and baresip as agent 1000 (issue 5, proof d):
//! - nobody answers: the originate timeout (`[calls] originate_timeout_s`) CANCELs the INVITE,
//!   the carrier answers 487, and the CDR says `no_answer`, Q.850 19;
//! - the customer hangs up while the agent still rings: the agent's INVITE is CANCELled and
//!   the CDR says `abandoned`, hung up by the customer;
//! - the agent hangs up a bridged call: the carrier gets a BYE through its Record-Route route
//!   set and the CDR says hung up by the agent, Q.850 16;
//! - the agent rings past `[calls] agent_ring_timeout_s`: its INVITE is CANCELled, the
//!   answered customer gets a BYE, and the CDR says `agent_no_answer`.

use std::time::Duration;

use scenario_tests::interop::baresip::AnswerMode;
use scenario_tests::interop::call::{
    carrier, in_dialog, routed_to_contact_via_record_route, text, wait_cdr, CallOptions, CallTest,
};
use scenario_tests::interop::ports::{free_baresip_port, free_port, free_udp_range, LOOPBACK};
use scenario_tests::interop::sipp::SippOutcome;
use scenario_tests::interop::trace::{Direction, TracedMessage};
use scenario_tests::interop::tshark::{self, SipPacket, Tap};
use scenario_tests::interop::{poll_until, Peer};

/// The Via branch of a traced message's top Via.
fn branch(message: &TracedMessage) -> String {
    message
        .header("Via")
        .and_then(|via| {
            via.split(';')
                .find_map(|p| p.trim().strip_prefix("branch="))
        })
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn cseq_number(cseq: &str) -> &str {
    cseq.split_whitespace().next().unwrap_or_default()
}

fn received<'a>(outcome: &'a SippOutcome, method: &'a str) -> &'a TracedMessage {
    outcome
        .received(method)
        .next()
        .unwrap_or_else(|| panic!("carrier got no {method}: {:?}", outcome.ladder()))
}

fn stop(run: &Peer) {
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");
}

#[test]
fn unanswered_call_is_cancelled_at_the_originate_timeout_with_a_cdr_no_answer_cause_19() {
    let test = CallTest::new("call-noanswer", &["sipp", "baresip", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier(&test.dir, "carrier_noanswer.xml", media_port).expect("carrier");
    let options = CallOptions {
        originate_timeout_s: 3,
        ..CallOptions::default()
    };
    let config = test.config(carrier.addr(), &options).expect("config");
    let run = test.run(&config).expect("dialer run");
    let _agent = test.agent(AnswerMode::Auto, &["PCMA"]).expect("agent");

    let call = test.call("+15551234").expect("dialer call");
    let status = call
        .wait_exit(Duration::from_secs(15))
        .expect("dialer call ends after the originate timeout");
    assert_eq!(
        status.code(),
        Some(1),
        "an unanswered call must exit 1:\n{}",
        call.tail()
    );
    let outcome = carrier
        .expect_success(Duration::from_secs(10))
        .expect("the carrier got CANCEL, answered 487 and got its ACK");
    let cdr = wait_cdr(&run, Duration::from_secs(5)).expect("CDR");
    stop(&run);

    // RFC 3261 §9.1: the CANCEL has the INVITE's Request-URI, Call-ID, CSeq number and top
    // Via branch.
    let invite = received(&outcome, "INVITE");
    let cancel = received(&outcome, "CANCEL");
    assert_eq!(
        cancel.request_uri(),
        invite.request_uri(),
        "CANCEL Request-URI"
    );
    assert_eq!(cancel.header("Call-ID"), invite.header("Call-ID"));
    assert_eq!(
        cseq_number(cancel.header("CSeq").unwrap_or_default()),
        cseq_number(invite.header("CSeq").unwrap_or_default()),
        "CANCEL CSeq number"
    );
    assert_eq!(cancel.cseq_method(), Some("CANCEL"));
    assert_eq!(branch(cancel), branch(invite), "CANCEL Via branch");
    // RFC 3261 §17.1.1.3: the ACK for the 487 belongs to the INVITE transaction.
    let ack = received(&outcome, "ACK");
    assert_eq!(branch(ack), branch(invite), "ACK for 487: Via branch");
    assert_eq!(ack.cseq_method(), Some("ACK"));
    assert_eq!(
        outcome.with_status(487).count(),
        1,
        "{:?}",
        outcome.ladder()
    );

    assert_eq!(text(&cdr, "outcome"), "no_answer", "CDR: {cdr}");
    assert_eq!(
        cdr["q850_cause"].as_u64(),
        Some(19),
        "RFC 3398 no answer: {cdr}"
    );
    assert_eq!(cdr["sip_status"].as_u64(), Some(487), "CDR: {cdr}");
    assert_eq!(text(&cdr, "hung_up_by"), "dialer", "CDR: {cdr}");
    assert!(
        cdr["agent_call_id"].is_null(),
        "the agent is never called for an unanswered customer: {cdr}"
    );
    // The timeout is the configured 3 s, not the 60 s default.
    let rang = cdr["ended"].as_f64().unwrap_or(0.0) - cdr["created"].as_f64().unwrap_or(0.0);
    assert!(
        (3.0..8.0).contains(&rang),
        "the call lasted {rang} s; originate_timeout_s is 3: {cdr}"
    );
}

/// The agent's SIP messages in a tap of its port, as a ladder for assertion messages.
fn ladder(messages: &[SipPacket]) -> Vec<String> {
    messages.iter().map(SipPacket::label).collect()
}

#[test]
fn customer_bye_during_ringback_cancels_the_ringing_agent_with_a_cdr_abandoned_by_customer() {
    let test =
        CallTest::new("call-bye-ringback", &["sipp", "baresip", "sox", "tshark"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier(&test.dir, "carrier_bye_ringback.xml", media_port).expect("carrier");
    let config = test
        .config(carrier.addr(), &CallOptions::default())
        .expect("config");
    let run = test.run(&config).expect("dialer run");
    let agent_port = free_baresip_port(LOOPBACK).expect("agent SIP port");
    let tap = Tap::start(
        "agent-sip",
        &format!("udp and port {agent_port}"),
        test.dir.path(),
    )
    .expect("tshark taps the agent's SIP");
    let config = test
        .agent_config(
            AnswerMode::Manual,
            &["PCMA"],
            std::net::SocketAddr::new(LOOPBACK, agent_port),
            free_udp_range(LOOPBACK, 20).expect("agent RTP"),
            std::net::SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("ctrl port")),
        )
        .expect("agent config");
    let agent = scenario_tests::interop::baresip::Baresip::start(config, test.dir.path())
        .expect("baresip starts");
    agent
        .wait_registered(Duration::from_secs(10))
        .expect("agent registers");

    let call = test.call("+15551234").expect("dialer call");
    agent
        .wait_incoming(Duration::from_secs(15))
        .expect("the agent rings once the customer answered");
    let outcome = carrier
        .expect_success(Duration::from_secs(20))
        .expect("the carrier's BYE during ringback is answered 200");
    agent
        .wait_terminated(Duration::from_secs(10))
        .expect("the ringing agent's call ends");
    let status = call
        .wait_exit(Duration::from_secs(10))
        .expect("dialer call ends");
    let cdr = wait_cdr(&run, Duration::from_secs(5)).expect("CDR");
    // The agent's 487 and the dialer's ACK for it are the last messages on the agent's port.
    poll_until(
        "ACK for the agent's 487 in the capture",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let pcap = tap.pcap();
            let messages = tshark::sip_messages(pcap, agent_port).ok()?;
            messages
                .iter()
                .any(|m| m.method.as_deref() == Some("ACK"))
                .then_some(())
        },
    )
    .ok();
    let pcap = tap.stop().expect("capture stops");
    stop(&run);

    assert_eq!(
        status.code(),
        Some(1),
        "an abandoned call was never bridged:\n{}",
        call.tail()
    );
    assert!(
        in_dialog(&outcome, "BYE").is_none(),
        "the customer hung up; the dialer must not BYE it too: {:?}",
        outcome.ladder()
    );
    let messages = tshark::sip_messages(&pcap, agent_port).expect("agent SIP decoded");
    let to_agent = |m: &&SipPacket| m.dst.port() == agent_port;
    let invite = messages
        .iter()
        .filter(to_agent)
        .find(|m| m.method.as_deref() == Some("INVITE"))
        .unwrap_or_else(|| panic!("no INVITE to the agent: {:?}", ladder(&messages)));
    let cancel = messages
        .iter()
        .filter(to_agent)
        .find(|m| m.method.as_deref() == Some("CANCEL"))
        .unwrap_or_else(|| {
            panic!(
                "the ringing agent's INVITE was not CANCELled: {:?}",
                ladder(&messages)
            )
        });
    // RFC 3261 §9.1: same Call-ID, CSeq number and branch as the INVITE.
    assert_eq!(cancel.call_id, invite.call_id);
    assert_eq!(cseq_number(&cancel.cseq), cseq_number(&invite.cseq));
    assert_eq!(cancel.branch, invite.branch);
    assert!(
        messages
            .iter()
            .any(|m| m.status == Some(487) && m.call_id == invite.call_id),
        "the agent answers its cancelled INVITE 487: {:?}",
        ladder(&messages)
    );
    assert!(
        !messages
            .iter()
            .any(|m| m.status == Some(200) && m.cseq.ends_with("INVITE")),
        "the agent never answered: {:?}",
        ladder(&messages)
    );

    assert_eq!(text(&cdr, "outcome"), "abandoned", "CDR: {cdr}");
    assert_eq!(text(&cdr, "hung_up_by"), "customer", "CDR: {cdr}");
    assert_eq!(
        cdr["q850_cause"].as_u64(),
        Some(16),
        "normal clearing: {cdr}"
    );
    assert!(cdr["bridged"].is_null(), "never bridged: {cdr}");
    assert_eq!(
        text(&cdr, "agent_call_id"),
        invite.call_id,
        "the CDR names the cancelled agent leg: {cdr}"
    );
}

#[test]
fn agent_bye_reaches_the_carrier_through_its_route_set_with_a_cdr_hung_up_by_agent_cause_16() {
    let test = CallTest::new("call-agent-bye", &["sipp", "baresip", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier(&test.dir, "carrier.xml", media_port).expect("carrier");
    let config = test
        .config(carrier.addr(), &CallOptions::default())
        .expect("config");
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
    agent.hangup().expect("agent hangs up");
    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier gets the BYE and answers 200");
    let status = call
        .wait_exit(Duration::from_secs(10))
        .expect("dialer call ends");
    let cdr = wait_cdr(&run, Duration::from_secs(5)).expect("CDR");
    stop(&run);

    assert!(status.success(), "a bridged call exits 0:\n{}", call.tail());
    let bye = in_dialog(&outcome, "BYE")
        .unwrap_or_else(|| panic!("carrier got no BYE: {:?}", outcome.ladder()));
    assert_eq!(bye.direction, Direction::Received);
    if let Err(e) = routed_to_contact_via_record_route(bye, carrier.addr()) {
        panic!("{e}");
    }
    assert_eq!(text(&cdr, "outcome"), "bridged", "CDR: {cdr}");
    assert_eq!(text(&cdr, "hung_up_by"), "agent", "CDR: {cdr}");
    assert_eq!(
        cdr["q850_cause"].as_u64(),
        Some(16),
        "normal clearing: {cdr}"
    );
    assert_eq!(cdr["sip_status"].as_u64(), Some(200), "CDR: {cdr}");
}

#[test]
fn agent_ringing_past_the_agent_ring_timeout_is_cancelled_and_the_customer_gets_a_bye() {
    let test = CallTest::new("call-agent-noanswer", &["sipp", "baresip", "sox"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier(&test.dir, "carrier.xml", media_port).expect("carrier");
    let options = CallOptions {
        agent_ring_timeout_s: 2,
        ..CallOptions::default()
    };
    let config = test.config(carrier.addr(), &options).expect("config");
    let run = test.run(&config).expect("dialer run");
    // Manual answer, never accepted: the agent rings until the dialer gives up.
    let agent = test.agent(AnswerMode::Manual, &["PCMA"]).expect("agent");

    let call = test.call("+15551234").expect("dialer call");
    agent
        .wait_incoming(Duration::from_secs(15))
        .expect("the agent rings once the customer answered");
    agent
        .wait_terminated(Duration::from_secs(10))
        .expect("the dialer cancels the ringing agent");
    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the answered customer gets a BYE");
    let status = call
        .wait_exit(Duration::from_secs(10))
        .expect("dialer call ends");
    let cdr = wait_cdr(&run, Duration::from_secs(5)).expect("CDR");
    stop(&run);

    assert_eq!(status.code(), Some(1), "never bridged:\n{}", call.tail());
    let bye = in_dialog(&outcome, "BYE")
        .unwrap_or_else(|| panic!("carrier got no BYE: {:?}", outcome.ladder()));
    if let Err(e) = routed_to_contact_via_record_route(bye, carrier.addr()) {
        panic!("{e}");
    }
    assert_eq!(text(&cdr, "outcome"), "agent_no_answer", "CDR: {cdr}");
    assert_eq!(text(&cdr, "hung_up_by"), "dialer", "CDR: {cdr}");
    assert_eq!(cdr["q850_cause"].as_u64(), Some(19), "no answer: {cdr}");
    assert!(cdr["bridged"].is_null(), "never bridged: {cdr}");
    // The timeout is the configured 2 s of ringing, not the 30 s default.
    let rang = cdr["ended"].as_f64().unwrap_or(0.0) - cdr["answered"].as_f64().unwrap_or(0.0);
    assert!(
        (2.0..7.0).contains(&rang),
        "the agent rang {rang} s after the answer; agent_ring_timeout_s is 2: {cdr}"
    );
}
