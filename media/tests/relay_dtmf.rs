//! DTMF through the relay in virtual time: digits injected towards a leg as RFC 4733 events or
//! as Q.23 tones in its codec, and telephone-events from a leg reported and converted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use media::codec::{Codec, Decoder};
use media::dtmf::{DtmfMode, EventPayload};
use media::relay::{DropReason, Forward, Relay, RelayConfig, RelayEvent, Side};
use media::rtcp::NtpTimestamp;
use media::rtp::{self, OutgoingHeader, PayloadType, RtpHeader, Ssrc};
use media::sdp::{
    answer_offer, build_offer, process_answer, LocalEndpoint, MediaConfig, Negotiated,
    SessionDescription,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

const CUSTOMER: &str = "198.51.100.7:4000";

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

/// The trunk's offer (PCMA, telephone-event 101) answered by us.
fn customer_leg() -> Negotiated {
    let body =
        "v=0\r\no=trunk 1 1 IN IP4 198.51.100.7\r\ns=-\r\nc=IN IP4 198.51.100.7\r\nt=0 0\r\n\
                m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";
    let offer = SessionDescription::parse(body).expect("offer parses");
    answer_offer(&offer, &MediaConfig::default(), &local(30000))
        .expect("acceptable")
        .1
}

/// Our offer to the agent answered with `media`.
fn agent_leg(media: &str) -> Negotiated {
    let config = MediaConfig::default();
    let offer = build_offer(&config, &local(30002));
    let body = format!(
        "v=0\r\no=agent 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n{media}"
    );
    let answer = SessionDescription::parse(&body).expect("answer parses");
    process_answer(&offer, &answer, &config).expect("acceptable")
}

fn relay(agent: Negotiated, t0: Instant) -> Relay {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
    Relay::new(
        RelayConfig::default(),
        customer_leg(),
        agent,
        t0,
        wallclock,
        &mut rng,
    )
    .expect("relay builds")
}

fn packet(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let header = OutgoingHeader {
        marker,
        payload_type: PayloadType(pt),
        sequence: seq,
        timestamp: ts,
        ssrc: Ssrc(0xc0ffee),
    };
    let len = rtp::write_packet(&mut buf, &header, payload).expect("fits");
    buf.truncate(len);
    buf
}

fn forward(relay: &mut Relay, now: Instant, pkt: &[u8]) -> Forward {
    let mut buf = [0u8; 1500];
    buf[..pkt.len()].copy_from_slice(pkt);
    relay.forward(now, Side::Customer, addr(CUSTOMER), &mut buf, pkt.len())
}

/// Every packet the relay generates for `side` from `from` over `span`, polled each 5 ms.
fn generated(
    relay: &mut Relay,
    from: Instant,
    span: Duration,
    side: Side,
) -> Vec<(Instant, Vec<u8>)> {
    let mut out = Vec::new();
    let mut now = from;
    while now <= from + span {
        let mut buf = [0u8; 1500];
        while let Some(t) = relay.poll_transmit_leg(now, &mut buf) {
            if t.side == side && rtp::classify(&buf[..t.len]) == rtp::PacketKind::Rtp {
                out.push((now, buf[..t.len].to_vec()));
            }
        }
        now += Duration::from_millis(5);
    }
    out
}

/// A relay whose agent leg answered Opus with telephone-event/48000 on PT 110.
fn opus_agent_relay(t0: Instant) -> Relay {
    relay(
        agent_leg(
            "m=audio 5000 RTP/AVP 111 110\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:110 telephone-event/48000\r\n",
        ),
        t0,
    )
}

/// The headers and event payloads of telephone-event packets from [`generated`].
fn events_of(packets: &[(Instant, Vec<u8>)]) -> Vec<(RtpHeader, EventPayload)> {
    packets
        .iter()
        .map(|(_, p)| {
            let h = RtpHeader::parse(p).expect("rtp");
            (h, EventPayload::parse(h.payload(p)).expect("event"))
        })
        .collect()
}

fn goertzel(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let w = std::f64::consts::TAU * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).sqrt() * 2.0 / samples.len() as f64
}

const PCMU_TE_96: &str =
    "m=audio 5000 RTP/AVP 0 96\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\n";

