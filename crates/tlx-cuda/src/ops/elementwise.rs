//! Elementwise launchers (`kernels/elementwise.cu`), mirroring `tlx_cpu::elementwise` and
//! `tlx_cpu::copy`: the unary op table forward and backward, binary ops and comparisons over
//! broadcast strided layouts, `where`, strided gather/scatter (views to dense and back), fill
//! and the bias row add.
//!
//! Unary ops are encoded as [`UnaryParams`]: the row's code (the `switch` of
//! `unary_forward` in the kernel) and up to four f32 parameters, rounded once from the op's
//! f64 parameters as the CPU does.

use super::{check_layout, check_len, exact, exact_opt, grid, to_i32, Strided, Strided2};
use crate::buffer::{DeviceBuf, DeviceElem};
use crate::context::KernelArgs;
use crate::error::{Error, Result};
use tlx_core::{BinaryOp, CmpOp, Layout, UnaryOp};

const FILE: &str = "elementwise.cu";

/// `UnaryParams` of elementwise.cu: the op table row and its parameters.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnaryParams {
    pub code: i32,
    pub p: [f32; 4],
}

impl UnaryParams {
    /// The kernel encoding of `op`.
    pub fn new(op: UnaryOp) -> UnaryParams {
        let f = |v: f64| v as f32;
        let (code, p) = match op {
            UnaryOp::Neg => (0, [0.0; 4]),
            UnaryOp::Abs => (1, [0.0; 4]),
            UnaryOp::Exp => (2, [0.0; 4]),
            UnaryOp::Log => (3, [0.0; 4]),
            UnaryOp::Sqrt => (4, [0.0; 4]),
            UnaryOp::Rsqrt => (5, [0.0; 4]),
            UnaryOp::Square => (6, [0.0; 4]),
            UnaryOp::Recip => (7, [0.0; 4]),
            UnaryOp::Sin => (8, [0.0; 4]),
            UnaryOp::Cos => (9, [0.0; 4]),
            UnaryOp::Tanh => (10, [0.0; 4]),
            UnaryOp::Sigmoid => (11, [0.0; 4]),
            UnaryOp::Relu => (12, [0.0; 4]),
            UnaryOp::Relu6 => (13, [0.0; 4]),
            UnaryOp::ReluExt { negative_slope, max_value, threshold } => (
                14,
                [
                    f(negative_slope),
                    f(max_value.unwrap_or(0.0)),
                    f(threshold),
                    if max_value.is_some() { 1.0 } else { 0.0 },
                ],
            ),
            UnaryOp::LeakyRelu { alpha } => (15, [f(alpha), 0.0, 0.0, 0.0]),
            UnaryOp::Elu { alpha } => (16, [f(alpha), 0.0, 0.0, 0.0]),
            UnaryOp::Selu => (17, [0.0; 4]),
            UnaryOp::Gelu => (18, [0.0; 4]),
            UnaryOp::GeluTanh => (19, [0.0; 4]),
            UnaryOp::Silu => (20, [0.0; 4]),
            UnaryOp::Softplus => (21, [0.0; 4]),
            UnaryOp::Softsign => (22, [0.0; 4]),
            UnaryOp::Mish => (23, [0.0; 4]),
            UnaryOp::LogSigmoid => (24, [0.0; 4]),
            UnaryOp::HardSigmoid => (25, [0.0; 4]),
            UnaryOp::HardSilu => (26, [0.0; 4]),
            UnaryOp::Sign => (27, [0.0; 4]),
            UnaryOp::Clamp { min, max } => (28, [f(min), f(max), 0.0, 0.0]),
            // p1 = p − 1 in f64, rounded once (the CPU's `c(p − 1.0)`).
            UnaryOp::Powf { p } => (29, [f(p), f(p - 1.0), 0.0, 0.0]),
            UnaryOp::Affine { mul, add } => (30, [f(mul), f(add), 0.0, 0.0]),
        };
        UnaryParams { code, p }
    }
}

