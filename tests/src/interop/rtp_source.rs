//! A third party's RTP stream: a G.711 A-law tone sent from an address of the test's
//! choosing, one 20 ms packet every 20 ms as a phone sends it, with its own SSRC and
//! sequence numbers (what an off-path attacker injecting audio into a call sends).

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use media::codec::g711::{self, Law};

use super::HarnessError;

/// Samples in one packet: 20 ms at 8 kHz.
const FRAME: usize = 160;

/// Sends `packets` packets of an A-law `freq` tone (payload type 8) from `from` to `to`.
/// Returns how many were sent.
pub fn send_alaw_tone(
    from: SocketAddr,
    to: SocketAddr,
    freq: f64,
    packets: u32,
) -> Result<u32, HarnessError> {
    let sock = UdpSocket::bind(from)
        .map_err(|e| HarnessError::Setup(format!("RTP source on {from}: {e}")))?;
    let ssrc: u32 = 0x5EED_0BAD;
    let mut sent = 0;
    for n in 0..packets {
        let pcm: Vec<i16> = (0..FRAME)
            .map(|i| {
                let t = (n as usize * FRAME + i) as f64 / 8000.0;
                (8000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            })
            .collect();
        let mut packet = vec![0u8; 12 + FRAME];
        packet[0] = 0x80;
        packet[1] = 8;
        packet[2..4].copy_from_slice(&(n as u16).wrapping_add(7000).to_be_bytes());
        packet[4..8].copy_from_slice(&(n * FRAME as u32).to_be_bytes());
        packet[8..12].copy_from_slice(&ssrc.to_be_bytes());
        g711::encode(Law::A, &pcm, &mut packet[12..]);
        if sock.send_to(&packet, to).is_ok() {
            sent += 1;
        }
        pace(Duration::from_millis(20));
    }
    Ok(sent)
}

/// The stream's own clock: a packet every 20 ms is what makes this a phone's stream rather
/// than a burst; nothing waits on it for synchronisation.
#[allow(clippy::disallowed_methods)]
fn pace(interval: Duration) {
    std::thread::sleep(interval);
}
