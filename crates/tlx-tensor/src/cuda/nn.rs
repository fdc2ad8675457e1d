//! GPU paths of reductions, softmax, matmul (cuBLAS), convolution, pooling and batch norm,
//! forward and backward, through `tlx_cuda::ops` and `tlx_cuda::blas`.

use super::{alloc, buf, dense, need_f32, wrap, Gpu};
use crate::autograd::Op;
use crate::Tensor;
use tlx_core::{Conv2dGeometry, Error, Pool2dGeometry, Result, Shape};
use tlx_cpu::reduce::ReduceOp;
use tlx_cuda::blas::{gemm_strided_batched, sgemm, Mat, MatMut};
use tlx_cuda::ops as cu;

/// `op` over the sorted, resolved `axes` of `x` (any strided view) into `out_dims`.
pub(crate) fn reduce(
    x: &Tensor,
    op: ReduceOp,
    axes: Vec<usize>,
    keepdims: bool,
    out_dims: Vec<usize>,
) -> Result<Tensor> {
    need_f32(op.name(), x)?;
    let xb = buf::<f32>(op.name(), x)?;
    let shape = Shape::new(out_dims);
    let mut out = xb.context().alloc::<f32>(shape.numel()).gpu()?;
    let cop = match op {
        ReduceOp::Sum => cu::reduce::ReduceOp::Sum,
        ReduceOp::Max => cu::reduce::ReduceOp::Max,
        ReduceOp::Min => cu::reduce::ReduceOp::Min,
    };
    cu::reduce::reduce(cop, &xb, x.layout(), &axes, &mut out).gpu()?;
    Ok(wrap(out, shape, Some(Op::Reduce { op, x: x.clone(), axes, keepdims })))
}

/// Index of the extreme along the middle axis of `x` seen as `[outer, len, inner]` (i64).
pub(crate) fn arg_extreme(
    x: &Tensor,
    outer: usize,
    len: usize,
    inner: usize,
    max: bool,
    out_dims: Vec<usize>,
) -> Result<Tensor> {
    let op = if max { "argmax" } else { "argmin" };
    if matches!(x.dtype(), tlx_core::DType::F16 | tlx_core::DType::BF16) {
        return arg_extreme(&x.to_dtype(tlx_core::DType::F32)?, outer, len, inner, max, out_dims);
    }
    need_f32(op, x)?;
    let xb = dense::<f32>(op, x)?;
    let mut out = xb.context().alloc::<i64>(outer * inner).gpu()?;
    cu::reduce::arg_extreme(&xb, outer, len, inner, max, &mut out).gpu()?;
    Ok(wrap(out, Shape::new(out_dims), None))
}

/// (Log-)softmax along the middle axis of `x` seen as `[outer, len, inner]`.
pub(crate) fn softmax(
    x: &Tensor,
    axis: usize,
    log: bool,
    (outer, len, inner): (usize, usize, usize),
) -> Result<Tensor> {
    let name = if log { "log_softmax" } else { "softmax" };
    need_f32(name, x)?;
    let xb = dense::<f32>(name, x)?;
    let mut out = xb.context().alloc::<f32>(x.numel()).gpu()?;
    if log {
        cu::softmax::log_softmax(&xb, outer, len, inner, &mut out).gpu()?;
    } else {
        cu::softmax::softmax(&xb, outer, len, inner, &mut out).gpu()?;
    }
    Ok(wrap(out, x.shape().clone(), Some(Op::Softmax { x: x.clone(), axis, log })))
}

/// Gradient of (log-)softmax from its output `y`.
pub(crate) fn softmax_grad(
    y: &Tensor,
    g: &Tensor,
    log: bool,
    (outer, len, inner): (usize, usize, usize),
) -> Result<Tensor> {
    need_f32("softmax", g)?;
    let (yb, gb) = (dense::<f32>("softmax", y)?, dense::<f32>("softmax", g)?);
    let mut out = yb.context().alloc::<f32>(y.numel()).gpu()?;
    cu::softmax::softmax_backward(&yb, &gb, outer, len, inner, log, &mut out).gpu()?;
    Ok(wrap(out, y.shape().clone(), None))
}

