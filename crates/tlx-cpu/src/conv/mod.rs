//! Convolution kernels on NHWC input `[n, h, w, c_in]` and HWIO kernels
//! `[kh, kw, c_in/groups, c_out]`, described by `tlx_core::Conv2dGeometry`.
//!
//! The paths, picked per call:
//! - 1×1 stride-1 unpadded ungrouped convolutions are one plain GEMM on `[n·h·w, c_in]`
//!   (no im2col);
//! - depthwise convolutions (`groups == c_in`) run direct loops vectorised over channels
//!   (`depthwise`);
//! - ungrouped convolutions with short patches (`kh·kw·c_in` ≤ 64, VGG's first layer) build
//!   one output row of patches at a time and multiply them by the kernel with a
//!   register-blocked loop (`small_k`);
//! - the forward pass and the input gradient of 3×3 stride-1 ungrouped f32 convolutions run
//!   as Winograd F(4×4, 3×3) or F(2×2, 3×3) where a cost model expects it to be faster
//!   (`winograd`; [`set_conv_algorithm`] overrides the choice);
//! - everything else goes through im2col into bounded tiles of output rows times the kernel
//!   seen as `[kh·kw·cig, c_out]` (`gemm_conv`), one GEMM per group, which gives NHWC output
//!   directly; the backward passes use the same tiles (col2im scatter for the input gradient,
//!   im2colᵀ × grad_out accumulated over tiles for the kernel gradient). Ungrouped f32
//!   forward passes skip the column buffer: the GEMM reads each patch where it lies in the
//!   input, or in a zero-padded copy of it (`gemm::Patches`, `padded`; ResNet50's stem and
//!   strided 1×1 convolutions). The input gradient of strided or padded 1×1 convolutions
//!   writes each input pixel once instead of zeroing and scatter-adding (`strided_1x1`).
//!
//! Work above `crate::PARALLEL_THRESHOLD` multiply-adds runs on the rayon pool.
//!
//! Inference runs [`conv2d_forward_fused`]: the same paths with an [`Epilogue`] (a folded
//! BatchNormalization, a residual and a ReLU) applied as the output is computed instead of
//! more passes over it: by the SGEMM micro-kernel in registers before it stores each tile
//! (`gemm::OutputOps`; ungrouped f32 im2col and 1×1 convolutions), or to each output tile,
//! row or Winograd pixel while it is in cache.

mod depthwise;
mod epilogue;
mod gemm_conv;
mod im2col;
mod kept;
mod padded;
mod small_k;
mod strided_1x1;
#[cfg(test)]
mod tests;
mod winograd;
#[cfg(test)]
mod winograd_tests;
mod winograd_tiles;

use crate::gemm::{gemm, MatRef};
pub use epilogue::{Epilogue, EpilogueAct};
pub use kept::{conv2d_forward_fused_kept, conv2d_forward_fused_kept_over_residual, KeptKernel};
use tlx_core::{Conv2dGeometry, DType, Float};
pub use winograd::{set_conv_algorithm, ConvAlgorithm, WinogradKernel};

/// Knobs of the tiling and threading decisions (tests shrink them to reach every path on
/// small shapes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    /// Elements of column buffer one task aims for (a bound, not a floor: see `min_tile_rows`).
    pub col_budget: usize,
    /// Fewest output rows per GEMM: each product packs the whole kernel, a cost of about
    /// `1/rows` of the arithmetic.
    pub min_tile_rows: usize,
    /// Multiply-adds below which a call stays on the calling thread.
    pub parallel_threshold: usize,
    /// Largest kernel (elements) for which the kernel gradient keeps one partial sum per
    /// task; larger kernels accumulate tile after tile with a parallel GEMM instead.
    pub partial_limit: usize,
    /// Threads of the pool.
    pub threads: usize,
    /// Whether 3×3 stride-1 f32 forward convolutions run through Winograd.
    pub winograd: winograd::Choice,
    /// Whether unpadded f32 forward convolutions through the GEMM read their patches where
    /// they lie in the input (implicit im2col, `gemm::Patches`) instead of copying them
    /// into a column buffer first. On unless `TLX_CONV_IM2COL=1` (for benchmarks).
    pub patches_in_place: bool,
}

