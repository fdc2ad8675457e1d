//! General matrix multiply on strided matrices: our own packed SGEMM for f32,
//! `matrixmultiply` for f64.
//!
//! `C ← α·A·B + β·C` with A `[m, k]`, B `[k, n]`, C `[m, n]`, each with its own row and
//! column strides in elements, so transposed views multiply without a copy.
//!
//! f32 runs the blocked driver in `driver` with a micro-kernel picked at run time (`kernel`):
//! AVX-512F (12×32 tile) where the CPU has it, else AVX2+FMA (6×16), else plain loops;
//! `TLX_GEMM_ISA=avx2|portable` lowers the choice. Products of fewer than
//! [`PARALLEL_WORK`] multiply-adds stay on the calling thread; larger ones split B's columns
//! (when A has few rows) or C's rows across the rayon pool, sharing one packed B when the
//! product is large. Scratch comes from per-thread pools: no allocation per call once warm.
//! A B used by many products (a convolution's kernel) can be packed once
//! ([`with_packed_b`]) and multiplied from any thread ([`gemm_packed`]).
//! f64 keeps `matrixmultiply`, split into one row (or column) block per thread.

mod depth_split;
mod driver;
mod kernel;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2;
#[cfg(target_arch = "x86_64")]
mod kernel_avx2_loops;
#[cfg(target_arch = "x86_64")]
mod kernel_avx512;
mod pack;
mod packed;
mod patches;
#[cfg(test)]
mod patches_tests;
#[cfg(test)]
mod tests;

pub(crate) use driver::TASKS_PER_THREAD;
pub use kernel::Isa;
pub use packed::{
    gemm_packed, gemm_packed_ops, gemm_packed_patches, gemm_packed_serial, with_packed_b, with_packed_bs,
    OwnedPackedBs, PackedB,
};
pub use patches::Patches;

/// Operations on C's final values that the micro-kernel applies in registers before it
/// stores them (a convolution's fused epilogue, `conv::Epilogue`):
/// `c[i, j] ← act(((c + bias[j])·scale[j] + shift[j]) + residual[i, j])`, one rounding per
/// step (bit-identical to the separate passes); `None` parts are skipped.
#[derive(Clone, Copy, Debug)]
pub struct OutputOps<'a> {
    /// Per column of C (at least C's columns).
    pub bias: Option<&'a [f32]>,
    pub scale: Option<&'a [f32]>,
    pub shift: Option<&'a [f32]>,
    /// C-shaped, element (i, j) at `[i·ld + j]`: `(values, ld)`.
    pub residual: Option<(&'a [f32], usize)>,
    /// C's values on entry are the residual (`residual` must then be `None`): the result
    /// overwrites it in place, saving a separate output buffer and a read stream. Needs
    /// β = 0 and a product of one depth block ([`PackedB::one_depth_block`]), so that each
    /// element of C is read once, just before its final value is stored over it.
    pub residual_in_c: bool,
    pub act: crate::conv::EpilogueAct,
}

impl OutputOps<'_> {
    /// Panics unless every part covers an `[m, n]` C.
    fn check(&self, m: usize, n: usize) {
        for (what, v) in [("bias", self.bias), ("scale", self.scale), ("shift", self.shift)] {
            if let Some(v) = v {
                assert!(v.len() >= n, "gemm: {what} has {} values for {n} columns", v.len());
            }
        }
        assert!(!(self.residual_in_c && self.residual.is_some()), "gemm: a residual both in C and apart");
        if let Some((r, ld)) = self.residual {
            assert!(ld >= n, "gemm: residual row stride {ld} < {n} columns");
            let need = if m == 0 || n == 0 { 0 } else { (m - 1) * ld + n };
            assert!(
                r.len() >= need,
                "gemm: residual has {} values, [{m}x{n}] at stride {ld} needs {need}",
                r.len()
            );
        }
    }

    /// The pointers for the tile whose element (0, 0) is C's (row, col) (inside C, checked),
    /// whose C starts at `c` with row stride `ldc` (the residual's place when it is in C).
    fn at(&self, row: usize, col: usize, c: *const f32, ldc: usize) -> kernel::TileOps {
        let column = |v: Option<&[f32]>| v.map_or(std::ptr::null(), |v| v[col..].as_ptr());
        let (residual, ldr) = match self.residual {
            Some((r, ld)) => (r[row * ld + col..].as_ptr(), ld),
            None if self.residual_in_c => (c, ldc),
            None => (std::ptr::null(), 0),
        };
        kernel::TileOps {
            bias: column(self.bias),
            scale: column(self.scale),
            shift: column(self.shift),
            residual,
            ldr,
            act: self.act,
        }
    }
}

use crate::conv::EpilogueAct;
use crate::par::SharedMut;
use rayon::prelude::*;
use tlx_core::{DType, Float};

/// Multiply-adds (m·n·k) below which a product stays on the calling thread: about 20 µs of
/// work on one core, where handing half to another thread stops paying for the hand-off.
pub const PARALLEL_WORK: usize = 1 << 21;

