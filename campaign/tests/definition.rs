//! Campaign definition files: every key of the documented example read with its value, and
//! each bad key or value reported at its line and column with its key path.

use campaign::definition::*;
use chrono::{NaiveDate, NaiveTime};

const EXAMPLE: &str = r#"name = "spring"
pool = "sales"
trunk = "carrier"
caller_id = "+15550100"
pacing = "ratio"
lines_per_agent = 1.5
max_lines = 40
ring_timeout_s = 20
time_zone = "America/New_York"
max_attempts = 4
dnc = ["global", "spring"]
holidays = ["2026-12-25", 2026-01-01]
default_disposition = "done"
callback_to_agent = true
callback_wait_s = 120
abandoned_redial_with_agent = false

[hours]
mon-fri = "09:00-21:00"
sat = "10:00-18:00"

[[region]]
match = "US-FL"
hours = "08:00-20:00"
max_calls_per_24h = 3

[[region]]
match = "us-ok"
max_calls_per_24h = 3

[retry]
busy_s = 600
no_answer_s = 3600
failed_s = 1800
abandoned_s = 259200
interrupted_s = 600

[[disposition]]
code = "sale"
action = "final"

[[disposition]]
code = "done"
action = "final"

[[disposition]]
code = "not-now"
action = "retry"
retry_s = 86400

[[disposition]]
code = "remove_me"
action = "dnc"

[[disposition]]
code = "call_back"
action = "callback"
"#;

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).expect("valid")
}

fn window(start: (u32, u32), end: (u32, u32)) -> Window {
    Window {
        start: hm(start.0, start.1),
        end: hm(end.0, end.1),
    }
}

#[test]
fn documented_example_reads_every_value() {
    let def = CampaignDef::parse("spring.toml", EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    let week = window((9, 0), (21, 0));
    let sat = window((10, 0), (18, 0));
    let expected = CampaignDef {
        name: "spring".into(),
        pool: "sales".into(),
        trunk: Some("carrier".into()),
        caller_id: Some("+15550100".into()),
        pacing: Pacing::Ratio {
            lines_per_agent: 1.5,
        },
        max_lines: 40,
        ring_timeout_s: 20,
        time_zone: chrono_tz::America::New_York,
        max_attempts: 4,
        dnc: vec!["global".into(), "spring".into()],
        hours: WeekHours([
            Some(week),
            Some(week),
            Some(week),
            Some(week),
            Some(week),
            Some(sat),
            None,
        ]),
        regions: vec![
            RegionRule {
                region: "US-FL".into(),
                hours: Some(window((8, 0), (20, 0))),
                max_calls_per_24h: Some(3),
            },
            RegionRule {
                region: "US-OK".into(),
                hours: None,
                max_calls_per_24h: Some(3),
            },
        ],
        holidays: vec![
            NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid"),
            NaiveDate::from_ymd_opt(2026, 12, 25).expect("valid"),
        ],
        retry: RetryRules {
            busy_s: Some(600),
            no_answer_s: Some(3600),
            failed_s: Some(1800),
            abandoned_s: Some(259_200),
            interrupted_s: Some(600),
        },
        dispositions: vec![
            Disposition {
                code: "sale".into(),
                action: DispositionAction::Final,
                retry_s: None,
                machine: false,
            },
            Disposition {
                code: "done".into(),
                action: DispositionAction::Final,
                retry_s: None,
                machine: false,
            },
            Disposition {
                code: "not-now".into(),
                action: DispositionAction::Retry,
                retry_s: Some(86_400),
                machine: false,
            },
            Disposition {
                code: "remove_me".into(),
                action: DispositionAction::Dnc,
                retry_s: None,
                machine: false,
            },
            Disposition {
                code: "call_back".into(),
                action: DispositionAction::Callback,
                retry_s: None,
                machine: false,
            },
        ],
        default_disposition: Some("done".into()),
        callback_to_agent: true,
        callback_wait_s: 120,
        abandoned_redial_with_agent: false,
        record: false,
    };
    assert_eq!(def, expected);
    assert_eq!(def.region(Some("US-FL")), Some(&expected.regions[0]));
    assert_eq!(def.region(Some("US-NY")), None);
    assert_eq!(
        def.disposition("not-now").map(|d| d.retry_s),
        Some(Some(86_400))
    );
}

#[test]
fn smallest_definition_takes_the_defaults() {
    let def = CampaignDef::parse("min.toml", "name = \"m\"\npool = \"p\"\n").expect("valid");
    assert_eq!(def.trunk, None);
    assert_eq!(def.caller_id, None);
    assert_eq!(def.pacing, Pacing::Progressive);
    assert_eq!(def.max_lines, 50);
    assert_eq!(def.ring_timeout_s, 25);
    assert_eq!(def.time_zone, chrono_tz::UTC);
    assert_eq!(def.max_attempts, 3);
    assert!(def.dnc.is_empty() && def.holidays.is_empty() && def.regions.is_empty());
    assert_eq!(def.hours, WeekHours([Some(window((9, 0), (21, 0))); 7]));
    assert_eq!(def.hours, WeekHours::default());
    assert_eq!(def.retry, RetryRules::default());
    assert!(def.dispositions.is_empty());
    assert_eq!(def.default_disposition, None);
    assert!(!def.callback_to_agent);
    assert_eq!(def.callback_wait_s, 300);
    assert!(!def.record, "recording is off unless asked");
    assert!(!def.abandoned_redial_with_agent);
}

/// The example with `from` replaced by `to` (which must be there once).
fn example_with(from: &str, to: &str) -> String {
    assert_eq!(EXAMPLE.matches(from).count(), 1, "{from:?}");
    EXAMPLE.replacen(from, to, 1)
}

/// The errors of `text`, each as `line:column: key: message`.
fn errors(text: &str) -> Vec<String> {
    match CampaignDef::parse("spring.toml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e
            .as_slice()
            .iter()
            .map(|d| {
                assert_eq!(d.file, "spring.toml");
                format!("{}:{}: {}: {}", d.line, d.column, d.key, d.message)
            })
            .collect(),
    }
}

/// The one error of `text`, which must start with `prefix` (`line:column: key: `).
#[track_caller]
fn one_error(text: &str, prefix: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].starts_with(prefix),
        "{:?} does not start with {prefix:?}",
        errors[0]
    );
    errors[0].clone()
}