#[test]
fn injected_digit_is_rfc4733_events_on_the_legs_payload_type_with_one_start_timestamp() {
    let t0 = epoch();
    let mut relay = relay(agent_leg(PCMU_TE_96), t0);
    // Audio from the customer first: the agent's stream is running.
    let mut last = None;
    for k in 0..5u16 {
        let now = t0 + Duration::from_millis(20 * u64::from(k));
        let mut buf = [0u8; 1500];
        let pkt = packet(8, 100 + k, 1000 + 160 * u32::from(k), k == 0, &[0xd5; 160]);
        buf[..pkt.len()].copy_from_slice(&pkt);
        let Forward::Send { len, .. } =
            relay.forward(now, Side::Customer, addr(CUSTOMER), &mut buf, pkt.len())
        else {
            panic!("audio relayed");
        };
        last = Some(RtpHeader::parse(&buf[..len]).expect("rtp"));
    }
    let last = last.expect("audio went out");
    let start = t0 + Duration::from_millis(100);
    assert!(relay.send_digit(start, Side::Agent, 5, Duration::from_millis(100)));
    // Audio arriving meanwhile waits.
    assert_eq!(
        forward(
            &mut relay,
            start + Duration::from_millis(1),
            &packet(8, 105, 1800, false, &[0xd5; 160])
        ),
        Forward::Dropped(DropReason::DtmfPlaying)
    );
    let packets = generated(&mut relay, start, Duration::from_millis(300), Side::Agent);
    let headers: Vec<(RtpHeader, EventPayload)> = packets
        .iter()
        .map(|(_, p)| {
            let h = RtpHeader::parse(p).expect("rtp");
            (h, EventPayload::parse(h.payload(p)).expect("event"))
        })
        .collect();
    assert_eq!(headers.len(), 7, "4 updates and 3 end packets: {headers:?}");
    for (i, (h, e)) in headers.iter().enumerate() {
        assert_eq!(h.payload_type, PayloadType(96), "the agent's number");
        assert_eq!(h.ssrc, last.ssrc, "the same stream");
        assert_eq!(
            h.sequence,
            last.sequence.wrapping_add(1 + i as u16),
            "numbering runs on"
        );
        assert_eq!(
            h.timestamp,
            last.timestamp.wrapping_add(160),
            "RFC 4733 §2.5.1.2: start timestamp"
        );
        assert_eq!(h.marker, i == 0, "marker on the first packet only");
        assert_eq!(e.event, 5);
        let expected = if i < 4 { 160 * (i as u16 + 1) } else { 800 };
        assert_eq!((e.duration, e.end), (expected, i >= 4));
    }
    // One packet per 20 ms.
    let times: Vec<u128> = packets
        .iter()
        .map(|(t, _)| (*t - start).as_millis())
        .collect();
    assert_eq!(times, [0, 20, 40, 60, 80, 100, 120]);
    // Audio after the digit continues the stream past the event's end.
    let after = start + Duration::from_millis(300);
    let mut buf = [0u8; 1500];
    let pkt = packet(8, 110, 2600, false, &[0xd5; 160]);
    buf[..pkt.len()].copy_from_slice(&pkt);
    let Forward::Send { len, .. } =
        relay.forward(after, Side::Customer, addr(CUSTOMER), &mut buf, pkt.len())
    else {
        panic!("audio relayed after the digit");
    };
    let h = RtpHeader::parse(&buf[..len]).expect("rtp");
    let (end_h, _) = headers.last().expect("packets");
    assert_eq!(h.sequence, end_h.sequence.wrapping_add(1));
    assert!(h.marker, "a new talkspurt");
    let advance = h.timestamp.wrapping_sub(end_h.timestamp);
    assert!(
        (800..=2600).contains(&advance),
        "timestamp past the event, in step with time: {advance}"
    );
}

