//! SRTP per leg in virtual time: the B2BUA core's SDES offers and answers (RFC 4568) under
//! each trunk's and agent's `srtp` policy, the keys it gives the media ([`MediaOp::SetSrtp`]),
//! and a relay built from those commands carrying audio from a plain carrier to an SRTP agent
//! that decrypts it with the keys of the SDP.

mod scenario_net;

use std::time::{Duration, Instant};

use dialer::b2bua::{CallOutcome, MediaOp, SrtpPolicy};
use media::relay::{Forward, Relay, RelayConfig, Side};
use media::rtcp::NtpTimestamp;
use media::rtp::{self, OutgoingHeader, PayloadType, RtpHeader, Ssrc};
use media::sdp::{
    answer_offer_srtp, Codec, LocalEndpoint, MediaConfig, Negotiated, SessionDescription, SrtpKeys,
    Transport,
};
use media::srtp::{CryptoSuite, SrtpSession};
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

fn audio_section(body: &[u8]) -> media::sdp::MediaDescription {
    let sdp = SessionDescription::parse_bytes(body).expect("the dialer's SDP parses");
    sdp.media
        .into_iter()
        .find(|m| m.is_audio())
        .expect("an audio section")
}

/// A peer's SDES answer to `offer` (its own key per RFC 4568 §7.1.2), with the keys as the
/// peer holds them (`local` = the peer's, `remote` = the dialer's).
fn srtp_answer(offer: &Request, codec: Codec, ip: &str, port: u16) -> (Vec<u8>, SrtpKeys) {
    let offer = SessionDescription::parse_bytes(&offer.body).expect("the dialer's offer parses");
    let config = MediaConfig {
        codecs: vec![codec],
        ..MediaConfig::default()
    };
    let local = LocalEndpoint {
        address: ip.parse().unwrap(),
        rtp_port: port,
        session_id: 7,
        session_version: 1,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3711);
    let (sdp, _, keys) = answer_offer_srtp(
        &offer,
        &config,
        &local,
        SrtpPolicy::Required,
        &CryptoSuite::ALL,
        &mut rng,
    )
    .expect("the peer can key the dialer's offer");
    (
        sdp.to_sdp_string().into_bytes(),
        keys.expect("the offer carries a usable a=crypto"),
    )
}

/// The agent answers its INVITE 200 with `body`.
fn agent_answers_with(net: &mut Net, body: Vec<u8>) -> Request {
    let (tx, invite) = net
        .agent
        .take_request(Method::Invite)
        .expect("agent INVITE");
    let mut ok = make_response(&invite, 200, Some("a1"));
    ok.headers
        .add(HeaderKind::Contact, "<sip:1000@10.0.0.5:5060;ob>");
    ok.set_body("application/sdp", body);
    net.agent.respond(net.now, tx, ok);
    net.settle();
    invite
}

/// The keys of the last `SetSrtp` for `side` after `from` media ops (`Some(None)`: set plain).
fn srtp_set(net: &Net, side: Side, from: usize) -> Option<Option<SrtpKeys>> {
    net.media_ops()[from..].iter().rev().find_map(|o| match o {
        MediaOp::SetSrtp { side: s, keys } if *s == side => Some(keys.clone()),
        _ => None,
    })
}

fn last_set_leg(net: &Net, side: Side) -> Negotiated {
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
}

/// A re-INVITE from a peer in the dialog of `ack` (the dialer's ACK to it).
fn reinvite(ack: &Request, cseq: u32, body: Vec<u8>) -> Request {
    let mut re = in_dialog(ack, Method::Invite, cseq, "sip:dialer@192.0.2.10:5060");
    re.headers
        .add(HeaderKind::Contact, "<sip:peer@10.0.0.5:5060>");
    re.set_body("application/sdp", body);
    re
}

/// The final response a peer got for its request with this CSeq number.
fn final_response(peer: &Peer, seq: u32) -> Option<Response> {
    peer.events.iter().find_map(|e| match e {
        Event::Response { response, .. }
            if response.status >= 200 && response.cseq().unwrap().seq == seq =>
        {
            Some(response.clone())
        }
        _ => None,
    })
}