/// Whether `op`'s derivative reads the input `x` and the output `y` (the backward kernel
/// takes null for the one it does not read).
pub fn derivative_reads(op: UnaryOp) -> (bool, bool) {
    use UnaryOp::*;
    match op {
        Exp | Sqrt | Rsqrt | Recip | Tanh | Sigmoid => (false, true),
        Elu { .. } | Selu => (true, true),
        Neg | Sign | Affine { .. } => (false, false),
        _ => (true, false),
    }
}

/// `out[i] = op(x[i])`; `x`, `out` `[n]`.
pub fn unary(op: UnaryOp, x: &DeviceBuf<f32>, out: &mut DeviceBuf<f32>) -> Result<()> {
    const OP: &str = "unary";
    let ctx = out.context().clone();
    let n = out.len();
    let (px, po) = (exact(&ctx, OP, "x", x, n)?, exact(&ctx, OP, "out", out, n)?);
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(po).val(n as i64).val(UnaryParams::new(op));
    // SAFETY: unary_f32(const float*, float*, i64, UnaryParams) reads x[0..n) and writes
    // out[0..n); both buffers hold exactly n f32 on this device (checked above).
    unsafe { ctx.launch(FILE, "unary_f32", grid(n), &a) }
}

/// `grad_in[i] = grad_out[i] · f'(x[i], y[i])`; every buffer `[n]`. `x` and `y` (the forward
/// input and output) may be `None` when the op's derivative does not read them
/// ([`derivative_reads`]); a missing one that is needed is an error.
pub fn unary_backward(
    op: UnaryOp,
    x: Option<&DeviceBuf<f32>>,
    y: Option<&DeviceBuf<f32>>,
    grad_out: &DeviceBuf<f32>,
    grad_in: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "unary_backward";
    let ctx = grad_in.context().clone();
    let n = grad_in.len();
    let (need_x, need_y) = derivative_reads(op);
    if (need_x && x.is_none()) || (need_y && y.is_none()) {
        return Err(Error::invalid(
            OP,
            format!(
                "the derivative of {} needs the forward {}",
                op.name(),
                if need_x && x.is_none() { "input" } else { "output" }
            ),
        ));
    }
    let px = exact_opt(&ctx, OP, "x", x, n)?;
    let py = exact_opt(&ctx, OP, "y", y, n)?;
    let pg = exact(&ctx, OP, "grad_out", grad_out, n)?;
    let pi = exact(&ctx, OP, "grad_in", grad_in, n)?;
    if n == 0 {
        return Ok(());
    }
    let mut a = KernelArgs::new();
    a.ptr(px).ptr(py).ptr(pg).ptr(pi).val(n as i64).val(UnaryParams::new(op));
    // SAFETY: unary_backward_f32(const float* x, const float* y, const float* g, float* gi, i64,
    // UnaryParams): x and y are null or n f32, g and gi n f32, all on this device; the kernel
    // reads x/y only when non-null.
    unsafe { ctx.launch(FILE, "unary_backward_f32", grid(n), &a) }
}

fn binary_code(op: BinaryOp) -> i32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Pow => 4,
        BinaryOp::Maximum => 5,
        BinaryOp::Minimum => 6,
    }
}

fn cmp_code(op: CmpOp) -> i32 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Ne => 1,
        CmpOp::Lt => 2,
        CmpOp::Le => 3,
        CmpOp::Gt => 4,
        CmpOp::Ge => 5,
    }
}

/// Checks two operand views broadcast to one shape of `n` elements and returns their kernel
/// form.
fn operands<T: DeviceElem>(
    op: &'static str,
    a: &DeviceBuf<T>,
    la: &Layout,
    b: &DeviceBuf<T>,
    lb: &Layout,
    n: usize,
) -> Result<Strided2> {
    check_len(op, "output", n, check_layout(op, "a", a, la)?)?;
    check_layout(op, "b", b, lb)?;
    Strided2::new(op, la, lb)
}

