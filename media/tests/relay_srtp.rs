//! The relay with SRTP (RFC 3711) keyed by SDES (RFC 4568): one leg SRTP and the other plain,
//! both SRTP across a sequence-number wrap, replay and forgery, SRTCP both ways.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use media::relay::{DropReason, Forward, Relay, RelayConfig, Side};
use media::rtcp::NtpTimestamp;
use media::rtp::{self, OutgoingHeader, PayloadType, RtpHeader, Ssrc};
use media::sdp::{
    add_crypto_to_offer, answer_offer_srtp, build_offer, process_answer_srtp, LocalEndpoint,
    MediaConfig, Negotiated, SessionDescription, SrtpKeys, SrtpPolicy,
};
use media::srtp::{CryptoSuite, SrtpSession};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

const CUSTOMER: &str = "198.51.100.7:4000";
const AGENT: &str = "192.0.2.50:5000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn endpoint(address: SocketAddr) -> LocalEndpoint {
    LocalEndpoint {
        address: address.ip(),
        rtp_port: address.port(),
        session_id: 1,
        session_version: 1,
    }
}

fn ours(port: u16) -> LocalEndpoint {
    endpoint(SocketAddr::new(IpAddr::from([203, 0, 113, 1]), port))
}

/// One leg negotiated with SDES: `offerer` offers, `answerer` answers, each under `policy`.
/// Returns what each side ends with: (offerer's negotiation, offerer's keys, answerer's keys).
fn sdes(
    offerer: LocalEndpoint,
    answerer: LocalEndpoint,
    policy: SrtpPolicy,
    rng: &mut ChaCha8Rng,
) -> (Negotiated, Negotiated, Option<SrtpKeys>, Option<SrtpKeys>) {
    let config = MediaConfig::default();
    let mut offer = build_offer(&config, &offerer);
    let offered = add_crypto_to_offer(&mut offer, policy, &CryptoSuite::ALL, rng);
    let sent = SessionDescription::parse(&offer.to_sdp_string()).expect("offer parses");
    let (answer, answerer_leg, answerer_keys) =
        answer_offer_srtp(&sent, &config, &answerer, policy, &CryptoSuite::ALL, rng)
            .expect("acceptable offer");
    let answer = SessionDescription::parse(&answer.to_sdp_string()).expect("answer parses");
    let (offerer_leg, offerer_keys) =
        process_answer_srtp(&offer, &offered, &answer, &config, policy).expect("acceptable");
    (offerer_leg, answerer_leg, offerer_keys, answerer_keys)
}

/// The two legs: the trunk offers to us (customer), we offer to the agent. `Some` session is
/// the peer's SRTP (the trunk's, the agent's) for a leg under SRTP.
struct Call {
    relay: Relay,
    customer: Option<SrtpSession>,
    agent: Option<SrtpSession>,
}

fn call(customer_policy: SrtpPolicy, agent_policy: SrtpPolicy) -> Call {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (_, customer_leg, trunk_keys, our_customer_keys) = sdes(
        endpoint(addr(CUSTOMER)),
        ours(30000),
        customer_policy,
        &mut rng,
    );
    let (agent_leg, _, our_agent_keys, agent_keys) =
        sdes(ours(30002), endpoint(addr(AGENT)), agent_policy, &mut rng);
    let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
    let mut relay = Relay::new(
        RelayConfig::default(),
        customer_leg,
        agent_leg,
        epoch(),
        wallclock,
        &mut rng,
    )
    .expect("relay builds");
    relay.set_srtp(Side::Customer, our_customer_keys.as_ref());
    relay.set_srtp(Side::Agent, our_agent_keys.as_ref());
    Call {
        relay,
        customer: trunk_keys.map(|k| k.session()),
        agent: agent_keys.map(|k| k.session()),
    }
}

/// A PCMU packet of 160 bytes of `fill` in `buf`; its length.
fn pcmu(buf: &mut [u8], seq: u16, ssrc: u32, fill: u8) -> usize {
    let header = OutgoingHeader {
        marker: false,
        payload_type: PayloadType(0),
        sequence: seq,
        timestamp: u32::from(seq).wrapping_mul(160),
        ssrc: Ssrc(ssrc),
    };
    rtp::write_packet(buf, &header, &[fill; 160]).expect("fits")
}

