//! Batch-normalization launchers (`kernels/batchnorm.cu`), mirroring `tlx_cpu::norm` and the
//! per-channel arithmetic of `tlx_tensor`'s `batch_norm_train` / `batch_norm_inference` and
//! tlx-nn's moving-statistics update, on channels-last data seen as `[rows, c]`.
//!
//! Sums over rows run as split partial sums in f64 (threads over channels, `blockIdx.y` over
//! runs of rows) added in split order, so results are deterministic and as accurate as the
//! CPU's f64 accumulation.

use super::{check_len, exact, exact_opt, grid, grid_2d, split, to_i32, TARGET_THREADS};
use crate::buffer::DeviceBuf;
use crate::context::{CudaContext, KernelArgs};
use crate::error::{Error, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "batchnorm.cu";

/// Rows of `x` seen as `[rows, c]`, or an error.
fn rows_of(op: &'static str, n: usize, c: usize) -> Result<usize> {
    if c == 0 || n % c != 0 {
        return Err(Error::invalid(op, format!("{n} values are not rows of {c} channels")));
    }
    Ok(n / c)
}

/// The split of `rows` and the launch of a partial-sum kernel over `c` channels.
fn partial_plan(rows: usize, c: usize) -> (usize, usize, LaunchConfig) {
    let (splits, run) = split(rows, TARGET_THREADS / c, 16);
    let threads = c.next_multiple_of(32).min(256);
    (splits, run, grid_2d(c.div_ceil(threads), splits, threads as u32))
}

/// `out_d[j]`/`out_f[j]` = `(Σ_s partial[s, j]) / divisor` over `len` columns.
fn finish(
    ctx: &CudaContext,
    partial: u64,
    out_d: u64,
    out_f: u64,
    len: usize,
    splits: usize,
    divisor: f64,
) -> Result<()> {
    let mut a = KernelArgs::new();
    a.ptr(partial)
        .ptr(out_d)
        .ptr(out_f)
        .val(to_i32("batch_norm", "channels", len)?)
        .val(splits as i32)
        .val(divisor);
    // SAFETY: bn_finish_f64(const double* partial, double* out_d, float* out_f, int len, int
    // splits, double): the callers pass partial with splits·len f64 and outputs (or null) with
    // len elements.
    unsafe { ctx.launch(FILE, "bn_finish_f64", grid(len), &a) }
}

/// Per-channel mean and biased variance of `x` seen as `[rows, c]` (two passes, f64 sums,
/// `tlx_cpu::norm::channel_moments`); `mean`, `var` `[c]`.
pub fn channel_moments(
    x: &DeviceBuf<f32>,
    c: usize,
    mean: &mut DeviceBuf<f32>,
    var: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "channel_moments";
    let ctx = mean.context().clone();
    let rows = rows_of(OP, x.len(), c)?;
    let px = exact(&ctx, OP, "x", x, rows * c)?;
    let pm = exact(&ctx, OP, "mean", mean, c)?;
    let pv = exact(&ctx, OP, "var", var, c)?;
    let ci = to_i32(OP, "channels", c)?;
    let (splits, run, cfg) = partial_plan(rows, c);
    let partial = ctx.alloc::<f64>(splits * c)?;
    let mean_d = ctx.alloc::<f64>(c)?;
    let divisor = rows.max(1) as f64;
    for pass in 0..2 {
        let mut a = KernelArgs::new();
        let centre = if pass == 0 { 0 } else { mean_d.ptr() };
        a.ptr(px).ptr(centre).ptr(partial.ptr()).val(rows as i64).val(ci).val(run as i64);
        // SAFETY: bn_partial_sums_f32(const float* x, const double* mean_d, double* partial,
        // i64 rows, int c, i64 split_rows) with grid y = splits (splits·run ≥ rows): reads
        // x[0..rows·c), mean_d (null, then c f64 written by the first finish), writes
        // partial[0..splits·c).
        unsafe { ctx.launch(FILE, "bn_partial_sums_f32", cfg, &a)? };
        if pass == 0 {
            finish(&ctx, partial.ptr(), mean_d.ptr(), pm, c, splits, divisor)?;
        } else {
            finish(&ctx, partial.ptr(), 0, pv, c, splits, divisor)?;
        }
    }
    Ok(())
}

/// `out[r, ch] = x[r, ch]·scale[ch] + shift[ch]` (`tlx_cpu::norm::channel_affine`).
pub fn channel_affine(
    x: &DeviceBuf<f32>,
    c: usize,
    scale: &DeviceBuf<f32>,
    shift: &DeviceBuf<f32>,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "channel_affine";
    let ctx = out.context().clone();
    let n = out.len();
    rows_of(OP, n, c)?;
    let px = exact(&ctx, OP, "x", x, n)?;
    let (ps, pt) = (exact(&ctx, OP, "scale", scale, c)?, exact(&ctx, OP, "shift", shift, c)?);
    let po = out.arg(&ctx, OP, "out", n)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(ps).ptr(pt).ptr(po).val(n as i64).val(to_i32(OP, "channels", c)?);
    // SAFETY: channel_affine_f32(x, scale, shift, out, i64 n, int c): x and out n f32,
    // scale and shift c f32 (indexed by i % c).
    unsafe { ctx.launch(FILE, "channel_affine_f32", grid(n), &a) }
}

/// Training-mode coefficients from the batch moments (`tlx_tensor`'s `batch_norm_train`):
/// `inv_std = 1/√(var + eps)` in f64 rounded once, `scale = γ·inv_std`,
/// `shift = β − mean·scale`; γ/β `None` mean 1/0. Every buffer `[c]`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train_coeffs(
    mean: &DeviceBuf<f32>,
    var: &DeviceBuf<f32>,
    gamma: Option<&DeviceBuf<f32>>,
    beta: Option<&DeviceBuf<f32>>,
    eps: f64,
    inv_std: &mut DeviceBuf<f32>,
    scale: &mut DeviceBuf<f32>,
    shift: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "batch_norm_train_coeffs";
    let ctx = inv_std.context().clone();
    let c = mean.len();
    let ptrs = [
        exact(&ctx, OP, "mean", mean, c)?,
        exact(&ctx, OP, "var", var, c)?,
        exact_opt(&ctx, OP, "gamma", gamma, c)?,
        exact_opt(&ctx, OP, "beta", beta, c)?,
    ];
    let outs = [
        exact(&ctx, OP, "inv_std", inv_std, c)?,
        exact(&ctx, OP, "scale", scale, c)?,
        exact(&ctx, OP, "shift", shift, c)?,
    ];
    if c == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    ptrs.iter().for_each(|&p| {
        a.ptr(p);
    });
    a.val(eps);
    outs.iter().for_each(|&p| {
        a.ptr(p);
    });
    a.val(to_i32(OP, "channels", c)?);
    // SAFETY: bn_train_coeffs_f32(mean, var, gamma, beta, double eps, inv_std, scale, shift,
    // int c): every pointer is null (gamma, beta) or c f32 on this device.
    unsafe { ctx.launch(FILE, "bn_train_coeffs_f32", grid(c), &a) }
}

