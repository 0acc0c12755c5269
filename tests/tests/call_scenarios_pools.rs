//! Agent pools in virtual time: which agent takes an answered customer, the next agent when
//! one refuses or does not answer, the wait for a ready agent and the abandon path, wrap-up
//! and no-answer pauses, the trunk's `max_cps` and `max_channels` queue, and the caller's
//! tag and agent headers.

mod scenario_net;

use dialer::b2bua::{AgentState, MediaOp, OriginateError, OriginateSpec, Strategy};
use dialer::control::{ApiEvent, CallId, CallState, HungUpBy};
use media::relay::Side;
use scenario_net::*;
use sip_core::endpoint::{make_response, Event};
use sip_core::message::{Method, Request, SipMessage};
use sip_core::time::Time;
use sip_core::transaction::TransactionId;
use std::path::PathBuf;
use std::time::Duration;

const NUMBER: &str = "5551234567";
/// The core's agent ring timeout in [`Net`].
const RING_TIMEOUT: Duration = Duration::from_secs(20);
/// The core's limit on an abandon message that never reports its end.
const ABANDON_MESSAGE_LIMIT: Duration = Duration::from_secs(30);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `since` of an event at virtual time `t` (the core's epoch is 1.7e9).
fn unix(t: Time) -> f64 {
    1.7e9 + t.0.as_secs_f64()
}

/// The pool network with these changes to [`sales_pool`].
fn pool_net(f: impl FnOnce(&mut dialer::b2bua::PoolSettings)) -> Net {
    let mut pool = sales_pool();
    f(&mut pool);
    Net::with_pool(pool)
}

/// A pool call whose customer has answered; returns the carrier's INVITE and the call.
fn answered_pool_call(net: &mut Net, tag: Option<&str>) -> (Request, CallId) {
    net.originate_pool(NUMBER, tag).expect("originate");
    net.carrier_answers_next("c1")
}

/// The customer hangs up a bridged call; the agent answers the dialer's BYE.
fn customer_ends_bridged_call(net: &mut Net, invite: &Request, agent: &str) {
    net.customer_hangs_up(invite);
    let now = net.now;
    assert_eq!(net.agent_peer(agent).answer_byes(now), 1, "BYE to {agent}");
    net.settle();
}

/// The agent got a CANCEL for its ringing INVITE (its endpoint answered it 200): it ends
/// the INVITE with 487.
fn agent_ends_cancelled_invite(net: &mut Net, agent: &str, tx: TransactionId, invite: &Request) {
    let now = net.now;
    let peer = net.agent_peer(agent);
    let pos = peer
        .events
        .iter()
        .position(|e| matches!(e, Event::Cancelled { invite } if *invite == tx))
        .unwrap_or_else(|| panic!("agent {agent} got a CANCEL for its INVITE"));
    peer.events.remove(pos);
    peer.respond(now, tx, make_response(invite, 487, Some("a1")));
    net.settle();
}

fn cancels_to(net: &Net, agent: &str) -> Vec<Time> {
    let to = Net::target_of(agent).destination;
    net.sent_unique_timed(Method::Cancel)
        .into_iter()
        .filter(|(_, t, _)| *t == to)
        .map(|(at, _, _)| at)
        .collect()
}

fn byes_to_carrier(net: &Net) -> Vec<Time> {
    net.sent_unique_timed(Method::Bye)
        .into_iter()
        .filter(|(_, t, _)| *t == addr(CARRIER))
        .map(|(at, _, _)| at)
        .collect()
}

fn bridged_agent(net: &Net, call: CallId) -> Option<String> {
    net.events().into_iter().find_map(|e| match e {
        ApiEvent::Bridged { call: c, agent, .. } if *c == call => Some(agent.clone()),
        _ => None,
    })
}

fn state_of(net: &Net, call: CallId) -> Option<CallState> {
    net.core
        .calls(net.now)
        .into_iter()
        .find(|c| c.id == call)
        .map(|c| c.state)
}

#[test]
fn the_longest_idle_ready_agent_gets_the_answered_customer() {
    let mut net = pool_net(|_| {});
    net.register_agent("1001");
    net.advance(secs(5));
    net.register_agent("1000");
    net.advance(secs(5));
    net.register_agent("1002");
    let call = net.originate_pool(NUMBER, None).expect("originate");

    // The customer rings for a while: no agent is called (nor reserved) before the 200.
    let (tx, invite) = net.carrier_invite();
    net.carrier
        .respond(net.now, tx, make_response(&invite, 180, Some("c1")));
    net.settle();
    net.advance(secs(3));
    for ext in ["1000", "1001", "1002"] {
        assert!(net.invites_to_agent(ext).is_empty(), "{ext} INVITEd early");
        assert_eq!(net.agent_state(ext), AgentState::Ready);
    }

    let answered_at = net.now;
    net.carrier.respond(
        net.now,
        tx,
        carrier_ok(
            &invite,
            "c1",
            Some(answer(
                &invite,
                vec![media::sdp::Codec::Pcma],
                "192.0.2.51",
                30000,
            )),
        ),
    );
    net.settle();

    // 1001 registered first: it has been ready the longest.
    let invites = net.invites_to_agent("1001");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].0, answered_at, "called at the customer's answer");
    assert_eq!(invites[0].1.uri.to_string(), "sip:1001@10.0.0.6:5060;ob");
    assert!(net.invites_to_agent("1000").is_empty());
    assert!(net.invites_to_agent("1002").is_empty());
    assert_eq!(net.agent_state("1001"), AgentState::Reserved);
    assert!(net
        .agent_changes()
        .contains(&("1001".into(), AgentState::Reserved, None, Some(call))));

    net.agent_answers_as("1001");
    assert_eq!(bridged_agent(&net, call).as_deref(), Some("1001"));
    assert_eq!(net.agent_state("1001"), AgentState::Talking);
    assert_eq!(net.agent_state("1000"), AgentState::Ready);
}

