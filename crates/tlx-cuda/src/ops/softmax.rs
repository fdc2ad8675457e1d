//! Softmax launchers (`kernels/softmax.cu`), mirroring `tlx_cpu::softmax`: softmax and
//! log-softmax along the middle axis of a dense `[outer, len, inner]`, their backward passes,
//! and the fused softmax cross-entropy (dense or integer labels) that writes the per-row loss
//! and the logits' gradient in one pass.
//!
//! `inner == 1` (the last axis, the usual case) runs one block per row with block
//! reductions; `inner > 1` runs one thread per line.

use super::{exact, exact_opt, grid, grid_2d};
use crate::buffer::DeviceBuf;
use crate::context::KernelArgs;
use crate::error::{Error, Result};
use cudarc::driver::LaunchConfig;

const FILE: &str = "softmax.cu";

/// One block per row (grid-strided beyond 2²⁰ rows), threads sized to the row.
fn rows_config(rows: usize, len: usize) -> LaunchConfig {
    let threads = len.next_power_of_two().clamp(32, 512) as u32;
    grid_2d(rows.min(1 << 20), 1, threads)
}

fn forward(
    x: &DeviceBuf<f32>,
    outer: usize,
    len: usize,
    inner: usize,
    log: bool,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "softmax";
    let ctx = out.context().clone();
    let n = outer * len * inner;
    let (px, po) = (exact(&ctx, OP, "x", x, n)?, exact(&ctx, OP, "out", out, n)?);
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    if inner == 1 {
        a.ptr(px).ptr(po).val(outer as i64).val(len as i64).val(log as i32);
        // SAFETY: softmax_rows_f32(const float* x, float* out, i64 rows, i64 len, int log)
        // reads and writes [rows, len] = n elements, the buffers' sizes.
        unsafe { ctx.launch(FILE, "softmax_rows_f32", rows_config(outer, len), &a) }
    } else {
        a.ptr(px).ptr(po).val(outer as i64).val(len as i64).val(inner as i64).val(log as i32);
        // SAFETY: softmax_lines_f32(x, out, i64 outer, i64 len, i64 inner, int log) reads and
        // writes [outer, len, inner] = n elements.
        unsafe { ctx.launch(FILE, "softmax_lines_f32", grid(outer * inner), &a) }
    }
}

/// `out = softmax(x)` along the middle axis of `[outer, len, inner]`.
pub fn softmax(
    x: &DeviceBuf<f32>,
    outer: usize,
    len: usize,
    inner: usize,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    forward(x, outer, len, inner, false, out)
}

/// `out = log_softmax(x)` along the middle axis of `[outer, len, inner]`.
pub fn log_softmax(
    x: &DeviceBuf<f32>,
    outer: usize,
    len: usize,
    inner: usize,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    forward(x, outer, len, inner, true, out)
}

/// Backward of softmax given its output `y`: `dx = y·(g − Σ g·y)` (`log = false`), or of
/// log-softmax given its output `y`: `dx = g − exp(y)·Σ g` (`log = true`).
#[allow(clippy::too_many_arguments)]
pub fn softmax_backward(
    y: &DeviceBuf<f32>,
    grad: &DeviceBuf<f32>,
    outer: usize,
    len: usize,
    inner: usize,
    log: bool,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "softmax_backward";
    let ctx = out.context().clone();
    let n = outer * len * inner;
    let py = exact(&ctx, OP, "y", y, n)?;
    let pg = exact(&ctx, OP, "grad", grad, n)?;
    let po = exact(&ctx, OP, "out", out, n)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    if inner == 1 {
        a.ptr(py).ptr(pg).ptr(po).val(outer as i64).val(len as i64).val(log as i32);
        // SAFETY: softmax_backward_rows_f32(y, g, dx, i64 rows, i64 len, int log): all three
        // [rows, len] = n elements.
        unsafe { ctx.launch(FILE, "softmax_backward_rows_f32", rows_config(outer, len), &a) }
    } else {
        a.ptr(py).ptr(pg).ptr(po).val(outer as i64).val(len as i64).val(inner as i64).val(log as i32);
        // SAFETY: softmax_backward_lines_f32(y, g, dx, outer, len, inner, log): all three
        // [outer, len, inner] = n elements.
        unsafe { ctx.launch(FILE, "softmax_backward_lines_f32", grid(outer * inner), &a) }
    }
}

