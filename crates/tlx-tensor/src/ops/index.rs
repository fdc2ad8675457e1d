//! Shape-building and indexing ops: concat/stack, constant pad, index_select/index_add,
//! gather/scatter_add, where, one_hot.

use super::{on_gpu, with_float};
use crate::autograd::Op;
use crate::storage::{CpuStorage, StorageElement};
use crate::Tensor;
use tlx_core::{resolve_axis, DType, Element, Error, Layout, Result, Shape};

/// Binds `$T` to the Rust type of any dtype and evaluates `$body`.
macro_rules! with_any {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            DType::U8 => {
                type $T = u8;
                $body
            }
            DType::I32 => {
                type $T = i32;
                $body
            }
            DType::I64 => {
                type $T = i64;
                $body
            }
            DType::F16 => {
                type $T = half::f16;
                $body
            }
            DType::BF16 => {
                type $T = half::bf16;
                $body
            }
            DType::F32 => {
                type $T = f32;
                $body
            }
            DType::F64 => {
                type $T = f64;
                $body
            }
        }
    };
}

/// Integer indices of a tensor (any integer dtype), with their bound checked.
fn indices_of(op: &'static str, indices: &Tensor, bound: usize) -> Result<Vec<usize>> {
    if !indices.dtype().is_int() {
        return Err(Error::dtype(op, format!("indices must be an integer tensor, got {}", indices.dtype())));
    }
    let v = indices.to_dtype(DType::I64)?.to_vec::<i64>()?;
    v.into_iter()
        .map(|i| {
            if i < 0 || i as usize >= bound {
                Err(Error::invalid(op, format!("index {i} is out of range for an axis of size {bound}")))
            } else {
                Ok(i as usize)
            }
        })
        .collect()
}

impl Tensor {
    /// Joins tensors along an existing axis.
    pub fn concat(xs: &[Tensor], axis: isize) -> Result<Tensor> {
        let first = xs.first().ok_or_else(|| Error::invalid("concat", "no tensors to concatenate"))?;
        let a = resolve_axis(axis, first.rank(), "concat")?;
        for x in xs {
            let same_rest = x.rank() == first.rank()
                && x.dims().iter().zip(first.dims()).enumerate().all(|(i, (d, e))| i == a || d == e);
            if !same_rest || x.dtype() != first.dtype() {
                return Err(Error::shape(
                    "concat",
                    format!(
                        "along axis {axis}: {} {} does not match {} {}",
                        x.dtype(),
                        x.shape(),
                        first.dtype(),
                        first.shape()
                    ),
                ));
            }
        }
        let mut dims = first.dims().to_vec();
        dims[a] = xs.iter().map(|x| x.dims()[a]).sum();
        on_gpu!("concat", all & xs.iter().collect::<Vec<_>>(), |_| crate::cuda::concat(xs, a, dims));
        let outer: usize = dims[..a].iter().product();
        let inner: usize = dims[a + 1..].iter().product();
        let storage = with_any!(first.dtype(), T => {
            let mut out = vec![T::default(); dims.iter().product()];
            let row = dims[a] * inner;
            let mut col = 0;
            for x in xs {
                let chunk = x.dims()[a] * inner;
                x.contiguous()?.with_slice::<T, _>(|src| {
                    for o in 0..outer {
                        out[o * row + col..o * row + col + chunk].copy_from_slice(&src[o * chunk..(o + 1) * chunk]);
                    }
                })?;
                col += chunk;
            }
            T::wrap(out)
        });
        Ok(Tensor::from_storage(storage, Shape::new(dims), Some(Op::Concat { xs: xs.to_vec(), axis: a })))
    }

    /// Joins tensors of equal shape along a new axis.
    pub fn stack(xs: &[Tensor], axis: isize) -> Result<Tensor> {
        let first = xs.first().ok_or_else(|| Error::invalid("stack", "no tensors to stack"))?;
        let a = resolve_axis(axis, first.rank() + 1, "stack")? as isize;
        let expanded = xs.iter().map(|x| x.unsqueeze(a)).collect::<Result<Vec<_>>>()?;
        Tensor::concat(&expanded, a)
    }