/// A call whose agent leg is SRTP (`policy` for agent 1000), the carrier plain: the agent
/// answers with SDES. Returns the net, the agent's keys and the dialer's ACK to the agent.
fn srtp_agent_bridged(policy: SrtpPolicy) -> (Net, SrtpKeys, Request) {
    let mut net = Net::new();
    net.core.set_agent_srtp("1000", policy);
    net.customer_answers();
    let invite = net.agent.received_requests(Method::Invite)[0].clone();
    let (body, agent_keys) = srtp_answer(&invite, Codec::Pcmu, "10.0.0.5", 4000);
    agent_answers_with(&mut net, body);
    let ack = net.agent.received_requests(Method::Ack)[0].clone();
    (net, agent_keys, ack)
}

#[test]
fn an_optional_leg_is_offered_rtp_avp_with_one_fresh_key_per_suite() {
    let mut net = Net::new();
    net.core.set_trunk_srtp(0, SrtpPolicy::Optional);
    net.originate();
    let (_, invite) = net.carrier_invite();
    let audio = audio_section(&invite.body);
    assert_eq!(audio.transport, Transport::RtpAvp, "RTP/AVP for optional");
    let suites: Vec<CryptoSuite> = audio.crypto.iter().map(|c| c.key.suite()).collect();
    assert_eq!(suites, CryptoSuite::ALL, "every suite, in our order");
    let tags: Vec<u32> = audio.crypto.iter().map(|c| c.tag).collect();
    assert_eq!(tags, [1, 2, 3]);
    let keys: std::collections::HashSet<String> =
        audio.crypto.iter().map(|c| c.key.to_base64()).collect();
    assert_eq!(keys.len(), 3, "a key of its own per line");
    // The agent leg (off by default) is offered plain RTP without a=crypto.
    net.agent_registers();
    let body = String::from_utf8_lossy(&invite.body).into_owned();
    assert!(
        body.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{body}"
    );
}

#[test]
fn every_leg_and_every_call_gets_new_keys() {
    let mut net = Net::new();
    net.core.set_trunk_srtp(0, SrtpPolicy::Required);
    net.core.set_agent_srtp("1000", SrtpPolicy::Required);
    let keys_of = |r: &Request| -> Vec<String> {
        audio_section(&r.body)
            .crypto
            .iter()
            .map(|c| c.key.to_base64())
            .collect()
    };
    net.originate();
    let (tx, invite) = net.carrier_invite();
    let (body, _) = srtp_answer(&invite, Codec::Pcma, "192.0.2.51", 30000);
    net.carrier
        .respond(net.now, tx, carrier_ok(&invite, "c1", Some(body)));
    net.settle();
    assert!(srtp_set(&net, Side::Customer, 0).is_some_and(|k| k.is_some()));
    let first = keys_of(&net.carrier.received_requests(Method::Invite)[0]);
    let agent = keys_of(&net.agent.received_requests(Method::Invite)[0]);
    assert!(first.iter().all(|k| !agent.contains(k)), "each leg its own");
    // The agent refuses; the call ends and a second one is placed.
    net.agent_refuses("1000", 486);
    net.carrier.answer_byes(net.now);
    net.settle();
    assert_eq!(net.cdrs().len(), 1);
    net.originate();
    let invites = net.carrier.received_requests(Method::Invite);
    let second = invites
        .iter()
        .find(|i| i.call_id() != invites[0].call_id())
        .expect("a second customer INVITE");
    let second = keys_of(second);
    assert_eq!(second.len(), 3);
    assert!(
        second.iter().all(|k| !first.contains(k)),
        "each call its own"
    );
}