impl Tuning {
    /// The tuning used by the public entry points.
    pub(crate) fn new() -> Self {
        Tuning {
            col_budget: 1 << 16,
            min_tile_rows: 512,
            parallel_threshold: crate::PARALLEL_THRESHOLD,
            partial_limit: 1 << 23,
            threads: crate::par::threads(),
            winograd: winograd::default_choice(),
            patches_in_place: patches_in_place_default(),
        }
    }

    /// Whether `work` multiply-adds are worth splitting across threads.
    fn parallel(&self, work: usize) -> bool {
        self.threads > 1 && work >= self.parallel_threshold
    }
}

/// `Tuning::patches_in_place` of the public entry points (read once).
fn patches_in_place_default() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("TLX_CONV_IM2COL").as_deref() != Ok("1"))
}

fn check_sizes(op: &str, g: &Conv2dGeometry, input: usize, kernel: usize, out: usize) {
    let numel = |s: [usize; 4]| s.iter().product::<usize>();
    assert!(
        input == numel(g.input_shape())
            && kernel == numel(g.kernel_shape())
            && out == numel(g.output_shape()),
        "{op}: slice sizes ({input}, {kernel}, {out}) do not match geometry {g:?}"
    );
}

/// Forward convolution; see `reference::conv2d_forward` for the definition.
/// `input` `[n, h, w, c_in]`, `kernel` `[kh, kw, c_in/groups, c_out]`, `bias` `[c_out]`,
/// `out` `[n, out_h, out_w, c_out]` (overwritten).
pub fn conv2d_forward<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    kernel: &[T],
    bias: Option<&[T]>,
    out: &mut [T],
) {
    forward_with(g, input, kernel, bias, None, out, &Tuning::new())
}

/// The convolution without bias followed by `ep` (bias, scale, shift, activation) per output
/// channel, applied tile by tile: bit-identical to the convolution and then each step as a
/// separate pass over the output.
pub fn conv2d_forward_fused<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    kernel: &[T],
    ep: &Epilogue<'_, T>,
    out: &mut [T],
) {
    ep.check(g.c_out, out.len());
    let ep = (!ep.is_identity()).then_some(ep);
    forward_with(g, input, kernel, None, ep, out, &Tuning::new())
}

/// Gradient with respect to the input (overwrites `grad_input`).
pub fn conv2d_backward_input<T: Float>(
    g: &Conv2dGeometry,
    grad_out: &[T],
    kernel: &[T],
    grad_input: &mut [T],
) {
    backward_input_with(g, grad_out, kernel, grad_input, &Tuning::new())
}

/// Gradient with respect to the kernel (overwrites `grad_kernel`).
pub fn conv2d_backward_kernel<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    grad_out: &[T],
    grad_kernel: &mut [T],
) {
    backward_kernel_with(g, input, grad_out, grad_kernel, &Tuning::new())
}

/// An f32 slice seen as f32 (T is f32 wherever this is called).
fn f32s<T: Float>(x: &[T]) -> &[f32] {
    bytemuck::cast_slice(x)
}

/// Writes the bias (or zeros) into every `[c_out]` row of `out`.
fn fill_bias<T: Float>(out: &mut [T], c_out: usize, bias: Option<&[T]>) {
    match bias {
        Some(b) => out.chunks_exact_mut(c_out).for_each(|row| row.copy_from_slice(b)),
        None => out.fill(T::zero()),
    }
}

