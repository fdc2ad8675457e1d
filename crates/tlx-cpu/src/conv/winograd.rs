//! Winograd convolution F(m×m, 3×3) (Lavin & Gray, "Fast Algorithms for Convolutional
//! Neural Networks", 2015) for the 3×3, stride-1, undilated, ungrouped f32 convolutions that
//! make up VGG and the middle of every ResNet bottleneck. Each m×m tile of output comes from
//! an α×α tile of input (α = m + 2) with α² multiplications per channel pair instead of 9·m²
//! (F(2×2, 3×3): 2.25× fewer, F(4×4, 3×3): 4× fewer). With ξ = (i, j) over the α×α points:
//! - `U` `[c][ξ][k]` = G·g·Gᵀ for every 3×3 kernel slice `g` (computed in f64, rounded once);
//! - `V` `[ξ][t][c]` = Bᵀ·d·B for every α×α input tile `d` (padding reads as zeros);
//! - `M_ξ` `[t, k]` = `V_ξ` `[t, c]` × `U_ξ` `[c, k]`: α² ordinary GEMMs, the arithmetic;
//! - `y` = Aᵀ·M·A, the m×m output tile, then the bias or the fused epilogue per pixel.
//!
//! The input gradient of such a convolution is itself one (of `grad_out`, with the kernel
//! turned by 180° and its channel axes swapped: [`backward_input`]), so it runs here too.
//!
//! Tiles run in blocks of a few MiB of `V` and `M` (tall enough that each product reuses its
//! transformed kernel over many tiles); each rayon task
//! transforms, multiplies and inverse-transforms whole blocks (single-threaded GEMMs against
//! the α² kernels packed once per call). The results differ from the direct convolution by
//! rounding only: the transforms add a few float operations per value (normwise relative
//! error ~5e-7 for F(2×2) and ~3e-6 for F(4×4) on a 512-channel layer where the direct
//! convolution's is ~3e-7; see the tests).
//! Per call, a cost model picks the direct convolution, F(2×2) or F(4×4). The kernel's
//! transform is paid on every call, which keeps small maps direct, unless the caller keeps it
//! ([`WinogradKernel`]: tlx-tensor does, with the weights' storage, whenever no gradient is
//! recorded), when only reading it is counted. [`set_conv_algorithm`] (or
//! `TLX_CONV_WINOGRAD=0`, `2`, `4`) turns Winograd off or forces a tile size.

use super::im2col::col_stride;
use super::winograd_tiles as tiles;
use super::{Epilogue, Tuning};
use crate::gemm::{gemm_packed_serial, with_packed_bs, MatRef, OwnedPackedBs, PackedB};
use crate::par::{self, SharedMut};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use tlx_core::{Conv2dGeometry, Padding};

/// The matrices of F(m×m, 3×3), row-major.
#[derive(Debug)]
pub(crate) struct Transform {
    /// Output tile side.
    pub m: usize,
    /// Input tile side, m + 2.
    pub alpha: usize,
    /// Bᵀ `[α, α]` (the tile transforms have it written out: `winograd_tiles`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub bt: &'static [f32],
    /// G `[α, 3]` (f64: the kernel transform is computed in f64).
    g: &'static [f64],
    /// Aᵀ `[m, α]` (written out in `winograd_tiles`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub at: &'static [f32],
}

/// F(2×2, 3×3): interpolation points 0, ±1, ∞.
pub(crate) static F2: Transform = Transform {
    m: 2,
    alpha: 4,
    bt: &[
        1.0, 0.0, -1.0, 0.0, //
        0.0, 1.0, 1.0, 0.0, //
        0.0, -1.0, 1.0, 0.0, //
        0.0, 1.0, 0.0, -1.0,
    ],
    g: &[
        1.0, 0.0, 0.0, //
        0.5, 0.5, 0.5, //
        0.5, -0.5, 0.5, //
        0.0, 0.0, 1.0,
    ],
    at: &[
        1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, -1.0,
    ],
};

