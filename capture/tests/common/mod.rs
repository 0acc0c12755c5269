//! Shared helpers for the corpus tests: locating the corpus and running tshark.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The shared corpus's pcaps directory, or `None` (after printing why) when it is absent and
/// `REQUIRE_CORPUS` is not `1`.
pub fn pcaps_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcaps");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("REQUIRE_CORPUS").as_deref() == Ok("1") {
        panic!("corpus missing at {} and REQUIRE_CORPUS=1", dir.display());
    }
    eprintln!("skipping: corpus not found at {}", dir.display());
    None
}

/// Every capture in the corpus (README excluded), sorted by name.
pub fn corpus_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("corpus directory is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e != "md"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no captures in {}", dir.display());
    files
}

/// Whether tshark can be run; prints a skip message when not.
pub fn tshark_available() -> bool {
    let ok = Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping tshark comparison: tshark is not installed");
    }
    ok
}

/// Runs tshark with `args` on `file` and returns its stdout.
pub fn tshark(file: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success() || !out.stdout.is_empty(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("tshark prints UTF-8")
}
