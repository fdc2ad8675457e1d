//! Pooling kernels on NHWC activations `[n, h, w, c]`: max and average, forward and
//! backward, vectorised over channels and split across rayon tasks by rows.
//!
//! Semantics are exactly `reference`'s: max forward propagates NaN, max backward gives each
//! window's gradient to its first maximum in row-major window order, average pooling divides
//! by the number of real (unpadded) cells. Forward kernels and the average backward
//! (gathered per input row, in the same order as the reference, so bit-identical) write
//! disjoint rows; the max backward scatters into bands of rows in two phases.

use crate::par::{self, SharedMut};
use crate::simd::multiversion;
use rayon::prelude::*;
use tlx_core::{Float, Pool2dGeometry};

fn check(op: &str, g: &Pool2dGeometry, input: usize, out: usize) {
    assert!(
        input == g.n * g.h * g.w * g.c && out == g.n * g.out_h * g.out_w * g.c,
        "{op}: slice sizes ({input}, {out}) do not match geometry {g:?}"
    );
}

/// Runs `f(row, chunk)` over the `[row_len]` chunks of `data`, in parallel for large work.
fn for_rows<T: Float>(data: &mut [T], row_len: usize, work: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if row_len == 0 {
        return;
    }
    if work >= crate::PARALLEL_THRESHOLD && par::threads() > 1 {
        data.par_chunks_mut(row_len).enumerate().for_each(|(r, c)| f(r, c));
    } else {
        data.chunks_mut(row_len).enumerate().for_each(|(r, c)| f(r, c));
    }
}

/// Max pooling forward; padded cells never win.
pub fn max_pool2d_forward<T: Float>(g: &Pool2dGeometry, input: &[T], out: &mut [T]) {
    check("max_pool2d_forward", g, input.len(), out.len());
    let work = out.len() * g.kh * g.kw;
    for_rows(out, g.out_w * g.c, work, |row, o| max_row(g, input, row, o));
}

/// Max pooling of the input zero-padded by `g`'s explicit padding (a ZeroPadding2D then an
/// unpadded MaxPooling2D) without the padded copy: cells of the padding count as 0, met in
/// the row-major order of the padded window, so the result has the bits of padding then
/// pooling (NaN wins, and which zero's sign wins follows that order too). `g` must have
/// been made with `Padding::Explicit` and windows that fit the padded input.
pub fn max_pool2d_forward_zero_padded<T: Float>(g: &Pool2dGeometry, input: &[T], out: &mut [T]) {
    check("max_pool2d_forward_zero_padded", g, input.len(), out.len());
    let work = out.len() * g.kh * g.kw;
    for_rows(out, g.out_w * g.c, work, |row, o| max_row_zero_padded(g, input, row, o));
}

multiversion!(fn max_row_zero_padded<T>(g: &Pool2dGeometry, input: &[T], row: usize, out: &mut [T]) => max_row_zero_padded_body);

/// Output row `row` of [`max_pool2d_forward_zero_padded`]: `out` `[out_w, c]`.
#[inline(always)]
fn max_row_zero_padded_body<T: Float, const FMA: bool>(
    g: &Pool2dGeometry,
    input: &[T],
    row: usize,
    out: &mut [T],
) {
    let (n, oy, c) = (row / g.out_h, row % g.out_h, g.c);
    let zeros = vec![T::zero(); c];
    let y_start = (oy * g.stride_h) as isize - g.pad_top as isize;
    for (ox, m) in out.chunks_exact_mut(c).enumerate() {
        let x_start = (ox * g.stride_w) as isize - g.pad_left as isize;
        let (zeros, cells) = (&zeros, (y_start..y_start + g.kh as isize));
        window_max(m, || {
            cells.clone().flat_map(move |y| {
                (x_start..x_start + g.kw as isize).map(move |x| {
                    let inside = y >= 0 && x >= 0 && (y as usize) < g.h && (x as usize) < g.w;
                    if inside {
                        &input[((n * g.h + y as usize) * g.w + x as usize) * c..][..c]
                    } else {
                        &zeros[..]
                    }
                })
            })
        });
    }
}