/// F(4×4, 3×3): interpolation points 0, ±1, ±2, ∞.
pub(crate) static F4: Transform = Transform {
    m: 4,
    alpha: 6,
    bt: &[
        4.0, 0.0, -5.0, 0.0, 1.0, 0.0, //
        0.0, -4.0, -4.0, 1.0, 1.0, 0.0, //
        0.0, 4.0, -4.0, -1.0, 1.0, 0.0, //
        0.0, -2.0, -1.0, 2.0, 1.0, 0.0, //
        0.0, 2.0, -1.0, -2.0, 1.0, 0.0, //
        0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
    ],
    g: &[
        1.0 / 4.0,
        0.0,
        0.0, //
        -1.0 / 6.0,
        -1.0 / 6.0,
        -1.0 / 6.0, //
        -1.0 / 6.0,
        1.0 / 6.0,
        -1.0 / 6.0, //
        1.0 / 24.0,
        1.0 / 12.0,
        1.0 / 6.0, //
        1.0 / 24.0,
        -1.0 / 12.0,
        1.0 / 6.0, //
        0.0,
        0.0,
        1.0,
    ],
    at: &[
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0, //
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0, //
        0.0, 1.0, 1.0, 4.0, 4.0, 0.0, //
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ],
};

/// Bytes of `V` and `M` one block of tiles aims for. Each of the α² products reads its whole
/// transformed kernel (up to 1 MiB) once per block, so blocks must be tall: with 2 MiB a
/// 512-channel layer got blocks of 13 tiles and the products waited on the kernel; 8 MiB
/// (about 50 such tiles, V and M in L3) measured best on VGG16 at batch 8.
const BLOCK_BYTES: usize = 8 << 20;
/// Fewest tiles of a block split off only to spread the work over threads (each block's
/// products read all α² transformed kernels once).
const TALL_BLOCK: usize = 96;
/// Blocks per thread where there are enough tiles (`gemm::TASKS_PER_THREAD`).
const TASKS_PER_THREAD: usize = crate::gemm::TASKS_PER_THREAD;
/// Fewest input and output channels: below, the transforms cost more than they save.
const MIN_CHANNELS: usize = 16;

/// Whether and how 3×3 stride-1 f32 forward convolutions run through Winograd.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Choice {
    /// Never (the direct convolution).
    Off,
    /// Per call, whichever of the direct convolution, F(2×2) and F(4×4) the cost model
    /// ([`estimated_cost`]) finds cheapest.
    Auto,
    /// Always this transform where it applies (tests, benchmarks).
    Force(&'static Transform),
}

/// How the forward pass of 3×3 stride-1 f32 convolutions is computed, for the whole process
/// ([`set_conv_algorithm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgorithm {
    /// Per call, whichever of the others the cost model expects to be fastest (the default).
    Auto,
    /// Always the direct (im2col + GEMM) convolution: the rounding of TF-CPU's and PyTorch's.
    Direct,
    /// Winograd F(2×2, 3×3) wherever it applies.
    Winograd2x2,
    /// Winograd F(4×4, 3×3) wherever it applies.
    Winograd4x4,
}

/// 0: no override (`TLX_CONV_WINOGRAD` or [`ConvAlgorithm::Auto`]), else 1 + the algorithm.
static OVERRIDE: AtomicU8 = AtomicU8::new(0);

/// Sets how every later forward convolution of the process picks its algorithm; `None`
/// returns to the default (`TLX_CONV_WINOGRAD`: `0` direct, `2` or `4` that Winograd tile
/// size, unset: [`ConvAlgorithm::Auto`]).
pub fn set_conv_algorithm(algorithm: Option<ConvAlgorithm>) {
    let code = match algorithm {
        None => 0,
        Some(ConvAlgorithm::Auto) => 1,
        Some(ConvAlgorithm::Direct) => 2,
        Some(ConvAlgorithm::Winograd2x2) => 3,
        Some(ConvAlgorithm::Winograd4x4) => 4,
    };
    OVERRIDE.store(code, Ordering::Relaxed);
}

/// The choice the public entry points use: [`set_conv_algorithm`]'s, or else
/// `TLX_CONV_WINOGRAD` (`0`/`off`: never, `2` or `4`: always that tile size, read once), or
/// else [`Choice::Auto`].
pub(crate) fn default_choice() -> Choice {
    static FROM_ENV: OnceLock<Choice> = OnceLock::new();
    match OVERRIDE.load(Ordering::Relaxed) {
        1 => Choice::Auto,
        2 => Choice::Off,
        3 => Choice::Force(&F2),
        4 => Choice::Force(&F4),
        _ => *FROM_ENV.get_or_init(|| match std::env::var("TLX_CONV_WINOGRAD").as_deref() {
            Ok("0" | "off" | "false" | "no") => Choice::Off,
            Ok("2") => Choice::Force(&F2),
            Ok("4") => Choice::Force(&F4),
            _ => Choice::Auto,
        }),
    }
}