#[test]
fn a_required_agent_is_offered_rtp_savp_and_its_keys_reach_the_relay_before_its_leg() {
    let mut net = Net::new();
    net.core.set_agent_srtp("1000", SrtpPolicy::Required);
    net.customer_answers();
    // The customer (trunk off) is plain: no SetSrtp for it.
    assert_eq!(srtp_set(&net, Side::Customer, 0), None);
    let customer_offer = &net.carrier.received_requests(Method::Invite)[0];
    assert!(audio_section(&customer_offer.body).crypto.is_empty());
    let invite = net.agent.received_requests(Method::Invite)[0].clone();
    let audio = audio_section(&invite.body);
    assert_eq!(audio.transport, Transport::Secure("RTP/SAVP".into()));
    assert_eq!(audio.crypto.len(), 3);
    let before = net.media_ops().len();
    let (body, agent_keys) = srtp_answer(&invite, Codec::Pcmu, "10.0.0.5", 4000);
    agent_answers_with(&mut net, body);
    let ops = &net.media_ops()[before..];
    let srtp_at = ops
        .iter()
        .position(|o| {
            matches!(
                o,
                MediaOp::SetSrtp {
                    side: Side::Agent,
                    keys: Some(_)
                }
            )
        })
        .expect("the agent's keys went to the media");
    let leg_at = ops
        .iter()
        .position(|o| {
            matches!(
                o,
                MediaOp::SetLeg {
                    side: Side::Agent,
                    ..
                }
            )
        })
        .expect("the agent's leg went to the media");
    assert!(srtp_at < leg_at, "keys before the leg: {ops:?}");
    let keys = srtp_set(&net, Side::Agent, before).unwrap().unwrap();
    // Ours is the key of the line the agent chose (the first, tag 1); the peer's is the
    // agent's own.
    assert_eq!(keys.local, audio.crypto[0].key);
    assert_eq!(keys.remote, agent_keys.local);
    assert_eq!(keys.local, agent_keys.remote);
    assert_eq!(net.cdrs().len(), 0, "the call goes on");
}

#[test]
fn keys_are_in_no_event_and_no_cdr() {
    let (mut net, agent_keys, _) = srtp_agent_bridged(SrtpPolicy::Required);
    let ours = srtp_set(&net, Side::Agent, 0).unwrap().unwrap().local;
    let invite = net.agent.received_requests(Method::Invite)[0].clone();
    net.customer_hangs_up(&net.carrier.received_requests(Method::Invite)[0].clone());
    net.agent.answer_byes(net.now);
    net.settle();
    let cdr = serde_json::to_string(&net.cdr()).unwrap();
    let events = serde_json::to_string(&net.events()).unwrap();
    let ops = format!("{:?}", net.media_ops());
    let mut secrets = vec![ours.to_base64(), agent_keys.local.to_base64()];
    secrets.extend(
        audio_section(&invite.body)
            .crypto
            .iter()
            .map(|c| c.key.to_base64()),
    );
    for key in &secrets {
        assert!(!cdr.contains(key.as_str()), "a key in the CDR");
        assert!(!events.contains(key.as_str()), "a key in the events");
        assert!(!ops.contains(key.as_str()), "a key in a media op's Debug");
    }
}

#[test]
fn a_plain_answer_to_an_optional_offer_leaves_the_leg_plain() {
    let mut net = Net::new();
    net.core.set_agent_srtp("1000", SrtpPolicy::Optional);
    net.customer_answers();
    net.agent_answers();
    assert_eq!(
        srtp_set(&net, Side::Agent, 0),
        None,
        "no keys for a plain answer"
    );
    assert_eq!(last_set_leg(&net, Side::Agent).codec, Codec::Pcmu);
    assert!(net.cdrs().is_empty(), "bridged plain");
}

