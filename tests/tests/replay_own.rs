//! Issue 7 item 5: the captures in the project's own `pcaps/` (recorded by
//! `scripts/record_pcaps.sh` from the dialer's interop runs) replayed against the B2BUA core,
//! so a regression in a call flow fails here without starting SIPp or baresip.
//!
//! Each capture holds one bridged call: the dialer's INVITE to the carrier and, once the
//! customer answered, its INVITE to the agent. The carrier's and the agent's recorded messages
//! are fed to the core at their captured times (trunk and agent registrations are left out:
//! their digest answers belong to nonces of the recorded run); the core must send, party by
//! party, the same ladder the real `dialer run` sent: methods, statuses, CSeq order, To tags,
//! where each ACK and BYE went and which Request-URI it carried.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dialer::b2bua::{AgentChoice, AgentTarget, Core, CoreConfig, OriginateSpec, TrunkSettings};
use media::sdp::Codec;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scenario_tests::replay::cores::B2bua;
use scenario_tests::replay::{uri_address, Kick, Recorded, Recording, Replay, Step};
use sip_core::auth::Credentials;
use sip_core::endpoint::{Endpoint, EndpointConfig};
use sip_core::message::{Host, Method, SipMessage, Uri};
use sip_core::transaction::Transport;

fn own_pcap(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pcaps")
        .join(name);
    assert!(
        path.is_file(),
        "{} is missing: re-record with scripts/record_pcaps.sh",
        path.display()
    );
    path
}

fn rng(seed: u64) -> Box<ChaCha8Rng> {
    Box::new(ChaCha8Rng::seed_from_u64(seed))
}

/// What the recording says about the call: who was who, and what was dialled.
struct CallShape {
    us: SocketAddr,
    carrier: SocketAddr,
    agent: SocketAddr,
    customer_invite: Recorded,
    agent_invite: Recorded,
}

fn invites(recording: &Recording) -> Vec<Recorded> {
    recording
        .messages
        .iter()
        .filter(|m| {
            m.message.as_request().is_some_and(|r| {
                r.method == Method::Invite && m.message.to_header().is_ok_and(|t| t.tag().is_none())
            })
        })
        .filter(|m| !m.retransmission)
        .cloned()
        .collect()
}

fn shape(recording: &Recording) -> CallShape {
    let invites = invites(recording);
    // A challenged INVITE is sent again with credentials and the same Call-ID.
    let mut calls: Vec<&Recorded> = Vec::new();
    for i in &invites {
        if !calls
            .iter()
            .any(|c| c.message.call_id().ok() == i.message.call_id().ok())
        {
            calls.push(i);
        }
    }
    let [customer, agent] = calls.as_slice() else {
        panic!(
            "expected a customer INVITE and an agent INVITE, found {}",
            calls.len()
        );
    };
    assert_eq!(customer.src, agent.src, "the dialer sent both INVITEs");
    CallShape {
        us: customer.src,
        carrier: customer.dst,
        agent: agent.dst,
        customer_invite: (*customer).clone(),
        agent_invite: (*agent).clone(),
    }
}

