//! The SGEMM micro-kernel contract, the kernels this build offers and the run-time choice
//! between them.
//!
//! A micro-kernel computes one register tile `C[0..rows, 0..cols] ← α·Σ_p a_p ⊗ b_p + β·C`
//! from a packed A panel (`k` steps of `MR` floats, rows beyond `rows` zero) — or A read in
//! place, `rows` rows at stride `lda`, or rows anywhere read as runs (convolution patches in
//! the image) — and a B panel
//! (`k` rows of `NR` floats at row stride `ldb`: a packed panel, or B itself when it is
//! row-major). The SIMD kernels share one generic body ([`tile_body`]) over a small
//! [`Vector`] trait, instantiated for AVX2+FMA (`kernel_avx2`) and AVX-512F
//! (`kernel_avx512`); [`tile_portable`] is the plain-loop version of the same contract and
//! the fallback on other CPUs.

use crate::conv::EpilogueAct;
use std::sync::OnceLock;

/// One micro-tile of work (raw pointers: the driver proves the bounds).
#[derive(Clone, Copy, Debug)]
pub(super) struct Tile {
    /// Depth of the product.
    pub k: usize,
    /// A: with `lda == 0` a packed panel, element (i, p) at `a[p·MR + i]`, 64-byte aligned;
    /// otherwise A read in place, element (i, p) at `a[i·lda + p]` (rows < `rows` only).
    pub a: *const f32,
    pub lda: usize,
    /// Not null: A is read from rows that lie anywhere (convolution patches, see
    /// `super::patches`), row i's first element at `rows_at[i]` (i < rows; `a` and `lda`
    /// unused). Each row is a sequence of runs: its first `run_first` floats, then runs of
    /// `run_len` floats, each starting `run_gap` floats past the end of the one before.
    pub rows_at: *const *const f32,
    pub run_first: usize,
    pub run_len: usize,
    pub run_gap: usize,
    /// B panel: element (p, j) at `b[p·ldb + j]` for j < NR (all NR readable).
    pub b: *const f32,
    pub ldb: usize,
    /// C tile: element (i, j) at `c[i·ldc + j]`, for i < rows, j < cols.
    pub c: *mut f32,
    pub ldc: usize,
    pub rows: usize,
    pub cols: usize,
    pub alpha: f32,
    /// 0 means "overwrite": C's old contents are not read (NaN included).
    pub beta: f32,
    /// Operations on the final values before they are stored (the last depth block only).
    pub ops: Option<TileOps>,
}

impl Tile {
    /// Where depth `p` of a row read as runs lies from the row's first element (see
    /// [`Tile::rows_at`]; the scalar form of `runs_a_loop`'s walk).
    fn run_offset(&self, p: usize) -> usize {
        if p < self.run_first {
            p
        } else {
            let (run, q) = ((p - self.run_first) / self.run_len, (p - self.run_first) % self.run_len);
            self.run_first + self.run_gap + run * (self.run_len + self.run_gap) + q
        }
    }
}

/// [`super::OutputOps`] at one tile: `bias`, `scale`, `shift` point at the tile's column 0,
/// `residual` at its element (0, 0) with row stride `ldr`; null pointers are skipped. All
/// readable for the tile's rows × cols (the driver checks the slices).
#[derive(Clone, Copy, Debug)]
pub(super) struct TileOps {
    pub bias: *const f32,
    pub scale: *const f32,
    pub shift: *const f32,
    pub residual: *const f32,
    pub ldr: usize,
    pub act: EpilogueAct,
}

impl TileOps {
    /// `act((v + bias)·scale + shift + residual)` for element (i, j), one rounding per step
    /// (as `conv::Epilogue::apply`, and as [`apply_ops`] lane by lane).
    ///
    /// # Safety
    /// (i, j) lies inside the tile the pointers describe.
    #[inline(always)]
    pub(super) unsafe fn apply_one(&self, mut v: f32, i: usize, j: usize) -> f32 {
        // SAFETY: the caller's contract.
        unsafe {
            if !self.bias.is_null() {
                v += *self.bias.add(j);
            }
            if !self.scale.is_null() {
                v *= *self.scale.add(j);
            }
            if !self.shift.is_null() {
                v += *self.shift.add(j);
            }
            if !self.residual.is_null() {
                v += *self.residual.add(i * self.ldr + j);
            }
        }
        // max(0, v) then min(6, ·) with the vector instructions' rules: NaN stays NaN.
        let relu = |v: f32| if 0.0 > v { 0.0 } else { v };
        match self.act {
            EpilogueAct::Linear => v,
            EpilogueAct::Relu => relu(v),
            EpilogueAct::Relu6 => {
                let v = relu(v);
                if 6.0 < v {
                    6.0
                } else {
                    v
                }
            }
        }
    }
}