#[test]
fn fewest_calls_prefers_the_agent_with_fewer_calls() {
    let mut net = pool_net(|p| p.strategy = Strategy::FewestCalls);
    net.register_agent("1000");
    let (invite, _) = answered_pool_call(&mut net, None);
    net.agent_answers_as("1000");
    net.advance(secs(10));
    customer_ends_bridged_call(&mut net, &invite, "1000");
    assert_eq!(net.agent_state("1000"), AgentState::Ready);

    // 1001 logs in later, so 1000 has been idle longer; but 1000 took a call, 1001 none.
    net.advance(secs(10));
    net.register_agent("1001");
    net.advance(secs(10));
    let (_, call) = answered_pool_call(&mut net, None);
    assert_eq!(net.invites_to_agent("1001").len(), 1);
    assert_eq!(net.invites_to_agent("1000").len(), 1, "only the first call");
    net.agent_answers_as("1001");
    assert_eq!(bridged_agent(&net, call).as_deref(), Some("1001"));
    let taken: Vec<(String, u64)> = net
        .core
        .agent_states()
        .into_iter()
        .filter(|a| a.extension != "1002")
        .map(|a| (a.extension, a.calls_taken))
        .collect();
    assert_eq!(taken, vec![("1000".into(), 1), ("1001".into(), 1)]);
}

#[test]
fn longest_idle_would_have_given_that_call_to_the_agent_idle_longer() {
    // The counterpart of the test above: the same history under longest idle.
    let mut net = pool_net(|_| {});
    net.register_agent("1000");
    let (invite, _) = answered_pool_call(&mut net, None);
    net.agent_answers_as("1000");
    net.advance(secs(10));
    customer_ends_bridged_call(&mut net, &invite, "1000");
    net.advance(secs(10));
    net.register_agent("1001");
    net.advance(secs(10));
    answered_pool_call(&mut net, None);
    assert_eq!(net.invites_to_agent("1000").len(), 2);
    assert!(net.invites_to_agent("1001").is_empty());
}

#[test]
fn an_agent_that_rejects_is_released_and_the_next_one_is_tried() {
    let mut net = pool_net(|p| p.abandon_after = secs(10));
    net.register_agent("1000");
    net.advance(secs(1));
    net.register_agent("1001");
    let (invite, call) = answered_pool_call(&mut net, None);
    let answered_at = net.now;
    assert_eq!(net.invites_to_agent("1000").len(), 1);

    net.advance(secs(1));
    net.agent_refuses("1000", 486);
    let refused_at = net.now;
    // The next agent at once; 1000 is free again (max_no_answer 0 never pauses).
    let invites = net.invites_to_agent("1001");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].0, refused_at);
    assert_eq!(net.agent_state("1000"), AgentState::Ready);
    // The customer keeps hearing the ringback: not stopped, not hung up.
    let ops = net.media_ops();
    assert_eq!(
        ops.iter()
            .filter(|o| matches!(o, MediaOp::StartRingback { .. }))
            .count(),
        1
    );
    assert!(!ops.iter().any(|o| matches!(
        o,
        MediaOp::StopRingback { .. } | MediaOp::PlayMessage { .. }
    )));
    assert!(byes_to_carrier(&net).is_empty());
    assert!(
        matches!(
            state_of(&net, call),
            Some(CallState::CustomerAnswered | CallState::AgentRinging)
        ),
        "{:?}",
        state_of(&net, call)
    );

    net.advance(ms(1500));
    net.agent_answers_as("1001");
    let connected_at = net.now;
    assert_eq!(bridged_agent(&net, call).as_deref(), Some("1001"));
    net.advance(secs(20));
    customer_ends_bridged_call(&mut net, &invite, "1001");

    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "bridged");
    assert_eq!(cdr.agent.as_deref(), Some("1001"));
    assert_eq!(cdr.pool.as_deref(), Some(POOL));
    assert_eq!(cdr.agent_attempts, 2);
    assert_eq!(
        cdr.connect_ms,
        Some(connected_at.since(answered_at).as_millis() as u64)
    );
    assert_eq!(cdr.connect_ms, Some(2500));
    assert_eq!(cdr.hung_up_by, HungUpBy::Customer);
}

