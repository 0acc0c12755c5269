//! Carrier-grade call behaviour of the real `dialer run` against real peers: SIPp as the
//! carrier (scenarios `tests/interop/sipp/carrier_<case>.xml`), baresip as agent 1000, one
//! tshark tap on `lo` seeing every party's SIP and the RTP towards the carrier and the agent
//! ([`Bridged`]).
//!
//! Each test names the behaviour it proves: session timers with either side refreshing
//! (RFC 4028), reliable provisionals (RFC 3262), hold and unhold from either side
//! (RFC 3264 §8.4), and forked early dialogs (RFC 3261 §13.2.2.4). Every one also checks that
//! audio flows both ways after the mid-call signalling: the agent hears the carrier's 440 Hz
//! and the carrier gets the agent's 1000 Hz, on the capture after the event that matters.

use std::time::Duration;

use scenario_tests::interop::audio;
use scenario_tests::interop::call::{
    in_dialog, routed_to_contact_via_record_route, text, CallTest, TONES,
};
use scenario_tests::interop::carrier::{carrier_config, trace_interval};
use scenario_tests::interop::ports::{free_udp_range, LOOPBACK};
use scenario_tests::interop::robust::{find, tone_between, Bridged, Ended, Hangup};
use scenario_tests::interop::sipp::SippOutcome;
use scenario_tests::interop::trace::{Direction, TracedMessage};

const TOOLS: &[&str] = &["sipp", "baresip", "sox", "tshark"];

/// The dialer's files and ports for test `name`.
fn setup(name: &str) -> CallTest {
    CallTest::new(name, TOOLS).expect("setup")
}

/// A bridged call with the carrier scenario `scenario` (keys added).
fn bridged<'t>(test: &'t CallTest, scenario: &str, keys: &[(&str, String)]) -> Bridged<'t> {
    bridged_capturing(test, scenario, keys, &[])
}

/// [`bridged`] with further BPF terms for the tap.
fn bridged_capturing<'t>(
    test: &'t CallTest,
    scenario: &str,
    keys: &[(&str, String)],
    also_capture: &[String],
) -> Bridged<'t> {
    let media_port = free_udp_range(LOOPBACK, 4).expect("carrier media ports");
    let carrier =
        carrier_config(&test.dir, scenario, LOOPBACK, media_port, 2, keys).expect("carrier");
    Bridged::start(test, carrier, None, also_capture)
        .expect("the call is placed and the agent answers")
}

/// A bridged call whose carrier scenario forks: fork A answers from `fork_ip` with media on
/// `fork_media` (both captured too), fork B from SIPp itself; returns once the agent hears the
/// carrier.
fn forked_call<'t>(
    test: &'t CallTest,
    scenario: &str,
    fork_ip: std::net::IpAddr,
    fork_media: u16,
) -> Bridged<'t> {
    let call = bridged_capturing(
        test,
        scenario,
        &[
            ("fork_ip", fork_ip.to_string()),
            ("fork_media_port", fork_media.to_string()),
        ],
        &[format!("host {fork_ip}")],
    );
    call.wait_heard(3.0, Duration::from_secs(15))
        .expect("audio flows to the agent");
    call
}

/// The requests with `method` the carrier received inside the call (CSeq method `method`).
fn received_in_dialog<'a>(outcome: &'a SippOutcome, method: &'a str) -> Vec<&'a TracedMessage> {
    outcome
        .received(method)
        .filter(|m| m.cseq_method() == Some(method))
        .collect()
}

/// The responses the carrier received with `status` to its own requests of `method`.
fn responses_to<'a>(outcome: &'a SippOutcome, status: u16, method: &str) -> Vec<&'a TracedMessage> {
    outcome
        .messages
        .iter()
        .filter(|m| {
            m.direction == Direction::Received
                && m.status() == Some(status)
                && m.cseq_method() == Some(method)
        })
        .collect()
}

/// The agent heard the carrier's 440 Hz in the last 1.5 s of its recording (after every
/// mid-call change of the scenarios here).
fn assert_agent_hears_carrier_at_the_end(ended: &Ended) {
    let heard = &ended.heard;
    let end = heard.duration_s();
    assert!(
        audio::tone_present_in(heard, 440.0, end - 1.7, end - 0.2),
        "the agent does not hear the carrier at the end of the call; timeline {:?}",
        audio::tone_timeline(heard, &TONES)
    );
}