/// A micro-kernel and the cache blocking that suits it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Kernel {
    /// Register tile: rows (broadcast from A) × columns (vectors of B).
    pub mr: usize,
    pub nr: usize,
    /// Rows of A packed per block (L2), depth per block (the B micro-panel `kc × nr` stays
    /// in L1), columns of B packed per slab (L3).
    pub mc: usize,
    pub kc: usize,
    pub nc: usize,
    /// Whether `tile` also reads A in place (`Tile::lda != 0`).
    pub direct_a: bool,
    /// The widest product (columns of B) for which the many-rows nest still reads a matrix
    /// A in place: wider ones meet each A block from so many B panels that packing it once
    /// costs less than streaming MR separate rows for each panel (see `driver::direct_a`).
    pub direct_a_cols: usize,
    /// Runs one tile.
    ///
    /// # Safety
    /// The tile's pointers must satisfy [`Tile`]'s layout for `mr`/`nr` and the CPU must
    /// support the kernel's instruction set (guaranteed by [`Kernel::for_isa`]).
    pub tile: unsafe fn(&Tile),
}

/// The instruction sets with a micro-kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust loops (whatever the compiler makes of them for the baseline target).
    Portable,
    /// 256-bit AVX2 with FMA: a 6×16 tile in 12 accumulators.
    Avx2,
    /// 512-bit AVX-512F: a 12×32 tile in 24 accumulators.
    Avx512,
}

impl Isa {
    /// The best instruction set of this CPU, lowered by `TLX_GEMM_ISA=avx2|portable` (read
    /// once; for benchmarks and for testing the other paths on a fast CPU).
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Isa::best();
            match std::env::var("TLX_GEMM_ISA").as_deref() {
                Ok("portable") => Isa::Portable,
                Ok("avx2") if best != Isa::Portable => Isa::Avx2,
                _ => best,
            }
        })
    }

    /// The best instruction set the CPU supports.
    pub fn best() -> Isa {
        if crate::simd::has_avx512() {
            Isa::Avx512
        } else if crate::simd::has_avx2_fma() {
            Isa::Avx2
        } else {
            Isa::Portable
        }
    }

    /// Whether this CPU can run the kernel.
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            Isa::Avx2 => crate::simd::has_avx2_fma(),
            Isa::Avx512 => crate::simd::has_avx512(),
        }
    }
}

impl Kernel {
    /// The kernel for `isa`, or the portable one when the CPU lacks it.
    pub(super) fn for_isa(isa: Isa) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if isa == Isa::Avx512 && isa.supported() {
                return super::kernel_avx512::KERNEL;
            }
            if isa != Isa::Portable && Isa::Avx2.supported() {
                return super::kernel_avx2::KERNEL;
            }
        }
        let _ = isa;
        PORTABLE
    }
}

/// Tile of the portable kernel.
const P_MR: usize = 4;
const P_NR: usize = 8;

const PORTABLE: Kernel = Kernel {
    mr: P_MR,
    nr: P_NR,
    mc: 128,
    kc: 256,
    nc: 2048,
    direct_a: true,
    direct_a_cols: usize::MAX,
    tile: tile_portable,
};

