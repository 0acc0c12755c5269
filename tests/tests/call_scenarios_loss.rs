//! Signalling loss: with 10 % of SIP datagrams dropped in both directions (seeded), calls
//! still set up, bridge and tear down, by the transactions' retransmissions and the
//! re-ACK of retransmitted 2xx (RFC 3261 §17.1.1.2, §17.1.2.2, §13.2.2.4, §13.3.1.4).

mod scenario_net;

use dialer::control::{ApiEvent, HungUpBy};
use media::sdp::Codec;
use scenario_net::*;
use sip_core::endpoint::make_response;
use sip_core::message::{HeaderKind, Method};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(40);

/// One whole call over the lossy network: the customer answers, the agent answers, the
/// customer hangs up.
fn call_over_lossy_network(seed: u64) -> (dialer::control::Cdr, usize) {
    let mut net = Net::new().lossy(0.10, seed);
    net.originate();
    let (tx, invite) = net
        .wait_for(LIMIT, |n| n.carrier.take_request(Method::Invite))
        .unwrap_or_else(|| panic!("seed {seed}: the INVITE never reached the carrier"));
    net.carrier
        .respond(net.now, tx, make_response(&invite, 180, Some("c1")));
    net.carrier.respond(
        net.now,
        tx,
        carrier_ok(
            &invite,
            "c1",
            Some(answer(&invite, vec![Codec::Pcma], "192.0.2.51", 30000)),
        ),
    );
    net.settle();
    let (atx, ainv) = net
        .wait_for(LIMIT, |n| n.agent.take_request(Method::Invite))
        .unwrap_or_else(|| panic!("seed {seed}: the agent was never called"));
    let mut ok = make_response(&ainv, 200, Some("a1"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:1000@10.0.0.5:5060;ob>");
    ok.set_body(
        "application/sdp",
        answer(&ainv, vec![Codec::Pcmu], "10.0.0.5", 4000),
    );
    net.agent.respond(net.now, atx, ok);
    net.settle();
    net.wait_for(LIMIT, |n| {
        n.events()
            .iter()
            .any(|e| matches!(e, ApiEvent::Bridged { .. }))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("seed {seed}: never bridged"));
    // Both 2xx are acknowledged in the end, so neither peer hangs up for a missing ACK.
    let ack = net
        .wait_for(LIMIT, |n| {
            n.carrier.received_requests(Method::Ack).first().cloned()
        })
        .unwrap_or_else(|| panic!("seed {seed}: no ACK reached the carrier"));
    net.wait_for(LIMIT, |n| {
        n.agent.received_requests(Method::Ack).first().cloned()
    })
    .unwrap_or_else(|| panic!("seed {seed}: no ACK reached the agent"));
    net.advance(Duration::from_secs(5));

    let bye = in_dialog(&ack, Method::Bye, 1, "sip:+15550100@192.0.2.10:5060");
    net.carrier.send(net.now, bye);
    net.settle();
    let cdr = net
        .wait_for(LIMIT, |n| {
            n.agent.answer_byes(n.now);
            n.settle();
            n.cdrs().into_iter().next()
        })
        .unwrap_or_else(|| panic!("seed {seed}: the call never ended"));
    // The carrier's BYE got its 200 (its transaction ends without a timeout).
    net.advance(Duration::from_secs(40));
    let timed_out = net.carrier.events.iter().any(|e| {
        matches!(e, sip_core::endpoint::Event::Timeout { method, .. } if *method == Method::Bye)
    });
    assert!(
        !timed_out,
        "seed {seed}: the carrier's BYE was never answered"
    );
    assert_eq!(
        net.core.call_count(),
        0,
        "seed {seed}: a call was left behind"
    );
    (cdr, net.dropped)
}

#[test]
fn calls_set_up_bridge_and_end_with_ten_percent_of_sip_datagrams_lost() {
    let mut dropped = 0;
    for seed in 1..=20 {
        let (cdr, lost) = call_over_lossy_network(seed);
        assert_eq!(cdr.outcome, "bridged", "seed {seed}");
        assert_eq!(cdr.hung_up_by, HungUpBy::Customer, "seed {seed}");
        assert_eq!(cdr.q850_cause, 16, "seed {seed}");
        assert!(cdr.bridged.is_some(), "seed {seed}");
        dropped += lost;
    }
    // The network really lost datagrams: about 10 % of roughly 20 per call.
    assert!(dropped >= 20, "only {dropped} datagrams were dropped");
}
