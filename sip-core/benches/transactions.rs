//! Memory and time for 100 000 live INVITE server transactions (the figure:
//! <= 200 MB). Run with `cargo bench -p sip-core --bench transactions`; it prints the
//! resident set growth per transaction, read from /proc/self/status.
// A benchmark measures wall time; the cores it drives still get time as an argument.
#![allow(clippy::disallowed_methods)]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sip_core::endpoint::{Endpoint, EndpointConfig};
use sip_core::time::Time;
use sip_core::transaction::Transport;
use std::net::SocketAddr;

const INVITE: &str = include_str!("../tests/data/carrier_invite.sip");

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent; keep that run short.
    let n: usize = if std::env::args().any(|a| a == "--bench") {
        100_000
    } else {
        1_000
    };
    let local: SocketAddr = "198.51.100.10:5060".parse().expect("a literal address");
    let mut ep = Endpoint::new(
        EndpointConfig::new(local),
        Box::new(ChaCha8Rng::seed_from_u64(1)),
    );
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            INVITE
                .replace(
                    "z9hG4bK-524287-1---7d9f3c1a2b4e5f60",
                    &format!("z9hG4bK-{i:016x}"),
                )
                .replace("4f1a2b3c5d6e7f8091a2b3c4d5e6f708", &format!("{i:032x}"))
                .into_bytes()
        })
        .collect();
    let source: SocketAddr = "198.51.100.20:5060".parse().expect("a literal address");
    let before = rss_kib();
    let start = std::time::Instant::now();
    for m in &messages {
        ep.handle_datagram(Time::ZERO, Transport::Udp, source, m);
        // The 100 Trying and the request event: drop them as a runtime would after use.
        while let Some(o) = ep.poll_output() {
            drop(o);
        }
    }
    let elapsed = start.elapsed();
    let after = rss_kib();
    assert_eq!(ep.transaction_count(), n);
    let grown = after.saturating_sub(before);
    println!(
        "{n} live INVITE server transactions: {:.1} MiB resident ({} bytes each), created in {:.2?} ({:.2} us each)",
        grown as f64 / 1024.0,
        grown * 1024 / n as u64,
        elapsed,
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
}