/// The scalar reference micro-kernel (the contract of [`Tile`] in plain loops).
///
/// # Safety
/// `t` must satisfy [`Tile`]'s layout with MR = 4, NR = 8.
unsafe fn tile_portable(t: &Tile) {
    let mut acc = [[0f32; P_NR]; P_MR];
    for p in 0..t.k {
        // SAFETY: row p of the B panel holds NR floats.
        let b = unsafe { std::slice::from_raw_parts(t.b.add(p * t.ldb), P_NR) };
        for (i, acc_row) in acc.iter_mut().enumerate().take(t.rows) {
            // SAFETY: row i < rows of A at step p < k: in the packed panel, in A itself, or
            // in row i's runs.
            let a_ip = unsafe {
                if !t.rows_at.is_null() {
                    *(*t.rows_at.add(i)).add(t.run_offset(p))
                } else {
                    *t.a.add(if t.lda == 0 { p * P_MR + i } else { i * t.lda + p })
                }
            };
            for (x, &bj) in acc_row.iter_mut().zip(b) {
                *x += a_ip * bj;
            }
        }
    }
    for (i, row) in acc.iter().enumerate().take(t.rows) {
        for (j, &v) in row.iter().enumerate().take(t.cols) {
            // SAFETY: (i, j) lies inside the C tile (i < rows, j < cols).
            let c = unsafe { &mut *t.c.add(i * t.ldc + j) };
            *c = if t.beta == 0.0 { t.alpha * v } else { t.alpha * v + t.beta * *c };
            if let Some(ops) = &t.ops {
                // SAFETY: (i, j) lies inside the tile.
                *c = unsafe { ops.apply_one(*c, i, j) };
            }
        }
    }
}