/// Cost of transforming and packing one element of the kernel `U`, in multiply-adds of the
/// GEMM (it is memory traffic: written, read back, packed; measured on VGG16 at batch 8).
const KERNEL_ELEMENT_COST: usize = 128;
/// Cost of reading one element of a kept transformed kernel from memory (once per call:
/// F(4×4) of a 512-channel layer reads 36 MiB), in multiply-adds of the GEMM: with few tiles
/// the products wait on it (ResNet50's 7×7×512 layers at batch 1 measured no faster
/// through F(4×4) than direct).
const KEPT_KERNEL_READ_COST: usize = 16;
/// Cost of transforming one element of `V` or `M` (per tile, per ξ, per channel), in
/// multiply-adds of the GEMM.
const TILE_ELEMENT_COST: usize = 8;

impl Transform {
    /// Tile rows and columns covering `g`'s output (the last ones may stick out).
    fn tile_grid(&self, g: &Conv2dGeometry) -> (usize, usize) {
        (g.out_h.div_ceil(self.m), g.out_w.div_ceil(self.m))
    }
}

/// Whether `g` is a 3×3, stride-1, undilated, ungrouped convolution.
fn unit_3x3(g: &Conv2dGeometry) -> bool {
    (g.kh, g.kw, g.stride_h, g.stride_w, g.dilation_h, g.dilation_w, g.groups) == (3, 3, 1, 1, 1, 1, 1)
}

/// The estimated cost of the convolution through `tr`, in multiply-adds of the GEMM: the α²
/// products, the tile transforms, and the kernel's transform and packing (or, when
/// `kernel_kept`, a [`WinogradKernel`] from an earlier call, reading it).
fn estimated_cost(tr: &Transform, g: &Conv2dGeometry, kernel_kept: bool) -> usize {
    let a2 = tr.alpha * tr.alpha;
    let (tiles_y, tiles_x) = tr.tile_grid(g);
    let tiles = g.n * tiles_y * tiles_x;
    let (c, k) = (g.c_in, g.c_out);
    let kernel = if kernel_kept { KEPT_KERNEL_READ_COST } else { KERNEL_ELEMENT_COST } * a2 * c * k;
    a2 * tiles * (c * k + TILE_ELEMENT_COST * (c + k)) + kernel
}

/// The transform to run `g` with, if it is a convolution Winograd applies to and (with
/// [`Choice::Auto`]) one that the estimate finds cheaper than the direct convolution (with
/// the kernel transformed in this call, or `kernel_kept` from an earlier one).
pub(super) fn choose(g: &Conv2dGeometry, t: &Tuning) -> Option<&'static Transform> {
    choose_for(g, t, false)
}

pub(super) fn choose_for(g: &Conv2dGeometry, t: &Tuning, kernel_kept: bool) -> Option<&'static Transform> {
    let suits = unit_3x3(g) && g.c_in >= MIN_CHANNELS && g.c_out >= MIN_CHANNELS;
    match t.winograd {
        _ if !suits => None,
        Choice::Off => None,
        Choice::Force(tr) => Some(tr),
        Choice::Auto => {
            let direct = g.n * g.out_h * g.out_w * 9 * g.c_in * g.c_out;
            [&F4, &F2]
                .into_iter()
                .map(|tr| (estimated_cost(tr, g, kernel_kept), tr))
                .filter(|&(cost, _)| cost < direct)
                .min_by_key(|&(cost, _)| cost)
                .map(|(_, tr)| tr)
        }
    }
}

