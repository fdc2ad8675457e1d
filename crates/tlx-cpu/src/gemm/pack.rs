//! Packing of A and B blocks into the panel layouts the micro-kernels read.
//!
//! - A block (rows `i0..i0+rows`, depth `p0..p0+kc`) → panels of `mr` rows, each `kc`
//!   steps of `mr` floats: element (i, p) of panel q at `q·kc·mr + p·mr + i`; rows past the
//!   end are zero.
//! - B block (depth `p0..p0+kc`, columns `j0..j0+cols`) → panels of `nr` columns, each `kc`
//!   rows of `nr` floats: element (p, j) of panel q at `q·kc·nr + p·nr + j`; columns past
//!   the end are zero.
//!
//! Any strides are accepted; the two common layouts get fast loops: runs that are already
//! in panel order are copied, and runs that must be transposed (row-major A, transposed B)
//! go through [`transpose_into`], 8×8 blocks in AVX2 registers where the CPU has AVX2.

use super::MatRef;

/// Floats a packed A block of `rows` rows takes.
pub(super) fn a_len(rows: usize, kc: usize, mr: usize) -> usize {
    rows.div_ceil(mr) * mr * kc
}

/// Floats a packed B block of `cols` columns takes.
pub(super) fn b_len(cols: usize, kc: usize, nr: usize) -> usize {
    cols.div_ceil(nr) * nr * kc
}

/// Packs `a[i0..i0+rows, p0..p0+kc]` into `dst` (at least `a_len(rows, kc, mr)` floats).
pub(super) fn pack_a(
    a: &MatRef<'_, f32>,
    i0: usize,
    rows: usize,
    p0: usize,
    kc: usize,
    mr: usize,
    dst: &mut [f32],
) {
    let (rs, cs) = (a.row_stride, a.col_stride);
    for (q, panel) in dst[..a_len(rows, kc, mr)].chunks_exact_mut(kc * mr).enumerate() {
        let r0 = i0 + q * mr;
        let h = mr.min(i0 + rows - r0);
        if h < mr {
            panel.fill(0.0);
        }
        if cs == 1 {
            // Row-major: each row is a contiguous run of kc floats, to be transposed.
            transpose_into(&a.data[r0 * rs + p0..], rs, h, kc, panel, mr);
        } else if rs == 1 {
            // Transposed view: the h rows of one step are contiguous.
            match (mr, h == mr) {
                (4, true) => steps_to_panel::<4>(a, r0, p0, panel),
                (6, true) => steps_to_panel::<6>(a, r0, p0, panel),
                (12, true) => steps_to_panel::<12>(a, r0, p0, panel),
                _ => {
                    for (p, out) in panel.chunks_exact_mut(mr).enumerate() {
                        copy_run(&a.data[(p0 + p) * cs + r0..][..h], out);
                    }
                }
            }
        } else {
            for p in 0..kc {
                for i in 0..h {
                    panel[p * mr + i] = a.data[(r0 + i) * rs + (p0 + p) * cs];
                }
            }
        }
    }
}

/// Packs `b[p0..p0+kc, j0..j0+cols]` into `dst` (at least `b_len(cols, kc, nr)` floats).
pub(super) fn pack_b(
    b: &MatRef<'_, f32>,
    p0: usize,
    kc: usize,
    j0: usize,
    cols: usize,
    nr: usize,
    dst: &mut [f32],
) {
    let (rs, cs) = (b.row_stride, b.col_stride);
    let dst = &mut dst[..b_len(cols, kc, nr)];
    if cs == 1 {
        // Row-major: step p of every panel comes from one contiguous run of B's row p, so
        // B is read in order, row after row (not one narrow panel at a time).
        match nr {
            8 => rows_to_panels::<8>(b, p0, kc, j0, cols, dst),
            16 => rows_to_panels::<16>(b, p0, kc, j0, cols, dst),
            32 => rows_to_panels::<32>(b, p0, kc, j0, cols, dst),
            _ => unreachable!("no kernel has NR = {nr}"),
        }
        return;
    }
    for (q, panel) in dst.chunks_exact_mut(kc * nr).enumerate() {
        let c0 = j0 + q * nr;
        let w = nr.min(j0 + cols - c0);
        if rs == 1 {
            // Transposed view: each column is a contiguous run of kc floats.
            if w < nr {
                panel.fill(0.0);
            }
            transpose_into(&b.data[c0 * cs + p0..], cs, w, kc, panel, nr);
        } else {
            for (p, out) in panel.chunks_exact_mut(nr).enumerate() {
                for (j, o) in out.iter_mut().enumerate() {
                    *o = if j < w { b.data[(p0 + p) * rs + (c0 + j) * cs] } else { 0.0 };
                }
            }
        }
    }
}

