//! DTMF interworking in virtual time: the B2BUA core between the simulated carrier and agent,
//! and the media relay built from the core's media commands, so a key press is followed from
//! the SIP INFO or the telephone-events of one leg to what the other leg receives.

mod scenario_net;

use std::time::{Duration, Instant};

use dialer::b2bua::{DtmfMode, MediaOp, MediaReport};
use media::codec::{Codec as AudioCodec, Decoder};
use media::dtmf::EventPayload;
use media::relay::{Relay, RelayConfig, RelayEvent, Side};
use media::rtcp::NtpTimestamp;
use media::rtp::{self, OutgoingHeader, PayloadType, RtpHeader, Ssrc};
use media::sdp::Negotiated;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scenario_net::*;
use sip_core::endpoint::{make_response, Event};
use sip_core::message::{HeaderKind, Method, Request, Response, SipMessage};

/// The origin of the relay's virtual time: only differences from it matter.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

/// The agent's telephone-event number: its own, not the one we offered (101).
const AGENT_EVENT_PT: u8 = 96;
/// The only call of each test.
const CALL_ID_OF_CALL: u64 = 1;

/// A bridged call: the carrier answers PCMA with telephone-event, the agent PCMU with
/// telephone-event on its own number 96 (or without telephone-event). Returns the ACK the
/// carrier received (for requests in its dialog) and the agent's INVITE.
fn bridged(trunk: DtmfMode, agent: DtmfMode, agent_events: bool) -> (Net, Request, Request) {
    let mut net = Net::new();
    net.core.set_trunk_dtmf(0, trunk);
    net.core.set_agent_dtmf("1000", agent);
    let ack = net.customer_answers();
    let (tx, agent_invite) = net
        .agent
        .take_request(Method::Invite)
        .expect("INVITE reached the agent");
    let mut ok = make_response(&agent_invite, 200, Some("a1"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:1000@10.0.0.5:5060;ob>");
    let events = if agent_events {
        format!(" {AGENT_EVENT_PT}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:{AGENT_EVENT_PT} telephone-event/8000\r\na=fmtp:{AGENT_EVENT_PT} 0-16\r\n")
    } else {
        "\r\na=rtpmap:0 PCMU/8000\r\n".to_owned()
    };
    let sdp = format!(
        "v=0\r\no=agent 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0{events}"
    );
    ok.set_body("application/sdp", sdp.into_bytes());
    net.agent.respond(net.now, tx, ok);
    net.settle();
    (net, ack, agent_invite)
}

/// The relay as the runtime builds it from the core's commands so far.
fn relay_from_ops(net: &Net, t0: Instant) -> Relay {
    let leg = |side: Side| -> Negotiated {
        net.media_ops()
            .into_iter()
            .rev()
            .find_map(|o| match o {
                MediaOp::SetLeg {
                    side: s,
                    negotiated,
                } if *s == side => Some(negotiated.clone()),
                _ => None,
            })
            .expect("a SetLeg for the side")
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
    let mut relay = Relay::new(
        RelayConfig::default(),
        leg(Side::Customer),
        leg(Side::Agent),
        t0,
        wallclock,
        &mut rng,
    )
    .expect("relay builds");
    for op in net.media_ops() {
        if let MediaOp::SetDtmf { side, mode } = op {
            relay.set_dtmf_mode(*side, *mode);
        }
    }
    relay
}

/// The key presses the core asked the media to play.
fn send_digits(net: &Net) -> Vec<(Side, u8, Duration)> {
    net.media_ops()
        .into_iter()
        .filter_map(|o| match o {
            MediaOp::SendDigit {
                side,
                event,
                duration,
            } => Some((*side, *event, *duration)),
            _ => None,
        })
        .collect()
}

/// Plays the core's SendDigit commands into the relay and returns the RTP it sends `side`
/// over the next `span`.
fn played(net: &Net, relay: &mut Relay, t0: Instant, side: Side, span: Duration) -> Vec<Vec<u8>> {
    for (to, event, duration) in send_digits(net) {
        assert!(relay.send_digit(t0, to, event, duration));
    }
    let mut out = Vec::new();
    let mut now = t0;
    while now <= t0 + span {
        let mut buf = [0u8; 1500];
        while let Some(t) = relay.poll_transmit_leg(now, &mut buf) {
            if t.side == side && rtp::classify(&buf[..t.len]) == rtp::PacketKind::Rtp {
                out.push(buf[..t.len].to_vec());
            }
        }
        now += Duration::from_millis(5);
    }
    out
}

/// The carrier sends an INFO in its dialog; returns the dialer's final response.
fn carrier_info(net: &mut Net, ack: &Request, cseq: u32, body: Option<(&str, &str)>) -> Response {
    let mut info = in_dialog(ack, Method::Info, cseq, "sip:+15550100@192.0.2.10:5060");
    if let Some((content_type, text)) = body {
        info.set_body(content_type, text.as_bytes().to_vec());
    }
    net.carrier.send(net.now, info);
    net.settle();
    let pos = net
        .carrier
        .events
        .iter()
        .position(|e| {
            matches!(e, Event::Response { response, .. }
                if response.cseq().is_ok_and(|c| c.method == Method::Info && c.seq == cseq))
        })
        .expect("the INFO was answered");
    match net.carrier.events.remove(pos) {
        Event::Response { response, .. } => response,
        _ => unreachable!("matched above"),
    }
}

fn events_of(packets: &[Vec<u8>]) -> Vec<(RtpHeader, EventPayload)> {
    packets
        .iter()
        .map(|p| {
            let h = RtpHeader::parse(p).expect("rtp");
            (h, EventPayload::parse(h.payload(p)).expect("event payload"))
        })
        .collect()
}

#[test]
fn info_dtmf_relay_from_the_carrier_reaches_the_agent_as_rfc4733_on_the_agents_payload_type() {
    let (mut net, ack, _) = bridged(DtmfMode::Info, DtmfMode::Rfc4733, true);
    let ok = carrier_info(
        &mut net,
        &ack,
        2,
        Some(("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")),
    );
    assert_eq!(ok.status, 200);
    assert_eq!(
        send_digits(&net),
        [(Side::Agent, 5, Duration::from_millis(160))]
    );

    let t0 = epoch();
    let mut relay = relay_from_ops(&net, t0);
    let packets = played(
        &net,
        &mut relay,
        t0,
        Side::Agent,
        Duration::from_millis(400),
    );
    let events = events_of(&packets);
    // 160 ms at 8 kHz in 20 ms steps: 7 updates (160..1120), then 1280 three times.
    assert_eq!(events.len(), 10, "{events:?}");
    let start = events[0].0.timestamp;
    for (i, (h, e)) in events.iter().enumerate() {
        assert_eq!(
            h.payload_type,
            PayloadType(AGENT_EVENT_PT),
            "the agent's number"
        );
        assert_eq!(
            h.timestamp, start,
            "RFC 4733 §2.5.1.2: every packet has the start"
        );
        assert_eq!(h.marker, i == 0);
        assert_eq!(e.event, 5);
        if i < 7 {
            assert_eq!((e.duration, e.end), (160 * (i as u16 + 1), false));
        } else {
            assert_eq!(
                (e.duration, e.end),
                (1280, true),
                "RFC 4733 §2.5.1.4: 3 end packets"
            );
        }
    }
    for pair in events.windows(2) {
        assert_eq!(pair[1].0.sequence, pair[0].0.sequence.wrapping_add(1));
    }
}

#[test]
fn rfc4733_from_the_agent_reaches_an_info_trunk_as_info_with_signal_and_duration() {
    let (mut net, _, _) = bridged(DtmfMode::Info, DtmfMode::Rfc4733, true);
    let t0 = epoch();
    let mut relay = relay_from_ops(&net, t0);
    // The agent presses # for 120 ms: 960 units at 8 kHz, end packet sent three times.
    let mut digits = Vec::new();
    for (k, (duration, end)) in [
        (160u16, false),
        (480, false),
        (960, true),
        (960, true),
        (960, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut buf = [0u8; 1500];
        let header = OutgoingHeader {
            marker: k == 0,
            payload_type: PayloadType(101),
            sequence: 10 + k as u16,
            timestamp: 4000,
            ssrc: Ssrc(0xa6e7),
        };
        let payload = [
            11,
            if end { 0x8a } else { 0x0a },
            (duration >> 8) as u8,
            duration as u8,
        ];
        let len = rtp::write_packet(&mut buf, &header, &payload).expect("fits");
        let now = t0 + Duration::from_millis(20 * k as u64);
        // From the address in the agent's SDP.
        relay.forward(now, Side::Agent, addr("10.0.0.5:4000"), &mut buf, len);
        while let Some(e) = relay.poll_event(now) {
            if let RelayEvent::Digit {
                side,
                event,
                duration,
            } = e
            {
                digits.push((side, event, duration));
            }
        }
    }
    assert_eq!(digits, [(Side::Agent, 11, Duration::from_millis(120))]);
    // The runtime hands the relay's report to the core.
    for (side, event, duration) in digits {
        net.core.media_event(
            net.now,
            dialer::control::CallId(CALL_ID_OF_CALL),
            MediaReport::Digit {
                side,
                event,
                duration,
            },
        );
    }
    net.settle();
    let (tx, info) = net
        .carrier
        .take_request(Method::Info)
        .expect("the INFO reached the carrier");
    assert_eq!(info.content_type(), Some("application/dtmf-relay"));
    assert_eq!(
        std::str::from_utf8(&info.body).unwrap(),
        "Signal=#\r\nDuration=120\r\n"
    );
    // In the carrier's dialog, through its proxy (the Record-Route of its 2xx).
    let (to, _) = net
        .sent_unique(Method::Info)
        .into_iter()
        .next()
        .expect("sent once");
    assert_eq!(to, addr(CARRIER));
    assert_eq!(
        info.call_id().unwrap(),
        net.carrier.received_requests(Method::Ack)[0]
            .call_id()
            .unwrap()
    );
    net.carrier
        .respond(net.now, tx, make_response(&info, 200, None));
    net.settle();
    assert!(net.cdrs().is_empty(), "the call goes on");
    // Nothing went to the agent's media for it: no SendDigit.
    assert!(send_digits(&net).is_empty());
}

#[test]
fn info_towards_an_inband_agent_is_a_tone_in_its_audio() {
    let (mut net, ack, _) = bridged(DtmfMode::Rfc4733, DtmfMode::Inband, true);
    assert!(net.media_ops().iter().any(|o| matches!(
        o,
        MediaOp::SetDtmf {
            side: Side::Agent,
            mode: DtmfMode::Inband
        }
    )));
    let ok = carrier_info(
        &mut net,
        &ack,
        2,
        Some(("application/dtmf-relay", "Signal=9\r\nDuration=200\r\n")),
    );
    assert_eq!(ok.status, 200);
    let t0 = epoch();
    let mut relay = relay_from_ops(&net, t0);
    let packets = played(
        &net,
        &mut relay,
        t0,
        Side::Agent,
        Duration::from_millis(400),
    );
    assert_eq!(packets.len(), 10, "200 ms of 20 ms PCMU frames");
    let mut decoder = Decoder::new(AudioCodec::Pcmu).expect("decoder");
    let mut pcm = Vec::new();
    for p in &packets {
        let h = RtpHeader::parse(p).expect("rtp");
        assert_eq!(h.payload_type, PayloadType(0), "audio, not telephone-event");
        let mut out = [0i16; 160];
        let n = decoder.decode(h.payload(p), &mut out).expect("decodes");
        pcm.extend_from_slice(&out[..n]);
    }
    let power = |f: f64| goertzel(&pcm, f);
    // Key 9: 852 + 1477 Hz (ITU-T Q.23).
    let (low, high) = (power(852.0), power(1477.0));
    let other = [697.0, 770.0, 941.0, 1209.0, 1336.0, 1633.0]
        .into_iter()
        .map(power)
        .fold(0.0, f64::max);
    assert!(low > 5000.0 && high > low, "852 Hz {low}, 1477 Hz {high}");
    assert!(other < low / 10.0, "other keypad tones {other}");
}

#[test]
fn info_application_dtmf_is_accepted_and_passed_on() {
    let (mut net, ack, _) = bridged(DtmfMode::Info, DtmfMode::Rfc4733, true);
    let ok = carrier_info(&mut net, &ack, 2, Some(("application/dtmf", "7")));
    assert_eq!(ok.status, 200);
    let digits = send_digits(&net);
    assert_eq!(digits.len(), 1);
    assert_eq!((digits[0].0, digits[0].1), (Side::Agent, 7));
}

#[test]
fn info_with_another_body_type_gets_415_with_accept_and_no_body_is_200() {
    let (mut net, ack, _) = bridged(DtmfMode::Info, DtmfMode::Rfc4733, true);
    let refused = carrier_info(
        &mut net,
        &ack,
        2,
        Some(("application/x-broadsoft-xml", "<flash/>")),
    );
    assert_eq!(refused.status, 415);
    let accept = refused.headers.get(HeaderKind::Accept).expect("Accept");
    assert!(
        accept.contains("application/dtmf-relay") && accept.contains("application/dtmf"),
        "{accept}"
    );
    let keepalive = carrier_info(&mut net, &ack, 3, None);
    assert_eq!(keepalive.status, 200);
    assert!(send_digits(&net).is_empty());
    assert!(net.cdrs().is_empty(), "the call goes on");
}

#[test]
fn info_between_two_info_legs_is_passed_on_as_info() {
    let (mut net, ack, _) = bridged(DtmfMode::Info, DtmfMode::Info, true);
    let ok = carrier_info(
        &mut net,
        &ack,
        2,
        Some(("application/dtmf-relay", "Signal=*\r\nDuration=100\r\n")),
    );
    assert_eq!(ok.status, 200);
    let (_, info) = net
        .agent
        .take_request(Method::Info)
        .expect("the INFO reached the agent");
    assert_eq!(
        std::str::from_utf8(&info.body).unwrap(),
        "Signal=*\r\nDuration=100\r\n"
    );
    assert!(send_digits(&net).is_empty());
}

#[test]
fn rfc4733_agent_without_telephone_event_hears_the_carriers_info_as_a_tone() {
    let (mut net, ack, _) = bridged(DtmfMode::Info, DtmfMode::Rfc4733, false);
    carrier_info(
        &mut net,
        &ack,
        2,
        Some(("application/dtmf-relay", "Signal=1\r\nDuration=100\r\n")),
    );
    let t0 = epoch();
    let mut relay = relay_from_ops(&net, t0);
    let packets = played(
        &net,
        &mut relay,
        t0,
        Side::Agent,
        Duration::from_millis(300),
    );
    assert_eq!(packets.len(), 5);
    assert!(packets
        .iter()
        .all(|p| RtpHeader::parse(p).unwrap().payload_type == PayloadType(0)));
}

fn goertzel(samples: &[i16], freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).sqrt() * 2.0 / samples.len() as f64
}

#[test]
fn key_tone_from_an_inband_trunk_reaches_an_info_agent_as_info() {
    let (mut net, _, _) = bridged(DtmfMode::Inband, DtmfMode::Info, true);
    let t0 = epoch();
    let mut relay = relay_from_ops(&net, t0);
    // The customer presses 4 for 160 ms: Q.23 tones in its PCMA audio.
    let mut generator =
        media::dtmf::ToneGenerator::new(4, Duration::from_millis(160), 8000).expect("key 4");
    let mut digits = Vec::new();
    for k in 0..20u16 {
        let mut pcm = [0i16; 160];
        generator.fill(&mut pcm);
        let mut payload = [0u8; 160];
        media::codec::g711::encode(media::codec::g711::Law::A, &pcm, &mut payload);
        let mut buf = [0u8; 1500];
        let header = OutgoingHeader {
            marker: k == 0,
            payload_type: PayloadType(8),
            sequence: 700 + k,
            timestamp: 160 * u32::from(k),
            ssrc: Ssrc(0xca11),
        };
        let len = rtp::write_packet(&mut buf, &header, &payload).expect("fits");
        let now = t0 + Duration::from_millis(20 * u64::from(k));
        relay.forward(now, Side::Customer, addr("192.0.2.51:30000"), &mut buf, len);
        while let Some(e) = relay.poll_event(now) {
            if let RelayEvent::Digit {
                side,
                event,
                duration,
            } = e
            {
                digits.push((side, event, duration));
            }
        }
    }
    assert_eq!(digits.len(), 1, "{digits:?}");
    for (side, event, duration) in digits {
        assert_eq!((side, event), (Side::Customer, 4));
        net.core.media_event(
            net.now,
            dialer::control::CallId(CALL_ID_OF_CALL),
            MediaReport::Digit {
                side,
                event,
                duration,
            },
        );
    }
    net.settle();
    let (_, info) = net
        .agent
        .take_request(Method::Info)
        .expect("the INFO reached the agent");
    let body = std::str::from_utf8(&info.body).unwrap();
    assert!(body.starts_with("Signal=4\r\nDuration="), "{body}");
    let ms: u64 = body["Signal=4\r\nDuration=".len()..]
        .trim()
        .parse()
        .unwrap();
    assert!(ms.abs_diff(160) <= 26, "measured {ms} ms for a 160 ms key");
}

#[test]
fn info_before_the_agent_answers_is_answered_and_not_passed_on() {
    let mut net = Net::new();
    net.core.set_trunk_dtmf(0, DtmfMode::Info);
    let ack = net.customer_answers();
    // The agent is still being called: nobody hears the key.
    let ok = carrier_info(
        &mut net,
        &ack,
        2,
        Some(("application/dtmf-relay", "Signal=3\r\nDuration=100\r\n")),
    );
    assert_eq!(ok.status, 200);
    assert!(send_digits(&net).is_empty());
    assert!(net.agent.take_request(Method::Info).is_none());
}

#[test]
fn offers_to_info_and_inband_legs_carry_no_telephone_event() {
    for (trunk, agent) in [
        (DtmfMode::Info, DtmfMode::Inband),
        (DtmfMode::Inband, DtmfMode::Info),
        (DtmfMode::Rfc4733, DtmfMode::Rfc4733),
    ] {
        let (net, _, agent_invite) = bridged(trunk, agent, false);
        let carrier_invite = net.carrier.received_requests(Method::Invite)[0].clone();
        let has_events = |r: &Request| String::from_utf8_lossy(&r.body).contains("telephone-event");
        assert_eq!(
            has_events(&carrier_invite),
            trunk == DtmfMode::Rfc4733,
            "trunk in {trunk:?} mode"
        );
        assert_eq!(
            has_events(&agent_invite),
            agent == DtmfMode::Rfc4733,
            "agent in {agent:?} mode"
        );
    }
}
