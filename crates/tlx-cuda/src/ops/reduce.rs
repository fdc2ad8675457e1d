//! Reduction launchers (`kernels/reduce.cu`), mirroring `tlx_cpu::reduce`: sum, mean, max and
//! min over any set of axes of a strided view, argmax/argmin along one axis, and the f64 sum
//! of squares behind gradient clipping.
//!
//! An axes reduction runs in two deterministic launches (no atomics): a partial pass where
//! each of `splits` runs of the reduced elements is folded per output — one warp per output
//! when the innermost reduced axis is contiguous, else one thread per output (neighbouring
//! outputs then read neighbouring elements) — and a finish pass that folds the splits in
//! order. A reduction small enough for one split writes the output directly.

use super::{check_layout, check_len, exact, grid, grid_2d, merge_axes, split, MAX_RANK, TARGET_THREADS};
use crate::buffer::DeviceBuf;
use crate::context::KernelArgs;
use crate::error::{Error, Result};
use tlx_core::Layout;

const FILE: &str = "reduce.cu";

/// A reduction that folds many values into one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    /// The sum times `1/count` (NaN for an empty reduction).
    Mean,
    /// NaN wins, as in NumPy.
    Max,
    Min,
}

impl ReduceOp {
    fn code(self) -> i32 {
        match self {
            ReduceOp::Sum | ReduceOp::Mean => 0,
            ReduceOp::Max => 1,
            ReduceOp::Min => 2,
        }
    }

    /// The value of an empty reduction.
    fn empty(self) -> f32 {
        match self {
            ReduceOp::Sum => 0.0,
            ReduceOp::Mean => f32::NAN,
            ReduceOp::Max => f32::NEG_INFINITY,
            ReduceOp::Min => f32::INFINITY,
        }
    }
}

/// `ReduceArgs` of reduce.cu: the input seen as (kept axes) × (reduced axes).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ReduceArgs {
    kept_rank: i32,
    red_rank: i32,
    kept_dims: [i64; MAX_RANK],
    kept_strides: [i64; MAX_RANK],
    red_dims: [i64; MAX_RANK],
    red_strides: [i64; MAX_RANK],
    offset: i64,
    outputs: i64,
    red_len: i64,
}

/// Reduces the view `layout` over `x` along the sorted, distinct `axes` into the dense `out`
/// (the shape with the reduced axes removed or set to 1: the same memory), like
/// `tlx_cpu::reduce::reduce` but on any strided view.
pub fn reduce(
    op: ReduceOp,
    x: &DeviceBuf<f32>,
    layout: &Layout,
    axes: &[usize],
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "reduce";
    let ctx = out.context().clone();
    check_layout(OP, "x", x, layout)?;
    let (dims, strides) = (layout.dims(), layout.strides());
    if axes.windows(2).any(|w| w[0] >= w[1]) || axes.iter().any(|&a| a >= dims.len()) {
        return Err(Error::invalid(
            OP,
            format!("axes {axes:?} must be sorted, distinct and below the rank {}", dims.len()),
        ));
    }
    let pick = |red: bool| -> (Vec<usize>, Vec<usize>) {
        (0..dims.len()).filter(|i| axes.contains(i) == red).map(|i| (dims[i], strides[i])).unzip()
    };
    let (kd, ks) = pick(false);
    let (rd, rs) = pick(true);
    let outputs: usize = kd.iter().product();
    let red_len: usize = rd.iter().product();
    check_len(OP, "out", out.len(), outputs)?;
    let po = out.arg(&ctx, OP, "out", outputs)?;
    let px = x.arg(&ctx, OP, "x", 0)?;
    if outputs == 0 {
        return Ok(());
    }
    if red_len == 0 {
        return super::elementwise::fill(out, op.empty());
    }
    let (kd, ks) = merge_axes(&kd, &[&ks]);
    let (rd, rs) = merge_axes(&rd, &[&rs]);
    if kd.len() > MAX_RANK || rd.len() > MAX_RANK {
        return Err(Error::invalid(
            OP,
            format!("shape {dims:?} reduced over {axes:?} has too many separate axes"),
        ));
    }
    let mut args_s = ReduceArgs {
        kept_rank: kd.len() as i32,
        red_rank: rd.len() as i32,
        kept_dims: [1; MAX_RANK],
        kept_strides: [0; MAX_RANK],
        red_dims: [1; MAX_RANK],
        red_strides: [0; MAX_RANK],
        offset: layout.offset() as i64,
        outputs: outputs as i64,
        red_len: red_len as i64,
    };
    for (i, (&d, &s)) in kd.iter().zip(&ks[0]).enumerate() {
        (args_s.kept_dims[i], args_s.kept_strides[i]) = (d as i64, s as i64);
    }
    for (i, (&d, &s)) in rd.iter().zip(&rs[0]).enumerate() {
        (args_s.red_dims[i], args_s.red_strides[i]) = (d as i64, s as i64);
    }
    // One warp per output when the innermost reduced axis is contiguous (lanes read
    // neighbours), one thread per output otherwise.
    let warp = rs[0].last() == Some(&1) && red_len >= 32;
    let (splits, run) = if warp {
        split(red_len, TARGET_THREADS / (outputs * 32).max(1), 256)
    } else {
        split(red_len, TARGET_THREADS / outputs, 64)
    };
    let direct = splits == 1 && op != ReduceOp::Mean;
    let mut partial = if direct { None } else { Some(ctx.alloc::<f32>(splits * outputs)?) };
    let dst = partial.as_ref().map_or(po, |p| p.ptr());
    let (function, cfg) = if warp {
        ("reduce_warp_f32", grid_2d((outputs * 32).div_ceil(256), splits, 256))
    } else {
        ("reduce_partial_f32", grid_2d(outputs.div_ceil(256), splits, 256))
    };
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(dst).val(args_s).val(op.code()).val(run as i64);
    // SAFETY: reduce_{warp,partial}_f32(const float* x, float* partial, ReduceArgs, int op,
    // i64 split_len): reads x at offset + kept walk + reduced walk, all inside the view checked
    // by check_layout (the walks are the view's own axes); grid y = splits and splits·run ≥
    // red_len, so it writes partial[s·outputs + o] for s < splits, o < outputs — within `dst`,
    // which holds splits·outputs elements (out itself when splits = 1).
    unsafe { ctx.launch(FILE, function, cfg, &a)? };
    if let Some(p) = partial.as_mut() {
        let scale = if op == ReduceOp::Mean { 1.0 / red_len as f32 } else { 1.0 };
        let mut a = KernelArgs::new();
        a.ptr(p.ptr()).ptr(po).val(outputs as i64).val(splits as i32).val(op.code()).val(scale);
        // SAFETY: reduce_finish_f32(const float* partial, float* out, i64 outputs, int splits,
        // int op, float scale) reads partial[0..splits·outputs) and writes out[0..outputs).
        unsafe { ctx.launch(FILE, "reduce_finish_f32", grid(outputs), &a)? };
    }
    Ok(())
}

