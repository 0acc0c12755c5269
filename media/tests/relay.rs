//! The relay in virtual time: two simulated peers, a NAT, a stray sender, ringback and a switch.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use media::codec::Codec;
use media::playback::Ringback;
use media::relay::{DropReason, Forward, Relay, RelayConfig, RelayEvent, Side};
use media::rtcp::{self, NtpTimestamp};
use media::rtp::{self, OutgoingHeader, PayloadType, RtpHeader, Ssrc};
use media::sdp::{
    answer_offer, build_offer, process_answer, LocalEndpoint, MediaConfig, Negotiated,
    SessionDescription,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The origin of virtual time: only differences from it matter.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

const CUSTOMER: &str = "198.51.100.7:4000";
const AGENT: &str = "192.0.2.50:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn local(port: u16) -> LocalEndpoint {
    LocalEndpoint {
        address: "203.0.113.1".parse().unwrap(),
        rtp_port: port,
        session_id: 1,
        session_version: 1,
    }
}

/// The trunk's offer for the customer leg (telephone-event 101) answered by us.
fn customer_leg(codec_line: &str, event_line: &str) -> Negotiated {
    let body = format!(
        "v=0\r\no=trunk 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n{codec_line}{event_line}"
    );
    let offer = SessionDescription::parse(&body).expect("offer parses");
    answer_offer(&offer, &MediaConfig::default(), &local(30000))
        .expect("acceptable")
        .1
}

/// Our offer to the agent answered by its softphone (telephone-event 96).
fn agent_leg(config: &MediaConfig, answer_media: &str) -> Negotiated {
    let offer = build_offer(config, &local(30002));
    let body = format!(
        "v=0\r\no=agent 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n{answer_media}"
    );
    let answer = SessionDescription::parse(&body).expect("answer parses");
    process_answer(&offer, &answer, config).expect("acceptable")
}

fn pcmu_legs() -> (Negotiated, Negotiated) {
    let customer = customer_leg(
        "m=audio 4000 RTP/AVP 0 101\r\n",
        "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n",
    );
    let agent = agent_leg(
        &MediaConfig::default(),
        "m=audio 5000 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n",
    );
    (customer, agent)
}

fn relay(config: RelayConfig, customer: Negotiated, agent: Negotiated, t0: Instant) -> Relay {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
    Relay::new(config, customer, agent, t0, wallclock, &mut rng).expect("relay builds")
}

/// A peer's packet.
fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let header = OutgoingHeader {
        marker,
        payload_type: PayloadType(pt),
        sequence: seq,
        timestamp: ts,
        ssrc: Ssrc(ssrc),
    };
    let len = rtp::write_packet(&mut buf, &header, payload).expect("fits");
    buf.truncate(len);
    buf
}

fn forward(
    relay: &mut Relay,
    now: Instant,
    side: Side,
    from: &str,
    pkt: &[u8],
) -> (Forward, Vec<u8>) {
    let mut buf = [0u8; 1500];
    buf[..pkt.len()].copy_from_slice(pkt);
    let result = relay.forward(now, side, addr(from), &mut buf, pkt.len());
    let out = match result {
        Forward::Send { len, .. } => buf[..len].to_vec(),
        Forward::Dropped(_) => Vec::new(),
    };
    (result, out)
}

fn ringback() -> Ringback {
    // Half a second of a 425 Hz tone (the European ringing tone), PCM 16-bit 8 kHz.
    let samples: Vec<u8> = (0..4000)
        .flat_map(|n| {
            let v = (8000.0 * (2.0 * std::f64::consts::PI * 425.0 * f64::from(n) / 8000.0).sin())
                as i16;
            v.to_le_bytes()
        })
        .collect();
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    wav.extend_from_slice(&samples);
    Ringback::from_wav_bytes(&wav, Path::new("ring.wav"), &[Codec::Pcmu, Codec::Opus])
        .expect("ringback loads")
}