#[test]
fn carrier_refreshing_the_session_by_reinvite_and_update_keeps_the_call_past_the_first_interval() {
    let test = setup("robust-timer-uas");
    let call = bridged(&test, "carrier_timer_uas.xml", &[]);
    let carrier = call.carrier.addr();
    let media_port = call.media_port;
    let ended = call.finish(Hangup::Carrier).expect("the call ends");
    let outcome = &ended.carrier;

    // RFC 4028 §7.1: the dialer's INVITE offers timers.
    let invite = outcome.received("INVITE").next().expect("INVITE");
    assert!(
        invite
            .header("Supported")
            .is_some_and(|s| s.contains("timer")),
        "INVITE without Supported: timer: {:?}",
        invite.headers
    );
    // RFC 4028 §9: a refresh below our Min-SE gets 422 naming it; the retry with 90 s and
    // the UPDATE get 2xx that confirm the carrier (the requests' UAC) as the refresher.
    let refused = responses_to(outcome, 422, "INVITE");
    assert_eq!(refused.len(), 1, "{:?}", outcome.ladder());
    assert_eq!(
        refused[0].header("Min-SE").map(str::trim),
        Some("90"),
        "422 without our Min-SE: {:?}",
        refused[0].headers
    );
    for method in ["INVITE", "UPDATE"] {
        let ok = responses_to(outcome, 200, method);
        let ok = ok
            .last()
            .unwrap_or_else(|| panic!("no 200 to the {method} refresh"));
        let se = ok.header("Session-Expires").unwrap_or_default();
        assert!(
            se.starts_with("90") && se.contains("refresher=uac"),
            "200 {method}: Session-Expires {se:?}, expected 90;refresher=uac"
        );
        assert!(
            ok.header("Require").is_some_and(|r| r.contains("timer")),
            "RFC 4028 §9: refresher=uac in a 2xx comes with Require: timer: {:?}",
            ok.headers
        );
    }
    // The re-INVITE's 2xx answers its offer.
    let reinvite_ok = responses_to(outcome, 200, "INVITE");
    assert!(
        reinvite_ok
            .last()
            .is_some_and(|m| m.body.contains("m=audio") && m.body.contains("a=sendrecv")),
        "the refresh re-INVITE's 200 carries an SDP answer: {reinvite_ok:?}"
    );

    // The call outlived the 200's 20 s interval, which alone would have ended it 13.3 s
    // after the answer: the carrier's BYE ended it, not the dialer's timer.
    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);
    assert_eq!(
        text(&ended.cdr, "hung_up_by"),
        "customer",
        "CDR: {}",
        ended.cdr
    );
    let ack = outcome.received("ACK").next().expect("ACK for the 200");
    let bye_ok = responses_to(outcome, 200, "BYE");
    let lasted = bye_ok
        .first()
        .and_then(|ok| trace_interval(ack, ok))
        .expect("the carrier's BYE was answered");
    assert!(
        lasted > 14.0,
        "the call lasted {lasted:.1} s after the answer"
    );

    // Audio after the refreshes: the agent's 1000 Hz reaches the carrier after the UPDATE's
    // 200, and the agent hears the carrier at the end.
    let sip = ended.carrier_sip(carrier).expect("SIP on the capture");
    let update_ok = find(&sip, "200 UPDATE", None).expect("200 UPDATE captured");
    let bye = find(&sip, "BYE", None).expect("BYE captured");
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let (present, timeline) = tone_between(&rtp, update_ok.time + 0.5, bye.time, 1000.0);
    assert!(
        present,
        "no agent audio at the carrier after the refreshes: {timeline:?}"
    );
    assert_agent_hears_carrier_at_the_end(&ended);
}

