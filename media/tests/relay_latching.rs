//! Symmetric-RTP latching done safely, in virtual time: a leg latches only within the latch
//! window after its negotiation, only to a source on its signalled IP or an allowed one, and
//! everything else is dropped and counted without disturbing the real peer.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use media::relay::{DropReason, Forward, Relay, RelayConfig, RelayEvent, Side};
use media::rtcp::{self, NtpTimestamp, SenderInfo};
use media::rtp::{self, OutgoingHeader, PayloadType, Ssrc};
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

/// The customer's signalled RTP address (the trunk's `c=`/`m=`).
const CUSTOMER: &str = "198.51.100.7:4000";
/// The customer's NAT: the same IP, another port.
const CUSTOMER_NAT: &str = "198.51.100.7:61000";
/// The agent's signalled RTP address.
const AGENT: &str = "192.0.2.50:5000";
/// Someone else on the Internet streaming at our port.
const ATTACKER: &str = "233.252.0.9:9999";

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

/// The trunk's offer from `ip:port`, answered by us with PCMU.
fn customer_leg_at(ip: &str, port: u16) -> Negotiated {
    let body = format!(
        "v=0\r\no=trunk 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    );
    let offer = SessionDescription::parse(&body).expect("offer parses");
    answer_offer(&offer, &MediaConfig::default(), &local(30000))
        .expect("acceptable")
        .1
}

/// Our offer to the agent, answered by its softphone from `ip:port` with PCMU.
fn agent_leg_at(ip: &str, port: u16) -> Negotiated {
    let config = MediaConfig::default();
    let offer = build_offer(&config, &local(30002));
    let body = format!(
        "v=0\r\no=agent 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n"
    );
    let answer = SessionDescription::parse(&body).expect("answer parses");
    process_answer(&offer, &answer, &config).expect("acceptable")
}

fn relay_with(config: RelayConfig, customer: Negotiated, agent: Negotiated, t0: Instant) -> Relay {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
    Relay::new(config, customer, agent, t0, wallclock, &mut rng).expect("relay builds")
}

fn relay(t0: Instant) -> Relay {
    relay_with(
        RelayConfig::default(),
        customer_leg_at("198.51.100.7", 4000),
        agent_leg_at("192.0.2.50", 5000),
        t0,
    )
}

/// A PCMU packet.
fn packet(seq: u16, ssrc: u32) -> Vec<u8> {
    packet_with(0, seq, ssrc)
}

fn packet_with(pt: u8, seq: u16, ssrc: u32) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let header = OutgoingHeader {
        marker: false,
        payload_type: PayloadType(pt),
        sequence: seq,
        timestamp: u32::from(seq) * 160,
        ssrc: Ssrc(ssrc),
    };
    let len = rtp::write_packet(&mut buf, &header, &[0xff; 160]).expect("fits");
    buf.truncate(len);
    buf
}

fn forward(relay: &mut Relay, now: Instant, side: Side, from: &str, pkt: &[u8]) -> Forward {
    let mut buf = [0u8; 1500];
    buf[..pkt.len()].copy_from_slice(pkt);
    relay.forward(now, side, addr(from), &mut buf, pkt.len())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn sent_to(result: Forward, to: &str) -> bool {
    matches!(result, Forward::Send { to: t, .. } if t == addr(to))
}

#[test]
fn before_any_latch_the_signalled_address_is_relayed() {
    let t0 = epoch();
    let mut relay = relay(t0);
    // Well after the window: the signalled address is the peer, whenever it starts sending.
    for i in 0..5u16 {
        let now = t0 + Duration::from_secs(10) + ms(u64::from(i) * 20);
        let result = forward(
            &mut relay,
            now,
            Side::Customer,
            CUSTOMER,
            &packet(i, 0xc0c0),
        );
        assert!(sent_to(result, AGENT), "{result:?}");
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER)));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 0);
}