/// A strided read-only matrix: element (i, j) is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major matrix (row stride = cols).
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef { data, rows, cols, row_stride: cols, col_stride: 1 }
    }

    /// The transpose, as a view.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// The same view with the elements reinterpreted (T and U of one size: f32 as f32).
    fn cast<U: bytemuck::Pod>(self) -> MatRef<'a, U>
    where
        T: bytemuck::Pod,
    {
        let MatRef { data, rows, cols, row_stride, col_stride } = self;
        MatRef { data: bytemuck::cast_slice(data), rows, cols, row_stride, col_stride }
    }

    fn assert_fits(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride;
            assert!(
                last < self.data.len(),
                "gemm: {what} [{}x{}] with strides ({}, {}) needs {} elements, slice has {}",
                self.rows,
                self.cols,
                self.row_stride,
                self.col_stride,
                last + 1,
                self.data.len()
            );
        }
    }
}

/// `C ← α·A·B + β·C` for a row-major `c` of `[a.rows, b.cols]` with row stride `ldc`.
/// With β = 0, C's old contents are ignored (NaN included). Products of at least
/// [`PARALLEL_WORK`] multiply-adds run on the rayon pool.
pub fn gemm<T: Float>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: &mut [T], ldc: usize) {
    check(&a, &b, c, ldc);
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && a.rows * b.cols * a.cols.max(1) >= PARALLEL_WORK;
    run(Isa::detect(), alpha, a, b, beta, c, ldc, if parallel { threads } else { 1 });
}

/// [`gemm`] on the calling thread only (for callers that already run one product per rayon
/// task).
pub fn gemm_serial<T: Float>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: &mut [T], ldc: usize) {
    check(&a, &b, c, ldc);
    run(Isa::detect(), alpha, a, b, beta, c, ldc, 1);
}

/// [`gemm`] with the f32 micro-kernel of `isa` (the portable one when the CPU lacks it) on
/// `threads` threads (1 = the calling thread; more = the current rayon pool). For tests and
/// benchmarks of the individual paths.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn gemm_with<T: Float>(
    isa: Isa,
    threads: usize,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: &mut [T],
    ldc: usize,
) {
    check(&a, &b, c, ldc);
    run(isa, alpha, a, b, beta, c, ldc, threads.max(1));
}

/// The micro-kernel of `isa` alone (the portable one when the CPU lacks it): one full
/// register tile of depth `k` from a packed A panel and a B panel that stay in L1, stored
/// with a bias and ReLU (a convolution's epilogue), `reps` times; the best of five runs.
/// Returns (FLOPs per tile, seconds per tile). For `examples/gemm_shapes`: the kernel's own
/// peak next to the whole products'.
#[doc(hidden)]
pub fn time_micro_kernel(isa: Isa, k: usize, reps: usize) -> (f64, f64) {
    let ker = kernel::Kernel::for_isa(isa);
    let (mr, nr) = (ker.mr, ker.nr);
    let mut abuf = vec![0f32; mr * k + 16];
    let a = driver::aligned(&mut abuf);
    for (i, x) in a[..mr * k].iter_mut().enumerate() {
        *x = (i % 7) as f32 * 0.01;
    }
    let b: Vec<f32> = (0..k * nr).map(|i| (i % 5) as f32 * 0.01).collect();
    let bias = vec![0.5f32; nr];
    let mut c = vec![0f32; mr * nr];
    let null = std::ptr::null();
    let ops = kernel::TileOps {
        bias: bias.as_ptr(),
        scale: null,
        shift: null,
        residual: null,
        ldr: 0,
        act: EpilogueAct::Relu,
    };
    let tile = kernel::Tile {
        k,
        a: a.as_ptr(),
        lda: 0,
        rows_at: std::ptr::null(),
        run_first: 0,
        run_len: 0,
        run_gap: 0,
        b: b.as_ptr(),
        ldb: nr,
        c: c.as_mut_ptr(),
        ldc: nr,
        rows: mr,
        cols: nr,
        alpha: 1.0,
        beta: 0.0,
        ops: Some(ops),
    };
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = std::time::Instant::now();
        for _ in 0..reps {
            // SAFETY: a packed, 64-byte aligned A panel of k steps of MR floats, a B panel of
            // k rows of NR floats, an MR × NR C and NR bias values; `ker` suits this CPU.
            unsafe { (ker.tile)(std::hint::black_box(&tile)) };
        }
        best = best.min(start.elapsed().as_secs_f64() / reps as f64);
    }
    (2.0 * (mr * nr * k) as f64, best)
}

/// Whether rows of [`Patches`] `row_stride` floats apart (`stride_w·c_in`) spread over L1's
/// sets as the GEMM requires of any A it reads in place (not ResNet50's strided 1×1
/// convolutions: pixels 2–8 KiB apart); callers copy the patches out (im2col) otherwise.
pub fn patch_rows_spread(row_stride: usize) -> bool {
    driver::rows_spread(&kernel::Kernel::for_isa(Isa::detect()), row_stride)
}

