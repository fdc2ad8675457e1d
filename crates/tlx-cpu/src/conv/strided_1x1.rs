//! The input gradient of 1×1 ungrouped convolutions with a stride or padding (ResNet's
//! projection shortcuts, 56² → 28² and the like).
//!
//! Each input pixel is the tap of at most one output pixel, so its gradient is either one
//! row of `dY × Wᵀ` or zero. The general path (`gemm_conv::backward_input`) zeroes the whole
//! input gradient and then scatter-adds the product's rows into it: a pass over memory four
//! times the product's size at stride 2, and a read-modify-write of what it scatters. Here
//! each task multiplies its run of output rows into a scratch `col` and then writes its own
//! input rows once: a row of `col` for every tapped pixel, zero for every other.
//!
//! Tasks are runs of flattened output rows `[r0, r1)`: bands of whole output rows of one
//! image, or whole images. Task `[r0, r1)` owns the input rows from `first_input_row(r0)` to
//! `first_input_row(r1)` (flattened over images), which tile the input gradient without
//! overlap and hold every pixel its output rows tap.

use super::gemm_conv::{images_per_task, product, with_packed_kernel};
use super::Tuning;
use crate::gemm::MatRef;
use rayon::prelude::*;
use tlx_core::{Conv2dGeometry, Float};

/// Whether [`backward_input`] applies: a 1×1 ungrouped kernel that is not a plain pointwise
/// product (it has a stride or padding).
pub(super) fn applies(g: &Conv2dGeometry) -> bool {
    g.kh == 1 && g.kw == 1 && g.groups == 1 && !g.is_pointwise()
}

/// The first input row (flattened over images, `img·h + iy`) owned by the task that starts
/// at flattened output row `r`: the row output row `oy` taps (clamped into the image), the
/// image's first row for `oy == 0`, and `n·h` at the end.
fn first_input_row(g: &Conv2dGeometry, r: usize) -> usize {
    let (img, oy) = (r / (g.out_h * g.out_w), (r / g.out_w) % g.out_h);
    debug_assert_eq!(r % g.out_w, 0, "tasks start on output-row boundaries");
    if oy == 0 {
        return img * g.h;
    }
    img * g.h + (oy * g.stride_h).saturating_sub(g.pad_top).min(g.h)
}

/// Splits the `m` flattened output rows into tasks `[r0, r1)`: bands of output rows of one
/// image, or runs of whole images, about `target` rows each and enough of them to feed the
/// threads when `parallel`.
fn plan_tasks(g: &Conv2dGeometry, target: usize, parallel: bool, t: &Tuning) -> Vec<(usize, usize)> {
    let img_rows = g.out_h * g.out_w;
    let mut starts = Vec::new();
    if img_rows >= target || (parallel && g.n < 2 * t.threads) {
        // Bands within images: equal bands of about `target` rows, shorter (down to about
        // half a minimal tile, never below one output row) when there are too few.
        let mut bands = g.out_h.div_ceil(target.div_ceil(g.out_w).min(g.out_h));
        let floor_rows = (t.min_tile_rows / 2).div_ceil(g.out_w).max(1);
        while parallel
            && g.n * bands < 2 * t.threads
            && g.out_h.div_ceil(bands + 1) >= floor_rows
            && bands < g.out_h
        {
            bands += 1;
        }
        let band = g.out_h.div_ceil(bands);
        for img in 0..g.n {
            starts.extend((0..g.out_h).step_by(band).map(|oy| (img * g.out_h + oy) * g.out_w));
        }
    } else {
        // Several whole images per task: one taller (more efficient) product.
        let per_task = images_per_task(g, target, parallel, t);
        starts.extend((0..g.n).step_by(per_task).map(|img| img * img_rows));
    }
    let m = g.n * img_rows;
    starts.iter().zip(starts.iter().skip(1).chain([&m])).map(|(&r0, &r1)| (r0, r1)).collect()
}

/// Input gradient: `grad_input` `[n, h, w, c_in]` (overwritten); see the module header.
pub(super) fn backward_input<T: Float>(
    g: &Conv2dGeometry,
    grad_out: &[T],
    kernel: &[T],
    grad_input: &mut [T],
    t: &Tuning,
) {
    debug_assert!(applies(g));
    let m = g.n * g.out_h * g.out_w;
    let parallel = t.parallel(m * g.c_in * g.c_out);
    let target = (t.col_budget / g.c_in).max(t.min_tile_rows);
    let tasks = plan_tasks(g, target, parallel, t);
    let inner = parallel && tasks.len() < t.threads;

    // Each task's part of the input gradient, split off in order.
    let row_len = g.w * g.c_in;
    let mut parts = Vec::with_capacity(tasks.len());
    let mut rest = grad_input;
    for &(r0, r1) in &tasks {
        let len = (first_input_row(g, r1) - first_input_row(g, r0)) * row_len;
        let (part, tail) = rest.split_at_mut(len);
        parts.push((r0, r1, part));
        rest = tail;
    }
    debug_assert!(rest.is_empty());

    // Wᵀ: [c_out, c_in], packed once when several tasks multiply by it.
    let wt = MatRef::row_major(kernel, g.c_in, g.c_out).t();
    with_packed_kernel(g, wt, tasks.len(), false, |packed| {
        let body = |(r0, r1, dst): (usize, usize, &mut [T])| {
            crate::par::with_scratch((r1 - r0) * g.c_in, |col: &mut [T]| {
                // col [r1 − r0, c_in] = dY[r0..r1] [r1 − r0, c_out] × Wᵀ
                let dy = MatRef::row_major(&grad_out[r0 * g.c_out..r1 * g.c_out], r1 - r0, g.c_out);
                product(inner, dy, wt, packed, T::zero(), col, g.c_in);
                write_rows(g, r0, r1, col, dst);
            })
        };
        if parallel && !inner {
            parts.into_par_iter().for_each(body);
        } else {
            parts.into_iter().for_each(body);
        }
    })
}

/// Writes the input rows owned by the task of output rows `[r0, r1)` into `dst` (those rows,
/// `[_, w, c_in]`): row `r − r0` of `col` (`[r1 − r0, c_in]`) at the pixel output row `r`
/// taps, zero everywhere else.
fn write_rows<T: Float>(g: &Conv2dGeometry, r0: usize, r1: usize, col: &[T], dst: &mut [T]) {
    let first = first_input_row(g, r0);
    let row_len = g.w * g.c_in;
    for (i, in_row) in dst.chunks_exact_mut(row_len).enumerate() {
        // in_row: [w, c_in]
        let (img, iy) = ((first + i) / g.h, (first + i) % g.h);
        let tapped = (iy + g.pad_top).is_multiple_of(g.stride_h).then(|| (iy + g.pad_top) / g.stride_h);
        let Some(oy) = tapped.filter(|&oy| oy < g.out_h) else {
            in_row.fill(T::zero());
            continue;
        };
        let r_row = (img * g.out_h + oy) * g.out_w;
        debug_assert!(r_row >= r0 && r_row + g.out_w <= r1, "input row {iy} of image {img} outside its task");
        let src_row = &col[(r_row - r0) * g.c_in..][..g.out_w * g.c_in];
        for (ix, px) in in_row.chunks_exact_mut(g.c_in).enumerate() {
            let tapped = (ix + g.pad_left).is_multiple_of(g.stride_w).then(|| (ix + g.pad_left) / g.stride_w);
            match tapped.filter(|&ox| ox < g.out_w) {
                Some(ox) => px.copy_from_slice(&src_row[ox * g.c_in..][..g.c_in]),
                None => px.fill(T::zero()),
            }
        }
    }
}