#[test]
fn ringback_then_agent_audio_runs_on_without_gap_or_jump_with_marker_at_the_switch() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let mut relay = relay(RelayConfig::default(), customer, agent, t0);
    relay.start_ringback(
        Side::Customer,
        ringback().player(Codec::Pcmu).expect("clip"),
        t0,
    );

    let mut sent = Vec::new();
    let mut buf = [0u8; 1500];
    for i in 0..10u32 {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let (to, len) = relay
            .poll_transmit(now, &mut buf)
            .expect("a ringback frame is due");
        assert_eq!(to, addr(CUSTOMER));
        assert_eq!(
            relay.poll_transmit(now, &mut buf),
            None,
            "one frame per 20 ms"
        );
        let header = RtpHeader::parse(&buf[..len]).expect("valid RTP");
        assert_eq!(header.payload_len, 160);
        sent.push(header);
        // The agent's early audio does not reach the customer while ringback plays.
        let early = packet(
            0,
            900 + i as u16,
            50_000 + i * 160,
            0xa6e7,
            false,
            &[0xd5; 160],
        );
        let (result, _) = forward(&mut relay, now, Side::Agent, AGENT, &early);
        assert_eq!(result, Forward::Dropped(DropReason::RingbackPlaying));
    }
    // The agent answers: ringback stops and the agent's audio follows 20 ms after the last frame.
    relay.stop_ringback(Side::Customer);
    for i in 0..3u32 {
        let now = t0 + Duration::from_millis(200 + u64::from(i) * 20);
        let pkt = packet(
            0,
            910 + i as u16,
            51_600 + i * 160,
            0xa6e7,
            false,
            &[0x55; 160],
        );
        let (result, out) = forward(&mut relay, now, Side::Agent, AGENT, &pkt);
        assert!(
            matches!(result, Forward::Send { to, .. } if to == addr(CUSTOMER)),
            "{result:?}"
        );
        let header = RtpHeader::parse(&out).expect("valid RTP");
        assert_eq!(
            header.payload(&out),
            &[0x55; 160],
            "pass-through keeps the payload"
        );
        sent.push(header);
    }
    assert!(sent[0].marker, "first packet of the stream");
    assert!(sent[10].marker, "marker at the switch to the agent");
    for (i, pair) in sent.windows(2).enumerate() {
        assert_eq!(pair[1].ssrc, pair[0].ssrc, "one SSRC for the whole stream");
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "sequence at {i}"
        );
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(160),
            "timestamp at {i}"
        );
        assert_eq!(
            pair[1].marker,
            i + 1 == 10,
            "marker only at the switch, packet {}",
            i + 1
        );
    }
    assert_eq!(sent[0].ssrc, relay.ssrc(Side::Customer));
}

#[test]
fn latching_follows_the_nat_after_three_packets() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let mut relay = relay(RelayConfig::default(), customer, agent, t0);
    // The customer's NAT rewrites its source port: 198.51.100.7:4000 becomes :61000.
    let nat = "198.51.100.7:61000";
    for i in 0..2u16 {
        let pkt = packet(0, i, u32::from(i) * 160, 0xc0c0, false, &[0xff; 160]);
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let (result, _) = forward(&mut relay, now, Side::Customer, nat, &pkt);
        assert_eq!(result, Forward::Dropped(DropReason::UnexpectedSource));
        assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER)));
    }
    let pkt = packet(0, 2, 320, 0xc0c0, false, &[0xff; 160]);
    let (result, _) = forward(
        &mut relay,
        t0 + Duration::from_millis(40),
        Side::Customer,
        nat,
        &pkt,
    );
    assert!(
        matches!(result, Forward::Send { to, .. } if to == addr(AGENT)),
        "{result:?}"
    );
    assert_eq!(relay.destination(Side::Customer), Some(addr(nat)));
    assert_eq!(
        relay.poll_event(t0 + Duration::from_millis(40)),
        Some(RelayEvent::Latched {
            side: Side::Customer,
            to: addr(nat)
        })
    );
    // The agent's audio now goes where the customer's packets really come from.
    let pkt = packet(0, 1, 160, 0xa6e7, false, &[0xd5; 160]);
    let (result, _) = forward(
        &mut relay,
        t0 + Duration::from_millis(60),
        Side::Agent,
        AGENT,
        &pkt,
    );
    assert!(
        matches!(result, Forward::Send { to, .. } if to == addr(nat)),
        "{result:?}"
    );
}

