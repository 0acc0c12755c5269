//! Interop harness: drives real peers — SIPp (Debian `sip-tester`) as the carrier or a plain UAC,
//! baresip as the agent softphone, tshark as the wire tap — and the real `dialer` binary, on
//! loopback.
//!
//! Drive loop of a test: make a [`TestDir`]; pick ports with [`ports`]; generate audio fixtures with
//! [`audio`] (sox, at test time: no binary audio is committed); start peers ([`sipp::Sipp`],
//! [`baresip::Baresip`], [`tshark::Tap`]); wait on what they print ([`process::Peer::wait_for_line`])
//! or on files and ports ([`process::poll_until`]), never on a fixed delay; then read what they
//! left behind: SIPp's message trace ([`trace`]), baresip's recordings and the tap's RTP, checked
//! with the Goertzel detector in [`audio`].
//!
//! What it deliberately does not do: it never kills a process it did not start, never by name,
//! only by the PID (and process group) it spawned; it does not install packages (the CI script
//! does, see [`require_tools`]); it does not retry a failed run.
//!
//! Error and panic policy: harness calls return [`HarnessError`] naming the peer, the command
//! and the log file to read; tests `expect` them, so a failing peer fails the test with that
//! message. A test directory is kept (and its path printed) when the test panics, or always
//! with `INTEROP_KEEP=1`, so the peers' logs can be read afterwards.
//!
//! Hand-written parts: the temporary directory (a few lines, and it must survive a panic on
//! purpose), the ctrl_tcp netstring client (one request, one reply) and the SIPp trace splitter
//! (SIPp's own log layout); no crate does these for SIPp/baresip.

pub mod audio;
pub mod baresip;
pub mod call;
pub mod carrier;
pub mod certs;
pub mod dialer;
pub mod flood;
pub mod kamailio;
pub mod kamailio_proxy;
pub mod lossy_link;
pub mod netns;
pub mod phone;
pub mod ports;
pub mod process;
pub mod restarting_registrar;
pub mod robust;
pub mod rtp_pcap;
pub mod rtp_source;
pub mod sipp;
pub mod sipvicious;
pub mod trace;
pub mod tshark;
pub mod wire;

mod dir;

pub use dir::TestDir;
pub use process::{poll_until, HarnessError, Peer};

use std::path::PathBuf;

/// The directory holding the committed interop fixtures (`tests/interop/`): SIPp scenarios,
/// baresip and dialer configuration templates.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Checks that every program a test needs is on `PATH`; the error lists the missing ones with
/// the Debian package that provides each.
pub fn require_tools(tools: &[&str]) -> Result<(), HarnessError> {
    let missing: Vec<String> = tools
        .iter()
        .filter(|tool| which(tool).is_none())
        .map(|tool| format!("{tool} (Debian package {})", debian_package(tool)))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HarnessError::Setup(format!(
            "interop tools missing: {}",
            missing.join(", ")
        )))
    }
}

/// The first `PATH` entry holding an executable file named `program`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

fn debian_package(tool: &str) -> &'static str {
    match tool {
        "sipp" => "sip-tester",
        "baresip" => "baresip-core",
        "sox" => "sox",
        "tshark" => "tshark",
        "ip" => "iproute2",
        "iptables" => "iptables",
        "svwar" | "svcrack" | "sipvicious_svwar" | "sipvicious_svcrack" => "sipvicious",
        "dnsmasq" => "dnsmasq",
        _ => "unknown",
    }
}

/// Replaces each `{{KEY}}` in `template` with its value; a placeholder left unreplaced is an
/// error naming it, so a template and its test cannot drift apart silently.
pub fn render(template: &str, values: &[(&str, String)]) -> Result<String, HarnessError> {
    let mut out = template.to_owned();
    for (key, value) in values {
        out = out.replace(&format!("{{{{{key}}}}}"), value);
    }
    match out.find("{{") {
        Some(at) => {
            let end = out[at..].find("}}").map_or(out.len(), |e| at + e + 2);
            Err(HarnessError::Setup(format!(
                "template placeholder {} has no value",
                &out[at..end]
            )))
        }
        None => Ok(out),
    }
}

/// Reads a fixture under [`fixtures_dir`], renders it with `values` and writes it to `to`.
pub fn render_fixture(
    fixture: &str,
    values: &[(&str, String)],
    to: &std::path::Path,
) -> Result<(), HarnessError> {
    let from = fixtures_dir().join(fixture);
    let template = std::fs::read_to_string(&from)
        .map_err(|e| HarnessError::Setup(format!("reading {}: {e}", from.display())))?;
    let text = render(&template, values)?;
    std::fs::write(to, text)
        .map_err(|e| HarnessError::Setup(format!("writing {}: {e}", to.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_replaces_every_placeholder() {
        let text = render(
            "a={{A}} b={{B}} a={{A}}",
            &[("A", "1".into()), ("B", "2".into())],
        )
        .expect("all placeholders have values");
        assert_eq!(text, "a=1 b=2 a=1");
    }

    #[test]
    fn render_names_a_placeholder_without_value() {
        let err = render("x={{X}} y={{Y}}", &[("X", "1".into())]).unwrap_err();
        assert!(err.to_string().contains("{{Y}}"), "{err}");
    }
}