#[test]
fn events_towards_an_info_leg_are_reported_once_and_not_forwarded() {
    let t0 = epoch();
    let mut relay = relay(agent_leg(PCMU_TE_96), t0);
    relay.set_dtmf_mode(Side::Agent, DtmfMode::Info);
    let mut reasons = Vec::new();
    for (k, (duration, end)) in [
        (160u16, false),
        (320, false),
        (480, true),
        (480, true),
        (480, true),
    ]
    .into_iter()
    .enumerate()
    {
        let payload = [
            9,
            if end { 0x8a } else { 0x0a },
            (duration >> 8) as u8,
            duration as u8,
        ];
        let now = t0 + Duration::from_millis(20 * k as u64);
        match forward(
            &mut relay,
            now,
            &packet(101, 200 + k as u16, 5000, k == 0, &payload),
        ) {
            Forward::Dropped(reason) => reasons.push(reason),
            other => panic!("forwarded {other:?}"),
        }
    }
    assert!(
        reasons.iter().all(|r| *r == DropReason::DtmfConverted),
        "{reasons:?}"
    );
    let mut digits = Vec::new();
    while let Some(e) = relay.poll_event(t0 + Duration::from_millis(100)) {
        if let RelayEvent::Digit {
            side,
            event,
            duration,
        } = e
        {
            digits.push((side, event, duration));
        }
    }
    assert_eq!(digits, [(Side::Customer, 9, Duration::from_millis(60))]);
    assert!(generated(&mut relay, t0, Duration::from_millis(300), Side::Agent).is_empty());
}

fn decoded_tone(
    relay: &mut Relay,
    from: Instant,
    codec: Codec,
    pt: u8,
) -> (Vec<i16>, Vec<RtpHeader>) {
    let packets = generated(relay, from, Duration::from_millis(400), Side::Agent);
    let mut decoder = Decoder::with_rate(codec, 8000).expect("decoder");
    let mut pcm = Vec::new();
    let mut headers = Vec::new();
    for (_, p) in &packets {
        let h = RtpHeader::parse(p).expect("rtp");
        assert_eq!(h.payload_type, PayloadType(pt));
        let mut out = vec![0i16; 5760];
        let n = decoder.decode(h.payload(p), &mut out).expect("decodes");
        pcm.extend_from_slice(&out[..n]);
        headers.push(h);
    }
    (pcm, headers)
}

#[test]
fn events_towards_an_inband_leg_become_the_q23_tone_in_its_codec() {
    let t0 = epoch();
    let mut relay = relay(agent_leg(PCMU_TE_96), t0);
    relay.set_dtmf_mode(Side::Agent, DtmfMode::Inband);
    // Key 1 for 120 ms from the customer.
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
        let payload = [
            1,
            if end { 0x8a } else { 0x0a },
            (duration >> 8) as u8,
            duration as u8,
        ];
        let now = t0 + Duration::from_millis(20 * k as u64);
        assert_eq!(
            forward(
                &mut relay,
                now,
                &packet(101, 300 + k as u16, 9000, k == 0, &payload)
            ),
            Forward::Dropped(DropReason::DtmfConverted)
        );
    }
    let from = t0 + Duration::from_millis(80);
    let (pcm, headers) = decoded_tone(&mut relay, from, Codec::Pcmu, 0);
    assert_eq!(headers.len(), 6, "120 ms in 20 ms frames");
    for pair in headers.windows(2) {
        assert_eq!(pair[1].sequence, pair[0].sequence.wrapping_add(1));
        assert_eq!(pair[1].timestamp, pair[0].timestamp.wrapping_add(160));
    }
    let low = goertzel(&pcm, 8000, 697.0);
    let high = goertzel(&pcm, 8000, 1209.0);
    let other = goertzel(&pcm, 8000, 941.0).max(goertzel(&pcm, 8000, 1336.0));
    assert!(
        low > 2000.0 && high > low && other < low / 10.0,
        "697 {low}, 1209 {high}, other {other}"
    );
}

#[test]
fn digit_to_an_opus_leg_without_telephone_event_is_an_opus_coded_tone() {
    let t0 = epoch();
    let mut relay = relay(
        agent_leg("m=audio 5000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n"),
        t0,
    );
    assert!(relay.send_digit(t0, Side::Agent, 11, Duration::from_millis(200)));
    let (pcm, headers) = decoded_tone(&mut relay, t0, Codec::Opus, 111);
    assert_eq!(headers.len(), 10);
    for pair in headers.windows(2) {
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(960),
            "48 kHz clock"
        );
    }
    // Skip the codec's start-up: the middle of the tone holds 941 + 1477 Hz.
    let middle = &pcm[400..1400];
    let low = goertzel(middle, 8000, 941.0);
    let high = goertzel(middle, 8000, 1477.0);
    let other = goertzel(middle, 8000, 697.0).max(goertzel(middle, 8000, 1209.0));
    assert!(
        low > 1000.0 && high > 1000.0 && other < low / 5.0,
        "941 {low}, 1477 {high}, other {other}"
    );
}

