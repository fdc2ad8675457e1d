//! The blocked SGEMM driver (the Goto/BLIS loop nest) and its threading.
//!
//! Two shapes of loop nest, picked by the number of rows of A:
//! - **few rows** (`m ≤ MC`, e.g. a training batch): no thread shares anything. Threads
//!   split B's columns; each packs its own copy of A (small) and its columns of B, row
//!   after row so that B is read in memory order, per depth block, then runs the tiles
//!   down each micro-panel. Up to 32 rows of A (`IN_PLACE_B_ROWS`: a training batch) a
//!   row-major B is read in place, as each of its elements meets so few rows that packing
//!   would mostly copy it (Fashion-MNIST MLP step −4 %).
//! - **many rows**: the classic nest `jc` (B slab, `kc × nc`, shared by all threads, packed
//!   in parallel) → `pc` (depth block) → `ic` (A block, `mc × kc`, packed by the thread that
//!   owns it) → `jr` (B micro-panel, L1) → `ir` (A micro-panel, L2) → micro-kernel.
//!   Threads split C's rows into A blocks (a multiple of the thread count of them).
//!   Below `SHARED_B_WORK` multiply-adds, threads instead take one band of rows each and
//!   run the whole nest alone on it, packing B themselves (one fork per call).
//!
//! Products far deeper than they are wide (`k ≥ 4·max(m, n)`, a small C) on several threads
//! split their depth instead: each thread runs one of these nests on a slice of the depth
//! into its own partial C (`depth_split`).
//!
//! A row-major A is not packed but read in place by the micro-kernel (rows at their own
//! stride, see `direct_a`): the transpose that packing costs weighs on narrow products,
//! and the sums are the same (each output's products are added in the same order). The
//! many-rows nest of a product wider than the kernel's `direct_a_cols` packs it anyway.
//!
//! A may also be convolution patches (`ASource::Patches`, implicit im2col): always read in
//! place, each tile's row pointers computed from the output pixels of its rows.
//!
//! Scratch comes from the per-thread pools in `crate::par` (no allocation per call once
//! warm), 64-byte aligned so that vector loads never straddle cache lines.

use super::depth_split;
use super::kernel::{Kernel, Tile};
use super::pack::{a_len, b_len, pack_a, pack_b};
use super::packed::PackedB;
use super::patches::Patches;
use super::{MatRef, OutputOps};
use crate::par::{self, SharedMut};
use rayon::prelude::*;

/// A row-major B whose row stride (in floats) is a non-zero multiple of this is packed even
/// where it could be read in place: its rows, 4 KiB apart, share L1 sets and evict each other.
const ALIASING_STRIDE: usize = 1024;

/// Rows of A up to which a row-major B is read in place by the few-rows nest rather than
/// packed: each element of B then meets this many rows at most, from a micro-panel that
/// stays in L1 across the row tiles, so packing would mostly copy it (a training batch of 32
/// against a Dense layer's weights).
const IN_PLACE_B_ROWS: usize = 32;

/// Multiply-adds below which threads do not share a packed B (each packs its own, see
/// `sgemm`): below about 640³ the two forks per depth block that sharing needs cost more
/// (a sleeping worker takes tens of µs to wake) than packing B twice.
pub(super) const SHARED_B_WORK: usize = 1 << 28;

/// Floats of a B slab below which one thread packs it (a fork costs more than the copy).
const PARALLEL_PACK: usize = 1 << 16;

