//! B packed once for many products: a convolution multiplies every tile of its patches by
//! the same kernel matrix, and re-packing that matrix for each tile (up to 9 MiB for a
//! 3×3×512→512 kernel, once per tile per thread) costs memory traffic that the products
//! then wait on. [`with_packed_b`] packs it once per call into the calling thread's
//! scratch; [`gemm_packed`] runs products against it from any thread.
//!
//! Layout: the depth blocks the driver uses (`kc_max` rows each, the last one shorter),
//! one after another; within depth block `p0..p0+kc`, the `⌈n/nr⌉` panels of all of B's
//! columns, each `kc` rows of `nr` floats (`pack::pack_b`'s layout), so panel `q` of the
//! block starting at depth `p0` is at `p0·n_pad + q·kc·nr` with `n_pad = ⌈n/nr⌉·nr`. Any
//! run of whole panels is what `pack_b` would have produced for those columns.

use super::driver::{self, ASource, BSource};
use super::kernel::{Isa, Kernel};
use super::pack::{b_len, pack_b};
use super::{MatRef, OutputOps, Patches};
use crate::par;
use rayon::prelude::*;

/// Floats of B above which its depth blocks are packed in parallel.
const PARALLEL_PACK: usize = 1 << 16;

/// A `[k, n]` f32 matrix packed for this CPU's SGEMM micro-kernel (see the module header).
#[derive(Clone, Copy, Debug)]
pub struct PackedB<'s> {
    data: &'s [f32],
    k: usize,
    n: usize,
    kc_max: usize,
    kernel: Kernel,
}

impl<'s> PackedB<'s> {
    /// Rows (depth) of B.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns of B.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// Whether products with it run in one depth block (as `OutputOps::residual_in_c` needs).
    pub fn one_depth_block(&self) -> bool {
        self.k >= 1 && self.kc_max >= self.k
    }

    /// The packed panels for depth block `p0..p0+kc` (a block boundary) and columns
    /// `j0..j0+cols` (`j0` a multiple of NR): `b_len(cols, kc, nr)` floats.
    pub(super) fn panels(&self, p0: usize, kc: usize, j0: usize, cols: usize) -> &'s [f32] {
        let nr = self.kernel.nr;
        debug_assert!(p0.is_multiple_of(self.kc_max) && j0.is_multiple_of(nr) && kc <= self.kc_max);
        let n_pad = self.n.div_ceil(nr) * nr;
        &self.data[p0 * n_pad + (j0 / nr) * kc * nr..][..b_len(cols, kc, nr)]
    }
}

/// Packs `b` (any strides) once for the kernel this CPU runs and calls `f` with it. The
/// memory is scratch of the calling thread (reused from call to call); `f` may share the
/// packed B with other threads. Large matrices are packed on the rayon pool.
pub fn with_packed_b<R>(b: MatRef<'_, f32>, f: impl FnOnce(&PackedB<'_>) -> R) -> R {
    with_packed_bs(&[b], |packed| f(&packed[0]))
}

/// [`with_packed_b`] for several matrices of one shape (a Winograd convolution's `α²`
/// transformed kernels), packed one after another into one scratch buffer.
pub fn with_packed_bs<R>(bs: &[MatRef<'_, f32>], f: impl FnOnce(&[PackedB<'_>]) -> R) -> R {
    let Some(shape) = Shape::of(bs) else { return f(&[]) };
    par::with_scratch(bs.len() * shape.one + 16, |buf: &mut [f32]| {
        let data = &mut driver::aligned(buf)[..bs.len() * shape.one];
        shape.pack(bs, data);
        f(&shape.views(data, bs.len()))
    })
}

/// Several matrices of one shape packed as [`with_packed_bs`] does, into memory of their
/// own that lasts: for products in later calls (a convolution's transformed kernel kept
/// from call to call while the weights do not change).
pub struct OwnedPackedBs {
    buf: Vec<f32>,
    /// Where the 64-byte aligned data starts in `buf`.
    start: usize,
    count: usize,
    shape: Option<Shape>,
}

impl OwnedPackedBs {
    /// Packs `bs` (all of one shape) for this CPU's kernel.
    pub fn new(bs: &[MatRef<'_, f32>]) -> OwnedPackedBs {
        let shape = Shape::of(bs);
        let len = shape.map_or(0, |s| bs.len() * s.one);
        let mut buf = vec![0f32; len + 16];
        let start = driver::aligned_start(&buf);
        if let Some(shape) = shape {
            shape.pack(bs, &mut buf[start..][..len]);
        }
        OwnedPackedBs { buf, start, count: bs.len(), shape }
    }

    /// The packed matrices, in the order given.
    pub fn views(&self) -> Vec<PackedB<'_>> {
        match self.shape {
            Some(s) => s.views(&self.buf[self.start..], self.count),
            None => Vec::new(),
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.buf.len() * 4
    }
}

impl std::fmt::Debug for OwnedPackedBs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OwnedPackedBs({} matrices, {} bytes)", self.count, self.bytes())
    }
}

