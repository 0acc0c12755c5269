//! A bridged call whose legs share no codec (issue 5, proof b): the carrier (SIPp) speaks only
//! PCMA, the agent (baresip with `audio_codecs=opus/48000/2`) only Opus, so the dialer transcodes both
//! ways. The agent must hear the carrier's 440 Hz, the carrier must get the ringback and then
//! the agent's 1000 Hz, and the CDR must name each leg's codec.

use std::time::Duration;

use scenario_tests::interop::audio;
use scenario_tests::interop::baresip::AnswerMode;
use scenario_tests::interop::call::{carrier, text, wait_cdr, CallOptions, CallTest, TONES};
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::{free_udp_range, LOOPBACK};
use scenario_tests::interop::tshark::{self, Tap};

#[test]
fn opus_agent_and_pcma_carrier_hear_each_other_through_the_transcoding_bridge() {
    let test =
        CallTest::new("call-opus-pcma", &["sipp", "baresip", "sox", "tshark"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let tap = Tap::start(
        "carrier-rtp",
        &format!("udp and dst host 127.0.0.1 and dst port {media_port}"),
        test.dir.path(),
    )
    .expect("tshark taps lo");
    let carrier = carrier(&test.dir, "carrier.xml", media_port).expect("carrier");
    // The dialer offers G.711 first; the agent can only answer Opus.
    let options = CallOptions {
        agent_codecs: vec!["PCMA".into(), "PCMU".into(), "opus".into()],
        ..CallOptions::default()
    };
    let config = test.config(carrier.addr(), &options).expect("config");
    let run = test.run(&config).expect("dialer run");
    // baresip 1.0 reads a bare `opus` as opus/8000/1, finds no such codec and then offers
    // every codec it has; the full name restricts it to Opus.
    let agent = test
        .agent(AnswerMode::Manual, &["opus/48000/2"])
        .expect("agent");

    let call = test.call("+15551234").expect("dialer call");
    agent
        .wait_incoming(Duration::from_secs(15))
        .expect("the agent rings once the customer answered");
    tap.wait_packets(60, Duration::from_secs(10))
        .expect("ringback reaches the carrier while the agent rings");
    agent.accept().expect("agent answers");
    agent
        .wait_established(Duration::from_secs(5))
        .expect("agent call established");
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

    assert!(status.success(), "bridged call exits 0:\n{}", call.tail());
    assert_eq!(text(&cdr, "customer_codec"), "PCMA", "CDR: {cdr}");
    assert!(
        text(&cdr, "agent_codec").eq_ignore_ascii_case("opus"),
        "the agent leg is Opus: {cdr}"
    );

    // Agent side: Opus decoded by baresip, the carrier's 440 Hz.
    let heard = audio::Pcm::read_wav(&agent.heard().expect("agent recording")).unwrap();
    assert!(
        audio::tone_present_in(&heard, 440.0, 0.5, heard.duration_s() - 0.5),
        "agent did not hear 440 Hz through Opus; timeline {:?}",
        audio::tone_timeline(&heard, &TONES)
    );
    // Carrier side: only PCMA arrives, ringback (425 Hz) first, then the agent's 1000 Hz.
    let packets = tshark::rtp_to_port(&pcap, media_port).expect("carrier RTP decoded");
    let other: Vec<u8> = packets
        .iter()
        .map(|p| p.payload_type)
        .filter(|&pt| pt != 8)
        .collect();
    assert!(
        other.is_empty(),
        "the carrier negotiated PCMA only, yet got payload types {other:?}"
    );
    let received = tshark::g711_timeline(&packets);
    let timeline = audio::tone_timeline(&received, &TONES);
    let ring = audio::first_block_with(&timeline, 425.0)
        .unwrap_or_else(|| panic!("no ringback at the carrier: {timeline:?}"));
    let voice = audio::first_block_with(&timeline, 1000.0)
        .unwrap_or_else(|| panic!("no agent audio at the carrier: {timeline:?}"));
    assert!(
        ring < voice,
        "ringback at {ring} s must come before the agent at {voice} s"
    );
    assert!(
        audio::tone_present_in(&received, 1000.0, voice, voice + 2.0),
        "the agent's 1000 Hz, transcoded from Opus, lasts at the carrier: {timeline:?}"
    );
}
