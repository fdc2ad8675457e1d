//! Convolution launchers (`kernels/conv.cu` + cuBLAS), mirroring `tlx_cpu::conv`: NHWC input
//! `[n, h, w, c_in]`, HWIO kernels `[kh, kw, c_in/groups, c_out]`, described by
//! `tlx_core::Conv2dGeometry`.
//!
//! Paths, picked per call as on the CPU:
//! - depthwise (`groups == c_in > 1`): direct kernels (forward, gathered input gradient, kernel
//!   gradient as split partial sums added in order);
//! - 1×1 stride-1 unpadded ungrouped: one GEMM on `[n·h·w, c_in]` (no im2col);
//! - everything else: im2col of a tile of output rows into `col [rows, K]`
//!   (`K = kh·kw·cig`), times the group's kernel seen as `[K, cog]` (row stride `c_out`) by
//!   cuBLAS straight into the NHWC output; the input gradient is `col = dY·Wᵀ` (GEMM) then
//!   col2im over tiles of whole images; the kernel gradient is `Σ_tiles colᵀ·dY` (GEMM with
//!   β = 1 after the first tile). Tiles keep `col` under [`COL_BUDGET`] elements.
//!
//! All of it is deterministic (no atomics). GEMMs run in f32, or TF32 when the context allows
//! it ([`crate::CudaContext::set_allow_tf32`]).

use super::{check_len, exact, exact_opt, grid, grid_2d, split, to_i32, TARGET_THREADS};
use crate::blas::{sgemm, Mat, MatMut};
use crate::buffer::DeviceBuf;
use crate::context::{CudaContext, KernelArgs};
use crate::error::Result;
use std::ops::Range;
use tlx_core::{Conv2dGeometry, Layout};

const FILE: &str = "conv.cu";

/// Most elements of the im2col buffer (64 MiB of f32); a tile never has fewer than one row
/// (forward, kernel gradient) or one image (input gradient).
pub const COL_BUDGET: usize = 1 << 24;

/// `ConvGeom` of conv.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ConvGeom {
    n: i32,
    h: i32,
    w: i32,
    c_in: i32,
    kh: i32,
    kw: i32,
    c_out: i32,
    groups: i32,
    stride_h: i32,
    stride_w: i32,
    dil_h: i32,
    dil_w: i32,
    pad_top: i32,
    pad_left: i32,
    out_h: i32,
    out_w: i32,
}

impl ConvGeom {
    fn new(op: &'static str, g: &Conv2dGeometry) -> Result<ConvGeom> {
        let i = |what: &str, v: usize| to_i32(op, what, v);
        Ok(ConvGeom {
            n: i("batch", g.n)?,
            h: i("height", g.h)?,
            w: i("width", g.w)?,
            c_in: i("input channels", g.c_in)?,
            kh: i("kernel height", g.kh)?,
            kw: i("kernel width", g.kw)?,
            c_out: i("output channels", g.c_out)?,
            groups: i("groups", g.groups)?,
            stride_h: i("stride", g.stride_h)?,
            stride_w: i("stride", g.stride_w)?,
            dil_h: i("dilation", g.dilation_h)?,
            dil_w: i("dilation", g.dilation_w)?,
            pad_top: i("padding", g.pad_top)?,
            pad_left: i("padding", g.pad_left)?,
            out_h: i("output height", g.out_h)?,
            out_w: i("output width", g.out_w)?,
        })
    }
}

fn numel(s: [usize; 4]) -> usize {
    s.iter().product()
}

/// `col [rows, K]` = the patches of the output rows `tile` (`rows = tile.len()`) for group
/// `grp`.
fn im2col(
    ctx: &CudaContext,
    geom: ConvGeom,
    input: u64,
    col: &mut DeviceBuf<f32>,
    grp: usize,
    tile: Range<usize>,
    k: usize,
) -> Result<()> {
    let (r0, rows) = (tile.start, tile.len());
    let pc = col.arg(ctx, "im2col", "col", rows * k)?;
    let mut a = KernelArgs::new();
    a.ptr(input).ptr(pc).val(geom).val(grp as i32).val(r0 as i64).val(rows as i64);
    // SAFETY: im2col_f32(const float* x, float* col, ConvGeom, int grp, i64 r0, i64 rows):
    // reads input elements of images < n at (iy, ix) inside [h, w] and channels of group grp
    // (the caller checked input holds n·h·w·c_in), writes col[0..rows·K) (checked above).
    unsafe { ctx.launch(FILE, "im2col_f32", grid(rows * k), &a) }
}