/// The peer sends a packet (protected if it has SRTP) into the relay on `side`.
fn send(call: &mut Call, side: Side, t: Instant, seq: u16, fill: u8, buf: &mut [u8]) -> Forward {
    let (peer, from, ssrc) = match side {
        Side::Customer => (call.customer.as_mut(), CUSTOMER, 0xC0C0),
        Side::Agent => (call.agent.as_mut(), AGENT, 0xA0A0),
    };
    let mut len = pcmu(buf, seq, ssrc, fill);
    if let Some(peer) = peer {
        len = peer.protect_rtp(buf, len).expect("peer protects");
    }
    call.relay.forward(t, side, addr(from), buf, len)
}

#[test]
fn srtp_agent_and_plain_customer_hear_each_other_and_only_the_agent_side_is_encrypted() {
    let mut call = call(SrtpPolicy::Off, SrtpPolicy::Optional);
    assert!(call.customer.is_none() && call.agent.is_some());
    assert!(call.relay.is_srtp(Side::Agent) && !call.relay.is_srtp(Side::Customer));
    let t = epoch();
    let mut buf = [0u8; 1500];
    let Forward::Send { to, len } = send(&mut call, Side::Customer, t, 1, 0xAA, &mut buf) else {
        panic!("customer audio is relayed");
    };
    assert_eq!(to, addr(AGENT));
    assert_eq!(len, 172 + CryptoSuite::AesCm128HmacSha1_80.rtp_overhead());
    assert!(
        buf[12..172].iter().any(|&b| b != 0xAA),
        "the agent side is not plain G.711"
    );
    let agent = call.agent.as_mut().unwrap();
    let plain = agent
        .unprotect_rtp(&mut buf, len)
        .expect("the agent decrypts");
    assert_eq!(plain, 172);
    assert_eq!(&buf[12..172], &[0xAA; 160][..]);

    let Forward::Send { to, len } = send(&mut call, Side::Agent, t, 1, 0x55, &mut buf) else {
        panic!("agent audio is relayed");
    };
    assert_eq!(
        (to, len),
        (addr(CUSTOMER), 172),
        "plain towards the customer"
    );
    assert_eq!(&buf[12..172], &[0x55; 160][..]);
    let header = RtpHeader::parse(&buf[..len]).unwrap();
    assert_eq!(header.payload_type, PayloadType(0));
}

#[test]
fn forged_replayed_and_plain_packets_from_an_srtp_leg_are_dropped() {
    let mut call = call(SrtpPolicy::Off, SrtpPolicy::Required);
    let t = epoch();
    let mut buf = [0u8; 1500];
    let agent = call.agent.as_mut().unwrap();
    let len = pcmu(&mut buf, 9, 0xA0A0, 1);
    let len = agent.protect_rtp(&mut buf, len).unwrap();
    let protected = buf[..len].to_vec();
    let mut forged = protected.clone();
    forged[30] ^= 0x01;
    let mut relay_one = |bytes: &[u8]| {
        let mut b = [0u8; 1500];
        b[..bytes.len()].copy_from_slice(bytes);
        call.relay
            .forward(t, Side::Agent, addr(AGENT), &mut b, bytes.len())
    };
    assert_eq!(
        relay_one(&forged),
        Forward::Dropped(DropReason::Unauthenticated)
    );
    assert!(matches!(relay_one(&protected), Forward::Send { .. }));
    assert_eq!(
        relay_one(&protected),
        Forward::Dropped(DropReason::Replayed)
    );
    let mut plain = [0u8; 200];
    let n = pcmu(&mut plain, 10, 0xA0A0, 1);
    assert_eq!(
        relay_one(&plain[..n]),
        Forward::Dropped(DropReason::Unauthenticated)
    );
}

