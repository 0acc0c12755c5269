//! Full read of a ~100 MB capture built in memory from corpus captures.
//!
//! The records of a UDP capture (SIP + RTP) and a TCP/WebSocket capture are repeated with
//! shifted timestamps; each repetition of the TCP capture gets its own ports so that it is a new
//! connection to reassemble rather than a retransmission.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const TARGET_BYTES: usize = 100 * 1024 * 1024;

/// (timestamp µs, record data) of a little- or big-endian microsecond pcap.
fn records(bytes: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let little = bytes[..4] == [0xD4, 0xC3, 0xB2, 0xA1];
    let word = |b: &[u8]| {
        let a: [u8; 4] = b.try_into().unwrap();
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let secs = u64::from(word(&bytes[off..off + 4]));
        let usecs = u64::from(word(&bytes[off + 4..off + 8]));
        let len = word(&bytes[off + 8..off + 12]) as usize;
        out.push((
            secs * 1_000_000 + usecs,
            bytes[off + 16..off + 16 + len].to_vec(),
        ));
        off += 16 + len;
    }
    out
}

/// Adds `shift` to both TCP/UDP ports of an Ethernet + IPv4 frame.
fn shift_ports(frame: &mut [u8], shift: u16) {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ihl = usize::from(frame[14] & 0x0F) * 4;
    let l4 = 14 + ihl;
    if frame.len() < l4 + 4 {
        return;
    }
    for at in [l4, l4 + 2] {
        let port = u16::from_be_bytes([frame[at], frame[at + 1]]).wrapping_add(shift);
        frame[at..at + 2].copy_from_slice(&port.to_be_bytes());
    }
}

fn build(dir: &std::path::Path) -> Vec<u8> {
    let udp = records(&std::fs::read(dir.join("Asterisk_ZFONE_XLITE.pcap")).unwrap());
    let tcp = records(&std::fs::read(dir.join("sip_tcp_websocket.pcap")).unwrap());
    let mut out = Vec::with_capacity(TARGET_BYTES + 1024 * 1024);
    // pcap header: little endian, v2.4, snaplen 65535, Ethernet.
    out.extend_from_slice(&[0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0]);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let base = udp[0].0;
    let mut rep: u64 = 0;
    while out.len() < TARGET_BYTES {
        let offset = rep * 60_000_000; // one minute per repetition
        for (source, shift) in [(&udp, 0u16), (&tcp, (rep as u16).wrapping_mul(7))] {
            let first = source[0].0;
            for (ts, data) in source.iter() {
                let t = base + offset + (ts - first);
                let mut data = data.clone();
                if shift != 0 {
                    shift_ports(&mut data, shift);
                }
                out.extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
                out.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(&data);
            }
        }
        rep += 1;
    }
    out
}

fn read_100mb(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/pcaps");
    if !dir.is_dir() {
        eprintln!(
            "skipping read_large bench: corpus not found at {}",
            dir.display()
        );
        return;
    }
    let bytes = build(&dir);
    let capture = capture::read_bytes(&bytes).unwrap();
    eprintln!(
        "built {} bytes: {} packets, {} warnings",
        bytes.len(),
        capture.packets.len(),
        capture.warnings.len()
    );
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("read_bytes_100MB", |b| {
        b.iter(|| capture::read_bytes(std::hint::black_box(&bytes)).unwrap())
    });
    group.bench_function("rtp_streams_100MB", |b| {
        b.iter(|| capture::rtp::streams(&capture, &capture::rtp::RtpOptions::default()))
    });
    group.finish();
}

criterion_group!(benches, read_100mb);
criterion_main!(benches);
