//! Forward convolution for small patches (`kh·kw·c_in` up to [`MAX_K`], ungrouped), such as
//! VGG16's first layer (3×3×3 = 27): a GEMM with an inner dimension this short spends its
//! time packing and storing, so this path builds the patches of one output row at a time
//! (`[out_w, K]`, in cache) and multiplies them by the kernel `[K, c_out]` with a
//! register-blocked loop (4 pixels × 16 channels of accumulators) that writes each output
//! element once, bias included.

use super::im2col::im2col;
use super::{Epilogue, Tuning};
use crate::par;
use crate::simd::madd;
use rayon::prelude::*;
use tlx_core::{Conv2dGeometry, Float};

/// Largest patch length that takes this path.
pub(super) const MAX_K: usize = 64;

/// Pixels of one register block (times `C` channels: 16 with AVX2, 32 with AVX-512, so
/// that the accumulators are 8 vector registers either way).
const P: usize = 4;

/// Forward: `out` `[n·out_h, out_w·c_out]` (overwritten), one output row per task.
pub(super) fn forward<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    kernel: &[T],
    bias: Option<&[T]>,
    ep: Option<&Epilogue<'_, T>>,
    out: &mut [T],
    t: &Tuning,
) {
    let k_row = g.kh * g.kw * g.c_in;
    debug_assert!(g.groups == 1 && k_row <= MAX_K);
    let row_len = g.out_w * g.c_out;
    let body = |(row, o): (usize, &mut [T])| {
        par::with_scratch(g.out_w * k_row, |patch: &mut [T]| {
            // patch: [out_w, K]
            im2col(g, input, 0, row * g.out_w, g.out_w, patch, k_row, false);
            row_product(patch, kernel, bias, k_row, g.c_out, o);
        });
        if let Some(ep) = ep {
            ep.apply(o, g.c_out, row * g.out_w);
        }
    };
    if t.parallel(out.len() * k_row) {
        out.par_chunks_mut(row_len).enumerate().for_each(body);
    } else {
        out.chunks_mut(row_len).enumerate().for_each(body);
    }
}

/// Dispatches to the widest copy of `row_product_body` the CPU runs.
fn row_product<T: Float>(patch: &[T], w: &[T], bias: Option<&[T]>, k: usize, c_out: usize, out: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    {
        // Safety of both copies: callable only where the CPU has the enabled features.
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn avx512<T: Float>(p: &[T], w: &[T], b: Option<&[T]>, k: usize, c: usize, o: &mut [T]) {
            row_product_body::<T, true, 32>(p, w, b, k, c, o)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<T: Float>(p: &[T], w: &[T], b: Option<&[T]>, k: usize, c: usize, o: &mut [T]) {
            row_product_body::<T, true, 16>(p, w, b, k, c, o)
        }
        if crate::simd::has_avx512() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked at run time).
            return unsafe { avx512(patch, w, bias, k, c_out, out) };
        }
        if crate::simd::has_avx2_fma() {
            // SAFETY: the CPU has AVX2 and FMA (checked at run time).
            return unsafe { avx2(patch, w, bias, k, c_out, out) };
        }
    }
    row_product_body::<T, false, 16>(patch, w, bias, k, c_out, out)
}

/// `out [px, c_out] = bias + patch [px, k] × w [k, c_out]`.
#[inline(always)]
fn row_product_body<T: Float, const FMA: bool, const C: usize>(
    patch: &[T],
    w: &[T],
    bias: Option<&[T]>,
    k: usize,
    c_out: usize,
    out: &mut [T],
) {
    let px = out.len() / c_out;
    let w = &w[..k * c_out];
    let bias_at = |c: usize| bias.map_or(T::zero(), |b| b[c]);
    let mut cb = 0;
    while cb + C <= c_out {
        let mut b0 = [T::zero(); C];
        for (c, v) in b0.iter_mut().enumerate() {
            *v = bias_at(cb + c);
        }
        let mut ox = 0;
        while ox + P <= px {
            // acc: [P pixels, C channels], kept in registers.
            let mut acc = [b0; P];
            let xs: [&[T]; P] = std::array::from_fn(|p| &patch[(ox + p) * k..][..k]);
            for kk in 0..k {
                let wv: &[T; C] = w[kk * c_out + cb..][..C].try_into().expect("C weights");
                for (a, x) in acc.iter_mut().zip(&xs) {
                    let x = x[kk];
                    for c in 0..C {
                        a[c] = madd::<T, FMA>(x, wv[c], a[c]);
                    }
                }
            }
            for (p, a) in acc.iter().enumerate() {
                out[(ox + p) * c_out + cb..][..C].copy_from_slice(a);
            }
            ox += P;
        }
        for ox in ox..px {
            let mut a = b0;
            for kk in 0..k {
                let x = patch[ox * k + kk];
                let wv: &[T; C] = w[kk * c_out + cb..][..C].try_into().expect("C weights");
                for c in 0..C {
                    a[c] = madd::<T, FMA>(x, wv[c], a[c]);
                }
            }
            out[ox * c_out + cb..][..C].copy_from_slice(&a);
        }
        cb += C;
    }
    // Channels left over from the blocks of C.
    if cb < c_out {
        for ox in 0..px {
            let o = &mut out[ox * c_out..][..c_out];
            for (c, v) in o.iter_mut().enumerate().skip(cb) {
                *v = bias_at(c);
            }
            for kk in 0..k {
                let x = patch[ox * k + kk];
                for c in cb..c_out {
                    o[c] = madd::<T, FMA>(x, w[kk * c_out + c], o[c]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_copy_of_the_row_product_agrees_with_plain_loops() {
        for (px, k, c_out) in [(9, 27, 64), (5, 7, 37), (3, 1, 16), (1, 64, 33), (6, 12, 5)] {
            let patch: Vec<f64> = (0..px * k).map(|i| ((i * 37) % 19) as f64 - 9.0).collect();
            let w: Vec<f64> = (0..k * c_out).map(|i| ((i * 13) % 11) as f64 * 0.25 - 1.0).collect();
            let bias: Vec<f64> = (0..c_out).map(|c| c as f64 * 0.5).collect();
            let mut want = vec![0.0; px * c_out];
            for p in 0..px {
                for c in 0..c_out {
                    want[p * c_out + c] =
                        bias[c] + (0..k).map(|kk| patch[p * k + kk] * w[kk * c_out + c]).sum::<f64>();
                }
            }
            let mut got = vec![f64::NAN; px * c_out];
            row_product_body::<f64, false, 16>(&patch, &w, Some(&bias), k, c_out, &mut got);
            assert_eq!(got, want, "portable {px}x{k}x{c_out}");
            row_product_body::<f64, true, 32>(&patch, &w, Some(&bias), k, c_out, &mut got);
            assert_eq!(got, want, "fused {px}x{k}x{c_out}");
            row_product(&patch, &w, None, k, c_out, &mut got);
            for (g, (wv, b)) in got.iter().zip(want.iter().zip(bias.iter().cycle())) {
                assert_eq!(*g, wv - b, "dispatched {px}x{k}x{c_out}");
            }
        }
    }
}
