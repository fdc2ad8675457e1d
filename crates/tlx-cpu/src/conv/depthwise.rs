//! Direct depthwise convolution (`groups == c_in`, depth multiplier `mult = c_out / c_in`),
//! forward and both backward passes, vectorised over channels.
//!
//! Output channel `o = c·mult + m` reads input channel `c`; the kernel `[kh, kw, 1, c_out]`
//! has Keras's `[kh, kw, c_in, mult]` memory. With `mult > 1` each input row is first
//! expanded to `[w, c_out]` (channel `c` repeated `mult` times) so that every tap is one
//! contiguous multiply-add over `c_out` channels. Rows of output (forward, kernel gradient)
//! or of input (input gradient, gathered so no two tasks write the same element) are split
//! across rayon tasks.

use super::{Epilogue, Tuning};
use crate::simd::{axpy_mul, madd, multiversion};
use rayon::prelude::*;
use tlx_core::{Conv2dGeometry, Float};

/// Input row `iy` of image `n`, `[w, c_in]`, expanded to `[w, c_out]` in `exp` when the
/// multiplier is above one.
#[inline(always)]
fn source_row<'a, T: Float>(
    g: &Conv2dGeometry,
    input: &'a [T],
    n: usize,
    iy: usize,
    exp: &'a mut [T],
) -> &'a [T] {
    let row = &input[(n * g.h + iy) * g.w * g.c_in..][..g.w * g.c_in];
    let mult = g.c_out / g.c_in;
    if mult == 1 {
        return row;
    }
    // exp: [w, c_in, mult]
    for (e, &x) in exp.chunks_exact_mut(mult).zip(row) {
        e.fill(x);
    }
    exp
}

#[inline(always)]
fn tap_row(g: &Conv2dGeometry, oy: usize, a: usize) -> Option<usize> {
    let iy = (oy * g.stride_h + a * g.dilation_h).wrapping_sub(g.pad_top);
    (iy < g.h).then_some(iy)
}

#[inline(always)]
fn tap_col(g: &Conv2dGeometry, ox: usize, b: usize) -> Option<usize> {
    let ix = (ox * g.stride_w + b * g.dilation_w).wrapping_sub(g.pad_left);
    (ix < g.w).then_some(ix)
}

fn expand_len(g: &Conv2dGeometry) -> usize {
    if g.c_out == g.c_in {
        0
    } else {
        g.w * g.c_out
    }
}

/// Forward: `out` `[n, out_h, out_w, c_out]` (overwritten).
pub(super) fn forward<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    kernel: &[T],
    bias: Option<&[T]>,
    ep: Option<&Epilogue<'_, T>>,
    out: &mut [T],
    t: &Tuning,
) {
    let row_len = g.out_w * g.c_out;
    let work = out.len() * g.kh * g.kw;
    // Output row `row` (of out_w pixels), finished by the epilogue.
    let finish = |row: usize, o: &mut [T]| {
        if let Some(ep) = ep {
            ep.apply(o, g.c_out, row * g.out_w);
        }
    };
    let init = || vec![T::zero(); expand_len(g)];
    if t.parallel(work) {
        out.par_chunks_mut(row_len).enumerate().for_each_init(init, |exp, (row, o)| {
            forward_row(g, input, kernel, bias, row, o, exp);
            finish(row, o);
        });
    } else {
        let mut exp = init();
        for (row, o) in out.chunks_mut(row_len).enumerate() {
            forward_row(g, input, kernel, bias, row, o, &mut exp);
            finish(row, o);
        }
    }
}

multiversion!(fn forward_row<T>(g: &Conv2dGeometry, input: &[T], kernel: &[T], bias: Option<&[T]>, row: usize, out: &mut [T], exp: &mut [T]) => forward_row_body);

/// One output row `row = n·out_h + oy`: `out` `[out_w, c_out]`.
#[inline(always)]
fn forward_row_body<T: Float, const FMA: bool>(
    g: &Conv2dGeometry,
    input: &[T],
    kernel: &[T],
    bias: Option<&[T]>,
    row: usize,
    out: &mut [T],
    exp: &mut [T],
) {
    let (n, oy, c) = (row / g.out_h, row % g.out_h, g.c_out);
    super::fill_bias(out, c, bias);
    for a in 0..g.kh {
        let Some(iy) = tap_row(g, oy, a) else { continue };
        let src = source_row(g, input, n, iy, exp); // [w, c_out]
        for (ox, acc) in out.chunks_exact_mut(c).enumerate() {
            for b in 0..g.kw {
                if let Some(ix) = tap_col(g, ox, b) {
                    axpy_mul::<T, FMA>(acc, &src[ix * c..][..c], &kernel[(a * g.kw + b) * c..][..c]);
                }
            }
        }
    }
}

/// Input gradient: `grad_input` `[n, h, w, c_in]` (overwritten), gathered per input row.
pub(super) fn backward_input<T: Float>(
    g: &Conv2dGeometry,
    grad_out: &[T],
    kernel: &[T],
    grad_input: &mut [T],
    t: &Tuning,
) {
    let row_len = g.w * g.c_in;
    let work = grad_out.len() * g.kh * g.kw;
    if t.parallel(work) {
        grad_input
            .par_chunks_mut(row_len)
            .enumerate()
            .for_each(|(row, gi)| backward_input_row(g, grad_out, kernel, row, gi));
    } else {
        for (row, gi) in grad_input.chunks_mut(row_len).enumerate() {
            backward_input_row(g, grad_out, kernel, row, gi);
        }
    }
}