#[test]
fn dialer_refreshes_the_session_at_half_the_interval_through_the_record_route() {
    let test = setup("robust-timer-uac");
    let call = bridged(&test, "carrier_timer_uac.xml", &[]);
    let carrier = call.carrier.addr();
    let media_port = call.media_port;
    let ended = call.finish(Hangup::Carrier).expect("the call ends");
    let outcome = &ended.carrier;

    let invites: Vec<_> = outcome.received("INVITE").collect();
    assert_eq!(
        invites.len(),
        2,
        "INVITE and one refresh: {:?}",
        outcome.ladder()
    );
    let refresh = invites[1];
    // RFC 4028 §7.4 / §10: the refresh is a re-INVITE (the carrier's Allow has no UPDATE)
    // inside the dialog, keeping the negotiated interval with us as refresher.
    routed_to_contact_via_record_route(refresh, carrier).unwrap_or_else(|e| panic!("{e}"));
    let se = refresh.header("Session-Expires").unwrap_or_default();
    assert!(
        se.starts_with("16") && se.contains("refresher=uac"),
        "refresh Session-Expires {se:?}, expected 16;refresher=uac"
    );
    assert!(
        refresh.body.contains("m=audio"),
        "the refresh re-INVITE offers the session: {:?}",
        refresh.body
    );
    let first_ack = outcome.received("ACK").next().expect("ACK for the 200");
    let due = trace_interval(first_ack, refresh).expect("trace times");
    assert!(
        (6.5..=10.0).contains(&due),
        "refresh {due:.2} s after the answer, expected about 8 s (half of 16)"
    );
    // RFC 3261 §13.2.2.4: the refresh's 2xx is ACKed the same way.
    let ack = in_dialog(outcome, "ACK").expect("ACK for the refresh's 200");
    routed_to_contact_via_record_route(ack, carrier).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ack.header("CSeq").and_then(|c| c.split_whitespace().next()),
        refresh
            .header("CSeq")
            .and_then(|c| c.split_whitespace().next()),
        "the ACK carries the refresh's CSeq number"
    );

    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);
    let sip = ended.carrier_sip(carrier).expect("SIP on the capture");
    let refresh_ok = sip
        .iter()
        .filter(|m| m.label() == "200 INVITE" && m.message.direction == Direction::Sent)
        .nth(1)
        .expect("200 to the refresh captured");
    let bye = find(&sip, "BYE", None).expect("BYE captured");
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let (present, timeline) = tone_between(&rtp, refresh_ok.time + 0.3, bye.time, 1000.0);
    assert!(
        present,
        "no agent audio at the carrier after the refresh: {timeline:?}"
    );
    assert_agent_hears_carrier_at_the_end(&ended);
}

#[test]
fn reliable_183_and_180_are_pracked_in_their_early_dialog_and_the_183_answer_carries_the_media() {
    let test = setup("robust-100rel");
    let call = bridged(&test, "carrier_100rel.xml", &[]);
    let carrier = call.carrier.addr();
    let media_port = call.media_port;
    call.wait_heard(3.0, Duration::from_secs(15))
        .expect("audio flows to the agent");
    let ended = call.finish(Hangup::Agent).expect("the call ends");
    let outcome = &ended.carrier;

    let invites: Vec<_> = outcome.received("INVITE").collect();
    let invite = invites.last().expect("the authenticated INVITE");
    assert!(
        invite
            .header("Supported")
            .is_some_and(|s| s.contains("100rel")),
        "RFC 3262 §3: the INVITE says Supported: 100rel: {:?}",
        invite.headers
    );
    let invite_seq = invite
        .header("CSeq")
        .and_then(|c| c.split_whitespace().next())
        .expect("INVITE CSeq")
        .to_owned();
    // RFC 3262 §7.2: one PRACK per reliable provisional, RAck = RSeq, CSeq number and
    // method of the INVITE; RFC 3262 §7.1: inside the early dialog (the 1xx's tag, its
    // Contact through its Record-Route).
    let pracks = received_in_dialog(outcome, "PRACK");
    assert_eq!(pracks.len(), 2, "two PRACKs: {:?}", outcome.ladder());
    let tag = outcome
        .with_status(183)
        .next()
        .and_then(|m| m.header("To"))
        .and_then(scenario_tests::interop::wire::tag_of)
        .expect("183 To tag");
    let mut last_seq = 0u32;
    for (rseq, prack) in (1u32..).zip(&pracks) {
        let rack = prack.header("RAck").unwrap_or_default();
        let words: Vec<&str> = rack.split_whitespace().collect();
        assert_eq!(
            words,
            [rseq.to_string().as_str(), invite_seq.as_str(), "INVITE"],
            "PRACK {rseq}: RAck {rack:?}"
        );
        routed_to_contact_via_record_route(prack, carrier).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            prack
                .header("To")
                .and_then(scenario_tests::interop::wire::tag_of),
            Some(tag.clone()),
            "PRACK {rseq} in the 183's early dialog"
        );
        let seq: u32 = prack
            .header("CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("PRACK CSeq");
        assert!(
            seq > last_seq,
            "PRACK CSeq numbers rise: {seq} after {last_seq}"
        );
        last_seq = seq;
    }
    let ack = in_dialog(outcome, "ACK").expect("ACK for the 200");
    routed_to_contact_via_record_route(ack, carrier).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ack.header("CSeq").and_then(|c| c.split_whitespace().next()),
        Some(invite_seq.as_str()),
        "the ACK has the INVITE's CSeq number, not a PRACK's"
    );
    let bye = in_dialog(outcome, "BYE").expect("BYE");
    routed_to_contact_via_record_route(bye, carrier).unwrap_or_else(|e| panic!("{e}"));

    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);
    assert_eq!(
        text(&ended.cdr, "customer_codec"),
        "PCMA",
        "CDR: {}",
        ended.cdr
    );
    // The 200 had no SDP: the media follows the 183's answer, both ways.
    let sip = ended.carrier_sip(carrier).expect("SIP on the capture");
    let answered = find(&sip, "ACK", None).expect("ACK captured");
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let (present, timeline) = tone_between(&rtp, answered.time, f64::MAX, 1000.0);
    assert!(present, "no agent audio at the carrier: {timeline:?}");
    assert_agent_hears_carrier_at_the_end(&ended);
}