#[test]
fn an_agent_that_does_not_answer_within_the_ring_timeout_is_cancelled_and_the_next_tried() {
    let mut net = pool_net(|p| p.abandon_after = secs(60));
    net.register_agent("1000");
    net.advance(secs(1));
    net.register_agent("1001");
    let (_, call) = answered_pool_call(&mut net, None);
    let answered_at = net.now;
    let (tx, ringing) = net.agent_rings("1000");
    assert_eq!(state_of(&net, call), Some(CallState::AgentRinging));
    assert_eq!(net.agent_state("1000"), AgentState::Ringing);

    net.advance(RING_TIMEOUT - ms(100));
    assert!(
        cancels_to(&net, "1000").is_empty(),
        "not before the timeout"
    );
    assert!(net.invites_to_agent("1001").is_empty());
    net.advance(ms(100));
    assert_eq!(cancels_to(&net, "1000"), vec![answered_at + RING_TIMEOUT]);
    let invites = net.invites_to_agent("1001");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].0, answered_at + RING_TIMEOUT);
    agent_ends_cancelled_invite(&mut net, "1000", tx, &ringing);
    assert_eq!(net.agent_state("1000"), AgentState::Ready);

    net.advance(secs(2));
    net.agent_answers_as("1001");
    assert_eq!(bridged_agent(&net, call).as_deref(), Some("1001"));
    net.core.hangup(net.now, call).expect("the call exists");
    net.settle();
    let now = net.now;
    net.carrier.answer_byes(now);
    net.agent_peer("1001").answer_byes(now);
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.agent.as_deref(), Some("1001"));
    assert_eq!(cdr.agent_attempts, 2);
    assert_eq!(cdr.connect_ms, Some(22_000));
}

#[test]
fn with_every_agent_paused_the_answered_customer_hears_the_abandon_message_then_bye() {
    let mut net = pool_net(|p| p.abandon_after = secs(2));
    net.register_agent("1000");
    net.register_agent("1001");
    net.core.pause_agent(net.now, "1000", "lunch").unwrap();
    net.core.pause_agent(net.now, "1001", "lunch").unwrap();
    net.settle();
    let (_, call) = answered_pool_call(&mut net, Some("lead-7"));
    let answered_at = net.now;

    net.advance(ms(1900));
    assert!(net.played.is_empty(), "not before abandon_after");
    net.advance(ms(100));
    assert_eq!(
        net.played,
        vec![(answered_at + secs(2), call, PathBuf::from(ABANDON_WAV))]
    );
    let ops = net.media_ops();
    let stop = ops
        .iter()
        .position(|o| {
            matches!(
                o,
                MediaOp::StopRingback {
                    side: Side::Customer
                }
            )
        })
        .expect("the ringback stops");
    let play = ops
        .iter()
        .position(|o| {
            matches!(
                o,
                MediaOp::PlayMessage {
                    side: Side::Customer,
                    ..
                }
            )
        })
        .unwrap();
    assert!(stop < play, "{ops:?}");
    assert_eq!(state_of(&net, call), Some(CallState::Abandoning));
    for ext in ["1000", "1001", "1002"] {
        assert!(net.invites_to_agent(ext).is_empty(), "{ext} was called");
    }

    // The message is 4 s long: the customer is hung up when it has played.
    net.advance(secs(4) - ms(1));
    assert!(
        byes_to_carrier(&net).is_empty(),
        "BYE before the message ended"
    );
    net.advance(ms(1));
    net.message_done(call);
    assert_eq!(byes_to_carrier(&net), vec![answered_at + secs(6)]);
    let now = net.now;
    net.carrier.answer_byes(now);
    net.settle();

    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "abandoned_no_agent");
    assert_eq!(cdr.connect_ms, None);
    assert_eq!(cdr.hung_up_by, HungUpBy::Dialer);
    assert_eq!(cdr.agent, None);
    assert_eq!(cdr.agent_attempts, 0);
    assert_eq!(cdr.pool.as_deref(), Some(POOL));
    assert_eq!(cdr.tag.as_deref(), Some("lead-7"));
    assert!(cdr.answered.is_some() && cdr.bridged.is_none());
    assert_eq!(cdr.q850_cause, 16);
    assert_eq!(net.core.call_count(), 0);
}