multiversion!(fn max_row<T>(g: &Pool2dGeometry, input: &[T], row: usize, out: &mut [T]) => max_row_body);

/// Output row `row = n·out_h + oy`: `out` `[out_w, c]`.
#[inline(always)]
fn max_row_body<T: Float, const FMA: bool>(g: &Pool2dGeometry, input: &[T], row: usize, out: &mut [T]) {
    let (n, oy, c) = (row / g.out_h, row % g.out_h, g.c);
    let (y0, y1) = g.rows(oy);
    for (ox, m) in out.chunks_exact_mut(c).enumerate() {
        let (x0, x1) = g.cols(ox);
        window_max(m, || {
            (y0..y1)
                .flat_map(move |iy| (x0..x1).map(move |ix| &input[((n * g.h + iy) * g.w + ix) * c..][..c]))
        });
    }
}

/// `m` ← the lane-by-lane maximum (NaN winning) of the window's cells (`m.len()` values
/// each, in the order given), starting from −∞.
#[inline(always)]
fn window_max<'a, T: Float + 'a, I: Iterator<Item = &'a [T]>>(m: &mut [T], cells: impl Fn() -> I) {
    let c = m.len();
    // Whole runs of MAX_RUN channels in a local array (registers), then the rest.
    let whole = c - c % MAX_RUN;
    for c0 in (0..whole).step_by(MAX_RUN) {
        let mut acc = [T::neg_infinity(); MAX_RUN];
        for v in cells() {
            max_into(&mut acc, &v[c0..c0 + MAX_RUN]);
        }
        m[c0..c0 + MAX_RUN].copy_from_slice(&acc);
    }
    let rest = &mut m[whole..];
    rest.fill(T::neg_infinity());
    for v in cells() {
        max_into(rest, &v[whole..]);
    }
}

/// Channels per run of the max pooling forward: 32 f32 are four AVX2 registers.
const MAX_RUN: usize = 32;

/// `m ← max(m, v)` lane by lane, NaN winning.
#[inline(always)]
fn max_into<T: Float>(m: &mut [T], v: &[T]) {
    for (m, &v) in m.iter_mut().zip(v) {
        // NaN wins: `v != v` is `v.is_nan()`, written so it vectorises.
        #[allow(clippy::eq_op)]
        let take = v > *m || v != v;
        *m = if take { v } else { *m };
    }
}

/// Average pooling forward over the real (unpadded) cells of each window.
pub fn avg_pool2d_forward<T: Float>(g: &Pool2dGeometry, input: &[T], out: &mut [T]) {
    check("avg_pool2d_forward", g, input.len(), out.len());
    let work = out.len() * g.kh * g.kw;
    for_rows(out, g.out_w * g.c, work, |row, o| avg_row(g, input, row, o));
}

multiversion!(fn avg_row<T>(g: &Pool2dGeometry, input: &[T], row: usize, out: &mut [T]) => avg_row_body);

/// Output row `row = n·out_h + oy`: `out` `[out_w, c]`.
#[inline(always)]
fn avg_row_body<T: Float, const FMA: bool>(g: &Pool2dGeometry, input: &[T], row: usize, out: &mut [T]) {
    let (n, oy, c) = (row / g.out_h, row % g.out_h, g.c);
    let (y0, y1) = g.rows(oy);
    for (ox, s) in out.chunks_exact_mut(c).enumerate() {
        let (x0, x1) = g.cols(ox);
        let count = T::from_f64(((y1 - y0) * (x1 - x0)) as f64);
        s.fill(T::zero());
        for iy in y0..y1 {
            for ix in x0..x1 {
                let v = &input[((n * g.h + iy) * g.w + ix) * c..][..c];
                s.iter_mut().zip(v).for_each(|(s, &v)| *s += v);
            }
        }
        s.iter_mut().for_each(|s| *s /= count);
    }
}

/// The output indices `[lo, hi)` along one axis whose windows (start `o·stride − pad`,
/// length `k`) contain input index `i`.
#[inline]
fn windows_containing(i: usize, k: usize, stride: usize, pad: usize, out: usize) -> (usize, usize) {
    let p = i + pad; // position in padded coordinates
    let lo = if p + 1 > k { (p + 1 - k).div_ceil(stride) } else { 0 };
    let hi = (p / stride + 1).min(out);
    (lo, hi.max(lo))
}