#[test]
fn a_nat_rewritten_port_latches_within_the_window() {
    let t0 = epoch();
    let mut relay = relay(t0);
    assert!(relay.may_latch(Side::Customer, t0));
    // The third packet completes the latch just before the window ends.
    let start = t0 + ms(2000 - 41);
    for i in 0..3u16 {
        let now = start + ms(u64::from(i) * 20);
        let result = forward(
            &mut relay,
            now,
            Side::Customer,
            CUSTOMER_NAT,
            &packet(i, 0xc0c0),
        );
        if i < 2 {
            assert_eq!(result, Forward::Dropped(DropReason::UnexpectedSource));
        } else {
            assert!(sent_to(result, AGENT), "{result:?}");
        }
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER_NAT)));
    assert_eq!(
        relay.poll_event(start + ms(40)),
        Some(RelayEvent::Latched {
            side: Side::Customer,
            to: addr(CUSTOMER_NAT)
        })
    );
    assert!(
        !relay.may_latch(Side::Customer, start + ms(40)),
        "latched once"
    );
}

#[test]
fn a_nat_rewritten_port_after_the_window_is_foreign() {
    let t0 = epoch();
    let mut relay = relay(t0);
    // The window is [t0, t0 + 2 s): at 2 s exactly it is over.
    let late = t0 + Duration::from_secs(2);
    assert!(!relay.may_latch(Side::Customer, late));
    for i in 0..10u16 {
        let now = late + ms(u64::from(i) * 20);
        let result = forward(
            &mut relay,
            now,
            Side::Customer,
            CUSTOMER_NAT,
            &packet(i, 0xc0c0),
        );
        assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER)));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 10);
    assert_eq!(relay.poll_event(late + ms(200)), None);
}

#[test]
fn a_third_party_stream_after_the_window_is_dropped_and_counted() {
    let t0 = epoch();
    let mut relay = relay(t0);
    // The customer talks from its signalled address for five seconds; from the third second a
    // third party streams at the customer leg's port, interleaved, with the right payload type.
    let mut foreign = 0;
    for i in 0..250u16 {
        let now = t0 + ms(u64::from(i) * 20);
        let result = forward(
            &mut relay,
            now,
            Side::Customer,
            CUSTOMER,
            &packet(i, 0xc0c0),
        );
        assert!(sent_to(result, AGENT), "packet {i}: {result:?}");
        if now >= t0 + Duration::from_secs(3) {
            let result = forward(&mut relay, now, Side::Customer, ATTACKER, &packet(i, 0xbad));
            assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
            foreign += 1;
        }
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER)));
    let stats = relay.source_stats(Side::Customer);
    assert_eq!(stats.dropped_foreign, foreign);
    assert_eq!(stats.last_foreign, Some(addr(ATTACKER)));
    assert_eq!(relay.source_stats(Side::Agent).dropped_foreign, 0);
    // The agent's audio still goes to the customer, not the third party.
    let result = forward(
        &mut relay,
        t0 + ms(5000),
        Side::Agent,
        AGENT,
        &packet(1, 0xa6e7),
    );
    assert!(sent_to(result, CUSTOMER), "{result:?}");
    assert_eq!(relay.poll_event(t0 + ms(5000)), None, "no latch event");
}

#[test]
fn a_third_party_within_the_window_never_latches() {
    let t0 = epoch();
    let mut relay = relay(t0);
    // Right after the answer, a source on another IP sends many packets in a row.
    for i in 0..20u16 {
        let now = t0 + ms(u64::from(i) * 20);
        let result = forward(&mut relay, now, Side::Customer, ATTACKER, &packet(i, 0xbad));
        assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER)));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 20);
    assert_eq!(relay.poll_event(t0 + ms(400)), None);
}

#[test]
fn a_foreign_source_never_resets_the_peers_latch_count() {
    let t0 = epoch();
    let mut relay = relay(t0);
    // The customer's NAT port and a third party alternate; the third party's packets (any
    // payload type) must not restart the count, so the third NAT packet latches.
    for i in 0..3u16 {
        let now = t0 + ms(u64::from(i) * 20);
        let result = forward(
            &mut relay,
            now,
            Side::Customer,
            CUSTOMER_NAT,
            &packet(i, 0xc0c0),
        );
        if i < 2 {
            assert_eq!(result, Forward::Dropped(DropReason::UnexpectedSource));
        } else {
            assert!(sent_to(result, AGENT), "{result:?}");
        }
        for pt in [0, 13] {
            let result = forward(
                &mut relay,
                now + ms(5),
                Side::Customer,
                ATTACKER,
                &packet_with(pt, 100 + i, 0xbad),
            );
            assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
        }
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER_NAT)));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 6);
}