/// The SDP direction attribute of a body (`sendrecv` when none is written, RFC 4566 §6).
fn direction(body: &str) -> &str {
    ["sendonly", "recvonly", "inactive", "sendrecv"]
        .into_iter()
        .find(|d| body.lines().any(|l| l.trim() == format!("a={d}")))
        .unwrap_or("sendrecv")
}

#[test]
fn carrier_hold_by_sendonly_and_by_zero_address_is_answered_recvonly_and_unhold_restores_audio() {
    let test = setup("robust-hold-carrier");
    let call = bridged(&test, "carrier_hold.xml", &[]);
    let carrier = call.carrier.addr();
    let media_port = call.media_port;
    let ended = call.finish(Hangup::Carrier).expect("the call ends");
    let outcome = &ended.carrier;

    // RFC 3264 §6.1 / §8.4: sendonly and c=0.0.0.0 are answered recvonly, sendrecv sendrecv.
    let answers = responses_to(outcome, 200, "INVITE");
    let expected = ["recvonly", "sendrecv", "recvonly", "sendrecv"];
    assert_eq!(answers.len(), expected.len(), "{:?}", outcome.ladder());
    for (n, (answer, want)) in answers.iter().zip(expected).enumerate() {
        assert_eq!(
            direction(&answer.body),
            want,
            "answer to re-INVITE {}: {:?}",
            n + 1,
            answer.body
        );
        assert!(
            !answer.body.contains("0.0.0.0"),
            "our answer keeps our own address: {:?}",
            answer.body
        );
    }
    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);

    // On the wire: when each answer reached the carrier, and what RTP followed.
    let sip = ended.carrier_sip(carrier).expect("SIP on the capture");
    // The dialer's 200s to the carrier's re-INVITEs (CSeq 1-4 of the carrier's own
    // numbering; the 200 to the dialer's INVITE goes the other way).
    let from_dialer: Vec<_> = sip
        .iter()
        .filter(|m| m.message.direction == Direction::Received)
        .cloned()
        .collect();
    let answered: Vec<f64> = (1..=4)
        .map(|cseq| {
            find(&from_dialer, "200 INVITE", Some(cseq))
                .unwrap_or_else(|| panic!("200 to re-INVITE {cseq} captured"))
                .time
        })
        .collect();
    let bye = find(&sip, "BYE", None).expect("BYE captured").time;
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    for (hold, unhold) in [(answered[0], answered[1]), (answered[2], answered[3])] {
        // A recvonly answerer sends no RTP (RFC 3264 §6.1); the relay takes the new
        // direction a moment after the answer went out (0.5 s here, against a hold of 2.5 s
        // that would otherwise carry over 100 packets).
        let during = scenario_tests::interop::wire::rtp_between(&rtp, hold + 0.5, unhold);
        assert!(
            during.len() <= 5,
            "{} RTP packets reached the carrier while it held the call ({hold:.2}-{unhold:.2} s)",
            during.len()
        );
    }
    for (from, to) in [(answered[1], answered[2]), (answered[3], bye)] {
        let (present, timeline) = tone_between(&rtp, from + 0.3, to, 1000.0);
        assert!(
            present,
            "no agent audio at the carrier after the unhold at {from:.2} s: {timeline:?}"
        );
    }
    assert_agent_hears_carrier_at_the_end(&ended);

    // Each hold and unhold is passed on to the agent (RFC 3264 §8.4): the dialer offers it
    // what the carrier still sends, sendonly while the carrier holds, sendrecv after.
    let agent_sip =
        scenario_tests::interop::wire::sip_messages(&ended.pcap, ended.agent_sip.port())
            .expect("agent SIP on the capture");
    let agent_reinvites: Vec<&str> = agent_sip
        .iter()
        .filter(|m| m.label() == "INVITE" && m.message.direction == Direction::Received)
        .skip(1)
        .map(|m| direction(&m.message.body))
        .collect();
    assert_eq!(
        agent_reinvites,
        ["sendonly", "sendrecv", "sendonly", "sendrecv"],
        "re-INVITEs to the agent, by offered direction"
    );
}