#[test]
fn stray_packets_never_hijack_the_stream() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let mut relay = relay(RelayConfig::default(), customer, agent, t0);
    let stray = "233.252.0.9:9999";
    for i in 0..20u16 {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let real = packet(0, i, u32::from(i) * 160, 0xc0c0, false, &[0xff; 160]);
        let (result, _) = forward(&mut relay, now, Side::Customer, CUSTOMER, &real);
        assert!(matches!(result, Forward::Send { .. }), "{result:?}");
        // A stray packet between each real one, with a payload type the leg expects. It is
        // not on the customer's signalled IP, so it is foreign from the first packet, even
        // within the latch window.
        let fake = packet(0, 40_000 + i, 7, 0xbad, false, &[0; 160]);
        let (result, _) = forward(&mut relay, now, Side::Customer, stray, &fake);
        assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER)));
    // Packets with a payload type the leg never negotiated are foreign as well: the source is
    // checked first, so every packet from it is counted.
    for i in 0..5u16 {
        let fake = packet(13, i, 0, 0xbad, false, &[0; 1]);
        let (result, _) = forward(&mut relay, t0, Side::Customer, stray, &fake);
        assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER)));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 25);
    assert_eq!(relay.poll_event(t0 + Duration::from_millis(400)), None);
}

#[test]
fn silence_from_a_leg_raises_media_timeout_in_virtual_time() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let config = RelayConfig {
        media_timeout: Some(Duration::from_secs(5)),
        ..RelayConfig::default()
    };
    let mut relay = relay(config, customer, agent, t0);
    // The agent talks for one second; the customer never sends.
    for i in 0..50u16 {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let pkt = packet(0, i, u32::from(i) * 160, 0xa6e7, false, &[0xd5; 160]);
        forward(&mut relay, now, Side::Agent, AGENT, &pkt);
    }
    assert_eq!(relay.poll_event(t0 + Duration::from_millis(4999)), None);
    assert_eq!(
        relay.poll_event(t0 + Duration::from_secs(5)),
        Some(RelayEvent::MediaTimeout {
            side: Side::Customer
        })
    );
    let last_agent_packet = t0 + Duration::from_millis(980);
    assert_eq!(
        relay.poll_event(last_agent_packet + Duration::from_millis(4999)),
        None
    );
    assert_eq!(
        relay.poll_event(last_agent_packet + Duration::from_secs(5)),
        Some(RelayEvent::MediaTimeout { side: Side::Agent })
    );
    assert_eq!(
        relay.poll_event(t0 + Duration::from_secs(60)),
        None,
        "reported once"
    );
}

#[test]
fn telephone_event_keeps_its_payload_and_gets_the_other_legs_number() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let mut relay = relay(RelayConfig::default(), customer, agent, t0);
    // RFC 4733 §2.3: event 5, end bit clear, volume 10, duration 400.
    let event = [5u8, 10, 0x01, 0x90];
    let pkt = packet(101, 77, 8000, 0xc0c0, true, &event);
    let (result, out) = forward(&mut relay, t0, Side::Customer, CUSTOMER, &pkt);
    assert!(
        matches!(result, Forward::Send { to, .. } if to == addr(AGENT)),
        "{result:?}"
    );
    let header = RtpHeader::parse(&out).expect("valid RTP");
    assert_eq!(
        header.payload_type,
        PayloadType(96),
        "the agent's number for telephone-event"
    );
    assert_eq!(header.payload(&out), &event);
    assert!(header.marker);
    // And back: the agent's 96 becomes the trunk's 101.
    let pkt = packet(96, 1, 0, 0xa6e7, true, &event);
    let (_, out) = forward(&mut relay, t0, Side::Agent, AGENT, &pkt);
    assert_eq!(
        RtpHeader::parse(&out).expect("valid").payload_type,
        PayloadType(101)
    );
}

