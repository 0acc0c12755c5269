//! Seeded random numbers for the simulator (SplitMix64: small, fast, and the same stream on
//! every platform, so a seed names one traffic).

/// SplitMix64 (Steele, Lea and Flood, OOPSLA 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The stream of call number `call` of the traffic `seed`: every pacing mode meets the
    /// same customer on its n-th call.
    pub fn for_call(seed: u64, call: u64) -> SplitMix64 {
        let mut s = SplitMix64(seed ^ call.wrapping_mul(0xd1b5_4a32_d192_ed03));
        s.next_u64();
        s
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [a, b].
    pub fn uniform(&mut self, [a, b]: [f64; 2]) -> f64 {
        a + (b - a) * self.unit()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unit();
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Lognormal with the given mean and sigma of the log (mu = ln(mean) - sigma²/2).
    pub fn lognormal(&mut self, mean: f64, sigma: f64) -> f64 {
        let mu = mean.ln() - sigma * sigma / 2.0;
        (mu + sigma * self.normal()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lognormal_has_the_mean_asked_for() {
        let mut r = SplitMix64::new(7);
        let n = 200_000;
        let mean = (0..n).map(|_| r.lognormal(120.0, 0.6)).sum::<f64>() / n as f64;
        assert!((mean - 120.0).abs() < 1.5, "mean {mean}");
    }

    #[test]
    fn a_call_stream_depends_only_on_seed_and_call_number() {
        let a: Vec<u64> = (0..3)
            .map(|_| SplitMix64::for_call(1, 5).next_u64())
            .collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            SplitMix64::for_call(1, 5).next_u64(),
            SplitMix64::for_call(1, 6).next_u64()
        );
    }
}