/// `out` `[n, out_h, out_w, c_out]` ← the convolution of `input` `[n, h, w, c_in]` with
/// `kernel` `[3, 3, c_in, c_out]`, plus `bias`, finished by `ep` (at most one of the two).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward(
    tr: &Transform,
    g: &Conv2dGeometry,
    input: &[f32],
    kernel: &[f32],
    bias: Option<&[f32]>,
    ep: Option<&Epilogue<'_, f32>>,
    out: &mut [f32],
    t: &Tuning,
) {
    let (c, k, a2) = (g.c_in, g.c_out, tr.alpha * tr.alpha);
    let parallel = t.parallel(g.n * g.out_h * g.out_w * 9 * c * k);
    par::with_scratch(c * a2 * k, |u: &mut [f32]| {
        transform_kernel(tr, g, kernel, u, parallel);
        with_packed_bs(&u_matrices(tr, g, u), |packed| run_blocks(tr, g, packed, input, bias, ep, out, t))
    })
}

/// The α² matrices `U_ξ` `[c, k]` in `U` `[c][ξ][k]` (row stride α²·k).
fn u_matrices<'u>(tr: &Transform, g: &Conv2dGeometry, u: &'u [f32]) -> Vec<MatRef<'u, f32>> {
    let (c, k, a2) = (g.c_in, g.c_out, tr.alpha * tr.alpha);
    (0..a2)
        .map(|xi| MatRef { data: &u[xi * k..], rows: c, cols: k, row_stride: a2 * k, col_stride: 1 })
        .collect()
}

/// [`forward`] with the α² transformed kernels already packed (`packed`).
#[allow(clippy::too_many_arguments)]
fn run_blocks(
    tr: &Transform,
    g: &Conv2dGeometry,
    packed: &[PackedB<'_>],
    input: &[f32],
    bias: Option<&[f32]>,
    ep: Option<&Epilogue<'_, f32>>,
    out: &mut [f32],
    t: &Tuning,
) {
    let (c, k, a2) = (g.c_in, g.c_out, tr.alpha * tr.alpha);
    let (tiles_y, tiles_x) = tr.tile_grid(g);
    let tiles = g.n * tiles_y * tiles_x;
    let parallel = t.parallel(g.n * g.out_h * g.out_w * 9 * c * k);
    // Row strides of V and M: rows that would share L1 sets are spread (as im2col's).
    let (ldv, ldm) = (col_stride(c), col_stride(k));
    let plan = BlockPlan::new(tiles, 4 * a2 * (ldv + ldm), if parallel { t.threads } else { 1 });
    let shared = SharedMut::new(out);
    let run = |block: usize, scratch: &mut [f32]| {
        let job = Block { tr, g, plan: &plan, ldv, ldm, packed, bias, ep, out: &shared };
        job.run(block, input, scratch);
    };
    let scratch_len = a2 * plan.tiles * (ldv + ldm);
    if parallel && plan.blocks > 1 {
        (0..plan.blocks).into_par_iter().for_each(|b| par::with_scratch(scratch_len, |s| run(b, s)));
    } else {
        par::with_scratch(scratch_len, |s| (0..plan.blocks).for_each(|b| run(b, s)));
    }
}

/// A 3×3 kernel transformed for one Winograd tile size and packed for the GEMM, to be kept
/// and reused by later calls while the weights stay the same (inference: the per-call
/// transform costs about as much as a small layer's products, so with it kept small maps
/// such as ResNet's last stages run through Winograd too). Holds α²/9 times the kernel's
/// floats (F(4×4): 4×, F(2×2): 1.8×), plus panel padding.
pub struct WinogradKernel {
    tr: &'static Transform,
    c_in: usize,
    c_out: usize,
    packed: OwnedPackedBs,
}

impl std::fmt::Debug for WinogradKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WinogradKernel(F({m}x{m}, 3x3), {}→{})", self.c_in, self.c_out, m = self.tr.m)
    }
}

impl WinogradKernel {
    /// `kernel` `[3, 3, c_in, c_out]` of `g` transformed for `algorithm` (`Winograd2x2` or
    /// `Winograd4x4`, as `kept_kernel_algorithm` picks); `None` for the others, or when
    /// `g` is not a 3×3 stride-1 ungrouped convolution of that kernel's size.
    pub fn new(algorithm: ConvAlgorithm, g: &Conv2dGeometry, kernel: &[f32]) -> Option<WinogradKernel> {
        let tr = match algorithm {
            ConvAlgorithm::Winograd2x2 => &F2,
            ConvAlgorithm::Winograd4x4 => &F4,
            _ => return None,
        };
        if !unit_3x3(g) || kernel.len() != 9 * g.c_in * g.c_out {
            return None;
        }
        let (c, k, a2) = (g.c_in, g.c_out, tr.alpha * tr.alpha);
        let packed = par::with_scratch(c * a2 * k, |u: &mut [f32]| {
            transform_kernel(tr, g, kernel, u, par::threads() > 1 && c * k >= 1 << 12);
            OwnedPackedBs::new(&u_matrices(tr, g, u))
        });
        Some(WinogradKernel { tr, c_in: g.c_in, c_out: g.c_out, packed })
    }

