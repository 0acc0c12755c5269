//! `dialer campaign simulate`, run as the real binary: the JSON document's shape, the
//! human table, and a bad definition reported at its line and column.

mod common;

use common::{dialer, scratch};

fn definition(name: &str, text: &str) -> String {
    let path = scratch(name);
    std::fs::write(&path, text).expect("scratch file is writable");
    path.to_str().expect("UTF-8 path").to_string()
}

#[test]
fn simulate_json_has_the_model_and_one_run_per_pacing_mode() {
    let file = definition(
        "simulate.toml",
        "name = \"sim\"\npool = \"sales\"\npacing = \"predictive\"\nmax_lines = 100\n",
    );
    let run = dialer(&[
        "campaign", "simulate", &file, "--agents", "5", "--hours", "1", "--seed", "3", "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["model"]["live_answer_pct"], 25.0);
    assert_eq!(v["model"]["answer_after_s"], serde_json::json!([4.0, 20.0]));
    let runs = v["runs"].as_array().expect("runs");
    let modes: Vec<&str> = runs.iter().map(|r| r["pacing"].as_str().unwrap()).collect();
    assert_eq!(
        modes,
        ["progressive", "ratio", "vicidial_adaptive", "predictive"]
    );
    let keys = [
        "pacing",
        "agents",
        "hours",
        "occupancy",
        "talk_minutes_per_agent_hour",
        "calls_per_hour",
        "live_answers",
        "abandoned",
        "abandon_rate",
        "max_window_abandon_rate",
        "lines_per_agent",
    ];
    // The keys come in the order.
    let first = &run.stdout[run.stdout.find("\"runs\"").unwrap()..];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            first
                .find(&format!("\"{k}\":"))
                .unwrap_or_else(|| panic!("{k} missing"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{first}");
    for r in runs {
        assert_eq!(r.as_object().unwrap().len(), keys.len(), "{r}");
        assert_eq!(r["agents"], 5);
        assert_eq!(r["hours"], 1);
        let rate = r["abandon_rate"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&rate), "rates are fractions: {r}");
    }
    // Same seed, same figures.
    let again = dialer(&[
        "campaign", "simulate", &file, "--agents", "5", "--hours", "1", "--seed", "3", "--json",
    ]);
    assert_eq!(again.json(), v);
}

#[test]
fn simulate_prints_a_table_and_refuses_a_bad_definition_at_its_place() {
    let good = definition("simulate-table.toml", "name = \"t\"\npool = \"sales\"\n");
    let run = dialer(&[
        "campaign", "simulate", &good, "--agents", "3", "--hours", "0.5",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("PACING"), "{}", run.stdout);
    assert_eq!(run.stdout.lines().count(), 5, "{}", run.stdout);
    let bad = definition(
        "simulate-bad.toml",
        "name = \"b\"\npool = \"sales\"\npacing = \"predictive\"\nmax_abandon_pct = 5\n",
    );
    let run = dialer(&["campaign", "simulate", &bad]);
    assert_eq!(run.code, 1);
    let expected = format!("{bad}:4:19: max_abandon_pct: 5 is outside 0 to 3");
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
}
