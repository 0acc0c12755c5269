//! The real `dialer run` behind a real record-routing proxy: the trunk's proxy is Kamailio
//! (`record_route()`, `loose_route()`, `t_relay()`: tests/interop/kamailio/proxy.cfg.tmpl),
//! which relays to SIPp as the carrier (`carrier_proxied.xml`: 407, 183, a 200 whose Contact
//! is on 127.0.0.3 with SIPp's own Record-Route above the proxy's), baresip is agent 1000.
//!
//! RFC 3261 §12.1.2: the dialer's route set is the 200's Record-Route reversed, Kamailio
//! first; §12.2.1.1 / §13.2.2.4: its ACK for the 2xx and its BYE carry that Route set, go to
//! Kamailio (the first hop), and reach SIPp only because Kamailio loose-routes them on
//! (§16.12): SIPp sees them with Kamailio's Via on top. Audio flows both ways directly (the
//! proxy carries no media) and the CDR says bridged.

use std::net::SocketAddr;
use std::time::Duration;

use scenario_tests::interop::audio;
use scenario_tests::interop::call::{in_dialog, text, CallTest, TONES};
use scenario_tests::interop::carrier::carrier_config;
use scenario_tests::interop::kamailio_proxy::KamailioProxy;
use scenario_tests::interop::ports::{free_port, free_udp_range, loopback, LOOPBACK};
use scenario_tests::interop::robust::{tone_between, Bridged, Hangup};
use scenario_tests::interop::trace::TracedMessage;
use scenario_tests::interop::wire::{self, WireSip};

/// Whether a Route or Record-Route value names `addr` as a loose router.
fn names(value: &str, addr: SocketAddr) -> bool {
    value.contains(&format!("sip:{addr};lr")) || value.contains(&format!("sip:{addr};r2=on;lr"))
}

/// The last request `method` the dialer sent on the customer leg (not to `agent`).
fn sent_by_dialer<'a>(
    sip: &'a [WireSip],
    dialer: SocketAddr,
    agent: SocketAddr,
    method: &str,
) -> &'a WireSip {
    sip.iter()
        .rev()
        .find(|m| {
            m.label() == method
                && m.src == dialer
                && m.dst != agent
                && m.message.cseq_method() == Some(method)
        })
        .unwrap_or_else(|| panic!("the dialer sent no {method}"))
}

/// RFC 3261 §12.2.1.1 with loose routers: Request-URI the 200's Contact, Route the proxy
/// then SIPp, sent to the proxy.
fn assert_routed_through_proxy(request: &WireSip, proxy: SocketAddr, carrier: SocketAddr) {
    let label = request.label();
    let uri = request.message.request_uri().unwrap_or_default();
    assert!(
        uri.contains(&format!("@{}:{}", loopback(3), carrier.port())),
        "{label} Request-URI {uri} is not the 200's Contact"
    );
    let routes = request.routes();
    assert!(
        routes.len() == 2 && names(&routes[0], proxy) && names(&routes[1], carrier),
        "{label} Route {routes:?}: expected the proxy {proxy} then the carrier {carrier}"
    );
    assert_eq!(
        request.dst, proxy,
        "{label} goes to the first hop, the proxy"
    );
}

/// SIPp got `request` from the proxy: the proxy's Via on top of the dialer's, and the Route
/// left after the proxy took its own entry off.
fn assert_relayed_by_proxy(request: &TracedMessage, proxy: SocketAddr, dialer: SocketAddr) {
    let label = request.label();
    let vias: Vec<String> = wire::split_header_list(request, "Via");
    assert!(
        vias.len() == 2
            && vias[0].contains(&proxy.to_string())
            && vias[1].contains(&dialer.to_string()),
        "{label} at the carrier: Via {vias:?}, expected the proxy's above the dialer's"
    );
    let routes = wire::split_header_list(request, "Route");
    assert!(
        routes.iter().all(|r| !r.contains(&proxy.to_string())),
        "{label} at the carrier still routes through the proxy: {routes:?}"
    );
}

#[test]
fn ack_and_bye_carry_the_proxy_route_set_and_reach_the_carrier_through_kamailio() {
    let test =
        CallTest::new("kamailio-proxy", &["sipp", "baresip", "sox", "tshark"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier_config(
        &test.dir,
        "carrier_proxied.xml",
        LOOPBACK,
        media_port,
        2,
        &[],
    )
    .expect("carrier");
    let carrier_addr = carrier.local;
    let proxy = KamailioProxy::start(
        "kamailio",
        SocketAddr::new(LOOPBACK, free_port(LOOPBACK).expect("proxy port")),
        carrier_addr,
        test.dir.path(),
    )
    .expect("Kamailio proxy starts");
    let proxy_addr = proxy.addr();
    let dialer = test.sip;
    let call = Bridged::start(&test, carrier, Some(proxy_addr), &[]).expect("the call is placed");
    call.wait_heard(3.0, Duration::from_secs(15))
        .expect("audio flows to the agent");
    let ended = call.finish(Hangup::Agent).expect("the call ends");
    let log = proxy.log();
    proxy.stop(Duration::from_secs(5)).expect("Kamailio stops");

    // The 200 as the dialer got it: SIPp's Record-Route above Kamailio's.
    let at_dialer = wire::sip_messages(&ended.pcap, dialer.port()).expect("dialer SIP");
    let ok = at_dialer
        .iter()
        .find(|m| m.label() == "200 INVITE" && m.dst == dialer && m.src == proxy_addr)
        .expect("the 200 came back through the proxy");
    let record_route = wire::split_header_list(&ok.message, "Record-Route");
    assert!(
        record_route.len() == 2
            && names(&record_route[0], carrier_addr)
            && names(&record_route[1], proxy_addr),
        "200 Record-Route {record_route:?}"
    );
    assert_routed_through_proxy(
        sent_by_dialer(&at_dialer, dialer, ended.agent_sip, "ACK"),
        proxy_addr,
        carrier_addr,
    );
    assert_routed_through_proxy(
        sent_by_dialer(&at_dialer, dialer, ended.agent_sip, "BYE"),
        proxy_addr,
        carrier_addr,
    );
    // What SIPp got: both through Kamailio, which logged them as loose-routed.
    let outcome = &ended.carrier;
    let ack = outcome
        .received("ACK")
        .last()
        .expect("ACK for the 200 at the carrier");
    assert_relayed_by_proxy(ack, proxy_addr, dialer);
    let bye = in_dialog(outcome, "BYE").expect("BYE at the carrier");
    assert_relayed_by_proxy(bye, proxy_addr, dialer);
    for method in ["ACK", "BYE"] {
        assert!(
            log.contains(&format!("in-dialog {method} to")),
            "Kamailio did not loose-route the {method}:\n{log}"
        );
    }

    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let answered = sent_by_dialer(&at_dialer, dialer, ended.agent_sip, "ACK").time;
    let (present, timeline) = tone_between(&rtp, answered, f64::MAX, 1000.0);
    assert!(present, "no agent audio at the carrier: {timeline:?}");
    let heard = &ended.heard;
    assert!(
        audio::tone_present_in(heard, 440.0, 0.5, heard.duration_s() - 0.2),
        "the agent does not hear the carrier; timeline {:?}",
        audio::tone_timeline(heard, &TONES)
    );
}
