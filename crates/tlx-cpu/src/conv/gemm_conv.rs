//! The im2col + GEMM convolution, forward and both backward passes, in bounded tiles.
//!
//! The flattened output `[n·out_h·out_w, c_out]` is cut into tiles of output rows. For each
//! tile and group, im2col builds `col` `[rows, K]` with `K = kh·kw·cig`, and
//! - forward: `out[tile, grp] = col × W_grp` (`W_grp` `[K, cog]`, columns `grp·cog..` of the
//!   kernel seen as `[K, c_out]`);
//! - backward-kernel: `dW_grp += colᵀ × dY[tile, grp]`;
//! - backward-input: `col = dY[tile, grp] × W_grpᵀ`, then col2im scatter-adds `col` into the
//!   input gradient. Tiles are bands of whole output rows of one image, run in two phases
//!   (even bands, odd bands) so the bands of one phase write disjoint input rows.
//!
//! Ungrouped f32 forward passes build no `col`: the GEMM reads the patches where they lie
//! in the input, or in a zero-padded copy of it (`gemm::Patches`, `super::padded`), with
//! the same sums in the same order (the same bits).
//!
//! Threading: with enough tiles, each rayon task runs whole tiles (its own column buffer,
//! single-threaded GEMMs); with few, tiles run one after another and the im2col and GEMM of
//! each are parallel inside.

use super::im2col::{col2im_add, col_stride, im2col};
use super::padded;
use super::{Epilogue, Tuning};
use crate::gemm::{
    gemm, gemm_packed, gemm_packed_ops, gemm_packed_patches, gemm_packed_serial, gemm_serial, with_packed_b,
    MatRef, PackedB, Patches,
};
use crate::par::{self, SharedMut};
use rayon::prelude::*;
use tlx_core::{Conv2dGeometry, DType, Float};

/// How the flattened output rows are cut into tiles.
#[derive(Clone, Copy, Debug)]
struct TilePlan {
    /// Output rows per tile (the last tile may be shorter).
    rows: usize,
    /// True: one rayon task per tile, single-threaded GEMMs. False: tiles in sequence,
    /// parallel inside (when the call is parallel at all).
    across_tiles: bool,
}

impl TilePlan {
    fn new(m: usize, k_row: usize, parallel: bool, t: &Tuning) -> TilePlan {
        let target = (t.col_budget / k_row.max(1)).max(t.min_tile_rows).clamp(1, m.max(1));
        if parallel && m >= t.threads * t.min_tile_rows.max(1) {
            // A multiple of the thread count of equal tiles keeps every thread busy.
            let tiles = t.threads * m.div_ceil(t.threads * target);
            TilePlan { rows: m.div_ceil(tiles), across_tiles: true }
        } else {
            TilePlan { rows: target, across_tiles: false }
        }
    }
}

/// The kernel's columns of group `grp`, `[K, cog]` (row stride `c_out`).
fn kernel_group<'a, T>(g: &Conv2dGeometry, kernel: &'a [T], grp: usize) -> MatRef<'a, T> {
    let (k_row, cog) = (g.kh * g.kw * g.c_in_per_group(), g.c_out_per_group());
    MatRef { data: &kernel[grp * cog..], rows: k_row, cols: cog, row_stride: g.c_out, col_stride: 1 }
}

/// Rows `r0..r0+rows` of `[M, c_out]` data, columns of group `grp`: `[rows, cog]`.
fn out_group<'a, T>(g: &Conv2dGeometry, data: &'a [T], r0: usize, rows: usize, grp: usize) -> MatRef<'a, T> {
    let cog = g.c_out_per_group();
    MatRef { data: &data[r0 * g.c_out + grp * cog..], rows, cols: cog, row_stride: g.c_out, col_stride: 1 }
}

