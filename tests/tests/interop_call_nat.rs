//! The agent behind NAT (issue 5, proof c): baresip runs in its own network namespace on a
//! private LAN masqueraded by a router namespace ([`NatLan`]), registers to `dialer run` on the
//! host's end of the router's WAN link, and must be called at the address its REGISTER came
//! from (the router's), not at its private Contact, with audio both ways through the NAT
//! binding (the dialer latches onto where the agent's RTP comes from).
//!
//! Needs root (ip netns, veth, iptables); as any other user it fails saying so. CI runs as root.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use scenario_tests::interop::audio;
use scenario_tests::interop::baresip::{AnswerMode, Baresip};
use scenario_tests::interop::call::{carrier, text, wait_cdr, CallOptions, CallTest, TONES};
use scenario_tests::interop::netns::NatLan;
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::{free_udp_range, LOOPBACK};
use scenario_tests::interop::tshark::{self, Tap};

#[test]
fn agent_behind_nat_is_called_at_its_public_address_and_audio_flows_both_ways() {
    let lan = NatLan::create().unwrap_or_else(|e| panic!("{e}"));
    let test = CallTest::on(
        "call-nat",
        &["sipp", "baresip", "sox", "tshark", "ip", "iptables"],
        IpAddr::V4(lan.host_ip),
    )
    .expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let tap = Tap::start(
        "carrier-rtp",
        &format!("udp and dst host 127.0.0.1 and dst port {media_port}"),
        test.dir.path(),
    )
    .expect("tshark taps lo");
    let carrier = carrier(&test.dir, "carrier.xml", media_port).expect("carrier");
    let options = CallOptions {
        agent_allow: vec![format!("{}/32", lan.public_ip)],
        ..CallOptions::default()
    };
    let config = test.config(carrier.addr(), &options).expect("config");
    let run = test.run(&config).expect("dialer run");

    // The agent namespace is fresh: nothing else holds its ports.
    let agent_ip = IpAddr::V4(lan.agent_ip);
    let ctrl = SocketAddr::new(agent_ip, 4444);
    lan.allow_tcp_to_agent(ctrl.port())
        .expect("management access to ctrl_tcp");
    let agent_config = test
        .agent_config(
            AnswerMode::Auto,
            &["PCMA"],
            SocketAddr::new(agent_ip, 5060),
            20_000,
            ctrl,
        )
        .expect("agent config");
    let agent = Baresip::start_in_netns(agent_config, test.dir.path(), lan.agent_namespace())
        .expect("baresip starts in the agent namespace");
    agent
        .wait_registered(Duration::from_secs(10))
        .expect("agent 1000 registers through the NAT");

    // GET /agents: the registration's real source is the router, the Contact the LAN address.
    let agents = test
        .client()
        .expect("client")
        .agents()
        .expect("GET /agents");
    let info = agents
        .iter()
        .find(|a| a.extension == "1000")
        .unwrap_or_else(|| panic!("agent 1000 not listed: {agents:?}"));
    assert!(info.nat, "a Contact other than the source is NAT: {info:?}");
    let source = info.source.expect("a registered agent has a source");
    assert_eq!(
        source.ip(),
        IpAddr::V4(lan.public_ip),
        "the dialer sees the masqueraded address: {info:?}"
    );
    assert!(
        info.contact
            .as_deref()
            .is_some_and(|c| c.contains(&lan.agent_ip.to_string())),
        "the Contact is kept exactly as registered, with the private address: {info:?}"
    );

    let call = test.call("+15551234").expect("dialer call");
    // Nothing reaches the private address from the host side (the router drops new inbound
    // flows), so the call arriving at all proves it went to the NAT binding.
    agent
        .wait_established(Duration::from_secs(15))
        .expect("the agent is called at its public address and answers");
    poll_until(
        "3 s of audio heard by the agent",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || (agent.heard_seconds() >= 3.0).then_some(()),
    )
    .expect("audio flows to the agent");
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
    let pcap = tap.stop().expect("capture stops");
    run.stop("TERM", Duration::from_secs(10))
        .expect("dialer run stops");
    agent.stop().expect("baresip stops");

    assert!(status.success(), "bridged call exits 0:\n{}", call.tail());
    assert_eq!(text(&cdr, "outcome"), "bridged", "CDR: {cdr}");
    assert!(
        cdr["packets_to_customer"].as_u64().unwrap_or(0) > 50,
        "the agent's RTP came back through the NAT: {cdr}"
    );
    let heard = audio::Pcm::read_wav(&agent.heard().expect("agent recording")).unwrap();
    assert!(
        audio::tone_present_in(&heard, 440.0, 0.5, heard.duration_s() - 0.5),
        "agent behind NAT did not hear 440 Hz; timeline {:?}",
        audio::tone_timeline(&heard, &TONES)
    );
    let packets = tshark::rtp_to_port(&pcap, media_port).expect("carrier RTP decoded");
    let received = tshark::g711_timeline(&packets);
    let timeline = audio::tone_timeline(&received, &TONES);
    let voice = audio::first_block_with(&timeline, 1000.0).unwrap_or_else(|| {
        panic!("the agent's audio did not come back through the NAT: {timeline:?}")
    });
    assert!(
        audio::tone_present_in(&received, 1000.0, voice, voice + 2.0),
        "the agent's 1000 Hz lasts at the carrier: {timeline:?}"
    );
}