#[test]
fn forked_183s_keep_two_early_dialogs_and_the_200_picks_its_own_dialog_route_and_media() {
    let fork_ip = scenario_tests::interop::ports::loopback(4);
    let fork_media = free_udp_range(fork_ip, 2).expect("fork A media port");
    let test = setup("robust-forked");
    let call = forked_call(&test, "carrier_forked.xml", fork_ip, fork_media);
    let carrier = call.carrier.addr();
    let media_port = call.media_port;
    // A datagram of the test's own to fork A's media port shows the capture sees that host.
    let probe = std::net::UdpSocket::bind((LOOPBACK, 0)).expect("probe socket");
    probe
        .send_to(b"probe", (fork_ip, fork_media))
        .expect("probe sent");
    let probe = probe.local_addr().expect("probe address");
    let ended = call.finish(Hangup::Agent).expect("the call ends");
    let outcome = &ended.carrier;

    let tag_of = |m: &TracedMessage| {
        m.header("To")
            .and_then(scenario_tests::interop::wire::tag_of)
            .unwrap_or_default()
    };
    let forks: Vec<String> = outcome.with_status(183).map(tag_of).collect();
    assert_eq!(forks.len(), 2, "two 183s: {:?}", outcome.ladder());
    assert_ne!(forks[0], forks[1], "two early dialogs");
    let answer_tag = outcome
        .with_status(200)
        .find(|m| m.cseq_method() == Some("INVITE"))
        .map(tag_of)
        .expect("the 200's tag");
    assert_eq!(answer_tag, forks[1], "the scenario answers from fork B");
    // RFC 3261 §13.2.2.4 / §12.2.1.1: ACK and BYE belong to the 200's dialog (its tag) and
    // follow its route set to its Contact; sent into fork A they would never reach SIPp.
    for method in ["ACK", "BYE"] {
        let request = in_dialog(outcome, method)
            .unwrap_or_else(|| panic!("no {method} at the carrier: {:?}", outcome.ladder()));
        assert_eq!(tag_of(request), answer_tag, "{method} To tag");
        routed_to_contact_via_record_route(request, carrier).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);

    // Nothing went to fork A (its route, Contact or media) once the 200 had chosen fork B:
    // the dialer sends no request in an early dialog the 2xx did not confirm.
    let sip = ended.carrier_sip(carrier).expect("SIP on the capture");
    let answered = sip
        .iter()
        .find(|m| m.label() == "200 INVITE" && m.message.direction == Direction::Sent)
        .expect("200 captured")
        .time;
    let (probes, to_fork_a): (Vec<_>, Vec<_>) =
        scenario_tests::interop::wire::udp_to_host(&ended.pcap, fork_ip)
            .expect("capture read")
            .into_iter()
            .filter(|(t, _, _)| *t >= answered)
            .partition(|(_, src, _)| *src == probe);
    assert_eq!(probes.len(), 1, "the capture sees datagrams to {fork_ip}");
    assert!(
        to_fork_a.is_empty(),
        "datagrams to fork A after the 200 chose fork B: {to_fork_a:?}"
    );
    // The media is the 200's: the agent's 1000 Hz reaches fork B's port.
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let (present, timeline) = tone_between(&rtp, answered, f64::MAX, 1000.0);
    assert!(present, "no agent audio at fork B's media: {timeline:?}");
    assert_agent_hears_carrier_at_the_end(&ended);
}

