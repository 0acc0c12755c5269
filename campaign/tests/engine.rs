//! The campaign engine in virtual time: pacing, calling hours, retries, DNC, dispositions,
//! callbacks, the campaign's life and crash recovery, each driven through [`common::Sim`]
//! (the engine against an in-memory store and a scripted call engine, one second a step).

mod common;

use campaign::engine::{CampaignState, EngineError, Order, SHORT_CLAIM_BACKOFF_S};
use campaign::{AttemptOutcome, LeadNext, LeadState};
use chrono_tz::America::{Chicago, Denver, New_York};
use common::{at, def, local, AgentState, Dispose, Script, Sim, XorShift};

const NY: &str = "America/New_York";
const AGENTS: [&str; 3] = ["201", "202", "203"];

/// 2026-06-10 (a Wednesday) 10:00 in New York: inside the default 09:00-21:00 window.
fn ten_am() -> chrono::DateTime<chrono::Utc> {
    local(New_York, 2026, 6, 10, 10, 0, 0)
}

/// A campaign "c" of New York leads `numbers`, run by `agents`.
fn sim_with(extra: &str, agents: &[&str], numbers: &[&str]) -> Sim {
    let mut sim = Sim::new(ten_am(), agents);
    sim.campaign(def("c", extra));
    for n in numbers {
        sim.lead("c", n, NY, Some("US-NY"));
    }
    sim
}