#[test]
fn an_abandon_message_that_never_reports_its_end_is_cut_after_30_seconds() {
    let mut net = pool_net(|p| p.abandon_after = secs(2));
    net.register_agent("1000");
    net.core.pause_agent(net.now, "1000", "lunch").unwrap();
    let (_, call) = answered_pool_call(&mut net, None);
    net.advance(secs(2));
    assert_eq!(net.played.len(), 1);
    let played_at = net.played[0].0;

    net.advance(ABANDON_MESSAGE_LIMIT - ms(100));
    assert!(byes_to_carrier(&net).is_empty());
    assert_eq!(state_of(&net, call), Some(CallState::Abandoning));
    net.advance(ms(100));
    assert_eq!(
        byes_to_carrier(&net),
        vec![played_at + ABANDON_MESSAGE_LIMIT]
    );
    let now = net.now;
    net.carrier.answer_byes(now);
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "abandoned_no_agent");
    assert_eq!(cdr.hung_up_by, HungUpBy::Dialer);
    // A late report changes nothing.
    net.message_done(call);
    assert_eq!(net.cdrs().len(), 1);
}

#[test]
fn a_customer_waiting_for_an_agent_is_connected_when_one_becomes_ready() {
    let mut net = pool_net(|p| p.abandon_after = secs(10));
    net.register_agent("1000");
    net.register_agent("1001");
    net.core.pause_agent(net.now, "1001", "break").unwrap();
    // 1000 talks on a first call; 1001 is paused.
    let (_, first) = answered_pool_call(&mut net, None);
    net.agent_answers_as("1000");
    assert_eq!(bridged_agent(&net, first).as_deref(), Some("1000"));

    let (_, call) = answered_pool_call(&mut net, None);
    let answered_at = net.now;
    net.advance(secs(3));
    assert!(net.invites_to_agent("1001").is_empty());
    assert_eq!(net.invites_to_agent("1000").len(), 1, "1000 is busy");
    assert_eq!(state_of(&net, call), Some(CallState::CustomerAnswered));

    net.core.ready_agent(net.now, "1001").unwrap();
    net.settle();
    let invites = net.invites_to_agent("1001");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].0, answered_at + secs(3));
    net.advance(secs(1));
    net.agent_answers_as("1001");
    assert_eq!(bridged_agent(&net, call).as_deref(), Some("1001"));

    // abandon_after passes with the customer connected: nothing is played.
    net.advance(secs(10));
    assert!(net.played.is_empty());
    assert_eq!(state_of(&net, call), Some(CallState::Bridged));
}

#[test]
fn max_no_answer_unanswered_offers_pause_the_agent_with_reason_no_answer() {
    // Two offers in a row not answered (one left to ring out, one refused) pause 1000.
    let mut net = pool_net(|p| {
        p.max_no_answer = 2;
        p.agent_attempts = 1;
        p.abandon_after = secs(60);
        p.abandon_message = None;
    });
    net.register_agent("1000");

    let (_, first) = answered_pool_call(&mut net, None);
    let (tx, ringing) = net.agent_rings("1000");
    net.advance(RING_TIMEOUT);
    assert_eq!(cancels_to(&net, "1000").len(), 1);
    agent_ends_cancelled_invite(&mut net, "1000", tx, &ringing);
    // One unanswered offer: still ready. The call had its one attempt: the customer is
    // hung up.
    assert_eq!(net.agent_state("1000"), AgentState::Ready);
    assert_eq!(byes_to_carrier(&net).len(), 1);
    let now = net.now;
    net.carrier.answer_byes(now);
    net.settle();
    let cdr = net.cdrs().into_iter().find(|c| c.id == first).unwrap();
    assert_eq!(cdr.agent_attempts, 1);
    assert_eq!(cdr.connect_ms, None);

    net.advance(secs(5));
    answered_pool_call(&mut net, None);
    net.agent_refuses("1000", 486);
    assert_eq!(net.agent_state("1000"), AgentState::Paused);
    let info = net
        .core
        .agent_states()
        .into_iter()
        .find(|a| a.extension == "1000")
        .unwrap();
    assert_eq!(info.reason.as_deref(), Some("no_answer"));
    let changes = net.agent_changes();
    assert_eq!(
        changes.last(),
        Some(&(
            "1000".into(),
            AgentState::Paused,
            Some("no_answer".into()),
            None
        ))
    );
    assert_eq!(
        changes.iter().filter(|c| c.1 == AgentState::Paused).count(),
        1,
        "the first unanswered offer did not pause: {changes:?}"
    );
    let now = net.now;
    net.carrier.answer_byes(now);
    net.settle();

    // A third customer is not offered to the paused agent.
    net.advance(secs(5));
    answered_pool_call(&mut net, None);
    assert_eq!(net.invites_to_agent("1000").len(), 2);
}

