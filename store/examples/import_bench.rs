//! Import speed and claim latency of [`SqliteStore`] on a file.
//!
//! `cargo run --release -p store --example import_bench -- <leads> <db path>`
//!
//! Generates `<leads>` leads on the fly (an iterator: the list is never in memory) over ten
//! calling-hours groups, with a duplicate every 100 rows, a number on the DNC list every 1000
//! and a row the parser refused every 500; imports them into a new file at `<db path>`;
//! then times 1000 claims of one lead, finishing those attempts, `counts`, `lead_groups` and
//! a streamed export. A baseline measured in the same run gives the cost of one small commit
//! with `synchronous=FULL` (what the store uses) and `NORMAL` on the same disk.

// A benchmark is about wall time: this is the one place in the crate that reads the clock.
#![allow(clippy::disallowed_methods)]

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use campaign::{
    AttemptOutcome, LeadGroup, LeadNext, LeadRow, OpenGroup, RejectReason, RejectedRow,
};
use store::{AttemptEnd, SqliteStore, Store};

const NOW: i64 = 1_700_000_000;
const CLAIMS: usize = 1000;

const GROUPS: [(&str, Option<&str>); 10] = [
    ("America/New_York", Some("US-NY")),
    ("America/New_York", Some("US-FL")),
    ("America/New_York", None),
    ("America/Chicago", Some("US-IL")),
    ("America/Chicago", Some("US-TX")),
    ("America/Chicago,America/Denver", Some("US-NE")),
    ("America/Denver", Some("US-CO")),
    ("America/Phoenix", Some("US-AZ")),
    ("America/Los_Angeles", Some("US-CA")),
    ("America/Los_Angeles", None),
];

/// The `i`th distinct number: a bijection of `0..8e9` (the multiplier is prime to 2 and 5),
/// so numbers arrive in no order, as in a real list, and the number index is hit at random.
fn number(i: u64) -> String {
    const SPAN: u64 = 8_000_000_000;
    format!(
        "+1{}",
        2_000_000_000 + (i.wrapping_mul(2_654_435_761) % SPAN)
    )
}

fn group(i: u64) -> LeadGroup {
    let (zones, region) = GROUPS[(i % GROUPS.len() as u64) as usize];
    LeadGroup {
        zones: zones.into(),
        region: region.map(Into::into),
    }
}

/// Row `i` of the generated list (line `i + 2`, after a header).
fn row(i: u64) -> Result<LeadRow, RejectedRow> {
    let line = i + 2;
    if i % 500 == 499 {
        return Err(RejectedRow {
            line,
            number: Some("12".into()),
            reason: RejectReason::BadNumber("too short".into()),
        });
    }
    // Every 100th row repeats the number of a row 50 lines up.
    let n = if i % 100 == 99 { i - 50 } else { i };
    Ok(LeadRow {
        line,
        number: number(n),
        group: group(n),
        fields: vec![
            ("name".into(), format!("Customer {n}")),
            ("account".into(), format!("AC{n:09}")),
        ],
    })
}

fn on_dnc(i: u64) -> bool {
    i % 1000 == 7
}

