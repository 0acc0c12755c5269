//! Everything but the claim's selection: schema, campaigns, import, finishing attempts, crash
//! recovery, DNC, export, counts and the call journal.

mod common;

use std::ops::ControlFlow;

use campaign::{AttemptOutcome, LeadNext, LeadState, RejectReason, RejectedRow};
use common::*;
use store::{AttemptEnd, JournalWrite, SqliteStore, Store, StoreError};

const NOW: i64 = 1_700_000_000;

#[test]
fn an_empty_file_gets_the_schema_and_keeps_its_data_when_reopened() {
    let dir = TempDir::new("migrate");
    let path = dir.file("dialer.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), SqliteStore::SCHEMA_VERSION);
        store.create_campaign("c", "def", 5).unwrap();
        import(&mut store, "c", vec![lead(2, "+15550000001", NY)]);
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), SqliteStore::SCHEMA_VERSION);
    assert_eq!(store.campaign("c").unwrap().definition, "def");
    assert_eq!(store.export("c", None).unwrap().len(), 1);

    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_file_from_a_newer_dialer_is_refused() {
    let dir = TempDir::new("too-new");
    let path = dir.file("dialer.db");
    drop(SqliteStore::open(&path).unwrap());
    let newer = SqliteStore::SCHEMA_VERSION + 1;
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::TooNew { found, supported }) => {
            assert_eq!(found, newer);
            assert_eq!(supported, SqliteStore::SCHEMA_VERSION);
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
}

#[test]
fn campaigns_are_created_once_listed_by_name_changed_and_deleted() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let b = store.create_campaign("b", "[b]", 10).unwrap();
    assert_eq!(b.state, "created");
    assert_eq!(b.created, 10);
    store.create_campaign("a", "[a]", 11).unwrap();
    assert!(matches!(
        store.create_campaign("a", "again", 12),
        Err(StoreError::CampaignExists(name)) if name == "a"
    ));
    let names: Vec<_> = store
        .campaigns()
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    store.set_campaign_state("b", "running").unwrap();
    assert_eq!(store.campaign("b").unwrap().state, "running");
    assert!(matches!(
        store.set_campaign_state("x", "running"),
        Err(StoreError::NoSuchCampaign(_))
    ));
    assert!(matches!(
        store.campaign("x"),
        Err(StoreError::NoSuchCampaign(_))
    ));

    import(&mut store, "b", vec![lead(2, "+15550000001", NY)]);
    let claimed = store.claim("b", NOW, &[open(NY)], 1).unwrap();
    store.attempt_placed(claimed[0].attempt, "call-1").unwrap();
    store.delete_campaign("b").unwrap();
    assert!(matches!(
        store.campaign("b"),
        Err(StoreError::NoSuchCampaign(_))
    ));
    assert!(store.open_attempts().unwrap().is_empty());
    assert_eq!(store.attempt_for_call("call-1").unwrap(), None);
    assert!(matches!(
        store.delete_campaign("b"),
        Err(StoreError::NoSuchCampaign(_))
    ));
    // A campaign of the same name starts empty.
    store.create_campaign("b", "", 20).unwrap();
    import(&mut store, "b", vec![lead(2, "+15550000001", NY)]);
    assert_eq!(store.counts("b").unwrap().dialled, 0);
}