/// Forward convolution: `out[n, oy, ox, o] = bias[o] + Σ input·kernel` (see
/// `tlx_cpu::reference::conv2d_forward`). `input` `[n, h, w, c_in]`, `kernel`
/// `[kh, kw, c_in/groups, c_out]`, `bias` `[c_out]`, `out` `[n, out_h, out_w, c_out]`
/// (overwritten).
pub fn conv2d_forward(
    g: &Conv2dGeometry,
    input: &DeviceBuf<f32>,
    kernel: &DeviceBuf<f32>,
    bias: Option<&DeviceBuf<f32>>,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "conv2d_forward";
    let ctx = out.context().clone();
    let geom = ConvGeom::new(OP, g)?;
    let px = exact(&ctx, OP, "input", input, numel(g.input_shape()))?;
    let pk = exact(&ctx, OP, "kernel", kernel, numel(g.kernel_shape()))?;
    let pb = exact_opt(&ctx, OP, "bias", bias, g.c_out)?;
    exact(&ctx, OP, "out", out, numel(g.output_shape()))?;
    if out.is_empty() {
        return Ok(());
    }
    let k = g.kh * g.kw * g.c_in_per_group();
    if g.is_depthwise() {
        let mut a = KernelArgs::new();
        a.ptr(px).ptr(pk).ptr(pb).ptr(out.ptr()).val(geom);
        // SAFETY: depthwise_forward_f32(x, k, bias, out, ConvGeom): x, kernel, bias (null or
        // c_out) and out hold exactly the geometry's sizes (checked above); reads stay inside
        // [h, w] and the kernel's [kh, kw, 1, c_out].
        return unsafe { ctx.launch(FILE, "depthwise_forward_f32", grid(out.len()), &a) };
    }
    match bias {
        Some(b) => super::elementwise::add_row_vector(out, b, false)?,
        None if k == 0 => out.zero()?,
        None => {}
    }
    if k == 0 {
        return Ok(());
    }
    let beta = if bias.is_some() { 1.0 } else { 0.0 };
    if g.is_pointwise() {
        // [n·h·w, c_in] × [c_in, c_out] → [n·h·w, c_out]
        let m = g.n * g.h * g.w;
        let (c_in, c_out) = (g.c_in, g.c_out);
        return sgemm(
            &ctx,
            1.0,
            Mat::row_major(input, m, c_in),
            Mat::row_major(kernel, c_in, c_out),
            beta,
            MatMut::row_major(out, m, c_out),
        );
    }
    let rows_total = g.n * g.out_h * g.out_w;
    let tile = (COL_BUDGET / k).clamp(1, rows_total);
    let mut col = ctx.alloc::<f32>(tile * k)?;
    let (cog, c_out) = (g.c_out_per_group(), g.c_out);
    for r0 in (0..rows_total).step_by(tile) {
        let rows = tile.min(rows_total - r0);
        for grp in 0..g.groups {
            im2col(&ctx, geom, px, &mut col, grp, r0..r0 + rows, k)?;
            // [rows, K] × [K, cog] (the group's columns of the kernel) → out rows, group columns.
            let a = Mat::row_major(&col, rows, k);
            let w = Mat { buf: kernel, offset: grp * cog, rows: k, cols: cog, ld: c_out, trans: false };
            let c = MatMut { buf: &mut *out, offset: r0 * c_out + grp * cog, rows, cols: cog, ld: c_out };
            sgemm(&ctx, 1.0, a, w, beta, c)?;
        }
    }
    Ok(())
}

