//! G.711 µ-law and A-law (ITU-T G.711), table driven.
//!
//! The tables are computed at compile time from the segment rules of G.711 §2-3: decoding is one
//! 256-entry lookup, encoding one lookup indexed by the 14-bit (µ-law) or 13-bit (A-law) linear
//! value G.711 is defined on. Writing this by hand is shorter than depending on a crate for two
//! lookups, and the tables are checked against G.711's fixed points in the tests.

/// µ-law bias (G.711 §3: 33 in 14-bit units).
const ULAW_BIAS: i32 = 0x21;
/// Largest 14-bit magnitude µ-law codes, after bias.
const ULAW_CLIP: i32 = 0x1fff - ULAW_BIAS;

const fn ulaw_encode_14(value: i32) -> u8 {
    // `value` is a 14-bit signed linear sample.
    let (sign, magnitude) = if value < 0 {
        (0x80u8, -value)
    } else {
        (0u8, value)
    };
    let magnitude = if magnitude > ULAW_CLIP {
        ULAW_CLIP
    } else {
        magnitude
    } + ULAW_BIAS;
    // Segment: position of the highest set bit above bit 5 (magnitude is at least 0x21).
    let mut segment = 0;
    while segment < 7 && (magnitude >> (segment + 6)) != 0 {
        segment += 1;
    }
    let mantissa = ((magnitude >> (segment + 1)) & 0x0f) as u8;
    !(sign | ((segment as u8) << 4) | mantissa)
}

const fn ulaw_decode(code: u8) -> i16 {
    let code = !code;
    let segment = ((code >> 4) & 0x07) as i32;
    let mantissa = (code & 0x0f) as i32;
    let magnitude = (((mantissa << 1) + ULAW_BIAS) << segment) - ULAW_BIAS;
    // Back to 16-bit scale.
    let value = magnitude << 2;
    if code & 0x80 != 0 {
        -value as i16
    } else {
        value as i16
    }
}

const fn alaw_encode_13(value: i32) -> u8 {
    // `value` is a 13-bit signed linear sample. Even bits are inverted on the line (G.711 §2).
    let (mask, magnitude) = if value >= 0 {
        (0xd5u8, value)
    } else {
        (0x55u8, -value - 1)
    };
    let mut segment = 0;
    while segment < 8 && magnitude >= (0x20 << segment) {
        segment += 1;
    }
    if segment >= 8 {
        return 0x7f ^ mask;
    }
    let shift = if segment < 2 { 1 } else { segment };
    let code = ((segment as u8) << 4) | (((magnitude >> shift) & 0x0f) as u8);
    code ^ mask
}

const fn alaw_decode(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = ((code & 0x70) >> 4) as i32;
    let mut value = ((code & 0x0f) as i32) << 4;
    value += 8;
    if segment >= 1 {
        value += 0x100;
    }
    if segment > 1 {
        value <<= segment - 1;
    }
    if code & 0x80 != 0 {
        value as i16
    } else {
        -value as i16
    }
}

const fn build_ulaw_encode() -> [u8; 1 << 14] {
    let mut table = [0u8; 1 << 14];
    let mut i = 0;
    while i < (1 << 14) {
        table[i] = ulaw_encode_14(i as i32 - (1 << 13));
        i += 1;
    }
    table
}

const fn build_alaw_encode() -> [u8; 1 << 13] {
    let mut table = [0u8; 1 << 13];
    let mut i = 0;
    while i < (1 << 13) {
        table[i] = alaw_encode_13(i as i32 - (1 << 12));
        i += 1;
    }
    table
}