#[test]
fn import_rejects_duplicates_and_dnc_numbers_with_their_lines_and_keeps_passed_rejections() {
    let mut store = store_with_campaign("c");
    store
        .dnc_add("national", &["+15550000003".into()], 1)
        .unwrap();
    store
        .dnc_add("internal", &["+15550000004".into()], 1)
        .unwrap();
    import(&mut store, "c", vec![lead(2, "+15550000001", NY)]);

    let bad_number = RejectedRow {
        line: 5,
        number: Some("12".into()),
        reason: RejectReason::BadNumber("too short".into()),
    };
    let rows = vec![
        Ok(lead(2, "+15550000001", NY)), // in the campaign from the first import
        Ok(lead(3, "+15550000002", NY)),
        Ok(lead(4, "+15550000003", NY)), // on the national list
        Err(bad_number.clone()),
        Ok(lead(6, "+15550000002", LA)), // twice in this file
        Ok(lead(7, "+15550000004", NY)), // on the internal list
        Ok(lead(8, "+15550000005", NO_REGION)),
    ];
    let lists = vec!["national".to_string(), "internal".to_string()];
    let report = store
        .import_leads("c", &mut rows.into_iter(), &lists)
        .unwrap();
    assert_eq!(report.imported, 2);
    assert_eq!(
        report.rejected,
        vec![
            RejectedRow {
                line: 2,
                number: Some("+15550000001".into()),
                reason: RejectReason::Duplicate
            },
            RejectedRow {
                line: 4,
                number: Some("+15550000003".into()),
                reason: RejectReason::Dnc("national".into())
            },
            bad_number,
            RejectedRow {
                line: 6,
                number: Some("+15550000002".into()),
                reason: RejectReason::Duplicate
            },
            RejectedRow {
                line: 7,
                number: Some("+15550000004".into()),
                reason: RejectReason::Dnc("internal".into())
            },
        ]
    );
    let leads = store.export("c", None).unwrap();
    let imported: Vec<_> = leads
        .iter()
        .map(|l| (l.number.as_str(), &l.group))
        .collect();
    assert_eq!(
        imported,
        [
            ("+15550000001", &group(NY)),
            ("+15550000002", &group(NY)),
            ("+15550000005", &group(NO_REGION)),
        ]
    );
    assert!(matches!(
        store.import_leads("nope", &mut std::iter::empty(), &[]),
        Err(StoreError::NoSuchCampaign(_))
    ));
}

#[test]
fn the_same_number_may_be_in_two_campaigns() {
    let mut store = store_with_campaign("a");
    store.create_campaign("b", "", 1).unwrap();
    import(&mut store, "a", vec![lead(2, "+15550000001", NY)]);
    import(&mut store, "b", vec![lead(2, "+15550000001", NY)]);
}

#[test]
fn finishing_an_attempt_moves_its_lead_and_closes_it_once() {
    let mut store = store_with_campaign("c");
    import(
        &mut store,
        "c",
        (1..=5)
            .map(|i| lead(i + 1, &format!("+1555000000{i}"), NY))
            .collect(),
    );
    let claimed = store.claim("c", NOW, &[open(NY)], 5).unwrap();
    let nexts = [
        LeadNext::Done,
        LeadNext::Retry { at: NOW + 900 },
        LeadNext::Callback {
            at: NOW + 7_200,
            agent: Some("1002".into()),
        },
        LeadNext::Dnc,
        LeadNext::Failed,
    ];
    for (c, next) in claimed.iter().zip(nexts.clone()) {
        let end = AttemptEnd {
            agent: Some("1002".into()),
            ..end(NOW + 50, AttemptOutcome::Bridged, next)
        };
        store
            .finish_attempt(c.attempt, &end, Some("internal"))
            .unwrap();
    }
    let leads = store.export("c", None).unwrap();
    let moved: Vec<_> = leads
        .iter()
        .map(|l| (l.state, l.next_at, l.callback_agent.as_deref()))
        .collect();
    assert_eq!(
        moved,
        [
            (LeadState::Done, None, None),
            (LeadState::Retry, Some(NOW + 900), None),
            (LeadState::Callback, Some(NOW + 7_200), Some("1002")),
            (LeadState::Dnc, None, None),
            (LeadState::Failed, None, None),
        ]
    );
    assert!(leads
        .iter()
        .all(|l| l.last_outcome == Some(AttemptOutcome::Bridged)));
    let attempt = &leads[0].attempts[0];
    assert_eq!(attempt.ended, Some(NOW + 50));
    assert_eq!(attempt.outcome, Some(AttemptOutcome::Bridged));
    assert_eq!(attempt.call_outcome.as_deref(), Some("bridged"));
    assert!(attempt.answered);
    assert_eq!(attempt.agent.as_deref(), Some("1002"));
    // The DNC next put the number on the given list.
    assert_eq!(store.dnc_list("internal").unwrap(), ["+15550000004"]);

    let again = end(NOW + 60, AttemptOutcome::Busy, LeadNext::Done);
    let first = claimed[0].attempt;
    assert!(matches!(
        store.finish_attempt(first, &again, None),
        Err(StoreError::NoSuchAttempt(id)) if id == first
    ));
    assert!(matches!(
        store.finish_attempt(9_999, &again, None),
        Err(StoreError::NoSuchAttempt(9_999))
    ));
    assert!(matches!(
        store.attempt_placed(first, "late"),
        Err(StoreError::NoSuchAttempt(_))
    ));
    assert!(matches!(
        store.attempt_answered(first),
        Err(StoreError::NoSuchAttempt(_))
    ));
    // A finished lead is never claimed again.
    assert!(
        store
            .claim("c", NOW + 100_000, &[open(NY)], 10)
            .unwrap()
            .len()
            == 2
    );
}