fn numbers(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("+1212555{i:04}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ---- pacing ---------------------------------------------------------------------------

#[test]
fn progressive_pacing_never_has_more_lines_waiting_than_ready_agents() {
    let nums = numbers(30);
    let mut sim = sim_with("[retry]\nbusy_s = 120\n", &AGENTS, &refs(&nums));
    sim.wrap_up_s = 5;
    sim.script(|number, _| match number.as_bytes()[number.len() - 1] % 3 {
        0 => Script::talk(20),
        1 => Script::talk(70),
        _ => Script::Busy,
    });
    let mut peak = 0;
    for _ in 0..3600 {
        sim.step();
        let (waiting, ready) = (sim.unbridged_calls(), sim.ready_agents());
        assert!(
            waiting <= ready,
            "{}: {waiting} calls wait for an agent, {ready} ready",
            sim.now
        );
        peak = peak.max(waiting);
    }
    assert_eq!(peak, AGENTS.len(), "every ready agent got a line");
    assert!(
        sim.finishes()
            .iter()
            .all(|(_, _, f)| f.outcome != AttemptOutcome::Abandoned),
        "no answered customer waited for an agent"
    );
    assert_eq!(sim.state("c"), CampaignState::Finished);
    sim.assert_clean();
}

#[test]
fn ratio_pacing_of_one_and_a_half_lines_per_agent_dials_three_lines_for_two_agents() {
    let nums = numbers(10);
    let mut sim = sim_with(
        "pacing = \"ratio\"\nlines_per_agent = 1.5\n",
        &["201", "202"],
        &refs(&nums),
    );
    sim.script(|_, _| Script::NoAnswer);
    sim.run_for(10);
    assert_eq!(sim.dialled.len(), 3);
    assert_eq!(sim.claims()[0].2, 3, "the first claim asks for 3 leads");
    assert_eq!(sim.engine.lines("c"), (3, 3));
    // While the three ring, no fourth line.
    sim.run_for(10);
    assert_eq!(sim.dialled.len(), 3);
    sim.assert_clean();
}

#[test]
fn max_lines_caps_the_lines_in_flight() {
    let nums = numbers(20);
    let mut sim = sim_with(
        "pacing = \"ratio\"\nlines_per_agent = 3.0\nmax_lines = 5\n[retry]\nno_answer_s = 60\n",
        &["201", "202", "203", "204"],
        &refs(&nums),
    );
    sim.script(|_, _| Script::NoAnswer);
    let mut peak = 0;
    for _ in 0..300 {
        sim.step();
        assert!(
            sim.calls_of("c") <= 5,
            "{}: {} lines",
            sim.now,
            sim.calls_of("c")
        );
        assert!(sim.engine.lines("c").0 <= 5);
        peak = peak.max(sim.calls_of("c"));
    }
    assert_eq!(peak, 5);
    assert!(sim.dialled.len() > 5, "lines are reused once calls end");
    sim.assert_clean();
}

#[test]
fn nothing_is_claimed_while_no_agent_is_logged_in() {
    let nums = numbers(5);
    let mut sim = sim_with("", &AGENTS, &refs(&nums));
    for a in AGENTS {
        sim.set_agent(a, AgentState::LoggedOut);
    }
    sim.run_for(300);
    assert!(sim.claims().is_empty());
    assert!(sim.store.attempts.is_empty());
    assert_eq!(sim.state("c"), CampaignState::Running);
    sim.set_agent("202", AgentState::Ready);
    sim.run_for(5);
    assert_eq!(sim.dialled.len(), 1);
    sim.assert_clean();
}

#[test]
fn nothing_is_dialled_while_every_logged_in_agent_is_paused() {
    let nums = numbers(5);
    let mut sim = sim_with("", &AGENTS, &refs(&nums));
    for a in AGENTS {
        sim.set_agent(a, AgentState::Paused);
    }
    sim.run_for(300);
    assert!(sim.dialled.is_empty());
    assert!(sim.store.attempts.is_empty());
    sim.set_agent("203", AgentState::Ready);
    sim.run_for(5);
    assert_eq!(sim.dialled.len(), 1, "one ready agent, one line");
    sim.assert_clean();
}

// ---- calling hours --------------------------------------------------------------------

#[test]
fn new_york_lead_is_not_claimed_at_08_59_local_and_is_at_09_00() {
    let mut sim = Sim::new(local(New_York, 2026, 6, 10, 8, 58, 0), &AGENTS);
    sim.campaign(def("c", ""));
    sim.lead("c", "+12125550100", NY, Some("US-NY"));
    let nine = local(New_York, 2026, 6, 10, 9, 0, 0).timestamp();
    assert!(sim.run_until(600, |s| !s.dialled.is_empty()));
    assert!(sim.claims().iter().all(|(t, ..)| *t >= nine));
    assert_eq!(sim.dialled_at("+12125550100"), vec![nine]);
    sim.assert_clean();
}

#[test]
fn new_york_lead_is_not_dialled_from_21_00_local_until_09_00_next_day() {
    let mut sim = Sim::new(local(New_York, 2026, 6, 10, 20, 58, 0), &["201"]);
    sim.campaign(def("c", "max_attempts = 20\n[retry]\nbusy_s = 60\n"));
    sim.lead("c", "+12125550100", NY, Some("US-NY"));
    sim.script(|_, _| Script::Busy);
    let next_nine = local(New_York, 2026, 6, 11, 9, 0, 0).timestamp();
    sim.run_to(next_nine + 30);
    let nine_pm = local(New_York, 2026, 6, 10, 21, 0, 0).timestamp();
    let times = sim.dialled_at("+12125550100");
    assert_eq!(
        times.iter().filter(|t| **t < nine_pm).count(),
        2,
        "{times:?}"
    );
    let after: Vec<i64> = times.iter().copied().filter(|t| *t >= nine_pm).collect();
    assert_eq!(
        after[0], next_nine,
        "the retry due at night waits for the window"
    );
    sim.assert_clean();
}

#[test]
fn calling_window_keeps_new_york_local_times_across_the_2026_dst_change() {
    // Saturday 2026-03-07 is EST (UTC-5); from 02:00 on Sunday 2026-03-08, EDT (UTC-4).
    let mut sim = Sim::new(local(New_York, 2026, 3, 7, 8, 59, 0), &["201"]);
    sim.campaign(def("c", "[retry]\nbusy_s = 43200\n"));
    sim.lead("c", "+12125550100", NY, None);
    sim.script_by_number(&[("+12125550100", vec![Script::Busy, Script::talk(30)])]);
    let sunday_nine = at(1_772_974_800); // 2026-03-08 13:00 UTC
    assert_eq!(local(New_York, 2026, 3, 8, 9, 0, 0), sunday_nine);
    sim.run_to(sunday_nine.timestamp() + 60);
    let saturday_nine = at(1_772_892_000); // 2026-03-07 14:00 UTC
    assert_eq!(local(New_York, 2026, 3, 7, 9, 0, 0), saturday_nine);
    // The retry was due at 21:00:02 EST on Saturday, outside the window, so it waits for
    // 09:00 EDT, an hour earlier in UTC than the day before.
    assert_eq!(
        sim.dialled_at("+12125550100"),
        vec![saturday_nine.timestamp(), sunday_nine.timestamp()]
    );
    sim.assert_clean();
}

#[test]
fn split_zone_lead_is_dialled_only_while_chicago_and_denver_are_both_open() {
    const SPLIT: &str = "America/Chicago,America/Denver";
    // Opening: 09:00 in Chicago is 08:00 in Denver.
    let mut sim = Sim::new(local(Chicago, 2026, 6, 10, 8, 59, 0), &AGENTS);
    sim.campaign(def("c", ""));
    sim.lead("c", "+16055550100", SPLIT, Some("US-SD"));
    assert!(sim.run_until(7200, |s| !s.dialled.is_empty()));
    let denver_nine = local(Denver, 2026, 6, 10, 9, 0, 0).timestamp();
    assert_eq!(sim.dialled_at("+16055550100"), vec![denver_nine]);
    assert!(sim.claims().iter().all(|(t, ..)| *t >= denver_nine));

    // Closing: 21:00 in Chicago closes the lead though Denver is at 20:00.
    let mut sim = Sim::new(local(Chicago, 2026, 6, 10, 20, 58, 0), &AGENTS);
    sim.campaign(def("c", "max_attempts = 50\n[retry]\nbusy_s = 30\n"));
    sim.lead("c", "+16055550100", SPLIT, Some("US-SD"));
    sim.script(|_, _| Script::Busy);
    sim.run_to(local(Chicago, 2026, 6, 10, 23, 0, 0).timestamp());
    let chicago_nine_pm = local(Chicago, 2026, 6, 10, 21, 0, 0).timestamp();
    let times = sim.dialled_at("+16055550100");
    assert!(times.len() >= 2, "{times:?}");
    assert!(times.iter().all(|t| *t < chicago_nine_pm), "{times:?}");
    sim.assert_clean();
}

#[test]
fn florida_lead_gets_region_hours_and_at_most_three_calls_in_24_h_with_a_60_s_busy_retry() {
    let extra = "max_attempts = 50\n\
                 [[region]]\nmatch = \"US-FL\"\nhours = \"08:00-20:00\"\nmax_calls_per_24h = 3\n\
                 [retry]\nbusy_s = 60\n";
    let mut sim = Sim::new(local(New_York, 2026, 6, 10, 7, 59, 0), &["201", "202"]);
    sim.campaign(def("c", extra));
    sim.lead("c", "+13055550100", NY, Some("US-FL"));
    sim.lead("c", "+12125550100", NY, Some("US-NY"));
    sim.script(|_, _| Script::Busy);
    sim.run_to(local(New_York, 2026, 6, 11, 12, 0, 0).timestamp());

    let fl = sim.dialled_at("+13055550100");
    for (i, t) in fl.iter().enumerate() {
        let in_24h = fl[..=i].iter().filter(|s| **s > t - 86_400).count();
        assert!(in_24h <= 3, "{in_24h} calls in the 24 h to {t}: {fl:?}");
    }
    assert_eq!(fl[0], local(New_York, 2026, 6, 10, 8, 0, 0).timestamp());
    let day_two = local(New_York, 2026, 6, 11, 8, 0, 0).timestamp();
    assert_eq!(fl.iter().filter(|t| **t < day_two).count(), 3);
    assert!(
        fl.iter().any(|t| *t >= day_two),
        "dialled again a day later: {fl:?}"
    );
    for t in &fl {
        let hour = at(*t).with_timezone(&New_York).format("%H").to_string();
        assert!(("08".."20").contains(&hour.as_str()), "{t} at {hour}h");
    }
    let open = &sim.claims()[0].3;
    assert!(open
        .iter()
        .any(|g| g.group.region.as_deref() == Some("US-FL") && g.max_calls_per_24h == Some(3)));
    // The cap is the region's: the New York lead was tried far more often.
    assert!(sim.dialled_at("+12125550100").len() > 3);
    sim.assert_clean();
}

// ---- retries --------------------------------------------------------------------------

/// One lead whose first call plays `first` and whose second talks: the first attempt's
/// end time and finish, and the time of the second dial.
fn first_retry(
    extra: &str,
    first: Script,
    limit: i64,
) -> (Sim, i64, campaign::engine::Finish, i64) {
    let mut sim = sim_with(extra, &["201"], &["+12125550100"]);
    sim.script_by_number(&[("+12125550100", vec![first, Script::talk(30)])]);
    assert!(sim.run_until(limit, |s| s.dialled.len() >= 2), "redialled");
    let (ended, finish) = sim.finish_of(sim.dialled[0].attempt);
    let second = sim.dialled[1].at;
    (sim, ended, finish, second)
}

fn assert_retried_after(extra: &str, first: Script, outcome: AttemptOutcome, delay: i64) -> Sim {
    let (sim, ended, finish, second) = first_retry(extra, first, delay + 600);
    assert_eq!(finish.outcome, outcome);
    assert_eq!(finish.next, LeadNext::Retry { at: ended + delay });
    assert!(
        (ended + delay..=ended + delay + SHORT_CLAIM_BACKOFF_S).contains(&second),
        "ended {ended}, redialled {second}, delay {delay}"
    );
    sim.assert_clean();
    sim
}

#[test]
fn busy_lead_is_retried_after_busy_s_and_no_sooner() {
    assert_retried_after(
        "[retry]\nbusy_s = 600\n",
        Script::Busy,
        AttemptOutcome::Busy,
        600,
    );
}

#[test]
fn unanswered_lead_is_retried_after_no_answer_s_and_no_sooner() {
    let sim = assert_retried_after(
        "[retry]\nno_answer_s = 3600\n",
        Script::NoAnswer,
        AttemptOutcome::NoAnswer,
        3600,
    );
    // It rang for the campaign's ring timeout before giving up.
    let (ended, _) = sim.finish_of(sim.dialled[0].attempt);
    assert_eq!(ended - sim.dialled[0].at, 25);
}

#[test]
fn failed_call_is_retried_after_failed_s_and_no_sooner() {
    assert_retried_after(
        "[retry]\nfailed_s = 1800\n",
        Script::Failed,
        AttemptOutcome::Failed,
        1800,
    );
}

#[test]
fn refused_originate_is_retried_after_failed_s_and_no_sooner() {
    let sim = assert_retried_after(
        "[retry]\nfailed_s = 1800\n",
        Script::Refused,
        AttemptOutcome::Failed,
        1800,
    );
    let (_, finish) = sim.finish_of(sim.dialled[0].attempt);
    assert!(finish.call_outcome.unwrap().starts_with("refused"));
}

#[test]
fn abandoned_lead_is_retried_after_abandoned_s_of_72_h_and_no_sooner() {
    let sim = assert_retried_after(
        "[retry]\nabandoned_s = 259200\n",
        Script::Abandoned,
        AttemptOutcome::Abandoned,
        259_200,
    );
    let (_, finish) = sim.finish_of(sim.dialled[0].attempt);
    assert!(finish.answered);
    assert_eq!(finish.call_outcome.as_deref(), Some("abandoned_no_agent"));
}

#[test]
fn interrupted_attempt_is_finished_by_recover_and_retried_after_interrupted_s() {
    let mut sim = sim_with(
        "[retry]\ninterrupted_s = 600\n",
        &["201"],
        &["+12125550100"],
    );
    sim.script_by_number(&[("+12125550100", vec![Script::talk(300), Script::talk(30)])]);
    sim.run_for(30);
    assert_eq!(sim.dialled.len(), 1);
    let attempt = sim.dialled[0].attempt;
    assert!(sim.store.attempt(attempt).ended.is_none(), "the call is up");
    let crashed = sim.now;
    sim.crash();
    let (t, finish) = sim.finish_of(attempt);
    assert_eq!(t, crashed);
    assert_eq!(finish.outcome, AttemptOutcome::Interrupted);
    assert_eq!(finish.next, LeadNext::Retry { at: crashed + 600 });
    assert_eq!(sim.store.lead(1).state, LeadState::Retry);
    assert!(sim.run_until(1200, |s| s.dialled.len() >= 2));
    let second = sim.dialled[1].at;
    assert!((crashed + 600..=crashed + 600 + SHORT_CLAIM_BACKOFF_S).contains(&second));
    sim.run_for(120);
    assert_eq!(sim.store.lead(1).state, LeadState::Done);
    sim.assert_clean();
}

#[test]
fn outcome_without_a_retry_rule_fails_the_lead() {
    let mut sim = sim_with("[retry]\nbusy_s = 60\n", &["201"], &["+12125550100"]);
    sim.script(|_, _| Script::NoAnswer);
    sim.run_for(7200);
    let (_, finish) = sim.finish_of(sim.dialled[0].attempt);
    assert_eq!(finish.outcome, AttemptOutcome::NoAnswer);
    assert_eq!(finish.next, LeadNext::Failed);
    assert_eq!(sim.store.lead(1).state, LeadState::Failed);
    assert_eq!(sim.dialled.len(), 1, "never dialled again");
    sim.assert_clean();
}

#[test]
fn max_attempts_is_one_cap_across_busy_no_answer_and_failed() {
    let extra = "max_attempts = 3\n[retry]\nbusy_s = 60\nno_answer_s = 60\nfailed_s = 60\n";
    let mut sim = sim_with(extra, &["201"], &["+12125550100"]);
    sim.script_by_number(&[(
        "+12125550100",
        vec![
            Script::Busy,
            Script::NoAnswer,
            Script::Failed,
            Script::talk(30),
        ],
    )]);
    sim.run_for(3600);
    let finishes: Vec<(AttemptOutcome, LeadState)> = sim
        .finishes()
        .into_iter()
        .map(|(_, _, f)| (f.outcome, f.next.state()))
        .collect();
    assert_eq!(
        finishes,
        vec![
            (AttemptOutcome::Busy, LeadState::Retry),
            (AttemptOutcome::NoAnswer, LeadState::Retry),
            (AttemptOutcome::Failed, LeadState::Failed),
        ]
    );
    assert_eq!(sim.dialled.len(), 3);
    assert_eq!(sim.store.lead(1).state, LeadState::Failed);
    assert_eq!(sim.store.lead(1).attempts, 3);
    sim.assert_clean();
}

// ---- DNC ------------------------------------------------------------------------------

#[test]
fn number_found_on_a_dnc_list_at_claim_is_finished_as_dnc_without_a_call() {
    let mut sim = sim_with(
        "dnc = [\"global\"]\n",
        &AGENTS,
        &["+12125550100", "+12125550101"],
    );
    // Added to the list after the import.
    sim.store
        .dnc
        .entry("global".into())
        .or_default()
        .insert("+12125550100".into());
    sim.run_for(120);
    assert!(sim.dialled_at("+12125550100").is_empty());
    assert_eq!(sim.dialled_at("+12125550101").len(), 1);
    let attempt = sim.store.attempts_of(1)[0].id;
    let (_, finish) = sim.finish_of(attempt);
    assert_eq!(finish.outcome, AttemptOutcome::Dnc);
    assert_eq!(finish.next, LeadNext::Dnc);
    assert_eq!(sim.store.lead(1).state, LeadState::Dnc);
    let dnc_list = sim.orders.iter().find_map(|(_, o)| match o {
        Order::FinishAttempt {
            attempt: a,
            dnc_list,
            ..
        } if *a == attempt => Some(dnc_list.clone()),
        _ => None,
    });
    assert_eq!(dnc_list, Some(None), "the number is on the list already");
    assert_eq!(sim.store.lead(2).state, LeadState::Done);
    sim.assert_clean();
}

// ---- dispositions ---------------------------------------------------------------------

const DISPOSITIONS: &str = "[[disposition]]\ncode = \"sale\"\naction = \"final\"\n\
                            [[disposition]]\ncode = \"later\"\naction = \"retry\"\nretry_s = 7200\n\
                            [[disposition]]\ncode = \"cb\"\naction = \"callback\"\n";

fn disposed(after_s: i64, code: &str, callback_at: Option<i64>) -> Option<Dispose> {
    Some(Dispose {
        after_s,
        code: code.to_string(),
        callback_at,
    })
}

#[test]
fn disposition_during_the_call_decides_the_lead_state_when_the_call_ends() {
    let mut sim = sim_with(DISPOSITIONS, &["201"], &["+12125550100"]);
    sim.script_by_number(&[(
        "+12125550100",
        vec![Script::Bridged {
            talk_s: 100,
            dispose: disposed(40, "later", None),
        }],
    )]);
    assert!(sim.run_until(60, |s| !s.disposition_results.is_empty()));
    sim.step();
    assert_eq!(sim.disposition_results[0].2, Ok(()));
    let (_, attempt, code, next) = sim.dispositions()[0].clone();
    assert_eq!(
        (code.as_str(), next),
        ("later", None),
        "recorded, not applied"
    );
    assert_eq!(sim.store.lead(1).state, LeadState::Dialing);
    sim.run_for(120);
    let (ended, finish) = sim.finish_of(attempt);
    assert_eq!(finish.outcome, AttemptOutcome::Bridged);
    // retry_s counts from the end of the call, not from the click.
    assert_eq!(finish.next, LeadNext::Retry { at: ended + 7200 });
    assert_eq!(sim.store.lead(1).state, LeadState::Retry);
    sim.assert_clean();
}

#[test]
fn disposition_after_the_call_replaces_the_state_its_end_gave() {
    let mut sim = sim_with(DISPOSITIONS, &["201"], &["+12125550100"]);
    sim.script_by_number(&[(
        "+12125550100",
        vec![
            Script::Bridged {
                talk_s: 30,
                dispose: disposed(50, "later", None),
            },
            Script::talk(30),
        ],
    )]);
    assert!(sim.run_until(120, |s| !s.disposition_results.is_empty()));
    let attempt = sim.dialled[0].attempt;
    let (_, finish) = sim.finish_of(attempt);
    assert_eq!(finish.next, LeadNext::Done, "a bridged call ends done");
    let (t, a, code, next) = sim.dispositions()[0].clone();
    assert_eq!((a, code.as_str()), (attempt, "later"));
    assert_eq!(next, Some(LeadNext::Retry { at: t + 7200 }));
    assert_eq!(sim.store.lead(1).state, LeadState::Retry);
    assert!(sim.run_until(8000, |s| s.dialled.len() >= 2));
    assert!(sim.dialled[1].at >= t + 7200);
    sim.run_for(120);
    // The campaign had finished when its one lead was done; the retry gave it work again.
    let states: Vec<CampaignState> = sim.state_events("c").into_iter().map(|e| e.1).collect();
    use CampaignState::{Finished, Running};
    assert_eq!(states, vec![Running, Finished, Running, Finished]);
    let reopened = sim.state_events("c")[2].0;
    assert_eq!(reopened, t, "reopened by the disposition");
    sim.assert_clean();
}

/// A lead bridged to agent 201, who asks for a callback at `start + 3600` during the call.
fn callback_sim() -> (Sim, i64) {
    let callback_at = ten_am().timestamp() + 3600;
    let extra = format!("callback_to_agent = true\ncallback_wait_s = 300\n{DISPOSITIONS}");
    let mut sim = sim_with(&extra, &AGENTS, &["+12125550100"]);
    sim.script_by_number(&[(
        "+12125550100",
        vec![
            Script::Bridged {
                talk_s: 60,
                dispose: disposed(10, "cb", Some(callback_at)),
            },
            Script::talk(30),
        ],
    )]);
    sim.run_for(120);
    (sim, callback_at)
}

#[test]
fn callback_is_dialled_at_its_time_for_the_agent_who_set_it_once_ready() {
    let (mut sim, callback_at) = callback_sim();
    let (_, finish) = sim.finish_of(sim.dialled[0].attempt);
    assert_eq!(finish.agent.as_deref(), Some("201"));
    assert_eq!(
        finish.next,
        LeadNext::Callback {
            at: callback_at,
            agent: Some("201".into())
        }
    );
    let lead = sim.store.lead(1).clone();
    assert_eq!(
        (lead.state, lead.next_at),
        (LeadState::Callback, callback_at)
    );
    sim.set_agent("201", AgentState::Paused);
    sim.run_to(callback_at + 60);
    assert_eq!(sim.store.attempts.len(), 2, "claimed at its time");
    assert!(sim.store.attempts[1].started >= callback_at);
    assert_eq!(
        sim.dialled.len(),
        1,
        "held for 201 while other agents are ready"
    );
    sim.set_agent("201", AgentState::Ready);
    sim.step();
    assert_eq!(sim.dialled.len(), 2);
    assert_eq!(sim.dialled[1].at, callback_at + 60);
    assert_eq!(sim.dialled[1].request.agent.as_deref(), Some("201"));
    sim.assert_clean();
}

#[test]
fn callback_whose_agent_stays_unready_goes_to_the_pool_after_callback_wait_s() {
    let (mut sim, callback_at) = callback_sim();
    sim.set_agent("201", AgentState::Paused);
    sim.run_to(callback_at + 600);
    assert_eq!(sim.dialled.len(), 2);
    let claimed = sim.store.attempts[1].started;
    assert!((callback_at..=callback_at + SHORT_CLAIM_BACKOFF_S).contains(&claimed));
    assert_eq!(sim.dialled[1].at, claimed + 300);
    assert_eq!(sim.dialled[1].request.agent, None);
    sim.assert_clean();
}

#[test]
fn held_callback_is_not_placed_while_its_campaign_is_paused() {
    let (mut sim, callback_at) = callback_sim();
    sim.set_agent("201", AgentState::Paused);
    sim.run_to(callback_at + 10);
    assert_eq!(sim.dialled.len(), 1, "held for 201");
    sim.engine.pause("c").expect("pause");
    sim.set_agent("201", AgentState::Ready);
    sim.run_to(callback_at + 600);
    assert_eq!(
        sim.dialled.len(),
        1,
        "no new call while paused: {:?}",
        sim.dialled
    );
    sim.engine.resume("c").expect("resume");
    sim.step();
    assert_eq!(sim.dialled.len(), 2, "placed once the campaign runs again");
    assert_eq!(sim.dialled[1].request.agent.as_deref(), Some("201"));
    sim.assert_clean();
}

#[test]
fn two_callbacks_for_one_agent_never_reserve_the_agent_twice() {
    // Whatever second the second callback's claim falls on relative to the release of the
    // first, the agent is named by one originate at a time.
    for offset in 0..4 {
        let start = ten_am().timestamp();
        let extra = format!("callback_to_agent = true\ncallback_wait_s = 600\n{DISPOSITIONS}");
        let mut sim = sim_with(&extra, &AGENTS, &["+12125550100", "+12125550101"]);
        let cb = |at| Script::Bridged {
            talk_s: 60,
            dispose: disposed(10, "cb", Some(at)),
        };
        let first_at = start + 3600;
        let second_at = start + 3600 + 20 + offset;
        sim.script_by_number(&[
            ("+12125550100", vec![cb(first_at), Script::talk(120)]),
            ("+12125550101", vec![cb(second_at), Script::talk(120)]),
        ]);
        sim.run_for(205);
        // The two calls were bridged to 201 and 202; both callbacks are to go to 201.
        for lead in &mut sim.store.leads {
            assert_eq!(lead.state, LeadState::Callback);
            lead.callback_agent = Some("201".into());
        }
        sim.set_agent("201", AgentState::Paused);
        sim.run_to(second_at);
        sim.set_agent("201", AgentState::Ready);
        sim.run_for(400);
        let to_201: Vec<i64> = sim
            .dialled
            .iter()
            .filter(|d| d.request.agent.as_deref() == Some("201"))
            .map(|d| d.at)
            .collect();
        assert_eq!(to_201.len(), 2, "offset {offset}: {to_201:?}");
        sim.assert_clean();
    }
}

#[test]
fn unknown_disposition_code_is_refused_and_changes_nothing() {
    let mut sim = sim_with(DISPOSITIONS, &["201"], &["+12125550100"]);
    sim.script_by_number(&[(
        "+12125550100",
        vec![Script::Bridged {
            talk_s: 30,
            dispose: disposed(10, "bogus", None),
        }],
    )]);
    sim.run_for(120);
    let (_, code, result) = &sim.disposition_results[0];
    assert_eq!(code, "bogus");
    let err = result.as_ref().unwrap_err();
    assert!(err.contains("unknown disposition \"bogus\""), "{err}");
    assert!(err.contains("sale, later, cb"), "{err}");
    assert!(sim.dispositions().is_empty());
    assert_eq!(sim.store.lead(1).state, LeadState::Done);
    let call = "call-1";
    assert_eq!(
        sim.engine.disposition(sim.now(), call, "cb", None, None),
        Err(EngineError::CallbackTime),
        "a callback needs a time"
    );
    assert_eq!(
        sim.engine
            .disposition(sim.now(), call, "cb", Some(sim.now - 1), None),
        Err(EngineError::CallbackTime),
        "in the future"
    );
    assert_eq!(
        sim.engine
            .disposition(sim.now(), "call-99", "sale", None, None),
        Err(EngineError::NotACampaignCall("call-99".into()))
    );
    sim.carry_out();
    assert!(sim.dispositions().is_empty());
    sim.assert_clean();
}

#[test]
fn default_disposition_applies_when_wrap_up_s_ends_without_one() {
    let extra = format!(
        "default_disposition = \"nodispo\"\n{DISPOSITIONS}\
         [[disposition]]\ncode = \"nodispo\"\naction = \"retry\"\nretry_s = 7200\n"
    );
    let mut sim = sim_with(&extra, &["201"], &["+12125550100", "+12125550101"]);
    sim.wrap_up_s = 30;
    sim.script_by_number(&[
        ("+12125550100", vec![Script::talk(20)]),
        (
            "+12125550101",
            vec![Script::Bridged {
                talk_s: 20,
                dispose: disposed(30, "sale", None),
            }],
        ),
    ]);
    sim.run_for(400);
    let first = sim.store.attempts_of(1)[0].id;
    let (ended, _) = sim.finish_of(first);
    let of_first: Vec<_> = sim
        .dispositions()
        .into_iter()
        .filter(|d| d.1 == first)
        .collect();
    assert_eq!(of_first.len(), 1, "{of_first:?}");
    let (t, _, code, next) = of_first[0].clone();
    assert_eq!((t, code.as_str()), (ended + 30, "nodispo"));
    assert_eq!(
        next,
        Some(LeadNext::Retry {
            at: ended + 30 + 7200
        })
    );
    assert_eq!(sim.store.lead(1).state, LeadState::Retry);
    // The agent disposed of the second call within wrap-up: no default.
    let second = sim.store.attempts_of(2)[0].id;
    assert_eq!(
        sim.store.attempt(second).dispositions,
        vec!["sale".to_string()]
    );
    assert_eq!(sim.store.lead(2).state, LeadState::Done);
    sim.assert_clean();
}

// ---- the campaign's life --------------------------------------------------------------

#[test]
fn pause_stops_new_claims_lets_calls_finish_and_resume_dials_again() {
    let nums = numbers(10);
    let mut sim = sim_with("", &["201", "202"], &refs(&nums));
    sim.script(|_, _| Script::talk(60));
    assert!(sim.run_until(30, |s| s.dialled.len() == 2));
    sim.engine.pause("c").unwrap();
    let paused = sim.now;
    sim.carry_out();
    assert_eq!(sim.stored_state("c"), CampaignState::Paused);
    assert_eq!(
        sim.state_events("c").last(),
        Some(&(paused, CampaignState::Paused))
    );
    assert!(sim.engine.pause("c").is_err(), "already paused");
    sim.run_for(300);
    assert!(sim.claims().iter().all(|(t, ..)| *t < paused));
    assert_eq!(sim.dialled.len(), 2);
    let finished: Vec<_> = sim.finishes();
    assert_eq!(finished.len(), 2);
    assert!(finished
        .iter()
        .all(|(_, _, f)| f.outcome == AttemptOutcome::Bridged));
    assert_eq!(sim.calls_of("c"), 0);
    sim.engine.resume("c").unwrap();
    assert!(sim.engine.resume("c").is_err(), "running already");
    sim.run_for(5);
    assert_eq!(sim.dialled.len(), 4);
    assert_eq!(sim.stored_state("c"), CampaignState::Running);
    sim.assert_clean();
}

#[test]
fn stop_ends_dialling_and_start_runs_the_campaign_again() {
    let nums = numbers(10);
    let mut sim = sim_with("", &["201", "202"], &refs(&nums));
    sim.script(|_, _| Script::talk(60));
    assert!(sim.run_until(30, |s| s.dialled.len() == 2));
    sim.engine.stop("c").unwrap();
    let stopped = sim.now;
    sim.carry_out();
    assert_eq!(sim.stored_state("c"), CampaignState::Stopped);
    assert!(matches!(
        sim.engine.resume("c"),
        Err(EngineError::BadTransition {
            from: "stopped",
            ..
        })
    ));
    assert!(sim.engine.stop("c").is_err());
    sim.run_for(300);
    assert!(sim.claims().iter().all(|(t, ..)| *t < stopped));
    assert_eq!(sim.finishes().len(), 2, "calls under way finished");
    assert_eq!(sim.dialled.len(), 2);
    sim.engine.start("c").unwrap();
    sim.run_for(5);
    assert_eq!(sim.dialled.len(), 4);
    assert_eq!(
        sim.engine.start("nope"),
        Err(EngineError::NoSuchCampaign("nope".into()))
    );
    sim.assert_clean();
}

#[test]
fn campaign_finishes_when_no_lead_is_left_and_no_line_is_in_flight_and_not_before() {
    let mut sim = sim_with(
        "[retry]\nbusy_s = 300\n",
        &["201", "202"],
        &["+12125550100", "+12125550101", "+12125550102"],
    );
    // The last call outlasts a reload of the lead groups, which then has no group left.
    sim.script_by_number(&[
        ("+12125550100", vec![Script::talk(30)]),
        ("+12125550101", vec![Script::Busy, Script::talk(150)]),
        ("+12125550102", vec![Script::talk(45)]),
    ]);
    let mut finished_at = None;
    for _ in 0..2000 {
        sim.step();
        if sim.state("c") == CampaignState::Finished {
            finished_at = Some(sim.now - 1);
            break;
        }
    }
    let finished_at = finished_at.expect("the campaign finished");
    let last_end = sim.finishes().iter().map(|(t, ..)| *t).max().unwrap();
    assert!(finished_at >= last_end);
    assert!(
        finished_at <= last_end + 5,
        "finished at {finished_at}, last attempt ended at {last_end}"
    );
    assert_eq!(sim.store.remaining("c"), 0);
    assert!(sim.calls.is_empty());
    let saves = sim
        .orders
        .iter()
        .filter(|(_, o)| {
            matches!(
                o,
                Order::SaveState {
                    state: CampaignState::Finished,
                    ..
                }
            )
        })
        .count();
    assert_eq!(saves, 1);
    assert_eq!(
        sim.state_events("c").last(),
        Some(&(finished_at, CampaignState::Finished))
    );
    // Nothing more is asked of the store.
    let orders = sim.orders.len();
    sim.run_for(300);
    assert_eq!(sim.orders.len(), orders);
    sim.assert_clean();
}

#[test]
fn campaign_is_not_finished_while_a_bridged_call_waits_in_wrap_up_for_its_disposition() {
    let extra = format!(
        "max_attempts = 2
default_disposition = \"nodispo\"\n{DISPOSITIONS}\
         [[disposition]]\ncode = \"nodispo\"\naction = \"retry\"\nretry_s = 600\n"
    );
    let mut sim = sim_with(&extra, &["201", "202"], &["+12125550100"]);
    sim.wrap_up_s = 30;
    sim.script(|_, _| Script::talk(20));
    assert!(sim.run_until(2000, |s| s.state("c") == CampaignState::Finished));
    let finished = sim.now;
    // The default disposition sent the lead back once, then the cap failed it.
    assert_eq!(sim.dialled.len(), 2);
    assert_eq!(sim.store.lead(1).state, LeadState::Failed);
    let second_end = sim.finish_of(sim.dialled[1].attempt).0;
    assert!(
        finished >= second_end + 30,
        "finished {finished}, ended {second_end}"
    );
    let states: Vec<CampaignState> = sim.state_events("c").into_iter().map(|e| e.1).collect();
    assert_eq!(
        states,
        vec![CampaignState::Running, CampaignState::Finished],
        "finished once, never while a disposition could reopen it"
    );
    sim.assert_clean();
}

#[test]
fn campaign_started_before_its_leads_are_imported_dials_them_once_imported() {
    let mut sim = sim_with("", &AGENTS, &[]);
    assert!(sim.run_until(10, |s| s.state("c") == CampaignState::Finished));
    sim.lead("c", "+12125550100", NY, Some("US-NY"));
    // What the runtime does after an import.
    let groups = sim.store.lead_groups("c");
    sim.engine.groups(sim.now(), "c", groups);
    sim.carry_out();
    assert_eq!(sim.state("c"), CampaignState::Running);
    assert_eq!(sim.stored_state("c"), CampaignState::Running);
    sim.run_for(5);
    assert_eq!(sim.dialled_at("+12125550100").len(), 1);
    assert!(sim.run_until(120, |s| s.state("c") == CampaignState::Finished));
    sim.assert_clean();
}

#[test]
fn campaign_with_a_lead_waiting_for_its_retry_is_not_finished() {
    let mut sim = sim_with("[retry]\nbusy_s = 3600\n", &["201"], &["+12125550100"]);
    sim.script_by_number(&[("+12125550100", vec![Script::Busy, Script::talk(30)])]);
    sim.run_for(3500);
    assert_eq!(sim.store.lead(1).state, LeadState::Retry);
    assert_eq!(sim.state("c"), CampaignState::Running);
    assert!(sim.run_until(600, |s| s.state("c") == CampaignState::Finished));
    assert_eq!(sim.store.lead(1).state, LeadState::Done);
    sim.assert_clean();
}

// ---- whole runs -----------------------------------------------------------------------

#[test]
fn number_is_never_on_two_lines_at_once_across_a_random_run_with_a_crash() {
    let extra = "max_attempts = 4\nabandoned_redial_with_agent = true\n\
                 [retry]\nbusy_s = 30\nno_answer_s = 60\nfailed_s = 45\nabandoned_s = 120\n\
                 interrupted_s = 20\n";
    for seed in [1_u64, 7, 42, 2026] {
        let mut sim = Sim::new(ten_am(), &AGENTS);
        sim.wrap_up_s = 3;
        sim.campaign(def("a", extra));
        sim.campaign(def("b", extra));
        let nums = numbers(30);
        for n in &nums {
            sim.lead("a", n, NY, Some("US-NY"));
        }
        // Campaign b shares half of a's numbers.
        for n in nums.iter().step_by(2) {
            sim.lead("b", n, NY, Some("US-NY"));
        }
        let mut rng = XorShift::new(seed);
        sim.script(move |_, _| match rng.below(6) {
            0 => Script::Busy,
            1 => Script::NoAnswer,
            2 => Script::Failed,
            3 => Script::Refused,
            4 => Script::Abandoned,
            _ => Script::talk(10 + rng.below(50) as i64),
        });
        sim.run_for(200);
        assert!(
            sim.run_until(600, |s| s.calls.len() >= 2),
            "seed {seed}: calls up"
        );
        sim.crash();
        let done = sim.run_until(20_000, |s| {
            s.state("a") == CampaignState::Finished && s.state("b") == CampaignState::Finished
        });
        assert!(done, "seed {seed}: both campaigns finish");
        sim.assert_clean();
        for l in &sim.store.leads {
            assert!(
                matches!(l.state, LeadState::Done | LeadState::Failed),
                "seed {seed}: lead {} ended {:?}",
                l.id,
                l.state
            );
            assert!(
                l.attempts <= 4,
                "seed {seed}: lead {} tried {}",
                l.id,
                l.attempts
            );
        }
        assert!(sim.store.open_attempts().is_empty());
        let shared = &nums[0];
        let campaigns: std::collections::BTreeSet<&str> = sim
            .dialled
            .iter()
            .filter(|d| &d.number == shared)
            .map(|d| d.campaign.as_str())
            .collect();
        assert_eq!(
            campaigns.len(),
            2,
            "seed {seed}: both campaigns dialled {shared}"
        );
        assert!(
            sim.finishes()
                .iter()
                .any(|(_, _, f)| f.outcome == AttemptOutcome::Interrupted),
            "seed {seed}: the crash cut calls"
        );
    }
}

#[test]
fn whole_campaign_of_40_leads_and_3_agents_ends_each_lead_in_its_right_state() {
    let extra = format!(
        "max_attempts = 3\ndnc = [\"global\"]\n\
         [retry]\nbusy_s = 300\nno_answer_s = 600\nabandoned_s = 259200\n{DISPOSITIONS}"
    );
    let mut sim = Sim::new(local(New_York, 2026, 6, 10, 9, 0, 0), &AGENTS);
    sim.wrap_up_s = 10;
    sim.campaign(def("c", &extra));
    let nums = numbers(40);
    for n in &nums {
        sim.lead("c", n, NY, Some("US-NY"));
    }
    // By number: (scripts of its attempts, final state, attempts).
    let plan = |i: usize| -> (Vec<Script>, LeadState, u32) {
        match i % 8 {
            0 => (vec![Script::talk(60)], LeadState::Done, 1),
            1 => (vec![Script::Busy], LeadState::Failed, 3),
            2 => (vec![Script::Busy, Script::talk(40)], LeadState::Done, 2),
            3 => (vec![], LeadState::Dnc, 1),
            4 => (vec![Script::Failed], LeadState::Failed, 1),
            5 => (
                vec![Script::NoAnswer, Script::NoAnswer, Script::talk(90)],
                LeadState::Done,
                3,
            ),
            6 => (
                vec![Script::Bridged {
                    talk_s: 120,
                    dispose: disposed(30, "sale", None),
                }],
                LeadState::Done,
                1,
            ),
            _ => (
                vec![Script::Abandoned, Script::talk(30)],
                LeadState::Done,
                2,
            ),
        }
    };
    let by_number: Vec<(&str, Vec<Script>)> = nums
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 8 != 3)
        .map(|(i, n)| (n.as_str(), plan(i).0))
        .collect();
    sim.script_by_number(&by_number);
    for (i, n) in nums.iter().enumerate() {
        if i % 8 == 3 {
            sim.store
                .dnc
                .entry("global".into())
                .or_default()
                .insert(n.clone());
        }
    }
    assert!(sim.run_until(4 * 86_400, |s| s.state("c") == CampaignState::Finished));
    sim.assert_clean();
    for (i, n) in nums.iter().enumerate() {
        let lead = sim.store.lead(i as i64 + 1);
        let (_, state, attempts) = plan(i);
        assert_eq!(
            (lead.state, lead.attempts),
            (state, attempts),
            "lead {i} ({n})"
        );
        let expected_calls = if state == LeadState::Dnc {
            0
        } else {
            attempts as usize
        };
        assert_eq!(sim.dialled_at(n).len(), expected_calls, "lead {i} ({n})");
    }
    // The abandoned leads waited their 72 h.
    for (i, n) in nums.iter().enumerate().filter(|(i, _)| i % 8 == 7) {
        let times = sim.dialled_at(n);
        assert!(times[1] - times[0] >= 259_200, "lead {i}: {times:?}");
    }
    assert!(sim.store.open_attempts().is_empty());
    assert_eq!(sim.stored_state("c"), CampaignState::Finished);
}

// ---- abandon counts ---------------------------------------------------------------------

#[test]
fn abandon_window_counts_bridged_abandoned_and_agent_marked_machines() {
    let extra = "[[disposition]]\ncode = \"machine\"\naction = \"final\"\nmachine = true\n";
    let mut sim = sim_with(
        extra,
        &AGENTS[..1],
        &["+12125550001", "+12125550002", "+12125550003"],
    );
    sim.script(|number, _| match number {
        "+12125550001" => Script::Bridged {
            talk_s: 20,
            dispose: Some(Dispose {
                after_s: 5,
                code: "machine".into(),
                callback_at: None,
            }),
        },
        "+12125550002" => Script::Abandoned,
        _ => Script::talk(20),
    });
    sim.run_for(300);
    let counts = sim.engine.abandon_counts("c").expect("campaign loaded");
    assert_eq!(
        (counts.bridged, counts.machines, counts.abandoned),
        (2, 1, 1),
        "{counts:?}"
    );
    // Ofcom: 1 drop × (1 − 1 machine / (1 + 1 live person)) = 0.5 over 1.5 live calls.
    assert!((counts.abandon_rate() - 0.5 / 1.5).abs() < 1e-9);
    sim.assert_clean();
}

#[test]
fn a_drop_group_counts_every_member_and_a_campaign_outside_it_has_none() {
    let def = |name: &str, group: Option<&str>| {
        let group = group.map_or(String::new(), |g| format!("drop_group = \"{g}\"\n"));
        campaign::definition::CampaignDef::parse(
            "g.toml",
            &format!("name = \"{name}\"\npool = \"sales\"\npacing = \"predictive\"\n{group}"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut engine = campaign::engine::Engine::new();
    engine.add_campaign(def("a", Some("floor")), CampaignState::Paused);
    engine.add_campaign(def("b", Some("floor")), CampaignState::Paused);
    engine.add_campaign(def("c", None), CampaignState::Paused);
    let now = 1_796_000_000;
    for i in 0..10 {
        engine.count_answered("a", now - i, i != 0);
        engine.count_answered("b", now - i, i > 2);
        engine.count_answered("c", now - i, false);
    }
    let (group, counts) = engine.group_counts("a").expect("a is in a group");
    assert_eq!(group, "floor");
    assert_eq!((counts.bridged, counts.abandoned), (16, 4), "{counts:?}");
    assert_eq!(engine.group_counts("b").map(|(_, c)| c), Some(counts));
    assert_eq!(engine.group_counts("c"), None);
    // A member counting over another window (or to another cap) cannot join.
    let other = campaign::definition::CampaignDef::parse(
        "g.toml",
        "name = \"d\"\npool = \"sales\"\npacing = \"predictive\"\ndrop_group = \"floor\"\n\
         abandon_window = \"24h\"\n",
    )
    .unwrap();
    let why = engine.group_conflict(&other).expect("a conflict");
    assert!(why.contains("counts 3% over 30d"), "{why}");
    assert_eq!(engine.group_conflict(&def("e", Some("floor"))), None);
    assert_eq!(engine.group_conflict(&def("f", Some("other"))), None);
}

#[test]
fn a_restart_counts_the_machines_agents_marked_before_it() {
    let def = campaign::definition::CampaignDef::parse(
        "m.toml",
        "name = \"m\"\npool = \"sales\"\npacing = \"predictive\"\n\
         [[disposition]]\ncode = \"machine\"\naction = \"final\"\nmachine = true\n\
         [[disposition]]\ncode = \"sale\"\naction = \"final\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut engine = campaign::engine::Engine::new();
    engine.add_campaign(def, CampaignState::Paused);
    let now = 1_796_000_000;
    engine.count_answered("m", now, true);
    engine.count_answered("m", now, true);
    engine.count_answered("m", now, false);
    engine.count_disposition("m", now, "machine");
    engine.count_disposition("m", now, "sale");
    engine.count_disposition("m", now, "unknown");
    let counts = engine.abandon_counts("m").expect("loaded");
    assert_eq!(
        (counts.bridged, counts.machines, counts.abandoned),
        (2, 1, 1),
        "{counts:?}"
    );
    // Ofcom: 1 drop x (1 - 1 machine / (1 + 1 live person)) = 0.5 over 1.5 live calls.
    assert!((counts.abandon_rate() - 0.5 / 1.5).abs() < 1e-9);
}
