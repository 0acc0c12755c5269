//! RFC 4475 torture messages: every `accept` parses and round-trips, every `reject` is
//! rejected with a reason, none panics.

use sip_core::message::{Message, SipMessage};
use std::path::PathBuf;

fn corpus() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/rfc4475");
    if dir.join("MANIFEST.tsv").exists() {
        return Some(dir);
    }
    if std::env::var("REQUIRE_CORPUS").as_deref() == Ok("1") {
        panic!("REQUIRE_CORPUS=1 but {} is missing", dir.display());
    }
    eprintln!("skipping: RFC 4475 corpus not found at {}", dir.display());
    None
}

fn manifest(dir: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .expect("MANIFEST.tsv is readable")
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_owned(), f[3].to_owned())
        })
        .collect()
}

#[test]
fn torture_messages_follow_the_manifest_verdicts() {
    let Some(dir) = corpus() else { return };
    let entries = manifest(&dir);
    assert!(
        entries.len() >= 50,
        "manifest lists {} files",
        entries.len()
    );
    let mut wrong = Vec::new();
    for (file, verdict) in &entries {
        let bytes = std::fs::read(dir.join(file)).expect("corpus file is readable");
        let result = Message::parse(&bytes);
        match (verdict.as_str(), &result) {
            ("accept", Ok(m)) => {
                let again = Message::parse(&m.to_bytes())
                    .unwrap_or_else(|e| panic!("{file}: written form does not parse: {e}"));
                assert_eq!(&again, m, "{file}: parse(write(m)) != m");
            }
            ("reject", Err(e)) => {
                assert!(!e.to_string().is_empty());
                eprintln!("{file}: rejected: {e}");
            }
            _ => wrong.push(format!(
                "{file}: manifest says {verdict}, parser gave {result:?}"
            )),
        }
    }
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
}

#[test]
fn torture_details_are_read_as_the_rfc_explains() {
    let Some(dir) = corpus() else { return };
    let read = |f: &str| Message::parse(&std::fs::read(dir.join(f)).unwrap()).unwrap();

    // §3.1.1.1: folded, odd-cased, compact headers.
    let m = read("TC_WSINV.dat");
    let vias = m.vias().unwrap();
    assert_eq!(vias.len(), 3);
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(m.to_header().unwrap().tag(), Some("1918181833n"));
    assert_eq!(m.from_header().unwrap().tag(), Some("98asjd8"));
    assert_eq!(m.cseq().unwrap().seq, 9);
    assert_eq!(m.body().len(), 150);

    // §3.1.1.8: trailing octets after Content-Length are ignored.
    let m = read("TC_DBLREQ.dat");
    assert!(m.body().is_empty());

    // §3.4.1: RFC 2543 syntax without Content-Length: the body runs to the end.
    let m = read("TC_INV2543_I.dat");
    assert!(m.top_via().unwrap().branch().is_none());
    assert!(m.body().starts_with(b"v=0"));

    // §3.1.1.11: binary multipart body kept byte for byte.
    let raw = std::fs::read(dir.join("TC_MPART01.dat")).unwrap();
    let m = Message::parse(&raw).unwrap();
    assert!(raw.ends_with(m.body()));
    assert!(m.body().contains(&0u8));
}
