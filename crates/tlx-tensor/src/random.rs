//! A small, seedable, portable random number generator (xoshiro256++ seeded by SplitMix64)
//! and random tensors. Results depend only on the seed, never on the platform or thread count.

use crate::Tensor;
use tlx_core::{DType, Error, Result, Shape};

/// xoshiro256++: fast, 256-bit state, good statistical quality.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose whole sequence is determined by `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng { s: [next(), next(), next(), next()] }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = (s[0].wrapping_add(s[3])).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `0..n` (n > 0), without modulo bias.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % n;
            }
        }
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A new generator split off this one (for independent streams).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }

    /// Shuffles a slice in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

impl Tensor {
    /// Uniform samples in `[low, high)`.
    pub fn rand_uniform(
        shape: impl Into<Shape>,
        low: f64,
        high: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        if low.is_nan() || high.is_nan() || low > high {
            return Err(Error::invalid("rand_uniform", format!("low {low} is above high {high}")));
        }
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.numel()).map(|_| low + (high - low) * rng.uniform()).collect();
        Tensor::from_vec(v, shape)?.to_dtype(dtype)
    }

    /// Normal samples with mean `mean` and standard deviation `std`.
    pub fn randn(
        shape: impl Into<Shape>,
        mean: f64,
        std: f64,
        dtype: DType,
        rng: &mut Rng,
    ) -> Result<Tensor> {
        if std.is_nan() || std < 0.0 {
            return Err(Error::invalid("randn", format!("standard deviation {std} is negative")));
        }
        let shape = shape.into();
        let v: Vec<f64> = (0..shape.numel()).map(|_| mean + std * rng.normal()).collect();
        Tensor::from_vec(v, shape)?.to_dtype(dtype)
    }

    /// Inverted dropout: zeroes each element with probability `rate` and scales the kept ones
    /// by `1/(1 − rate)`. The mask comes from `rng`.
    pub fn dropout(&self, rate: f64, rng: &mut Rng) -> Result<Tensor> {
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::invalid("dropout", format!("rate must be in [0, 1), got {rate}")));
        }
        if rate == 0.0 {
            return Ok(self.clone());
        }
        #[cfg(feature = "cuda")]
        if let crate::Device::Cuda(dev) = self.device() {
            return crate::cuda::dropout(self, rate, rng, dev);
        }
        let keep = 1.0 / (1.0 - rate);
        let mask: Vec<f64> =
            (0..self.numel()).map(|_| if rng.uniform() >= rate { keep } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, self.shape().clone())?.to_dtype(self.dtype())?;
        self.mul(&mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_spread() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        let n = 20_000;
        let mean: f64 = (0..n).map(|_| a.uniform()).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
        let normals: Vec<f64> = (0..n).map(|_| a.normal()).collect();
        let m = normals.iter().sum::<f64>() / n as f64;
        let v = normals.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n as f64;
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.05, "{m} {v}");
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[a.below(3) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 900));
    }

    #[test]
    fn dropout_keeps_the_expected_fraction_and_scales() {
        let x = Tensor::ones([10_000], DType::F32);
        let y = x.dropout(0.3, &mut Rng::new(1)).unwrap().to_vec::<f32>().unwrap();
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / 10_000.0;
        assert!((kept - 0.7).abs() < 0.02, "{kept}");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
        assert!(x.dropout(1.0, &mut Rng::new(1)).is_err());
    }
}