/// Where the products read A from.
#[derive(Clone, Copy)]
pub(super) enum ASource<'a> {
    /// A strided matrix (read in place or packed, see `direct_a`).
    Matrix(MatRef<'a, f32>),
    /// Convolution patches, always read in place from the image.
    Patches(Patches<'a>),
}

impl<'a> ASource<'a> {
    pub(super) fn rows(&self) -> usize {
        match self {
            ASource::Matrix(a) => a.rows,
            ASource::Patches(p) => p.rows(),
        }
    }

    pub(super) fn cols(&self) -> usize {
        match self {
            ASource::Matrix(a) => a.cols,
            ASource::Patches(p) => p.cols(),
        }
    }

    /// Rows `r0..r0 + rows`.
    fn band(&self, r0: usize, rows: usize) -> ASource<'a> {
        match self {
            ASource::Matrix(a) => ASource::Matrix(MatRef { data: &a.data[r0 * a.row_stride..], rows, ..*a }),
            ASource::Patches(p) => ASource::Patches(p.band(r0, rows)),
        }
    }

    /// As `read_in_place`, for the many-rows nest of a product `n` columns wide: a matrix A
    /// that meets more than the kernel's `direct_a_cols` columns is packed.
    pub(super) fn read_in_place_across(&self, ker: &Kernel, n: usize) -> bool {
        match self {
            ASource::Matrix(_) => n <= ker.direct_a_cols && self.read_in_place(ker),
            ASource::Patches(_) => true,
        }
    }

    /// The matrix, where A is packed (patches never are: `read_in_place` is true for them).
    fn matrix(&self) -> &MatRef<'a, f32> {
        match self {
            ASource::Matrix(a) => a,
            ASource::Patches(_) => unreachable!("gemm: patches are read in place, never packed"),
        }
    }

    /// Whether the tiles read A where it lies rather than from packed panels.
    fn read_in_place(&self, ker: &Kernel) -> bool {
        match self {
            ASource::Matrix(a) => direct_a(ker, a),
            ASource::Patches(_) => true,
        }
    }

    /// The block of rows from `i0` at depth `p0`, read in place (`read_in_place`).
    fn in_place_block(&self, i0: usize, p0: usize) -> ABlock<'_> {
        match self {
            ASource::Matrix(a) => ABlock::Direct(a.data[i0 * a.row_stride + p0..].as_ptr(), a.row_stride),
            ASource::Patches(p) => ABlock::Patches(p, i0, p0),
        }
    }
}

/// Where the products read B from.
#[derive(Clone, Copy)]
pub(super) enum BSource<'a> {
    /// B itself, packed (or read in place) block by block as the nest reaches it.
    Matrix(MatRef<'a, f32>),
    /// B packed beforehand, for the same kernel (`packed::with_packed_b`).
    Packed(&'a PackedB<'a>),
}

impl BSource<'_> {
    fn rows(&self) -> usize {
        match self {
            BSource::Matrix(b) => b.rows,
            BSource::Packed(p) => p.rows(),
        }
    }

    fn cols(&self) -> usize {
        match self {
            BSource::Matrix(b) => b.cols,
            BSource::Packed(p) => p.cols(),
        }
    }
}

/// The depth of the blocks a product of depth `k` runs in.
pub(super) fn depth_block(ker: &Kernel, k: usize) -> usize {
    block_size(k, ker.kc, 1)
}

