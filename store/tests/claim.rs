//! The lead claim: order, groups, due times, numbers under way, the 24 h cap, and two
//! connections claiming from one file at once.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use campaign::{AttemptOutcome, LeadNext, LeadState};
use common::*;
use store::{SqliteStore, Store};

const NOW: i64 = 1_700_000_000;

#[test]
fn callbacks_come_first_then_retries_by_due_time_then_new_leads_in_import_order() {
    let mut store = store_with_campaign("c");
    import(
        &mut store,
        "c",
        (1..=7)
            .map(|i| lead(i + 1, &format!("+1555000000{i}"), NY))
            .collect(),
    );
    // Leads 1..=4 get one attempt each and come back as: 1 retry at +300, 2 callback at +200,
    // 3 retry at +100, 4 callback at +400.
    let first = store.claim("c", NOW, &[open(NY)], 4).unwrap();
    assert_eq!(
        numbers(&first),
        [
            "+15550000001",
            "+15550000002",
            "+15550000003",
            "+15550000004"
        ]
    );
    let nexts = [
        LeadNext::Retry { at: NOW + 300 },
        LeadNext::Callback {
            at: NOW + 200,
            agent: Some("1001".into()),
        },
        LeadNext::Retry { at: NOW + 100 },
        LeadNext::Callback {
            at: NOW + 400,
            agent: None,
        },
    ];
    for (claimed, next) in first.iter().zip(nexts) {
        store
            .finish_attempt(
                claimed.attempt,
                &end(NOW + 30, AttemptOutcome::NoAnswer, next),
                None,
            )
            .unwrap();
    }

    let later = NOW + 1_000;
    let order = store.claim("c", later, &[open(NY)], 10).unwrap();
    assert_eq!(
        numbers(&order),
        [
            "+15550000002", // callback due +200
            "+15550000004", // callback due +400
            "+15550000003", // retry due +100
            "+15550000001", // retry due +300
            "+15550000005", // new, by id
            "+15550000006",
            "+15550000007",
        ]
    );
    let states: Vec<LeadState> = order.iter().map(|c| c.state).collect();
    assert_eq!(
        states,
        [
            LeadState::Callback,
            LeadState::Callback,
            LeadState::Retry,
            LeadState::Retry,
            LeadState::New,
            LeadState::New,
            LeadState::New
        ]
    );
    // Attempt ids follow the claim order.
    assert!(order.windows(2).all(|w| w[0].attempt < w[1].attempt));
}

#[test]
fn a_limited_claim_takes_the_best_leads_across_groups() {
    let mut store = store_with_campaign("c");
    import(
        &mut store,
        "c",
        vec![
            lead(2, "+15550000001", NY),
            lead(3, "+15550000002", LA),
            lead(4, "+15550000003", NY),
        ],
    );
    let la = store.claim("c", NOW, &[open(LA)], 1).unwrap();
    store
        .finish_attempt(
            la[0].attempt,
            &end(NOW, AttemptOutcome::Busy, LeadNext::Retry { at: NOW + 60 }),
            None,
        )
        .unwrap();
    // The LA retry outranks NY's new leads; then new leads go by id across both groups.
    let groups = [open(NY), open(LA)];
    let one = store.claim("c", NOW + 60, &groups, 1).unwrap();
    assert_eq!(numbers(&one), ["+15550000002"]);
    let two = store.claim("c", NOW + 60, &groups, 1).unwrap();
    assert_eq!(numbers(&two), ["+15550000001"]);
}

#[test]
fn claim_returns_the_attempt_number_fields_last_outcome_and_callback_agent() {
    let mut store = store_with_campaign("c");
    import(&mut store, "c", vec![lead(2, "+15550000001", NY)]);
    let first = store.claim("c", NOW, &[open(NY)], 5).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt_no, 1);
    assert_eq!(first[0].state, LeadState::New);
    assert_eq!(first[0].fields, vec![("name".into(), "Lead 2".into())]);
    assert_eq!(first[0].last_outcome, None);
    assert_eq!(first[0].callback_agent, None);
    store
        .finish_attempt(
            first[0].attempt,
            &end(
                NOW + 40,
                AttemptOutcome::Bridged,
                LeadNext::Callback {
                    at: NOW + 3_600,
                    agent: Some("1001".into()),
                },
            ),
            None,
        )
        .unwrap();
    let second = store.claim("c", NOW + 3_600, &[open(NY)], 5).unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].lead, first[0].lead);
    assert_eq!(second[0].attempt_no, 2);
    assert_ne!(second[0].attempt, first[0].attempt);
    assert_eq!(second[0].state, LeadState::Callback);
    assert_eq!(second[0].last_outcome, Some(AttemptOutcome::Bridged));
    assert_eq!(second[0].callback_agent.as_deref(), Some("1001"));
}