#[test]
fn opus_to_pcmu_is_transcoded_and_rescaled_and_a_lost_packet_is_concealed() {
    let t0 = epoch();
    let customer = customer_leg(
        "m=audio 4000 RTP/AVP 0 101\r\n",
        "a=rtpmap:101 telephone-event/8000\r\n",
    );
    let config = MediaConfig {
        codecs: vec![Codec::Opus],
        ..MediaConfig::default()
    };
    let agent = agent_leg(
        &config,
        "m=audio 5000 RTP/AVP 111 110\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n",
    );
    let mut relay = relay(RelayConfig::default(), customer, agent, t0);
    assert!(relay.is_transcoding(Side::Customer) && relay.is_transcoding(Side::Agent));
    let mut encoder = media::codec::Encoder::new(Codec::Opus).expect("encoder");
    let mut opus = [0u8; 1500];
    let mut out_headers = Vec::new();
    for i in 0..10u16 {
        if i == 5 {
            continue; // lost on the way
        }
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let pcm: Vec<i16> = (0..960)
            .map(|n| (5000.0 * (f64::from(u32::from(i) * 960 + n) * 0.05).sin()) as i16)
            .collect();
        let len = encoder.encode(&pcm, &mut opus).expect("encodes");
        let pkt = packet(
            111,
            100 + i,
            u32::from(i) * 960,
            0xa6e7,
            i == 0,
            &opus[..len],
        );
        let (result, out) = forward(&mut relay, now, Side::Agent, AGENT, &pkt);
        assert!(matches!(result, Forward::Send { .. }), "{result:?}");
        out_headers.push((RtpHeader::parse(&out).expect("valid"), out.len()));
        let mut buf = [0u8; 1500];
        while let Some((to, len)) = relay.poll_transmit(now, &mut buf) {
            assert_eq!(to, addr(CUSTOMER));
            out_headers.push((RtpHeader::parse(&buf[..len]).expect("valid"), len));
        }
    }
    assert_eq!(out_headers.len(), 10, "nine packets and one concealment");
    for (i, (h, len)) in out_headers.iter().enumerate() {
        assert_eq!(h.payload_type, PayloadType(0));
        assert_eq!(*len, 12 + 160, "20 ms of PCMU");
        if i > 0 {
            let prev = &out_headers[i - 1].0;
            assert_eq!(h.sequence, prev.sequence.wrapping_add(1), "in order at {i}");
            assert_eq!(
                h.timestamp,
                prev.timestamp.wrapping_add(160),
                "960 at 48 kHz is 160"
            );
        }
    }
    // A telephone-event at 48 kHz from the agent reaches the customer at 8 kHz, untranscoded:
    // the code and volume as they were, the duration in the 8 kHz clock (RFC 4733 §2.3.5).
    let event = [1u8, 10, 0x0b, 0x40]; // duration 2880 at 48 kHz = 60 ms
    let pkt = packet(110, 110, 9600, 0xa6e7, true, &event);
    let (_, out) = forward(
        &mut relay,
        t0 + Duration::from_millis(200),
        Side::Agent,
        AGENT,
        &pkt,
    );
    let header = RtpHeader::parse(&out).expect("valid");
    assert_eq!(header.payload_type, PayloadType(101));
    assert_eq!(
        header.payload(&out),
        &[1u8, 10, 0x01, 0xe0],
        "60 ms is 480 units at 8 kHz"
    );
    assert_eq!(
        header.timestamp,
        out_headers[0].0.timestamp.wrapping_add(1600)
    );
}

#[test]
fn sender_report_every_five_seconds_per_stream() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let mut relay = relay(RelayConfig::default(), customer, agent, t0);
    let mut reports = Vec::new();
    let mut buf = [0u8; 1500];
    for i in 0..600u32 {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let pkt = packet(0, i as u16, i * 160, 0xa6e7, false, &[0xd5; 160]);
        forward(&mut relay, now, Side::Agent, AGENT, &pkt);
        while let Some((to, len)) = relay.poll_transmit(now, &mut buf) {
            if rtp::classify(&buf[..len]) == rtp::PacketKind::Rtcp {
                reports.push((
                    now - t0,
                    to,
                    rtcp::parse_compound(&buf[..len]).expect("valid"),
                ));
            }
        }
    }
    // Only the customer's stream carries media in this test; its reports go to RTP port + 1.
    let times: Vec<Duration> = reports.iter().map(|r| r.0).collect();
    assert_eq!(times, [Duration::from_secs(5), Duration::from_secs(10)]);
    for (_, to, parsed) in &reports {
        assert_eq!(*to, addr("198.51.100.7:4001"));
        let info = parsed[0].sender_info.expect("a sender report");
        assert_eq!(parsed[0].ssrc, relay.ssrc(Side::Customer));
        assert!(info.packet_count >= 250);
    }
}