#[test]
fn wrap_up_keeps_an_agent_from_the_next_call_until_it_ends() {
    let mut net = pool_net(|p| {
        p.wrap_up = secs(5);
        p.abandon_after = secs(30);
    });
    net.register_agent("1000");
    let (invite, first) = answered_pool_call(&mut net, None);
    net.agent_answers_as("1000");
    net.advance(secs(30));
    let ended_at = net.now;
    customer_ends_bridged_call(&mut net, &invite, "1000");
    assert_eq!(net.agent_state("1000"), AgentState::WrapUp);
    assert!(net.events().iter().any(|e| matches!(
        e,
        ApiEvent::AgentState { extension, state: AgentState::WrapUp, call: None, since, .. }
            if extension == "1000" && *since == unix(ended_at)
    )));
    assert!(net.cdrs().iter().any(|c| c.id == first));

    net.advance(secs(1));
    let (_, call) = answered_pool_call(&mut net, None);
    net.advance(secs(3));
    assert_eq!(net.invites_to_agent("1000").len(), 1, "not during wrap-up");
    assert_eq!(state_of(&net, call), Some(CallState::CustomerAnswered));

    net.advance(secs(1));
    let ready = net.events().into_iter().rev().find_map(|e| match e {
        ApiEvent::AgentState {
            extension,
            state: AgentState::Ready,
            since,
            ..
        } if extension == "1000" => Some(*since),
        _ => None,
    });
    assert_eq!(ready, Some(unix(ended_at + secs(5))));
    let invites = net.invites_to_agent("1000");
    assert_eq!(invites.len(), 2);
    assert_eq!(invites[1].0, ended_at + secs(5));
}

#[test]
fn a_customer_hanging_up_while_the_agent_rings_cancels_the_agent_and_frees_it() {
    let mut net = pool_net(|p| p.abandon_after = secs(10));
    net.register_agent("1000");
    let (invite, call) = answered_pool_call(&mut net, Some("t-1"));
    let (tx, ringing) = net.agent_rings("1000");
    net.advance(secs(1));
    let hung_up_at = net.now;
    net.customer_hangs_up(&invite);
    assert_eq!(cancels_to(&net, "1000"), vec![hung_up_at]);
    agent_ends_cancelled_invite(&mut net, "1000", tx, &ringing);

    let cdr = net.cdr();
    assert_eq!(cdr.id, call);
    assert_eq!(cdr.outcome, "abandoned");
    assert_eq!(cdr.hung_up_by, HungUpBy::Customer);
    assert_eq!(cdr.agent.as_deref(), Some("1000"));
    assert_eq!(cdr.agent_attempts, 1);
    assert_eq!(cdr.connect_ms, None);
    assert_eq!(net.agent_state("1000"), AgentState::Ready);
    let changes: Vec<AgentState> = net
        .agent_changes()
        .into_iter()
        .filter(|c| c.0 == "1000")
        .map(|c| c.1)
        .collect();
    assert_eq!(
        changes,
        vec![
            AgentState::Ready,
            AgentState::Reserved,
            AgentState::Ringing,
            AgentState::Ready
        ]
    );
    // Free: the next customer goes to it.
    net.advance(secs(1));
    answered_pool_call(&mut net, None);
    assert_eq!(net.invites_to_agent("1000").len(), 2);
}

#[test]
fn max_cps_queues_calls_and_spaces_the_invites() {
    let mut trunk = trunk();
    trunk.max_channels = None;
    trunk.max_cps = Some(5);
    trunk.max_queue = 19;
    let mut net = Net::with_trunk_and_pool(trunk, sales_pool());
    net.register_agent("1000");
    let calls: Vec<CallId> = (0..20)
        .map(|n| {
            net.originate_pool(&format!("555123{n:04}"), None)
                .expect("20 calls fit: 1 out, 19 queued")
        })
        .collect();
    let refused = net.originate_pool(NUMBER, None);
    assert_eq!(
        refused,
        Err(OriginateError::QueueFull {
            trunk: "carrier".into(),
            queued: 19,
            max_queue: 19
        })
    );
    let states: Vec<CallState> = calls
        .iter()
        .map(|c| state_of(&net, *c).expect("live"))
        .collect();
    assert_eq!(states[0], CallState::Dialing);
    assert!(
        states[1..].iter().all(|s| *s == CallState::Queued),
        "{states:?}"
    );
    let positions: Vec<usize> = net
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ApiEvent::Queued { position, .. } => Some(*position),
            _ => None,
        })
        .collect();
    assert_eq!(positions, (1..20).collect::<Vec<_>>());

    net.advance(secs(5));
    let invites: Vec<Time> = net
        .sent_unique_timed(Method::Invite)
        .into_iter()
        .filter(|(_, to, _)| *to == addr(CARRIER))
        .map(|(at, _, _)| at)
        .collect();
    assert_eq!(invites.len(), 20);
    assert_eq!(invites[0], Time::ZERO);
    for w in invites.windows(2) {
        assert!(w[1].since(w[0]) >= ms(200), "{invites:?}");
    }
    assert!(*invites.last().unwrap() <= Time::ZERO + ms(19 * 200 + 100));
    assert!(net
        .core
        .calls(net.now)
        .iter()
        .all(|c| c.state == CallState::Dialing));
    // The queue has room again.
    assert!(net.originate_pool(NUMBER, None).is_ok());
}

