//! Issue 7 item 2: on every capture of `../shared/corpus/pcaps`, the real `dialer pcap rtp
//! --json` finds the same RTP streams (SSRC, source, destination) with the same packet and loss
//! counts as `tshark -q -z rtp,streams -o rtp.heuristic_rtp:TRUE`.
//!
//! The binary is `$DIALER_BIN` or `dialer` in this test's target directory (build it with
//! `cargo build -p dialer` into the same `CARGO_TARGET_DIR`); tshark is required when the corpus
//! is (`REQUIRE_CORPUS=1`), otherwise its absence skips the test with a message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use scenario_tests::interop::{dialer, which};

/// (SSRC, source, destination) -> (packets, lost).
type Streams = BTreeMap<(u32, SocketAddr, SocketAddr), (u64, i64)>;

fn corpus_pcaps() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcaps");
    let required = std::env::var("REQUIRE_CORPUS").as_deref() == Ok("1");
    if !dir.is_dir() {
        assert!(!required, "corpus not found at {}", dir.display());
        eprintln!("skipped: corpus not found at {}", dir.display());
        return None;
    }
    if which("tshark").is_none() {
        assert!(!required, "tshark (Debian package tshark) is not installed");
        eprintln!("skipped: tshark is not installed");
        return None;
    }
    Some(dir)
}

/// An address from tshark's two columns: IPv6 addresses come without brackets.
fn address(ip: &str, port: &str) -> Option<SocketAddr> {
    format!("{ip}:{port}")
        .parse()
        .or_else(|_| format!("[{ip}]:{port}").parse())
        .ok()
}

/// Parses tshark's `rtp,streams` table: start, end, source address and port, destination
/// address and port, SSRC, payload names (which may hold spaces and commas), packets,
/// "lost (pct%)", six delta/jitter columns and an optional problem mark.
fn parse_tshark_table(text: &str) -> Result<Streams, String> {
    let mut streams = Streams::new();
    for line in text.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        let Some(at) = t.iter().position(|x| x.starts_with("0x")) else {
            continue;
        };
        let bad = || format!("unreadable tshark row: {line:?}");
        let pct = t
            .iter()
            .position(|x| x.starts_with('(') && x.ends_with("%)"))
            .ok_or_else(bad)?;
        if at < 6 || pct < at + 2 {
            return Err(bad());
        }
        let ssrc = u32::from_str_radix(&t[at][2..], 16).map_err(|_| bad())?;
        let src = address(t[at - 4], t[at - 3]).ok_or_else(bad)?;
        let dst = address(t[at - 2], t[at - 1]).ok_or_else(bad)?;
        let packets = t[pct - 2].parse().map_err(|_| bad())?;
        let lost = t[pct - 1].parse().map_err(|_| bad())?;
        if streams.insert((ssrc, src, dst), (packets, lost)).is_some() {
            return Err(format!("tshark lists a stream twice: {line:?}"));
        }
    }
    Ok(streams)
}

fn tshark_streams(file: &Path) -> Streams {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args([
            "-n",
            "-q",
            "-z",
            "rtp,streams",
            "-o",
            "rtp.heuristic_rtp:TRUE",
        ])
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark -r {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_tshark_table(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn dialer_streams(binary: &Path, file: &Path) -> Streams {
    let out = Command::new(binary)
        .args(["pcap", "rtp", "--json"])
        .arg(file)
        .output()
        .expect("dialer runs");
    assert!(
        out.status.success(),
        "dialer pcap rtp --json {} exited {}: {}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("dialer pcap rtp --json {}: {e}", file.display()));
    let rows = json["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"streams\" array in {json}"));
    let mut streams = Streams::new();
    for s in rows {
        let field = |k: &str| {
            s.get(k)
                .unwrap_or_else(|| panic!("stream without {k}: {s}"))
        };
        let parse_addr = |k: &str| -> SocketAddr {
            field(k)
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("{k} is no address: {s}"))
        };
        let key = (
            field("ssrc").as_u64().expect("ssrc is a number") as u32,
            parse_addr("src"),
            parse_addr("dst"),
        );
        let counts = (
            field("packets").as_u64().expect("packets is a number"),
            field("lost").as_i64().expect("lost is a number"),
        );
        assert!(
            streams.insert(key, counts).is_none(),
            "{}: dialer lists {key:?} twice",
            file.display()
        );
    }
    streams
}

#[test]
fn tshark_table_rows_with_multi_word_payloads_ipv6_and_negative_loss_are_read() {
    let text = "\
========================= RTP Streams ========================
   Start time      End time     Src IP addr  Port    Dest IP addr  Port       SSRC          Payload  Pkts         Lost   Min Delta(ms)  Mean Delta(ms)   Max Delta(ms)  Min Jitter(ms) Mean Jitter(ms)  Max Jitter(ms) Problems?
    76.878653     96.829533 192.168.105.172  4376 192.168.105.110  4376 0x5711BF84 g711A, telephone-event   666    -2 (-0.3%)          29.930          30.001          30.068           0.002           1.522          15.767 X
     0.000000      1.000000 2001:db8::1  5004 2001:db8::2  6000 0x00000001 g711U   50     1 (2.0%)          20.000          20.000          20.000           0.000           0.000           0.000
==============================================================
";
    let rows = parse_tshark_table(text).expect("table parses");
    let v4 = (
        0x5711_BF84,
        "192.168.105.172:4376".parse().unwrap(),
        "192.168.105.110:4376".parse().unwrap(),
    );
    let v6 = (
        1,
        "[2001:db8::1]:5004".parse().unwrap(),
        "[2001:db8::2]:6000".parse().unwrap(),
    );
    assert_eq!(rows.get(&v4), Some(&(666, -2)));
    assert_eq!(rows.get(&v6), Some(&(50, 1)));
    assert_eq!(rows.len(), 2);
    assert!(parse_tshark_table("   0.0 1.0 a 1 b 2 0x1 PCMU 5 0 (bad)\n").is_err());
}

#[test]
fn dialer_pcap_rtp_finds_tshark_streams_and_counts_on_every_corpus_capture() {
    let Some(dir) = corpus_pcaps() else { return };
    let binary = dialer::binary().unwrap_or_else(|e| panic!("{e}"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("corpus directory lists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x != "md"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 17,
        "{} captures in {}",
        files.len(),
        dir.display()
    );
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for file in &files {
        let theirs = tshark_streams(file);
        let ours = dialer_streams(&binary, file);
        let name = file.file_name().unwrap_or_default().to_string_lossy();
        eprintln!("{name}: {} streams (tshark {})", ours.len(), theirs.len());
        compared += theirs.len();
        if ours != theirs {
            mismatches.push(format!("{name}:\n  dialer {ours:?}\n  tshark {theirs:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The corpus holds RTP in 11 of its captures; a comparison of empty lists proves nothing.
    assert!(compared >= 20, "only {compared} streams compared");
}