    /// Bytes it holds.
    pub fn bytes(&self) -> usize {
        self.packed.bytes()
    }
}

/// The algorithm for `g` when its kernel can be transformed once and kept
/// ([`WinogradKernel`]): `Winograd2x2` or `Winograd4x4` where that is expected to beat the
/// direct convolution without the per-call kernel transform (or is forced by
/// [`set_conv_algorithm`] / `TLX_CONV_WINOGRAD`), else `Direct`.
pub(super) fn kept_kernel_algorithm(g: &Conv2dGeometry) -> ConvAlgorithm {
    match choose_for(g, &Tuning::new(), true) {
        Some(tr) if tr.m == 4 => ConvAlgorithm::Winograd4x4,
        Some(_) => ConvAlgorithm::Winograd2x2,
        None => ConvAlgorithm::Direct,
    }
}

/// [`forward`] with a kept kernel; panics unless `wk` was made for `g`'s channels and `g`
/// is a 3×3 stride-1 ungrouped convolution.
pub(super) fn forward_kept(
    wk: &WinogradKernel,
    g: &Conv2dGeometry,
    input: &[f32],
    ep: Option<&Epilogue<'_, f32>>,
    out: &mut [f32],
    t: &Tuning,
) {
    assert!(
        unit_3x3(g) && (g.c_in, g.c_out) == (wk.c_in, wk.c_out),
        "conv2d_forward_fused_kept: {wk:?} does not fit geometry {g:?}"
    );
    run_blocks(wk.tr, g, &wk.packed.views(), input, None, ep, out, t)
}

/// The input gradient of `g` as a forward convolution that Winograd can run, with the
/// transform to run it with: `grad_input[y, x, c] = Σ grad_out[y + p − a, x + p − b, k] ·
/// w[a, b, c, k]` is the correlation of `grad_out` `[n, out_h, out_w, c_out]` with the kernel
/// turned by 180° and its channel axes swapped (`[3, 3, c_out, c_in]`), padded by `2 − pad`
/// on each side (so pads above 2 do not qualify). `None` where that does not apply or the
/// cost model prefers the direct path.
pub(super) fn backward_input_plan(
    g: &Conv2dGeometry,
    t: &Tuning,
) -> Option<(&'static Transform, Conv2dGeometry)> {
    if !unit_3x3(g) || [g.pad_top, g.pad_bottom, g.pad_left, g.pad_right].iter().any(|&p| p > 2) {
        return None;
    }
    let padding = Padding::Explicit {
        top: 2 - g.pad_top,
        bottom: 2 - g.pad_bottom,
        left: 2 - g.pad_left,
        right: 2 - g.pad_right,
    };
    let shape = [g.n, g.out_h, g.out_w, g.c_out];
    let bg = Conv2dGeometry::new(&shape, &[3, 3, g.c_out, g.c_in], (1, 1), (1, 1), padding, 1).ok()?;
    debug_assert_eq!((bg.out_h, bg.out_w), (g.h, g.w));
    choose(&bg, t).map(|tr| (tr, bg))
}

/// `grad_input` `[n, h, w, c_in]` (overwritten) of `g` from `grad_out` through
/// [`backward_input_plan`]'s forward convolution `bg`.
pub(super) fn backward_input(
    tr: &Transform,
    g: &Conv2dGeometry,
    bg: &Conv2dGeometry,
    grad_out: &[f32],
    kernel: &[f32],
    grad_input: &mut [f32],
    t: &Tuning,
) {
    let (c, k) = (g.c_in, g.c_out);
    par::with_scratch(9 * c * k, |turned: &mut [f32]| {
        // turned[a][b][kk][cc] = kernel[2 − a][2 − b][cc][kk]
        for (ab, dst) in turned.chunks_exact_mut(c * k).enumerate() {
            let src = &kernel[(8 - ab) * c * k..][..c * k];
            for (kk, row) in dst.chunks_exact_mut(c).enumerate() {
                for (cc, v) in row.iter_mut().enumerate() {
                    *v = src[cc * k + kk];
                }
            }
        }
        forward(tr, bg, grad_out, turned, None, None, grad_input, t);
    })
}