const fn build_decode(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_decode(i as u8)
        } else {
            ulaw_decode(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_ENCODE: [u8; 1 << 14] = build_ulaw_encode();
static ALAW_ENCODE: [u8; 1 << 13] = build_alaw_encode();
static ULAW_DECODE: [i16; 256] = build_decode(false);
static ALAW_DECODE: [i16; 256] = build_decode(true);

/// Which G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law (PCMU), North America and Japan.
    Mu,
    /// A-law (PCMA), elsewhere.
    A,
}

/// Encodes one 16-bit sample.
#[inline]
pub fn encode_sample(law: Law, sample: i16) -> u8 {
    match law {
        Law::Mu => ULAW_ENCODE[((i32::from(sample) >> 2) + (1 << 13)) as usize],
        Law::A => ALAW_ENCODE[((i32::from(sample) >> 3) + (1 << 12)) as usize],
    }
}

/// Decodes one code to a 16-bit sample.
#[inline]
pub fn decode_sample(law: Law, code: u8) -> i16 {
    match law {
        Law::Mu => ULAW_DECODE[usize::from(code)],
        Law::A => ALAW_DECODE[usize::from(code)],
    }
}

/// Encodes `pcm` into `out` (one byte per sample); returns the number of bytes written, which
/// is the shorter of the two lengths.
pub fn encode(law: Law, pcm: &[i16], out: &mut [u8]) -> usize {
    let n = pcm.len().min(out.len());
    match law {
        Law::Mu => {
            for (o, &s) in out[..n].iter_mut().zip(pcm) {
                *o = ULAW_ENCODE[((i32::from(s) >> 2) + (1 << 13)) as usize];
            }
        }
        Law::A => {
            for (o, &s) in out[..n].iter_mut().zip(pcm) {
                *o = ALAW_ENCODE[((i32::from(s) >> 3) + (1 << 12)) as usize];
            }
        }
    }
    n
}

/// Decodes `codes` into `out`; returns the number of samples written.
pub fn decode(law: Law, codes: &[u8], out: &mut [i16]) -> usize {
    let n = codes.len().min(out.len());
    let table = match law {
        Law::Mu => &ULAW_DECODE,
        Law::A => &ALAW_DECODE,
    };
    for (o, &c) in out[..n].iter_mut().zip(codes) {
        *o = table[usize::from(c)];
    }
    n
}

/// Converts µ-law codes to A-law codes directly (PCMU <-> PCMA relaying needs no linear step
/// beyond the two lookups).
pub fn transcode(from: Law, to: Law, codes: &[u8], out: &mut [u8]) -> usize {
    let n = codes.len().min(out.len());
    for (o, &c) in out[..n].iter_mut().zip(codes) {
        *o = encode_sample(to, decode_sample(from, c));
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_points_of_g711() {
        // Silence: µ-law 0xFF, A-law 0xD5 (G.711 Tables 1a and 2a).
        assert_eq!(encode_sample(Law::Mu, 0), 0xff);
        assert_eq!(encode_sample(Law::A, 0), 0xd5);
        // Full scale.
        assert_eq!(decode_sample(Law::Mu, 0x00), -32124);
        assert_eq!(decode_sample(Law::Mu, 0x80), 32124);
        assert_eq!(decode_sample(Law::A, 0xaa), 32256);
        assert_eq!(decode_sample(Law::A, 0x2a), -32256);
        // Smallest A-law steps.
        assert_eq!(decode_sample(Law::A, 0xd5), 8);
        assert_eq!(decode_sample(Law::A, 0x55), -8);
        assert_eq!(encode_sample(Law::Mu, i16::MAX), 0x80);
        assert_eq!(encode_sample(Law::Mu, i16::MIN), 0x00);
        assert_eq!(encode_sample(Law::A, i16::MAX), 0xaa);
        assert_eq!(encode_sample(Law::A, i16::MIN), 0x2a);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            // µ-law has two zeros (0x7F is negative zero); both decode to 0, which encodes 0xFF.
            if code == 0x7f {
                continue;
            }
            assert_eq!(
                encode_sample(Law::Mu, decode_sample(Law::Mu, code)),
                code,
                "µ {code:#x}"
            );
            assert_eq!(
                encode_sample(Law::A, decode_sample(Law::A, code)),
                code,
                "A {code:#x}"
            );
        }
    }

    #[test]
    fn quantisation_error_stays_within_one_step() {
        for law in [Law::Mu, Law::A] {
            for sample in (-32000i32..32000).step_by(7) {
                let s = sample as i16;
                let back = i32::from(decode_sample(law, encode_sample(law, s)));
                // The step at magnitude m is at most m/16 plus the smallest step.
                let bound = sample.abs() / 16 + 16;
                assert!((back - sample).abs() <= bound, "{law:?} {sample} -> {back}");
            }
        }
    }

    #[test]
    fn companding_is_monotonic() {
        for law in [Law::Mu, Law::A] {
            let mut previous = i16::MIN;
            for sample in i16::MIN..=i16::MAX {
                let back = decode_sample(law, encode_sample(law, sample));
                assert!(back >= previous, "{law:?} not monotonic at {sample}");
                previous = back;
            }
        }
    }

    #[test]
    fn ulaw_to_alaw_keeps_the_level() {
        let codes: Vec<u8> = (0..=255u8).collect();
        let mut alaw = vec![0u8; 256];
        transcode(Law::Mu, Law::A, &codes, &mut alaw);
        for (&u, &a) in codes.iter().zip(&alaw) {
            let lu = i32::from(decode_sample(Law::Mu, u));
            let la = i32::from(decode_sample(Law::A, a));
            assert!(
                (lu - la).abs() <= lu.abs() / 16 + 16,
                "{u:#x}: {lu} vs {la}"
            );
        }
    }
}