#[test]
fn only_leads_of_open_groups_are_claimed_and_no_region_matches_only_no_region() {
    let mut store = store_with_campaign("c");
    import(
        &mut store,
        "c",
        vec![
            lead(2, "+15550000001", NY),
            lead(3, "+15550000002", FL),
            lead(4, "+15550000003", LA),
            lead(5, "+15550000004", NO_REGION),
            lead(6, "+15550000005", ("America/Chicago", Some("US-IL"))),
        ],
    );
    assert!(store.claim("c", NOW, &[], 10).unwrap().is_empty());
    let fl = store.claim("c", NOW, &[open(FL)], 10).unwrap();
    assert_eq!(numbers(&fl), ["+15550000002"]);
    let chicago_no_region = store.claim("c", NOW, &[open(NO_REGION)], 10).unwrap();
    assert_eq!(numbers(&chicago_no_region), ["+15550000004"]);
    // The same group twice claims its leads once.
    let la = store.claim("c", NOW, &[open(LA), open(LA)], 10).unwrap();
    assert_eq!(numbers(&la), ["+15550000003"]);
    let rest = store
        .claim(
            "c",
            NOW,
            &[open(NY), open(("America/Chicago", Some("US-IL")))],
            10,
        )
        .unwrap();
    assert_eq!(numbers(&rest), ["+15550000001", "+15550000005"]);
}

#[test]
fn a_lead_is_not_claimed_before_it_is_due_nor_while_it_is_being_dialled() {
    let mut store = store_with_campaign("c");
    import(&mut store, "c", vec![lead(2, "+15550000001", NY)]);
    let first = store.claim("c", NOW, &[open(NY)], 1).unwrap();
    assert!(store.claim("c", NOW, &[open(NY)], 1).unwrap().is_empty());
    store
        .finish_attempt(
            first[0].attempt,
            &end(
                NOW + 20,
                AttemptOutcome::Busy,
                LeadNext::Retry { at: NOW + 600 },
            ),
            None,
        )
        .unwrap();
    assert!(store
        .claim("c", NOW + 599, &[open(NY)], 1)
        .unwrap()
        .is_empty());
    assert_eq!(
        store.claim("c", NOW + 600, &[open(NY)], 1).unwrap().len(),
        1
    );
}

#[test]
fn a_number_with_a_call_under_way_in_another_campaign_waits() {
    let mut store = store_with_campaign("a");
    store.create_campaign("b", "", 1_000).unwrap();
    import(&mut store, "a", vec![lead(2, "+15550000001", NY)]);
    import(
        &mut store,
        "b",
        vec![lead(2, "+15550000001", NY), lead(3, "+15550000002", NY)],
    );
    let a = store.claim("a", NOW, &[open(NY)], 10).unwrap();
    assert_eq!(numbers(&a), ["+15550000001"]);
    let b = store.claim("b", NOW, &[open(NY)], 10).unwrap();
    assert_eq!(numbers(&b), ["+15550000002"]);
    store
        .finish_attempt(
            a[0].attempt,
            &end(NOW + 10, AttemptOutcome::NoAnswer, LeadNext::Failed),
            None,
        )
        .unwrap();
    let b = store.claim("b", NOW + 10, &[open(NY)], 10).unwrap();
    assert_eq!(numbers(&b), ["+15550000001"]);
}

#[test]
fn the_24h_cap_holds_a_number_until_its_oldest_attempt_is_a_day_old() {
    let mut store = store_with_campaign("c");
    store.create_campaign("other", "", 1_000).unwrap();
    import(&mut store, "c", vec![lead(2, "+15550000001", FL)]);
    import(&mut store, "other", vec![lead(2, "+15550000001", FL)]);
    let retry = |at| LeadNext::Retry { at };
    // One attempt from the other campaign and two from this one, an hour apart.
    let t0 = NOW;
    let o = store.claim("other", t0, &[capped(FL, 3)], 1).unwrap();
    store
        .finish_attempt(
            o[0].attempt,
            &end(t0 + 30, AttemptOutcome::Busy, LeadNext::Done),
            None,
        )
        .unwrap();
    for hour in 1..=2 {
        let at = t0 + hour * 3_600;
        let c = store.claim("c", at, &[capped(FL, 3)], 1).unwrap();
        assert_eq!(c.len(), 1, "attempt {hour} is under the cap");
        store
            .finish_attempt(
                c[0].attempt,
                &end(at + 30, AttemptOutcome::Busy, retry(at + 60)),
                None,
            )
            .unwrap();
    }
    // Three attempts started in the last 24 h, across campaigns: the number waits...
    let at = t0 + 3 * 3_600;
    assert!(store
        .claim("c", at, &[capped(FL, 3)], 1)
        .unwrap()
        .is_empty());
    // ... until the first attempt, at t0, falls out of (now - 86400, now].
    assert!(store
        .claim("c", t0 + 86_399, &[capped(FL, 3)], 1)
        .unwrap()
        .is_empty());
    let c = store.claim("c", t0 + 86_400, &[capped(FL, 3)], 1).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].attempt_no, 3);
}