#[test]
fn a_plain_answer_where_srtp_is_required_ends_the_call_488_with_bye_to_both() {
    let mut net = Net::new();
    net.core.set_agent_srtp("1000", SrtpPolicy::Required);
    net.customer_answers();
    let invite = net.agent.received_requests(Method::Invite)[0].clone();
    // A phone that ignores RTP/SAVP and answers plain RTP/AVP.
    assert!(String::from_utf8_lossy(&invite.body).contains("RTP/SAVP"));
    let plain = "v=0\r\no=agent 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        .to_owned();
    agent_answers_with(&mut net, plain.into_bytes());
    net.agent.answer_byes(net.now);
    net.carrier.answer_byes(net.now);
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, CallOutcome::Failed);
    assert_eq!(cdr.sip_status, 488);
    assert!(
        !net.agent.received_requests(Method::Bye).is_empty(),
        "agent BYEd"
    );
    assert!(
        !net.carrier.received_requests(Method::Bye).is_empty(),
        "carrier BYEd"
    );
    assert!(
        !net.media_ops().iter().any(|o| matches!(
            o,
            MediaOp::SetLeg {
                side: Side::Agent,
                ..
            }
        )),
        "no plain agent leg reached the relay"
    );
}

#[test]
fn a_reoffer_without_crypto_on_a_required_leg_gets_488_and_the_keys_stay() {
    let (mut net, _, ack) = srtp_agent_bridged(SrtpPolicy::Required);
    let before = net.media_ops().len();
    let plain = "v=0\r\no=agent 1 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                 m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    net.agent
        .send(net.now, reinvite(&ack, 2, plain.as_bytes().to_vec()));
    net.settle();
    let response = final_response(&net.agent, 2).expect("the re-INVITE was answered");
    assert_eq!(response.status, 488);
    assert!(net.media_ops()[before..].is_empty(), "nothing changed");
}

#[test]
fn an_off_leg_refuses_an_rtp_savp_reoffer_with_488() {
    let mut net = Net::new();
    net.customer_answers();
    net.agent_answers();
    let ack = net.agent.received_requests(Method::Ack)[0].clone();
    let savp = "v=0\r\no=agent 1 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
                m=audio 4000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
                a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n";
    net.agent
        .send(net.now, reinvite(&ack, 2, savp.as_bytes().to_vec()));
    net.settle();
    assert_eq!(final_response(&net.agent, 2).unwrap().status, 488);
}

#[test]
fn a_reoffer_keeping_its_key_is_answered_with_ours_and_the_contexts_run_on() {
    let (mut net, agent_keys, ack) = srtp_agent_bridged(SrtpPolicy::Optional);
    let keys = srtp_set(&net, Side::Agent, 0).unwrap().unwrap();
    let before = net.media_ops().len();
    // The agent re-offers (a session refresh) with its key unchanged (RFC 4568 §7.1.4).
    let reoffer = format!(
        "v=0\r\no=agent 7 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{}\r\n",
        agent_keys.local.to_base64()
    );
    net.agent
        .send(net.now, reinvite(&ack, 2, reoffer.into_bytes()));
    net.settle();
    let ok = final_response(&net.agent, 2).expect("answered");
    assert_eq!(ok.status, 200);
    let answered = audio_section(&ok.body);
    assert_eq!(answered.crypto.len(), 1);
    assert_eq!(answered.crypto[0].key, keys.local, "our key kept");
    assert_eq!(
        srtp_set(&net, Side::Agent, before),
        None,
        "no new keys for the relay"
    );
    // A new key from the agent is answered with a new one of ours.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let new = media::srtp::MasterKey::generate(CryptoSuite::AesCm128HmacSha1_32, &mut rng);
    let reoffer = format!(
        "v=0\r\no=agent 7 3 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
         m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:{}\r\n",
        new.to_base64()
    );
    let before = net.media_ops().len();
    net.agent
        .send(net.now, reinvite(&ack, 3, reoffer.into_bytes()));
    net.settle();
    let ok = final_response(&net.agent, 3).expect("answered");
    let answered = audio_section(&ok.body);
    assert_eq!(answered.crypto[0].tag, 4);
    assert_eq!(
        answered.crypto[0].key.suite(),
        CryptoSuite::AesCm128HmacSha1_32
    );
    let rekeyed = srtp_set(&net, Side::Agent, before)
        .expect("new keys for the relay")
        .expect("still SRTP");
    assert_eq!(rekeyed.remote, new);
    assert_eq!(rekeyed.local, answered.crypto[0].key);
    assert_ne!(rekeyed.local, keys.local);
}

