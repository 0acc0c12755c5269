//! The README's demo: `dialer demo` places a whole call on loopback against the simulated
//! carrier and agent and leaves the recording and the captures.

use std::path::Path;
use std::process::Command;

/// Power of `freq` in `samples` relative to their total power (Goertzel).
fn tone_share(samples: &[f64], rate: f64, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let total: f64 = samples.iter().map(|x| x * x).sum::<f64>() * samples.len() as f64 / 2.0;
    if total == 0.0 {
        0.0
    } else {
        power / total
    }
}

fn channel(path: &Path, index: usize) -> Vec<f64> {
    let mut r = hound::WavReader::open(path).expect("the recording is a WAV file");
    assert_eq!(r.spec().channels, 2, "stereo: customer left, agent right");
    r.samples::<i16>()
        .map(|s| f64::from(s.expect("readable samples")))
        .skip(index)
        .step_by(2)
        .collect()
}

#[test]
fn demo_bridges_a_call_and_leaves_recording_and_captures() {
    let dir = std::env::temp_dir().join(format!("dialer-demo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dialer"))
        .args(["demo", "--talk", "2", "--out-dir"])
        .arg(&dir)
        .output()
        .expect("the dialer binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("bridged"), "{stdout}");
    // The ladder shows both legs, ACKs included.
    assert!(
        stderr.contains("INVITE") && stderr.contains("ACK") && stderr.contains("BYE"),
        "{stderr}"
    );

    // Customer (left) said 440 Hz, the agent (right) 1000 Hz.
    let wav = dir.join("demo.wav");
    let left = channel(&wav, 0);
    let right = channel(&wav, 1);
    let talk = |ch: &[f64]| ch[ch.len() / 2..ch.len() / 2 + 4000].to_vec();
    assert!(
        tone_share(&talk(&left), 8000.0, 440.0) > 0.5,
        "customer channel is not 440 Hz"
    );
    assert!(
        tone_share(&talk(&right), 8000.0, 1000.0) > 0.5,
        "agent channel is not 1000 Hz"
    );

    // The peers' capture has the registrations and both call legs; the dialer's own capture
    // of the call (`--pcap`) has its SIP and the RTP both ways on both legs.
    let peers = capture::read_file(&dir.join("demo.pcap")).expect("demo.pcap reads");
    let text: Vec<String> = peers
        .packets
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect();
    assert!(text.iter().any(|t| t.starts_with("REGISTER ")));
    assert_eq!(text.iter().filter(|t| t.starts_with("INVITE ")).count(), 2);
    let call = capture::read_file(&dir.join("demo-call.pcap")).expect("demo-call.pcap reads");
    let streams = capture::rtp::streams(&call, &capture::rtp::RtpOptions::default());
    assert_eq!(streams.len(), 4, "RTP both ways on both legs: {streams:?}");
    assert!(
        streams.iter().all(|s| s.packets > 50 && s.lost == 0),
        "{streams:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
