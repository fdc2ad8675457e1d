//! GPU paths of the elementwise family (`kernels/elementwise.cu`): the unary op table forward
//! and backward, binary ops and comparisons over broadcast strided views, `where`, dense
//! copies of views, dtype conversions, constant padding and concatenation (strided scatter
//! into a filled buffer), and Philox dropout.

use super::storage::dense_view;
use super::{alloc, buf, dense, need_f32, storage_of, wrap, CudaBuf, CudaStorage, Gpu};
use crate::autograd::{self, Op};
use crate::random::Rng;
use crate::Tensor;
use tlx_core::{BinaryOp, CmpOp, DType, Error, Layout, Result, Shape, UnaryOp};
use tlx_cuda::ops as cu;

/// `op(x)` elementwise.
pub(crate) fn unary(x: &Tensor, op: UnaryOp) -> Result<Tensor> {
    need_f32(op.name(), x)?;
    let xb = dense::<f32>(op.name(), x)?;
    let mut out = xb.context().alloc::<f32>(x.numel()).gpu()?;
    cu::elementwise::unary(op, &xb, &mut out).gpu()?;
    Ok(wrap(out, x.shape().clone(), Some(Op::Unary { op, x: x.clone() })))
}

/// `g · f'(x, y)` for the unary op `op` with input `x` and output `y`.
pub(crate) fn unary_grad(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    need_f32(op.name(), g)?;
    let (need_x, need_y) = cu::elementwise::derivative_reads(op);
    let xb = need_x.then(|| dense::<f32>(op.name(), x)).transpose()?;
    let yb = need_y.then(|| dense::<f32>(op.name(), y)).transpose()?;
    let gb = dense::<f32>(op.name(), g)?;
    let mut out = gb.context().alloc::<f32>(x.numel()).gpu()?;
    cu::elementwise::unary_backward(op, xb.as_deref(), yb.as_deref(), &gb, &mut out).gpu()?;
    Ok(wrap(out, x.shape().clone(), None))
}

/// `op(a, b)` with `la`/`lb` the operands' views broadcast to `shape`.
pub(crate) fn binary(
    a: &Tensor,
    b: &Tensor,
    op: BinaryOp,
    shape: Shape,
    la: &Layout,
    lb: &Layout,
) -> Result<Tensor> {
    need_f32(op.name(), a)?;
    let (ab, bb) = (buf::<f32>(op.name(), a)?, buf::<f32>(op.name(), b)?);
    let mut out = ab.context().alloc::<f32>(shape.numel()).gpu()?;
    cu::elementwise::binary(op, &ab, la, &bb, lb, &mut out).gpu()?;
    Ok(wrap(out, shape, Some(Op::Binary { op, a: a.clone(), b: b.clone() })))
}

/// `a op b` as a u8 mask over the broadcast `shape`: exact for u8/i32/i64/f32/f64; f16/bf16
/// compare exactly in f32.
pub(crate) fn compare(a: &Tensor, b: &Tensor, op: CmpOp, shape: Shape) -> Result<Tensor> {
    if matches!(a.dtype(), DType::F16 | DType::BF16) {
        return compare(&a.to_dtype(DType::F32)?, &b.to_dtype(DType::F32)?, op, shape);
    }
    let (la, lb) = (a.layout().broadcast_to(&shape)?, b.layout().broadcast_to(&shape)?);
    let sa = storage_of(op.name(), a)?;
    let out = with_cuda_buf!(sa.buf(), ab, T => {
        let bb = buf::<T>(op.name(), b)?;
        let mut out = ab.context().alloc::<u8>(shape.numel()).gpu()?;
        cu::elementwise::compare_typed(op, ab, &la, &bb, &lb, &mut out).gpu()?;
        out
    });
    Ok(wrap(out, shape, None))
}

/// `cond ? a : b` over the broadcast `shape`.
pub(crate) fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor, shape: Shape) -> Result<Tensor> {
    need_f32("where", a)?;
    let c = dense::<u8>("where", &cond.broadcast_to(shape.clone())?)?;
    let (la, lb) = (a.layout().broadcast_to(&shape)?, b.layout().broadcast_to(&shape)?);
    let (ab, bb) = (buf::<f32>("where", a)?, buf::<f32>("where", b)?);
    let mut out = ab.context().alloc::<f32>(shape.numel()).gpu()?;
    cu::elementwise::where_select(&c, &ab, &la, &bb, &lb, &mut out).gpu()?;
    let op = Op::Where { cond: cond.clone(), a: a.clone(), b: b.clone() };
    Ok(wrap(out, shape, Some(op)))
}