    /// Pads each axis with `pads[i] = (before, after)` copies of `value`.
    pub fn pad(&self, pads: &[(usize, usize)], value: f64) -> Result<Tensor> {
        if pads.len() != self.rank() {
            return Err(Error::shape(
                "pad",
                format!(
                    "{} (before, after) pairs given for a tensor of rank {} (shape {})",
                    pads.len(),
                    self.rank(),
                    self.shape()
                ),
            ));
        }
        let dims: Vec<usize> = self.dims().iter().zip(pads).map(|(&d, &(b, a))| d + b + a).collect();
        let mut interior = Layout::contiguous(dims.clone());
        for (axis, (&d, &(b, _))) in self.dims().iter().zip(pads).enumerate() {
            interior = interior.narrow(axis, b, d)?;
        }
        on_gpu!("pad", [self], |_| crate::cuda::pad(self, pads, value, dims, &interior));
        let storage = with_any!(self.dtype(), T => {
            let mut out = vec![T::from_f64(value); dims.iter().product()];
            self.with_slice::<T, _>(|src| tlx_cpu::copy::scatter_strided(src, &interior, &mut out))?;
            T::wrap(out)
        });
        Ok(Tensor::from_storage(
            storage,
            Shape::new(dims),
            Some(Op::Pad { x: self.clone(), pads: pads.to_vec() }),
        ))
    }

    /// Picks entries `indices` (rank-1 integer tensor) along `axis`.
    pub fn index_select(&self, axis: isize, indices: &Tensor) -> Result<Tensor> {
        let a = resolve_axis(axis, self.rank(), "index_select")?;
        if indices.rank() != 1 {
            return Err(Error::shape(
                "index_select",
                format!("indices must be rank 1, got shape {}", indices.shape()),
            ));
        }
        on_gpu!("index_select", [self, indices], |_| {
            let mut dims = self.dims().to_vec();
            dims[a] = indices.numel();
            crate::cuda::index_select(self, a, indices, dims)
        });
        let idx = indices_of("index_select", indices, self.dims()[a])?;
        let mut dims = self.dims().to_vec();
        dims[a] = idx.len();
        let outer: usize = dims[..a].iter().product();
        let inner: usize = dims[a + 1..].iter().product();
        let len = self.dims()[a];
        let storage = with_any!(self.dtype(), T => {
            let mut out = vec![T::default(); dims.iter().product()];
            self.with_slice::<T, _>(|src| {
                for o in 0..outer {
                    for (j, &i) in idx.iter().enumerate() {
                        let from = (o * len + i) * inner;
                        let to = (o * idx.len() + j) * inner;
                        out[to..to + inner].copy_from_slice(&src[from..from + inner]);
                    }
                }
            })?;
            T::wrap(out)
        });
        let op = Op::IndexSelect { x: self.clone(), indices: indices.clone(), axis: a };
        Ok(Tensor::from_storage(storage, Shape::new(dims), Some(op)))
    }

    /// `self` plus `src` added at entries `indices` along `axis` (repeated indices add up).
    /// Not differentiable; used by the gradient of `index_select`.
    pub fn index_add(&self, axis: isize, indices: &Tensor, src: &Tensor) -> Result<Tensor> {
        let a = resolve_axis(axis, self.rank(), "index_add")?;
        let mut want = self.dims().to_vec();
        want[a] = indices.numel();
        if src.dims() != want.as_slice() || src.dtype() != self.dtype() {
            return Err(Error::shape(
                "index_add",
                format!("source {} {} should be {} {want:?}", src.dtype(), src.shape(), self.dtype()),
            ));
        }
        on_gpu!("index_add", [self, indices, src], |_| crate::cuda::index_add(self, a, indices, src));
        let idx = indices_of("index_add", indices, self.dims()[a])?;
        let outer: usize = want[..a].iter().product();
        let inner: usize = want[a + 1..].iter().product();
        let len = self.dims()[a];
        let storage = with_float!(self.dtype(), "index_add", T => {
            let mut out = self.to_vec::<T>()?;
            src.with_slice::<T, _>(|s| {
                for o in 0..outer {
                    for (j, &i) in idx.iter().enumerate() {
                        let to = (o * len + i) * inner;
                        let from = (o * idx.len() + j) * inner;
                        for k in 0..inner {
                            out[to + k] += s[from + k];
                        }
                    }
                }
            })?;
            T::wrap(out)
        });
        Ok(Tensor::from_storage(storage, self.shape().clone(), None))
    }

    /// `out[..., j, ...] = self[..., indices[..., j, ...], ...]` along `axis` (PyTorch's
    /// `gather`): `indices` has this tensor's rank and, off `axis`, no larger dimensions.
    pub fn gather(&self, axis: isize, indices: &Tensor) -> Result<Tensor> {
        let a = resolve_axis(axis, self.rank(), "gather")?;
        on_gpu!("gather", [self, indices], |_| {
            crate::cuda::gather(
                self,
                a,
                indices,
                Some(Op::Gather { x: self.clone(), indices: indices.clone(), axis: a }),
            )
        });
        let positions = gather_positions("gather", self, a, indices)?;
        let storage = with_any!(self.dtype(), T => {
            let src = self.to_vec::<T>()?;
            T::wrap(positions.iter().map(|&p| src[p]).collect())
        });
        let op = Op::Gather { x: self.clone(), indices: indices.clone(), axis: a };
        Ok(Tensor::from_storage(storage, indices.shape().clone(), Some(op)))
    }

