//! Helpers shared by the binary tests: running `dialer`, finding the corpus, tshark.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The output of one `dialer` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

fn finish(out: Output) -> Run {
    Run {
        code: out
            .status
            .code()
            .expect("dialer exits normally, not by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the real binary with `args` and optional standard input and environment.
pub fn dialer_with(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialer"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .expect("the dialer binary was built for this test");
    {
        let mut input = child.stdin.take().expect("stdin is piped");
        if let Some(bytes) = stdin {
            input.write_all(bytes).expect("dialer reads its stdin");
        }
    }
    finish(child.wait_with_output().expect("dialer runs to completion"))
}

pub fn dialer(args: &[&str]) -> Run {
    dialer_with(args, None, &[])
}

/// `<workspace>/../shared/corpus`, or `None` (with a skip message) when absent and
/// REQUIRE_CORPUS is not 1.
pub fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("REQUIRE_CORPUS").as_deref() == Ok("1") {
        panic!("corpus not found at {} and REQUIRE_CORPUS=1", dir.display());
    }
    eprintln!("skipped: corpus not found at {}", dir.display());
    None
}

pub fn pcap(name: &str) -> Option<PathBuf> {
    corpus().map(|c| c.join("pcaps").join(name))
}

/// Output of tshark, or `None` (with a message) when tshark is not installed.
pub fn tshark(args: &[&str]) -> Option<String> {
    match Command::new("tshark").args(args).output() {
        Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => panic!(
            "tshark {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            eprintln!("skipped the tshark comparison: tshark cannot run ({e})");
            None
        }
    }
}

/// A scratch path unique to one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dialer-tests");
    std::fs::create_dir_all(&dir).expect("the target tmp dir is writable");
    dir.join(name)
}

/// A little-endian microsecond pcap with `link_type` and the given frames.
pub fn pcap_file(link_type: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&link_type.to_le_bytes());
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// An Ethernet + IPv4 + UDP frame (checksums zero: not verified, as by Wireshark).
pub fn udp_frame(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = 20 + 8 + payload.len();
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0,
        0,
        64,
        17,
        0,
        0,
    ]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    let ulen = 8 + payload.len();
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[(ulen >> 8) as u8, ulen as u8, 0, 0]);
    f.extend_from_slice(payload);
    f
}