/// `C ← α·A·B + β·C` on `threads` threads (1 = the calling thread only). `c` holds C with
/// row stride `ldc`; the shapes were checked by the caller. Threads share one packed B
/// from `shared_b_work` multiply-adds on (normally [`SHARED_B_WORK`]). `ops`, if any, are
/// applied to C's final values as they are stored.
#[allow(clippy::too_many_arguments)]
pub(super) fn sgemm(
    ker: &Kernel,
    alpha: f32,
    a: ASource<'_>,
    b: BSource<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    threads: usize,
    shared_b_work: usize,
    ops: Option<&OutputOps<'_>>,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    debug_assert_eq!(k, b.rows());
    if m == 0 || n == 0 {
        return;
    }
    if let Some(o) = ops {
        o.check(m, n);
        if o.residual_in_c {
            assert!(
                beta == 0.0 && k >= 1 && depth_block(ker, k) >= k,
                "gemm: a residual in C needs beta = 0 and one depth block (beta {beta}, depth {k})"
            );
        }
    }
    if k == 0 {
        let tile_ops = ops.map(|o| o.at(0, 0, std::ptr::null(), 0));
        for (i, row) in c.chunks_mut(ldc).take(m).enumerate() {
            for (j, x) in row[..n].iter_mut().enumerate() {
                *x = if beta == 0.0 { 0.0 } else { *x * beta };
                if let Some(o) = &tile_ops {
                    // SAFETY: (i, j) lies inside the [m, n] C the parts were checked for.
                    *x = unsafe { o.apply_one(*x, i, j) };
                }
            }
        }
        return;
    }
    if let (None, ASource::Matrix(am), BSource::Matrix(bm)) = (ops, a, b) {
        let parts = depth_split::parts(ker, m, k, n, threads);
        if parts > 1 {
            return depth_split::sgemm(ker, alpha, am, bm, beta, c, ldc, parts, shared_b_work);
        }
    }
    let c = SharedMut::new(c);
    if m <= ker.mc {
        few_rows(ker, alpha, &a, &b, beta, &c, ldc, threads, ops.map(|o| (o, 0)));
    } else if threads > 1 && (m * n * k < shared_b_work || matches!(b, BSource::Packed(_))) {
        // Bands of rows, each a whole single-threaded product with its own packed B (or
        // reading the one packed beforehand): a single fork per call instead of two per
        // depth block. A few bands per thread, taken as threads come free, so that a thread
        // that is held up (another process on its core) does not hold up the whole product.
        let rows = band_rows(ker, m, threads, matches!(b, BSource::Packed(_)));
        (0..m.div_ceil(rows)).into_par_iter().for_each(|t| {
            let r0 = t * rows;
            let a_t = a.band(r0, rows.min(m - r0));
            // SAFETY: bands of rows are disjoint, so no two tasks hold overlapping ranges;
            // the range ends at the band's last element, inside C (checked by the caller).
            let c_t = SharedMut::new(unsafe { c.range_mut(r0 * ldc, (r0 + a_t.rows() - 1) * ldc + n) });
            if a_t.rows() <= ker.mc {
                few_rows(ker, alpha, &a_t, &b, beta, &c_t, ldc, 1, ops.map(|o| (o, r0)));
            } else {
                many_rows(ker, alpha, &a_t, &b, beta, &c_t, ldc, 1, ops.map(|o| (o, r0)));
            }
        });
    } else {
        many_rows(ker, alpha, &a, &b, beta, &c, ldc, threads, ops.map(|o| (o, 0)));
    }
}

/// Tasks per thread where work is split into parts run as threads come free (rayon steals
/// them): with one part per thread, a thread that loses its core for a while (another
/// process, a hypervisor) makes the other wait; with several, the other takes over its
/// parts. Measured on ResNet50 at batch 8 on a shared 2-vCPU machine.
pub(crate) const TASKS_PER_THREAD: usize = 4;

/// Rows of each band of [`sgemm`]'s band split: [`TASKS_PER_THREAD`] bands per thread where
/// each band still has at least two A blocks of rows and B is packed beforehand (every band
/// reads all of it); else one band per thread (each band packs its own B).
fn band_rows(ker: &Kernel, m: usize, threads: usize, prepacked: bool) -> usize {
    let per_thread = m.div_ceil(threads);
    let tasks = if prepacked { TASKS_PER_THREAD.min(per_thread / (2 * ker.mc)).max(1) } else { 1 };
    per_thread.div_ceil(tasks).next_multiple_of(ker.mr)
}

/// Splits `len` into the fewest near-equal blocks of at most `max`, each a multiple of
/// `unit` (except the last): returns the block size.
fn block_size(len: usize, max: usize, unit: usize) -> usize {
    let blocks = len.div_ceil(max.max(1));
    len.div_ceil(blocks).next_multiple_of(unit)
}

/// The part of `buf` that starts at a 64-byte boundary (callers ask for 16 extra floats).
pub(super) fn aligned(buf: &mut [f32]) -> &mut [f32] {
    let off = aligned_start(buf);
    &mut buf[off..]
}

/// Where [`aligned`]'s part of `buf` starts.
pub(super) fn aligned_start(buf: &[f32]) -> usize {
    buf.as_ptr().align_offset(64).min(16)
}

/// Where the tiles of one A block read A from.
#[derive(Clone, Copy)]
enum ABlock<'a> {
    /// Packed panels (`a_len(rows, kc, MR)` floats).
    Packed(&'a [f32]),
    /// A itself: the block's first element (row i0, depth p0) and A's row stride.
    Direct(*const f32, usize),
    /// Patches in the image: the block's first row and depth.
    Patches(&'a Patches<'a>, usize, usize),
}

/// Rows a tile can have (the largest MR of the kernels).
const MAX_MR: usize = 16;