multiversion!(fn backward_input_row<T>(g: &Conv2dGeometry, grad_out: &[T], kernel: &[T], row: usize, gi: &mut [T]) => backward_input_row_body);

/// One input row `row = n·h + iy`: `gi` `[w, c_in]`, the sum over every (output, tap) pair
/// that reads it.
#[inline(always)]
fn backward_input_row_body<T: Float, const FMA: bool>(
    g: &Conv2dGeometry,
    grad_out: &[T],
    kernel: &[T],
    row: usize,
    gi: &mut [T],
) {
    let (n, iy) = (row / g.h, row % g.h);
    let (c_in, c_out) = (g.c_in, g.c_out);
    let mult = c_out / c_in;
    gi.fill(T::zero());
    for a in 0..g.kh {
        // Output row oy with oy·sh + a·dh − pad_top = iy.
        let ty = (iy + g.pad_top).wrapping_sub(a * g.dilation_h);
        if ty > iy + g.pad_top || !ty.is_multiple_of(g.stride_h) || ty / g.stride_h >= g.out_h {
            continue;
        }
        let oy = ty / g.stride_h;
        // dy: [out_w, c_out]
        let dy = &grad_out[(n * g.out_h + oy) * g.out_w * c_out..][..g.out_w * c_out];
        for (ix, acc) in gi.chunks_exact_mut(c_in).enumerate() {
            for b in 0..g.kw {
                let tx = (ix + g.pad_left).wrapping_sub(b * g.dilation_w);
                if tx > ix + g.pad_left || !tx.is_multiple_of(g.stride_w) || tx / g.stride_w >= g.out_w {
                    continue;
                }
                let ox = tx / g.stride_w;
                let (d, k) = (&dy[ox * c_out..][..c_out], &kernel[(a * g.kw + b) * c_out..][..c_out]);
                if mult == 1 {
                    axpy_mul::<T, FMA>(acc, d, k);
                } else {
                    for (ci, s) in acc.iter_mut().enumerate() {
                        for m in ci * mult..(ci + 1) * mult {
                            *s = madd::<T, FMA>(d[m], k[m], *s);
                        }
                    }
                }
            }
        }
    }
}

/// Kernel gradient: `grad_kernel` `[kh, kw, 1, c_out]` (overwritten).
pub(super) fn backward_kernel<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    grad_out: &[T],
    grad_kernel: &mut [T],
    t: &Tuning,
) {
    let rows = g.n * g.out_h;
    let work = grad_out.len() * g.kh * g.kw;
    if t.parallel(work) && rows > 1 {
        // Per-task partial gradients (small: kh·kw·c_out), at most about 4 per thread.
        let min_len = rows.div_ceil(4 * t.threads).max(1);
        let total = (0..rows)
            .into_par_iter()
            .with_min_len(min_len)
            .fold(
                || (vec![T::zero(); grad_kernel.len()], vec![T::zero(); expand_len(g)]),
                |(mut acc, mut exp), row| {
                    backward_kernel_row(g, input, grad_out, row, &mut acc, &mut exp);
                    (acc, exp)
                },
            )
            .map(|(acc, _)| acc)
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, &b)| *a += b);
                a
            });
        grad_kernel.copy_from_slice(&total.expect("rows > 1"));
    } else {
        grad_kernel.fill(T::zero());
        let mut exp = vec![T::zero(); expand_len(g)];
        for row in 0..rows {
            backward_kernel_row(g, input, grad_out, row, grad_kernel, &mut exp);
        }
    }
}

multiversion!(fn backward_kernel_row<T>(g: &Conv2dGeometry, input: &[T], grad_out: &[T], row: usize, acc: &mut [T], exp: &mut [T]) => backward_kernel_row_body);

/// Adds output row `row = n·out_h + oy`'s contribution to `acc` `[kh, kw, c_out]`.
#[inline(always)]
fn backward_kernel_row_body<T: Float, const FMA: bool>(
    g: &Conv2dGeometry,
    input: &[T],
    grad_out: &[T],
    row: usize,
    acc: &mut [T],
    exp: &mut [T],
) {
    let (n, oy, c) = (row / g.out_h, row % g.out_h, g.c_out);
    // dy: [out_w, c_out]
    let dy = &grad_out[row * g.out_w * c..][..g.out_w * c];
    for a in 0..g.kh {
        let Some(iy) = tap_row(g, oy, a) else { continue };
        let src = source_row(g, input, n, iy, exp); // [w, c_out]
        for b in 0..g.kw {
            let k = &mut acc[(a * g.kw + b) * c..][..c];
            for (ox, d) in dy.chunks_exact(c).enumerate() {
                if let Some(ix) = tap_col(g, ox, b) {
                    axpy_mul::<T, FMA>(k, d, &src[ix * c..][..c]);
                }
            }
        }
    }
}