/// How the tiles are cut into blocks.
#[derive(Debug)]
struct BlockPlan {
    /// Tiles per block (the last block may have fewer).
    tiles: usize,
    /// Number of blocks.
    blocks: usize,
    /// Tiles in all.
    total: usize,
}

impl BlockPlan {
    /// Blocks of at most `BLOCK_BYTES` of `V` and `M` (`tile_bytes` per tile), at least 12
    /// tiles (two micro-kernel strips), in a multiple of `threads` where there are enough;
    /// up to `TASKS_PER_THREAD` blocks per thread (taken as threads come free) where each
    /// still has `TALL_BLOCK` tiles.
    fn new(total: usize, tile_bytes: usize, threads: usize) -> BlockPlan {
        let most = (BLOCK_BYTES / tile_bytes.max(1)).max(12);
        let finer = if threads > 1 { (total / TALL_BLOCK).min(threads * TASKS_PER_THREAD) } else { 1 };
        let blocks = (threads * total.div_ceil(threads * most)).max(finer);
        let tiles = total.div_ceil(blocks.max(1)).max(1);
        BlockPlan { tiles, blocks: total.div_ceil(tiles), total }
    }
}

/// One block's work: everything it reads and where it writes.
struct Block<'a> {
    tr: &'a Transform,
    g: &'a Conv2dGeometry,
    plan: &'a BlockPlan,
    ldv: usize,
    ldm: usize,
    packed: &'a [PackedB<'a>],
    bias: Option<&'a [f32]>,
    ep: Option<&'a Epilogue<'a, f32>>,
    out: &'a SharedMut<f32>,
}