/// Panics unless A, B and C fit their slices and the inner dimensions agree.
fn check<T>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, c: &[T], ldc: usize) {
    assert_eq!(b.rows, a.cols, "gemm: inner dimensions {} and {} differ", a.cols, b.rows);
    a.assert_fits("A");
    b.assert_fits("B");
    check_c(a.rows, b.cols, c.len(), ldc);
}

/// Panics unless a row-major `[m, n]` C with row stride `ldc` fits `c_len` elements.
fn check_c(m: usize, n: usize, c_len: usize, ldc: usize) {
    if m > 0 && n > 0 {
        assert!(ldc >= n && c_len >= (m - 1) * ldc + n, "gemm: C slice too short");
    }
}

/// Dispatches on the element type (shapes already checked).
#[allow(clippy::too_many_arguments)]
fn run<T: Float>(
    isa: Isa,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    c: &mut [T],
    ldc: usize,
    threads: usize,
) {
    match T::DTYPE {
        DType::F32 => {
            let ker = kernel::Kernel::for_isa(isa);
            let c: &mut [f32] = bytemuck::cast_slice_mut(c);
            driver::sgemm(
                &ker,
                alpha.to_f32(),
                driver::ASource::Matrix(a.cast()),
                driver::BSource::Matrix(b.cast()),
                beta.to_f32(),
                c,
                ldc,
                threads,
                driver::SHARED_B_WORK,
                None,
            );
        }
        DType::F64 => {
            let c: &mut [f64] = bytemuck::cast_slice_mut(c);
            dgemm(alpha.to_f64(), a.cast(), b.cast(), beta.to_f64(), c, ldc, threads);
        }
        other => unreachable!("Float is implemented only for f32 and f64, got {other}"),
    }
}

/// f64 through `matrixmultiply`: C cut into one block of rows (or of columns, when C is
/// wider than tall, so that each thread packs only its share of B) per thread.
fn dgemm(
    alpha: f64,
    a: MatRef<'_, f64>,
    b: MatRef<'_, f64>,
    beta: f64,
    c: &mut [f64],
    ldc: usize,
    threads: usize,
) {
    let (m, n) = (a.rows, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    if threads == 1 || (m < 32 && n < 32) {
        // SAFETY: `check` proved that A, B and C fit their slices; C is a unique borrow.
        unsafe { dgemm_raw(alpha, a, b, beta, c.as_mut_ptr(), ldc) };
    } else if m >= n {
        let rows_per_block = m.div_ceil(threads).next_multiple_of(8).max(8);
        c.par_chunks_mut(rows_per_block * ldc).enumerate().for_each(|(blk, c_blk)| {
            let r0 = blk * rows_per_block;
            let a_blk = MatRef { data: &a.data[r0 * a.row_stride..], rows: rows_per_block.min(m - r0), ..a };
            // SAFETY: as above, for the rows r0.. of A and C (c_blk is this block's own slice).
            unsafe { dgemm_raw(alpha, a_blk, b, beta, c_blk.as_mut_ptr(), ldc) };
        });
    } else {
        let cols_per_block = n.div_ceil(threads).next_multiple_of(16).max(16);
        let shared = SharedMut::new(&mut c[..(m - 1) * ldc + n]);
        (0..n.div_ceil(cols_per_block)).into_par_iter().for_each(|blk| {
            let j0 = blk * cols_per_block;
            let b_blk = MatRef { data: &b.data[j0 * b.col_stride..], cols: cols_per_block.min(n - j0), ..b };
            // SAFETY: block `blk` writes only the columns j0..j0+cols of the m rows of C,
            // which no other block touches; `check` proved every index is inside `c`.
            unsafe { dgemm_raw(alpha, a, b_blk, beta, shared.ptr_at(j0), ldc) };
        });
    }
}

/// The single-threaded f64 product into a raw C.
///
/// # Safety
/// `c.add(i·ldc + j)` must be valid for reads and writes for i < a.rows, j < b.cols, not
/// written by anyone else meanwhile and not overlapping A or B; A and B must fit their slices.
unsafe fn dgemm_raw(alpha: f64, a: MatRef<'_, f64>, b: MatRef<'_, f64>, beta: f64, c: *mut f64, ldc: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                // SAFETY: (i, j) is inside C by the caller's contract.
                let v = unsafe { &mut *c.add(i * ldc + j) };
                *v = if beta == 0.0 { 0.0 } else { *v * beta };
            }
        }
        return;
    }
    // SAFETY: every index (i·rs + j·cs) for i < rows, j < cols lies inside A's and B's
    // slices and C is valid and exclusive for the m×n block (the caller's contract).
    // matrixmultiply reads C only when beta != 0 (NaN-safe overwrite otherwise).
    unsafe {
        matrixmultiply::dgemm(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.row_stride as isize,
            a.col_stride as isize,
            b.data.as_ptr(),
            b.row_stride as isize,
            b.col_stride as isize,
            beta,
            c,
            ldc as isize,
            1,
        )
    }
}