/// Gradient with respect to the input (overwrites `grad_input` `[n, h, w, c_in]`) from
/// `grad_out` `[n, out_h, out_w, c_out]` and `kernel`.
pub fn conv2d_backward_input(
    g: &Conv2dGeometry,
    grad_out: &DeviceBuf<f32>,
    kernel: &DeviceBuf<f32>,
    grad_input: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "conv2d_backward_input";
    let ctx = grad_input.context().clone();
    let geom = ConvGeom::new(OP, g)?;
    let pd = exact(&ctx, OP, "grad_out", grad_out, numel(g.output_shape()))?;
    let pk = exact(&ctx, OP, "kernel", kernel, numel(g.kernel_shape()))?;
    let pi = exact(&ctx, OP, "grad_input", grad_input, numel(g.input_shape()))?;
    if grad_input.is_empty() {
        return Ok(());
    }
    if grad_out.is_empty() || kernel.is_empty() {
        return grad_input.zero();
    }
    if g.is_depthwise() {
        let mut a = KernelArgs::new();
        a.ptr(pd).ptr(pk).ptr(pi).val(geom);
        // SAFETY: depthwise_backward_input_f32(dy, k, grad_in, ConvGeom): every buffer has the
        // geometry's size (checked); each thread writes its own grad_in element.
        return unsafe { ctx.launch(FILE, "depthwise_backward_input_f32", grid(grad_input.len()), &a) };
    }
    if g.is_pointwise() {
        // [n·h·w, c_out] × [c_out, c_in] → [n·h·w, c_in]
        let m = g.n * g.h * g.w;
        let wt = Mat::row_major(kernel, g.c_in, g.c_out).t();
        return sgemm(
            &ctx,
            1.0,
            Mat::row_major(grad_out, m, g.c_out),
            wt,
            0.0,
            MatMut::row_major(grad_input, m, g.c_in),
        );
    }
    let k = g.kh * g.kw * g.c_in_per_group();
    let per_image = g.out_h * g.out_w;
    let imgs_per_tile = (COL_BUDGET / (per_image * k).max(1)).clamp(1, g.n);
    let mut col = ctx.alloc::<f32>(imgs_per_tile * per_image * k)?;
    let (cog, c_out) = (g.c_out_per_group(), g.c_out);
    for img0 in (0..g.n).step_by(imgs_per_tile) {
        let imgs = imgs_per_tile.min(g.n - img0);
        let (r0, rows) = (img0 * per_image, imgs * per_image);
        for grp in 0..g.groups {
            // col [rows, K] = dY[rows, group's cog] × W_gᵀ ([cog, K]).
            let dy = Mat {
                buf: grad_out,
                offset: r0 * c_out + grp * cog,
                rows,
                cols: cog,
                ld: c_out,
                trans: false,
            };
            let wt = Mat { buf: kernel, offset: grp * cog, rows: k, cols: cog, ld: c_out, trans: false }.t();
            sgemm(&ctx, 1.0, dy, wt, 0.0, MatMut::row_major(&mut col, rows, k))?;
            let mut a = KernelArgs::new();
            a.ptr(col.ptr()).ptr(pi).val(geom).val(grp as i32).val(img0 as i64).val(imgs as i64);
            // SAFETY: col2im_f32(const float* col, float* grad_in, ConvGeom, int grp, i64 img0,
            // i64 imgs): reads col[0..rows·K) (col holds at least that: imgs ≤ imgs_per_tile),
            // writes the group's channels of images img0..img0 + imgs of grad_in (n·h·w·c_in
            // elements, checked).
            unsafe { ctx.launch(FILE, "col2im_f32", grid(imgs * g.h * g.w * g.c_in_per_group()), &a)? };
        }
    }
    Ok(())
}