impl Block<'_> {
    /// Image, tile row and tile column of tile `t`.
    fn position(&self, t: usize) -> (usize, usize, usize) {
        let (tiles_y, tiles_x) = self.tr.tile_grid(self.g);
        let (img, r) = (t / (tiles_y * tiles_x), t % (tiles_y * tiles_x));
        (img, r / tiles_x, r % tiles_x)
    }

    /// Transforms, multiplies and writes out block `block` (`scratch`: V, then M).
    fn run(&self, block: usize, input: &[f32], scratch: &mut [f32]) {
        let (tb, a2) = (self.plan.tiles, self.tr.alpha * self.tr.alpha);
        let t0 = block * tb;
        let rows = tb.min(self.plan.total - t0);
        let (v, mm) = scratch.split_at_mut(a2 * tb * self.ldv);
        // V [ξ][tile][c]
        self.transform_inputs(input, t0, rows, v);
        // M_ξ [tile, k] = V_ξ [tile, c] × U_ξ [c, k]
        for (xi, packed) in self.packed.iter().enumerate() {
            let a = MatRef {
                data: &v[xi * tb * self.ldv..],
                rows,
                cols: self.g.c_in,
                row_stride: self.ldv,
                col_stride: 1,
            };
            gemm_packed_serial(1.0, a, packed, 0.0, &mut mm[xi * tb * self.ldm..], self.ldm);
        }
        // y = Aᵀ M A, then the bias or the epilogue on each finished pixel.
        self.transform_outputs(t0, rows, mm);
    }

    /// [`Self::inputs`] compiled for the widest vectors this CPU has.
    fn transform_inputs(&self, input: &[f32], t0: usize, rows: usize, v: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            // Safety of both copies: callable only where the CPU has the enabled features.
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512(job: &Block<'_>, input: &[f32], t0: usize, rows: usize, v: &mut [f32]) {
                job.inputs::<16, true>(input, t0, rows, v)
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(job: &Block<'_>, input: &[f32], t0: usize, rows: usize, v: &mut [f32]) {
                job.inputs::<8, true>(input, t0, rows, v)
            }
            if crate::simd::has_avx512() {
                // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked at run time).
                return unsafe { avx512(self, input, t0, rows, v) };
            }
            if crate::simd::has_avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                return unsafe { avx2(self, input, t0, rows, v) };
            }
        }
        self.inputs::<8, false>(input, t0, rows, v)
    }

    /// [`Self::outputs`] compiled for the widest vectors this CPU has.
    fn transform_outputs(&self, t0: usize, rows: usize, mm: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            // Safety of both copies: callable only where the CPU has the enabled features.
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn avx512(job: &Block<'_>, t0: usize, rows: usize, mm: &[f32]) {
                job.outputs::<16, true>(t0, rows, mm)
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2(job: &Block<'_>, t0: usize, rows: usize, mm: &[f32]) {
                job.outputs::<8, true>(t0, rows, mm)
            }
            if crate::simd::has_avx512() {
                // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked at run time).
                return unsafe { avx512(self, t0, rows, mm) };
            }
            if crate::simd::has_avx2_fma() {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                return unsafe { avx2(self, t0, rows, mm) };
            }
        }
        self.outputs::<8, false>(t0, rows, mm)
    }

    /// `V` `[ξ][tile][c]` (row stride `ldv`) of tiles `t0..t0+rows`, `L` channels at a time.
    #[inline(always)]
    fn inputs<const L: usize, const FMA: bool>(&self, input: &[f32], t0: usize, rows: usize, v: &mut [f32]) {
        let (g, tr) = (self.g, self.tr);
        let (a, c, xs) = (tr.alpha, g.c_in, self.plan.tiles * self.ldv);
        for tl in 0..rows {
            let (img, ty, tx) = self.position(t0 + tl);
            let y0 = (ty * tr.m) as isize - g.pad_top as isize;
            let x0 = (tx * tr.m) as isize - g.pad_left as isize;
            // Where the patch's pixels start in `input` (None: padding), [y·α + x].
            let mut offs = [None; 36];
            for y in 0..a {
                for x in 0..a {
                    let (yy, xx) = (y0 + y as isize, x0 + x as isize);
                    if yy >= 0 && xx >= 0 && (yy as usize) < g.h && (xx as usize) < g.w {
                        offs[y * a + x] = Some(((img * g.h + yy as usize) * g.w + xx as usize) * c);
                    }
                }
            }
            let dst = &mut v[tl * self.ldv..];
            let mut c0 = 0;
            while c0 + L <= c {
                input_lanes::<L, FMA>(tr, input, &offs, c0, dst, xs);
                c0 += L;
            }
            for c0 in c0..c {
                input_lanes::<1, FMA>(tr, input, &offs, c0, dst, xs);
            }
        }
    }

    /// The outputs of tiles `t0..t0+rows` from `M` `[ξ][tile][k]` (row stride `ldm`), `L`
    /// channels at a time, then the bias or epilogue per pixel.
    #[inline(always)]
    fn outputs<const L: usize, const FMA: bool>(&self, t0: usize, rows: usize, mm: &[f32]) {
        let (g, m) = (self.g, self.tr.m);
        let (k, xs) = (g.c_out, self.plan.tiles * self.ldm);
        for tl in 0..rows {
            let (img, ty, tx) = self.position(t0 + tl);
            // The tile's output pixels and their rows (None: past the image's edge), [i·m + j].
            let mut px: [Option<(usize, &mut [f32])>; 16] = Default::default();
            for i in 0..m {
                for j in 0..m {
                    let (oy, ox) = (ty * m + i, tx * m + j);
                    if oy < g.out_h && ox < g.out_w {
                        let p = (img * g.out_h + oy) * g.out_w + ox;
                        // SAFETY: tiles cover disjoint output pixels and each block holds its
                        // own tiles, so no other task writes this row; `out` wraps the
                        // caller's output slice, borrowed for the whole call.
                        px[i * m + j] = Some((p, unsafe { self.out.range_mut(p * k, (p + 1) * k) }));
                    }
                }
            }
            let src = &mm[tl * self.ldm..];
            let mut k0 = 0;
            while k0 + L <= k {
                output_lanes::<L, FMA>(self.tr, src, xs, k0, &mut px);
                k0 += L;
            }
            for k0 in k0..k {
                output_lanes::<1, FMA>(self.tr, src, xs, k0, &mut px);
            }
            for (p, row) in px.iter_mut().flatten() {
                if let Some(b) = self.bias {
                    row.iter_mut().zip(b).for_each(|(y, &b)| *y += b);
                }
                if let Some(ep) = self.ep {
                    ep.apply(row, k, *p);
                }
            }
        }
    }
}