/// Average pooling backward (overwrites `grad_input`).
pub fn avg_pool2d_backward<T: Float>(g: &Pool2dGeometry, grad_out: &[T], grad_input: &mut [T]) {
    check("avg_pool2d_backward", g, grad_input.len(), grad_out.len());
    let work = grad_input.len() * g.kh * g.kw;
    for_rows(grad_input, g.w * g.c, work, |row, gi| avg_backward_row(g, grad_out, row, gi));
}

multiversion!(fn avg_backward_row<T>(g: &Pool2dGeometry, grad_out: &[T], row: usize, gi: &mut [T]) => avg_backward_row_body);

/// Input row `row = n·h + iy`: `gi` `[w, c]`, gathered from every window that contains it,
/// in (oy, ox) order like the reference.
#[inline(always)]
fn avg_backward_row_body<T: Float, const FMA: bool>(
    g: &Pool2dGeometry,
    grad_out: &[T],
    row: usize,
    gi: &mut [T],
) {
    let (n, iy, c) = (row / g.h, row % g.h, g.c);
    gi.fill(T::zero());
    let (oy_lo, oy_hi) = windows_containing(iy, g.kh, g.stride_h, g.pad_top, g.out_h);
    for oy in oy_lo..oy_hi {
        let (y0, y1) = g.rows(oy);
        debug_assert!(y0 <= iy && iy < y1);
        for (ix, acc) in gi.chunks_exact_mut(c).enumerate() {
            let (ox_lo, ox_hi) = windows_containing(ix, g.kw, g.stride_w, g.pad_left, g.out_w);
            for ox in ox_lo..ox_hi {
                let (x0, x1) = g.cols(ox);
                debug_assert!(x0 <= ix && ix < x1);
                let count = T::from_f64(((y1 - y0) * (x1 - x0)) as f64);
                let dy = &grad_out[((n * g.out_h + oy) * g.out_w + ox) * c..][..c];
                acc.iter_mut().zip(dy).for_each(|(a, &d)| *a += d / count);
            }
        }
    }
}

/// Max pooling backward: each window's gradient goes to its first maximum (row-major order).
/// Overwrites `grad_input`.
pub fn max_pool2d_backward<T: Float>(g: &Pool2dGeometry, input: &[T], grad_out: &[T], grad_input: &mut [T]) {
    check("max_pool2d_backward", g, input.len(), grad_out.len());
    assert_eq!(input.len(), grad_input.len(), "max_pool2d_backward: input and grad_input sizes differ");
    par::zero(grad_input);
    if grad_out.is_empty() || g.c == 0 {
        return;
    }
    let parallel = grad_out.len() * g.kh * g.kw >= crate::PARALLEL_THRESHOLD && par::threads() > 1;
    // Bands of output rows two apart never share an input row.
    let band = par::min_band_rows(g.stride_h, g.kh).max(8).min(g.out_h);
    let row_len = g.w * g.c;
    let shared = SharedMut::new(grad_input);
    par::for_each_band_phased(
        g.n,
        g.out_h,
        band,
        parallel,
        || (vec![T::zero(); g.c], vec![0usize; g.c]),
        |(best, at), img, oy0, oy1| {
            // Input rows [lo, hi) reached by output rows oy0..oy1.
            let lo = (oy0 * g.stride_h).saturating_sub(g.pad_top).min(g.h);
            let hi = ((oy1 - 1) * g.stride_h + g.kh).saturating_sub(g.pad_top).min(g.h).max(lo);
            let base = (img * g.h + lo) * row_len;
            // SAFETY: bands of one phase are `min_band_rows` apart, so their input rows
            // [lo, hi) are disjoint, and images never overlap; `shared` wraps `grad_input`,
            // borrowed for this whole call.
            let dst = unsafe { shared.range_mut(base, (img * g.h + hi) * row_len) };
            for oy in oy0..oy1 {
                max_backward_row(g, input, grad_out, img * g.out_h + oy, dst, base, best, at);
            }
        },
    );
}