/// `out = op(a, b)` where the views `la` over `a` and `lb` over `b` are broadcast to the shape
/// of the dense `out` (`out.len()` elements, row-major).
pub fn binary(
    op: BinaryOp,
    a: &DeviceBuf<f32>,
    la: &Layout,
    b: &DeviceBuf<f32>,
    lb: &Layout,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "binary";
    let ctx = out.context().clone();
    let n = out.len();
    let l = operands(OP, a, la, b, lb, n)?;
    let (pa, pb, po) = (a.arg(&ctx, OP, "a", 0)?, b.arg(&ctx, OP, "b", 0)?, out.arg(&ctx, OP, "out", n)?);
    if n == 0 {
        return Ok(());
    }
    let mut args = KernelArgs::new();
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        args.ptr(pa + 4 * ra.start as u64)
            .ptr(pb + 4 * rb.start as u64)
            .ptr(po)
            .val(n as i64)
            .val(binary_code(op));
        // SAFETY: binary_dense_f32(const float*, const float*, float*, i64, int) reads n f32
        // from each operand's contiguous range (inside its buffer: check_layout) and writes
        // the n f32 of out.
        return unsafe { ctx.launch(FILE, "binary_dense_f32", grid(n), &args) };
    }
    args.ptr(pa).ptr(pb).ptr(po).val(n as i64).val(l).val(binary_code(op));
    // SAFETY: binary_strided_f32(const float*, const float*, float*, i64, Strided2, int) reads
    // a and b at the offsets of their views, which stay inside the buffers (check_layout), and
    // writes out[0..n).
    unsafe { ctx.launch(FILE, "binary_strided_f32", grid(n), &args) }
}

/// Full-shape partial gradients of `y = op(a, b)`: `grad_a[i] = g[i]·∂op/∂a`,
/// `grad_b[i] = g[i]·∂op/∂b` over the broadcast shape (`g.len()` elements); undo the
/// broadcasting afterwards by summing over the broadcast axes ([`super::reduce::reduce`]).
/// `y` (the forward output) is needed by `Pow` only; either gradient may be `None`.
#[allow(clippy::too_many_arguments)]
pub fn binary_backward(
    op: BinaryOp,
    a: &DeviceBuf<f32>,
    la: &Layout,
    b: &DeviceBuf<f32>,
    lb: &Layout,
    y: Option<&DeviceBuf<f32>>,
    g: &DeviceBuf<f32>,
    grad_a: Option<&mut DeviceBuf<f32>>,
    grad_b: Option<&mut DeviceBuf<f32>>,
) -> Result<()> {
    const OP: &str = "binary_backward";
    let ctx = g.context().clone();
    let n = g.len();
    let l = operands(OP, a, la, b, lb, n)?;
    if op == BinaryOp::Pow && y.is_none() {
        return Err(Error::invalid(OP, "the gradient of pow needs the forward output y"));
    }
    let (pa, pb) = (a.arg(&ctx, OP, "a", 0)?, b.arg(&ctx, OP, "b", 0)?);
    let py = exact_opt(&ctx, OP, "y", y, n)?;
    let pg = exact(&ctx, OP, "g", g, n)?;
    let pga = exact_opt(&ctx, OP, "grad_a", grad_a.as_deref(), n)?;
    let pgb = exact_opt(&ctx, OP, "grad_b", grad_b.as_deref(), n)?;
    if n == 0 || (pga == 0 && pgb == 0) {
        return Ok(());
    }
    let mut args = KernelArgs::new();
    args.ptr(pa).ptr(pb).ptr(py).ptr(pg).ptr(pga).ptr(pgb).val(n as i64).val(l).val(binary_code(op));
    // SAFETY: binary_backward_f32(a, b, y, g, grad_a, grad_b, i64 n, Strided2, int): a and b
    // are read through views inside their buffers; y (null unless pow), g, grad_a and grad_b
    // (each null or n f32) are dense; the two outputs are distinct `&mut` buffers.
    unsafe { ctx.launch(FILE, "binary_backward_f32", grid(n), &args) }
}

/// `out = (a op b)` as a `u8` mask (1 true, 0 false) with broadcast views.
pub fn compare(
    op: CmpOp,
    a: &DeviceBuf<f32>,
    la: &Layout,
    b: &DeviceBuf<f32>,
    lb: &Layout,
    out: &mut DeviceBuf<u8>,
) -> Result<()> {
    compare_typed(op, a, la, b, lb, out)
}