/// The customer's PCMA audio carrying `event` for `ms` then silence, 20 ms per packet, from
/// `t0`; returns what the relay did with each packet.
fn play_inband_key(
    relay: &mut Relay,
    t0: Instant,
    event: u8,
    ms: u64,
    total_ms: u64,
) -> Vec<Forward> {
    let mut generator =
        media::dtmf::ToneGenerator::new(event, Duration::from_millis(ms), 8000).expect("key");
    let mut results = Vec::new();
    for k in 0..total_ms / 20 {
        let mut pcm = [0i16; 160];
        generator.fill(&mut pcm);
        let mut payload = [0u8; 160];
        media::codec::g711::encode(media::codec::g711::Law::A, &pcm, &mut payload);
        let now = t0 + Duration::from_millis(20 * k);
        let pkt = packet(8, 500 + k as u16, 8000 + 160 * k as u32, k == 0, &payload);
        results.push(forward(relay, now, &pkt));
    }
    results
}

#[test]
fn key_heard_in_an_inband_legs_audio_is_reported_held_back_and_sent_as_events() {
    let t0 = epoch();
    let mut relay = relay(agent_leg(PCMU_TE_96), t0);
    relay.set_dtmf_mode(Side::Customer, DtmfMode::Inband);
    let results = play_inband_key(&mut relay, t0, 7, 200, 400);
    let held = results
        .iter()
        .filter(|r| **r == Forward::Dropped(DropReason::DtmfConverted))
        .count();
    // Held back from the first 12.75 ms block with the pair: at most one 20 ms packet of
    // the tone gets through, and the tone's 10 packets are held back (with up to two blocks
    // after it while the detector makes sure the key ended); then the events play.
    let leaked = results[..10]
        .iter()
        .filter(|r| matches!(r, Forward::Send { .. }))
        .count();
    assert!(leaked <= 1, "{results:?}");
    assert!(
        (9..=12).contains(&held),
        "the tone is held back: {results:?}"
    );
    let mut digits = Vec::new();
    while let Some(e) = relay.poll_event(t0 + Duration::from_millis(400)) {
        if let RelayEvent::Digit {
            side,
            event,
            duration,
        } = e
        {
            digits.push((side, event, duration));
        }
    }
    assert_eq!(digits.len(), 1, "{digits:?}");
    let (side, event, duration) = digits[0];
    assert_eq!((side, event), (Side::Customer, 7));
    assert!(
        duration.abs_diff(Duration::from_millis(200)) <= Duration::from_millis(26),
        "{duration:?}"
    );
    // The key follows to the agent as telephone-events on its number.
    let events: Vec<EventPayload> = generated(
        &mut relay,
        t0 + Duration::from_millis(400),
        Duration::from_millis(400),
        Side::Agent,
    )
    .iter()
    .map(|(_, p)| {
        let h = RtpHeader::parse(p).expect("rtp");
        assert_eq!(h.payload_type, PayloadType(96));
        EventPayload::parse(h.payload(p)).expect("event")
    })
    .collect();
    assert_eq!(events.iter().filter(|e| e.end).count(), 3);
    assert!(events.iter().all(|e| e.event == 7));
}

#[test]
fn key_heard_in_an_inband_leg_passes_as_audio_to_another_inband_leg() {
    let t0 = epoch();
    let mut relay = relay(agent_leg(PCMU_TE_96), t0);
    relay.set_dtmf_mode(Side::Customer, DtmfMode::Inband);
    relay.set_dtmf_mode(Side::Agent, DtmfMode::Inband);
    let results = play_inband_key(&mut relay, t0, 3, 200, 400);
    assert!(
        results.iter().all(|r| matches!(r, Forward::Send { .. })),
        "{results:?}"
    );
    assert!(generated(
        &mut relay,
        t0 + Duration::from_millis(400),
        Duration::from_millis(300),
        Side::Agent
    )
    .is_empty());
}