/// The few vector operations the SIMD micro-kernel needs, for one register width.
pub(super) trait Vector: Copy {
    /// f32 lanes per register.
    const LANES: usize;
    /// # Safety (all methods)
    /// The CPU must support the implementing instruction set; pointers must be valid for
    /// the lanes they touch.
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    /// `a·b + c`, fused.
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self;
    unsafe fn mul(a: Self, b: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    /// Lane by lane `if a > b { a } else { b }` (so `b` where either is NaN: x86's max).
    unsafe fn max(a: Self, b: Self) -> Self;
    /// Lane by lane `if a < b { a } else { b }` (x86's min).
    unsafe fn min(a: Self, b: Self) -> Self;
    /// The first `n ≤ LANES` floats at `p` (the rest zero; nothing beyond is touched).
    unsafe fn load_first(p: *const f32, n: usize) -> Self;
    /// Stores the first `n ≤ LANES` lanes at `p` (nothing beyond is touched).
    unsafe fn store_first(p: *mut f32, v: Self, n: usize);
    /// Hints that the cache line at `p` will be used soon (a hint: any address is fine).
    unsafe fn prefetch(p: *const f32);
    /// [`packed_a_loop`] for a ROWS × NV tile over a panel of MR = ROWS rows, hand-written
    /// where this instruction set has one for that shape (same operations, same order):
    /// true when it ran, false where there is none (the generic loop runs).
    #[inline(always)]
    unsafe fn packed_loop<const ROWS: usize, const NV: usize>(
        _acc: &mut [[Self; NV]; ROWS],
        _a: *const f32,
        _b: *const f32,
        _ldb: usize,
        _k: usize,
    ) -> bool {
        false
    }
    /// [`rows_run`] hand-written where this instruction set has one for ROWS × NV (same
    /// operations, same order): B's next row, or `None` where there is none.
    #[inline(always)]
    unsafe fn rows_loop<const ROWS: usize, const NV: usize>(
        _acc: &mut [[Self; NV]; ROWS],
        _rows: &[*const f32; ROWS],
        _p0: usize,
        _len: usize,
        _b: *const f32,
        _ldb: usize,
    ) -> Option<*const f32> {
        None
    }
}

/// The SIMD micro-kernel: a `ROWS × NV·LANES` tile (ROWS ≤ MR; the packed A panel has
/// stride MR), accumulated in `ROWS·NV` registers, B rows loaded as NV vectors and each A
/// value broadcast. Scalar equivalent: [`tile_portable`].
///
/// # Safety
/// As [`Kernel::tile`]; also `t.rows ≤ ROWS` and `t.cols ≤ NV·LANES`.
#[inline(always)]
pub(super) unsafe fn tile_body<V: Vector, const MR: usize, const ROWS: usize, const NV: usize>(t: &Tile) {
    // SAFETY (whole body): the pointers follow the `Tile` layout (caller's contract), the
    // CPU has V's instruction set, and every C access stays inside rows × cols.
    unsafe {
        for i in 0..ROWS {
            if i < t.rows {
                V::prefetch(t.c.add(i * t.ldc));
                V::prefetch(t.c.add(i * t.ldc + t.cols - 1));
            }
        }
        // The residual is read once, long after it was written: fetch its rows now so the
        // epilogue does not wait on memory (a miss per row was ~13 % of the kernel's time
        // in ResNet50's expanding 1×1 convolutions).
        if let Some(ops) = &t.ops {
            if !ops.residual.is_null() {
                for i in 0..ROWS.min(t.rows) {
                    V::prefetch(ops.residual.add(i * ops.ldr));
                    V::prefetch(ops.residual.add(i * ops.ldr + t.cols - 1));
                }
            }
        }
        let mut acc = [[V::zero(); NV]; ROWS];
        if !t.rows_at.is_null() {
            runs_a_loop::<V, ROWS, NV>(t, &mut acc);
        } else if t.lda != 0 {
            direct_a_loop::<V, ROWS, NV>(t, &mut acc);
        } else {
            packed_a_loop::<V, MR, ROWS, NV>(t, &mut acc);
        }
        if t.rows == ROWS && t.cols == NV * V::LANES {
            store_full_tile::<V, ROWS, NV>(t, acc);
        } else {
            store_tile::<V, ROWS, NV>(t, &acc);
        }
    }
}

/// The k loop over a packed A panel.
///
/// # Safety
/// As [`tile_body`], with `t.lda == 0`.
#[inline(always)]
unsafe fn packed_a_loop<V: Vector, const MR: usize, const ROWS: usize, const NV: usize>(
    t: &Tile,
    acc: &mut [[V; NV]; ROWS],
) {
    // SAFETY: the packed panel holds k steps of MR floats; B has k rows of NV vectors.
    unsafe {
        if MR == ROWS && V::packed_loop(acc, t.a, t.b, t.ldb, t.k) {
            return;
        }
        // A local copy of the sums through the loop, as in `rows_run`.
        let mut sums = *acc;
        let (mut a, mut b) = (t.a, t.b);
        for _ in 0..t.k {
            // The A panel comes from L2 (B's micro-panel stays in L1): fetch it 16 steps
            // ahead, which keeps the broadcasts off the critical path (≈ +20 % here).
            V::prefetch(a.wrapping_add(MR * 16));
            let mut bv = [V::zero(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = V::load(b.add(v * V::LANES));
            }
            for (i, row) in sums.iter_mut().enumerate() {
                let ai = V::splat(*a.add(i));
                for (x, &bx) in row.iter_mut().zip(&bv) {
                    *x = V::fmadd(ai, bx, *x);
                }
            }
            a = a.add(MR);
            b = b.add(t.ldb);
        }
        *acc = sums;
    }
}

/// The k loop reading A in place: rows at stride `t.lda`, each a contiguous run of k floats
/// (rows past `t.rows` repeat the last row; their sums are never stored). Saves packing A
/// where each element of A meets few columns of B (narrow outputs, e.g. 64 channels).
///
/// # Safety
/// As [`tile_body`], with `t.lda != 0` and rows `0..t.rows` of A readable for k floats.
#[inline(always)]
unsafe fn direct_a_loop<V: Vector, const ROWS: usize, const NV: usize>(t: &Tile, acc: &mut [[V; NV]; ROWS]) {
    // SAFETY: every row pointer is one of rows 0..t.rows of A, read at steps p < k; B has
    // k rows of NV vectors.
    unsafe {
        let last = t.rows.max(1) - 1;
        let rows: [*const f32; ROWS] = std::array::from_fn(|i| t.a.add(i.min(last) * t.lda));
        rows_run(acc, &rows, 0, t.k, t.b, t.ldb);
    }
}

/// Steps over elements `p0..p0 + len` of rows read in place (B's rows from `b`, `ldb`
/// apart): the k loop of [`direct_a_loop`] and each run of [`runs_a_loop`]. Returns B's
/// next row.
///
/// # Safety
/// Elements `p0..p0 + len` of every row and `len` rows of NV vectors of B are readable.
#[inline(always)]
unsafe fn rows_run<V: Vector, const ROWS: usize, const NV: usize>(
    acc: &mut [[V; NV]; ROWS],
    rows: &[*const f32; ROWS],
    p0: usize,
    len: usize,
    mut b: *const f32,
    ldb: usize,
) -> *const f32 {
    // SAFETY: the caller's contract.
    unsafe {
        if let Some(next_b) = V::rows_loop(acc, rows, p0, len, b, ldb) {
            return next_b;
        }
        // The sums live in a local copy through the loop: kept in `acc` itself, which the
        // row pointers might (for all the compiler knows) point into, they were stored back
        // to memory after every step (one store per FMA in the AVX-512 build).
        let mut sums = *acc;
        for p in p0..p0 + len {
            // Each row streams from L2: fetch its next cache line but one, once per line.
            if (p - p0).is_multiple_of(16) {
                for &r in rows {
                    V::prefetch(r.wrapping_add(p + 32));
                }
            }
            let mut bv = [V::zero(); NV];
            for (v, x) in bv.iter_mut().enumerate() {
                *x = V::load(b.add(v * V::LANES));
            }
            for (row, &r) in sums.iter_mut().zip(rows) {
                let ai = V::splat(*r.add(p));
                for (x, &bx) in row.iter_mut().zip(&bv) {
                    *x = V::fmadd(ai, bx, *x);
                }
            }
            b = b.add(ldb);
        }
        *acc = sums;
        b
    }
}

/// The k loop reading A's rows as runs (convolution patches in the image, see
/// [`Tile::rows_at`]); rows past `t.rows` repeat the last row, as in [`direct_a_loop`].
///
/// # Safety
/// As [`tile_body`], with `t.rows_at` holding `t.rows` row pointers whose runs cover k
/// readable floats.
#[inline(always)]
unsafe fn runs_a_loop<V: Vector, const ROWS: usize, const NV: usize>(t: &Tile, acc: &mut [[V; NV]; ROWS]) {
    // SAFETY: every row pointer is one of the t.rows given, read inside its runs (the
    // caller's contract); B has k rows of NV vectors.
    unsafe {
        let last = t.rows.max(1) - 1;
        let rows: [*const f32; ROWS] = std::array::from_fn(|i| *t.rows_at.add(i.min(last)));
        let mut b = t.b;
        // Offset of the current run from each row's first element, its length, and the
        // depth left from its start.
        let (mut off, mut len, mut left) = (0, t.run_first.min(t.k), t.k);
        loop {
            // The next run of every row is in another image row: ask for it now.
            let next = off + len + t.run_gap;
            for r in rows {
                V::prefetch(r.wrapping_add(next));
            }
            b = rows_run(acc, &rows, off, len, b, t.ldb);
            left -= len;
            if left == 0 {
                break;
            }
            off = next;
            len = t.run_len.min(left);
        }
    }
}

/// [`store_tile`] for a tile with all `ROWS × NV·LANES` elements: the same operations in
/// the same order on every element, but each step decided once for the whole tile and run
/// over all registers (no lane masks; α = 1 skips the multiply, which leaves every value's
/// bits as they are). Deciding per vector, as `store_tile` does, cost as much as 20 steps
/// of the k loop per tile: at depth 64 (ResNet's 1×1 convolutions) the kernel ran at
/// 55–65 % of its peak, at 93–96 % with this.
///
/// # Safety
/// As [`tile_body`], with `t.rows == ROWS` and `t.cols == NV·LANES`.
#[inline(always)]
unsafe fn store_full_tile<V: Vector, const ROWS: usize, const NV: usize>(t: &Tile, mut acc: [[V; NV]; ROWS]) {
    // SAFETY: the tile has ROWS rows of NV·LANES columns inside C, and the operations'
    // pointers cover them (the driver checked the slices behind them).
    unsafe {
        if t.alpha != 1.0 {
            let alpha = V::splat(t.alpha);
            each(&mut acc, V::LANES, |x, _, _| V::mul(x, alpha));
        }
        if t.beta != 0.0 {
            let beta = V::splat(t.beta);
            each(&mut acc, V::LANES, |x, i, j| V::fmadd(V::load(t.c.add(i * t.ldc + j)), beta, x));
        }
        if let Some(o) = &t.ops {
            if !o.bias.is_null() {
                each(&mut acc, V::LANES, |x, _, j| V::add(x, V::load(o.bias.add(j))));
            }
            if !o.scale.is_null() {
                each(&mut acc, V::LANES, |x, _, j| V::mul(x, V::load(o.scale.add(j))));
            }
            if !o.shift.is_null() {
                each(&mut acc, V::LANES, |x, _, j| V::add(x, V::load(o.shift.add(j))));
            }
            if !o.residual.is_null() {
                each(&mut acc, V::LANES, |x, i, j| V::add(x, V::load(o.residual.add(i * o.ldr + j))));
            }
            match o.act {
                EpilogueAct::Linear => {}
                EpilogueAct::Relu => each(&mut acc, V::LANES, |x, _, _| V::max(V::zero(), x)),
                EpilogueAct::Relu6 => {
                    each(&mut acc, V::LANES, |x, _, _| V::min(V::splat(6.0), V::max(V::zero(), x)))
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (v, &x) in row.iter().enumerate() {
                V::store_first(t.c.add(i * t.ldc + v * V::LANES), x, V::LANES);
            }
        }
    }
}

/// `x ← f(x, row, column)` for every register of the tile (column: its first lane's).
#[inline(always)]
fn each<V: Copy, const ROWS: usize, const NV: usize>(
    acc: &mut [[V; NV]; ROWS],
    lanes: usize,
    f: impl Fn(V, usize, usize) -> V,
) {
    for (i, row) in acc.iter_mut().enumerate() {
        for (v, x) in row.iter_mut().enumerate() {
            *x = f(*x, i, v * lanes);
        }
    }
}

/// `C[tile] ← α·acc + β·C[tile]` for the tile's rows and columns (β = 0: C not read).
///
/// # Safety
/// As [`tile_body`].
#[inline(always)]
unsafe fn store_tile<V: Vector, const ROWS: usize, const NV: usize>(t: &Tile, acc: &[[V; NV]; ROWS]) {
    // SAFETY: every C access stays inside rows × cols of the tile.
    unsafe {
        let alpha = V::splat(t.alpha);
        let beta = V::splat(t.beta);
        for (i, row) in acc.iter().enumerate() {
            if i >= t.rows {
                break;
            }
            let c = t.c.add(i * t.ldc);
            for (v, &x) in row.iter().enumerate() {
                let j = v * V::LANES;
                if j >= t.cols {
                    break;
                }
                let n = (t.cols - j).min(V::LANES);
                let mut r = V::mul(x, alpha);
                if t.beta != 0.0 {
                    r = V::fmadd(V::load_first(c.add(j), n), beta, r);
                }
                if let Some(ops) = &t.ops {
                    r = apply_ops(ops, r, i, j, n);
                }
                V::store_first(c.add(j), r, n);
            }
        }
    }
}

/// [`TileOps::apply_one`] on the `n` lanes of row `i` from column `j`, in registers.
///
/// # Safety
/// As [`tile_body`]; lanes `j..j+n` of row `i` lie inside the tile.
#[inline(always)]
unsafe fn apply_ops<V: Vector>(o: &TileOps, mut r: V, i: usize, j: usize, n: usize) -> V {
    // SAFETY: the pointers cover the tile (the driver checked the slices behind them).
    unsafe {
        if !o.bias.is_null() {
            r = V::add(r, V::load_first(o.bias.add(j), n));
        }
        if !o.scale.is_null() {
            r = V::mul(r, V::load_first(o.scale.add(j), n));
        }
        if !o.shift.is_null() {
            r = V::add(r, V::load_first(o.shift.add(j), n));
        }
        if !o.residual.is_null() {
            r = V::add(r, V::load_first(o.residual.add(i * o.ldr + j), n));
        }
        match o.act {
            EpilogueAct::Linear => r,
            EpilogueAct::Relu => V::max(V::zero(), r),
            EpilogueAct::Relu6 => V::min(V::splat(6.0), V::max(V::zero(), r)),
        }
    }
}