#[test]
fn placed_and_answered_attempts_are_found_by_call_and_counted() {
    let mut store = store_with_campaign("c");
    import(
        &mut store,
        "c",
        vec![lead(2, "+15550000001", NY), lead(3, "+15550000002", NY)],
    );
    let claimed = store.claim("c", NOW, &[open(NY)], 2).unwrap();
    store.attempt_placed(claimed[0].attempt, "call-a").unwrap();
    store.attempt_answered(claimed[0].attempt).unwrap();
    let found = store.attempt_for_call("call-a").unwrap().unwrap();
    assert_eq!(found.attempt, claimed[0].attempt);
    assert_eq!(found.lead, claimed[0].lead);
    assert_eq!(found.campaign, "c");
    assert_eq!(found.number, "+15550000001");
    assert_eq!(found.attempt_no, 1);
    assert_eq!(found.started, NOW);
    assert_eq!(found.call.as_deref(), Some("call-a"));
    assert_eq!(store.attempt_for_call("call-b").unwrap(), None);
    // The end says not answered; the earlier answer stands.
    let abandoned = AttemptEnd {
        answered: false,
        ..end(
            NOW + 9,
            AttemptOutcome::Abandoned,
            LeadNext::Retry { at: NOW + 60 },
        )
    };
    store
        .finish_attempt(claimed[0].attempt, &abandoned, None)
        .unwrap();
    let counts = store.counts("c").unwrap();
    assert_eq!(counts.dialled, 2);
    assert_eq!(counts.answered, 1);
    assert_eq!(counts.abandoned, 1);
    assert_eq!(counts.bridged, 0);
}

#[test]
fn a_disposition_on_a_closed_attempt_moves_the_lead_and_can_add_it_to_dnc() {
    let mut store = store_with_campaign("c");
    import(
        &mut store,
        "c",
        vec![lead(2, "+15550000001", NY), lead(3, "+15550000002", NY)],
    );
    let claimed = store.claim("c", NOW, &[open(NY)], 2).unwrap();
    for c in &claimed {
        store
            .finish_attempt(
                c.attempt,
                &end(NOW + 60, AttemptOutcome::Bridged, LeadNext::Done),
                None,
            )
            .unwrap();
    }
    let callback = LeadNext::Callback {
        at: NOW + 86_400,
        agent: Some("1001".into()),
    };
    store
        .set_disposition(
            claimed[0].attempt,
            "callback",
            Some("after 5"),
            Some(&callback),
            None,
            NOW + 90,
        )
        .unwrap();
    store
        .set_disposition(
            claimed[1].attempt,
            "dnc",
            None,
            Some(&LeadNext::Dnc),
            Some("internal"),
            NOW + 95,
        )
        .unwrap();
    let leads = store.export("c", None).unwrap();
    assert_eq!(leads[0].state, LeadState::Callback);
    assert_eq!(leads[0].next_at, Some(NOW + 86_400));
    assert_eq!(leads[0].callback_agent.as_deref(), Some("1001"));
    assert_eq!(leads[0].last_outcome, Some(AttemptOutcome::Bridged));
    assert_eq!(
        leads[0].attempts[0].disposition.as_deref(),
        Some("callback")
    );
    assert_eq!(leads[0].attempts[0].note.as_deref(), Some("after 5"));
    assert_eq!(leads[1].state, LeadState::Dnc);
    assert_eq!(
        store
            .dnc_find(&["internal".into()], "+15550000002")
            .unwrap()
            .as_deref(),
        Some("internal")
    );
    // A disposition alone leaves the lead where it is.
    store
        .set_disposition(claimed[0].attempt, "sale", None, None, None, NOW + 99)
        .unwrap();
    assert_eq!(
        store.export("c", None).unwrap()[0].state,
        LeadState::Callback
    );
    assert!(matches!(
        store.set_disposition(9_999, "x", None, None, None, NOW),
        Err(StoreError::NoSuchAttempt(9_999))
    ));
}