/// RFC 3264 §6.1: the direction an answer gives to an offered direction.
fn answer_direction(offered: &str) -> &'static str {
    match offered {
        "sendonly" => "recvonly",
        "recvonly" => "sendonly",
        "inactive" => "inactive",
        _ => "sendrecv",
    }
}

#[test]
fn agent_hold_and_resume_from_baresip_are_answered_by_rfc_3264_and_audio_returns_after_resume() {
    let test = setup("robust-hold-agent");
    let call = bridged(&test, "carrier_reinvites.xml", &[]);
    let carrier = call.carrier.addr();
    let media_port = call.media_port;
    let agent_sip = call.agent_sip;
    let agent_rtp = call.agent_rtp;
    call.wait_heard(2.0, Duration::from_secs(15))
        .expect("audio flows to the agent");
    // `dialer run --ladder` prints each 200 it sends to the agent's re-INVITEs.
    let answered = regex::Regex::new(&format!(
        r"->\s+{}\s+200 OK\s+\(\d+ INVITE\)",
        regex::escape(&agent_sip.to_string())
    ))
    .expect("valid regex");
    // baresip 1.0's menu commands `hold` and `resume` (over ctrl_tcp) re-INVITE the dialer.
    call.agent.command("hold").expect("baresip holds the call");
    call.run
        .wait_for_lines(&answered, 1, Duration::from_secs(10))
        .expect("the dialer answers the hold");
    // baresip stops playing (and recording) while it holds: the carrier's stream in the
    // capture times the hold instead.
    call.tap
        .wait_capture_time(2.0, Duration::from_secs(10))
        .expect("the call stays up on hold");
    call.agent
        .command("resume")
        .expect("baresip resumes the call");
    call.run
        .wait_for_lines(&answered, 2, Duration::from_secs(10))
        .expect("the dialer answers the resume");
    // baresip 1.0's recorder does not pick up again after a resume, so what the agent gets
    // is read from the capture.
    call.tap
        .wait_capture_time(2.5, Duration::from_secs(10))
        .expect("the call goes on after the resume");
    let ended = call.finish(Hangup::Agent).expect("the call ends");

    let sip = scenario_tests::interop::wire::sip_messages(&ended.pcap, agent_sip.port())
        .expect("agent SIP on the capture");
    let reinvites: Vec<_> = sip
        .iter()
        .filter(|m| m.label() == "INVITE" && m.src == agent_sip)
        .collect();
    assert_eq!(
        reinvites.len(),
        2,
        "baresip sent hold and resume: {:?}",
        sip.iter().map(|m| m.label()).collect::<Vec<_>>()
    );
    let mut answer_times = Vec::new();
    for (reinvite, expected_offer) in reinvites.iter().zip(["hold", "resume"]) {
        let cseq = reinvite.message.header("CSeq").unwrap_or_default();
        let answer = sip
            .iter()
            .find(|m| {
                m.label() == "200 INVITE"
                    && m.dst == agent_sip
                    && m.message.header("CSeq") == Some(cseq)
            })
            .unwrap_or_else(|| panic!("no 200 to the agent's {expected_offer} ({cseq})"));
        let offered = direction(&reinvite.message.body);
        let held = expected_offer == "hold";
        assert_eq!(
            held,
            offered == "sendonly" || offered == "inactive",
            "baresip's {expected_offer} offered {offered}"
        );
        assert_eq!(
            direction(&answer.message.body),
            answer_direction(offered),
            "RFC 3264 §6.1: the answer to {offered}: {:?}",
            answer.message.body
        );
        answer_times.push(answer.time);
    }
    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);

    // The agent's RTP port: the m= line of its answer to the dialer's INVITE.
    let agent_media: u16 = sip
        .iter()
        .find(|m| m.label() == "200 INVITE" && m.src == agent_sip)
        .and_then(|m| {
            m.message
                .body
                .lines()
                .find_map(|l| l.trim().strip_prefix("m=audio "))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|p| p.parse().ok())
        })
        .expect("the agent's answer names its RTP port");
    assert!(
        (agent_rtp..agent_rtp + 20).contains(&agent_media),
        "agent RTP port {agent_media} outside its range"
    );
    let to_agent = ended.rtp_to(agent_media).expect("agent RTP");
    let during = scenario_tests::interop::wire::rtp_between(
        &to_agent,
        answer_times[0] + 0.5,
        answer_times[1],
    );
    assert!(
        during.len() <= 5,
        "{} RTP packets reached the agent while it held the call",
        during.len()
    );
    let bye = sip
        .iter()
        .find(|m| m.label() == "BYE" && m.src == agent_sip)
        .expect("the agent's BYE captured")
        .time;
    let (present, timeline) = tone_between(&to_agent, answer_times[1] + 0.3, bye, 440.0);
    assert!(
        present,
        "the carrier's audio does not reach the agent after the resume: {timeline:?}"
    );
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let (present, timeline) = tone_between(&rtp, answer_times[1] + 0.3, bye, 1000.0);
    assert!(
        present,
        "the agent's audio does not reach the carrier after the resume: {timeline:?}"
    );

    // The agent's hold and resume are passed on to the carrier: sendonly (the dialer only
    // sends it what the holding agent plays), then sendrecv.
    let carrier_reinvites: Vec<&str> = ended
        .carrier
        .received("INVITE")
        .skip(1)
        .map(|m| direction(&m.body))
        .collect();
    assert_eq!(
        carrier_reinvites,
        ["sendonly", "sendrecv"],
        "re-INVITEs to the carrier {carrier}, by offered direction"
    );
}