/// A dense copy of `x` in a new device buffer (any dtype).
pub(crate) fn contiguous_copy(x: &Tensor) -> Result<Tensor> {
    let st = storage_of("contiguous", x)?.dense_copy(x.layout())?;
    let op = Some(Op::Copy { x: x.clone() }).filter(autograd::should_record);
    Ok(Tensor::from_cuda(st, x.shape().clone(), op))
}

/// `x` converted to `dtype` on the device.
pub(crate) fn to_dtype(x: &Tensor, dtype: DType) -> Result<Tensor> {
    let st = storage_of("to_dtype", x)?;
    let dense =
        if x.layout().contiguous_range() == Some(0..st.len()) { st } else { st.dense_copy(x.layout())? };
    let out = dense.convert(dtype)?;
    let op = (x.dtype().is_float() && dtype.is_float()).then(|| Op::Cast { x: x.clone() });
    Ok(Tensor::from_cuda(out, x.shape().clone(), op.filter(autograd::should_record)))
}

/// `x` padded to `dims` with `value`; `interior` is the view of `x`'s place in the output.
pub(crate) fn pad(
    x: &Tensor,
    pads: &[(usize, usize)],
    value: f64,
    dims: Vec<usize>,
    interior: &Layout,
) -> Result<Tensor> {
    let xs = storage_of("pad", x)?;
    let dev = xs.device();
    let n: usize = dims.iter().product();
    let st = match xs.buf() {
        CudaBuf::F32(b) => {
            let src = dense_view(b, x.layout())?;
            let mut out = alloc::<f32>(dev, n)?;
            cu::elementwise::fill(&mut out, value as f32).gpu()?;
            cu::elementwise::scatter_strided(&src, interior, &mut out).gpu()?;
            CudaStorage::new(out)
        }
        other if value == 0.0 => with_cuda_buf!(other, b, T => {
            let src = dense_view(b, x.layout())?;
            let mut out = super::context(dev)?.zeros::<T>(n).gpu()?;
            cu::elementwise::scatter_strided(&src, interior, &mut out).gpu()?;
            CudaStorage::new(out)
        }),
        _ => {
            return Err(Error::dtype(
                "pad",
                format!(
                    "no CUDA kernel pads {} tensors with {value} (only f32, or any dtype with 0)",
                    x.dtype()
                ),
            ))
        }
    };
    let op = Some(Op::Pad { x: x.clone(), pads: pads.to_vec() }).filter(autograd::should_record);
    Ok(Tensor::from_cuda(st, Shape::new(dims), op))
}

/// `xs` joined along axis `a` into `dims` (any dtype, all on one device).
pub(crate) fn concat(xs: &[Tensor], a: usize, dims: Vec<usize>) -> Result<Tensor> {
    let first = storage_of("concat", &xs[0])?;
    let dev = first.device();
    let whole = Layout::contiguous(dims.clone());
    let st = with_cuda_buf!(first.buf(), _b, T => {
        let mut out = alloc::<T>(dev, whole.numel())?;
        let mut start = 0;
        for x in xs {
            let len = x.dims()[a];
            let src = dense::<T>("concat", x)?;
            cu::elementwise::scatter_strided(&src, &whole.narrow(a, start, len)?, &mut out).gpu()?;
            start += len;
        }
        CudaStorage::new(out)
    });
    let op = Some(Op::Concat { xs: xs.to_vec(), axis: a }).filter(autograd::should_record);
    Ok(Tensor::from_cuda(st, Shape::new(dims), op))
}

/// Inverted dropout with a Philox mask on the device, keyed by one draw of `rng`: `x·mask`
/// with `mask = keep ? 1/(1 − rate) : 0` (so autograd sees a product, as on the CPU).
pub(crate) fn dropout(x: &Tensor, rate: f64, rng: &mut Rng, dev: usize) -> Result<Tensor> {
    need_f32("dropout", x)?;
    let mut mask = alloc::<u8>(dev, x.numel())?;
    cu::dropout::dropout_mask(&mut mask, rate, rng.next_u64(), 0).gpu()?;
    let mask = crate::with_no_grad(|| {
        let m = Tensor::from_cuda(CudaStorage::new(mask), x.shape().clone(), None);
        m.to_dtype(DType::F32)?.mul_scalar(1.0 / (1.0 - rate))
    })?;
    x.mul(&mask)
}