/// The dialer is killed between the claim and the end of the call: the attempt is on disk,
/// the restart finishes it as interrupted, and the lead waits for its retry time.
#[test]
fn a_lead_is_never_dialled_twice_after_a_crash_and_retries_at_its_time() {
    let dir = TempDir::new("crash");
    let path = dir.file("dialer.db");
    let claimed = {
        let mut store = SqliteStore::open(&path).unwrap();
        store.create_campaign("c", "", 1).unwrap();
        import(&mut store, "c", vec![lead(2, "+15550000001", NY)]);
        let claimed = store.claim("c", NOW, &[open(NY)], 1).unwrap();
        store.attempt_placed(claimed[0].attempt, "call-1").unwrap();
        // Never closed, so no checkpoint on close: the commits live only in the WAL, as
        // after kill -9.
        std::mem::forget(store);
        claimed
    };
    let mut store = SqliteStore::open(&path).unwrap();
    assert!(store
        .claim("c", NOW + 5, &[open(NY)], 1)
        .unwrap()
        .is_empty());
    let open_attempts = store.open_attempts().unwrap();
    assert_eq!(open_attempts.len(), 1);
    let interrupted = &open_attempts[0];
    assert_eq!(interrupted.attempt, claimed[0].attempt);
    assert_eq!(interrupted.lead, claimed[0].lead);
    assert_eq!(interrupted.campaign, "c");
    assert_eq!(interrupted.number, "+15550000001");
    assert_eq!(interrupted.started, NOW);
    assert_eq!(interrupted.call.as_deref(), Some("call-1"));

    let restart = NOW + 120;
    let end = AttemptEnd {
        ended: restart,
        outcome: AttemptOutcome::Interrupted,
        call_outcome: None,
        answered: false,
        agent: None,
        next: LeadNext::Retry { at: restart + 600 },
    };
    store
        .finish_attempt(interrupted.attempt, &end, None)
        .unwrap();
    assert!(store.open_attempts().unwrap().is_empty());
    assert!(store
        .claim("c", restart, &[open(NY)], 1)
        .unwrap()
        .is_empty());
    assert!(store
        .claim("c", restart + 599, &[open(NY)], 1)
        .unwrap()
        .is_empty());
    let again = store.claim("c", restart + 600, &[open(NY)], 1).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt_no, 2);
    assert_eq!(again[0].last_outcome, Some(AttemptOutcome::Interrupted));
}

#[test]
fn open_attempts_are_listed_oldest_first() {
    let mut store = store_with_campaign("c");
    import(
        &mut store,
        "c",
        (1..=3)
            .map(|i| lead(i + 1, &format!("+1555000000{i}"), NY))
            .collect(),
    );
    let late = store.claim("c", NOW + 10, &[open(NY)], 1).unwrap();
    let early = store.claim("c", NOW, &[open(NY)], 1).unwrap();
    let listed: Vec<_> = store
        .open_attempts()
        .unwrap()
        .iter()
        .map(|a| a.attempt)
        .collect();
    assert_eq!(listed, [early[0].attempt, late[0].attempt]);
}

#[test]
fn dnc_lists_add_remove_list_and_find() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let numbers = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        store
            .dnc_add("a", &numbers(&["+3", "+1", "+2"]), 1)
            .unwrap(),
        3
    );
    assert_eq!(store.dnc_add("a", &numbers(&["+2", "+4"]), 2).unwrap(), 1);
    assert_eq!(store.dnc_add("b", &numbers(&["+2"]), 3).unwrap(), 1);
    assert_eq!(store.dnc_list("a").unwrap(), ["+1", "+2", "+3", "+4"]);
    assert_eq!(store.dnc_list("c").unwrap(), Vec::<String>::new());
    let lists = numbers(&["b", "a"]);
    assert_eq!(store.dnc_find(&lists, "+2").unwrap().as_deref(), Some("b"));
    assert_eq!(store.dnc_find(&lists, "+3").unwrap().as_deref(), Some("a"));
    assert_eq!(store.dnc_find(&lists, "+9").unwrap(), None);
    assert_eq!(store.dnc_find(&[], "+2").unwrap(), None);
    assert_eq!(store.dnc_remove("a", &numbers(&["+2", "+9"])).unwrap(), 1);
    assert_eq!(store.dnc_find(&lists, "+2").unwrap().as_deref(), Some("b"));
    assert_eq!(store.dnc_remove("b", &numbers(&["+2"])).unwrap(), 1);
    assert_eq!(store.dnc_find(&lists, "+2").unwrap(), None);
}

