//! Helpers shared by the store's tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use campaign::{AttemptOutcome, LeadGroup, LeadNext, LeadRow, OpenGroup, RejectedRow};
use store::{AttemptEnd, ClaimedLead, SqliteStore, Store};

/// A directory removed when dropped, for stores on a real file.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "store-test-{}-{}-{name}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub const NY: (&str, Option<&str>) = ("America/New_York", Some("US-NY"));
pub const FL: (&str, Option<&str>) = ("America/New_York", Some("US-FL"));
pub const LA: (&str, Option<&str>) = ("America/Los_Angeles", Some("US-CA"));
pub const NO_REGION: (&str, Option<&str>) = ("America/Chicago", None);

pub fn group(g: (&str, Option<&str>)) -> LeadGroup {
    LeadGroup {
        zones: g.0.into(),
        region: g.1.map(Into::into),
    }
}

pub fn open(g: (&str, Option<&str>)) -> OpenGroup {
    OpenGroup {
        group: group(g),
        max_calls_per_24h: None,
    }
}

pub fn capped(g: (&str, Option<&str>), cap: u32) -> OpenGroup {
    OpenGroup {
        group: group(g),
        max_calls_per_24h: Some(cap),
    }
}

pub fn lead(line: u64, number: &str, g: (&str, Option<&str>)) -> LeadRow {
    LeadRow {
        line,
        number: number.into(),
        group: group(g),
        fields: vec![("name".into(), format!("Lead {line}"))],
    }
}

pub fn store_with_campaign(name: &str) -> SqliteStore {
    let mut store = SqliteStore::open_in_memory().expect("an in-memory store opens");
    store
        .create_campaign(name, "[campaign]\n", 1_000)
        .expect("a new campaign");
    store
}

pub fn import(store: &mut SqliteStore, campaign: &str, rows: Vec<LeadRow>) {
    let mut rows = rows.into_iter().map(Ok::<_, RejectedRow>);
    let report = store
        .import_leads(campaign, &mut rows, &[])
        .expect("import");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

pub fn end(ended: i64, outcome: AttemptOutcome, next: LeadNext) -> AttemptEnd {
    AttemptEnd {
        ended,
        outcome,
        call_outcome: Some(outcome.as_str().into()),
        answered: matches!(outcome, AttemptOutcome::Bridged | AttemptOutcome::Abandoned),
        agent: None,
        next,
    }
}

pub fn numbers(claimed: &[ClaimedLead]) -> Vec<&str> {
    claimed.iter().map(|c| c.number.as_str()).collect()
}
