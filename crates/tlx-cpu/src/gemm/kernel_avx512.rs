//! The AVX-512F SGEMM micro-kernel: a 12×32 register tile (24 `__m512` accumulators, two B
//! vectors, broadcasts folded into the FMAs), the generic body of `kernel::tile_body` with
//! 16-lane vectors and mask registers for the column edge. Edge tiles run narrower copies
//! (8 or 4 rows, 16 columns).

use super::kernel::{tile_body, Kernel, Tile, Vector};
use std::arch::x86_64::*;

const MR: usize = 12;
const NR: usize = 32;

/// Blocking for a 48 KiB L1 / 2 MiB L2 core: the B micro-panel `kc × 32` is 32 KiB, the
/// packed A block `mc × kc` 384 KiB. A is read in place however wide the product (on the
/// Sapphire Rapids machine that was faster on every VGG16 shape up to 512 columns).
pub(super) const KERNEL: Kernel =
    Kernel { mr: MR, nr: NR, mc: 384, kc: 256, nc: 4096, direct_a: true, direct_a_cols: usize::MAX, tile };

#[derive(Clone, Copy)]
struct V16(__m512);

/// Mask with the first `n ≤ 16` lanes set.
#[inline(always)]
fn first(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

impl Vector for V16 {
    const LANES: usize = 16;
    // SAFETY (every method): reached only from `tile`, which requires AVX-512F; the
    // pointer contracts are the trait's.
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { V16(_mm512_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        unsafe { V16(_mm512_set1_ps(x)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { V16(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
        unsafe { V16(_mm512_fmadd_ps(a.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn mul(a: Self, b: Self) -> Self {
        unsafe { V16(_mm512_mul_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        unsafe { V16(_mm512_add_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn max(a: Self, b: Self) -> Self {
        unsafe { V16(_mm512_max_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn min(a: Self, b: Self) -> Self {
        unsafe { V16(_mm512_min_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        // Masked-off lanes are neither read nor faulted on.
        unsafe { V16(_mm512_maskz_loadu_ps(first(n), p)) }
    }
    #[inline(always)]
    unsafe fn store_first(p: *mut f32, v: Self, n: usize) {
        unsafe { _mm512_mask_storeu_ps(p, first(n), v.0) }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const f32) {
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
    }
}

/// Runs one tile, picking the copy of the body that fits its rows and columns.
///
/// # Safety
/// As `Kernel::tile` (MR = 12, NR = 32); the CPU must have AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile(t: &Tile) {
    // SAFETY: the caller's contract; each copy covers at least t.rows rows and t.cols columns.
    unsafe {
        match (t.rows, t.cols > 16) {
            (9.., true) => tile_body::<V16, MR, 12, 2>(t),
            (5..=8, true) => tile_body::<V16, MR, 8, 2>(t),
            (_, true) => tile_body::<V16, MR, 4, 2>(t),
            (9.., false) => tile_body::<V16, MR, 12, 1>(t),
            (5..=8, false) => tile_body::<V16, MR, 8, 1>(t),
            (_, false) => tile_body::<V16, MR, 4, 1>(t),
        }
    }
}