/// The B2BUA core set up as the recorded `dialer run` was: same addresses, the trunk's
/// domain from the customer INVITE's Request-URI, the agent where its INVITE went.
fn replay_call(
    name: &str,
    credentials: Option<Credentials>,
) -> (Replay, scenario_tests::replay::Outcome) {
    let recording = Recording::load(&own_pcap(name)).expect("own capture loads");
    let shape = shape(&recording);
    let calls = recording.calls_started_by(Method::Invite);
    let recording = recording.keep_calls(&calls);
    let uri = |m: &Recorded| m.message.as_request().expect("an INVITE").uri.clone();
    let customer_uri = uri(&shape.customer_invite);
    let Uri::Sip(sip) = &customer_uri else {
        panic!("customer Request-URI {customer_uri} is not a SIP URI");
    };
    let number = sip.user.clone().unwrap_or_default();
    let config = CoreConfig {
        contact_host: Host::from(shape.us.ip()),
        contact_port: shape.us.port(),
        media_ip: shape.us.ip(),
        trunks: vec![TrunkSettings {
            name: "carrier".into(),
            proxy: shape.carrier,
            transport: Transport::Udp,
            domain: sip.host.to_string(),
            credentials,
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            caller_id: shape
                .customer_invite
                .message
                .from_header()
                .ok()
                .and_then(|f| match f.uri {
                    Uri::Sip(s) => s.user,
                    _ => None,
                })
                .unwrap_or_default(),
            caller_name: None,
            pai: false,
            max_channels: None,
            max_cps: None,
            max_queue: 0,
            numbering: None,
            redirect_hosts: vec![Host::from(shape.carrier.ip())],
            realm: None,
        }],
        originate_timeout: Duration::from_secs(60),
        agent_ring_timeout: Duration::from_secs(30),
        max_redirects: 3,
    };
    let endpoint = Endpoint::new(EndpointConfig::new(shape.us), rng(1));
    let mut b2bua = B2bua::new(Core::new(config, endpoint, rng(2), 1.7e9));
    let agent = AgentTarget {
        uri: uri(&shape.agent_invite),
        destination: shape.agent,
        transport: Transport::Udp,
        codecs: vec![Codec::Pcmu, Codec::Pcma],
    };
    let mut replay = Replay::new(recording.clone(), &[shape.us])
        .name(shape.carrier, "carrier")
        .name(shape.agent, "agent");
    // A 2xx Contact elsewhere than its sender (behind a Record-Route) gets its own name.
    for m in &recording.messages {
        if let Some(r) = m.message.as_response().filter(|r| r.is_success()) {
            let contact = r
                .contacts()
                .ok()
                .and_then(|c| c.first().and_then(|c| c.address().map(|a| a.uri.clone())))
                .and_then(|u| uri_address(&u));
            if let Some(contact) = contact.filter(|c| *c != m.src && *c != shape.us) {
                let party = if m.src == shape.carrier {
                    "carrier"
                } else {
                    "agent"
                };
                replay = replay.name(contact, &format!("{party}-contact"));
            }
        }
    }
    let at = shape.customer_invite.at;
    let kick = Kick::at(at, move |b: &mut B2bua, now| {
        b.core.agent_reachable(now, "1000", agent);
        b.core
            .originate(
                now,
                OriginateSpec::new(number, AgentChoice::Extension("1000".into())),
            )
            .expect("the core accepts the call");
    });
    let outcome = replay.run(&mut b2bua, vec![kick]);
    (replay, outcome)
}

fn assert_same_ladders(name: &str, outcome: &scenario_tests::replay::Outcome) {
    assert!(
        outcome.skipped.is_empty(),
        "{name}: not fed: {:?}",
        outcome.skipped
    );
    for party in ["carrier", "agent"] {
        let recorded = outcome.recorded_ladder(Some(party));
        assert!(recorded.len() >= 6, "{name}: {party}: {recorded:?}");
        assert_eq!(
            outcome.live_ladder(Some(party)),
            recorded,
            "{name}: the core's ladder with the {party} differs from the recorded one"
        );
    }
}

#[test]
fn demo_pcap_call_replays_with_the_recorded_ladders_on_both_legs() {
    let (_, outcome) = replay_call("demo.pcap", None);
    assert_same_ladders("demo.pcap", &outcome);
    // The customer hung up: the dialer answered its BYE and sent its own to the agent.
    let carrier = outcome.live_ladder(Some("carrier"));
    let agent = outcome.live_ladder(Some("agent"));
    assert_eq!(
        carrier.last(),
        Some(&Step::new("us", "carrier", "200", "1 BYE", true).in_call(carrier[0].call))
    );
    let bye = agent
        .iter()
        .find(|s| s.label == "BYE")
        .expect("a BYE to the agent");
    assert_eq!((bye.from.as_str(), bye.cseq.as_str()), ("us", "2 BYE"));
}

#[test]
fn sipp_baresip_call_replays_with_ack_and_bye_to_the_contact_through_the_record_route() {
    let (_, outcome) = replay_call(
        "sipp-baresip-call.pcap",
        Some(Credentials::with_password("dialer", "s3cret")),
    );
    assert_same_ladders("sipp-baresip-call.pcap", &outcome);
    // RFC 3261 §12.2.1.1 with a loose route set: the ACK and the BYE travel to the
    // Record-Route (SIPp's own socket) with the 2xx's Contact on 127.0.0.3 as Request-URI.
    let carrier = outcome.live_ladder(Some("carrier"));
    for method in ["ACK", "BYE"] {
        let step = carrier
            .iter()
            .rev()
            .find(|s| s.label == method && s.from == "us")
            .unwrap_or_else(|| panic!("no {method} to the carrier: {carrier:?}"));
        assert_eq!(step.to, "carrier", "{method}");
        assert_eq!(step.target.as_deref(), Some("carrier-contact"), "{method}");
    }
    // The first INVITE was challenged (407) and sent again with the same CSeq order + 1.
    let invites: Vec<&Step> = carrier
        .iter()
        .filter(|s| s.label == "INVITE" && s.from == "us")
        .collect();
    assert_eq!(invites.len(), 2, "{carrier:?}");
    assert_eq!(invites[1].cseq, "2 INVITE");
}