#[test]
fn an_unexpected_payload_type_does_not_count_towards_the_latch() {
    let t0 = epoch();
    let mut relay = relay(t0);
    // Comfort noise (13) from the NAT port between its audio: not counted, not a reset.
    let sequence = [0u8, 13, 0, 13, 13];
    for (i, pt) in sequence.into_iter().enumerate() {
        let now = t0 + ms(i as u64 * 20);
        let result = forward(
            &mut relay,
            now,
            Side::Customer,
            CUSTOMER_NAT,
            &packet_with(pt, i as u16, 0xc0c0),
        );
        let expected = if pt == 13 {
            DropReason::UnexpectedPayloadType
        } else {
            DropReason::UnexpectedSource
        };
        assert_eq!(result, Forward::Dropped(expected), "packet {i}");
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER)));
    let result = forward(
        &mut relay,
        t0 + ms(100),
        Side::Customer,
        CUSTOMER_NAT,
        &packet(5, 0xc0c0),
    );
    assert!(
        sent_to(result, AGENT),
        "third PCMU packet latches: {result:?}"
    );
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 0);
}

#[test]
fn once_latched_no_other_source_latches_even_within_the_window() {
    let t0 = epoch();
    let mut relay = relay(t0);
    for i in 0..3u16 {
        forward(
            &mut relay,
            t0 + ms(u64::from(i) * 20),
            Side::Customer,
            CUSTOMER_NAT,
            &packet(i, 1),
        );
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER_NAT)));
    // Another port on the same IP, and the signalled address itself, within the window.
    for from in ["198.51.100.7:62000", CUSTOMER] {
        for i in 0..5u16 {
            let now = t0 + ms(100 + u64::from(i) * 20);
            let result = forward(&mut relay, now, Side::Customer, from, &packet(10 + i, 2));
            assert_eq!(
                result,
                Forward::Dropped(DropReason::ForeignSource),
                "{from}"
            );
        }
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER_NAT)));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 10);
    // The latched source goes on being relayed long after.
    let result = forward(
        &mut relay,
        t0 + ms(60_000),
        Side::Customer,
        CUSTOMER_NAT,
        &packet(3, 1),
    );
    assert!(sent_to(result, AGENT), "{result:?}");
}

#[test]
fn a_new_negotiation_opens_a_new_latch_window() {
    let t0 = epoch();
    let mut relay = relay(t0);
    let late = t0 + Duration::from_secs(30);
    let result = forward(
        &mut relay,
        late,
        Side::Customer,
        CUSTOMER_NAT,
        &packet(1, 1),
    );
    assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    // The same negotiation again (a session refresh) changes nothing: still foreign.
    relay
        .update_leg(Side::Customer, customer_leg_at("198.51.100.7", 4000), late)
        .expect("same codec");
    assert!(!relay.may_latch(Side::Customer, late));
    let result = forward(
        &mut relay,
        late,
        Side::Customer,
        CUSTOMER_NAT,
        &packet(2, 1),
    );
    assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    // A re-INVITE moving the customer to another port opens a window of 2 s from its `now`.
    let reinvite = late + ms(100);
    relay
        .update_leg(
            Side::Customer,
            customer_leg_at("198.51.100.7", 4002),
            reinvite,
        )
        .expect("same codec");
    assert!(relay.may_latch(Side::Customer, reinvite + ms(1999)));
    assert!(!relay.may_latch(Side::Customer, reinvite + ms(2000)));
    for i in 0..3u16 {
        let now = reinvite + ms(1000 + u64::from(i) * 20);
        let result = forward(
            &mut relay,
            now,
            Side::Customer,
            CUSTOMER_NAT,
            &packet(3 + i, 1),
        );
        if i < 2 {
            assert_eq!(result, Forward::Dropped(DropReason::UnexpectedSource));
        } else {
            assert!(sent_to(result, AGENT), "{result:?}");
        }
    }
    assert_eq!(relay.destination(Side::Customer), Some(addr(CUSTOMER_NAT)));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 2);
}

