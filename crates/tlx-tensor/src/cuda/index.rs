//! GPU paths of the index ops (`kernels/index.cu`): gather along an axis and its scatter-add,
//! index_select/index_add as a gather/scatter-add with the indices broadcast along the
//! other axes, and one_hot as a comparison with `0..depth`. Indices of any integer dtype are
//! converted to i64 on the device and range-checked there (an out-of-range index is an error,
//! as on the CPU).

use super::{dense, need_f32, wrap, Gpu};
use crate::autograd::Op;
use crate::{Device, Tensor};
use std::sync::Arc;
use tlx_core::{DType, Error, Result, Shape};
use tlx_cuda::{ops as cu, DeviceBuf};

/// Dense i64 indices, checked to lie in `0..bound`.
fn indices(op: &'static str, idx: &Tensor, bound: usize) -> Result<Arc<DeviceBuf<i64>>> {
    if !idx.dtype().is_int() {
        return Err(Error::dtype(op, format!("indices must be an integer tensor, got {}", idx.dtype())));
    }
    let b = dense::<i64>(op, &crate::with_no_grad(|| idx.to_dtype(DType::I64))?)?;
    if cu::index::any_out_of_range(&b, bound).gpu()? {
        return Err(Error::invalid(op, format!("an index is out of range for an axis of size {bound}")));
    }
    Ok(b)
}

/// The shape check of gather/scatter_add (as `gather_positions` on the CPU).
fn check_fit(op: &'static str, x: &Tensor, axis: usize, idx: &Tensor) -> Result<()> {
    if idx.rank() != x.rank()
        || idx.dims().iter().zip(x.dims()).enumerate().any(|(i, (&d, &e))| i != axis && d > e)
    {
        return Err(Error::shape(
            op,
            format!("indices {} do not fit tensor {} along axis {axis}", idx.shape(), x.shape()),
        ));
    }
    Ok(())
}

/// `out[p] = x[p with its axis coordinate replaced by indices[p]]`.
pub(crate) fn gather(x: &Tensor, axis: usize, idx: &Tensor, record: Option<Op>) -> Result<Tensor> {
    check_fit("gather", x, axis, idx)?;
    need_f32("gather", x)?;
    let ib = indices("gather", idx, x.dims()[axis])?;
    let xb = dense::<f32>("gather", x)?;
    let mut out = xb.context().alloc::<f32>(idx.numel()).gpu()?;
    cu::index::gather(&xb, x.dims(), &ib, idx.dims(), axis, &mut out).gpu()?;
    Ok(wrap(out, idx.shape().clone(), record))
}

/// `base` plus `src` added at the positions `gather` reads.
pub(crate) fn scatter_add(base: &Tensor, axis: usize, idx: &Tensor, src: &Tensor) -> Result<Tensor> {
    check_fit("scatter_add", base, axis, idx)?;
    need_f32("scatter_add", base)?;
    let ib = indices("scatter_add", idx, base.dims()[axis])?;
    let (bb, sb) = (dense::<f32>("scatter_add", base)?, dense::<f32>("scatter_add", src)?);
    let mut out = bb.context().alloc::<f32>(base.numel()).gpu()?;
    cu::index::scatter_add(&bb, base.dims(), &ib, &sb, idx.dims(), axis, &mut out).gpu()?;
    Ok(wrap(out, base.shape().clone(), None))
}

/// Rank-1 `idx` placed on `axis` and broadcast to `dims` (dense i64, on the device).
fn spread(idx: &Tensor, axis: usize, dims: &[usize]) -> Result<Tensor> {
    crate::with_no_grad(|| {
        let mut shape = vec![1; dims.len()];
        shape[axis] = idx.numel();
        idx.to_dtype(DType::I64)?.reshape(shape)?.broadcast_to(dims.to_vec())?.contiguous()
    })
}

/// Entries `idx` (rank 1) of `x` along `axis`.
pub(crate) fn index_select(x: &Tensor, axis: usize, idx: &Tensor, dims: Vec<usize>) -> Result<Tensor> {
    need_f32("index_select", x)?;
    if !idx.dtype().is_int() {
        return Err(Error::dtype(
            "index_select",
            format!("indices must be an integer tensor, got {}", idx.dtype()),
        ));
    }
    let spread = spread(idx, axis, &dims)?;
    let op = Op::IndexSelect { x: x.clone(), indices: idx.clone(), axis };
    gather(x, axis, &spread, Some(op))
}

/// `base` plus `src` added at entries `idx` (rank 1) along `axis`.
pub(crate) fn index_add(base: &Tensor, axis: usize, idx: &Tensor, src: &Tensor) -> Result<Tensor> {
    let spread = spread(idx, axis, src.dims())?;
    scatter_add(base, axis, &spread, src)
}

/// One-hot rows of `depth` for integer `idx` on GPU `dev`, as `dtype`.
pub(crate) fn one_hot(idx: &Tensor, depth: usize, dtype: DType, dev: usize) -> Result<Tensor> {
    indices("one_hot", idx, depth)?;
    crate::with_no_grad(|| {
        let classes = Tensor::arange(0.0, depth as f64, 1.0, DType::F32)?.to_device(Device::Cuda(dev))?;
        let labels = idx.to_dtype(DType::F32)?.unsqueeze(-1)?;
        let mut dims = idx.dims().to_vec();
        dims.push(depth);
        labels.compare(&classes, tlx_core::CmpOp::Eq)?.reshape(Shape::new(dims))?.to_dtype(dtype)
    })
}
