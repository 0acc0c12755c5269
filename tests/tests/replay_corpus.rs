//! Issue 7 item 4: real equipment's side of corpus captures replayed against our cores in
//! virtual time (`scenario_tests::replay`), compared by meaning:
//! - the FreeSWITCH side of sip-rtp-g711.pcap against the B2BUA core's customer leg (our UAC);
//! - the X-Lite REGISTER and INVITE of Asterisk_ZFONE_XLITE.pcap against the dialer's agent
//!   registrar and a challenging UAS;
//! - the PT-96 telephone-event stream of SIP_DTMF2.cap through the media relay to a PT-101 leg.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dialer::b2bua::{AgentChoice, AgentTarget, Core, CoreConfig, OriginateSpec, TrunkSettings};
use dialer::registrar::{AgentEntry, Registrar, RegistrarConfig};
use media::relay::{Forward, Relay, RelayConfig, Side};
use media::rtcp::NtpTimestamp;
use media::rtp::{PayloadType, RtpHeader};
use media::sdp::{
    answer_offer, build_offer, process_answer, Codec, LocalEndpoint, MediaConfig,
    SessionDescription,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use scenario_tests::replay::cores::{B2bua, Pbx};
use scenario_tests::replay::{rtp_packets, Kick, Recording, Replay, Step};
use sip_core::auth::{parse_challenge, Verification};
use sip_core::endpoint::{Endpoint, EndpointConfig};
use sip_core::message::{HeaderKind, Host, Message, Method, SipMessage, Uri};
use sip_core::transaction::Transport;

fn corpus(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcaps");
    let path = dir.join(name);
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var("REQUIRE_CORPUS").as_deref() != Ok("1"),
        "corpus capture {} missing and REQUIRE_CORPUS=1",
        path.display()
    );
    eprintln!("skipped: corpus capture {} not found", path.display());
    None
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn rng(seed: u64) -> Box<ChaCha8Rng> {
    Box::new(ChaCha8Rng::seed_from_u64(seed))
}

// --- (a) sip-rtp-g711.pcap: FreeSWITCH answers; our B2BUA core is the UAC -------------------

/// SIPp placed the calls from here: our side.
const SIPP: &str = "10.0.2.20:5060";
/// FreeSWITCH: the carrier whose side is replayed.
const FREESWITCH: &str = "10.0.2.15:5060";

fn b2bua_as(local: SocketAddr, trunk: SocketAddr) -> B2bua {
    let config = CoreConfig {
        contact_host: Host::from(local.ip()),
        contact_port: local.port(),
        media_ip: local.ip(),
        trunks: vec![TrunkSettings {
            name: "carrier".into(),
            proxy: trunk,
            transport: Transport::Udp,
            domain: trunk.ip().to_string(),
            credentials: None,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            caller_id: "sipp".into(),
            caller_name: None,
            pai: false,
            max_channels: None,
            max_cps: None,
            max_queue: 0,
            numbering: None,
            redirect_hosts: vec![Host::from(trunk.ip())],
            realm: None,
        }],
        originate_timeout: Duration::from_secs(60),
        agent_ring_timeout: Duration::from_secs(20),
        max_redirects: 3,
    };
    let endpoint = Endpoint::new(EndpointConfig::new(local), rng(1));
    B2bua::new(Core::new(config, endpoint, rng(2), 1.7e9))
}

/// An agent nobody answers for: the B2BUA calls it once the customer answered.
fn silent_agent() -> AgentTarget {
    AgentTarget {
        uri: Uri::parse("sip:1000@192.0.2.99:5060").expect("literal URI"),
        destination: addr("192.0.2.99:5060"),
        transport: Transport::Udp,
        codecs: vec![Codec::Pcmu],
    }
}

fn originate_at(at: Duration, number: &'static str) -> Kick<B2bua> {
    Kick::at(at, move |b: &mut B2bua, now| {
        b.core.agent_reachable(now, "1000", silent_agent());
        b.core
            .originate(
                now,
                OriginateSpec::new(number, AgentChoice::Extension("1000".into())),
            )
            .expect("the core accepts the call");
    })
}

#[test]
fn freeswitch_side_of_sip_rtp_g711_answers_our_uac_which_acks_the_contact_and_answers_the_bye() {
    let Some(path) = corpus("sip-rtp-g711.pcap") else {
        return;
    };
    let recording = Recording::load(&path).expect("capture loads");
    let calls = recording.calls_started_by(Method::Invite);
    assert_eq!(calls.len(), 2, "the PCMU call and the PCMA call");
    // The capture ends during the second call: it has no BYE.
    for (call, steps) in calls.iter().zip([6, 4]) {
        let one = recording.keep_calls(std::slice::from_ref(call)).rebased();
        let invite_at = one.messages[0].at;
        let replay = Replay::new(one, &[addr(SIPP)]).name(addr(FREESWITCH), "carrier");
        let mut b2bua = b2bua_as(addr(SIPP), addr(FREESWITCH));
        let outcome = replay.run(&mut b2bua, vec![originate_at(invite_at, "test")]);

        let expected = [
            Step::new("us", "carrier", "INVITE", "1 INVITE", false).targeting("carrier"),
            Step::new("carrier", "us", "100", "1 INVITE", false),
            Step::new("carrier", "us", "200", "1 INVITE", true),
            // RFC 3261 §13.2.2.4: the ACK goes to the 200's Contact (FreeSWITCH's address).
            Step::new("us", "carrier", "ACK", "1 ACK", true).targeting("carrier"),
            // The BYE's Request-URI was SIPp's Contact; rewritten to ours.
            Step::new("carrier", "us", "BYE", "1 BYE", true).targeting("us"),
            Step::new("us", "carrier", "200", "1 BYE", true),
        ];
        let live = outcome.live_ladder(Some("carrier"));
        assert_eq!(live, outcome.recorded_ladder(Some("carrier")), "{call}");
        assert_eq!(live, expected[..steps], "{call}");
        assert!(outcome.skipped.is_empty(), "{call}: {:?}", outcome.skipped);
        assert!(
            outcome.sent_to("carrier").all(|s| !s.retransmission),
            "{call}: every carrier message was answered in time, nothing is resent"
        );
        // The 200 to the BYE carries the dialog's tags: ours as To, the carrier's as From.
        let bye = outcome.fed.iter().find(|f| {
            f.message
                .as_request()
                .is_some_and(|r| r.method == Method::Bye)
        });
        let ok = outcome
            .sent_to("carrier")
            .map(|s| &s.message)
            .find(|m| m.as_response().is_some_and(|r| r.status == 200));
        let tag = |m: &Message| m.to_header().ok().and_then(|t| t.tag().map(str::to_owned));
        if let (Some(bye), Some(ok)) = (bye, ok) {
            assert_eq!(tag(ok), tag(&bye.message), "{call}");
        }
        // The B2BUA called the agent once the carrier answered.
        let to_agent: Vec<_> = outcome
            .sent
            .iter()
            .filter(|s| s.to == addr("192.0.2.99:5060") && !s.retransmission)
            .filter_map(|s| s.message.as_request().map(|r| r.method.as_str().to_owned()))
            .collect();
        // RFC 3261 §9.1: no CANCEL before a provisional response; the silent agent sent
        // none, so its INVITE is left to time out.
        assert_eq!(to_agent, ["INVITE"], "{call}");
    }
}

// --- (b) Asterisk_ZFONE_XLITE.pcap: X-Lite registers and calls; we play Asterisk -----------

/// Asterisk: our side.
const ASTERISK: &str = "192.168.10.2:5060";
/// X-Lite: the remote party.
const XLITE: &str = "192.168.10.41:13434";

fn pbx(realm: &str) -> Pbx {
    let local = addr(ASTERISK);
    let mut config = RegistrarConfig::new(realm, b"replay nonce key".to_vec());
    config.agents.push(AgentEntry::with_password(
        "10009",
        "not-the-recorded-password",
        vec![addr(XLITE).ip().into()],
    ));
    let registrar = Registrar::new(config, rng(5)).expect("registrar config is valid");
    let passwords = HashMap::from([("10009".to_owned(), "not-the-recorded-password".to_owned())]);
    let media = LocalEndpoint {
        address: local.ip(),
        rtp_port: 18874,
        session_id: 1,
        session_version: 1,
    };
    Pbx::new(
        Endpoint::new(EndpointConfig::new(local), rng(6)),
        registrar,
        passwords,
        media,
    )
}

/// X-Lite's REGISTER exchange and its INVITE up to the credentialed retry (frame 18):
/// after that the recorded flow follows Asterisk's 200, which our side does not send.
fn xlite_recording() -> Option<Recording> {
    let path = corpus("Asterisk_ZFONE_XLITE.pcap")?;
    let recording = Recording::load(&path).expect("capture loads");
    let mut keep = recording.calls_started_by(Method::Register);
    keep.extend(recording.calls_started_by(Method::Invite));
    assert_eq!(keep.len(), 2, "one registration and one call: {keep:?}");
    Some(recording.keep_calls(&keep).until_packet(18))
}

fn nonce_of(m: &Message) -> (String, String) {
    let value = m
        .headers()
        .get(HeaderKind::WwwAuthenticate)
        .expect("a 401 carries WWW-Authenticate");
    let challenge = parse_challenge(value).expect("our challenge parses");
    (challenge.realm, challenge.nonce)
}

#[test]
fn xlite_register_and_invite_are_challenged_and_asterisk_credentials_are_challenged_again() {
    let Some(recording) = xlite_recording() else {
        return;
    };
    let replay = Replay::new(recording, &[addr(ASTERISK)]).name(addr(XLITE), "xlite");
    let mut pbx = pbx("dialer.test");
    let outcome = replay.run(&mut pbx, vec![]);

    // RFC 3261 §22.1: the realm alone is the protection domain, so X-Lite's credentials for
    // realm "192.168.10.2" are no credentials for ours; §22.2 and §10.3 step 3: challenge
    // with 401 again (not 403: nothing says they name the wrong user).
    let expected = vec![
        Step::new("xlite", "us", "REGISTER", "1 REGISTER", false).targeting("us"),
        Step::new("us", "xlite", "401", "1 REGISTER", true),
        Step::new("xlite", "us", "REGISTER", "2 REGISTER", false).targeting("us"),
        Step::new("us", "xlite", "401", "2 REGISTER", true),
        Step::new("xlite", "us", "INVITE", "1 INVITE", false)
            .targeting("us")
            .in_call(2),
        Step::new("us", "xlite", "100", "1 INVITE", false).in_call(2),
        Step::new("us", "xlite", "401", "1 INVITE", true).in_call(2),
        // The ACK for the 401 (RFC 3261 §17.1.1.3) is absorbed by the server transaction.
        Step::new("xlite", "us", "ACK", "1 ACK", true)
            .targeting("us")
            .in_call(2),
        Step::new("xlite", "us", "INVITE", "2 INVITE", false)
            .targeting("us")
            .in_call(2),
        Step::new("us", "xlite", "100", "2 INVITE", false).in_call(2),
        Step::new("us", "xlite", "401", "2 INVITE", true).in_call(2),
    ];
    let live = outcome.live_ladder(Some("xlite"));
    assert_eq!(live, expected);
    // Where the recording differs: Asterisk accepted both retries.
    let recorded: Vec<String> = outcome
        .recorded_ladder(Some("xlite"))
        .iter()
        .filter(|s| s.from == "us")
        .map(|s| format!("{} {}", s.label, s.cseq))
        .collect();
    assert_eq!(
        recorded,
        ["401 1 REGISTER", "200 2 REGISTER", "401 1 INVITE"]
    );

    // Each challenge is fresh and in our realm.
    let challenges: Vec<(String, String)> = outcome
        .sent
        .iter()
        .filter(|s| !s.retransmission)
        .filter(|s| s.message.as_response().is_some_and(|r| r.status == 401))
        .map(|s| nonce_of(&s.message))
        .collect();
    assert_eq!(challenges.len(), 4);
    assert!(challenges.iter().all(|(realm, _)| realm == "dialer.test"));
    let nonces: std::collections::BTreeSet<_> = challenges.iter().map(|(_, n)| n).collect();
    assert_eq!(
        nonces.len(),
        4,
        "every challenge has its own nonce: {challenges:?}"
    );
    // The ACK stopped the first 401's retransmissions (Timer G, RFC 3261 §17.2.1); the
    // second 401 is not acknowledged in the cut recording and is resent.
    let resent: Vec<String> = outcome
        .sent
        .iter()
        .filter(|s| s.retransmission)
        .map(|s| format!("{}", s.message.cseq().map(|c| c.seq).unwrap_or(0)))
        .collect();
    assert!(resent.iter().all(|c| c == "2"), "{resent:?}");
    assert!(!resent.is_empty(), "unacknowledged 401 is retransmitted");
    // Nothing was registered and the UAS refused the foreign-realm credentials without
    // verifying them as ours.
    assert!(pbx
        .registrar
        .bindings(sip_core::time::Time::ZERO)
        .is_empty());
    assert!(pbx.registrar_events.is_empty());
    assert!(pbx.verifications.is_empty(), "{:?}", pbx.verifications);
}

#[test]
fn xlite_credentials_in_our_realm_with_asterisks_nonce_are_challenged_again() {
    let Some(recording) = xlite_recording() else {
        return;
    };
    // The same realm as Asterisk's: now the credentials are for us, but answer a nonce we
    // never issued (RFC 7616 §3.3 / RFC 2617 §3.2.2: such a response cannot be right).
    let replay = Replay::new(recording, &[addr(ASTERISK)]).name(addr(XLITE), "xlite");
    let mut pbx = pbx("192.168.10.2");
    let outcome = replay.run(&mut pbx, vec![]);
    let ours: Vec<String> = outcome
        .live_ladder(Some("xlite"))
        .iter()
        .filter(|s| s.from == "us")
        .map(|s| format!("{} {}", s.label, s.cseq))
        .collect();
    assert_eq!(
        ours,
        [
            "401 1 REGISTER",
            "401 2 REGISTER",
            "100 1 INVITE",
            "401 1 INVITE",
            "100 2 INVITE",
            "401 2 INVITE"
        ]
    );
    assert!(matches!(
        pbx.verifications.as_slice(),
        [Verification::Rejected(_)]
    ));
    assert!(pbx.registrar_events.is_empty());
}

// --- (c) SIP_DTMF2.cap: PT-96 telephone-event through the relay to a PT-101 leg ------------

/// The Grandstream side whose stream carries telephone-event on PT 96.
const DTMF_SENDER: &str = "192.168.105.172:4376";
const DTMF_RECEIVER: &str = "192.168.105.110:4376";

/// The sender's offer as the relay's customer leg sees it. The capture holds only the SDP of
/// 192.168.105.110 (the sender's own went to the proxy before the capture point); the stream
/// uses its numbers (PCMA 8, telephone-event 96), so that SDP with the sender's address in
/// `c=` describes what arrives.
fn sender_offer(recording: &Recording) -> SessionDescription {
    let body = recording
        .messages
        .iter()
        .map(|m| String::from_utf8_lossy(m.message.body()).into_owned())
        .find(|b| b.contains("m=audio 4376 ") && b.contains("telephone-event"))
        .expect("the capture holds the session's SDP");
    SessionDescription::parse(&body.replace("IN IP4 192.168.105.110", "IN IP4 192.168.105.172"))
        .expect("recorded SDP parses")
}

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    // The origin of virtual time: only differences from it matter.
    Instant::now()
}