#[test]
fn max_channels_holds_a_call_in_the_queue_until_one_ends() {
    let mut trunk = trunk();
    trunk.max_channels = Some(1);
    trunk.max_queue = 1;
    let mut net = Net::with_trunk_and_pool(trunk, sales_pool());
    net.register_agent("1000");
    let first = net.originate_pool(NUMBER, None).unwrap();
    let second = net.originate_pool("5551234568", None).unwrap();
    assert!(matches!(
        net.originate_pool("5551234569", None),
        Err(OriginateError::QueueFull { queued: 1, .. })
    ));
    assert_eq!(state_of(&net, second), Some(CallState::Queued));
    assert_eq!(net.core.trunk_queued(0), 1);

    net.advance(secs(10));
    let (tx, invite) = net.carrier_invite();
    assert!(
        net.carrier.take_request(Method::Invite).is_none(),
        "one channel"
    );
    assert_eq!(state_of(&net, second), Some(CallState::Queued));

    net.carrier
        .respond(net.now, tx, make_response(&invite, 486, Some("b")));
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.id, first);
    assert_eq!(cdr.outcome, "busy");
    let (_, next) = net.carrier_invite();
    assert_eq!(
        net.core.call_for_sip_call_id(next.call_id().unwrap()),
        Some(second)
    );
    assert_eq!(state_of(&net, second), Some(CallState::Dialing));
    let at = net
        .sent_unique_timed(Method::Invite)
        .into_iter()
        .filter(|(_, to, _)| *to == addr(CARRIER))
        .map(|(at, _, _)| at)
        .collect::<Vec<_>>();
    assert_eq!(at, vec![Time::ZERO, Time::ZERO + secs(10)]);
}

/// The tag of a call event.
fn tag_of(e: &ApiEvent) -> Option<Option<&str>> {
    match e {
        ApiEvent::CallCreated { tag, .. }
        | ApiEvent::Queued { tag, .. }
        | ApiEvent::Progress { tag, .. }
        | ApiEvent::EarlyMedia { tag, .. }
        | ApiEvent::Answered { tag, .. }
        | ApiEvent::RingbackStarted { tag, .. }
        | ApiEvent::AgentRinging { tag, .. }
        | ApiEvent::Bridged { tag, .. }
        | ApiEvent::Hangup { tag, .. } => Some(tag.as_deref()),
        _ => None,
    }
}

#[test]
fn the_tag_is_in_every_event_of_the_call_and_in_its_cdr() {
    let mut net = pool_net(|_| {});
    net.register_agent("1000");
    net.register_agent("1001");
    let tag = "lead-42/attempt-3";
    let (invite, call) = answered_pool_call(&mut net, Some(tag));
    assert_eq!(
        net.core.calls(net.now)[0].tag.as_deref(),
        Some(tag),
        "GET /calls"
    );
    // A second call without a tag, at the same time.
    let (other_invite, other) = answered_pool_call(&mut net, None);
    net.agent_answers_as("1000");
    net.agent_answers_as("1001");
    net.advance(secs(5));
    customer_ends_bridged_call(&mut net, &invite, "1000");
    customer_ends_bridged_call(&mut net, &other_invite, "1001");

    let mut kinds = vec![];
    for e in net.events() {
        let Some(t) = tag_of(e) else { continue };
        if e.call() == Some(call) {
            assert_eq!(t, Some(tag), "{e:?}");
            kinds.push(
                format!("{e:?}")
                    .split([' ', '{'])
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        } else if e.call() == Some(other) {
            assert_eq!(t, None, "{e:?}");
        }
    }
    for k in [
        "CallCreated",
        "Answered",
        "RingbackStarted",
        "AgentRinging",
        "Bridged",
        "Hangup",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} event: {kinds:?}");
    }
    let cdrs = net.cdrs();
    assert_eq!(
        cdrs.iter().find(|c| c.id == call).unwrap().tag.as_deref(),
        Some(tag)
    );
    assert_eq!(cdrs.iter().find(|c| c.id == other).unwrap().tag, None);
}

