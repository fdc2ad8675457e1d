//! Pooling launchers (`kernels/pool.cu`), mirroring `tlx_cpu::pool`: 2-D max and average
//! pooling on NHWC `[n, h, w, c]`, forward and backward, described by
//! `tlx_core::Pool2dGeometry`.
//!
//! Semantics are `tlx_cpu::reference`'s: windows are clipped to the input (Keras's padding
//! with the extra row/column at the bottom/right), padded cells never count, average pooling
//! divides by the number of real cells, max forward propagates NaN and max backward gives each
//! window's gradient to its first maximum. Backward passes gather per input cell (no atomics).

use super::{exact, grid, to_i32};
use crate::buffer::DeviceBuf;
use crate::context::KernelArgs;
use crate::error::Result;
use tlx_core::Pool2dGeometry;

const FILE: &str = "pool.cu";

/// `PoolGeom` of pool.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PoolGeom {
    n: i32,
    h: i32,
    w: i32,
    c: i32,
    kh: i32,
    kw: i32,
    stride_h: i32,
    stride_w: i32,
    pad_top: i32,
    pad_left: i32,
    out_h: i32,
    out_w: i32,
}

impl PoolGeom {
    fn new(op: &'static str, g: &Pool2dGeometry) -> Result<PoolGeom> {
        let i = |what: &str, v: usize| to_i32(op, what, v);
        Ok(PoolGeom {
            n: i("batch", g.n)?,
            h: i("height", g.h)?,
            w: i("width", g.w)?,
            c: i("channels", g.c)?,
            kh: i("pool height", g.kh)?,
            kw: i("pool width", g.kw)?,
            stride_h: i("stride", g.stride_h)?,
            stride_w: i("stride", g.stride_w)?,
            pad_top: i("padding", g.pad_top)?,
            pad_left: i("padding", g.pad_left)?,
            out_h: i("output height", g.out_h)?,
            out_w: i("output width", g.out_w)?,
        })
    }

    fn input_len(g: &Pool2dGeometry) -> usize {
        g.n * g.h * g.w * g.c
    }

    fn output_len(g: &Pool2dGeometry) -> usize {
        g.n * g.out_h * g.out_w * g.c
    }
}

fn forward(
    op: &'static str,
    function: &'static str,
    g: &Pool2dGeometry,
    input: &DeviceBuf<f32>,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    let ctx = out.context().clone();
    let geom = PoolGeom::new(op, g)?;
    let px = exact(&ctx, op, "input", input, PoolGeom::input_len(g))?;
    let po = exact(&ctx, op, "out", out, PoolGeom::output_len(g))?;
    if out.is_empty() {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(po).val(geom);
    // SAFETY: {max,avg}_pool_forward_f32(const float* x, float* out, PoolGeom): reads inside
    // [n, h, w, c] (windows clipped to the input), writes [n, out_h, out_w, c]; both buffers
    // have exactly those sizes (checked).
    unsafe { ctx.launch(FILE, function, grid(out.len()), &a) }
}

/// Max pooling forward: `out` `[n, out_h, out_w, c]` = the max of each window of `input`.
pub fn max_pool2d_forward(
    g: &Pool2dGeometry,
    input: &DeviceBuf<f32>,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    forward("max_pool2d_forward", "max_pool_forward_f32", g, input, out)
}

/// Average pooling forward over the real (unpadded) cells of each window.
pub fn avg_pool2d_forward(
    g: &Pool2dGeometry,
    input: &DeviceBuf<f32>,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    forward("avg_pool2d_forward", "avg_pool_forward_f32", g, input, out)
}

/// Average pooling backward (overwrites `grad_input` `[n, h, w, c]`).
pub fn avg_pool2d_backward(
    g: &Pool2dGeometry,
    grad_out: &DeviceBuf<f32>,
    grad_input: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "avg_pool2d_backward";
    let ctx = grad_input.context().clone();
    let geom = PoolGeom::new(OP, g)?;
    let pd = exact(&ctx, OP, "grad_out", grad_out, PoolGeom::output_len(g))?;
    let pi = exact(&ctx, OP, "grad_input", grad_input, PoolGeom::input_len(g))?;
    if grad_input.is_empty() {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(pd).ptr(pi).val(geom);
    // SAFETY: avg_pool_backward_f32(const float* dy, float* grad_in, PoolGeom): reads dy of
    // the windows containing each cell (inside [n, out_h, out_w, c]) and writes each cell of
    // [n, h, w, c] once; sizes checked.
    unsafe { ctx.launch(FILE, "avg_pool_backward_f32", grid(grad_input.len()), &a) }
}

/// Max pooling backward: each window's gradient goes to its first maximum (row-major window
/// order). Overwrites `grad_input`.
pub fn max_pool2d_backward(
    g: &Pool2dGeometry,
    input: &DeviceBuf<f32>,
    grad_out: &DeviceBuf<f32>,
    grad_input: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "max_pool2d_backward";
    let ctx = grad_input.context().clone();
    let geom = PoolGeom::new(OP, g)?;
    let px = exact(&ctx, OP, "input", input, PoolGeom::input_len(g))?;
    let pd = exact(&ctx, OP, "grad_out", grad_out, PoolGeom::output_len(g))?;
    let pi = exact(&ctx, OP, "grad_input", grad_input, PoolGeom::input_len(g))?;
    if grad_input.is_empty() {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(pd).ptr(pi).val(geom);
    // SAFETY: max_pool_backward_f32(const float* x, const float* dy, float* grad_in, PoolGeom):
    // reads x inside the windows (clipped to [n, h, w, c]) and dy inside [n, out_h, out_w, c],
    // writes each grad_in cell once; sizes checked.
    unsafe { ctx.launch(FILE, "max_pool_backward_f32", grid(grad_input.len()), &a) }
}