#[test]
fn unknown_key_is_reported_with_its_path() {
    let e = one_error(
        &example_with("max_lines = 40", "max_line = 40"),
        "7:1: max_line: unknown key `max_line`",
    );
    assert!(e.contains("expected one of"), "{e}");
    one_error(
        &example_with("busy_s = 600", "busy = 600"),
        "32:1: retry.busy: unknown key",
    );
    one_error(
        &example_with("code = \"sale\"", "code = \"sale\"\nlabel = \"Sale\""),
        "40:1: disposition[0].label: unknown key",
    );
}

#[test]
fn short_ring_timeout_cites_the_rule() {
    let e = one_error(
        &example_with("ring_timeout_s = 20", "ring_timeout_s = 10"),
        "8:18: ring_timeout_s: ",
    );
    assert_eq!(
        e,
        "8:18: ring_timeout_s: 10 is below 15 s (US TSR 16 CFR 310.4(b)(4)(ii), Ofcom), expected at least 15"
    );
    let d = CampaignDef::parse(
        "spring.toml",
        &example_with("ring_timeout_s = 20", "ring_timeout_s = 10"),
    )
    .expect_err("refused");
    assert_eq!(
        d.to_string(),
        "spring.toml:8:18: ring_timeout_s: 10 is below 15 s (US TSR 16 CFR 310.4(b)(4)(ii), Ofcom), expected at least 15"
    );
}

#[test]
fn unknown_time_zone_is_refused() {
    let e = one_error(
        &example_with(
            "time_zone = \"America/New_York\"",
            "time_zone = \"America/Gotham\"",
        ),
        "9:13: time_zone: unknown time zone \"America/Gotham\"",
    );
    assert!(e.contains("IANA"), "{e}");
}

#[test]
fn bad_hours_are_refused() {
    one_error(
        &example_with("sat = \"10:00-18:00\"", "sat = \"18:00-10:00\""),
        "20:7: hours.sat: start 18:00 is not before end 10:00",
    );
    one_error(
        &example_with("sat = \"10:00-18:00\"", "sat = \"10-18\""),
        "20:7: hours.sat: \"10\" is not a time of day",
    );
    one_error(
        &example_with("sat = \"10:00-18:00\"", "sat = \"10:00-24:00\""),
        "20:7: hours.sat: 24:00 is not accepted",
    );
    one_error(
        &example_with("sat = \"10:00-18:00\"", "sat = \"10:00-18:60\""),
        "20:7: hours.sat: \"18:60\" is not a time of day",
    );
    one_error(
        &example_with("sat = \"10:00-18:00\"", "sat = \"10:00\""),
        "20:7: hours.sat: \"10:00\": expected \"HH:MM-HH:MM\"",
    );
    one_error(
        &example_with("sat = \"10:00-18:00\"", "saturday = \"10:00-18:00\""),
        "20:1: hours.saturday: unknown day \"saturday\"",
    );
    one_error(
        &example_with("sat = \"10:00-18:00\"", "sun-sat = \"10:00-18:00\""),
        "20:1: hours.sun-sat: \"sun-sat\" does not run forward",
    );
    one_error(
        &example_with("hours = \"08:00-20:00\"", "hours = \"20:00-08:00\""),
        "24:9: region[0].hours: start 20:00",
    );
    one_error(
        &example_with("sat = \"10:00-18:00\"", "sat = 10"),
        "20:7: hours.sat: invalid type: integer `10`, expected a string",
    );
}