#[test]
fn a_pass_through_call_is_small() {
    // The relay for a call is one allocation-free struct plus a few small fixed buffers.
    assert!(
        std::mem::size_of::<Relay>() < 4096,
        "{}",
        std::mem::size_of::<Relay>()
    );
}

#[test]
fn ringback_with_the_agent_absent_then_the_agent_leg_is_set_and_its_audio_runs_on() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
    let mut relay = Relay::new_one_sided(
        RelayConfig::default(),
        Side::Customer,
        customer,
        t0,
        wallclock,
        &mut rng,
    )
    .expect("relay builds");
    assert!(!relay.has_leg(Side::Agent));
    relay.start_ringback(
        Side::Customer,
        ringback().player(Codec::Pcmu).expect("clip"),
        t0,
    );
    let mut sent = Vec::new();
    let mut buf = [0u8; 1500];
    for i in 0..5u32 {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let (to, len) = relay.poll_transmit(now, &mut buf).expect("ringback due");
        assert_eq!(to, addr(CUSTOMER));
        sent.push(RtpHeader::parse(&buf[..len]).expect("valid RTP"));
        // The customer talks while ringback plays: there is no agent to hear it yet.
        let pkt = packet(0, i as u16, i * 160, 0xc0c0, false, &[0xff; 160]);
        let (result, _) = forward(&mut relay, now, Side::Customer, CUSTOMER, &pkt);
        assert_eq!(result, Forward::Dropped(DropReason::NoDestination));
        // A packet on the agent's port before the agent leg exists is not ours to relay.
        let stray = packet(0, i as u16, i * 160, 0xa6e7, false, &[0xd5; 160]);
        let (result, _) = forward(&mut relay, now, Side::Agent, AGENT, &stray);
        assert_eq!(result, Forward::Dropped(DropReason::UnexpectedPayloadType));
    }
    assert_eq!(
        relay.poll_event(t0 + Duration::from_secs(3600)),
        Some(RelayEvent::MediaTimeout {
            side: Side::Customer
        }),
        "no timeout is raised for the absent agent leg, only for the silent customer"
    );
    assert_eq!(relay.poll_event(t0 + Duration::from_secs(3600)), None);

    // The agent answers at 100 ms.
    let answered = t0 + Duration::from_millis(100);
    relay
        .update_leg(Side::Agent, agent, answered)
        .expect("same codec, nothing to build");
    relay.stop_ringback(Side::Customer);
    for i in 0..3u32 {
        let now = answered + Duration::from_millis(u64::from(i) * 20);
        let pkt = packet(
            0,
            300 + i as u16,
            9000 + i * 160,
            0xa6e7,
            false,
            &[0x55; 160],
        );
        let (result, out) = forward(&mut relay, now, Side::Agent, AGENT, &pkt);
        assert!(
            matches!(result, Forward::Send { to, .. } if to == addr(CUSTOMER)),
            "{result:?}"
        );
        sent.push(RtpHeader::parse(&out).expect("valid RTP"));
        // And the customer is heard by the agent.
        let pkt = packet(0, 5 + i as u16, (5 + i) * 160, 0xc0c0, false, &[0xff; 160]);
        let (result, _) = forward(&mut relay, now, Side::Customer, CUSTOMER, &pkt);
        assert!(
            matches!(result, Forward::Send { to, .. } if to == addr(AGENT)),
            "{result:?}"
        );
    }
    for (i, pair) in sent.windows(2).enumerate() {
        assert_eq!(pair[1].ssrc, relay.ssrc(Side::Customer));
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "seq at {i}"
        );
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(160),
            "ts at {i}"
        );
        assert_eq!(
            pair[1].marker,
            i + 1 == 5,
            "marker only at the switch ({})",
            i + 1
        );
    }
}

/// The customer's re-INVITE offer: a new address and PCMA only.
fn customer_moved_to_pcma() -> Negotiated {
    let body =
        "v=0\r\no=trunk 1 2 IN IP4 198.51.100.99\r\ns=-\r\nc=IN IP4 198.51.100.99\r\nt=0 0\r\n\
                m=audio 4100 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let offer = SessionDescription::parse(body).expect("offer parses");
    answer_offer(&offer, &MediaConfig::default(), &local(30000))
        .expect("acceptable")
        .1
}

