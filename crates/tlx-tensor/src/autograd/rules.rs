//! The gradient rules, all in one place: given an op, its output and the upstream gradient,
//! the gradient for each differentiable input (`None` where an input needs none).
//! Broadcasting is undone in one place, `Tensor::sum_to_shape`.

use super::Op;
use crate::Tensor;
use tlx_core::{BinaryOp, CmpOp, Result};
use tlx_cpu::reduce::ReduceOp;

fn want(t: &Tensor) -> bool {
    t.requires_grad()
}

/// Zeros with `t`'s shape, dtype and device.
fn zeros_as(t: &Tensor) -> Result<Tensor> {
    Tensor::zeros_on(t.shape().clone(), t.dtype(), t.device())
}

/// A rank-0 `v` with `t`'s dtype and device.
fn scalar_as(t: &Tensor, v: f64) -> Result<Tensor> {
    Tensor::full_on(tlx_core::Shape::scalar(), v, t.dtype(), t.device())
}

/// Gradients of `op`'s inputs (in `Op::inputs` order) given output `out` and upstream `g`.
pub(super) fn backward(op: &Op, out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    Ok(match op {
        Op::Unary { op, x } => vec![Some(crate::ops::elementwise::unary_grad(*op, x, out, g)?)],
        Op::Binary { op, a, b } => {
            let (ga, gb) = binary_grads(*op, a, b, out, g)?;
            vec![
                ga.map(|t| t.sum_to_shape(a.shape())).transpose()?,
                gb.map(|t| t.sum_to_shape(b.shape())).transpose()?,
            ]
        }
        Op::Reduce { op, x, axes, keepdims } => {
            // The gradient and output with the reduced axes kept as size 1.
            let kept: Vec<usize> =
                x.dims().iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
            let (g, out) = if *keepdims {
                (g.clone(), out.clone())
            } else {
                (g.reshape(kept.clone())?, out.reshape(kept)?)
            };
            let gx = match op {
                ReduceOp::Sum => g.broadcast_to(x.shape().clone())?,
                ReduceOp::Max | ReduceOp::Min => {
                    // Ties share the gradient equally (TensorFlow's rule for reduce_max).
                    let mask = x.compare(&out, CmpOp::Eq)?.to_dtype(x.dtype())?;
                    let iaxes: Vec<isize> = axes.iter().map(|&a| a as isize).collect();
                    let count = mask.sum(&iaxes, true)?;
                    mask.mul(&g.div(&count)?)?
                }
            };
            vec![Some(gx)]
        }
        Op::Matmul { a, b } => {
            let ga =
                if want(a) { Some(g.matmul(&b.transpose(-1, -2)?)?.sum_to_shape(a.shape())?) } else { None };
            let gb =
                if want(b) { Some(a.transpose(-1, -2)?.matmul(g)?.sum_to_shape(b.shape())?) } else { None };
            vec![ga, gb]
        }
        Op::Reshape { x } => vec![Some(g.reshape(x.shape().clone())?)],
        Op::Permute { x: _, perm } => {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            vec![Some(g.permute(&inverse)?)]
        }
        Op::Narrow { x, axis, start } => {
            let mut pads = vec![(0, 0); x.rank()];
            pads[*axis] = (*start, x.dims()[*axis] - start - g.dims()[*axis]);
            vec![Some(g.pad(&pads, 0.0)?)]
        }
        Op::BroadcastTo { x } => vec![Some(g.sum_to_shape(x.shape())?)],
        Op::Copy { .. } => vec![Some(g.clone())],
        Op::Cast { x } => vec![Some(g.to_dtype(x.dtype())?)],
        Op::ToDevice { x } => vec![Some(g.to_device(x.device())?)],
        Op::Concat { xs, axis } => {
            let mut start = 0;
            let mut grads = Vec::with_capacity(xs.len());
            for x in xs {
                let len = x.dims()[*axis];
                grads.push(if want(x) { Some(g.narrow(*axis as isize, start, len)?) } else { None });
                start += len;
            }
            grads
        }
        Op::Pad { x, pads } => {
            let mut gx = g.clone();
            for (axis, &(before, _)) in pads.iter().enumerate() {
                gx = gx.narrow(axis as isize, before, x.dims()[axis])?;
            }
            vec![Some(gx)]
        }
        Op::IndexSelect { x, indices, axis } => {
            vec![Some(zeros_as(x)?.index_add(*axis as isize, indices, g)?)]
        }
        Op::Gather { x, indices, axis } => {
            vec![Some(zeros_as(x)?.scatter_add(*axis as isize, indices, g)?)]
        }
        Op::Where { cond, a, b } => {
            let zero = scalar_as(g, 0.0)?;
            let ga = if want(a) {
                Some(Tensor::where_cond(cond, g, &zero)?.sum_to_shape(a.shape())?)
            } else {
                None
            };
            let gb = if want(b) {
                Some(Tensor::where_cond(cond, &zero, g)?.sum_to_shape(b.shape())?)
            } else {
                None
            };
            vec![ga, gb]
        }
        Op::Softmax { x: _, axis, log } => vec![Some(crate::ops::nn::softmax_grad(out, g, *axis, *log)?)],
        Op::Conv2d { x, kernel, geom, bias, act } => {
            // The activation's gradient first, from the output: ReLU's and ReLU6's input was in
            // their linear range exactly where the output is strictly inside (0, 6) / > 0.
            let g = match act {
                Some(op) => &crate::ops::elementwise::unary_grad(*op, out, out, g)?,
                None => g,
            };
            let gx = if want(x) { Some(crate::ops::conv::conv2d_input_grad(geom, g, kernel)?) } else { None };
            let gk =
                if want(kernel) { Some(crate::ops::conv::conv2d_kernel_grad(geom, x, g)?) } else { None };
            let mut v = vec![gx, gk];
            if let Some(b) = bias {
                // As the separate Add's rule: the gradient summed over all but the channels.
                v.push(if want(b) { Some(g.sum_to_shape(b.shape())?) } else { None });
            }
            v
        }
        Op::MaxPool2d { x, geom } => vec![Some(crate::ops::conv::max_pool2d_grad(geom, x, g)?)],
        Op::AvgPool2d { x: _, geom } => vec![Some(crate::ops::conv::avg_pool2d_grad(geom, g)?)],
        Op::BatchNorm { x, gamma, beta, mean, inv_std, residual, act } => {
            // After a ReLU/ReLU6: its gradient first (from y: 0 < y (< 6) exactly where its
            // input was), which the sum hands unchanged to both of its operands.
            let g = match act {
                Some(op) => crate::ops::elementwise::unary_grad(*op, out, out, g)?,
                None => g.clone(),
            };
            let (gx, ggamma, gbeta) =
                crate::ops::norm::batch_norm_grad(x, gamma.as_ref(), mean, inv_std, &g)?;
            let mut v = vec![Some(gx)];
            if gamma.is_some() {
                v.push(Some(ggamma));
            }
            if beta.is_some() {
                v.push(Some(gbeta));
            }
            if residual.is_some() {
                v.push(Some(g));
            }
            v
        }
    })
}