    /// `self` plus `src` added at the positions `gather` would read. Not differentiable.
    pub fn scatter_add(&self, axis: isize, indices: &Tensor, src: &Tensor) -> Result<Tensor> {
        let a = resolve_axis(axis, self.rank(), "scatter_add")?;
        if src.shape() != indices.shape() || src.dtype() != self.dtype() {
            return Err(Error::shape(
                "scatter_add",
                format!("source {} must match indices {}", src.shape(), indices.shape()),
            ));
        }
        on_gpu!("scatter_add", [self, indices, src], |_| crate::cuda::scatter_add(self, a, indices, src));
        let positions = gather_positions("scatter_add", self, a, indices)?;
        let storage = with_float!(self.dtype(), "scatter_add", T => {
            let mut out = self.to_vec::<T>()?;
            for (&p, v) in positions.iter().zip(src.to_vec::<T>()?) {
                out[p] += v;
            }
            T::wrap(out)
        });
        Ok(Tensor::from_storage(storage, self.shape().clone(), None))
    }

    /// `cond ? a : b` elementwise, all three broadcast together (`cond` is a u8 mask).
    pub fn where_cond(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        if cond.dtype() != DType::U8 {
            return Err(Error::dtype("where", format!("condition must be a u8 mask, got {}", cond.dtype())));
        }
        super::same_dtype("where", a, b)?;
        let shape = cond.shape().broadcast(a.shape(), "where")?.broadcast(b.shape(), "where")?;
        on_gpu!("where", [cond, a, b], |_| crate::cuda::where_cond(cond, a, b, shape));
        let c = cond.broadcast_to(shape.clone())?.contiguous()?.to_vec::<u8>()?;
        let (la, lb) = (a.layout().broadcast_to(&shape)?, b.layout().broadcast_to(&shape)?);
        let storage = with_any!(a.dtype(), T => {
            super::elementwise::read_pair(a, b, |sa, sb| {
                let mut out = vec![T::default(); shape.numel()];
                tlx_cpu::elementwise::where_select(&c, sa.as_slice::<T>("where")?, &la, sb.as_slice::<T>("where")?, &lb, &mut out);
                Ok(T::wrap(out))
            })?
        });
        let op = Op::Where { cond: cond.clone(), a: a.clone(), b: b.clone() };
        Ok(Tensor::from_storage(storage, shape, Some(op)))
    }

    /// One-hot encoding of integer labels: shape `[..., depth]`, dtype `dtype`.
    pub fn one_hot(indices: &Tensor, depth: usize, dtype: DType) -> Result<Tensor> {
        on_gpu!("one_hot", [indices], |dev| crate::cuda::one_hot(indices, depth, dtype, dev));
        let idx = indices_of("one_hot", indices, depth)?;
        let mut out = CpuStorage::zeros(dtype, idx.len() * depth);
        crate::match_cpu_storage!(&mut out, v => {
            for (r, &i) in idx.iter().enumerate() {
                v[r * depth + i] = Element::from_f64(1.0);
            }
        });
        let mut dims = indices.dims().to_vec();
        dims.push(depth);
        Ok(Tensor::from_storage(out, Shape::new(dims), None))
    }
}

/// Flat positions in `x` (dense, row-major) that `gather(axis, indices)` reads.
fn gather_positions(op: &'static str, x: &Tensor, axis: usize, indices: &Tensor) -> Result<Vec<usize>> {
    if indices.rank() != x.rank()
        || indices.dims().iter().zip(x.dims()).enumerate().any(|(i, (&d, &e))| i != axis && d > e)
    {
        return Err(Error::shape(
            op,
            format!("indices {} do not fit tensor {} along axis {axis}", indices.shape(), x.shape()),
        ));
    }
    let idx = indices_of(op, indices, x.dims()[axis])?;
    let x_strides = x.shape().contiguous_strides();
    let i_strides = indices.shape().contiguous_strides();
    Ok(idx
        .iter()
        .enumerate()
        .map(|(flat, &i)| {
            let mut pos = 0;
            for (d, (&is, &xs)) in i_strides.iter().zip(&x_strides).enumerate() {
                let coord = (flat / is) % indices.dims()[d];
                pos += if d == axis { i } else { coord } * xs;
            }
            pos
        })
        .collect())
}