/// [`compare`] for u8, i32, i64, f32 and f64 elements (exact: no conversion), e.g. integer
/// labels against argmax indices. f16/bf16 have no kernel (convert to f32 first).
pub fn compare_typed<T: DeviceElem>(
    op: CmpOp,
    a: &DeviceBuf<T>,
    la: &Layout,
    b: &DeviceBuf<T>,
    lb: &Layout,
    out: &mut DeviceBuf<u8>,
) -> Result<()> {
    const OP: &str = "compare";
    let function = match T::DTYPE {
        tlx_core::DType::F32 => "compare_f32",
        tlx_core::DType::F64 => "compare_f64",
        tlx_core::DType::I64 => "compare_i64",
        tlx_core::DType::I32 => "compare_i32",
        tlx_core::DType::U8 => "compare_u8",
        other => return Err(Error::invalid(OP, format!("no comparison kernel for {other}"))),
    };
    let ctx = out.context().clone();
    let n = out.len();
    let l = operands(OP, a, la, b, lb, n)?;
    let (pa, pb, po) = (a.arg(&ctx, OP, "a", 0)?, b.arg(&ctx, OP, "b", 0)?, out.arg(&ctx, OP, "out", n)?);
    if n == 0 {
        return Ok(());
    }
    let mut args = KernelArgs::new();
    args.ptr(pa).ptr(pb).ptr(po).val(n as i64).val(l).val(cmp_code(op));
    // SAFETY: compare_{f32,f64,i64,i32,u8}(const T*, const T*, u8*, i64, Strided2, int), the
    // kernel picked by T's dtype: views inside their buffers (check_layout), n bytes of mask
    // written.
    unsafe { ctx.launch(FILE, function, grid(n), &args) }
}

/// `out = cond ? a : b`; `cond` is dense in the output shape, `la`/`lb` are broadcast to it.
pub fn where_select(
    cond: &DeviceBuf<u8>,
    a: &DeviceBuf<f32>,
    la: &Layout,
    b: &DeviceBuf<f32>,
    lb: &Layout,
    out: &mut DeviceBuf<f32>,
) -> Result<()> {
    const OP: &str = "where";
    let ctx = out.context().clone();
    let n = out.len();
    let l = operands(OP, a, la, b, lb, n)?;
    let pc = exact(&ctx, OP, "cond", cond, n)?;
    let (pa, pb, po) = (a.arg(&ctx, OP, "a", 0)?, b.arg(&ctx, OP, "b", 0)?, out.arg(&ctx, OP, "out", n)?);
    if n == 0 {
        return Ok(());
    }
    let mut args = KernelArgs::new();
    args.ptr(pc).ptr(pa).ptr(pb).ptr(po).val(n as i64).val(l);
    // SAFETY: where_f32(const u8*, const float*, const float*, float*, i64, Strided2): cond
    // and out hold n elements, a and b are read through views inside their buffers.
    unsafe { ctx.launch(FILE, "where_f32", grid(n), &args) }
}

/// The gather/scatter kernel for elements of `T`'s size.
fn sized(op: &'static str, base: &'static str, size: usize) -> Result<&'static str> {
    Ok(match (base, size) {
        ("gather", 8) => "gather_strided_u64",
        ("gather", 4) => "gather_strided_u32",
        ("gather", 2) => "gather_strided_u16",
        ("gather", 1) => "gather_strided_u8",
        ("scatter", 8) => "scatter_strided_u64",
        ("scatter", 4) => "scatter_strided_u32",
        ("scatter", 2) => "scatter_strided_u16",
        ("scatter", 1) => "scatter_strided_u8",
        _ => return Err(Error::invalid(op, format!("no kernel for {size}-byte elements"))),
    })
}

/// Copies the elements of the view `layout` over `src` into the dense `dst`, row-major
/// (`tlx_cpu::copy::copy_strided`); any element type.
pub fn copy_strided<T: DeviceElem>(
    src: &DeviceBuf<T>,
    layout: &Layout,
    dst: &mut DeviceBuf<T>,
) -> Result<()> {
    const OP: &str = "copy_strided";
    let ctx = dst.context().clone();
    let n = check_layout(OP, "source", src, layout)?;
    check_len(OP, "destination", dst.len(), n)?;
    if n == 0 {
        return Ok(());
    }
    if let Some(r) = layout.contiguous_range() {
        return dst.copy_slice_from(src, r.start, n, 0);
    }
    let l = Strided::new(OP, layout)?;
    let (ps, pd) = (src.arg(&ctx, OP, "source", 0)?, dst.arg(&ctx, OP, "destination", n)?);
    let mut args = KernelArgs::new();
    args.ptr(ps).ptr(pd).val(n as i64).val(l);
    // SAFETY: gather_strided_uN(const uN* src, uN* dst, i64 n, Strided) with N the element
    // size of T: reads the view's n elements (inside src: check_layout), writes dst[0..n).
    unsafe { ctx.launch(FILE, sized(OP, "gather", std::mem::size_of::<T>())?, grid(n), &args) }
}

