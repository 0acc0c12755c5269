//! Agent sessions in virtual time: one INVITE to the agent at login, customers switched onto
//! that dialog one after another, the agent's hangup key, its BYE ending the shift, and the
//! abandon path while the session agent is busy.

mod scenario_net;

use dialer::b2bua::agents::AgentMode;
use dialer::b2bua::{Action, AgentState, MediaOp, MediaReport, MediaTotals, OriginateError};
use dialer::control::{ApiEvent, CallId, HungUpBy};
use media::relay::Side;
use scenario_net::*;
use sip_core::message::Method;
use std::time::Duration;

const NUMBER: &str = "5551234567";
/// `*` (RFC 4733 §3.2 event 10).
const HANGUP_KEY: u8 = 10;

/// A network whose pool `sales` is in session mode, with agent 1000 registered and logged in
/// (its session INVITE answered); returns the session's call id.
fn logged_in() -> (Net, CallId) {
    let mut pool = sales_pool();
    pool.mode = AgentMode::Session;
    pool.hangup_key = Some(HANGUP_KEY);
    let mut net = Net::with_pool(pool);
    net.register_agent("1000");
    assert_eq!(
        net.agent_state("1000"),
        AgentState::LoggedOut,
        "a session agent is logged in by its session, not by registering"
    );
    let session = net.core.login_agent(net.now, "1000").expect("login");
    net.settle();
    net.agent_answers_as("1000");
    assert_eq!(net.agent_state("1000"), AgentState::Ready);
    (net, session)
}

/// The session's media lets go of the customer call, as the runtime's session task does.
fn detach(net: &mut Net, session: CallId, call: CallId) {
    let asked = net.actions.iter().any(|a| {
        matches!(a, Action::Media { call: s, op: MediaOp::DetachCustomer { call: c } }
            if *s == session && *c == call)
    });
    assert!(asked, "the session's media is asked to let call {call} go");
    net.core.media_event(
        net.now,
        session,
        MediaReport::Detached {
            call,
            totals: MediaTotals {
                packets_to_agent: 100,
                packets_to_customer: 100,
                ..MediaTotals::default()
            },
        },
    );
    net.settle();
}

/// The session's media reports a key the agent pressed.
fn agent_presses(net: &mut Net, session: CallId, event: u8) {
    net.core.media_event(
        net.now,
        session,
        MediaReport::Digit {
            side: Side::Agent,
            event,
            duration: Duration::from_millis(120),
        },
    );
    net.settle();
}

fn linked(net: &Net, call: CallId) -> Option<CallId> {
    net.actions.iter().find_map(|a| match a {
        Action::LinkMedia {
            call: c, session, ..
        } if *c == call => Some(*session),
        _ => None,
    })
}

#[test]
fn a_session_carries_three_customers_with_one_invite_to_the_agent() {
    let (mut net, session) = logged_in();
    assert!(
        net.media_ops().iter().any(|op| matches!(
            op,
            MediaOp::StartIdle {
                side: Side::Agent,
                path: None
            }
        )),
        "the agent hears silence between customers"
    );
    for n in 0..3 {
        net.originate_pool(NUMBER, Some(&format!("lead-{n}")))
            .expect("originate");
        let answered_at = net.now;
        let (invite, call) = net.carrier_answers_next(&format!("c{n}"));
        assert_eq!(
            linked(&net, call),
            Some(session),
            "customer {n} is switched onto the session"
        );
        assert_eq!(net.agent_state("1000"), AgentState::Talking);
        assert!(net.events().iter().any(|e| matches!(e,
            ApiEvent::Bridged { call: c, agent, .. } if *c == call && agent == "1000")));
        net.advance(Duration::from_secs(30));
        net.customer_hangs_up(&invite);
        detach(&mut net, session, call);
        let cdr = net
            .cdrs()
            .into_iter()
            .find(|c| c.id == call)
            .expect("the customer call's CDR");
        assert_eq!(cdr.outcome, "bridged");
        assert_eq!(cdr.agent.as_deref(), Some("1000"));
        assert_eq!(
            cdr.connect_ms,
            Some(0),
            "switched at the answer, in the same instant"
        );
        assert_eq!(cdr.hung_up_by, HungUpBy::Customer);
        assert_eq!(cdr.tag.as_deref(), Some(format!("lead-{n}").as_str()));
        assert_eq!(cdr.packets_to_agent, 100);
        assert_eq!(cdr.bridged, Some(1.7e9 + answered_at.0.as_secs_f64()));
        assert_eq!(
            net.agent_state("1000"),
            AgentState::Ready,
            "no wrap-up in this pool"
        );
    }
    assert_eq!(
        net.invites_to_agent("1000").len(),
        1,
        "one INVITE for the whole shift"
    );
    let to_agent = Net::target_of("1000").destination;
    for method in [Method::Bye, Method::Cancel, Method::Update] {
        assert!(
            net.sent_unique(method.clone())
                .iter()
                .all(|(to, _)| *to != to_agent),
            "no {method} to the agent"
        );
    }
    assert_eq!(
        net.sent_unique(Method::Invite)
            .iter()
            .filter(|(to, _)| *to == to_agent)
            .count(),
        1,
        "no re-INVITE to the agent"
    );
    assert!(
        net.cdrs().iter().all(|c| c.id != session),
        "a session is a shift, not a call: no CDR of its own"
    );
}