#[test]
fn late_200_from_the_other_fork_is_acked_and_byed_through_its_own_route_and_the_call_stays() {
    // Its own fork host: the other forking test captures everything to 127.0.0.4, and this
    // test's ACK and BYE to fork A would show there when both run at once.
    let fork_ip = scenario_tests::interop::ports::loopback(5);
    let fork_media = free_udp_range(fork_ip, 2).expect("fork A media port");
    let test = setup("robust-forked-late-200");
    let call = forked_call(&test, "carrier_forked_late_200.xml", fork_ip, fork_media);
    let carrier = call.carrier.addr();
    let media_port = call.media_port;
    let ended = call.finish(Hangup::Agent).expect("the call ends");
    let outcome = &ended.carrier;

    let sip = ended.carrier_sip(carrier).expect("SIP on the capture");
    let oks: Vec<_> = sip
        .iter()
        .filter(|m| m.label() == "200 INVITE" && m.message.direction == Direction::Sent)
        .collect();
    let fork_b = oks.first().expect("fork B's 200 captured");
    let late = oks
        .iter()
        .find(|m| m.to_tag() != fork_b.to_tag())
        .expect("fork A's late 200 captured");
    let fork_a_tag = late.to_tag();
    // RFC 3261 §13.2.2.4: the late 2xx is ACKed and its dialog ended with BYE, both in fork
    // A's dialog (its tag) through its route set (its Record-Route, on fork_ip).
    let to_fork_a: Vec<_> = sip
        .iter()
        .filter(|m| m.dst.ip() == fork_ip && m.time >= late.time)
        .collect();
    for method in ["ACK", "BYE"] {
        let request = to_fork_a
            .iter()
            .find(|m| m.label() == method)
            .unwrap_or_else(|| {
                panic!(
                    "no {method} to fork A after its late 200: {:?}",
                    to_fork_a.iter().map(|m| m.label()).collect::<Vec<_>>()
                )
            });
        assert_eq!(request.to_tag(), fork_a_tag, "{method} in fork A's dialog");
        assert!(
            request
                .message
                .request_uri()
                .is_some_and(|u| u.contains(&format!("forka@{fork_ip}:"))),
            "{method} to fork A's Contact: {:?}",
            request.message.start_line
        );
        assert_eq!(
            request.dst,
            std::net::SocketAddr::new(fork_ip, carrier.port()),
            "{method} through fork A's Record-Route"
        );
    }
    // The call stays with fork B: its ACK and BYE in fork B's dialog through its route, and
    // the media never moves to fork A.
    let ack = in_dialog(outcome, "ACK").expect("fork B's ACK");
    let bye = in_dialog(outcome, "BYE").expect("fork B's BYE");
    for request in [ack, bye] {
        assert_eq!(
            request
                .header("To")
                .and_then(scenario_tests::interop::wire::tag_of),
            fork_b.to_tag(),
            "{} in fork B's dialog",
            request.label()
        );
        routed_to_contact_via_record_route(request, carrier).unwrap_or_else(|e| panic!("{e}"));
    }
    let media_to_fork_a: Vec<_> = scenario_tests::interop::wire::udp_to_host(&ended.pcap, fork_ip)
        .expect("capture read")
        .into_iter()
        .filter(|(_, _, dst)| dst.port() == fork_media)
        .collect();
    assert!(
        media_to_fork_a.is_empty(),
        "RTP went to fork A's media: {media_to_fork_a:?}"
    );
    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);
    let fork_b_bye = sip
        .iter()
        .find(|m| m.label() == "BYE" && m.dst == carrier)
        .expect("fork B's BYE captured")
        .time;
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let (present, timeline) = tone_between(&rtp, late.time + 0.2, fork_b_bye, 1000.0);
    assert!(
        present,
        "the agent's audio stops reaching fork B after fork A's late 200: {timeline:?}"
    );
    assert_agent_hears_carrier_at_the_end(&ended);
}