/// Index of the largest (`max`) or smallest element along the middle axis of the dense `x`
/// seen as `[outer, len, inner]` into `out` `[outer, inner]`; the first one wins ties and NaN
/// counts as the extreme (`tlx_cpu::reduce::arg_extreme`).
pub fn arg_extreme(
    x: &DeviceBuf<f32>,
    outer: usize,
    len: usize,
    inner: usize,
    max: bool,
    out: &mut DeviceBuf<i64>,
) -> Result<()> {
    const OP: &str = "arg_extreme";
    let ctx = out.context().clone();
    if len == 0 {
        return Err(Error::invalid(OP, "the reduced axis is empty"));
    }
    let px = exact(&ctx, OP, "x", x, outer * len * inner)?;
    let po = exact(&ctx, OP, "out", out, outer * inner)?;
    if outer * inner == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(po).val(outer as i64).val(len as i64).val(inner as i64).val(max as i32);
    // SAFETY: arg_extreme_f32(const float*, i64* out, i64 outer, i64 len, i64 inner, int):
    // reads x[0..outer·len·inner) and writes out[0..outer·inner), the buffers' exact sizes.
    unsafe { ctx.launch(FILE, "arg_extreme_f32", grid(outer * inner), &a) }
}

/// `Σ x[i]²` accumulated in f64 (per-block partials added on the host in block order, so the
/// result is deterministic): the norm behind `clipnorm` and `global_clipnorm`. Waits for the
/// device.
pub fn sum_squares(x: &DeviceBuf<f32>) -> Result<f64> {
    let ctx = x.context().clone();
    let n = x.len();
    if n == 0 {
        return Ok(0.0);
    }
    let blocks = n.div_ceil(256).min(1024);
    let partial = ctx.alloc::<f64>(blocks)?;
    let mut a = KernelArgs::new();
    a.ptr(x.arg(&ctx, "sum_squares", "x", n)?).ptr(partial.ptr()).val(n as i64);
    // SAFETY: sum_squares_partial_f32(const float* x, double* partial, i64 n) with `blocks`
    // 256-thread blocks reads x[0..n) and writes partial[0..blocks).
    unsafe { ctx.launch(FILE, "sum_squares_partial_f32", grid_2d(blocks, 1, 256), &a)? };
    Ok(partial.to_vec()?.iter().sum())
}
