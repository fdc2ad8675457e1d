//! Shared helpers of the CPU-vs-CUDA parity tests: the device (or the printed reason to skip),
//! a deterministic random source, strided/broadcast views, and the normwise error check.
//!
//! Every parity test starts with `let Some(ctx) = common::device("name") else { return };`:
//! without a driver or GPU it prints `skipped: no CUDA driver/GPU: <error>` and passes. Set
//! `TLX_REQUIRE_GPU=1` (as a GPU run should) to make a missing device fail instead.
#![allow(dead_code)]

use tlx_core::{Layout, Shape};
use tlx_cuda::CudaContext;

/// Normwise relative error bound of f32 results against an f64 reference.
pub const F32_TOL: f64 = 1e-5;

/// Device 0, or `None` after printing why the test is skipped.
pub fn device(test: &str) -> Option<CudaContext> {
    match CudaContext::first() {
        Ok(ctx) => {
            println!(
                "{test}: running on {} (sm_{}{})",
                ctx.info().name,
                ctx.info().compute_capability.0,
                ctx.info().compute_capability.1
            );
            Some(ctx)
        }
        Err(e) if std::env::var("TLX_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("{test}: TLX_REQUIRE_GPU=1 but no usable GPU: {e}")
        }
        Err(e) if e.is_unavailable() => {
            println!("{test}: skipped: no CUDA driver/GPU: {e}");
            None
        }
        Err(e) => panic!("{test}: CUDA is present but unusable: {e}"),
    }
}

/// A small deterministic generator (SplitMix64): reproducible shapes and data without a
/// dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform integer in `[0, n)` (0 when n is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// Uniform integer in `[lo, hi]`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// `n` f32 uniform in `[lo, hi)`.
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n).map(|_| (lo + (hi - lo) * self.unit()) as f32).collect()
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// f32 → f64, exactly.
pub fn up(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// `‖got − want‖₂ / ‖want‖₂` (absolute when the reference is all zeros).
pub fn normwise(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        let d = g as f64 - w;
        num += d * d;
        den += w * w;
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// Asserts the normwise relative error is at most `tol` (and that NaNs are where the
/// reference has them).
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, expected {}", got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.is_nan(), w.is_nan(), "{what}: element {i} is {g}, reference {w}");
    }
    let (g, w): (Vec<f32>, Vec<f64>) =
        got.iter().zip(want).filter(|(g, w)| !g.is_nan() && !w.is_nan()).map(|(&g, &w)| (g, w)).unzip();
    let err = normwise(&g, &w);
    assert!(err <= tol, "{what}: normwise relative error {err:.3e} exceeds {tol:.1e}");
}

/// A strided view with logical dims `dims` over a larger buffer: the axes are stored in a
/// random order with random extra entries on each axis (a permuted, narrowed view). Returns
/// the layout and the storage length it needs.
pub fn view(rng: &mut Rng, dims: &[usize]) -> (Layout, usize) {
    let r = dims.len();
    let mut perm: Vec<usize> = (0..r).collect();
    rng.shuffle(&mut perm);
    let pad: Vec<usize> = (0..r).map(|_| rng.below(3)).collect();
    let stored: Vec<usize> = (0..r).map(|j| dims[perm[j]] + pad[j]).collect();
    let mut l = Layout::contiguous(stored.clone());
    for j in 0..r {
        let start = rng.below(pad[j] + 1);
        l = l.narrow(j, start, dims[perm[j]]).expect("narrow");
    }
    let mut inv = vec![0; r];
    for (j, &p) in perm.iter().enumerate() {
        inv[p] = j;
    }
    (l.permute(&inv).expect("permute"), stored.iter().product::<usize>().max(1))
}

/// Random dims of rank `lo..=hi`, each `1..=max_dim`.
pub fn dims(rng: &mut Rng, lo: usize, hi: usize, max_dim: usize) -> Vec<usize> {
    (0..rng.range(lo, hi)).map(|_| rng.range(1, max_dim)).collect()
}

/// An operand of a broadcast op with output dims `out`: some axes set to 1 (broadcast), some
/// leading axes dropped, then a strided view of that, broadcast to `out`. Returns the
/// broadcast layout, the storage length and the operand's own dims.
pub fn broadcast_operand(rng: &mut Rng, out: &[usize]) -> (Layout, usize, Vec<usize>) {
    let drop = if rng.below(4) == 0 { rng.below(out.len() + 1) } else { 0 };
    let own: Vec<usize> = out[drop..].iter().map(|&d| if rng.below(3) == 0 { 1 } else { d }).collect();
    let (l, len) = if rng.below(2) == 0 {
        view(rng, &own)
    } else {
        (Layout::contiguous(own.clone()), own.iter().product::<usize>().max(1))
    };
    (l.broadcast_to(&Shape::new(out.to_vec())).expect("broadcast"), len, own)
}