/// Gradient with respect to the kernel (overwrites `grad_kernel` `[kh, kw, c_in/groups,
/// c_out]`) from `input` and `grad_out`.
pub fn conv2d_backward_kernel(
    g: &Conv2dGeometry,
    input: &DeviceBuf<f32>,
    grad_out: &DeviceBuf<f32>,
    grad_kernel: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "conv2d_backward_kernel";
    let ctx = grad_kernel.context().clone();
    let geom = ConvGeom::new(OP, g)?;
    let px = exact(&ctx, OP, "input", input, numel(g.input_shape()))?;
    let pd = exact(&ctx, OP, "grad_out", grad_out, numel(g.output_shape()))?;
    let pk = exact(&ctx, OP, "grad_kernel", grad_kernel, numel(g.kernel_shape()))?;
    if grad_kernel.is_empty() {
        return Ok(());
    }
    if grad_out.is_empty() {
        return grad_kernel.zero();
    }
    if g.is_depthwise() {
        let kn = grad_kernel.len();
        let q_total = g.n * g.out_h * g.out_w;
        let (splits, run) = split(q_total, TARGET_THREADS / kn, 32);
        let partial = if splits > 1 { Some(ctx.alloc::<f32>(splits * kn)?) } else { None };
        let dst = partial.as_ref().map_or(pk, |p| p.ptr());
        let mut a = KernelArgs::new();
        a.ptr(px).ptr(pd).ptr(dst).val(geom).val(run as i64);
        // SAFETY: depthwise_backward_kernel_partial_f32(x, dy, partial, ConvGeom, i64 split_len)
        // with grid (⌈kn/256⌉, splits): writes partial[s·kn + e] for s < splits, e < kn — dst
        // holds splits·kn elements (grad_kernel itself when splits = 1); reads x and dy within
        // the geometry's sizes (checked).
        unsafe {
            ctx.launch(
                FILE,
                "depthwise_backward_kernel_partial_f32",
                grid_2d(kn.div_ceil(256), splits, 256),
                &a,
            )?
        };
        if let Some(p) = partial {
            let mut a = KernelArgs::new();
            a.ptr(p.ptr()).ptr(pk).val(kn as i64).val(splits as i32);
            // SAFETY: sum_columns_f32(const float* partial, float* out, i64 len, int splits)
            // reads partial[0..splits·kn) and writes grad_kernel[0..kn).
            unsafe { ctx.launch(FILE, "sum_columns_f32", grid(kn), &a)? };
        }
        return Ok(());
    }
    if g.is_pointwise() {
        // [c_in, n·h·w] × [n·h·w, c_out] → [c_in, c_out]
        let m = g.n * g.h * g.w;
        let xt = Mat::row_major(input, m, g.c_in).t();
        return sgemm(
            &ctx,
            1.0,
            xt,
            Mat::row_major(grad_out, m, g.c_out),
            0.0,
            MatMut::row_major(grad_kernel, g.c_in, g.c_out),
        );
    }
    let k = g.kh * g.kw * g.c_in_per_group();
    let rows_total = g.n * g.out_h * g.out_w;
    let tile = (COL_BUDGET / k).clamp(1, rows_total);
    let mut col = ctx.alloc::<f32>(tile * k)?;
    let (cog, c_out) = (g.c_out_per_group(), g.c_out);
    for (t, r0) in (0..rows_total).step_by(tile).enumerate() {
        let rows = tile.min(rows_total - r0);
        let beta = if t == 0 { 0.0 } else { 1.0 };
        for grp in 0..g.groups {
            im2col(&ctx, geom, px, &mut col, grp, r0..r0 + rows, k)?;
            // dW_g [K, cog] (+)= colᵀ [K, rows] × dY [rows, group's cog].
            let colt = Mat::row_major(&col, rows, k).t();
            let dy = Mat {
                buf: grad_out,
                offset: r0 * c_out + grp * cog,
                rows,
                cols: cog,
                ld: c_out,
                trans: false,
            };
            let dw = MatMut { buf: &mut *grad_kernel, offset: grp * cog, rows: k, cols: cog, ld: c_out };
            sgemm(&ctx, 1.0, colt, dy, beta, dw)?;
        }
    }
    Ok(())
}

/// The bias gradient of a convolution or dense layer: `grad_bias[c] = Σ_r grad_out[r, c]`
/// over `grad_out` seen as `[rows, c]` (a leading-axes sum).
pub fn bias_backward(grad_out: &DeviceBuf<f32>, grad_bias: &mut DeviceBuf<f32>) -> Result<()> {
    const OP: &str = "bias_backward";
    let c = grad_bias.len();
    if c == 0 {
        return Ok(());
    }
    let rows = grad_out.len() / c;
    check_len(OP, "grad_out", grad_out.len(), rows * c)?;
    let layout = Layout::contiguous([rows, c]);
    super::reduce::reduce(super::reduce::ReduceOp::Sum, grad_out, &layout, &[0], grad_bias)
}