#[test]
fn agent_headers_reach_the_agents_invite() {
    let mut net = pool_net(|_| {});
    net.register_agent("1000");
    let mut spec = OriginateSpec::new(NUMBER, dialer::b2bua::AgentChoice::Pool(POOL.into()));
    spec.agent_headers = vec![
        ("X-Lead".into(), "42".into()),
        ("X-Campaign".into(), "spring sale".into()),
    ];
    net.originate_spec(spec).expect("originate");
    let (customer_invite, _) = net.carrier_answers_next("c1");
    assert_eq!(customer_invite.headers.get_named("X-Lead"), None);
    assert_eq!(customer_invite.headers.get_named("X-Campaign"), None);

    let invites = net.invites_to_agent("1000");
    assert_eq!(invites.len(), 1);
    let h = &invites[0].1.headers;
    assert_eq!(h.get_named("X-Lead"), Some("42"));
    assert_eq!(h.get_named("X-Campaign"), Some("spring sale"));
}

#[test]
fn agent_headers_reach_the_next_agent_too() {
    let mut net = pool_net(|p| p.abandon_after = secs(10));
    net.register_agent("1000");
    net.register_agent("1001");
    let mut spec = OriginateSpec::new(NUMBER, dialer::b2bua::AgentChoice::Pool(POOL.into()));
    spec.agent_headers = vec![("X-Lead".into(), "42".into())];
    net.originate_spec(spec).expect("originate");
    net.carrier_answers_next("c1");
    net.agent_refuses("1000", 603);
    let invites = net.invites_to_agent("1001");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].1.headers.get_named("X-Lead"), Some("42"));
}

#[test]
fn an_originate_for_a_pool_without_logged_in_agents_is_refused() {
    let mut net = pool_net(|_| {});
    assert_eq!(
        net.originate_pool(NUMBER, None),
        Err(OriginateError::PoolEmpty(POOL.into()))
    );
    assert!(net.sent.is_empty());
    net.register_agent("1002");
    net.core.agent_unreachable(net.now, "1002");
    assert_eq!(
        net.originate_pool(NUMBER, None),
        Err(OriginateError::PoolEmpty(POOL.into()))
    );
}

#[test]
fn an_agent_still_ringing_at_abandon_after_is_cancelled_and_the_customer_hears_the_message() {
    let mut net = pool_net(|p| p.abandon_after = secs(5));
    net.register_agent("1000");
    let (_, call) = answered_pool_call(&mut net, None);
    let answered_at = net.now;
    let (tx, ringing) = net.agent_rings("1000");
    net.advance(secs(5));
    assert_eq!(cancels_to(&net, "1000"), vec![answered_at + secs(5)]);
    assert_eq!(
        net.played,
        vec![(answered_at + secs(5), call, PathBuf::from(ABANDON_WAV))]
    );
    agent_ends_cancelled_invite(&mut net, "1000", tx, &ringing);
    // Let go unused: not counted as a no-answer, ready at once.
    assert_eq!(net.agent_state("1000"), AgentState::Ready);

    net.advance(secs(3));
    net.message_done(call);
    let now = net.now;
    assert_eq!(net.carrier.answer_byes(now), 1);
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "abandoned_no_agent");
    assert_eq!(cdr.agent_attempts, 1);
    assert_eq!(cdr.connect_ms, None);
    assert_eq!(cdr.hung_up_by, HungUpBy::Dialer);
}

#[test]
fn a_customer_hanging_up_during_the_abandon_message_is_still_abandoned_no_agent() {
    let mut net = pool_net(|p| p.abandon_after = secs(2));
    net.register_agent("1000");
    net.core.pause_agent(net.now, "1000", "lunch").unwrap();
    let (invite, call) = answered_pool_call(&mut net, None);
    net.advance(secs(3));
    assert_eq!(state_of(&net, call), Some(CallState::Abandoning));
    net.customer_hangs_up(&invite);
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "abandoned_no_agent");
    assert_eq!(cdr.hung_up_by, HungUpBy::Customer);
    assert!(
        byes_to_carrier(&net).is_empty(),
        "the customer's BYE ended it"
    );
    // The media task's report after the call is over changes nothing.
    net.message_done(call);
    assert_eq!(net.cdrs().len(), 1);
}

#[test]
fn a_waiting_customer_takes_an_agent_that_logs_in() {
    let mut net = pool_net(|p| p.abandon_after = secs(10));
    net.register_agent("1000");
    net.core.pause_agent(net.now, "1000", "lunch").unwrap();
    let (_, call) = answered_pool_call(&mut net, None);
    net.advance(secs(4));
    net.register_agent("1002");
    let invites = net.invites_to_agent("1002");
    assert_eq!(invites.len(), 1);
    assert_eq!(invites[0].1.uri.to_string(), "sip:1002@10.0.0.7:5060;ob");
    net.agent_answers_as("1002");
    assert_eq!(bridged_agent(&net, call).as_deref(), Some("1002"));
}