/// Inference-mode coefficients (TensorFlow's arrangement in f32, as `tlx_tensor`'s
/// `batch_norm_inference`): `s = rsqrt(var + eps)·γ`, `scale = s`, `shift = β − mean·s`.
/// Every buffer `[c]`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_inference_coeffs(
    mean: &DeviceBuf<f32>,
    var: &DeviceBuf<f32>,
    gamma: Option<&DeviceBuf<f32>>,
    beta: Option<&DeviceBuf<f32>>,
    eps: f64,
    scale: &mut DeviceBuf<f32>,
    shift: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "batch_norm_inference_coeffs";
    let ctx = scale.context().clone();
    let c = mean.len();
    let ptrs = [
        exact(&ctx, OP, "mean", mean, c)?,
        exact(&ctx, OP, "var", var, c)?,
        exact_opt(&ctx, OP, "gamma", gamma, c)?,
        exact_opt(&ctx, OP, "beta", beta, c)?,
    ];
    let (ps, pt) = (exact(&ctx, OP, "scale", scale, c)?, exact(&ctx, OP, "shift", shift, c)?);
    if c == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    ptrs.iter().for_each(|&p| {
        a.ptr(p);
    });
    a.val(eps as f32).ptr(ps).ptr(pt).val(to_i32(OP, "channels", c)?);
    // SAFETY: bn_inference_coeffs_f32(mean, var, gamma, beta, float eps, scale, shift, int c):
    // every pointer is null (gamma, beta) or c f32 on this device.
    unsafe { ctx.launch(FILE, "bn_inference_coeffs_f32", grid(c), &a) }
}

