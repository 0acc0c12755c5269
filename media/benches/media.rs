//! Hot-path costs: relay pass-through, plain and with SRTP on both legs (measured side by side
//! in one run), G.711, Opus <-> PCMU transcoding, ringback frames.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use media::codec::g711::{self, Law};
use media::codec::{Codec, Encoder, Transcoder};
use media::playback::Ringback;
use media::relay::{Forward, Relay, RelayConfig, Side};
use media::rtcp::NtpTimestamp;
use media::rtp::{self, OutgoingHeader, PayloadType, Ssrc};
use media::sdp::{
    answer_offer, LocalEndpoint, MediaConfig, Negotiated, SessionDescription, SrtpKeys,
};
use media::srtp::{CryptoSuite, MasterKey, SrtpSession};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    // Benchmarks only need an origin for virtual time.
    Instant::now()
}

fn leg(ip: &str, port: u16) -> Negotiated {
    let body = format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:101 telephone-event/8000\r\n"
    );
    let offer = SessionDescription::parse(&body).expect("bench SDP parses");
    let local = LocalEndpoint {
        address: "203.0.113.1".parse().unwrap(),
        rtp_port: 30000,
        session_id: 1,
        session_version: 1,
    };
    answer_offer(&offer, &MediaConfig::default(), &local)
        .expect("acceptable")
        .1
}

fn tone(len: usize, rate: f64) -> Vec<i16> {
    (0..len)
        .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * n as f64 / rate).sin()) as i16)
        .collect()
}

fn relay_pass_through(c: &mut Criterion) {
    let t0 = epoch();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut relay = Relay::new(
        RelayConfig::default(),
        leg("198.51.100.7", 4000),
        leg("192.0.2.50", 5000),
        t0,
        NtpTimestamp::default(),
        &mut rng,
    )
    .expect("relay");
    let from = "198.51.100.7:4000".parse().unwrap();
    let mut template = [0u8; 172];
    let header = OutgoingHeader {
        marker: false,
        payload_type: PayloadType(0),
        sequence: 0,
        timestamp: 0,
        ssrc: Ssrc(0x1234),
    };
    rtp::write_packet(&mut template, &header, &[0xd5; 160]).expect("fits");
    let mut buf = [0u8; 1500];
    buf[..172].copy_from_slice(&template);
    let mut seq: u16 = 0;
    let mut now = t0;
    let mut group = c.benchmark_group("relay");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pass_through_forward", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            now += Duration::from_millis(20);
            // Restore the peer's header (the previous iteration rewrote it in place).
            buf[..12].copy_from_slice(&template[..12]);
            buf[2..4].copy_from_slice(&seq.to_be_bytes());
            buf[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            let result = relay.forward(now, Side::Customer, from, &mut buf, 172);
            debug_assert!(matches!(result, Forward::Send { .. }));
            black_box(result)
        })
    });
    group.finish();
}

fn g711(c: &mut Criterion) {
    let pcm = tone(160, 8000.0);
    let mut codes = [0u8; 160];
    let mut out = [0i16; 160];
    let mut group = c.benchmark_group("g711_20ms");
    group.throughput(Throughput::Elements(160));
    for law in [Law::Mu, Law::A] {
        group.bench_function(format!("encode_{law:?}"), |b| {
            b.iter(|| g711::encode(law, black_box(&pcm), &mut codes))
        });
        g711::encode(law, &pcm, &mut codes);
        group.bench_function(format!("decode_{law:?}"), |b| {
            b.iter(|| g711::decode(law, black_box(&codes), &mut out))
        });
    }
    group.finish();
}

fn transcode(c: &mut Criterion) {
    let pcm8 = tone(8000, 8000.0);
    let ulaw: Vec<Vec<u8>> = pcm8
        .chunks(160)
        .map(|f| f.iter().map(|&s| g711::encode_sample(Law::Mu, s)).collect())
        .collect();
    let pcm48 = tone(48000, 48000.0);
    let mut encoder = Encoder::new(Codec::Opus).expect("encoder");
    let mut packet = [0u8; 1500];
    let opus: Vec<Vec<u8>> = pcm48
        .chunks(960)
        .map(|f| {
            let n = encoder.encode(f, &mut packet).expect("encodes");
            packet[..n].to_vec()
        })
        .collect();
    let mut to_opus = Transcoder::new(Codec::Pcmu, Codec::Opus).expect("transcoder");
    let mut to_pcmu = Transcoder::new(Codec::Opus, Codec::Pcmu).expect("transcoder");
    let mut out = [0u8; 1500];
    let mut group = c.benchmark_group("transcode_20ms");
    let mut i = 0;
    group.bench_function("pcmu_to_opus", |b| {
        b.iter(|| {
            i = (i + 1) % ulaw.len();
            to_opus
                .transcode(black_box(&ulaw[i]), &mut out)
                .expect("transcodes")
        })
    });
    let mut j = 0;
    group.bench_function("opus_to_pcmu", |b| {
        b.iter(|| {
            j = (j + 1) % opus.len();
            to_pcmu
                .transcode(black_box(&opus[j]), &mut out)
                .expect("transcodes")
        })
    });
    group.finish();
}