pub(crate) fn forward_with<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    kernel: &[T],
    bias: Option<&[T]>,
    ep: Option<&Epilogue<'_, T>>,
    out: &mut [T],
    t: &Tuning,
) {
    check_sizes("conv2d_forward", g, input.len(), kernel.len(), out.len());
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "conv2d_forward: bias has {} values for {} channels", b.len(), g.c_out);
    }
    if out.is_empty() {
        return;
    }
    if kernel.is_empty() {
        fill_bias(out, g.c_out, bias);
        if let Some(ep) = ep {
            ep.apply(out, g.c_out, 0);
        }
    } else if g.is_depthwise() {
        depthwise::forward(g, input, kernel, bias, ep, out, t);
    } else if g.is_pointwise() && ep.is_some() {
        // In tiles of rows, each finished by the epilogue while in cache.
        gemm_conv::forward(g, input, kernel, bias, ep, out, t);
    } else if g.is_pointwise() {
        // [n·h·w, c_in] × [c_in, c_out] → [n·h·w, c_out]
        let m = g.n * g.h * g.w;
        let beta = if bias.is_some() { T::one() } else { T::zero() };
        if bias.is_some() {
            fill_bias(out, g.c_out, bias);
        }
        let (x, w) = (MatRef::row_major(input, m, g.c_in), MatRef::row_major(kernel, g.c_in, g.c_out));
        gemm(T::one(), x, w, beta, out, g.c_out);
    } else if g.groups == 1 && g.kh * g.kw * g.c_in <= small_k::MAX_K {
        small_k::forward(g, input, kernel, bias, ep, out, t);
    } else if let Some(tr) = winograd::choose(g, t).filter(|_| T::DTYPE == DType::F32) {
        let ep = ep.map(Epilogue::as_f32);
        let out = bytemuck::cast_slice_mut(out);
        winograd::forward(tr, g, f32s(input), f32s(kernel), bias.map(f32s), ep.as_ref(), out, t);
    } else {
        gemm_conv::forward(g, input, kernel, bias, ep, out, t);
    }
}

pub(crate) fn backward_input_with<T: Float>(
    g: &Conv2dGeometry,
    grad_out: &[T],
    kernel: &[T],
    grad_input: &mut [T],
    t: &Tuning,
) {
    check_sizes("conv2d_backward_input", g, grad_input.len(), kernel.len(), grad_out.len());
    if grad_input.is_empty() {
        return;
    }
    if grad_out.is_empty() || kernel.is_empty() {
        crate::par::zero(grad_input);
    } else if g.is_depthwise() {
        depthwise::backward_input(g, grad_out, kernel, grad_input, t);
    } else if let Some((tr, bg)) =
        (T::DTYPE == DType::F32).then(|| winograd::backward_input_plan(g, t)).flatten()
    {
        let out = bytemuck::cast_slice_mut(grad_input);
        winograd::backward_input(tr, g, &bg, f32s(grad_out), f32s(kernel), out, t);
    } else if g.is_pointwise() {
        // [n·h·w, c_out] × [c_out, c_in] → [n·h·w, c_in]
        let m = g.n * g.h * g.w;
        let (dy, wt) =
            (MatRef::row_major(grad_out, m, g.c_out), MatRef::row_major(kernel, g.c_in, g.c_out).t());
        gemm(T::one(), dy, wt, T::zero(), grad_input, g.c_in);
    } else if strided_1x1::applies(g) {
        strided_1x1::backward_input(g, grad_out, kernel, grad_input, t);
    } else {
        gemm_conv::backward_input(g, grad_out, kernel, grad_input, t);
    }
}

pub(crate) fn backward_kernel_with<T: Float>(
    g: &Conv2dGeometry,
    input: &[T],
    grad_out: &[T],
    grad_kernel: &mut [T],
    t: &Tuning,
) {
    check_sizes("conv2d_backward_kernel", g, input.len(), grad_kernel.len(), grad_out.len());
    if grad_kernel.is_empty() {
        return;
    }
    if grad_out.is_empty() {
        grad_kernel.fill(T::zero());
    } else if g.is_depthwise() {
        depthwise::backward_kernel(g, input, grad_out, grad_kernel, t);
    } else if g.is_pointwise() {
        // [c_in, n·h·w] × [n·h·w, c_out] → [c_in, c_out]
        let m = g.n * g.h * g.w;
        let (xt, dy) = (MatRef::row_major(input, m, g.c_in).t(), MatRef::row_major(grad_out, m, g.c_out));
        gemm(T::one(), xt, dy, T::zero(), grad_kernel, g.c_out);
    } else {
        gemm_conv::backward_kernel(g, input, grad_out, grad_kernel, t);
    }
}