#[test]
fn a_plain_carrier_is_heard_by_an_srtp_agent_through_the_relay_and_back() {
    let (net, agent_keys, _) = srtp_agent_bridged(SrtpPolicy::Required);
    let t0 = epoch();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
    let mut relay = Relay::new(
        RelayConfig::default(),
        last_set_leg(&net, Side::Customer),
        last_set_leg(&net, Side::Agent),
        t0,
        wallclock,
        &mut rng,
    )
    .expect("relay builds");
    for op in net.media_ops() {
        if let MediaOp::SetSrtp { side, keys } = op {
            relay.set_srtp(*side, keys.as_ref());
        }
    }
    assert!(relay.is_srtp(Side::Agent) && !relay.is_srtp(Side::Customer));
    // The agent's phone: it protects with its key and unprotects with ours.
    let mut phone = SrtpSession::new(&agent_keys.local, &agent_keys.remote).expect("one suite");
    let carrier: std::net::SocketAddr = "192.0.2.51:30000".parse().unwrap();
    let agent: std::net::SocketAddr = "10.0.0.5:4000".parse().unwrap();
    let payload = [0x55u8; 160];
    for seq in 0..5u16 {
        // Carrier -> agent: plain PCMA in, SRTP PCMU out.
        let mut buf = [0u8; 1500];
        let len = rtp::write_packet(
            &mut buf,
            &OutgoingHeader {
                marker: seq == 0,
                payload_type: PayloadType(8),
                sequence: 100 + seq,
                timestamp: 160 * u32::from(seq),
                ssrc: Ssrc(0xCA11),
            },
            &payload,
        )
        .unwrap();
        let now = t0 + Duration::from_millis(20 * u64::from(seq));
        let Forward::Send { to, len } = relay.forward(now, Side::Customer, carrier, &mut buf, len)
        else {
            panic!("the carrier's packet is relayed");
        };
        assert_eq!(to, agent);
        let wire = buf[..len].to_vec();
        let plain_len = phone
            .unprotect_rtp(&mut buf, len)
            .expect("the agent decrypts");
        assert!(plain_len < wire.len(), "the tag came off");
        let header = RtpHeader::parse(&buf[..plain_len]).unwrap();
        assert_eq!(header.payload_type, PayloadType(0), "transcoded to PCMU");
        assert_ne!(
            &wire[12..plain_len],
            &buf[12..plain_len],
            "encrypted on the wire"
        );
        // Agent -> carrier: SRTP in, plain out.
        let mut buf = [0u8; 1500];
        let len = rtp::write_packet(
            &mut buf,
            &OutgoingHeader {
                marker: seq == 0,
                payload_type: PayloadType(0),
                sequence: 500 + seq,
                timestamp: 160 * u32::from(seq),
                ssrc: Ssrc(0xA6E7),
            },
            &payload,
        )
        .unwrap();
        let len = phone
            .protect_rtp(&mut buf, len)
            .expect("the phone encrypts");
        let Forward::Send { to, len } = relay.forward(now, Side::Agent, agent, &mut buf, len)
        else {
            panic!("the agent's SRTP is relayed");
        };
        assert_eq!(to, carrier);
        let header = RtpHeader::parse(&buf[..len]).unwrap();
        assert_eq!(
            header.payload_type,
            PayloadType(8),
            "plain PCMA to the carrier"
        );
        assert_eq!(len, 12 + 160, "no tag towards the plain leg");
    }
    // A packet the phone did not protect is dropped on the SRTP leg.
    let mut buf = [0u8; 1500];
    let len = rtp::write_packet(
        &mut buf,
        &OutgoingHeader {
            marker: false,
            payload_type: PayloadType(0),
            sequence: 600,
            timestamp: 160 * 6,
            ssrc: Ssrc(0xA6E7),
        },
        &payload,
    )
    .unwrap();
    let forward = relay.forward(
        t0 + Duration::from_millis(200),
        Side::Agent,
        agent,
        &mut buf,
        len,
    );
    assert!(matches!(forward, Forward::Dropped(_)), "{forward:?}");
}