/// The row-major case of [`pack_b`], with the panel width known at compile time so that
/// each run is a few vector moves.
fn rows_to_panels<const NR: usize>(
    b: &MatRef<'_, f32>,
    p0: usize,
    kc: usize,
    j0: usize,
    cols: usize,
    dst: &mut [f32],
) {
    for p in 0..kc {
        let row = &b.data[(p0 + p) * b.row_stride + j0..][..cols];
        let (runs, rest) = row.as_chunks::<NR>();
        for (q, run) in runs.iter().enumerate() {
            let out: &mut [f32; NR] = (&mut dst[(q * kc + p) * NR..][..NR]).try_into().expect("NR floats");
            *out = *run;
        }
        if !rest.is_empty() {
            copy_run(rest, &mut dst[(runs.len() * kc + p) * NR..][..NR]);
        }
    }
}

/// The transposed-view case of [`pack_a`] for a full panel of `MR` rows (known at compile
/// time, so each step is a fixed-size move, not a `memcpy` call).
fn steps_to_panel<const MR: usize>(a: &MatRef<'_, f32>, r0: usize, p0: usize, panel: &mut [f32]) {
    let (steps, _) = panel.as_chunks_mut::<MR>();
    for (p, out) in steps.iter_mut().enumerate() {
        *out = a.data[(p0 + p) * a.col_stride + r0..][..MR].try_into().expect("MR floats");
    }
}

/// `out[..src.len()] = src`, the rest of `out` zero; in blocks of 8 so that short runs
/// become a few vector moves rather than a `memcpy` call each.
fn copy_run(src: &[f32], out: &mut [f32]) {
    let (body, tail) = out.split_at_mut(src.len());
    let (to, to_rest) = body.as_chunks_mut::<8>();
    let (from, from_rest) = src.as_chunks::<8>();
    for (o, s) in to.iter_mut().zip(from) {
        *o = *s;
    }
    for (o, &s) in to_rest.iter_mut().zip(from_rest) {
        *o = s;
    }
    for o in tail {
        *o = 0.0;
    }
}

/// `dst[p·width + r] = src[r·ld + p]` for r < h ≤ width, p < kc: `h` rows of `kc`
/// contiguous floats become `kc` rows of the panel (lanes r ≥ h left as they are).
fn transpose_into(src: &[f32], ld: usize, h: usize, kc: usize, dst: &mut [f32], width: usize) {
    if h == 0 || kc == 0 {
        return;
    }
    assert!(
        h <= width && (h - 1) * ld + kc <= src.len() && kc * width <= dst.len(),
        "transpose_into: bounds"
    );
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 (checked), and the bounds were asserted above.
        unsafe { transpose_avx2(src.as_ptr(), ld, h, kc, dst.as_mut_ptr(), width) };
        return;
    }
    transpose_scalar(src, ld, h, 0, kc, dst, width);
}

/// The plain-loop transpose of depth steps `p_from..kc` (the reference of the AVX2 one,
/// and its tail).
fn transpose_scalar(
    src: &[f32],
    ld: usize,
    h: usize,
    p_from: usize,
    kc: usize,
    dst: &mut [f32],
    width: usize,
) {
    for r in 0..h {
        let row = &src[r * ld..][..kc];
        for p in p_from..kc {
            dst[p * width + r] = row[p];
        }
    }
}