/// `c ← a·b + β·c`, on the pool when `parallel`; with `packed` (b packed beforehand, f32
/// only) instead of packing b again.
pub(super) fn product<T: Float>(
    parallel: bool,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    packed: Option<&PackedB<'_>>,
    beta: T,
    c: &mut [T],
    ldc: usize,
) {
    match packed {
        Some(pb) => {
            debug_assert_eq!((pb.rows(), pb.cols()), (b.rows, b.cols));
            let (a, c) = (as_f32(a), bytemuck::cast_slice_mut::<T, f32>(c));
            if parallel {
                gemm_packed(1.0, a, pb, beta.to_f32(), c, ldc);
            } else {
                gemm_packed_serial(1.0, a, pb, beta.to_f32(), c, ldc);
            }
        }
        None if parallel => gemm(T::one(), a, b, beta, c, ldc),
        None => gemm_serial(T::one(), a, b, beta, c, ldc),
    }
}

/// An f32 matrix view seen as f32 (T is f32 wherever this is called).
fn as_f32<T: Float>(m: MatRef<'_, T>) -> MatRef<'_, f32> {
    MatRef {
        data: bytemuck::cast_slice(m.data),
        rows: m.rows,
        cols: m.cols,
        row_stride: m.row_stride,
        col_stride: m.col_stride,
    }
}

/// Calls `f` with the kernel matrix `w` packed once for the SGEMM micro-kernel when the
/// call multiplies it by several tiles, or `always` (f32 and one group: Keras's
/// convolutions), so that the tiles, on whatever thread, do not each pack it again;
/// otherwise with `None`.
pub(super) fn with_packed_kernel<T: Float, R>(
    g: &Conv2dGeometry,
    w: MatRef<'_, T>,
    tiles: usize,
    always: bool,
    f: impl FnOnce(Option<&PackedB<'_>>) -> R,
) -> R {
    if T::DTYPE == DType::F32 && g.groups == 1 && (tiles > 1 || always) {
        with_packed_b(as_f32(w), |pb| f(Some(pb)))
    } else {
        f(None)
    }
}

/// Forward: `out` `[n·out_h·out_w, c_out]` (overwritten), each tile finished by `ep`.
/// Pointwise convolutions (1×1, stride 1, unpadded, ungrouped) read their rows of the input
/// as the GEMM's A directly, with no im2col.
pub(super) fn forward<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    kernel: &[T],
    bias: Option<&[T]>,
    ep: Option<&Epilogue<'_, T>>,
    out: &mut [T],
    t: &Tuning,
) {
    forward_kept(g, input, kernel, None, bias, ep, false, out, t)
}

/// [`forward`] with the kernel matrix `kept` packed by an earlier call (f32, one group; a
/// [`super::KeptKernel`]), or `None` to pack it here when that pays.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_kept<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    kernel: &[T],
    kept: Option<&PackedB<'_>>,
    bias: Option<&[T]>,
    ep: Option<&Epilogue<'_, T>>,
    residual_in_out: bool,
    out: &mut [T],
    t: &Tuning,
) {
    debug_assert!(!residual_in_out || (kept.is_some() && ep.is_some() && bias.is_none()));
    let k_row = g.kh * g.kw * g.c_in_per_group();
    let m = g.n * g.out_h * g.out_w;
    let parallel = t.parallel(m * k_row * g.c_out);
    let pointwise = g.is_pointwise();
    // Patches read in place from the input, or from a zero-padded copy of it (f32, one
    // group, neighbouring columns of the kernel on neighbouring pixels, neighbouring
    // pixels' patches not crowding into a few L1 sets), through the kernel packed
    // beforehand.
    let padding = g.pad_top + g.pad_bottom + g.pad_left + g.pad_right > 0;
    let pad_len = padded::shape(g).iter().product::<usize>();
    let in_place = T::DTYPE == DType::F32
        && t.patches_in_place
        && !pointwise
        && g.groups == 1
        && g.dilation_w == 1
        && padded::same_output(g)
        && crate::gemm::patch_rows_spread(g.stride_w * g.c_in)
        && (!padding || pad_len * 4 <= padded::MAX_BYTES);
    let pad_len = if in_place && padding { pad_len } else { 0 };
    // A tile read in place needs no column buffer: its budget bounds the output tile
    // instead, which the epilogue then finds in cache.
    let plan = TilePlan::new(m, if pointwise || in_place { g.c_out } else { k_row }, parallel, t);
    let beta = if bias.is_some() { T::one() } else { T::zero() };
    let tiles = m.div_ceil(plan.rows);
    // The column matrix's row stride: rows that would share L1 sets are spread.
    let ld = col_stride(k_row);
    // With an epilogue the kernel is always packed beforehand, so that the micro-kernel
    // applies it in registers as it stores each tile (`gemm_packed_ops`) instead of a pass
    // over the output tile afterwards (a 512-row tile of 2048 channels is 4 MiB: out of L2).
    // `image`: the input, or its padded copy where patches are read in place from one.
    let mut body = |image: &[T], packed: Option<&PackedB<'_>>| {
        // One tile: out_tile [rows, c_out] for output rows r0..r0+rows.
        let tile = |col: &mut [T], r0: usize, out_tile: &mut [T], inner: bool| {
            let rows = out_tile.len() / g.c_out;
            if bias.is_some() {
                super::fill_bias(out_tile, g.c_out, bias);
            }
            if let (true, Some(pb)) = (in_place, packed) {
                let image = bytemuck::cast_slice::<T, f32>(image);
                let shape = padded::shape(g);
                let strides = (g.stride_h, g.stride_w);
                let a = Patches::new(image, shape, (g.kh, g.kw), strides, g.dilation_h, r0, rows);
                let ops = ep.map(|ep| tile_ops(ep, r0, g.c_out, residual_in_out));
                let c = bytemuck::cast_slice_mut::<T, f32>(out_tile);
                gemm_packed_patches(1.0, a, pb, beta.to_f32(), c, g.c_out, inner, ops.as_ref());
                return;
            }
            for grp in 0..g.groups {
                let a = if pointwise {
                    // [rows, c_in] rows of the input
                    MatRef::row_major(&input[r0 * g.c_in..(r0 + rows) * g.c_in], rows, g.c_in)
                } else {
                    im2col(g, input, grp, r0, rows, col, ld, inner);
                    MatRef { data: &col[..rows * ld], rows, cols: k_row, row_stride: ld, col_stride: 1 }
                };
                let cog = g.c_out_per_group();
                match (packed, ep) {
                    (Some(pb), Some(ep)) => {
                        // One group and f32 (the kernel was packed).
                        let ops = tile_ops(ep, r0, g.c_out, residual_in_out);
                        let c = bytemuck::cast_slice_mut::<T, f32>(out_tile);
                        gemm_packed_ops(1.0, as_f32(a), pb, beta.to_f32(), c, g.c_out, inner, &ops);
                    }
                    _ => product(
                        inner,
                        a,
                        kernel_group(g, kernel, grp),
                        packed,
                        beta,
                        &mut out_tile[grp * cog..],
                        g.c_out,
                    ),
                }
            }
            if let (Some(ep), None) = (ep, packed) {
                ep.apply(out_tile, g.c_out, r0);
            }
        };
        let chunk = plan.rows * g.c_out;
        let col_len = if pointwise || in_place { 0 } else { plan.rows * ld };
        if plan.across_tiles {
            out.par_chunks_mut(chunk).enumerate().for_each(|(i, o)| {
                par::with_scratch(col_len, |col| tile(col, i * plan.rows, o, false));
            });
        } else {
            par::with_scratch(col_len, |col| {
                for (i, o) in out.chunks_mut(chunk).enumerate() {
                    tile(col, i * plan.rows, o, parallel);
                }
            });
        }
    };
    par::with_scratch(pad_len, |pad: &mut [T]| {
        let image: &[T] = if pad_len > 0 {
            padded::pad_into(g, input, pad, parallel);
            pad
        } else {
            input
        };
        match kept {
            Some(pb) => body(image, Some(pb)),
            None => {
                with_packed_kernel(g, kernel_group(g, kernel, 0), tiles, ep.is_some() || in_place, |pb| {
                    body(image, pb)
                })
            }
        }
    })
}