#[test]
fn sip_dtmf2_pt96_events_leave_the_relay_as_pt101_with_digits_durations_and_timestamps_kept() {
    let Some(path) = corpus("SIP_DTMF2.cap") else {
        return;
    };
    let recording = Recording::load(&path).expect("capture loads");
    let offer = sender_offer(&recording);
    let local = |port| LocalEndpoint {
        address: "203.0.113.1".parse().expect("literal address"),
        rtp_port: port,
        session_id: 1,
        session_version: 1,
    };
    let config = MediaConfig {
        codecs: vec![Codec::Pcma],
        ..MediaConfig::default()
    };
    let (_, customer) = answer_offer(&offer, &config, &local(30000)).expect("PCMA offer");
    let customer_event = customer
        .telephone_event
        .expect("telephone-event negotiated");
    assert_eq!(customer_event.receive_payload_type, PayloadType(96));
    let agent_offer = build_offer(&config, &local(30002));
    let agent_answer = SessionDescription::parse(
        "v=0\r\no=agent 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n\
         m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
    )
    .expect("agent answer parses");
    let agent = process_answer(&agent_offer, &agent_answer, &config).expect("agent answer");
    assert_eq!(
        agent.telephone_event.map(|t| t.send_payload_type),
        Some(PayloadType(101))
    );

    let t0 = epoch();
    let wallclock = NtpTimestamp::from_unix(Duration::from_secs(1_700_000_000));
    let mut relay = Relay::new(
        RelayConfig::default(),
        customer,
        agent,
        t0,
        wallclock,
        &mut ChaCha8Rng::seed_from_u64(9),
    )
    .expect("relay builds");

    let capture = capture::read_file(&path).expect("capture loads");
    let packets = rtp_packets(&capture, addr(DTMF_SENDER), addr(DTMF_RECEIVER));
    assert_eq!(
        packets.len(),
        666,
        "tshark counts 666 packets in this stream"
    );
    // (input header, output header, payload) of every forwarded packet.
    let mut forwarded = Vec::new();
    let mut buf = [0u8; 1500];
    for p in &packets {
        buf[..p.bytes.len()].copy_from_slice(&p.bytes);
        let input = RtpHeader::parse(&p.bytes).expect("recorded RTP parses");
        match relay.forward(t0 + p.at, Side::Customer, p.src, &mut buf, p.bytes.len()) {
            Forward::Send { to, len } => {
                assert_eq!(to, addr("192.0.2.50:5000"));
                let out = RtpHeader::parse(&buf[..len]).expect("relay output parses");
                forwarded.push((input, out, buf[out.payload_offset..len].to_vec()));
            }
            Forward::Dropped(why) => panic!("packet {} dropped: {why:?}", p.packet),
        }
    }
    assert_eq!(forwarded.len(), packets.len());
    let events: Vec<_> = forwarded
        .iter()
        .filter(|(i, _, _)| i.payload_type == PayloadType(96))
        .collect();
    assert!(events.len() >= 35, "{} event packets", events.len());
    for (input, output, payload) in &events {
        assert_eq!(
            output.payload_type,
            PayloadType(101),
            "seq {}",
            input.sequence
        );
        // RFC 4733 §2.3: event, end bit, volume and duration pass unchanged.
        let original = &packets
            .iter()
            .find(|p| RtpHeader::parse(&p.bytes).is_ok_and(|h| h.sequence == input.sequence))
            .expect("the input packet")
            .bytes[input.payload_offset..];
        assert_eq!(payload.as_slice(), original, "seq {}", input.sequence);
    }
    let digits: String = events
        .iter()
        .filter(|(_, _, p)| p[1] & 0x80 != 0)
        .map(|(_, _, p)| char::from_digit(u32::from(p[0]), 10).unwrap_or('?'))
        .collect();
    assert!(digits.starts_with("6789123"), "digits {digits}");
    // Audio and events share one timeline: the output's sequence numbers and timestamps keep
    // the input's spacing exactly (one offset for the whole stream).
    let (first_in, first_out, _) = &forwarded[0];
    for (input, output, _) in &forwarded {
        assert_eq!(
            output.sequence.wrapping_sub(first_out.sequence),
            input.sequence.wrapping_sub(first_in.sequence)
        );
        assert_eq!(
            output.timestamp.wrapping_sub(first_out.timestamp),
            input.timestamp.wrapping_sub(first_in.timestamp)
        );
        assert_eq!(output.ssrc, first_out.ssrc);
    }
}
