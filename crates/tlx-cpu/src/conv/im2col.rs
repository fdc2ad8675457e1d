//! im2col and col2im for one tile of output positions and one group.
//!
//! A tile is a run of `rows` consecutive output positions `r0..r0+rows` of the flattened
//! output `[n·out_h·out_w]` (it may cross image boundaries). Its column matrix is
//! `[rows, kh·kw·cig]` with column `(a·kw + b)·cig + ci` holding
//! `input[n, oy·sh + a·dh − pad_top, ox·sw + b·dw − pad_left, grp·cig + ci]`, or zero in
//! the padding: exactly the row order of the HWIO kernel seen as `[kh·kw·cig, c_out]`.

use rayon::prelude::*;
use tlx_core::{Conv2dGeometry, Float};

/// The output position (image, oy, ox) of flattened output row `r`.
#[inline]
fn position(g: &Conv2dGeometry, r: usize) -> (usize, usize, usize) {
    let ox = r % g.out_w;
    let t = r / g.out_w;
    (t / g.out_h, t % g.out_h, ox)
}

/// Input row of tap row `a` for output row `oy`, if inside the input.
#[inline]
fn tap_row(g: &Conv2dGeometry, oy: usize, a: usize) -> Option<usize> {
    let iy = (oy * g.stride_h + a * g.dilation_h).wrapping_sub(g.pad_top);
    (iy < g.h).then_some(iy)
}

/// Input column of tap column `b` for output column `ox`, if inside the input.
#[inline]
fn tap_col(g: &Conv2dGeometry, ox: usize, b: usize) -> Option<usize> {
    let ix = (ox * g.stride_w + b * g.dilation_w).wrapping_sub(g.pad_left);
    (ix < g.w).then_some(ix)
}

/// The row stride for a column matrix of `k_row` columns: `k_row`, or 16 more when the rows
/// would be a multiple of 128 bytes apart, whose rows then crowd into few L1 sets (every
/// row of a 4 KiB multiple in one), which would make the GEMM pack them rather than read them
/// in place (see `gemm::driver::direct_a`); an odd number of cache lines spreads them.
pub(super) fn col_stride(k_row: usize) -> usize {
    if k_row.is_multiple_of(32) {
        k_row + 16
    } else {
        k_row
    }
}

/// Fills `col` (`[rows, kh·kw·cig]`, row stride `ld`; the `ld − k_row` floats after each row
/// are left alone) with the patches of output rows `r0..r0+rows`, group `grp`. Splits the
/// rows across rayon tasks when `parallel` holds.
#[allow(clippy::too_many_arguments)]
pub(super) fn im2col<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    grp: usize,
    r0: usize,
    rows: usize,
    col: &mut [T],
    ld: usize,
    parallel: bool,
) {
    let k_row = g.kh * g.kw * g.c_in_per_group();
    debug_assert!(k_row > 0 && ld >= k_row && col.len() >= rows * ld);
    let col = &mut col[..rows * ld];
    const CHUNK_ELEMS: usize = 1 << 15;
    let chunk_rows = (CHUNK_ELEMS / ld).max(1);
    if parallel && rows > chunk_rows {
        col.par_chunks_mut(chunk_rows * ld).enumerate().for_each(|(i, c)| {
            im2col_serial(g, input, grp, r0 + i * chunk_rows, c, ld);
        });
    } else {
        im2col_serial(g, input, grp, r0, col, ld);
    }
}

/// im2col of the output rows `r0..` that fill `col` (`[_, kh·kw·cig]`, row stride `ld`), on
/// this thread.
fn im2col_serial<T: Float>(g: &Conv2dGeometry, input: &[T], grp: usize, r0: usize, col: &mut [T], ld: usize) {
    let cig = g.c_in_per_group();
    let seg = g.kw * cig; // one tap row (a) of the patch: [kw, cig]
    let k_row = g.kh * seg;
    let ch0 = grp * cig;
    // One tap row is a single contiguous run of the input when the group is all channels,
    // the taps are adjacent and the whole run is inside the input.
    let contiguous = g.groups == 1 && g.dilation_w == 1;
    for (i, row) in col.chunks_exact_mut(ld).enumerate() {
        let row = &mut row[..k_row];
        // row: [kh, kw, cig]
        let (n, oy, ox) = position(g, r0 + i);
        let ix0 = (ox * g.stride_w).wrapping_sub(g.pad_left);
        let run_inside = contiguous && ix0 < g.w && ix0 + g.kw <= g.w;
        for (a, dst) in row.chunks_exact_mut(seg).enumerate() {
            let Some(iy) = tap_row(g, oy, a) else {
                dst.fill(T::zero());
                continue;
            };
            // in_row: [w, c_in]
            let in_row = &input[(n * g.h + iy) * g.w * g.c_in..][..g.w * g.c_in];
            if run_inside {
                dst.copy_from_slice(&in_row[ix0 * g.c_in..][..seg]);
                continue;
            }
            for (b, d) in dst.chunks_exact_mut(cig).enumerate() {
                match tap_col(g, ox, b) {
                    Some(ix) => d.copy_from_slice(&in_row[ix * g.c_in + ch0..][..cig]),
                    None => d.fill(T::zero()),
                }
            }
        }
    }
}

/// Scatter-adds the column matrix `col` (`[rows, kh·kw·cig]`, output rows `r0..r0+rows`,
/// group `grp`) into `dst`, the part of the input gradient `[n, h, w, c_in]` that starts at
/// flat element `base`. Every element the tile touches must lie inside `dst`.
pub(super) fn col2im_add<T: Float>(
    g: &Conv2dGeometry,
    grp: usize,
    r0: usize,
    col: &[T],
    dst: &mut [T],
    base: usize,
) {
    let cig = g.c_in_per_group();
    let seg = g.kw * cig;
    let k_row = g.kh * seg;
    let ch0 = grp * cig;
    let row_len = g.w * g.c_in;
    let contiguous = g.groups == 1 && g.dilation_w == 1;
    for (i, row) in col.chunks_exact(k_row).enumerate() {
        // row: [kh, kw, cig]
        let (n, oy, ox) = position(g, r0 + i);
        let ix0 = (ox * g.stride_w).wrapping_sub(g.pad_left);
        let run_inside = contiguous && ix0 < g.w && ix0 + g.kw <= g.w;
        for (a, src) in row.chunks_exact(seg).enumerate() {
            let Some(iy) = tap_row(g, oy, a) else { continue };
            let start = (n * g.h + iy) * row_len;
            debug_assert!(start >= base && start + row_len <= base + dst.len());
            // out_row: [w, c_in]
            let out_row = &mut dst[start - base..][..row_len];
            if run_inside {
                add_into(&mut out_row[ix0 * g.c_in..][..seg], src);
                continue;
            }
            for (b, s) in src.chunks_exact(cig).enumerate() {
                if let Some(ix) = tap_col(g, ox, b) {
                    add_into(&mut out_row[ix * g.c_in + ch0..][..cig], s);
                }
            }
        }
    }
}

#[inline(always)]
fn add_into<T: Float>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}