#[test]
fn srtcp_from_the_agent_is_read_and_our_sender_reports_to_it_are_srtcp() {
    let mut call = call(SrtpPolicy::Off, SrtpPolicy::Optional);
    let t0 = epoch();
    let mut buf = [0u8; 1500];
    // Streams in both directions, so that each has a sender report to send.
    send(&mut call, Side::Customer, t0, 1, 0, &mut buf);
    send(&mut call, Side::Agent, t0, 1, 0, &mut buf);
    let agent = call.agent.as_mut().unwrap();
    let rr = [0x80, 201, 0, 1, 0, 0, 0xA0, 0xA0];
    buf[..8].copy_from_slice(&rr);
    let n = agent.protect_rtcp(&mut buf, 8).unwrap();
    let result = call
        .relay
        .forward(t0, Side::Agent, addr("192.0.2.50:5001"), &mut buf, n);
    assert_eq!(
        result,
        Forward::Dropped(DropReason::Rtcp),
        "authenticated and read"
    );
    buf[..8].copy_from_slice(&rr);
    let result = call
        .relay
        .forward(t0, Side::Agent, addr("192.0.2.50:5001"), &mut buf, 8);
    assert_eq!(result, Forward::Dropped(DropReason::Unauthenticated));

    // The report schedule starts at the first poll (RFC 3550 §6.2: one interval later).
    while call.relay.poll_transmit_leg(t0, &mut buf).is_some() {}
    let later = t0 + Duration::from_secs(5);
    let mut reports = Vec::new();
    while let Some(t) = call.relay.poll_transmit_leg(later, &mut buf) {
        reports.push((t.side, buf[..t.len].to_vec()));
    }
    let to_agent: Vec<_> = reports.iter().filter(|(s, _)| *s == Side::Agent).collect();
    let to_customer: Vec<_> = reports
        .iter()
        .filter(|(s, _)| *s == Side::Customer)
        .collect();
    assert_eq!(
        (to_agent.len(), to_customer.len()),
        (1, 1),
        "one report per stream"
    );
    let mut sr = to_agent[0].1.clone();
    let len = sr.len();
    let plain = agent
        .unprotect_rtcp(&mut sr, len)
        .expect("the agent authenticates our SR");
    assert_eq!(sr[1], 200, "a sender report (RFC 3550 §6.4.1)");
    assert_eq!(
        plain + CryptoSuite::AesCm128HmacSha1_80.rtcp_overhead(),
        len
    );
    assert_eq!(to_customer[0].1[1], 200, "plain RTCP towards the plain leg");
}

#[test]
fn rollover_counters_stay_right_on_both_legs_across_more_than_65536_packets() {
    // The trunk's sequence numbers start 36 before the wrap, and ours towards the agent start
    // wherever the seeded source put them: in 2^16 + 100 packets both wrap at least once, and a
    // rollover counter off by one on either side fails authentication from then on.
    let mut call = call(SrtpPolicy::Required, SrtpPolicy::Required);
    let t0 = epoch();
    let mut buf = [0u8; 1500];
    let start: u16 = 65_500;
    let mut last_out_seq = None;
    let mut wraps = 0;
    for i in 0..(1u32 << 16) + 100 {
        let t = t0 + Duration::from_millis(20 * u64::from(i));
        let seq = start.wrapping_add(i as u16);
        let fill = (i % 251) as u8;
        let Forward::Send { to, len } = send(&mut call, Side::Customer, t, seq, fill, &mut buf)
        else {
            panic!("packet {i} (sequence {seq}) was dropped");
        };
        assert_eq!(to, addr(AGENT));
        let agent = call.agent.as_mut().unwrap();
        let plain = agent.unprotect_rtp(&mut buf, len);
        assert_eq!(plain, Ok(172), "packet {i}: the agent authenticates it");
        assert_eq!(buf[12], fill);
        let out_seq = u16::from_be_bytes([buf[2], buf[3]]);
        if last_out_seq.is_some_and(|last: u16| out_seq < last) {
            wraps += 1;
        }
        last_out_seq = Some(out_seq);
    }
    assert!(wraps >= 1, "our stream to the agent wrapped");
}

#[test]
fn the_same_keys_again_keep_the_contexts_and_new_keys_replace_them() {
    let mut call = call(SrtpPolicy::Off, SrtpPolicy::Optional);
    let t = epoch();
    let mut buf = [0u8; 1500];
    assert!(matches!(
        send(&mut call, Side::Agent, t, 5, 0, &mut buf),
        Forward::Send { .. }
    ));
    // A refresh with other keys: the old peer's packets no longer authenticate.
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let (_, _, fresh, _) = sdes(
        ours(30002),
        endpoint(addr(AGENT)),
        SrtpPolicy::Optional,
        &mut rng,
    );
    call.relay.set_srtp(Side::Agent, fresh.as_ref());
    assert_eq!(
        send(&mut call, Side::Agent, t, 6, 0, &mut buf),
        Forward::Dropped(DropReason::Unauthenticated)
    );
    call.relay.set_srtp(Side::Agent, None);
    let len = pcmu(&mut buf, 7, 0xA0A0, 3);
    let plain = call
        .relay
        .forward(t, Side::Agent, addr(AGENT), &mut buf, len);
    assert!(matches!(plain, Forward::Send { len: 172, .. }), "{plain:?}");
}