#[test]
fn reinvite_moves_the_customers_address_and_codec_and_the_stream_runs_on() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let mut relay = relay(RelayConfig::default(), customer, agent, t0);
    let mut to_customer = Vec::new();
    for i in 0..3u32 {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let pkt = packet(0, i as u16, i * 160, 0xa6e7, false, &[0xd5; 160]);
        let (result, out) = forward(&mut relay, now, Side::Agent, AGENT, &pkt);
        assert!(matches!(result, Forward::Send { to, .. } if to == addr(CUSTOMER)));
        to_customer.push(RtpHeader::parse(&out).expect("valid"));
    }
    assert!(!relay.is_transcoding(Side::Customer));

    let moved = t0 + Duration::from_millis(60);
    relay
        .update_leg(Side::Customer, customer_moved_to_pcma(), moved)
        .expect("G.711 transcoders build");
    assert_eq!(relay.codec(Side::Customer), Some(Codec::Pcma));
    assert!(relay.is_transcoding(Side::Customer) && relay.is_transcoding(Side::Agent));
    assert_eq!(
        relay.destination(Side::Customer),
        Some(addr("198.51.100.99:4100"))
    );

    // The agent's PCMU now reaches the customer's new address as PCMA, numbering unbroken.
    let silence_mu = [0xffu8; 160];
    for i in 3..6u32 {
        let now = t0 + Duration::from_millis(u64::from(i) * 20);
        let pkt = packet(0, i as u16, i * 160, 0xa6e7, false, &silence_mu);
        let (result, out) = forward(&mut relay, now, Side::Agent, AGENT, &pkt);
        assert!(
            matches!(result, Forward::Send { to, .. } if to == addr("198.51.100.99:4100")),
            "{result:?}"
        );
        let header = RtpHeader::parse(&out).expect("valid");
        assert_eq!(header.payload_type, PayloadType(8));
        assert!(
            header.payload(&out).iter().all(|&c| c == 0xd5 || c == 0x55),
            "µ-law silence becomes A-law silence"
        );
        to_customer.push(header);
    }
    for (i, pair) in to_customer.windows(2).enumerate() {
        assert_eq!(pair[1].ssrc, pair[0].ssrc);
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "seq at {i}"
        );
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(160),
            "ts at {i}"
        );
        assert_eq!(
            pair[1].marker,
            i + 1 == 3,
            "marker at the re-INVITE ({})",
            i + 1
        );
    }
    // The customer's PCMA from its new address is decoded and sent to the agent as PCMU; the
    // old address, on an IP the new SDP does not name, is now a foreign source.
    let pkt = packet(8, 50, 8000, 0xc1c1, false, &[0xd5; 160]);
    let (result, out) = forward(
        &mut relay,
        moved,
        Side::Customer,
        "198.51.100.99:4100",
        &pkt,
    );
    assert!(
        matches!(result, Forward::Send { to, .. } if to == addr(AGENT)),
        "{result:?}"
    );
    let header = RtpHeader::parse(&out).expect("valid");
    assert_eq!(header.payload_type, PayloadType(0));
    let (result, _) = forward(&mut relay, moved, Side::Customer, CUSTOMER, &pkt);
    assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
}

#[test]
fn hold_with_a_zero_address_stops_sending_and_the_media_timeout_until_resumed() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let config = RelayConfig {
        media_timeout: Some(Duration::from_secs(5)),
        ..RelayConfig::default()
    };
    let mut relay = relay(config, customer.clone(), agent, t0);
    let hold = Negotiated {
        remote_rtp: None,
        remote_rtcp: None,
        ..customer.clone()
    };
    relay
        .update_leg(Side::Customer, hold, t0)
        .expect("same codec");
    let pkt = packet(0, 1, 160, 0xa6e7, false, &[0xd5; 160]);
    let (result, _) = forward(&mut relay, t0, Side::Agent, AGENT, &pkt);
    assert_eq!(result, Forward::Dropped(DropReason::NoDestination));
    // The held customer sends nothing for a minute: that is no media timeout; the agent,
    // still expected to send, times out.
    let later = t0 + Duration::from_secs(60);
    assert_eq!(
        relay.poll_event(later),
        Some(RelayEvent::MediaTimeout { side: Side::Agent })
    );
    assert_eq!(relay.poll_event(later), None);
    // Resumed: media flows to the customer again, and its silence counts again.
    relay
        .update_leg(Side::Customer, customer, later)
        .expect("same codec");
    let pkt = packet(0, 2, 320, 0xa6e7, false, &[0xd5; 160]);
    let (result, out) = forward(&mut relay, later, Side::Agent, AGENT, &pkt);
    assert!(matches!(result, Forward::Send { to, .. } if to == addr(CUSTOMER)));
    assert!(
        RtpHeader::parse(&out).expect("valid").marker,
        "marker after the hold"
    );
    assert_eq!(
        relay.poll_event(later + Duration::from_secs(5)),
        Some(RelayEvent::MediaTimeout {
            side: Side::Customer
        })
    );
}

