//! Views that share storage (reshape, permute/transpose, narrow/slice, broadcast_to,
//! squeeze/unsqueeze), dense copies, and element-type conversion.

use super::on_gpu;
use crate::autograd::Op;
use crate::storage::{CpuStorage, StorageElement};
use crate::Tensor;
use tlx_core::{DType, Error, Result, Shape};

impl Tensor {
    /// The same elements with another shape. A view when this tensor is contiguous,
    /// otherwise a copy. Gradients flow back in either case.
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape == *self.shape() {
            return Ok(self.clone());
        }
        match self.layout().reshape(&shape)? {
            Some(layout) => Ok(self.view_with(layout, Op::Reshape { x: self.clone() })),
            None => self.contiguous()?.reshape(shape),
        }
    }

    /// Reshape with NumPy's `-1`: at most one dimension is inferred from the element count.
    pub fn reshape_infer(&self, dims: &[isize]) -> Result<Tensor> {
        let known: usize = dims.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
        let unknown = dims.iter().filter(|&&d| d == -1).count();
        if dims.iter().any(|&d| d < -1)
            || unknown > 1
            || (unknown == 1 && (known == 0 || !self.numel().is_multiple_of(known)))
        {
            return Err(Error::shape(
                "reshape",
                format!("cannot reshape {} ({} elements) to {dims:?}", self.shape(), self.numel()),
            ));
        }
        let shape: Vec<usize> =
            dims.iter().map(|&d| if d == -1 { self.numel() / known } else { d as usize }).collect();
        self.reshape(shape)
    }

    /// Reorders the axes: output axis `i` is input axis `perm[i]`. A view.
    pub fn permute(&self, perm: &[usize]) -> Result<Tensor> {
        let layout = self.layout().permute(perm)?;
        Ok(self.view_with(layout, Op::Permute { x: self.clone(), perm: perm.to_vec() }))
    }

    /// Swaps two axes (negative counts from the end). A view.
    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (self.shape().axis(a, "transpose")?, self.shape().axis(b, "transpose")?);
        let mut perm: Vec<usize> = (0..self.rank()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// The transpose of a matrix (swaps the last two axes).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::shape("t", format!("needs rank ≥ 2, got shape {}", self.shape())));
        }
        self.transpose(-1, -2)
    }

    /// Keeps `len` entries of `axis` from `start`. A view.
    pub fn narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = self.shape().axis(axis, "narrow")?;
        let layout = self.layout().narrow(a, start, len)?;
        Ok(self.view_with(layout, Op::Narrow { x: self.clone(), axis: a, start }))
    }

    /// Entries `start..end` of `axis` (a view; `narrow` with an end index).
    pub fn slice(&self, axis: isize, start: usize, end: usize) -> Result<Tensor> {
        if end < start {
            return Err(Error::invalid("slice", format!("end {end} is before start {start}")));
        }
        self.narrow(axis, start, end - start)
    }

    /// Broadcasts to `shape` (NumPy rules). A view with zero strides.
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape == *self.shape() {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_to(&shape)?;
        Ok(self.view_with(layout, Op::BroadcastTo { x: self.clone() }))
    }

    /// Inserts a size-1 axis. A view.
    pub fn unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let layout = self.layout().unsqueeze(axis)?;
        Ok(self.view_with(layout, Op::Reshape { x: self.clone() }))
    }

    /// Removes a size-1 axis. A view.
    pub fn squeeze(&self, axis: isize) -> Result<Tensor> {
        let layout = self.layout().squeeze(axis)?;
        Ok(self.view_with(layout, Op::Reshape { x: self.clone() }))
    }

    /// Collapses axes `from..` into one (Keras `Flatten` is `flatten_from(1)`).
    pub fn flatten_from(&self, from: usize) -> Result<Tensor> {
        if from > self.rank() {
            return Err(Error::Axis { op: "flatten", axis: from as isize, rank: self.rank() });
        }
        let mut dims = self.dims()[..from].to_vec();
        dims.push(self.dims()[from..].iter().product());
        self.reshape(dims)
    }

    /// This tensor if dense, otherwise a dense copy.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        self.contiguous_copy()
    }

    /// A dense copy in a new buffer (always copies).
    pub fn contiguous_copy(&self) -> Result<Tensor> {
        on_gpu!("contiguous", [self], |_| crate::cuda::contiguous_copy(self));
        let storage = {
            let s = self.read_storage()?;
            fn gather<T: StorageElement>(s: &crate::Storage, t: &Tensor) -> Result<CpuStorage> {
                let mut out = vec![T::default(); t.numel()];
                tlx_cpu::copy::copy_strided(s.as_slice::<T>("contiguous")?, t.layout(), &mut out);
                Ok(T::wrap(out))
            }
            match self.dtype() {
                DType::U8 => gather::<u8>(&s, self)?,
                DType::I32 => gather::<i32>(&s, self)?,
                DType::I64 => gather::<i64>(&s, self)?,
                DType::F16 => gather::<half::f16>(&s, self)?,
                DType::BF16 => gather::<half::bf16>(&s, self)?,
                DType::F32 => gather::<f32>(&s, self)?,
                DType::F64 => gather::<f64>(&s, self)?,
            }
        };
        Ok(Tensor::from_storage(storage, self.shape().clone(), Some(Op::Copy { x: self.clone() })))
    }

    /// The elements converted to `dtype` (a new tensor; this one if already `dtype`).
    /// Gradients flow back through float conversions.
    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        on_gpu!("to_dtype", [self], |_| crate::cuda::to_dtype(self, dtype));
        let src = self.contiguous()?;
        let storage = {
            let s = src.read_storage()?;
            let range = src.layout().contiguous_range().expect("contiguous");
            fn convert<S: StorageElement>(
                s: &crate::Storage,
                range: std::ops::Range<usize>,
                dtype: DType,
            ) -> Result<CpuStorage> {
                let from = &s.as_slice::<S>("to_dtype")?[range];
                fn into<S: StorageElement, D: StorageElement>(from: &[S]) -> CpuStorage {
                    let mut out = vec![D::default(); from.len()];
                    tlx_cpu::copy::cast(from, &mut out);
                    D::wrap(out)
                }
                Ok(match dtype {
                    DType::U8 => into::<S, u8>(from),
                    DType::I32 => into::<S, i32>(from),
                    DType::I64 => into::<S, i64>(from),
                    DType::F16 => into::<S, half::f16>(from),
                    DType::BF16 => into::<S, half::bf16>(from),
                    DType::F32 => into::<S, f32>(from),
                    DType::F64 => into::<S, f64>(from),
                })
            }
            match src.dtype() {
                DType::U8 => convert::<u8>(&s, range, dtype)?,
                DType::I32 => convert::<i32>(&s, range, dtype)?,
                DType::I64 => convert::<i64>(&s, range, dtype)?,
                DType::F16 => convert::<half::f16>(&s, range, dtype)?,
                DType::BF16 => convert::<half::bf16>(&s, range, dtype)?,
                DType::F32 => convert::<f32>(&s, range, dtype)?,
                DType::F64 => convert::<f64>(&s, range, dtype)?,
            }
        };
        let op = (self.dtype().is_float() && dtype.is_float()).then(|| Op::Cast { x: self.clone() });
        Ok(Tensor::from_storage(storage, self.shape().clone(), op))
    }

    /// Sums `self` (a gradient in a broadcast shape) down to `shape`: the one place where
    /// broadcasting is undone.
    pub fn sum_to_shape(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        if !shape.broadcasts_to(self.shape()) {
            return Err(Error::shape(
                "sum_to_shape",
                format!("{} does not broadcast to {}", shape, self.shape()),
            ));
        }
        let lead = self.rank() - shape.rank();
        let axes: Vec<isize> = (0..self.rank())
            .filter(|&i| i < lead || (shape.dim(i - lead) == 1 && self.dims()[i] != 1))
            .map(|i| i as isize)
            .collect();
        self.sum(&axes, true)?.reshape(shape.clone())
    }
}