#[test]
fn dialer_refreshes_by_update_when_allowed_and_by_reinvite_at_once_when_the_update_gets_501() {
    let test = setup("robust-timer-update-501");
    let call = bridged(&test, "carrier_timer_update_refused.xml", &[]);
    let carrier = call.carrier.addr();
    let media_port = call.media_port;
    let ended = call.finish(Hangup::Carrier).expect("the call ends");
    let outcome = &ended.carrier;

    // RFC 4028 §7.4 / RFC 3311: the refresh is an UPDATE without a body (the 200 allowed
    // UPDATE) inside the dialog, at half the interval.
    let update = in_dialog(outcome, "UPDATE").expect("UPDATE refresh");
    routed_to_contact_via_record_route(update, carrier).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        update.body.is_empty(),
        "UPDATE refresh with a body: {:?}",
        update.body
    );
    let se = update.header("Session-Expires").unwrap_or_default();
    assert!(
        se.starts_with("16") && se.contains("refresher=uac"),
        "UPDATE Session-Expires {se:?}, expected 16;refresher=uac"
    );
    let first_ack = outcome.received("ACK").next().expect("ACK for the 200");
    let due = trace_interval(first_ack, update).expect("trace times");
    assert!(
        (6.5..=10.0).contains(&due),
        "UPDATE {due:.2} s after the answer, expected about 8 s (half of 16)"
    );
    // After the 501, the same refresh by re-INVITE, at once, in the dialog.
    let invites: Vec<_> = outcome.received("INVITE").collect();
    assert_eq!(
        invites.len(),
        2,
        "INVITE and the re-INVITE refresh: {:?}",
        outcome.ladder()
    );
    let reinvite = invites[1];
    routed_to_contact_via_record_route(reinvite, carrier).unwrap_or_else(|e| panic!("{e}"));
    let refused = outcome
        .with_status(501)
        .next()
        .expect("the 501 in the trace");
    let after = trace_interval(refused, reinvite).expect("trace times");
    assert!(
        after < 1.0,
        "re-INVITE {after:.2} s after the 501, expected at once"
    );
    assert!(
        reinvite.body.contains("m=audio"),
        "the re-INVITE refresh offers the session: {:?}",
        reinvite.body
    );

    assert!(ended.exit.success(), "bridged call exits 0");
    assert_eq!(text(&ended.cdr, "outcome"), "bridged", "CDR: {}", ended.cdr);
    let sip = ended.carrier_sip(carrier).expect("SIP on the capture");
    let refresh_ok = sip
        .iter()
        .filter(|m| m.label() == "200 INVITE" && m.message.direction == Direction::Sent)
        .nth(1)
        .expect("200 to the re-INVITE refresh captured");
    let bye = find(&sip, "BYE", None).expect("BYE captured");
    let rtp = ended.rtp_to(media_port).expect("carrier RTP");
    let (present, timeline) = tone_between(&rtp, refresh_ok.time + 0.3, bye.time, 1000.0);
    assert!(
        present,
        "no agent audio at the carrier after the refresh: {timeline:?}"
    );
    assert_agent_hears_carrier_at_the_end(&ended);
}