#[test]
fn a_cap_applies_only_to_its_own_group() {
    let mut store = store_with_campaign("c");
    import(
        &mut store,
        "c",
        vec![lead(2, "+15550000001", FL), lead(3, "+15550000002", NY)],
    );
    let both = [capped(FL, 1), open(NY)];
    let first = store.claim("c", NOW, &both, 10).unwrap();
    assert_eq!(first.len(), 2);
    for claimed in &first {
        store
            .finish_attempt(
                claimed.attempt,
                &end(
                    NOW + 5,
                    AttemptOutcome::Busy,
                    LeadNext::Retry { at: NOW + 60 },
                ),
                None,
            )
            .unwrap();
    }
    let again = store.claim("c", NOW + 60, &both, 10).unwrap();
    assert_eq!(numbers(&again), ["+15550000002"]);
}

#[test]
fn an_unknown_campaign_is_an_error() {
    let mut store = store_with_campaign("c");
    assert!(matches!(
        store.claim("nope", NOW, &[open(NY)], 1),
        Err(store::StoreError::NoSuchCampaign(name)) if name == "nope"
    ));
}

/// Two stores on one file, each in its own thread, claim from two campaigns that share every
/// number. No attempt is finished, so any lead or number handed out twice is a double call.
#[test]
fn two_connections_claiming_at_once_never_share_a_lead_or_a_number() {
    const LEADS: u64 = 400;
    let dir = TempDir::new("concurrent-claims");
    let path = dir.file("dialer.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        for name in ["a", "b"] {
            store.create_campaign(name, "", 1_000).unwrap();
            import(
                &mut store,
                name,
                (0..LEADS)
                    .map(|i| lead(i + 2, &format!("+1555{i:07}"), NY))
                    .collect(),
            );
        }
    }
    let start = Arc::new(Barrier::new(2));
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            let path = path.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let mut store = SqliteStore::open(&path).unwrap();
                let mut claimed = Vec::new();
                start.wait();
                let mut round = 0u64;
                loop {
                    // Each worker alternates campaigns, the two in opposite phase.
                    let campaign = if (round + worker).is_multiple_of(2) {
                        "a"
                    } else {
                        "b"
                    };
                    let got = store
                        .claim(campaign, NOW, &[open(NY)], 1 + (round % 7) as u32)
                        .unwrap();
                    round += 1;
                    if got.is_empty() && round > 4 {
                        let other = if campaign == "a" { "b" } else { "a" };
                        if store.claim(other, NOW, &[open(NY)], 1).unwrap().is_empty() {
                            break;
                        }
                        panic!("a lead was left in {other} while {campaign} was empty");
                    }
                    claimed.extend(got.into_iter().map(|c| (campaign, c.lead, c.number)));
                }
                claimed
            })
        })
        .collect();
    let claimed: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("a claiming thread panicked"))
        .collect();

    let mut leads = HashSet::new();
    let mut numbers = HashSet::new();
    for (campaign, lead, number) in &claimed {
        assert!(
            leads.insert((*campaign, *lead)),
            "lead {lead} claimed twice"
        );
        assert!(
            numbers.insert(number.clone()),
            "{number} dialled twice at once"
        );
    }
    // Every number was dialled once, from one campaign or the other.
    assert_eq!(numbers.len() as u64, LEADS);

    let store = SqliteStore::open(&path).unwrap();
    let open = store.open_attempts().unwrap();
    assert_eq!(open.len() as u64, LEADS);
    let distinct: HashSet<_> = open.iter().map(|a| &a.number).collect();
    assert_eq!(distinct.len(), open.len(), "a number has two open attempts");
}

/// Two stores on one file claiming and finishing in a loop: at no point does a number have
/// two open attempts.
#[test]
fn two_connections_claiming_and_finishing_never_open_a_number_twice() {
    let dir = TempDir::new("claim-finish");
    let path = dir.file("dialer.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        for name in ["a", "b"] {
            store.create_campaign(name, "", 1_000).unwrap();
            import(
                &mut store,
                name,
                (0..20)
                    .map(|i| lead(i + 2, &format!("+1555{i:07}"), NY))
                    .collect(),
            );
        }
    }
    let workers: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|campaign| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = SqliteStore::open(&path).unwrap();
                let check = rusqlite::Connection::open(&path).unwrap();
                for round in 0..150 {
                    let now = NOW + round;
                    let got = store.claim(campaign, now, &[open(NY)], 3).unwrap();
                    let doubled: i64 = check
                        .query_row(
                            "SELECT count(*) FROM (SELECT number FROM attempts
                             WHERE ended IS NULL GROUP BY number HAVING count(*) > 1)",
                            [],
                            |row| row.get(0),
                        )
                        .unwrap();
                    assert_eq!(doubled, 0, "a number has two open attempts");
                    for c in got {
                        store
                            .finish_attempt(
                                c.attempt,
                                &end(now, AttemptOutcome::NoAnswer, LeadNext::Retry { at: now }),
                                None,
                            )
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a claiming thread panicked");
    }
    let store = SqliteStore::open(&path).unwrap();
    assert!(store.open_attempts().unwrap().is_empty());
    let dialled = store.counts("a").unwrap().dialled + store.counts("b").unwrap().dialled;
    assert!(dialled > 100, "only {dialled} attempts");
}