#[test]
fn waiting_customers_are_served_oldest_first() {
    let mut net = pool_net(|p| p.abandon_after = secs(20));
    net.register_agent("1000");
    net.register_agent("1001");
    net.core.pause_agent(net.now, "1000", "lunch").unwrap();
    net.core.pause_agent(net.now, "1001", "lunch").unwrap();
    let (_, older) = answered_pool_call(&mut net, None);
    net.advance(secs(1));
    let (_, newer) = answered_pool_call(&mut net, None);
    net.advance(secs(1));

    net.core.ready_agent(net.now, "1001").unwrap();
    net.settle();
    let to_1001 = net.invites_to_agent("1001");
    assert_eq!(to_1001.len(), 1);
    net.agent_answers_as("1001");
    assert_eq!(bridged_agent(&net, older).as_deref(), Some("1001"));
    assert_eq!(bridged_agent(&net, newer), None);

    net.core.ready_agent(net.now, "1000").unwrap();
    net.settle();
    net.agent_answers_as("1000");
    assert_eq!(bridged_agent(&net, newer).as_deref(), Some("1000"));
}

#[test]
fn a_waiting_customer_who_hangs_up_is_not_offered_to_an_agent_later() {
    let mut net = pool_net(|p| p.abandon_after = secs(10));
    net.register_agent("1000");
    net.core.pause_agent(net.now, "1000", "lunch").unwrap();
    let (invite, call) = answered_pool_call(&mut net, None);
    net.advance(secs(1));
    net.customer_hangs_up(&invite);
    let cdr = net.cdr();
    assert_eq!(cdr.id, call);
    assert_eq!(cdr.outcome, "abandoned");
    assert_eq!(cdr.hung_up_by, HungUpBy::Customer);
    assert_eq!(cdr.agent, None);
    assert_eq!(cdr.agent_attempts, 0);

    net.core.ready_agent(net.now, "1000").unwrap();
    net.settle();
    net.advance(secs(15));
    assert!(net.invites_to_agent("1000").is_empty());
    assert!(net.played.is_empty());
    assert_eq!(net.agent_state("1000"), AgentState::Ready);
}

#[test]
fn a_queued_call_hung_up_leaves_the_queue_without_an_invite() {
    let mut trunk = trunk();
    trunk.max_channels = Some(1);
    trunk.max_queue = 5;
    let mut net = Net::with_trunk_and_pool(trunk, sales_pool());
    net.register_agent("1000");
    let first = net.originate_pool(NUMBER, None).unwrap();
    let queued = net.originate_pool("5551234568", Some("q")).unwrap();
    net.core.hangup(net.now, queued).unwrap();
    net.settle();
    let cdr = net.cdr();
    assert_eq!(cdr.id, queued);
    assert_eq!(cdr.outcome, "hangup");
    assert_eq!(cdr.tag.as_deref(), Some("q"));
    assert_eq!(net.core.trunk_queued(0), 0);

    // The first call ends: the channel is free, and a new call goes out at once.
    let (tx, invite) = net.carrier_invite();
    net.carrier
        .respond(net.now, tx, make_response(&invite, 486, Some("b")));
    net.settle();
    assert!(net.cdrs().iter().any(|c| c.id == first));
    assert!(net.carrier.take_request(Method::Invite).is_none());
    assert_eq!(net.core.trunk_load(0), 0);
    let third = net.originate_pool("5551234569", None).unwrap();
    assert_eq!(state_of(&net, third), Some(CallState::Dialing));
    assert_eq!(
        net.sent_unique_timed(Method::Invite)
            .iter()
            .filter(|(_, to, _)| *to == addr(CARRIER))
            .count(),
        2
    );
}

#[test]
fn an_agent_answering_after_its_cancel_is_acked_and_hung_up_and_the_call_stays_with_the_next() {
    let mut net = pool_net(|p| p.abandon_after = secs(60));
    net.register_agent("1000");
    net.advance(secs(1));
    net.register_agent("1001");
    let (_, call) = answered_pool_call(&mut net, None);
    let (tx, ringing) = net.agent_rings("1000");
    net.advance(RING_TIMEOUT);
    assert_eq!(cancels_to(&net, "1000").len(), 1);
    assert_eq!(net.invites_to_agent("1001").len(), 1);
    // The 200 crossed the CANCEL.
    net.agent_picks_up("1000", tx, &ringing);
    let to_1000 = Net::target_of("1000").destination;
    assert!(net
        .sent_unique(Method::Ack)
        .iter()
        .any(|(to, a)| *to == to_1000 && a.call_id().ok() == ringing.call_id().ok()));
    let now = net.now;
    assert_eq!(net.agent_peer("1000").answer_byes(now), 1, "BYE to 1000");
    net.settle();
    assert_eq!(net.agent_state("1000"), AgentState::Ready);
    assert_eq!(bridged_agent(&net, call), None);

    net.agent_answers_as("1001");
    assert_eq!(bridged_agent(&net, call).as_deref(), Some("1001"));
    assert_eq!(state_of(&net, call), Some(CallState::Bridged));
    assert!(byes_to_carrier(&net).is_empty());
}