/// The fused operations of the output tile from row `r0` (f32, the kernel packed): its
/// columns are the output channels, its rows output rows r0.. (the residual's). With the
/// residual in the output, each element is read just before it is overwritten
/// (`OutputOps::residual_in_c`).
fn tile_ops<'a, T: Float>(
    ep: &Epilogue<'a, T>,
    r0: usize,
    c_out: usize,
    residual_in_out: bool,
) -> crate::gemm::OutputOps<'a> {
    crate::gemm::OutputOps { residual_in_c: residual_in_out, ..ep.as_f32().output_ops(r0, c_out) }
}

/// Kernel gradient: `grad_kernel` `[K, c_out]` (overwritten).
pub(super) fn backward_kernel<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    grad_out: &[T],
    grad_kernel: &mut [T],
    t: &Tuning,
) {
    let k_row = g.kh * g.kw * g.c_in_per_group();
    let m = g.n * g.out_h * g.out_w;
    let parallel = t.parallel(m * k_row * g.c_out);
    let plan = TilePlan::new(m, k_row, parallel, t);
    let tiles = m.div_ceil(plan.rows);
    // Accumulates tiles `tiles` into `acc` [K, c_out] (β = 1).
    let accumulate = |col: &mut [T], tiles: std::ops::Range<usize>, acc: &mut [T], inner: bool| {
        for ti in tiles {
            let r0 = ti * plan.rows;
            let rows = plan.rows.min(m - r0);
            for grp in 0..g.groups {
                im2col(g, input, grp, r0, rows, col, k_row, inner);
                // colᵀ: [K, rows]
                let ct = MatRef::row_major(&col[..rows * k_row], rows, k_row).t();
                let cog = g.c_out_per_group();
                product(
                    inner,
                    ct,
                    out_group(g, grad_out, r0, rows, grp),
                    None,
                    T::one(),
                    &mut acc[grp * cog..],
                    g.c_out,
                );
            }
        }
    };
    if parallel && tiles >= 2 && grad_kernel.len() <= t.partial_limit {
        // One partial kernel gradient per task, summed at the end: no barrier between tiles.
        // Small kernels get two tasks per thread (balance), large ones one (memory).
        let per_thread = if grad_kernel.len() <= t.partial_limit / 8 { 2 } else { 1 };
        let tasks = tiles.min(per_thread * t.threads);
        let per_task = tiles.div_ceil(tasks);
        let kn = grad_kernel.len();
        // The partials live in (reused) scratch memory: a fresh zeroed allocation would
        // fault in its pages, and the GEMM's first read-then-write of each page costs a
        // copy-on-write fault with a TLB shootdown.
        par::with_scratch(tasks * kn, |partials: &mut [T]| {
            partials.par_chunks_mut(kn).enumerate().for_each(|(task, acc)| {
                acc.fill(T::zero());
                let first = task * per_task;
                par::with_scratch(plan.rows * k_row, |col| {
                    accumulate(col, first.min(tiles)..(first + per_task).min(tiles), acc, false);
                });
            });
            // grad_kernel = Σ partials, in parallel over element ranges.
            let partials = &*partials;
            grad_kernel.par_chunks_mut(1 << 14).enumerate().for_each(|(i, out)| {
                let (start, len) = (i << 14, out.len());
                out.copy_from_slice(&partials[start..start + len]);
                for p in partials.chunks_exact(kn).skip(1) {
                    out.iter_mut().zip(&p[start..start + len]).for_each(|(o, &v)| *o += v);
                }
            });
        });
    } else {
        grad_kernel.fill(T::zero());
        par::with_scratch(plan.rows * k_row, |col| accumulate(col, 0..tiles, grad_kernel, parallel));
    }
}