#[test]
fn day_given_twice_names_the_first() {
    let e = one_error(
        &example_with("sat = \"10:00-18:00\"", "fri = \"10:00-18:00\""),
        "20:1: hours.fri: ",
    );
    assert!(
        e.contains("fri already has hours from \"mon-fri\" at line 19"),
        "{e}"
    );
    one_error(
        &example_with("sat = \"10:00-18:00\"", "daily = \"10:00-18:00\""),
        "20:1: hours.daily: mon already has hours",
    );
}

#[test]
fn empty_hours_table_is_refused() {
    one_error(
        &example_with("mon-fri = \"09:00-21:00\"\nsat = \"10:00-18:00\"\n", ""),
        "18:1: hours: no day has hours",
    );
}

fn predictive(extra: &str) -> String {
    example_with(
        "pacing = \"ratio\"\nlines_per_agent = 1.5",
        &format!("pacing = \"predictive\"{extra}"),
    )
}

#[test]
fn predictive_pacing_reads_its_keys_and_defaults_to_the_3_pct_cap_over_30_days() {
    let def = CampaignDef::parse("p.toml", &predictive("")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        def.pacing,
        Pacing::Predictive(PredictiveDef {
            max_abandon_pct: 3.0,
            abandon_window: AbandonWindow::Days30,
            min_agents: 1,
            max_lines_per_agent: 3.0,
            drop_group: None,
        })
    );
    let text = predictive(
        "\nmax_abandon_pct = 0\nabandon_window = \"calendar_day\"\nmin_agents = 4\n\
         max_lines_per_agent = 2.5\ndrop_group = \"floor-1\"",
    );
    let def = CampaignDef::parse("p.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        def.pacing,
        Pacing::Predictive(PredictiveDef {
            max_abandon_pct: 0.0,
            abandon_window: AbandonWindow::CalendarDay,
            min_agents: 4,
            max_lines_per_agent: 2.5,
            drop_group: Some("floor-1".into()),
        })
    );
}

#[test]
fn predictive_keys_are_checked_at_their_line_and_column() {
    one_error(
        &predictive("\nmax_abandon_pct = 3.5"),
        "6:19: max_abandon_pct: 3.5 is outside 0 to 3 (the legal cap",
    );
    one_error(
        &predictive("\nmax_abandon_pct = -1"),
        "6:19: max_abandon_pct: -1 is outside 0 to 3",
    );
    one_error(
        &predictive("\nabandon_window = \"7d\""),
        "6:18: abandon_window: unknown window \"7d\", expected \"30d\" (US TSR, FCC), \"24h\" or \"calendar_day\" (Ofcom)",
    );
    one_error(
        &predictive("\nmin_agents = 0"),
        "6:14: min_agents: 0 is below 1",
    );
    one_error(
        &predictive("\nmax_lines_per_agent = 0.5"),
        "6:23: max_lines_per_agent: 0.5 is below 1.0",
    );
    one_error(
        &predictive("\ndrop_group = \" \""),
        "6:14: drop_group: empty, expected a name",
    );
    one_error(
        &predictive("\nlines_per_agent = 2"),
        "6:19: lines_per_agent: only used with pacing = \"ratio\" (this campaign's pacing is predictive)",
    );
}

#[test]
fn predictive_keys_are_refused_with_other_pacing() {
    one_error(
        &example_with(
            "lines_per_agent = 1.5",
            "lines_per_agent = 1.5\nmax_abandon_pct = 1",
        ),
        "7:19: max_abandon_pct: only used with pacing = \"predictive\"",
    );
    one_error(
        &example_with(
            "pacing = \"ratio\"\nlines_per_agent = 1.5",
            "abandon_window = \"24h\"",
        ),
        "5:18: abandon_window: only used with pacing = \"predictive\"",
    );
}