#[test]
fn an_agent_behind_nat_latches_to_its_registered_source() {
    let t0 = epoch();
    // The softphone's SDP names its private address; its packets come from its NAT's public
    // address, the one it registered from.
    let registered: IpAddr = "203.0.113.77".parse().unwrap();
    let public = "203.0.113.77:40123";
    let customer = customer_leg_at("198.51.100.7", 4000);
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
    // Allowed before the agent's leg is set up: kept for when it is.
    relay.allow_source(Side::Agent, registered);
    let answered = t0 + Duration::from_secs(8);
    relay
        .update_leg(Side::Agent, agent_leg_at("10.0.0.5", 5000), answered)
        .expect("same codec");
    for i in 0..3u16 {
        let now = answered + ms(u64::from(i) * 20);
        let result = forward(&mut relay, now, Side::Agent, public, &packet(i, 0xa6e7));
        if i < 2 {
            assert_eq!(result, Forward::Dropped(DropReason::UnexpectedSource));
        } else {
            assert!(sent_to(result, CUSTOMER), "{result:?}");
        }
    }
    assert_eq!(relay.destination(Side::Agent), Some(addr(public)));
    assert_eq!(
        relay.poll_event(answered + ms(40)),
        Some(RelayEvent::Latched {
            side: Side::Agent,
            to: addr(public)
        })
    );
    // The customer's audio reaches the agent through its NAT.
    let result = forward(
        &mut relay,
        answered + ms(60),
        Side::Customer,
        CUSTOMER,
        &packet(1, 1),
    );
    assert!(sent_to(result, public), "{result:?}");
}

#[test]
fn an_agent_behind_nat_without_an_allowed_source_never_latches() {
    let t0 = epoch();
    let mut relay = relay_with(
        RelayConfig::default(),
        customer_leg_at("198.51.100.7", 4000),
        agent_leg_at("10.0.0.5", 5000),
        t0,
    );
    for i in 0..5u16 {
        let now = t0 + ms(u64::from(i) * 20);
        let result = forward(
            &mut relay,
            now,
            Side::Agent,
            "203.0.113.77:40123",
            &packet(i, 2),
        );
        assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    }
    assert_eq!(relay.destination(Side::Agent), Some(addr("10.0.0.5:5000")));
}

#[test]
fn an_allowed_source_seen_through_a_dual_stack_socket_latches() {
    let t0 = epoch();
    let mut relay = relay_with(
        RelayConfig::default(),
        customer_leg_at("198.51.100.7", 4000),
        agent_leg_at("10.0.0.5", 5000),
        t0,
    );
    relay.allow_source(Side::Agent, "203.0.113.77".parse().unwrap());
    // An IPv6 socket reports the IPv4 peer as an IPv4-mapped address.
    let mapped = "[::ffff:203.0.113.77]:40123";
    for i in 0..3u16 {
        forward(
            &mut relay,
            t0 + ms(u64::from(i) * 20),
            Side::Agent,
            mapped,
            &packet(i, 2),
        );
    }
    assert_eq!(relay.destination(Side::Agent), Some(addr(mapped)));
}

#[test]
fn the_latch_window_follows_the_configuration() {
    let t0 = epoch();
    let config = RelayConfig {
        latch_window: ms(500),
        ..RelayConfig::default()
    };
    let mut relay = relay_with(
        config,
        customer_leg_at("198.51.100.7", 4000),
        agent_leg_at("192.0.2.50", 5000),
        t0,
    );
    assert!(relay.may_latch(Side::Customer, t0 + ms(499)));
    for i in 0..3u16 {
        let now = t0 + ms(500 + u64::from(i) * 20);
        let result = forward(&mut relay, now, Side::Customer, CUSTOMER_NAT, &packet(i, 1));
        assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    }
}

#[test]
fn rtcp_from_a_foreign_host_is_not_read_and_is_counted() {
    let t0 = epoch();
    let mut relay = relay(t0);
    let info = SenderInfo {
        ntp: NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000)),
        rtp_timestamp: 0,
        packet_count: 1,
        octet_count: 160,
    };
    let mut report = [0u8; 1500];
    let len = rtcp::write_report(&mut report, Ssrc(0xbad), Some(&info), &[], "x").expect("fits");
    let result = forward(
        &mut relay,
        t0,
        Side::Customer,
        "233.252.0.9:10000",
        &report[..len],
    );
    assert_eq!(result, Forward::Dropped(DropReason::ForeignSource));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 1);
    // From the customer's host (RTCP port = RTP port + 1), it is read as before.
    let result = forward(
        &mut relay,
        t0,
        Side::Customer,
        "198.51.100.7:4001",
        &report[..len],
    );
    assert_eq!(result, Forward::Dropped(DropReason::Rtcp));
    assert_eq!(relay.source_stats(Side::Customer).dropped_foreign, 1);
}
