//! Codecs of a bridged call against real peers. A call whose legs share no codec: the carrier
//! (SIPp) speaks only PCMA, the agent (baresip with `audio_codecs=opus/48000/2`) only Opus, so
//! the dialer transcodes both ways; the agent must hear the carrier's 440 Hz, the carrier must
//! get the ringback and then the agent's 1000 Hz, and the CDR must name each leg's codec. And a
//! carrier that changes the codec mid-call by re-INVITE (RFC 3264 §8.3.2): the relay follows
//! it on that leg alone.

use std::time::Duration;

use scenario_tests::interop::audio::{self, Law};
use scenario_tests::interop::baresip::AnswerMode;
use scenario_tests::interop::call::{carrier, text, wait_cdr, CallOptions, CallTest, TONES};
use scenario_tests::interop::carrier::carrier_config;
use scenario_tests::interop::poll_until;
use scenario_tests::interop::ports::{free_udp_range, LOOPBACK};
use scenario_tests::interop::robust::{find, tone_between, Bridged, Hangup};
use scenario_tests::interop::trace::Direction;
use scenario_tests::interop::tshark::{self, Tap};
use scenario_tests::interop::wire;

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

#[test]
fn carrier_reinvite_from_pcma_to_pcmu_is_answered_pcmu_and_the_relay_follows_on_that_leg_only() {
    let test =
        CallTest::new("call-codec-change", &["sipp", "baresip", "sox", "tshark"]).expect("setup");
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier = carrier_config(
        &test.dir,
        "carrier_codec_change.xml",
        LOOPBACK,
        media_port,
        2,
        &[],
    )
    .expect("carrier");
    audio::g711_raw(&test.dir.join("carrier.ul"), Law::Mu, 440, 40).expect("mu-law source");
    // The trunk offers both laws; the carrier answers PCMA, then re-offers PCMU only. The
    // agent is held to PCMA, so after the change the relay transcodes PCMU <-> PCMA.
    let options = CallOptions {
        trunk_codecs: vec!["PCMA".into(), "PCMU".into()],
        agent_codecs: vec!["PCMA".into()],
        ..CallOptions::default()
    };
    let call = Bridged::start_with(&test, carrier, None, &[], &options)
        .expect("the call is placed and the agent answers");
    let carrier_addr = call.carrier.addr();
    let ended = call.finish(Hangup::Carrier).expect("the call ends");

    // RFC 3264 §6.1: the answer to an offer of PCMU alone is PCMU, on our same port.
    let answers: Vec<_> = ended
        .carrier
        .messages
        .iter()
        .filter(|m| {
            m.direction == Direction::Received
                && m.status() == Some(200)
                && m.cseq_method() == Some("INVITE")
        })
        .collect();
    assert_eq!(answers.len(), 1, "{:?}", ended.carrier.ladder());
    let m_line = answers[0]
        .body
        .lines()
        .find(|l| l.starts_with("m=audio"))
        .unwrap_or_else(|| panic!("an m= line in the answer: {:?}", answers[0].body));
    assert_eq!(
        m_line.split_whitespace().nth(3),
        Some("0"),
        "answered with PCMU first: {m_line}"
    );
    assert!(
        !answers[0].body.contains("PCMA"),
        "PCMA was not in the offer, so not in the answer: {:?}",
        answers[0].body
    );
    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);

    // On the wire towards the carrier: PCMA until the answer went out, PCMU from a moment
    // after, one stream whose sequence numbers run on across the switch (RFC 3550 §5.1).
    let sip = ended.carrier_sip(carrier_addr).expect("SIP on the capture");
    let answered = sip
        .iter()
        .filter(|m| m.message.direction == Direction::Received)
        .find(|m| {
            m.label() == "200 INVITE"
                && m.message
                    .header("CSeq")
                    .is_some_and(|c| c.starts_with("1 "))
        })
        .map(|m| m.time)
        .expect("the dialer's 200 to the re-INVITE captured");
    let bye = find(&sip, "BYE", None).expect("BYE captured").time;
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let before = wire::rtp_between(&rtp, 0.0, answered);
    let after = wire::rtp_between(&rtp, answered + 0.5, bye);
    assert!(
        before.len() > 50 && before.iter().all(|p| p.payload_type == 8),
        "PCMA (8) before the change: {:?}",
        before.iter().map(|p| p.payload_type).collect::<Vec<_>>()
    );
    assert!(
        after.len() > 50 && after.iter().all(|p| p.payload_type == 0),
        "PCMU (0) after the change: {:?}",
        after.iter().map(|p| p.payload_type).collect::<Vec<_>>()
    );
    // The premise: the carrier really switched, so what the agent hears below was decoded
    // as mu-law.
    let our_port: u16 = m_line
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("our RTP port in the answer");
    let from_carrier = ended.rtp_to(our_port).expect("carrier's RTP to us");
    let carrier_after = wire::rtp_between(&from_carrier, answered + 0.5, bye);
    assert!(
        carrier_after.len() > 50 && carrier_after.iter().all(|p| p.payload_type == 0),
        "the carrier sends PCMU after the change: {:?}",
        carrier_after
            .iter()
            .map(|p| p.payload_type)
            .collect::<Vec<_>>()
    );
    let audio_packets: Vec<_> = rtp.iter().filter(|p| p.payload_type <= 8).collect();
    let switch = audio_packets
        .windows(2)
        .find(|w| w[0].payload_type == 8 && w[1].payload_type == 0)
        .expect("the stream switches from PCMA to PCMU");
    assert_eq!(
        switch[1].seq,
        switch[0].seq.wrapping_add(1),
        "sequence numbers run on across the codec change"
    );
    let (present, timeline) = tone_between(&rtp, answered + 0.5, bye, 1000.0);
    assert!(
        present,
        "the agent's 1000 Hz reaches the carrier as PCMU: {timeline:?}"
    );

    // The agent hears the carrier's 440 Hz, now PCMU transcoded to its PCMA, to the end.
    let end = ended.heard.duration_s();
    assert!(
        audio::tone_present_in(&ended.heard, 440.0, end - 2.0, end - 0.2),
        "the agent hears the carrier after the codec change; timeline {:?}",
        audio::tone_timeline(&ended.heard, &TONES)
    );
    // The change stays on the carrier's leg: transcoding absorbs it, so the agent gets no
    // re-INVITE.
    let agent_invites = wire::sip_messages(&ended.pcap, ended.agent_sip.port())
        .expect("agent SIP on the capture")
        .iter()
        .filter(|m| m.label() == "INVITE" && m.message.direction == Direction::Received)
        .count();
    assert_eq!(agent_invites, 1, "only the first INVITE reaches the agent");
}