/// Gradients of a binary op in the broadcast (output) shape, before undoing broadcasting.
fn binary_grads(
    op: BinaryOp,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
    g: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let (wa, wb) = (want(a), want(b));
    let pick = |flag: bool, f: &dyn Fn() -> Result<Tensor>| if flag { f().map(Some) } else { Ok(None) };
    Ok(match op {
        BinaryOp::Add => (pick(wa, &|| Ok(g.clone()))?, pick(wb, &|| Ok(g.clone()))?),
        BinaryOp::Sub => (pick(wa, &|| Ok(g.clone()))?, pick(wb, &|| g.neg())?),
        BinaryOp::Mul => (pick(wa, &|| g.mul(b))?, pick(wb, &|| g.mul(a))?),
        BinaryOp::Div => (pick(wa, &|| g.div(b))?, pick(wb, &|| g.mul(out)?.div(b)?.neg())?),
        BinaryOp::Pow => (
            pick(wa, &|| g.mul(b)?.mul(&a.pow(&b.add_scalar(-1.0)?)?))?,
            pick(wb, &|| {
                // d/db a^b = a^b·ln a, taken as 0 where a <= 0.
                let positive = a.compare(&scalar_as(a, 0.0)?, CmpOp::Gt)?;
                let safe_a = Tensor::where_cond(&positive, a, &scalar_as(a, 1.0)?)?;
                g.mul(out)?.mul(&safe_a.log()?)
            })?,
        ),
        BinaryOp::Maximum | BinaryOp::Minimum => {
            let cmp = if op == BinaryOp::Maximum { CmpOp::Ge } else { CmpOp::Le };
            let to_a =
                a.broadcast_to(out.shape().clone())?.compare(&b.broadcast_to(out.shape().clone())?, cmp)?;
            let zero = scalar_as(g, 0.0)?;
            (
                pick(wa, &|| Tensor::where_cond(&to_a, g, &zero))?,
                pick(wb, &|| Tensor::where_cond(&to_a, &zero, g))?,
            )
        }
    })
}
