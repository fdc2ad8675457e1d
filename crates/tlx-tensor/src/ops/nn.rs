//! Softmax and log-softmax along any axis, with their gradient.

use super::{half_roundtrip, on_gpu, with_float};
use crate::autograd::Op;
use crate::storage::StorageElement;
use crate::Tensor;
use tlx_core::{resolve_axis, Result};

fn split_at_axis(t: &Tensor, axis: usize) -> (usize, usize, usize) {
    let d = t.dims();
    (d[..axis].iter().product(), d[axis], d[axis + 1..].iter().product())
}

impl Tensor {
    /// `exp(x − max) / Σ exp(x − max)` along `axis`.
    pub fn softmax(&self, axis: isize) -> Result<Tensor> {
        self.softmax_impl(axis, false)
    }

    /// `x − max − ln Σ exp(x − max)` along `axis`.
    pub fn log_softmax(&self, axis: isize) -> Result<Tensor> {
        self.softmax_impl(axis, true)
    }

    fn softmax_impl(&self, axis: isize, log: bool) -> Result<Tensor> {
        half_roundtrip!(self, |x| x.softmax_impl(axis, log));
        let name = if log { "log_softmax" } else { "softmax" };
        let a = resolve_axis(axis, self.rank(), name)?;
        let (outer, len, inner) = split_at_axis(self, a);
        on_gpu!(name, [self], |_| crate::cuda::softmax(self, a, log, (outer, len, inner)));
        let x = self.contiguous()?;
        let storage = with_float!(self.dtype(), name, T => {
            x.with_slice::<T, _>(|xs| {
                let mut out = vec![T::default(); xs.len()];
                if log {
                    tlx_cpu::softmax::log_softmax(xs, outer, len, inner, &mut out);
                } else {
                    tlx_cpu::softmax::softmax(xs, outer, len, inner, &mut out);
                }
                T::wrap(out)
            })?
        });
        Ok(Tensor::from_storage(
            storage,
            self.shape().clone(),
            Some(Op::Softmax { x: self.clone(), axis: a, log }),
        ))
    }
}

/// Gradient of (log-)softmax given its output `y`.
pub(crate) fn softmax_grad(y: &Tensor, g: &Tensor, axis: usize, log: bool) -> Result<Tensor> {
    let (outer, len, inner) = split_at_axis(y, axis);
    on_gpu!("softmax", [y, g], |_| crate::cuda::softmax_grad(y, g, log, (outer, len, inner)));
    let (y, g) = (y.contiguous()?, g.contiguous()?);
    let storage = with_float!(y.dtype(), "softmax", T => {
        y.with_slice::<T, _>(|ys| g.with_slice::<T, _>(|gs| {
            let mut out = vec![T::default(); ys.len()];
            tlx_cpu::softmax::softmax_backward(ys, gs, outer, len, inner, log, &mut out);
            T::wrap(out)
        }))??
    });
    Ok(Tensor::from_storage(storage, y.shape().clone(), None))
}