#[test]
fn export_lists_leads_with_their_attempts_by_id_optionally_of_one_state() {
    let mut store = store_with_campaign("c");
    store.create_campaign("other", "", 1).unwrap();
    import(&mut store, "other", vec![lead(2, "+15550000009", NY)]);
    import(
        &mut store,
        "c",
        vec![
            lead(2, "+15550000001", NY),
            lead(3, "+15550000002", LA),
            lead(4, "+15550000003", NO_REGION),
        ],
    );
    let claimed = store.claim("c", NOW, &[open(NY)], 1).unwrap();
    store.attempt_placed(claimed[0].attempt, "call-1").unwrap();
    store
        .finish_attempt(
            claimed[0].attempt,
            &end(
                NOW + 20,
                AttemptOutcome::NoAnswer,
                LeadNext::Retry { at: NOW + 60 },
            ),
            None,
        )
        .unwrap();
    let again = store.claim("c", NOW + 60, &[open(NY)], 1).unwrap();

    let all = store.export("c", None).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].lead < w[1].lead));
    let first = &all[0];
    assert_eq!(first.number, "+15550000001");
    assert_eq!(first.state, LeadState::Dialing);
    assert_eq!(first.fields, vec![("name".into(), "Lead 2".into())]);
    assert_eq!(first.attempts.len(), 2);
    assert_eq!(first.attempts[0].attempt_no, 1);
    assert_eq!(first.attempts[0].call.as_deref(), Some("call-1"));
    assert_eq!(first.attempts[0].outcome, Some(AttemptOutcome::NoAnswer));
    assert_eq!(first.attempts[1].attempt, again[0].attempt);
    assert_eq!(first.attempts[1].attempt_no, 2);
    assert_eq!(first.attempts[1].started, NOW + 60);
    assert_eq!(first.attempts[1].ended, None);
    assert_eq!(all[1].next_at, Some(0));
    assert!(all[1].attempts.is_empty());
    assert_eq!(all[2].group, group(NO_REGION));

    let new: Vec<_> = store
        .export("c", Some(LeadState::New))
        .unwrap()
        .into_iter()
        .map(|l| l.number)
        .collect();
    assert_eq!(new, ["+15550000002", "+15550000003"]);
    assert!(store.export("c", Some(LeadState::Done)).unwrap().is_empty());

    let mut seen = 0;
    store
        .export_each("c", None, &mut |_| {
            seen += 1;
            if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(seen, 2);
}

#[test]
fn counts_cover_every_state_and_follow_claims_and_finishes() {
    let mut store = store_with_campaign("c");
    let zero = store.counts("c").unwrap();
    assert_eq!(zero.leads.len(), LeadState::ALL.len());
    assert!(zero.leads.iter().all(|(_, n)| *n == 0));
    assert_eq!(zero.next_retry, None);
    assert!(matches!(
        store.counts("x"),
        Err(StoreError::NoSuchCampaign(_))
    ));

    import(
        &mut store,
        "c",
        (1..=6)
            .map(|i| lead(i + 1, &format!("+1555000000{i}"), NY))
            .collect(),
    );
    let claimed = store.claim("c", NOW, &[open(NY)], 5).unwrap();
    let ends = [
        end(NOW + 1, AttemptOutcome::Bridged, LeadNext::Done),
        end(
            NOW + 1,
            AttemptOutcome::Abandoned,
            LeadNext::Retry { at: NOW + 500 },
        ),
        end(
            NOW + 1,
            AttemptOutcome::NoAnswer,
            LeadNext::Callback {
                at: NOW + 300,
                agent: None,
            },
        ),
        end(NOW + 1, AttemptOutcome::Busy, LeadNext::Failed),
    ];
    for (c, e) in claimed.iter().zip(ends) {
        store.finish_attempt(c.attempt, &e, Some("dnc")).unwrap();
    }
    let counts = store.counts("c").unwrap();
    assert_eq!(
        counts.leads,
        vec![
            (LeadState::New, 1),
            (LeadState::Dialing, 1),
            (LeadState::Retry, 1),
            (LeadState::Callback, 1),
            (LeadState::Done, 1),
            (LeadState::Dnc, 0),
            (LeadState::Failed, 1),
        ]
    );
    assert_eq!(counts.dialled, 5);
    assert_eq!(counts.answered, 2);
    assert_eq!(counts.bridged, 1);
    assert_eq!(counts.abandoned, 1);
    assert_eq!(counts.next_retry, Some(NOW + 300));
    // The abandon window a restart counts again: answered attempts, bridged or not.
    let mut answered: Vec<(i64, bool)> = store
        .answered_since("c", NOW)
        .unwrap()
        .into_iter()
        .map(|a| (a.ended, a.bridged))
        .collect();
    answered.sort_unstable();
    assert_eq!(answered, vec![(NOW + 1, false), (NOW + 1, true)]);
    assert!(store.answered_since("c", NOW + 2).unwrap().is_empty());
    // An agent's disposition comes with it: a restart counts the machines it marked.
    store
        .set_disposition(claimed[0].attempt, "machine", None, None, None, NOW + 2)
        .unwrap();
    let marked: Vec<Option<String>> = store
        .answered_since("c", NOW)
        .unwrap()
        .into_iter()
        .filter(|a| a.bridged)
        .map(|a| a.disposition)
        .collect();
    assert_eq!(marked, vec![Some("machine".to_owned())]);

    // The counters agree with the rows they count.
    let leads = store.export("c", None).unwrap();
    for (state, n) in &counts.leads {
        assert_eq!(
            leads.iter().filter(|l| l.state == *state).count() as u64,
            *n
        );
    }
    let attempts: Vec<_> = leads.iter().flat_map(|l| &l.attempts).collect();
    assert_eq!(attempts.len() as u64, counts.dialled);
    assert_eq!(
        attempts.iter().filter(|a| a.answered).count() as u64,
        counts.answered
    );
}

#[test]
fn lead_groups_lists_the_groups_that_still_have_leads_to_dial() {
    let mut store = store_with_campaign("c");
    assert!(store.lead_groups("c").unwrap().is_empty());
    let chicago_il = ("America/Chicago", Some("US-IL"));
    import(
        &mut store,
        "c",
        vec![
            lead(2, "+15550000001", NY),
            lead(3, "+15550000002", FL),
            lead(4, "+15550000003", NY),
            lead(5, "+15550000004", chicago_il),
            lead(6, "+15550000005", NO_REGION),
            lead(7, "+15550000006", LA),
        ],
    );
    assert_eq!(
        store.lead_groups("c").unwrap(),
        vec![
            group(NO_REGION),
            group(chicago_il),
            group(LA),
            group(FL),
            group(NY)
        ]
    );
    // LA is being dialled, then done; Chicago's region-less lead is retried later.
    let la = store.claim("c", NOW, &[open(LA)], 1).unwrap();
    assert!(!store.lead_groups("c").unwrap().contains(&group(LA)));
    store
        .finish_attempt(
            la[0].attempt,
            &end(NOW, AttemptOutcome::Bridged, LeadNext::Done),
            None,
        )
        .unwrap();
    let chicago = store.claim("c", NOW, &[open(NO_REGION)], 1).unwrap();
    store
        .finish_attempt(
            chicago[0].attempt,
            &end(NOW, AttemptOutcome::Busy, LeadNext::Retry { at: NOW + 60 }),
            None,
        )
        .unwrap();
    assert_eq!(
        store.lead_groups("c").unwrap(),
        vec![group(NO_REGION), group(chicago_il), group(FL), group(NY)]
    );
}

#[test]
fn the_journal_keeps_open_calls_until_their_cdr_is_written() {
    let mut store = SqliteStore::open_in_memory().unwrap();
    store.journal_open("call-2", r#"{"n":2}"#, 20).unwrap();
    store.journal_open("call-1", r#"{"n":1}"#, 10).unwrap();
    store.journal_open("call-3", r#"{"n":3}"#, 30).unwrap();
    assert_eq!(
        store.journal_unfinished().unwrap(),
        vec![
            ("call-1".to_string(), r#"{"n":1}"#.to_string(), 10),
            ("call-2".to_string(), r#"{"n":2}"#.to_string(), 20),
            ("call-3".to_string(), r#"{"n":3}"#.to_string(), 30),
        ]
    );
    store.journal_cdr("call-2", r#"{"cdr":2}"#, 25).unwrap();
    store
        .journal_close("call-1", r#"{"cdr":1,"interrupted":true}"#, 99)
        .unwrap();
    // A CDR for a call never journalled open is kept too, and opens nothing.
    store.journal_cdr("call-9", r#"{"cdr":9}"#, 40).unwrap();
    // Opening an ended call again does not reopen it.
    store.journal_open("call-2", r#"{"n":2}"#, 20).unwrap();
    assert_eq!(
        store.journal_unfinished().unwrap(),
        vec![("call-3".to_string(), r#"{"n":3}"#.to_string(), 30)]
    );
}

#[test]
fn a_journal_batch_is_applied_in_order_and_the_call_id_floor_only_rises() {
    let dir = TempDir::new("journal-batch");
    let path = dir.file("dialer.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.call_id_floor().unwrap(), 0, "a new file");
        store
            .journal_write(&[
                JournalWrite::CallIdFloor(10_000),
                JournalWrite::Open {
                    call: "1",
                    info: "{\"a\":1}",
                    created: 5,
                },
                JournalWrite::Open {
                    call: "2",
                    info: "{}",
                    created: 6,
                },
                // Updated while open: the later info wins.
                JournalWrite::Open {
                    call: "1",
                    info: "{\"a\":2}",
                    created: 5,
                },
                JournalWrite::Close {
                    call: "2",
                    cdr: "{}",
                    ended: 7,
                },
                JournalWrite::CallIdFloor(3),
            ])
            .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.call_id_floor().unwrap(), 10_000, "never lowered");
    assert_eq!(
        store.journal_unfinished().unwrap(),
        vec![("1".to_string(), "{\"a\":2}".to_string(), 5)]
    );
}

#[test]
fn a_file_survives_reopening_with_the_journal_open() {
    let dir = TempDir::new("journal");
    let path = dir.file("dialer.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        store.journal_open("call-1", "{}", 10).unwrap();
    }
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.journal_unfinished().unwrap().len(), 1);
    store.journal_close("call-1", "{}", 11).unwrap();
    assert!(store.journal_unfinished().unwrap().is_empty());
    assert!(dir.path().exists());
}

/// Set for the child process of [`a_claim_survives_the_process_dying_right_after_it`].
const CRASH_CHILD: &str = "STORE_TEST_CRASH_CHILD_DB";

/// The child's side: claim, then die at once (no destructors, no close).
#[test]
fn crash_child_claims_then_aborts() {
    let Some(path) = std::env::var_os(CRASH_CHILD) else {
        return; // Only does something when run by the test below.
    };
    let mut store = SqliteStore::open(std::path::Path::new(&path)).unwrap();
    let claimed = store.claim("c", NOW, &[open(NY)], 1).unwrap();
    assert_eq!(claimed.len(), 1);
    std::process::abort();
}

#[test]
fn a_claim_survives_the_process_dying_right_after_it() {
    let dir = TempDir::new("abort");
    let path = dir.file("dialer.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        store.create_campaign("c", "", 1).unwrap();
        import(
            &mut store,
            "c",
            vec![lead(2, "+15550000001", NY), lead(3, "+15550000002", NY)],
        );
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child_claims_then_aborts", "--nocapture"])
        .env(CRASH_CHILD, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");

    let mut store = SqliteStore::open(&path).unwrap();
    let open_attempts = store.open_attempts().unwrap();
    assert_eq!(
        open_attempts.len(),
        1,
        "the claim was committed before it returned"
    );
    assert_eq!(open_attempts[0].number, "+15550000001");
    // The other lead is still there to dial; the claimed one is not offered again.
    let next = store.claim("c", NOW + 1, &[open(NY)], 5).unwrap();
    assert_eq!(numbers(&next), ["+15550000002"]);
}