/// Whole images per task when tasks of about `target` output rows hold one image or more:
/// as many as make `target` rows, but enough tasks (a multiple of the thread count where
/// there are images for it) to feed every thread when `parallel`.
pub(super) fn images_per_task(g: &Conv2dGeometry, target: usize, parallel: bool, t: &Tuning) -> usize {
    let per_task = target.div_ceil(g.out_h * g.out_w).max(1);
    let tasks = if parallel { (t.threads * g.n.div_ceil(t.threads * per_task)).min(g.n) } else { 1 };
    g.n.div_ceil(tasks.max(1)).max(1)
}

/// Input gradient: `grad_input` `[n, h, w, c_in]` (overwritten).
pub(super) fn backward_input<T: Float>(
    g: &Conv2dGeometry,
    grad_out: &[T],
    kernel: &[T],
    grad_input: &mut [T],
    t: &Tuning,
) {
    let k_row = g.kh * g.kw * g.c_in_per_group();
    let m = g.n * g.out_h * g.out_w;
    let parallel = t.parallel(m * k_row * g.c_out);
    par::zero(grad_input);
    // Bands of whole output rows: tall enough to keep the GEMM efficient and bands two apart
    // disjoint in the input, short enough to fit the column budget and feed every thread.
    let span_h = g.dilation_h * (g.kh - 1) + 1;
    let min_rows = par::min_band_rows(g.stride_h, span_h);
    let target = (t.col_budget / k_row).max(t.min_tile_rows);
    let mut band = target.div_ceil(g.out_w).max(min_rows).min(g.out_h);
    if parallel {
        // More, shorter bands when there are too few to feed the threads, but not below about
        // half a minimal tile (then the products themselves run in parallel instead).
        let floor = min_rows.max(t.min_tile_rows.div_ceil(2 * g.out_w));
        while band > floor && g.n * g.out_h.div_ceil(band).div_ceil(2) < t.threads {
            band = (band / 2).max(floor);
        }
    }
    let row_len = g.w * g.c_in;
    let products = g.n * g.out_h.div_ceil(band);
    with_packed_kernel(g, kernel_group(g, kernel, 0).t(), products, false, |packed| {
        // Column products of dY tiles: col [rows, K] = dY[tile, grp] [rows, cog] × W_grpᵀ [cog, K],
        // scattered into `dst`, the input gradient from flat element `base`.
        let scatter = |r0: usize, rows: usize, dst: &mut [T], base: usize, inner: bool| {
            par::with_scratch(rows * k_row, |col: &mut [T]| {
                for grp in 0..g.groups {
                    let wt = kernel_group(g, kernel, grp).t();
                    product(inner, out_group(g, grad_out, r0, rows, grp), wt, packed, T::zero(), col, k_row);
                    col2im_add(g, grp, r0, col, dst, base);
                }
            });
        };
        if band == g.out_h {
            // Whole images per task: images never share input rows, so there are no phases, and
            // several small images make one taller (more efficient) product.
            let img_rows = g.out_h * g.out_w;
            let per_task = images_per_task(g, target, parallel, t);
            let inner = parallel && g.n.div_ceil(per_task) < t.threads;
            let chunk = per_task * g.h * row_len;
            let body = |(i, dst): (usize, &mut [T])| {
                let images = dst.len() / (g.h * row_len);
                scatter(i * per_task * img_rows, images * img_rows, dst, i * chunk, inner);
            };
            if parallel && !inner {
                grad_input.par_chunks_mut(chunk).enumerate().for_each(body);
            } else {
                grad_input.chunks_mut(chunk).enumerate().for_each(body);
            }
            return;
        }
        let bands = g.out_h.div_ceil(band);
        let inner = parallel && g.n * bands < 2 * t.threads;
        let shared = SharedMut::new(grad_input);
        par::for_each_band_phased(
            g.n,
            g.out_h,
            band,
            parallel,
            || (),
            |_, img, oy0, oy1| {
                // The input rows this band reaches: [lo, hi).
                let lo = (oy0 * g.stride_h).saturating_sub(g.pad_top);
                let hi = ((oy1 - 1) * g.stride_h + span_h).saturating_sub(g.pad_top).min(g.h);
                if lo >= hi {
                    return;
                }
                let base = (img * g.h + lo) * row_len;
                // SAFETY: bands of one phase are at least `min_band_rows` apart, so their input
                // rows [lo, hi) are disjoint (see `par::min_band_rows`), and images never
                // overlap; `shared` wraps `grad_input`, borrowed for this whole call.
                let dst = unsafe { shared.range_mut(base, (img * g.h + hi) * row_len) };
                let r0 = (img * g.out_h + oy0) * g.out_w;
                scatter(r0, (oy1 - oy0) * g.out_w, dst, base, inner);
            },
        );
    })
}