/// `moving ← moving·momentum + stat·(1 − momentum)` (Keras's moving mean/variance update,
/// `1 − momentum` computed in f64 and rounded once, as tlx-nn does). Both `[c]`.
pub fn update_moving(moving: &mut DeviceBuf<f32>, stat: &DeviceBuf<f32>, momentum: f64) -> Result<()> {
    const OP: &str = "update_moving";
    let ctx = moving.context().clone();
    let c = moving.len();
    let (pm, ps) = (exact(&ctx, OP, "moving", moving, c)?, exact(&ctx, OP, "stat", stat, c)?);
    if c == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(pm).ptr(ps).val(momentum as f32).val((1.0 - momentum) as f32).val(to_i32(OP, "channels", c)?);
    // SAFETY: bn_update_moving_f32(float* moving, const float* stat, float, float, int c):
    // both hold c f32.
    unsafe { ctx.launch(FILE, "bn_update_moving_f32", grid(c), &a) }
}

/// Training-mode batch-norm backward (`tlx_cpu::norm::batch_norm_backward`): `x`, `grad_out`,
/// `grad_x` `[rows, c]`; `mean`, `inv_std`, `gamma`, `grad_gamma`, `grad_beta` `[c]`.
/// `dγ = Σ dy·x̂`, `dβ = Σ dy` (f64 sums rounded once), `dx = γ·inv_std/m·(m·dy − Σdy − x̂·Σdy·x̂)`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &DeviceBuf<f32>,
    c: usize,
    mean: &DeviceBuf<f32>,
    inv_std: &DeviceBuf<f32>,
    gamma: Option<&DeviceBuf<f32>>,
    grad_out: &DeviceBuf<f32>,
    grad_x: &mut DeviceBuf<f32>,
    grad_gamma: &mut DeviceBuf<f32>,
    grad_beta: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "batch_norm_backward";
    let ctx = grad_x.context().clone();
    let n = x.len();
    let rows = rows_of(OP, n, c)?;
    let px = exact(&ctx, OP, "x", x, n)?;
    let pm = exact(&ctx, OP, "mean", mean, c)?;
    let ps = exact(&ctx, OP, "inv_std", inv_std, c)?;
    let pg = exact_opt(&ctx, OP, "gamma", gamma, c)?;
    let pd = exact(&ctx, OP, "grad_out", grad_out, n)?;
    let pdx = exact(&ctx, OP, "grad_x", grad_x, n)?;
    check_len(OP, "grad_gamma", grad_gamma.len(), c)?;
    check_len(OP, "grad_beta", grad_beta.len(), c)?;
    let ci = to_i32(OP, "channels", c)?;
    let (splits, run, cfg) = partial_plan(rows, c);
    let partial = ctx.alloc::<f64>(splits * 2 * c)?;
    let sums = ctx.alloc::<f32>(2 * c)?;
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(pd).ptr(pm).ptr(ps).ptr(partial.ptr()).val(rows as i64).val(ci).val(run as i64);
    // SAFETY: bn_backward_partial_f32(x, dy, mean, inv_std, double* partial, i64 rows, int c,
    // i64 split_rows), grid y = splits: reads x, dy [rows, c] and mean, inv_std [c]; writes
    // partial[0..splits·2c).
    unsafe { ctx.launch(FILE, "bn_backward_partial_f32", cfg, &a)? };
    finish(&ctx, partial.ptr(), 0, sums.ptr(), 2 * c, splits, 1.0)?;
    grad_beta.copy_slice_from(&sums, 0, c, 0)?;
    grad_gamma.copy_slice_from(&sums, c, c, 0)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(pd).ptr(pm).ptr(ps).ptr(pg).ptr(sums.ptr()).ptr(pdx).val(n as i64).val(ci).val(rows as f32);
    // SAFETY: bn_backward_dx_f32(x, dy, mean, inv_std, gamma, sums, dx, i64 n, int c, float m):
    // x, dy, dx hold n f32; mean, inv_std, gamma (or null) c f32; sums 2c f32.
    unsafe { ctx.launch(FILE, "bn_backward_dx_f32", grid(n), &a) }
}