/// The packed layout shared by several `[k, n]` matrices.
#[derive(Clone, Copy)]
struct Shape {
    kernel: Kernel,
    k: usize,
    n: usize,
    kc_max: usize,
    /// Floats of one packed matrix (a multiple of NR: each starts 64-byte aligned).
    one: usize,
}

impl Shape {
    /// The layout of `bs` for this CPU's kernel (`None` for no matrices); panics if the
    /// matrices differ in shape or do not fit their slices.
    fn of(bs: &[MatRef<'_, f32>]) -> Option<Shape> {
        let first = bs.first()?;
        for b in bs {
            b.assert_fits("B");
            assert_eq!(
                (b.rows, b.cols),
                (first.rows, first.cols),
                "with_packed_bs: matrices of different shapes"
            );
        }
        let kernel = Kernel::for_isa(Isa::detect());
        let (k, n) = (first.rows, first.cols);
        let kc_max = driver::depth_block(&kernel, k);
        Some(Shape { kernel, k, n, kc_max, one: k * n.div_ceil(kernel.nr) * kernel.nr })
    }

    /// Packs `bs` into `data` (`bs.len()·one` floats, 64-byte aligned), on the rayon pool
    /// when large.
    fn pack(&self, bs: &[MatRef<'_, f32>], data: &mut [f32]) {
        let (k, n, nr, kc_max) = (self.k, self.n, self.kernel.nr, self.kc_max);
        let block_len = (kc_max * n.div_ceil(nr) * nr).max(1);
        let blocks = self.one.div_ceil(block_len);
        // Task i: depth block i % blocks of matrix i / blocks.
        let pack = |(i, block): (usize, &mut [f32])| {
            let (b, p0) = (&bs[i / blocks], (i % blocks) * kc_max);
            pack_b(b, p0, kc_max.min(k - p0), 0, n, nr, block);
        };
        let chunks = data.chunks_mut(self.one.max(1)).flat_map(|m| m.chunks_mut(block_len));
        if bs.len() * k * n >= PARALLEL_PACK && rayon::current_num_threads() > 1 {
            chunks.collect::<Vec<_>>().into_par_iter().enumerate().for_each(pack);
        } else {
            chunks.enumerate().for_each(pack);
        }
    }

    /// The `count` packed matrices in `data`.
    fn views<'s>(&self, data: &'s [f32], count: usize) -> Vec<PackedB<'s>> {
        let Shape { kernel, k, n, kc_max, one } = *self;
        (0..count).map(|i| PackedB { data: &data[i * one..][..one], k, n, kc_max, kernel }).collect()
    }
}

/// `C ← α·A·B + β·C` with B packed by [`with_packed_b`]; as [`super::gemm`] otherwise
/// (parallel on the rayon pool for large products).
pub fn gemm_packed(alpha: f32, a: MatRef<'_, f32>, b: &PackedB<'_>, beta: f32, c: &mut [f32], ldc: usize) {
    run(alpha, ASource::Matrix(a), b, beta, c, ldc, true, None);
}

/// [`gemm_packed`] on the calling thread only.
pub fn gemm_packed_serial(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: &PackedB<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    run(alpha, ASource::Matrix(a), b, beta, c, ldc, false, None);
}

/// [`gemm_packed`] (when `parallel`) or [`gemm_packed_serial`] whose micro-kernel applies
/// `ops` to C's final values before storing them (a convolution's epilogue, in registers).
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_ops(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: &PackedB<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    parallel: bool,
    ops: &OutputOps<'_>,
) {
    run(alpha, ASource::Matrix(a), b, beta, c, ldc, parallel, Some(ops));
}

/// [`gemm_packed_ops`] whose A is convolution patches read where they lie in the image
/// (implicit im2col; `ops` optional).
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_patches(
    alpha: f32,
    a: Patches<'_>,
    b: &PackedB<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    parallel: bool,
    ops: Option<&OutputOps<'_>>,
) {
    run(alpha, ASource::Patches(a), b, beta, c, ldc, parallel, ops);
}

/// Checks the shapes and runs the product on the pool's threads when `parallel` is allowed
/// and the product is large enough, else on the calling thread alone.
#[allow(clippy::too_many_arguments)]
fn run(
    alpha: f32,
    a: ASource<'_>,
    b: &PackedB<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
    parallel: bool,
    ops: Option<&OutputOps<'_>>,
) {
    let (m, k) = (a.rows(), a.cols());
    assert_eq!(b.k, k, "gemm_packed: inner dimensions {k} and {} differ", b.k);
    if let ASource::Matrix(a) = &a {
        a.assert_fits("A");
    }
    super::check_c(m, b.n, c.len(), ldc);
    let pool = rayon::current_num_threads();
    let threads = if parallel && pool > 1 && m * b.n * k.max(1) >= super::PARALLEL_WORK { pool } else { 1 };
    // The packed kernel and depth blocks are the ones `b` was packed for.
    driver::sgemm(&b.kernel, alpha, a, BSource::Packed(b), beta, c, ldc, threads, driver::SHARED_B_WORK, ops);
}