/// Whether to read A in place rather than pack it: when A is row-major with rows that do
/// not crowd into a few L1 sets (a stride of a multiple of 4 KiB would put all MR rows in
/// one set). Packing costs a transpose of every element of A, which narrow products (a
/// convolution with 64 output channels: each element of A meets 64 columns) feel most. On
/// the AVX-512 machine reading in place was never slower; on Zen 3 (AVX2) it is slower for
/// wide products with many rows, which therefore pack A past `Kernel::direct_a_cols`
/// columns (`ASource::read_in_place_across`; BENCHMARKS.md has both measurements).
/// `TLX_GEMM_DIRECT_A=0` turns it off, for tests and benchmarks.
fn direct_a(ker: &Kernel, a: &MatRef<'_, f32>) -> bool {
    use std::sync::OnceLock;
    static OFF: OnceLock<bool> = OnceLock::new();
    let off = *OFF.get_or_init(|| std::env::var("TLX_GEMM_DIRECT_A").as_deref() == Ok("0"));
    !off && ker.direct_a && a.col_stride == 1 && a.rows >= ker.mr && rows_spread(ker, a.row_stride)
}

/// Whether MR rows `row_stride` floats apart spread over L1's sets: at most 2 rows of one
/// micro-panel per set (64 sets of 64-byte lines), so that reading them in place does not
/// evict the B panel.
pub(super) fn rows_spread(ker: &Kernel, row_stride: usize) -> bool {
    let mut per_set = [0u8; 64];
    for i in 0..ker.mr {
        per_set[(i * row_stride * 4 / 64) % 64] += 1;
    }
    per_set.iter().all(|&k| k <= 2)
}

/// Runs the tiles of one A block (`rows` rows from C row `i0`) against one B micro-panel
/// (`b`, row stride `ldb`) for C columns `j0..j0+cols`; with `ops` (the last depth block:
/// the operations and the row of the caller's C where this C starts) the micro-kernel
/// applies them before it stores. The lines of `next_panel` (the B panel the caller runs
/// next, or empty) are prefetched into L2 a share before each tile.
///
/// # Safety
/// A packed block must hold `a_len(rows, kc, MR)` floats; a direct one must have `rows`
/// readable rows of `kc` floats. `b` must be readable as `kc` rows of NR floats at stride
/// `ldb`, and C rows `i0..i0+rows`, columns `j0..j0+cols` must lie inside `c` and be
/// written by no one else meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn tiles_down(
    ker: &Kernel,
    kc: usize,
    ablock: ABlock<'_>,
    rows: usize,
    b: *const f32,
    ldb: usize,
    c: &SharedMut<f32>,
    ldc: usize,
    (i0, j0, cols): (usize, usize, usize),
    alpha: f32,
    beta: f32,
    ops: Option<(&OutputOps<'_>, usize)>,
    next_panel: &[f32],
) {
    // The next B panel's cache lines, a share before each tile (see `prefetch_l2`).
    let tiles = rows.div_ceil(ker.mr);
    let lines = next_panel.len().div_ceil(LINE_FLOATS);
    let per_tile = lines.div_ceil(tiles.max(1));
    // One tile description, updated field by field from tile to tile: building a fresh one
    // per tile copied its parts through the stack in wider moves than they were written
    // with (store-forwarding stalls: 12 % of a depth-64 product).
    let c0 = c.ptr_at(i0 * ldc + j0);
    // Patches: each tile's row pointers, from a cursor that walks the block's rows.
    let mut rows_at = [std::ptr::null::<f32>(); MAX_MR];
    let rows_ptr = rows_at.as_mut_ptr();
    let mut t = Tile {
        k: kc,
        a: std::ptr::null(),
        lda: 0,
        rows_at: std::ptr::null(),
        run_first: 0,
        run_len: 0,
        run_gap: 0,
        b,
        ldb,
        c: c0,
        ldc,
        rows: 0,
        cols,
        alpha,
        beta,
        ops: ops.map(|(o, offset)| o.at(offset + i0, j0, c0, ldc)),
    };
    let mut patches = match ablock {
        ABlock::Patches(p, first_row, p0) => {
            debug_assert!(ker.mr <= MAX_MR);
            let (offset, run_first) = p.depth_at(p0);
            (t.rows_at, t.run_first, t.run_len, t.run_gap) = (rows_ptr, run_first, p.run_len(), p.run_gap());
            Some((p, p.cursor(first_row), p.image().as_ptr().wrapping_add(offset)))
        }
        _ => None,
    };
    let residual0 = t.ops.map_or(std::ptr::null(), |o| o.residual);
    for (tile, r0) in (0..rows).step_by(ker.mr).enumerate() {
        for line in (tile * per_tile..((tile + 1) * per_tile).min(lines)).map(|l| l * LINE_FLOATS) {
            prefetch_l2(next_panel[line..].as_ptr());
        }
        (t.a, t.lda) = match ablock {
            ABlock::Packed(ap) => (ap[r0 * kc..].as_ptr(), 0),
            // SAFETY: row r0 < rows of the block lies inside A (caller's contract).
            ABlock::Direct(a0, lda) => (unsafe { a0.add(r0 * lda) }, lda),
            ABlock::Patches(..) => (std::ptr::null(), 0),
        };
        t.c = c.ptr_at((i0 + r0) * ldc + j0);
        t.rows = ker.mr.min(rows - r0);
        if let Some((p, cursor, base)) = &mut patches {
            for i in 0..t.rows {
                // SAFETY: i < MR ≤ MAX_MR, inside `rows_at` (written only through
                // `rows_ptr`). The row's patch lies inside the image (`Patches::new`).
                unsafe { *rows_ptr.add(i) = base.add(p.next_offset(cursor)) };
            }
        }
        if let Some(o) = &mut t.ops {
            if !residual0.is_null() {
                // Row r0 of the residual (checked against [m, n] by `OutputOps::check`).
                o.residual = residual0.wrapping_add(r0 * o.ldr);
            }
        }
        // SAFETY: the caller's contract covers the tile; `ker` was built for this CPU.
        unsafe { (ker.tile)(&t) };
    }
}

