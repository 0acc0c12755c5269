//! The dialer stopping in the middle of a bridged call (issue 6, item 5: a dialer restart
//! leaves no call half-open on the carrier): on SIGTERM it sends BYE on both legs, writes the
//! CDR and exits 0, through the real `dialer run` between SIPp as the carrier and baresip as
//! agent 1000.

use std::time::Duration;

use scenario_tests::interop::baresip::AnswerMode;
use scenario_tests::interop::call::{
    carrier, in_dialog, routed_to_contact_via_record_route, text, wait_cdr, CallOptions, CallTest,
};
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::{free_udp_range, LOOPBACK};
use scenario_tests::interop::trace::Direction;

#[test]
fn sigterm_during_a_bridged_call_sends_bye_on_both_legs_and_exits_cleanly() {
    let test = CallTest::new("call-sigterm", &["sipp", "baresip", "sox"]).expect("setup");
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

    // The dialer is stopped (a restart's first half) while the call is up.
    run.signal("TERM").expect("SIGTERM to dialer run");
    let outcome = carrier
        .expect_success(Duration::from_secs(15))
        .expect("the carrier gets the BYE and answers 200");
    agent
        .wait_terminated(Duration::from_secs(10))
        .expect("the agent's call is ended too");
    let cdr = wait_cdr(&run, Duration::from_secs(10)).expect("CDR");
    let exit = run
        .stop("TERM", Duration::from_secs(10))
        .expect("dialer run exits");
    let _ = call.wait_exit(Duration::from_secs(10));

    assert!(exit.success(), "dialer run exits 0 after a clean shutdown");
    let bye = in_dialog(&outcome, "BYE")
        .unwrap_or_else(|| panic!("carrier got no BYE: {:?}", outcome.ladder()));
    assert_eq!(bye.direction, Direction::Received);
    if let Err(e) = routed_to_contact_via_record_route(bye, carrier.addr()) {
        panic!("{e}");
    }
    assert_eq!(text(&cdr, "outcome"), "bridged", "CDR: {cdr}");
    assert_eq!(text(&cdr, "hung_up_by"), "dialer", "CDR: {cdr}");
    assert_eq!(cdr["q850_cause"].as_u64(), Some(16), "CDR: {cdr}");
}