multiversion!(fn max_backward_row<T>(g: &Pool2dGeometry, input: &[T], grad_out: &[T], row: usize, dst: &mut [T], base: usize, best: &mut [T], at: &mut [usize]) => max_backward_row_body);

/// Output row `row = n·out_h + oy`: finds each window's first maximum per channel and adds
/// the window's gradient to it in `dst` (the input gradient from flat element `base`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn max_backward_row_body<T: Float, const FMA: bool>(
    g: &Pool2dGeometry,
    input: &[T],
    grad_out: &[T],
    row: usize,
    dst: &mut [T],
    base: usize,
    best: &mut [T],
    at: &mut [usize],
) {
    let (n, oy, c) = (row / g.out_h, row % g.out_h, g.c);
    let (y0, y1) = g.rows(oy);
    let dy_row = &grad_out[row * g.out_w * c..][..g.out_w * c];
    for (ox, dy) in dy_row.chunks_exact(c).enumerate() {
        let (x0, x1) = g.cols(ox);
        if y0 >= y1 || x0 >= x1 {
            continue;
        }
        // The first cell starts the search; later cells win only when strictly greater.
        let first = ((n * g.h + y0) * g.w + x0) * c;
        best.copy_from_slice(&input[first..][..c]);
        at.fill(first);
        for iy in y0..y1 {
            for ix in x0..x1 {
                let cell = ((n * g.h + iy) * g.w + ix) * c;
                let v = &input[cell..][..c];
                for ((b, a), &v) in best.iter_mut().zip(at.iter_mut()).zip(v) {
                    if v > *b {
                        *b = v;
                        *a = cell;
                    }
                }
            }
        }
        for (ch, (&a, &d)) in at.iter().zip(dy).enumerate() {
            dst[a + ch - base] += d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use proptest::prelude::*;
    use tlx_core::Padding;

    fn fill(n: usize, seed: u64, levels: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                // Few distinct levels, so windows often hold ties (first-maximum rule).
                ((s >> 33) % levels) as f64 - (levels / 2) as f64
            })
            .collect()
    }

    fn check_all(g: &Pool2dGeometry, seed: u64) {
        let x = fill(g.n * g.h * g.w * g.c, seed, 7);
        let dy = fill(g.n * g.out_h * g.out_w * g.c, seed + 1, 1000);
        let out_len = dy.len();
        for (name, which) in [("max", 0), ("avg", 1)] {
            let (mut want, mut got) = (vec![0.0; out_len], vec![f64::NAN; out_len]);
            let (mut want_dx, mut dx) = (vec![0.0; x.len()], vec![f64::NAN; x.len()]);
            if which == 0 {
                reference::max_pool2d_forward(g, &x, &mut want);
                max_pool2d_forward(g, &x, &mut got);
                reference::max_pool2d_backward(g, &x, &dy, &mut want_dx);
                max_pool2d_backward(g, &x, &dy, &mut dx);
            } else {
                reference::avg_pool2d_forward(g, &x, &mut want);
                avg_pool2d_forward(g, &x, &mut got);
                reference::avg_pool2d_backward(g, &dy, &mut want_dx);
                avg_pool2d_backward(g, &dy, &mut dx);
            }
            assert_eq!(got, want, "{name} forward {g:?}");
            for (i, (a, b)) in dx.iter().zip(&want_dx).enumerate() {
                assert!((a - b).abs() <= 1e-12 * (1.0 + b.abs()), "{name} backward {g:?} at {i}: {a} vs {b}");
            }
            // f32 agrees too.
            let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
            let mut got32 = vec![0f32; out_len];
            if which == 0 {
                max_pool2d_forward(g, &x32, &mut got32);
            } else {
                avg_pool2d_forward(g, &x32, &mut got32);
            }
            for (a, b) in got32.iter().zip(&want) {
                assert!((*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()), "{name} f32 {g:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn pooling_matches_reference(
            n in 1usize..=3, h in 1usize..=11, w in 1usize..=11, c in prop_oneof![1usize..=9, 30usize..=70],
            kh in 1usize..=4, kw in 1usize..=4, sh in 1usize..=3, sw in 1usize..=3,
            same: bool, seed in 0u64..1000,
        ) {
            let pad = if same { Padding::Same } else { Padding::Valid };
            let g = Pool2dGeometry::new(&[n, h, w, c], (kh, kw), (sh, sw), pad);
            prop_assume!(g.is_ok());
            check_all(&g.unwrap(), seed);
        }
    }

    /// `x` `[n, h, w, c]` zero-padded by (top, bottom, left, right).
    fn zero_pad(x: &[f64], [n, h, w, c]: [usize; 4], (t, b, l, r): (usize, usize, usize, usize)) -> Vec<f64> {
        let (ph, pw) = (h + t + b, w + l + r);
        let mut out = vec![0.0; n * ph * pw * c];
        for img in 0..n {
            for y in 0..h {
                for xx in 0..w {
                    let src = &x[((img * h + y) * w + xx) * c..][..c];
                    out[((img * ph + y + t) * pw + xx + l) * c..][..c].copy_from_slice(src);
                }
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]
        /// Zero padding folded into max pooling: the bits of padding then pooling, with
        /// negative inputs (where a padded zero wins), −0.0 and NaN among them.
        #[test]
        fn zero_padded_max_pooling_is_padding_then_pooling(
            n in 1usize..=2, h in 1usize..=9, w in 1usize..=9, c in prop_oneof![1usize..=9, 30usize..=40],
            k in 1usize..=3, s in 1usize..=2, pads in (0usize..=2, 0usize..=2, 0usize..=2, 0usize..=2),
            seed in 0u64..1000,
        ) {
            let (t, b, l, r) = pads;
            let explicit = Padding::Explicit { top: t, bottom: b, left: l, right: r };
            let g = Pool2dGeometry::new(&[n, h, w, c], (k, k), (s, s), explicit);
            prop_assume!(g.is_ok());
            let g = g.unwrap();
            let mut x = fill(n * h * w * c, seed, 7);
            x[0] = -0.0;
            if x.len() > 5 && seed % 3 == 0 {
                x[5] = f64::NAN;
            }
            let padded = zero_pad(&x, [n, h, w, c], pads);
            let gp = Pool2dGeometry::new(&[n, h + t + b, w + l + r, c], (k, k), (s, s), Padding::Valid).unwrap();
            prop_assert_eq!((gp.out_h, gp.out_w), (g.out_h, g.out_w));
            let mut want = vec![0.0; n * g.out_h * g.out_w * c];
            reference::max_pool2d_forward(&gp, &padded, &mut want);
            let mut got = vec![1.5; want.len()];
            max_pool2d_forward_zero_padded(&g, &x, &mut got);
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(bits(&got), bits(&want));
        }
    }

    #[test]
    fn large_pools_run_in_parallel_and_match() {
        for (shape, k, s) in [
            ([2, 40, 38, 16], (3, 3), (2, 2)),
            ([1, 64, 64, 8], (2, 2), (2, 2)),
            ([2, 30, 30, 70], (3, 3), (2, 2)),
        ] {
            for pad in [Padding::Same, Padding::Valid] {
                check_all(&Pool2dGeometry::new(&shape, k, s, pad).unwrap(), 5);
            }
        }
    }

    #[test]
    fn max_propagates_nan_like_the_reference() {
        let g = Pool2dGeometry::new(&[1, 2, 2, 2], (2, 2), (2, 2), Padding::Valid).unwrap();
        let x = [1.0, f64::NAN, f64::NAN, 0.0, 3.0, 1.0, 2.0, 5.0];
        let (mut want, mut got) = ([0.0; 2], [0.0; 2]);
        reference::max_pool2d_forward(&g, &x, &mut want);
        max_pool2d_forward(&g, &x, &mut got);
        assert!(got[0].is_nan() && want[0].is_nan() && got[1].is_nan() && want[1].is_nan());
        let (mut want_dx, mut dx) = ([0.0; 8], [0.0; 8]);
        reference::max_pool2d_backward(&g, &x, &[1.0, 2.0], &mut want_dx);
        max_pool2d_backward(&g, &x, &[1.0, 2.0], &mut dx);
        assert_eq!(dx, want_dx);
    }
}