/// Floats per 64-byte cache line.
const LINE_FLOATS: usize = 16;

/// Hints that the line at `p` is wanted in L2 soon. The tiles of one B panel run down the
/// rows while the next panel is fetched into L2: the first tile of a panel otherwise waits
/// on memory for all of it (a kept kernel's panels are read once per call, from DRAM).
#[inline(always)]
fn prefetch_l2(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing architecturally and cannot fault.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
        _mm_prefetch::<_MM_HINT_T1>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The nest for `m ≤ MC`: see the module header.
#[allow(clippy::too_many_arguments)]
fn few_rows(
    ker: &Kernel,
    alpha: f32,
    a: &ASource<'_>,
    b: &BSource<'_>,
    beta: f32,
    c: &SharedMut<f32>,
    ldc: usize,
    threads: usize,
    ops: Option<(&OutputOps<'_>, usize)>,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (mr, nr) = (ker.mr, ker.nr);
    let kc_max = depth_block(ker, k);
    // B read in place (few rows of A meet each element of B), or already packed, or packed
    // here.
    let in_place = match *b {
        BSource::Matrix(b) => {
            m <= IN_PLACE_B_ROWS
                && b.col_stride == 1
                && (b.row_stride < ALIASING_STRIDE || !b.row_stride.is_multiple_of(ALIASING_STRIDE))
        }
        BSource::Packed(_) => false,
    };
    let prepacked = matches!(b, BSource::Packed(_));
    let panels = n.div_ceil(nr);
    let direct = a.read_in_place(ker);
    // Floats of one packed depth block of A.
    let a_block = a_len(m, kc_max, mr);
    // Panels q0..q1, all depth blocks: A packed (unless `shared_a` holds every depth block
    // packed beforehand), then B's columns of these panels packed (row by row, in order)
    // unless read in place, then the tiles down each panel.
    let run = |q0: usize, q1: usize, shared_a: Option<&[f32]>| {
        let (j0, cols) = (q0 * nr, (q1 * nr).min(n) - q0 * nr);
        let b_floats = if prepacked {
            0
        } else if in_place {
            kc_max * nr
        } else {
            b_len(cols, kc_max, nr)
        };
        let a_floats = if direct || shared_a.is_some() { 0 } else { a_block };
        par::with_scratch(a_floats + 16, |abuf: &mut [f32]| {
            par::with_scratch(b_floats + 16, |bbuf: &mut [f32]| {
                let (ap, bp) = (aligned(abuf), aligned(bbuf));
                for p0 in (0..k).step_by(kc_max) {
                    let kc = kc_max.min(k - p0);
                    let beta = if p0 == 0 { beta } else { 1.0 };
                    let ops = if p0 + kc == k { ops } else { None };
                    let ablock = if direct {
                        a.in_place_block(0, p0)
                    } else if let Some(shared) = shared_a {
                        ABlock::Packed(&shared[p0 / kc_max * a_block..])
                    } else {
                        pack_a(a.matrix(), 0, m, p0, kc, mr, ap);
                        ABlock::Packed(ap)
                    };
                    // The panels of columns j0..j0+cols (unused when B is read in place).
                    let panels: *const f32 = match *b {
                        BSource::Packed(pb) => pb.panels(p0, kc, j0, cols).as_ptr(),
                        BSource::Matrix(b) if !in_place => {
                            pack_b(&b, p0, kc, j0, cols, nr, bp);
                            bp.as_ptr()
                        }
                        BSource::Matrix(_) => std::ptr::null(),
                    };
                    for q in 0..q1 - q0 {
                        let jq = j0 + q * nr;
                        let w = nr.min(n - jq);
                        let (bptr, ldb) = match *b {
                            BSource::Matrix(b) if in_place && w == nr => {
                                (b.data[p0 * b.row_stride + jq..].as_ptr(), b.row_stride)
                            }
                            BSource::Matrix(b) if in_place => {
                                // The last, narrow panel: packed on its own.
                                pack_b(&b, p0, kc, jq, w, nr, bp);
                                (bp.as_ptr(), nr)
                            }
                            // Panel q of the b_len(cols, kc, nr) floats at `panels`.
                            _ => (panels.wrapping_add(q * kc * nr), nr),
                        };
                        let next: &[f32] = match *b {
                            BSource::Matrix(_) if in_place => &[],
                            _ if q + 1 < q1 - q0 => {
                                // SAFETY: panel q + 1 of the b_len(cols, kc, nr) floats at
                                // `panels` (packed here or beforehand).
                                unsafe { std::slice::from_raw_parts(panels.add((q + 1) * kc * nr), kc * nr) }
                            }
                            _ => &[],
                        };
                        // SAFETY: A is packed for all m rows; the B panel has kc readable rows
                        // of NR floats (in place: columns jq..jq+NR ≤ n of rows p0..p0+kc of
                        // a checked B); this task owns C's columns of panels q0..q1.
                        unsafe {
                            tiles_down(
                                ker,
                                kc,
                                ablock,
                                m,
                                bptr,
                                ldb,
                                c,
                                ldc,
                                (0, jq, w),
                                alpha,
                                beta,
                                ops,
                                next,
                            )
                        };
                    }
                }
            })
        })
    };
    if threads > 1 && panels > 1 {
        // Several runs of panels per thread where there are enough panels (see
        // TASKS_PER_THREAD), not below 4 panels per run.
        let tasks = (threads * TASKS_PER_THREAD).min(panels / 4).max(threads);
        let per = panels.div_ceil(tasks);
        let runs = |shared_a: Option<&[f32]>| {
            (0..panels.div_ceil(per))
                .into_par_iter()
                .for_each(|t| run(t * per, ((t + 1) * per).min(panels), shared_a))
        };
        if direct {
            runs(None);
        } else {
            // A packed once, every depth block, for all runs: each run packing its own copy
            // cost a fifth of ResNet50's conv5 1×1 layers (49 rows of depth 2048, eight runs).
            let blocks = k.div_ceil(kc_max);
            par::with_scratch(blocks * a_block + 16, |abuf: &mut [f32]| {
                let ap = aligned(abuf);
                let pack = |(i, dst): (usize, &mut [f32])| {
                    let p0 = i * kc_max;
                    pack_a(a.matrix(), 0, m, p0, kc_max.min(k - p0), mr, dst);
                };
                if blocks > 1 {
                    ap[..blocks * a_block].par_chunks_mut(a_block).enumerate().for_each(pack);
                } else {
                    pack((0, &mut ap[..a_block]));
                }
                runs(Some(ap));
            });
        }
    } else {
        run(0, panels, None);
    }
}

/// The nest for `m > MC`: see the module header.
#[allow(clippy::too_many_arguments)]
fn many_rows(
    ker: &Kernel,
    alpha: f32,
    a: &ASource<'_>,
    b: &BSource<'_>,
    beta: f32,
    c: &SharedMut<f32>,
    ldc: usize,
    threads: usize,
    ops: Option<(&OutputOps<'_>, usize)>,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (mr, nr) = (ker.mr, ker.nr);
    let kc_max = depth_block(ker, k);
    let nc_max = block_size(n, ker.nc, nr);
    let prepacked = matches!(b, BSource::Packed(_));
    // A blocks: a multiple of the thread count of them, so that every thread gets as many.
    let mut blocks = m.div_ceil(ker.mc);
    if threads > 1 {
        blocks = blocks.next_multiple_of(threads);
    }
    let mc = m.div_ceil(blocks).next_multiple_of(mr);
    let blocks = m.div_ceil(mc);
    let direct = a.read_in_place_across(ker, n);
    let b_floats = if prepacked { 0 } else { b_len(nc_max, kc_max, nr) };
    par::with_scratch(b_floats + 16, |bbuf: &mut [f32]| {
        let bp = aligned(bbuf);
        for j0 in (0..n).step_by(nc_max) {
            let nc = nc_max.min(n - j0);
            for p0 in (0..k).step_by(kc_max) {
                let kc = kc_max.min(k - p0);
                let beta = if p0 == 0 { beta } else { 1.0 };
                let ops = if p0 + kc == k { ops } else { None };
                let slab: &[f32] = match *b {
                    BSource::Packed(pb) => pb.panels(p0, kc, j0, nc),
                    BSource::Matrix(b) => {
                        let slab = &mut bp[..b_len(nc, kc, nr)];
                        if threads > 1 && kc * nc >= PARALLEL_PACK {
                            // One run of whole panels per thread, each packed row by row.
                            let per = nc.div_ceil(nr).div_ceil(threads);
                            slab.par_chunks_mut(per * kc * nr).enumerate().for_each(|(t, part)| {
                                let c0 = j0 + t * per * nr;
                                pack_b(&b, p0, kc, c0, (per * nr).min(j0 + nc - c0), nr, part);
                            });
                        } else {
                            pack_b(&b, p0, kc, j0, nc, nr, slab);
                        }
                        slab
                    }
                };
                let block = |ib: usize| {
                    let i0 = ib * mc;
                    let rows = mc.min(m - i0);
                    let a_floats = if direct { 0 } else { a_len(rows, kc, mr) };
                    par::with_scratch(a_floats + 16, |abuf: &mut [f32]| {
                        let ap = aligned(abuf);
                        let ablock = if direct {
                            a.in_place_block(i0, p0)
                        } else {
                            pack_a(a.matrix(), i0, rows, p0, kc, mr, ap);
                            ABlock::Packed(ap)
                        };
                        let panels = slab.chunks_exact(kc * nr);
                        let nexts = slab.chunks_exact(kc * nr).skip(1).chain(std::iter::once(&[][..]));
                        for (q, (panel, next)) in panels.zip(nexts).enumerate() {
                            let jj = j0 + q * nr;
                            let cols = nr.min(n - jj);
                            // SAFETY: the A block and the B panel are packed; this task owns
                            // C's rows i0..i0+rows (A blocks are disjoint).
                            unsafe {
                                tiles_down(
                                    ker,
                                    kc,
                                    ablock,
                                    rows,
                                    panel.as_ptr(),
                                    nr,
                                    c,
                                    ldc,
                                    (i0, jj, cols),
                                    alpha,
                                    beta,
                                    ops,
                                    next,
                                )
                            };
                        }
                    })
                };
                if threads > 1 && blocks > 1 {
                    (0..blocks).into_par_iter().for_each(block);
                } else {
                    (0..blocks).for_each(block);
                }
            }
        }
    })
}
