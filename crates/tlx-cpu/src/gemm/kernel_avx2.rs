//! The AVX2+FMA SGEMM micro-kernel: a 6×16 register tile (12 `__m256` accumulators, two B
//! vectors and one broadcast: 15 of the 16 ymm registers), the generic body of
//! `kernel::tile_body` with 8-lane vectors. Edge tiles run narrower copies (4 or 2 rows,
//! 8 columns) so that no more rows are multiplied than the tile has. The full tile's two hot
//! k loops are in assembly (`kernel_avx2_loops`), where the compiler cannot spill them.

use super::kernel::{tile_body, Kernel, Tile, Vector};
use super::kernel_avx2_loops as loops;
use std::arch::x86_64::*;

const MR: usize = 6;
const NR: usize = 16;

/// Blocking for a 32 KiB L1 / 512 KiB–2 MiB L2 core (BLIS's Haswell/Zen choice): the B
/// micro-panel `kc × 16` is 16 KiB, the packed A block `mc × kc` 144 KiB. Past four B panels
/// (64 columns) the many-rows nest packs A: on Zen 3, measured against OpenBLAS call by
/// call, reading six rows in place ran 5–15 % slower than packed panels from 128 columns
/// up (1024×384×1024: 0.77 → 0.93 of OpenBLAS), and 3–8 % faster at 64.
pub(super) const KERNEL: Kernel =
    Kernel { mr: MR, nr: NR, mc: 144, kc: 256, nc: 4080, direct_a: true, direct_a_cols: 4 * NR, tile };

#[derive(Clone, Copy)]
struct V8(__m256);

/// Lane mask with the first `n` lanes set.
#[inline(always)]
unsafe fn first(n: usize) -> __m256i {
    // SAFETY: AVX2 is enabled in every caller (the kernel entry point).
    unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
}

impl Vector for V8 {
    const LANES: usize = 8;
    // SAFETY (every method): reached only from `tile`, which requires AVX2 and FMA; the
    // pointer contracts are the trait's.
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { V8(_mm256_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        unsafe { V8(_mm256_set1_ps(x)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { V8(_mm256_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
        unsafe { V8(_mm256_fmadd_ps(a.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        unsafe { V8(_mm256_mul_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        unsafe { V8(_mm256_add_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        unsafe { V8(_mm256_max_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn min(a: Self, b: Self) -> Self {
        unsafe { V8(_mm256_min_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        unsafe {
            if n == 8 {
                V8(_mm256_loadu_ps(p))
            } else {
                V8(_mm256_maskload_ps(p, first(n)))
            }
        }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: Self, n: usize) {
        unsafe {
            if n == 8 {
                _mm256_storeu_ps(p, v.0)
            } else {
                _mm256_maskstore_ps(p, first(n), v.0)
            }
        }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
    #[inline(always)]
    unsafe fn packed_loop<const ROWS: usize, const NV: usize>(
        acc: &mut [[Self; NV]; ROWS],
        a: *const f32,
        b: *const f32,
        ldb: usize,
        k: usize,
    ) -> bool {
        if (ROWS, NV) != (MR, 2) {
            return false;
        }
        // SAFETY: `acc` is ROWS·NV = 12 vectors; the trait's contract covers A and B.
        unsafe { loops::packed_6x16(acc.as_mut_ptr().cast(), a, b, ldb, k) };
        true
    }
    #[inline(always)]
    unsafe fn rows_loop<const ROWS: usize, const NV: usize>(
        acc: &mut [[Self; NV]; ROWS],
        rows: &[*const f32; ROWS],
        p0: usize,
        len: usize,
        b: *const f32,
        ldb: usize,
    ) -> Option<*const f32> {
        if (ROWS, NV) != (MR, 2) {
            return None;
        }
        let rows: &[*const f32; MR] = rows.as_slice().try_into().ok()?;
        // SAFETY: `acc` is ROWS·NV = 12 vectors; the trait's contract covers the rows and B.
        Some(unsafe { loops::rows_6x16(acc.as_mut_ptr().cast(), rows, p0, len, b, ldb) })
    }
}

/// Runs one tile, picking the copy of the body that fits its rows and columns.
///
/// # Safety
/// As `Kernel::tile` (MR = 6, NR = 16); the CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile(t: &Tile) {
    // SAFETY: the caller's contract; each copy covers at least t.rows rows and t.cols columns.
    unsafe {
        match (t.rows, t.cols > 8) {
            (5.., true) => tile_body::<V8, MR, 6, 2>(t),
            (3..=4, true) => tile_body::<V8, MR, 4, 2>(t),
            (_, true) => tile_body::<V8, MR, 2, 2>(t),
            (5.., false) => tile_body::<V8, MR, 6, 1>(t),
            (3..=4, false) => tile_body::<V8, MR, 4, 1>(t),
            (_, false) => tile_body::<V8, MR, 2, 1>(t),
        }
    }
}
