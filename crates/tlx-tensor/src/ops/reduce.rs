//! Reductions over any axes with keepdims (sum, mean, max, min, variance), over everything,
//! and argmax/argmin along one axis.

use super::{half_roundtrip, on_gpu, with_float};
use crate::autograd::Op;
use crate::storage::StorageElement;
use crate::Tensor;
use tlx_core::{resolve_axes, resolve_axis, DType, Error, Result, Shape};
use tlx_cpu::reduce::ReduceOp;

impl Tensor {
    /// Reduces over `axes` (negative counts from the end; empty means none) with `op`.
    pub fn reduce(&self, op: ReduceOp, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        half_roundtrip!(self, |x| x.reduce(op, axes, keepdims));
        let axes = resolve_axes(axes, self.rank(), op.name())?;
        if op != ReduceOp::Sum && axes.iter().any(|&a| self.dims()[a] == 0) {
            return Err(Error::shape(
                op.name(),
                format!("cannot take the {} over an empty axis of shape {}", op.name(), self.shape()),
            ));
        }
        let out_dims: Vec<usize> = self
            .dims()
            .iter()
            .enumerate()
            .filter_map(|(i, &d)| if axes.contains(&i) { keepdims.then_some(1) } else { Some(d) })
            .collect();
        on_gpu!(op.name(), [self], |_| crate::cuda::reduce(self, op, axes, keepdims, out_dims));
        let x = self.contiguous()?;
        let storage = with_float!(self.dtype(), op.name(), T => {
            x.with_slice::<T, _>(|xs| {
                let mut out = vec![T::default(); out_dims.iter().product()];
                tlx_cpu::reduce::reduce(op, xs, x.dims(), &axes, &mut out);
                T::wrap(out)
            })?
        });
        Ok(Tensor::from_storage(
            storage,
            Shape::new(out_dims),
            Some(Op::Reduce { op, x: self.clone(), axes, keepdims }),
        ))
    }

    /// Sum over `axes`.
    pub fn sum(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, axes, keepdims)
    }

    /// Mean over `axes`.
    pub fn mean(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        let resolved = resolve_axes(axes, self.rank(), "mean")?;
        let count: usize = resolved.iter().map(|&a| self.dims()[a]).product();
        if count == 0 {
            return Err(Error::shape("mean", format!("mean over an empty axis of shape {}", self.shape())));
        }
        self.sum(axes, keepdims)?.mul_scalar(1.0 / count as f64)
    }

    /// Maximum over `axes` (gradient shared equally by ties).
    pub fn max(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, axes, keepdims)
    }

    /// Minimum over `axes`.
    pub fn min(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, axes, keepdims)
    }

    /// Biased (population) variance over `axes`, as Keras's `ops.var` and `tf.nn.moments`.
    pub fn var(&self, axes: &[isize], keepdims: bool) -> Result<Tensor> {
        let mu = self.mean(axes, true)?;
        self.sub(&mu)?.square()?.mean(axes, keepdims)
    }

    /// Sum of all elements (rank 0).
    pub fn sum_all(&self) -> Result<Tensor> {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.sum(&axes, false)
    }

    /// Mean of all elements (rank 0).
    pub fn mean_all(&self) -> Result<Tensor> {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.mean(&axes, false)
    }

    /// Maximum of all elements (rank 0).
    pub fn max_all(&self) -> Result<Tensor> {
        let axes: Vec<isize> = (0..self.rank() as isize).collect();
        self.max(&axes, false)
    }

    /// Index of the largest element along `axis` (int64; the first of ties; NaN wins).
    pub fn argmax(&self, axis: isize, keepdims: bool) -> Result<Tensor> {
        self.arg_extreme(axis, keepdims, true)
    }

    /// Index of the smallest element along `axis` (int64).
    pub fn argmin(&self, axis: isize, keepdims: bool) -> Result<Tensor> {
        self.arg_extreme(axis, keepdims, false)
    }

    fn arg_extreme(&self, axis: isize, keepdims: bool, max: bool) -> Result<Tensor> {
        let op = if max { "argmax" } else { "argmin" };
        let a = resolve_axis(axis, self.rank(), op)?;
        let dims = self.dims();
        if dims[a] == 0 {
            return Err(Error::shape(op, format!("axis {axis} of shape {} is empty", self.shape())));
        }
        let outer: usize = dims[..a].iter().product();
        let inner: usize = dims[a + 1..].iter().product();
        let mut out_dims = dims.to_vec();
        if keepdims {
            out_dims[a] = 1;
        } else {
            out_dims.remove(a);
        }
        on_gpu!(op, [self], |_| crate::cuda::arg_extreme(self, outer, dims[a], inner, max, out_dims));
        let mut out = vec![0i64; outer * inner];
        fn run<T: StorageElement>(
            x: &Tensor,
            o: usize,
            l: usize,
            i: usize,
            max: bool,
            out: &mut [i64],
        ) -> Result<()> {
            x.contiguous()?.with_slice::<T, _>(|xs| tlx_cpu::reduce::arg_extreme(xs, o, l, i, max, out))
        }
        match self.dtype() {
            DType::U8 => run::<u8>(self, outer, dims[a], inner, max, &mut out)?,
            DType::I32 => run::<i32>(self, outer, dims[a], inner, max, &mut out)?,
            DType::I64 => run::<i64>(self, outer, dims[a], inner, max, &mut out)?,
            DType::F16 => run::<half::f16>(self, outer, dims[a], inner, max, &mut out)?,
            DType::BF16 => run::<half::bf16>(self, outer, dims[a], inner, max, &mut out)?,
            DType::F32 => run::<f32>(self, outer, dims[a], inner, max, &mut out)?,
            DType::F64 => run::<f64>(self, outer, dims[a], inner, max, &mut out)?,
        }
        Tensor::from_vec(out, out_dims)
    }
}
