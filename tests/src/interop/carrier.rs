//! SIPp carriers for the robustness tests (`tests/interop/sipp/carrier_<case>.xml`): the
//! settings of [`super::call::carrier`] plus scenario keys of their own (session intervals,
//! the addresses of a second fork), on any local address, and the clock of SIPp's trace.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::audio::{self, Law};
use super::call::{CONTACT_HOST, TRUNK_PASSWORD};
use super::ports::{free_port, loopback};
use super::sipp::{Sipp, SippConfig};
use super::trace::TracedMessage;
use super::{HarnessError, TestDir};

/// The settings of a carrier scenario on `ip` with media on `media_port` (raw A-law 440 Hz
/// `carrier.al` written to the test directory), answering from `contact_ip` (`-key
/// contact_ip 127.0.0.3`), trunk digest keys set, processing `calls` SIPp calls (the trunk's
/// REGISTER is one). `keys` are added as `-key NAME VALUE`.
pub fn carrier_config(
    dir: &TestDir,
    scenario: &str,
    ip: IpAddr,
    media_port: u16,
    calls: u32,
    keys: &[(&str, String)],
) -> Result<SippConfig, HarnessError> {
    audio::g711_raw(&dir.join("carrier.al"), Law::A, 440, 40)?;
    let mut config = SippConfig::new("carrier", scenario, SocketAddr::new(ip, free_port(ip)?))
        .key("user", "dialer")
        .key("password", TRUNK_PASSWORD)
        .key("realm", "carrier.test")
        .key("contact_ip", loopback(CONTACT_HOST));
    for (name, value) in keys {
        config = config.key(name, value);
    }
    config.media = Some((ip, media_port));
    config.calls = calls;
    config.timeout = Duration::from_secs(60);
    Ok(config)
}

/// [`carrier_config`] on 127.0.0.1 for one call after the REGISTER, started.
pub fn carrier_with(
    dir: &TestDir,
    scenario: &str,
    media_port: u16,
    keys: &[(&str, String)],
) -> Result<Sipp, HarnessError> {
    let config = carrier_config(dir, scenario, super::ports::LOOPBACK, media_port, 2, keys)?;
    Sipp::start(config, dir.path())
}

/// Seconds since midnight of a SIPp trace timestamp (`2026-12-01 17:29:32.954763`): SIPp's
/// own clock, so differences between two messages of one trace are real intervals.
pub fn trace_seconds(message: &TracedMessage) -> Option<f64> {
    let clock = message.time.split_whitespace().nth(1)?;
    let mut parts = clock.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Seconds from `earlier` to `later` in one SIPp trace (across midnight too).
pub fn trace_interval(earlier: &TracedMessage, later: &TracedMessage) -> Option<f64> {
    let d = trace_seconds(later)? - trace_seconds(earlier)?;
    Some(if d < 0.0 { d + 86_400.0 } else { d })
}

#[cfg(test)]
mod tests {
    use super::super::trace::Direction;
    use super::*;

    fn at(time: &str) -> TracedMessage {
        TracedMessage {
            direction: Direction::Received,
            time: time.into(),
            start_line: "ACK sip:a@b SIP/2.0".into(),
            headers: Vec::new(),
            body: String::new(),
        }
    }

    #[test]
    fn trace_intervals_use_the_clock_and_wrap_at_midnight() {
        let a = at("2026-12-01 17:29:32.500000");
        let b = at("2026-12-01 17:29:40.750000");
        assert!((trace_interval(&a, &b).unwrap() - 8.25).abs() < 1e-6);
        let late = at("2026-12-01 23:59:59.000000");
        let early = at("2026-12-02 00:00:01.000000");
        assert!((trace_interval(&late, &early).unwrap() - 2.0).abs() < 1e-6);
    }
}