/// [`transpose_into`] in 8×8 blocks: 8 rows of 8 floats loaded, transposed with shuffles,
/// stored as 8 runs of up to 8 lanes.
///
/// # Safety
/// The CPU must have AVX2; the bounds of [`transpose_into`] must hold.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_avx2(src: *const f32, ld: usize, h: usize, kc: usize, dst: *mut f32, width: usize) {
    use std::arch::x86_64::*;
    let body = kc / 8 * 8;
    // SAFETY (whole body): rows r < h read floats p < kc of row r (in bounds by the
    // caller's assertion); stores write lanes r0..r0+hh ≤ h ≤ width of rows p < kc of dst.
    unsafe {
        for r0 in (0..h).step_by(8) {
            let hh = (h - r0).min(8);
            for p0 in (0..body).step_by(8) {
                let mut v = [_mm256_setzero_ps(); 8];
                for (i, x) in v.iter_mut().enumerate().take(hh) {
                    *x = _mm256_loadu_ps(src.add((r0 + i) * ld + p0));
                }
                // Transpose 8×8: pairs, then quads, then 128-bit halves.
                let t0 = _mm256_unpacklo_ps(v[0], v[1]);
                let t1 = _mm256_unpackhi_ps(v[0], v[1]);
                let t2 = _mm256_unpacklo_ps(v[2], v[3]);
                let t3 = _mm256_unpackhi_ps(v[2], v[3]);
                let t4 = _mm256_unpacklo_ps(v[4], v[5]);
                let t5 = _mm256_unpackhi_ps(v[4], v[5]);
                let t6 = _mm256_unpacklo_ps(v[6], v[7]);
                let t7 = _mm256_unpackhi_ps(v[6], v[7]);
                let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u0, u4),
                    _mm256_permute2f128_ps::<0x20>(u1, u5),
                    _mm256_permute2f128_ps::<0x20>(u2, u6),
                    _mm256_permute2f128_ps::<0x20>(u3, u7),
                    _mm256_permute2f128_ps::<0x31>(u0, u4),
                    _mm256_permute2f128_ps::<0x31>(u1, u5),
                    _mm256_permute2f128_ps::<0x31>(u2, u6),
                    _mm256_permute2f128_ps::<0x31>(u3, u7),
                ];
                for (t, &x) in out.iter().enumerate() {
                    store_lanes(dst.add((p0 + t) * width + r0), x, hh);
                }
            }
        }
        if body < kc {
            let src = std::slice::from_raw_parts(src, (h - 1) * ld + kc);
            let dst = std::slice::from_raw_parts_mut(dst, kc * width);
            transpose_scalar(src, ld, h, body, kc, dst, width);
        }
    }
}

/// Stores the first `n ≤ 8` lanes of `x` at `at` in 4-, 2- and 1-lane pieces (AVX masked
/// stores are microcoded and slow on some CPUs).
///
/// # Safety
/// The CPU must have AVX; `at..at+n` must be writable.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn store_lanes(at: *mut f32, x: std::arch::x86_64::__m256, n: usize) {
    use std::arch::x86_64::*;
    // SAFETY: each piece stays inside at..at+n (the caller's contract).
    unsafe {
        if n == 8 {
            return _mm256_storeu_ps(at, x);
        }
        let (mut v, mut at, mut n) = (_mm256_castps256_ps128(x), at, n);
        if n >= 4 {
            _mm_storeu_ps(at, v);
            (v, at, n) = (_mm256_extractf128_ps::<1>(x), at.add(4), n - 4);
        }
        if n >= 2 {
            _mm_store_sd(at as *mut f64, _mm_castps_pd(v));
            (v, at, n) = (_mm_movehl_ps(v, v), at.add(2), n - 2);
        }
        if n == 1 {
            _mm_store_ss(at, v);
        }
    }
}
