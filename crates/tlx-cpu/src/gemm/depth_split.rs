//! Products far deeper than they are wide (`k ≫ m, n`), split along their depth between
//! threads: a 1×1 convolution's kernel gradient `Xᵀ·dY` sums over every pixel of the batch
//! (ResNet50's conv2 layers at batch 8: 64 × 25088 × 256). Splitting rows or columns there
//! leaves each thread few of them, so every thread reads all of the other operand (the
//! few-rows nest: each run of columns reads all of packed A), and with as few as four column
//! panels there is hardly anything to split. Cut along the depth instead, each thread packs
//! and multiplies only its own slice of both operands into its own partial C (small: `m × n`),
//! and one pass adds the partials up.
//!
//! The first part writes C itself (with the caller's β); the others write partials (β = 0)
//! which are then added to C in part order, so the result depends on the thread count (as
//! any reordering of a sum does) but not on which thread ran which part.

use super::driver::{self, ASource, BSource, TASKS_PER_THREAD};
use super::kernel::Kernel;
use super::MatRef;
use crate::par;
use rayon::prelude::*;

/// Depth at least this many times the larger of m and n: the partials (`m·n` each) are then
/// small next to the operands' slices, and their sum a small part of the work.
const DEPTH_RATIO: usize = 4;

/// Floats of C (one partial) up to which a product splits its depth: wider products keep
/// every thread busy splitting rows or columns, without partials to add up.
const MAX_PARTIAL: usize = 1 << 18;

/// Floats all partials together may take (16 MiB).
const PARTIAL_FLOATS: usize = 1 << 22;

/// How many depth parts a product `m × k × n` on `threads` threads runs in: 1 (no split)
/// unless it is deep enough for [`TASKS_PER_THREAD`]-ish parts of at least two depth blocks
/// each, a part per thread at the least.
pub(super) fn parts(ker: &Kernel, m: usize, k: usize, n: usize, threads: usize) -> usize {
    if threads < 2 || k < DEPTH_RATIO * m.max(n) || m * n > MAX_PARTIAL {
        return 1;
    }
    let parts = (threads * TASKS_PER_THREAD).min(k / (2 * ker.kc)).min(1 + PARTIAL_FLOATS / (m * n).max(1));
    if parts < threads {
        1
    } else {
        parts
    }
}

/// `C ← α·A·B + β·C` in `parts` slices of the depth (see the module header), on the pool.
/// `c` holds C with row stride `ldc` (checked by the caller).
#[allow(clippy::too_many_arguments)]
pub(super) fn sgemm(
    ker: &Kernel,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    parts: usize,
    shared_b_work: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    debug_assert!(parts >= 2 && m > 0 && n > 0 && k >= parts);
    // Parts of whole depth blocks.
    let per_part = k.div_ceil(parts).next_multiple_of(ker.kc);
    let bounds: Vec<(usize, usize)> =
        (0..k.div_ceil(per_part)).map(|q| (q * per_part, ((q + 1) * per_part).min(k))).collect();
    let part = |(p0, p1): (usize, usize), out: &mut [f32], beta: f32, ld: usize| {
        // A's columns p0..p1 and B's rows p0..p1 (the views stay inside their slices).
        let a_q = MatRef { data: &a.data[p0 * a.col_stride..], cols: p1 - p0, ..a };
        let b_q = MatRef { data: &b.data[p0 * b.row_stride..], rows: p1 - p0, ..b };
        driver::sgemm(
            ker,
            alpha,
            ASource::Matrix(a_q),
            BSource::Matrix(b_q),
            beta,
            out,
            ld,
            1,
            shared_b_work,
            None,
        );
    };
    let partial_len = m * n;
    par::with_scratch((bounds.len() - 1) * partial_len, |partials: &mut [f32]| {
        // Part 0 into C, part q ≥ 1 into partial q - 1 ([m, n], row stride n).
        let mut targets: Vec<(&mut [f32], f32, usize)> = vec![(&mut *c, beta, ldc)];
        targets.extend(partials.chunks_exact_mut(partial_len).map(|p| (p, 0.0, n)));
        targets
            .into_par_iter()
            .zip(bounds.par_iter())
            .for_each(|((out, beta, ld), &range)| part(range, out, beta, ld));
        // C += Σ partials, row by row, in part order.
        let partials = &*partials;
        c.par_chunks_mut(ldc).take(m).enumerate().for_each(|(i, row)| {
            let row = &mut row[..n];
            for p in partials.chunks_exact(partial_len) {
                row.iter_mut().zip(&p[i * n..(i + 1) * n]).for_each(|(x, &v)| *x += v);
            }
        });
    });
}