#[test]
fn the_hangup_key_ends_the_customer_call_and_keeps_the_session() {
    let (mut net, session) = logged_in();
    net.originate_pool(NUMBER, None).expect("originate");
    let (_, call) = net.carrier_answers_next("c1");
    agent_presses(&mut net, session, HANGUP_KEY);
    let now = net.now;
    assert_eq!(net.carrier.answer_byes(now), 1, "the customer gets BYE");
    net.settle();
    detach(&mut net, session, call);
    let cdr = net.cdr();
    assert_eq!(
        (cdr.outcome.as_str(), cdr.hung_up_by),
        ("bridged", HungUpBy::Agent)
    );
    assert_eq!(
        net.agent_state("1000"),
        AgentState::Ready,
        "the session stays up"
    );
    // Another key is passed on, not taken as a hang-up.
    net.originate_pool(NUMBER, None).expect("originate");
    let (_, second) = net.carrier_answers_next("c2");
    agent_presses(&mut net, session, 5);
    assert!(
        net.cdrs().iter().all(|c| c.id != second),
        "the call goes on"
    );
}

#[test]
fn the_agents_bye_ends_the_shift_and_the_customer_on_it() {
    let (mut net, session) = logged_in();
    net.originate_pool(NUMBER, None).expect("originate");
    let (_, call) = net.carrier_answers_next("c1");
    let ack = net
        .agent
        .received_requests(Method::Ack)
        .into_iter()
        .next()
        .expect("the session's ACK");
    let bye = in_dialog(&ack, Method::Bye, 2, "sip:dialer@192.0.2.10:5060");
    let now = net.now;
    net.agent.send(now, bye);
    net.settle();
    let now = net.now;
    assert_eq!(net.carrier.answer_byes(now), 1, "the customer gets BYE");
    net.settle();
    detach(&mut net, session, call);
    let cdr = net.cdr();
    assert_eq!(
        (cdr.outcome.as_str(), cdr.hung_up_by),
        ("bridged", HungUpBy::Agent)
    );
    assert_eq!(
        net.agent_state("1000"),
        AgentState::LoggedOut,
        "the shift is over"
    );
    assert_eq!(
        net.originate_pool(NUMBER, None),
        Err(OriginateError::PoolEmpty("sales".into())),
        "no session agent left"
    );
}

#[test]
fn a_customer_answered_while_the_session_agent_talks_is_abandoned_after_2_seconds() {
    let (mut net, _session) = logged_in();
    net.originate_pool(NUMBER, None).expect("first");
    net.carrier_answers_next("c1");
    net.originate_pool(NUMBER, None).expect("second");
    let answered = net.now;
    let (_, second) = net.carrier_answers_next("c2");
    assert_eq!(linked(&net, second), None, "the only agent is busy");
    net.advance(Duration::from_millis(1999));
    assert!(
        net.played.iter().all(|p| p.1 != second),
        "not before abandon_after"
    );
    net.advance(Duration::from_millis(1));
    let (at, _, _) = net
        .played
        .iter()
        .find(|p| p.1 == second)
        .cloned()
        .expect("the abandon message plays");
    assert_eq!(at.since(answered), Duration::from_secs(2));
    net.message_done(second);
    let now = net.now;
    net.carrier.answer_byes(now);
    net.settle();
    let cdr = net
        .cdrs()
        .into_iter()
        .find(|c| c.id == second)
        .expect("CDR");
    assert_eq!(cdr.outcome, "abandoned_no_agent");
    assert_eq!(cdr.connect_ms, None);
}

#[test]
fn logging_in_an_agent_of_no_session_pool_or_twice_is_refused() {
    let (mut net, _) = logged_in();
    assert!(
        net.core.login_agent(net.now, "1000").is_err(),
        "logged in already"
    );
    assert!(net.core.login_agent(net.now, "4242").is_err(), "unknown");
    net.core.logout_agent(net.now, "1000").expect("logout");
    net.settle();
    let now = net.now;
    assert_eq!(
        net.agent.answer_byes(now),
        1,
        "logout sends BYE to the agent"
    );
    net.settle();
    assert_eq!(net.agent_state("1000"), AgentState::LoggedOut);
}