/// The labels of a softmax cross-entropy.
#[derive(Clone, Copy, Debug)]
pub enum Labels<'a> {
    /// One-hot or probability rows `[rows, k]`.
    Dense(&'a DeviceBuf<f32>),
    /// Class indices `[rows]`; rows whose label equals `ignore` get loss 0 and gradient 0
    /// (Keras's `ignore_class`); a label outside `[0, k)` gives NaN.
    SparseI64 { labels: &'a DeviceBuf<i64>, ignore: Option<i64> },
    /// As `SparseI64` with 32-bit indices.
    SparseI32 { labels: &'a DeviceBuf<i32>, ignore: Option<i64> },
}

/// Fused softmax cross-entropy from logits `[rows, k]`: `loss[r]` (`[rows]`) and, when given,
/// `grad` `[rows, k]` = `grad_scale`·∂loss[r]/∂logits (pass `1/rows` for a mean over the
/// batch). Dense labels take label smoothing `ls` (`y' = y·(1 − ls) + ls/k`, Keras's rule):
/// `loss = −Σ y'·log_softmax(x)`, `grad = scale·(softmax·Σy' − y')`; integer labels:
/// `loss = lse − x[label]`, `grad = scale·(softmax − onehot)`.
#[allow(clippy::too_many_arguments)]
pub fn softmax_cross_entropy(
    logits: &DeviceBuf<f32>,
    labels: Labels<'_>,
    rows: usize,
    k: usize,
    label_smoothing: f32,
    grad_scale: f32,
    loss: &mut DeviceBuf<f32>,
    grad: Option<&mut DeviceBuf<f32>>,
) -> Result<()> {
    const OP: &str = "softmax_cross_entropy";
    let ctx = loss.context().clone();
    if k == 0 && rows > 0 {
        return Err(Error::invalid(OP, "no classes"));
    }
    let px = exact(&ctx, OP, "logits", logits, rows * k)?;
    let pl = exact(&ctx, OP, "loss", loss, rows)?;
    let pg = exact_opt(&ctx, OP, "grad", grad.as_deref(), rows * k)?;
    if rows == 0 {
        return Ok(());
    }
    let cfg = rows_config(rows, k);
    let mut a = KernelArgs::new();
    let function = match labels {
        Labels::Dense(y) => {
            a.ptr(px).ptr(exact(&ctx, OP, "labels", y, rows * k)?).ptr(pl).ptr(pg);
            a.val(rows as i64).val(k as i64).val(label_smoothing).val(grad_scale);
            "softmax_xent_dense_f32"
        }
        Labels::SparseI64 { labels, ignore } => {
            if label_smoothing != 0.0 {
                return Err(Error::invalid(OP, "label smoothing needs dense labels"));
            }
            a.ptr(px).ptr(exact(&ctx, OP, "labels", labels, rows)?).ptr(pl).ptr(pg);
            a.val(rows as i64)
                .val(k as i64)
                .val(grad_scale)
                .val(ignore.unwrap_or(0))
                .val(ignore.is_some() as i32);
            "softmax_xent_sparse_i64_f32"
        }
        Labels::SparseI32 { labels, ignore } => {
            if label_smoothing != 0.0 {
                return Err(Error::invalid(OP, "label smoothing needs dense labels"));
            }
            a.ptr(px).ptr(exact(&ctx, OP, "labels", labels, rows)?).ptr(pl).ptr(pg);
            a.val(rows as i64)
                .val(k as i64)
                .val(grad_scale)
                .val(ignore.unwrap_or(0))
                .val(ignore.is_some() as i32);
            "softmax_xent_sparse_i32_f32"
        }
    };
    // SAFETY: softmax_xent_dense_f32(logits, labels, loss, grad, i64 rows, i64 k, float ls,
    // float scale) and softmax_xent_sparse_*(logits, labels, loss, grad, i64 rows, i64 k,
    // float scale, i64 ignore, int has_ignore): logits (and dense labels) hold rows·k f32,
    // sparse labels rows indices, loss rows f32, grad null or rows·k f32; a sparse label is
    // only used as an index after the kernel checks 0 ≤ label < k.
    unsafe { ctx.launch(FILE, function, cfg, &a) }
}