/// `V[ξ][c0..c0+L]` (at `v[ξ·xs + c0]`) of one tile whose pixel (y, x) starts at
/// `offs[y·α + x]` in `input`.
#[inline(always)]
fn input_lanes<const L: usize, const FMA: bool>(
    tr: &Transform,
    input: &[f32],
    offs: &[Option<usize>; 36],
    c0: usize,
    v: &mut [f32],
    xs: usize,
) {
    let load = |o: Option<usize>| -> tiles::Lanes<L> {
        o.map_or([0.0; L], |o| input[o + c0..][..L].try_into().expect("L lanes"))
    };
    let put = |xi: usize, val: tiles::Lanes<L>| v[xi * xs + c0..][..L].copy_from_slice(&val);
    if tr.m == 4 {
        tiles::input4::<L, FMA>(|y, x| load(offs[y * 6 + x]), put);
    } else {
        tiles::input2::<L>(|y, x| load(offs[y * 4 + x]), put);
    }
}

/// Output channels `k0..k0+L` of one tile from `M[ξ]` at `mm[ξ·xs + k0]` into its pixel rows.
#[inline(always)]
fn output_lanes<const L: usize, const FMA: bool>(
    tr: &Transform,
    mm: &[f32],
    xs: usize,
    k0: usize,
    px: &mut [Option<(usize, &mut [f32])>; 16],
) {
    let get = |xi: usize| -> tiles::Lanes<L> { mm[xi * xs + k0..][..L].try_into().expect("L lanes") };
    let m = tr.m;
    let put = |i: usize, j: usize, y: tiles::Lanes<L>| {
        if let Some((_, row)) = &mut px[i * m + j] {
            row[k0..k0 + L].copy_from_slice(&y);
        }
    };
    if m == 4 {
        tiles::output4::<L, FMA>(get, put);
    } else {
        tiles::output2::<L>(get, put);
    }
}

/// `u` `[c][ξ][k]` ← G·g·Gᵀ for every kernel slice `g[·][·][ci][ki]`, in f64, rounded once.
fn transform_kernel(tr: &Transform, g: &Conv2dGeometry, kernel: &[f32], u: &mut [f32], parallel: bool) {
    let (a, c, k) = (tr.alpha, g.c_in, g.c_out);
    // One input channel: Gg [i][b][k] = Σ_r G[i][r]·g[r][b], then U[i][j] = Σ_b Gg[i][b]·G[j][b].
    let one = |gg: &mut Vec<f64>, (ci, uc): (usize, &mut [f32])| {
        gg.resize(a * 3 * k + k, 0.0);
        let (gg, acc) = gg.split_at_mut(a * 3 * k);
        for i in 0..a {
            for b in 0..3 {
                let dst = &mut gg[(i * 3 + b) * k..][..k];
                dst.fill(0.0);
                for r in 0..3 {
                    let coef = tr.g[i * 3 + r];
                    let src = &kernel[((r * 3 + b) * c + ci) * k..][..k];
                    dst.iter_mut().zip(src).for_each(|(d, &s)| *d += coef * f64::from(s));
                }
            }
        }
        for i in 0..a {
            for j in 0..a {
                acc.fill(0.0);
                for b in 0..3 {
                    let coef = tr.g[j * 3 + b];
                    acc.iter_mut().zip(&gg[(i * 3 + b) * k..][..k]).for_each(|(d, &s)| *d += coef * s);
                }
                let dst = &mut uc[(i * a + j) * k..][..k];
                dst.iter_mut().zip(&*acc).for_each(|(d, &s)| *d = s as f32);
            }
        }
    };
    let rows = u[..c * a * a * k].chunks_mut(a * a * k).enumerate();
    if parallel {
        rows.collect::<Vec<_>>().into_par_iter().for_each_init(Vec::new, one);
    } else {
        let mut gg = Vec::new();
        rows.for_each(|r| one(&mut gg, r));
    }
}