fn kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Microseconds per commit of one small row change, at each `synchronous` level.
fn commit_baseline(dir: &Path) -> Vec<(&'static str, f64)> {
    let path = dir.join("import_bench_sync_baseline.db");
    let mut out = Vec::new();
    for level in ["FULL", "NORMAL"] {
        remove_db(&path);
        let conn = rusqlite::Connection::open(&path).expect("baseline file opens");
        let _: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .expect("WAL");
        conn.pragma_update(None, "synchronous", level)
            .expect("synchronous");
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)")
            .expect("table");
        const COMMITS: u32 = 500;
        let start = Instant::now();
        for i in 0..COMMITS {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE; INSERT INTO t (v) VALUES ({i});
                 UPDATE t SET v = v + 1 WHERE id = 1; COMMIT"
            ))
            .expect("commit");
        }
        out.push((
            level,
            start.elapsed().as_secs_f64() * 1e6 / f64::from(COMMITS),
        ));
        drop(conn);
        remove_db(&path);
    }
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: import_bench <leads> <db path>";
    let leads: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{usage}"));
    let path = PathBuf::from(args.next().unwrap_or_else(|| panic!("{usage}")));
    remove_db(&path);

    let mut store = SqliteStore::open(&path).expect("the store opens");
    store
        .create_campaign("bench", "[campaign]\n", NOW)
        .expect("campaign");
    let dnc: Vec<String> = (0..leads).filter(|i| on_dnc(*i)).map(number).collect();
    store.dnc_add("national", &dnc, NOW).expect("dnc");

    let start = Instant::now();
    let mut rows = (0..leads).map(row);
    let report = store
        .import_leads("bench", &mut rows, &["national".to_string()])
        .expect("import");
    let import = start.elapsed();
    let rss_after_import = kib("VmRSS:");
    // The database and its WAL: what the WAL holds is not yet checkpointed into the file.
    let db_bytes: u64 = ["", "-wal"]
        .iter()
        .map(|suffix| {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            std::fs::metadata(PathBuf::from(file)).map_or(0, |m| m.len())
        })
        .sum();

    let open: Vec<OpenGroup> = (0..GROUPS.len() as u64)
        .map(|i| OpenGroup {
            group: group(i),
            max_calls_per_24h: (i == 1).then_some(3),
        })
        .collect();
    let mut claimed = Vec::with_capacity(CLAIMS);
    let mut first_claim = Duration::ZERO;
    let mut slowest_claim = Duration::ZERO;
    let start = Instant::now();
    for i in 0..CLAIMS {
        let one = Instant::now();
        claimed.extend(store.claim("bench", NOW, &open, 1).expect("claim"));
        // The first one also compiles the statement and reads the index pages it walks.
        if i == 0 {
            first_claim = one.elapsed();
        } else {
            slowest_claim = slowest_claim.max(one.elapsed());
        }
    }
    let claims = start.elapsed();

    let start = Instant::now();
    for lead in &claimed {
        let end = AttemptEnd {
            ended: NOW + 30,
            outcome: AttemptOutcome::NoAnswer,
            call_outcome: Some("no_answer".into()),
            answered: false,
            agent: None,
            next: LeadNext::Retry { at: NOW + 3_600 },
        };
        store
            .finish_attempt(lead.attempt, &end, None)
            .expect("finish");
    }
    let finishes = start.elapsed();

    let start = Instant::now();
    let counts = store.counts("bench").expect("counts");
    let counts_time = start.elapsed();

    let start = Instant::now();
    let groups = store.lead_groups("bench").expect("groups");
    let groups_time = start.elapsed();

    let start = Instant::now();
    let mut exported = 0u64;
    store
        .export_each("bench", None, &mut |_| {
            exported += 1;
            ControlFlow::Continue(())
        })
        .expect("export");
    let export = start.elapsed();

    let dir = path.parent().unwrap_or(Path::new("."));
    let baseline = commit_baseline(dir);

    println!(
        "machine: {} cpus",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "import: {} rows -> {} leads, {} rejected, in {:.2} s ({:.0} rows/s); file and WAL {:.0} MiB",
        leads,
        report.imported,
        report.rejected.len(),
        import.as_secs_f64(),
        leads as f64 / import.as_secs_f64(),
        db_bytes as f64 / (1024.0 * 1024.0)
    );
    println!(
        "rss after import: {:.1} MiB",
        rss_after_import as f64 / 1024.0
    );
    println!(
        concat!(
            "claims: {} x 1 lead in {:.1} ms ({:.3} ms each, first {:.3} ms, ",
            "slowest after {:.3} ms), {} claimed"
        ),
        CLAIMS,
        ms(claims),
        ms(claims) / CLAIMS as f64,
        ms(first_claim),
        ms(slowest_claim),
        claimed.len()
    );
    println!(
        "finish_attempt: {} in {:.1} ms ({:.3} ms each)",
        claimed.len(),
        ms(finishes),
        ms(finishes) / claimed.len().max(1) as f64
    );
    println!(
        "counts: {:.3} ms -> {:?} dialled {} next_retry {:?}",
        ms(counts_time),
        counts.leads,
        counts.dialled,
        counts.next_retry
    );
    println!(
        "lead_groups: {:.3} ms -> {} groups",
        ms(groups_time),
        groups.len()
    );
    println!(
        "export (streamed): {} leads in {:.2} s",
        exported,
        export.as_secs_f64()
    );
    for (level, us) in baseline {
        println!("baseline commit, synchronous={level}: {us:.0} us");
    }
    println!("peak rss (VmHWM): {:.1} MiB", kib("VmHWM:") as f64 / 1024.0);
}