/// Writes the dense `src` into the elements of the view `layout` over `dst`
/// (`tlx_cpu::copy::scatter_strided`; the view must not overlap itself, e.g. no broadcast
/// axes). Elements of `dst` outside the view are left as they are.
pub fn scatter_strided<T: DeviceElem>(
    src: &DeviceBuf<T>,
    layout: &Layout,
    dst: &mut DeviceBuf<T>,
) -> Result<()> {
    const OP: &str = "scatter_strided";
    let ctx = dst.context().clone();
    let n = check_layout(OP, "destination", dst, layout)?;
    check_len(OP, "source", src.len(), n)?;
    if layout.dims().iter().zip(layout.strides()).any(|(&d, &s)| d > 1 && s == 0) {
        return Err(Error::invalid(
            OP,
            "the destination view has a broadcast axis (it would write an element twice)",
        ));
    }
    if n == 0 {
        return Ok(());
    }
    if let Some(r) = layout.contiguous_range() {
        return dst.copy_slice_from(src, 0, n, r.start);
    }
    let l = Strided::new(OP, layout)?;
    let (ps, pd) = (src.arg(&ctx, OP, "source", n)?, dst.arg(&ctx, OP, "destination", 0)?);
    let mut args = KernelArgs::new();
    args.ptr(ps).ptr(pd).val(n as i64).val(l);
    // SAFETY: scatter_strided_uN(const uN* src, uN* dst, i64 n, Strided): reads src[0..n),
    // writes the view's n elements, which lie inside dst (check_layout); the view has no
    // broadcast axis (checked) and, by this function's contract, does not overlap itself.
    unsafe { ctx.launch(FILE, sized(OP, "scatter", std::mem::size_of::<T>())?, grid(n), &args) }
}

/// `x[i] = v` for every element.
pub fn fill(x: &mut DeviceBuf<f32>, v: f32) -> Result<()> {
    let ctx = x.context().clone();
    let n = x.len();
    if n == 0 {
        return Ok(());
    }
    let px = x.arg(&ctx, "fill", "x", n)?;
    let mut args = KernelArgs::new();
    args.ptr(px).val(n as i64).val(v);
    // SAFETY: fill_f32(float*, i64, float) writes x[0..n), x's n elements.
    unsafe { ctx.launch(FILE, "fill_f32", grid(n), &args) }
}

/// `out[r, c] = bias[c]` for every row of `out` seen as `[rows, c]`, or `out[r, c] += bias[c]`
/// with `accumulate` (the bias of a dense or convolution layer).
pub fn add_row_vector(out: &mut DeviceBuf<f32>, bias: &DeviceBuf<f32>, accumulate: bool) -> Result<()> {
    const OP: &str = "add_row_vector";
    let ctx = out.context().clone();
    let (n, c) = (out.len(), bias.len());
    if c == 0 || n % c != 0 {
        return Err(Error::invalid(OP, format!("{n} elements are not rows of the bias's {c}")));
    }
    let (po, pb) = (out.arg(&ctx, OP, "out", n)?, bias.arg(&ctx, OP, "bias", c)?);
    if n == 0 {
        return Ok(());
    }
    let mut args = KernelArgs::new();
    args.ptr(po).ptr(pb).val(n as i64).val(to_i32(OP, "channels", c)?).val(accumulate as i32);
    // SAFETY: add_row_vector_f32(float* out, const float* bias, i64 n, int c, int): writes
    // out[0..n), reads bias[i % c] with c = bias.len().
    unsafe { ctx.launch(FILE, "add_row_vector_f32", grid(n), &args) }
}