#[test]
fn unknown_pacing_lists_the_three_modes() {
    one_error(
        &example_with("pacing = \"ratio\"\nlines_per_agent = 1.5", "pacing = \"power\""),
        "5:10: pacing: unknown pacing \"power\", expected \"progressive\", \"ratio\" or \"predictive\"",
    );
}

#[test]
fn lines_per_agent_goes_with_ratio_pacing_only() {
    one_error(
        &example_with("pacing = \"ratio\"", "pacing = \"progressive\""),
        "6:19: lines_per_agent: only used with pacing = \"ratio\"",
    );
    one_error(
        &example_with("lines_per_agent = 1.5", "lines_per_agent = 0.5"),
        "6:19: lines_per_agent: 0.5 is below 1.0",
    );
    one_error(
        &example_with("lines_per_agent = 1.5\n", ""),
        "5:10: lines_per_agent: missing: pacing = \"ratio\" needs lines_per_agent",
    );
    one_error(
        &example_with("pacing = \"ratio\"", "pacing = \"turbo\""),
        "5:10: pacing: unknown pacing \"turbo\"",
    );
    let def = CampaignDef::parse(
        "x",
        &example_with("lines_per_agent = 1.5", "lines_per_agent = 2"),
    )
    .expect("an integer is a number");
    assert_eq!(
        def.pacing,
        Pacing::Ratio {
            lines_per_agent: 2.0
        }
    );
}

#[test]
fn early_abandoned_redial_needs_an_agent() {
    let text = example_with("abandoned_s = 259200", "abandoned_s = 3600");
    let e = one_error(
        &text,
        "35:15: retry.abandoned_s: 3600 is below 259200 s (Ofcom",
    );
    assert!(
        e.ends_with("expected at least 259200, or abandoned_redial_with_agent = true"),
        "{e}"
    );
    let text = text.replace(
        "abandoned_redial_with_agent = false",
        "abandoned_redial_with_agent = true",
    );
    let def = CampaignDef::parse("x", &text).expect("an agent is reserved first");
    assert_eq!(def.retry.abandoned_s, Some(3600));
}

#[test]
fn default_disposition_must_be_a_listed_code() {
    let e = one_error(
        &example_with(
            "default_disposition = \"done\"",
            "default_disposition = \"finished\"",
        ),
        "13:23: default_disposition: unknown disposition \"finished\"",
    );
    assert!(e.contains("\"sale\", \"done\""), "{e}");
    one_error(
        &example_with(
            "default_disposition = \"done\"",
            "default_disposition = \"call_back\"",
        ),
        "13:23: default_disposition: \"call_back\" is a callback",
    );
}

#[test]
fn retry_s_belongs_to_retry_dispositions() {
    one_error(
        &example_with(
            "code = \"sale\"\naction = \"final\"",
            "code = \"sale\"\naction = \"final\"\nretry_s = 60",
        ),
        "41:11: disposition[0].retry_s: only used with action = \"retry\"",
    );
}

#[test]
fn disposition_problems_are_located() {
    one_error(
        &example_with("code = \"not-now\"", "code = \"sale\""),
        "47:8: disposition[2].code: \"sale\" is already a disposition at line 39",
    );
    one_error(
        &example_with("action = \"callback\"", "action = \"later\""),
        "57:10: disposition[4].action: unknown action \"later\"",
    );
    one_error(
        &example_with("code = \"not-now\"", "code = \"not now\""),
        "47:8: disposition[2].code: \"not now\" is not a name",
    );
    one_error(
        &example_with("code = \"remove_me\"\n", ""),
        "51:1: disposition[3].code: missing required key",
    );
    one_error(
        &example_with("dnc = [\"global\", \"spring\"]\n", ""),
        "52:10: disposition[3].action: a dnc disposition adds",
    );
}

#[test]
fn region_problems_are_located() {
    one_error(
        &example_with("match = \"US-FL\"", "match = \"US-*\""),
        "23:9: region[0].match: \"US-*\" is not a region code",
    );
    one_error(
        &example_with("match = \"us-ok\"", "match = \"US-FL\""),
        "28:9: region[1].match: US-FL already has a rule at line 23",
    );
    one_error(
        &example_with(
            "max_calls_per_24h = 3\n\n[[region]]",
            "max_calls_per_24h = 0\n\n[[region]]",
        ),
        "25:21: region[0].max_calls_per_24h: 0 is below 1",
    );
    one_error(
        &example_with("match = \"us-ok\"\n", ""),
        "27:1: region[1].match: missing required key",
    );
}