#[test]
fn injected_digit_to_an_opus_leg_counts_in_its_48_khz_event_clock() {
    let t0 = epoch();
    let mut relay = opus_agent_relay(t0);
    assert!(relay.send_digit(t0, Side::Agent, 0, Duration::from_millis(60)));
    let packets = generated(&mut relay, t0, Duration::from_millis(200), Side::Agent);
    let events = events_of(&packets);
    let durations: Vec<(u16, bool)> = events.iter().map(|(_, e)| (e.duration, e.end)).collect();
    assert_eq!(
        durations,
        [
            (960, false),
            (1920, false),
            (2880, true),
            (2880, true),
            (2880, true)
        ]
    );
    assert!(events
        .iter()
        .all(|(h, _)| h.payload_type == PayloadType(110)));
}

#[test]
fn a_long_digit_to_a_48_khz_event_leg_goes_out_in_segments_with_later_timestamps() {
    let t0 = epoch();
    let mut relay = opus_agent_relay(t0);
    // 2 s at 48 kHz is 96000 units, more than the 16-bit duration field holds.
    assert!(relay.send_digit(t0, Side::Agent, 5, Duration::from_secs(2)));
    let packets = generated(&mut relay, t0, Duration::from_millis(2300), Side::Agent);
    let events = events_of(&packets);
    let start = events[0].0.timestamp;
    // RFC 4733 §2.5.1.3: two segments, the second starting 0xFFFF units after the first.
    let mut timestamps: Vec<u32> = events.iter().map(|(h, _)| h.timestamp).collect();
    timestamps.dedup();
    assert_eq!(timestamps, [start, start.wrapping_add(0xFFFF)]);
    let last_of_first = events
        .iter()
        .rev()
        .find(|(h, _)| h.timestamp == start)
        .expect("first segment");
    assert_eq!(
        (last_of_first.1.duration, last_of_first.1.end),
        (0xFFFF, false)
    );
    let ends: Vec<_> = events.iter().filter(|(_, e)| e.end).collect();
    assert_eq!(ends.len(), 3);
    assert!(ends
        .iter()
        .all(|(h, e)| h.timestamp == start.wrapping_add(0xFFFF)
            && u32::from(e.duration) == 96_000 - 0xFFFF));
    assert_eq!(events.iter().filter(|(h, _)| h.marker).count(), 1);
}

#[test]
fn events_from_an_8_khz_leg_reach_a_48_khz_event_leg_with_durations_in_its_clock() {
    let t0 = epoch();
    let mut relay = opus_agent_relay(t0);
    // Key 4 for 100 ms from the carrier at 8 kHz, one packet per 20 ms, the end sent thrice.
    let sent: Vec<(u16, bool)> = (1..=5)
        .map(|k| (160 * k, k == 5))
        .chain([(800, true), (800, true)])
        .collect();
    let mut out = Vec::new();
    for (k, (duration, end)) in sent.iter().enumerate() {
        let payload = [
            4,
            if *end { 0x8a } else { 0x0a },
            (duration >> 8) as u8,
            *duration as u8,
        ];
        let pkt = packet(101, 400 + k as u16, 24_000, k == 0, &payload);
        let mut buf = [0u8; 1500];
        buf[..pkt.len()].copy_from_slice(&pkt);
        let now = t0 + Duration::from_millis(20 * k as u64);
        match relay.forward(now, Side::Customer, addr(CUSTOMER), &mut buf, pkt.len()) {
            Forward::Send { len, .. } => {
                let h = RtpHeader::parse(&buf[..len]).expect("rtp");
                let e = EventPayload::parse(h.payload(&buf[..len])).expect("event");
                out.push((h, e));
            }
            other => panic!("packet {k} not passed on: {other:?}"),
        }
    }
    assert!(out.iter().all(|(h, _)| h.payload_type == PayloadType(110)));
    // RFC 4733 §2.3.5: the duration counts in the receiving leg's event clock.
    let durations: Vec<(u16, bool)> = out.iter().map(|(_, e)| (e.duration, e.end)).collect();
    assert_eq!(
        durations,
        [
            (960, false),
            (1920, false),
            (2880, false),
            (3840, false),
            (4800, true),
            (4800, true),
            (4800, true)
        ]
    );
    let start = out[0].0.timestamp;
    assert!(out
        .iter()
        .all(|(h, e)| h.timestamp == start && e.event == 4));
    assert!(out[0].0.marker);
}