fn ringback(c: &mut Criterion) {
    let samples: Vec<u8> = tone(16000, 8000.0)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let mut wav = Vec::new();
    for part in [
        &b"RIFF"[..],
        &(36 + samples.len() as u32).to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &1u16.to_le_bytes(),
        &8000u32.to_le_bytes(),
        &16000u32.to_le_bytes(),
        &2u16.to_le_bytes(),
        &16u16.to_le_bytes(),
        b"data",
        &(samples.len() as u32).to_le_bytes(),
        &samples,
    ] {
        wav.extend_from_slice(part);
    }
    let ringback =
        Ringback::from_wav_bytes(&wav, Path::new("bench.wav"), &[Codec::Pcmu]).expect("loads");
    let mut player = ringback.player(Codec::Pcmu).expect("clip");
    let mut buf = [0u8; 1500];
    let mut seq = 0u16;
    c.bench_function("ringback_frame_to_packet", |b| {
        b.iter(|| {
            seq = seq.wrapping_add(1);
            let header = OutgoingHeader {
                marker: false,
                payload_type: PayloadType(0),
                sequence: seq,
                timestamp: u32::from(seq) * 160,
                ssrc: Ssrc(1),
            };
            rtp::write_packet(&mut buf, &header, player.next_frame()).expect("fits")
        })
    });
}

/// Keys for one leg: ours and the peer's, and the peer's own session (it protects with its key).
fn leg_keys(rng: &mut ChaCha8Rng) -> (SrtpKeys, SrtpSession) {
    let suite = CryptoSuite::AesCm128HmacSha1_80;
    let keys = SrtpKeys {
        local: MasterKey::generate(suite, rng),
        remote: MasterKey::generate(suite, rng),
    };
    let peer = SrtpSession::new(&keys.remote, &keys.local).expect("one suite");
    (keys, peer)
}

/// The relay's cost per packet from the customer to the agent, pass-through PCMU, with plain
/// RTP and with SRTP (AES_CM_128_HMAC_SHA1_80) on both legs: unprotect, rewrite, protect. The
/// packet each iteration forwards is made in the untimed setup (for SRTP the trunk protects
/// it there), so both figures are the relay's own work only.
fn relay_srtp_beside_plain(c: &mut Criterion) {
    let mut group = c.benchmark_group("relay_both_legs");
    group.throughput(Throughput::Elements(1));
    for srtp in [false, true] {
        let t0 = epoch();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut relay = Relay::new(
            RelayConfig::default(),
            leg("198.51.100.7", 4000),
            leg("192.0.2.50", 5000),
            t0,
            NtpTimestamp::default(),
            &mut rng,
        )
        .expect("relay");
        let mut trunk = None;
        if srtp {
            let (customer, trunk_session) = leg_keys(&mut rng);
            let (agent, _) = leg_keys(&mut rng);
            relay.set_srtp(Side::Customer, Some(&customer));
            relay.set_srtp(Side::Agent, Some(&agent));
            trunk = Some(trunk_session);
        }
        let from = "198.51.100.7:4000".parse().unwrap();
        let mut seq: u16 = 0;
        let mut now = t0;
        let name = if srtp {
            "srtp_forward"
        } else {
            "plain_forward"
        };
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    seq = seq.wrapping_add(1);
                    let header = OutgoingHeader {
                        marker: false,
                        payload_type: PayloadType(0),
                        sequence: seq,
                        timestamp: u32::from(seq) * 160,
                        ssrc: Ssrc(0x1234),
                    };
                    let mut buf = [0u8; 1500];
                    let mut len = rtp::write_packet(&mut buf, &header, &[0xd5; 160]).expect("fits");
                    if let Some(trunk) = trunk.as_mut() {
                        len = trunk.protect_rtp(&mut buf, len).expect("protects");
                    }
                    (buf, len)
                },
                |(buf, len)| {
                    now += Duration::from_millis(20);
                    let result = relay.forward(now, Side::Customer, from, buf, *len);
                    debug_assert!(matches!(result, Forward::Send { .. }));
                    black_box(result)
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    relay_pass_through,
    relay_srtp_beside_plain,
    g711,
    transcode,
    ringback
);
criterion_main!(benches);