/// A second customer, on another address, for the session tests.
fn second_customer() -> Negotiated {
    let body = "v=0\r\no=trunk 2 1 IN IP4 198.51.100.9\r\ns=-\r\nc=IN IP4 198.51.100.9\r\nt=0 0\r\nm=audio 4100 RTP/AVP 8\r\n";
    let offer = SessionDescription::parse(body).expect("offer parses");
    answer_offer(&offer, &MediaConfig::default(), &local(30004))
        .expect("acceptable")
        .1
}

#[test]
fn a_reset_customer_leg_takes_the_next_customer_while_the_agent_hears_one_stream() {
    let t0 = epoch();
    let (customer, agent) = pcmu_legs();
    let mut relay = relay(RelayConfig::default(), customer, agent, t0);
    let header = |out: &[u8]| RtpHeader::parse(out).expect("relayed RTP");
    let mut agent_stream = Vec::new();
    for n in 0..5u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(n));
        let pkt = packet(0, 100 + n, 160 * u32::from(n), 0x1111, n == 0, &[0xff; 160]);
        let (result, out) = forward(&mut relay, now, Side::Customer, CUSTOMER, &pkt);
        assert!(matches!(result, Forward::Send { .. }), "{result:?}");
        agent_stream.push(header(&out));
    }
    // The first customer hangs up; a minute later the next one (PCMA: transcoded) is on.
    let later = t0 + Duration::from_secs(60);
    relay.reset_leg(Side::Customer, later);
    assert!(!relay.has_leg(Side::Customer));
    let pkt = packet(0, 105, 800, 0x1111, false, &[0xff; 160]);
    let (result, _) = forward(&mut relay, later, Side::Customer, CUSTOMER, &pkt);
    assert!(
        matches!(result, Forward::Dropped(_)),
        "the old customer is gone: {result:?}"
    );
    relay
        .update_leg(Side::Customer, second_customer(), later)
        .expect("the second customer's leg");
    for n in 0..5u16 {
        let now = later + Duration::from_millis(20 * u64::from(n));
        let pkt = packet(
            8,
            9000 + n,
            40_000 + 160 * u32::from(n),
            0x2222,
            n == 0,
            &[0xd5; 160],
        );
        let (result, out) = forward(&mut relay, now, Side::Customer, "198.51.100.9:4100", &pkt);
        assert!(matches!(result, Forward::Send { .. }), "{result:?}");
        agent_stream.push(header(&out));
    }
    let ssrc = agent_stream[0].ssrc;
    assert!(
        agent_stream.iter().all(|h| h.ssrc == ssrc),
        "one SSRC for the agent"
    );
    for w in agent_stream.windows(2) {
        assert_eq!(
            w[1].sequence,
            w[0].sequence.wrapping_add(1),
            "no gap, no jump"
        );
        assert!(w[1].timestamp.wrapping_sub(w[0].timestamp) > 0);
    }
    assert_eq!(
        agent_stream[5].payload_type, agent_stream[0].payload_type,
        "PCMU to the agent"
    );
    assert!(
        agent_stream[5].marker,
        "a new stretch of the stream starts with the marker"
    );
    let gap = agent_stream[5]
        .timestamp
        .wrapping_sub(agent_stream[4].timestamp);
    assert!(
        (8000 * 59..=8000 * 61).contains(&gap),
        "the timestamp advanced by the minute: {gap}"
    );
}