#[test]
fn other_values_are_checked() {
    one_error(
        &example_with("name = \"spring\"", "name = \"spring sale\""),
        "1:8: name: \"spring sale\" is not a name",
    );
    one_error(
        &example_with("name = \"spring\"", "name = \"\""),
        "1:8: name: \"\" is not a name",
    );
    one_error(
        &example_with("pool = \"sales\"\n", ""),
        "1:1: pool: missing required key",
    );
    one_error(
        &example_with("caller_id = \"+15550100\"", "caller_id = \"John <1>\""),
        "4:13: caller_id: \"John <1>\" is not a SIP user part",
    );
    one_error(
        &example_with("max_lines = 40", "max_lines = 0"),
        "7:13: max_lines: 0 is below 1, expected at least 1",
    );
    one_error(
        &example_with("max_attempts = 4", "max_attempts = 0"),
        "10:16: max_attempts: 0 is below 1",
    );
    one_error(
        &example_with("max_attempts = 4", "max_attempts = 5000000000"),
        "10:16: max_attempts: 5000000000 is too large, expected at most 4294967295",
    );
    one_error(
        &example_with("callback_wait_s = 120", "callback_wait_s = -1"),
        "15:19: callback_wait_s: -1 is below 0",
    );
    one_error(
        &example_with("busy_s = 600", "busy_s = -600"),
        "32:10: retry.busy_s: -600 is below 0",
    );
    one_error(
        &example_with("2026-01-01]", "\"2026-1-1\"]"),
        "12:27: holidays[1]: \"2026-1-1\" is not a date, expected \"YYYY-MM-DD\"",
    );
    one_error(
        &example_with(
            "dnc = [\"global\", \"spring\"]",
            "dnc = [\"global\", \"global\"]",
        ),
        "11:18: dnc[1]: \"global\" is listed twice",
    );
    one_error(
        &example_with("callback_to_agent = true", "callback_to_agent = \"yes\""),
        "14:21: callback_to_agent: invalid type",
    );
}

#[test]
fn syntax_error_is_located() {
    // A file that is not TOML has no key paths to name: the error has the place only.
    let d = CampaignDef::parse(
        "spring.toml",
        &example_with("max_lines = 40", "max_lines = = 40"),
    )
    .expect_err("not TOML");
    let d = &d.as_slice()[0];
    assert_eq!((d.line, d.column, d.key.as_str()), (7, 13, ""));
    assert!(d.message.starts_with("invalid string"), "{}", d.message);
    let d = CampaignDef::parse(
        "spring.toml",
        &example_with("sat = \"10:00-18:00\"", "mon-fri = \"10:00-18:00\""),
    )
    .expect_err("a key twice");
    let d = &d.as_slice()[0];
    assert_eq!((d.line, d.column), (20, 1));
    assert!(d.message.contains("duplicate key"), "{}", d.message);
}

#[test]
fn several_problems_are_reported_together_in_file_order() {
    let text = example_with("ring_timeout_s = 20", "ring_timeout_s = 10");
    let text = text.replace(
        "time_zone = \"America/New_York\"",
        "time_zone = \"Nowhere\"",
    );
    let text = text.replace("abandoned_s = 259200", "abandoned_s = 60");
    let text = text.replace(
        "code = \"sale\"\naction = \"final\"",
        "code = \"sale\"\naction = \"final\"\nretry_s = 1",
    );
    let errors = errors(&text);
    let keys: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").nth(1).expect("key"))
        .collect();
    assert_eq!(
        keys,
        [
            "ring_timeout_s",
            "time_zone",
            "retry.abandoned_s",
            "disposition[0].retry_s"
        ],
        "{errors:#?}"
    );
}

#[test]
fn record_asks_for_every_call_to_be_recorded() {
    let def = CampaignDef::parse("r.toml", "name = \"r\"\npool = \"sales\"\nrecord = true\n")
        .expect("valid");
    assert!(def.record);
    let e = errors("name = \"r\"\npool = \"sales\"\nrecord = \"yes\"\n");
    assert_eq!(
        e,
        ["3:10: record: invalid type: string \"yes\", expected a boolean"]
    );
}

#[test]
fn a_disposition_can_mark_an_answering_machine() {
    let text = format!(
        "{EXAMPLE}\n[[disposition]]\ncode = \"machine\"\naction = \"final\"\nmachine = true\n"
    );
    let def = CampaignDef::parse("m.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(def.disposition("machine").is_some_and(|d| d.machine));
    assert!(def.disposition("sale").is_some_and(|d| !d.machine));
}