/// How a logical `[rows, cols]` matrix with strides `(rs, cs)` is seen by cuBLAS: `(trans, ld)`
/// of its stored row-major matrix, or `None` when it needs a dense copy first.
fn mat_view(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<(bool, usize)> {
    if (cols <= 1 || cs == 1) && (rows <= 1 || rs >= cols.max(1)) {
        return Some((false, if rows <= 1 { cols.max(1) } else { rs }));
    }
    if (rows <= 1 || rs == 1) && (cols <= 1 || cs >= rows.max(1)) {
        return Some((true, if cols <= 1 { rows.max(1) } else { cs }));
    }
    None
}

/// `op` with its last two axes in a form cuBLAS reads (a dense copy when they are not).
fn gemm_operand(t: &Tensor, rows: usize, cols: usize) -> Result<(Tensor, bool, usize)> {
    let s = t.layout().strides();
    let r = t.rank();
    if let Some((trans, ld)) = mat_view(rows, cols, s[r - 2], s[r - 1]) {
        return Ok((t.clone(), trans, ld));
    }
    let c = crate::with_no_grad(|| t.contiguous_copy())?;
    Ok((c, false, cols.max(1)))
}

/// `offsets[i] = offsets[0] + i·stride` for some stride ≥ 0.
fn uniform_stride(offsets: &[usize]) -> Option<usize> {
    let stride = if offsets.len() > 1 { offsets[1].checked_sub(offsets[0])? } else { 0 };
    offsets.iter().enumerate().all(|(i, &o)| o == offsets[0] + i * stride).then_some(stride)
}

/// Batched `a @ b` of rank ≥ 2 operands (`[..., m, k] @ [..., k, n]`, batch axes broadcast
/// to `batch`) with cuBLAS: one strided-batched GEMM when each operand's matrices are evenly
/// spaced (broadcast ones have stride 0), else one GEMM per batch.
pub(crate) fn matmul(
    a: &Tensor,
    b: &Tensor,
    batch: &Shape,
    (m, k, n): (usize, usize, usize),
    out_dims: Vec<usize>,
) -> Result<Tensor> {
    const OP: &str = "matmul";
    need_f32(OP, a)?;
    let nb = batch.numel();
    let (ta, trans_a, lda) = gemm_operand(a, m, k)?;
    let (tb, trans_b, ldb) = gemm_operand(b, k, n)?;
    let oa = crate::ops::matmul::batch_offsets(&ta, batch)?;
    let ob = crate::ops::matmul::batch_offsets(&tb, batch)?;
    let (ab, bb) = (buf::<f32>(OP, &ta)?, buf::<f32>(OP, &tb)?);
    let ctx = ab.context().clone();
    let mut out = ctx.alloc::<f32>(nb * m * n).gpu()?;
    let record = Some(Op::Matmul { a: a.clone(), b: b.clone() });
    if nb * m * n == 0 {
        return Ok(wrap(out, Shape::new(out_dims), record));
    }
    if k == 0 {
        out.zero().gpu()?;
        return Ok(wrap(out, Shape::new(out_dims), record));
    }
    let mat = |buf, offset, rows, cols, trans, ld| {
        if trans {
            Mat { buf, offset, rows: cols, cols: rows, ld, trans: false }.t()
        } else {
            Mat { buf, offset, rows, cols, ld, trans: false }
        }
    };
    match (uniform_stride(&oa), uniform_stride(&ob)) {
        (Some(sa), Some(sb)) => {
            let ma = mat(&*ab, oa[0], m, k, trans_a, lda);
            let mb = mat(&*bb, ob[0], k, n, trans_b, ldb);
            let c = MatMut::row_major(&mut out, m, n);
            gemm_strided_batched(&ctx, nb, 1.0, ma, sa, mb, sb, 0.0, c, m * n).gpu()?;
        }
        _ => {
            for i in 0..nb {
                let ma = mat(&*ab, oa[i], m, k, trans_a, lda);
                let mb = mat(&*bb, ob[i], k, n, trans_b, ldb);
                let c = MatMut::row_major(&mut out, m, n).at(i * m * n, n);
                sgemm(&ctx, 1.0, ma, mb, 0.0, c).gpu()?;
            }
        }
    }
    Ok(wrap(out, Shape::new(out_dims), record))
}

/// 2-D convolution (NHWC, HWIO) with the im2col + cuBLAS / depthwise / pointwise launchers.
pub(crate) fn conv2d(x: &Tensor, kernel: &Tensor, geom: Conv2dGeometry) -> Result<Tensor> {
    need_f32("conv2d", x)?;
    let (xb, kb) = (dense::<f32>("conv2d", x)?, dense::<f32>("conv2d", kernel)?);
    let shape = Shape::from(geom.output_shape());
    let mut out = xb.context().alloc::<f32>(shape.numel()).gpu()?;
    cu::conv::conv2d_forward(&geom, &xb, &kb, None, &mut out).gpu()?;
    Ok(wrap(
        out,
        shape,
        Some(Op::Conv2d { x: x.clone(), kernel: kernel.clone(), geom, bias: None, act: None }),
    ))
}

/// Gradient of conv2d with respect to its input.
pub(crate) fn conv2d_input_grad(geom: &Conv2dGeometry, g: &Tensor, kernel: &Tensor) -> Result<Tensor> {
    need_f32("conv2d", g)?;
    let (gb, kb) = (dense::<f32>("conv2d", g)?, dense::<f32>("conv2d", kernel)?);
    let shape = Shape::from(geom.input_shape());
    let mut out = gb.context().alloc::<f32>(shape.numel()).gpu()?;
    cu::conv::conv2d_backward_input(geom, &gb, &kb, &mut out).gpu()?;
    Ok(wrap(out, shape, None))
}

/// Gradient of conv2d with respect to its kernel.
pub(crate) fn conv2d_kernel_grad(geom: &Conv2dGeometry, x: &Tensor, g: &Tensor) -> Result<Tensor> {
    need_f32("conv2d", g)?;
    let (xb, gb) = (dense::<f32>("conv2d", x)?, dense::<f32>("conv2d", g)?);
    let shape = Shape::from(geom.kernel_shape());
    let mut out = gb.context().alloc::<f32>(shape.numel()).gpu()?;
    cu::conv::conv2d_backward_kernel(geom, &xb, &gb, &mut out).gpu()?;
    Ok(wrap(out, shape, None))
}

/// Max (`max`) or average pooling forward.
pub(crate) fn pool2d(x: &Tensor, geom: Pool2dGeometry, max: bool) -> Result<Tensor> {
    let name = if max { "max_pool2d" } else { "avg_pool2d" };
    need_f32(name, x)?;
    let xb = dense::<f32>(name, x)?;
    let shape = Shape::from(geom.output_shape());
    let mut out = xb.context().alloc::<f32>(shape.numel()).gpu()?;
    let op = if max {
        cu::pool::max_pool2d_forward(&geom, &xb, &mut out).gpu()?;
        Op::MaxPool2d { x: x.clone(), geom }
    } else {
        cu::pool::avg_pool2d_forward(&geom, &xb, &mut out).gpu()?;
        Op::AvgPool2d { x: x.clone(), geom }
    };
    Ok(wrap(out, shape, Some(op)))
}

/// Gradient of max pooling (`x` is the forward input) or average pooling (`x` unused).
pub(crate) fn pool2d_grad(geom: &Pool2dGeometry, x: &Tensor, g: &Tensor, max: bool) -> Result<Tensor> {
    let name = if max { "max_pool2d" } else { "avg_pool2d" };
    need_f32(name, g)?;
    let gb = dense::<f32>(name, g)?;
    let shape = Shape::from([geom.n, geom.h, geom.w, geom.c]);
    let mut out = gb.context().alloc::<f32>(shape.numel()).gpu()?;
    if max {
        let xb = dense::<f32>(name, x)?;
        cu::pool::max_pool2d_backward(geom, &xb, &gb, &mut out).gpu()?;
    } else {
        cu::pool::avg_pool2d_backward(geom, &gb, &mut out).gpu()?;
    }
    Ok(wrap(out, shape, None))
}

/// Training-mode batch norm over all axes but the last `c`: `(y, mean, variance)`.
pub(crate) fn batch_norm_train(
    x: &Tensor,
    gamma: Option<&Tensor>,
    beta: Option<&Tensor>,
    eps: f64,
    c: usize,
    dev: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "batch_norm";
    need_f32(OP, x)?;
    let xb = dense::<f32>(OP, x)?;
    let gb = gamma.map(|t| dense::<f32>(OP, t)).transpose()?;
    let bb = beta.map(|t| dense::<f32>(OP, t)).transpose()?;
    let (mut mean, mut var) = (alloc::<f32>(dev, c)?, alloc::<f32>(dev, c)?);
    cu::norm::channel_moments(&xb, c, &mut mean, &mut var).gpu()?;
    let (mut inv_std, mut scale, mut shift) =
        (alloc::<f32>(dev, c)?, alloc::<f32>(dev, c)?, alloc::<f32>(dev, c)?);
    cu::norm::batch_norm_train_coeffs(
        &mean,
        &var,
        gb.as_deref(),
        bb.as_deref(),
        eps,
        &mut inv_std,
        &mut scale,
        &mut shift,
    )
    .gpu()?;
    let mut y = alloc::<f32>(dev, x.numel())?;
    cu::norm::channel_affine(&xb, c, &scale, &shift, &mut y).gpu()?;
    let (mean, var, inv_std) = (
        wrap(mean, Shape::from([c]), None),
        wrap(var, Shape::from([c]), None),
        wrap(inv_std, Shape::from([c]), None),
    );
    let op = Op::BatchNorm {
        x: x.clone(),
        gamma: gamma.cloned(),
        beta: beta.cloned(),
        mean: mean.clone(),
        inv_std,
        residual: None,
        act: None,
    };
    Ok((wrap(y, x.shape().clone(), Some(op)), mean, var))
}

/// Gradients of training-mode batch norm: `(dx, dγ, dβ)`.
pub(crate) fn batch_norm_grad(
    x: &Tensor,
    gamma: Option<&Tensor>,
    mean: &Tensor,
    inv_std: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    const OP: &str = "batch_norm";
    need_f32(OP, g)?;
    let c = *x.dims().last().ok_or_else(|| Error::shape(OP, "input has no channel axis"))?;
    let (xb, gradb) = (dense::<f32>(OP, x)?, dense::<f32>(OP, g)?);
    let (mb, sb) = (dense::<f32>(OP, mean)?, dense::<f32>(OP, inv_std)?);
    let gam = gamma.map(|t| dense::<f32>(OP, t)).transpose()?;
    let ctx = xb.context().clone();
    let mut gx = ctx.alloc::<f32>(x.numel()).gpu()?;
    let (mut gg, mut gbeta) = (ctx.alloc::<f32>(c).gpu()?, ctx.alloc::<f32>(c).gpu()?);
    cu::norm::batch_norm_backward(&xb, c, &mb, &sb, gam.as_deref(), &gradb, &mut gx, &mut gg, &mut gbeta)
        .gpu()?;
    Ok((
        wrap(gx, x.shape().clone(), None),
        wrap(gg, Shape::from([c]), None),
        wrap(gbeta, Shape::from([c]), None),
    ))
}
