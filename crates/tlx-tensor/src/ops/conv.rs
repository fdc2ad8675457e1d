//! The convolution family on NHWC activations and HWIO kernels: conv2d (strides, dilation,
//! groups, Keras's same/valid padding), depthwise conv2d with a depth multiplier, max and
//! average pooling, global pooling; with the gradient helpers autograd uses.

use super::{half_roundtrip, on_gpu, same_dtype, with_float};
use crate::autograd::Op;
use crate::storage::StorageElement;
use crate::Tensor;
use std::sync::Arc;
use tlx_core::{Conv2dGeometry, Error, Padding, Pool2dGeometry, Result, Shape};

fn check_rank4(op: &'static str, what: &str, t: &Tensor) -> Result<()> {
    if t.rank() != 4 {
        return Err(Error::shape(op, format!("{what} must be rank 4 (NHWC), got shape {}", t.shape())));
    }
    Ok(())
}

/// `kernel` (f32, contiguous) in the form `geom`'s convolution runs with (transformed for
/// Winograd or packed for the GEMM: `tlx_cpu::conv::KeptKernel`), made on the first call and
/// kept with the kernel's storage until the weights are written; `None` for convolutions
/// that keep nothing (grouped, depthwise, small patches).
pub(crate) fn kept_kernel(
    geom: &Conv2dGeometry,
    kernel: &Tensor,
) -> Result<Option<Arc<tlx_cpu::conv::KeptKernel>>> {
    use tlx_cpu::conv::KeptKernel;
    let Some(algorithm) = KeptKernel::algorithm(geom) else { return Ok(None) };
    let kept = kernel.derived_f32(&format!("{algorithm:?}"), |ks| {
        KeptKernel::new(algorithm, geom, ks).ok_or_else(|| {
            Error::invalid("conv2d", format!("kernel {} does not fit {geom:?}", kernel.shape()))
        })
    })?;
    Ok(Some(kept))
}

/// `conv2d_forward_fused_kept` of `x` and the contiguous f32 `kernel` kept as `kept`, with
/// `ep` (its residual read from `residual`), into a new buffer.
pub(crate) fn run_kept(
    geom: &Conv2dGeometry,
    x: &Tensor,
    kernel: &Tensor,
    kept: &tlx_cpu::conv::KeptKernel,
    ep: tlx_cpu::conv::Epilogue<'_, f32>,
    residual: Option<&Tensor>,
) -> Result<Vec<f32>> {
    let mut out = crate::recycle::output_buffer::<f32>(geom.output_shape().iter().product());
    x.with_slice::<f32, _>(|xs| {
        kernel.with_slice::<f32, _>(|ks| match residual {
            Some(r) => r.with_slice::<f32, _>(|rs| {
                let with_residual = tlx_cpu::conv::Epilogue { residual: Some(rs), ..ep };
                tlx_cpu::conv::conv2d_forward_fused_kept(geom, xs, ks, kept, &with_residual, &mut out)
            }),
            None => {
                tlx_cpu::conv::conv2d_forward_fused_kept(geom, xs, ks, kept, &ep, &mut out);
                Ok(())
            }
        })
    })???;
    Ok(out)
}

/// The convolution of contiguous CPU `x` and `k` as it runs where a gradient is recorded
/// (the kernel not kept), then `bias` `[c_out]` added to each output pixel if given (one
/// rounding, as an Add after it).
pub(crate) fn conv2d_values(
    geom: &Conv2dGeometry,
    x: &Tensor,
    k: &Tensor,
    bias: Option<&Tensor>,
) -> Result<crate::CpuStorage> {
    Ok(with_float!(x.dtype(), "conv2d", T => {
        let bias = bias.map(|b| b.to_vec::<T>()).transpose()?;
        x.with_slice::<T, _>(|xs| k.with_slice::<T, _>(|ks| {
            let mut out = vec![T::default(); geom.output_shape().iter().product()];
            tlx_cpu::conv::conv2d_forward(geom, xs, ks, None, &mut out);
            if let Some(b) = &bias {
                for row in out.chunks_exact_mut(geom.c_out) {
                    row.iter_mut().zip(b).for_each(|(o, &b)| *o += b);
                }
            }
            T::wrap(out)
        }))??
    }))
}

impl Tensor {
    /// 2-D convolution of an NHWC input with an HWIO kernel `[kh, kw, c_in/groups, c_out]`.
    pub fn conv2d(
        &self,
        kernel: &Tensor,
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
        groups: usize,
    ) -> Result<Tensor> {
        same_dtype("conv2d", self, kernel)?;
        half_roundtrip!(self, |x| x.conv2d(
            &kernel.to_dtype(tlx_core::DType::F32)?,
            strides,
            dilation,
            padding,
            groups
        ));
        let geom = Conv2dGeometry::new(self.dims(), kernel.dims(), strides, dilation, padding, groups)?;
        on_gpu!("conv2d", [self, kernel], |_| crate::cuda::conv2d(self, kernel, geom));
        let (x, k) = (self.contiguous()?, kernel.contiguous()?);
        // Without a gradient to record (inference, a frozen layer), an f32 kernel runs in its
        // kept form (transformed for Winograd or packed), as the fused convolution's does
        // (same bits).
        let op = Op::Conv2d { x: self.clone(), kernel: kernel.clone(), geom, bias: None, act: None };
        let kept = match self.dtype() {
            tlx_core::DType::F32 if !crate::autograd::should_record(&op) => kept_kernel(&geom, &k)?,
            _ => None,
        };
        if let Some(kept) = kept {
            let out = run_kept(&geom, &x, &k, &kept, tlx_cpu::conv::Epilogue::identity(), None)?;
            return Ok(Tensor::from_storage(f32::wrap(out), Shape::from(geom.output_shape()), Some(op)));
        }
        let storage = conv2d_values(&geom, &x, &k, None)?;
        Ok(Tensor::from_storage(storage, Shape::from(geom.output_shape()), Some(op)))
    }

    /// Depthwise convolution with Keras's kernel `[kh, kw, c_in, multiplier]`; output channel
    /// `c·multiplier + m`.
    pub fn depthwise_conv2d(
        &self,
        kernel: &Tensor,
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
    ) -> Result<Tensor> {
        check_rank4("depthwise_conv2d", "input", self)?;
        if kernel.rank() != 4 || kernel.dims()[2] != self.dims()[3] {
            return Err(Error::shape(
                "depthwise_conv2d",
                format!(
                    "kernel {} must be [kh, kw, {}, multiplier] for input {}",
                    kernel.shape(),
                    self.dims()[3],
                    self.shape()
                ),
            ));
        }
        let [kh, kw, c, m] = [kernel.dims()[0], kernel.dims()[1], kernel.dims()[2], kernel.dims()[3]];
        let grouped = kernel.reshape([kh, kw, 1, c * m])?;
        self.conv2d(&grouped, strides, dilation, padding, c)
    }

    /// Max pooling over `pool` windows (padded cells never win).
    pub fn max_pool2d(
        &self,
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Result<Tensor> {
        half_roundtrip!(self, |x| x.max_pool2d(pool, strides, padding));
        check_rank4("max_pool2d", "input", self)?;
        let geom = Pool2dGeometry::new(self.dims(), pool, strides, padding)?;
        on_gpu!("max_pool2d", [self], |_| crate::cuda::pool2d(self, geom, true));
        let x = self.contiguous()?;
        let storage = with_float!(self.dtype(), "max_pool2d", T => {
            x.with_slice::<T, _>(|xs| {
                let mut out = vec![T::default(); geom.output_shape().iter().product()];
                tlx_cpu::pool::max_pool2d_forward(&geom, xs, &mut out);
                T::wrap(out)
            })?
        });
        Ok(Tensor::from_storage(
            storage,
            Shape::from(geom.output_shape()),
            Some(Op::MaxPool2d { x: self.clone(), geom }),
        ))
    }

    /// Average pooling over `pool` windows, dividing by the number of real (unpadded) cells.
    pub fn avg_pool2d(
        &self,
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Result<Tensor> {
        half_roundtrip!(self, |x| x.avg_pool2d(pool, strides, padding));
        check_rank4("avg_pool2d", "input", self)?;
        let geom = Pool2dGeometry::new(self.dims(), pool, strides, padding)?;
        on_gpu!("avg_pool2d", [self], |_| crate::cuda::pool2d(self, geom, false));
        let x = self.contiguous()?;
        let storage = with_float!(self.dtype(), "avg_pool2d", T => {
            x.with_slice::<T, _>(|xs| {
                let mut out = vec![T::default(); geom.output_shape().iter().product()];
                tlx_cpu::pool::avg_pool2d_forward(&geom, xs, &mut out);
                T::wrap(out)
            })?
        });
        Ok(Tensor::from_storage(
            storage,
            Shape::from(geom.output_shape()),
            Some(Op::AvgPool2d { x: self.clone(), geom }),
        ))
    }

    /// Mean over H and W of an NHWC tensor: `[n, c]`, or `[n, 1, 1, c]` with `keepdims`.
    pub fn global_avg_pool2d(&self, keepdims: bool) -> Result<Tensor> {
        check_rank4("global_avg_pool2d", "input", self)?;
        self.mean(&[1, 2], keepdims)
    }

    /// Maximum over H and W of an NHWC tensor.
    pub fn global_max_pool2d(&self, keepdims: bool) -> Result<Tensor> {
        check_rank4("global_max_pool2d", "input", self)?;
        self.max(&[1, 2], keepdims)
    }
}

/// Gradient of conv2d with respect to its input.
pub(crate) fn conv2d_input_grad(geom: &Conv2dGeometry, g: &Tensor, kernel: &Tensor) -> Result<Tensor> {
    on_gpu!("conv2d", [g, kernel], |_| crate::cuda::conv2d_input_grad(geom, g, kernel));
    let (g, k) = (g.contiguous()?, kernel.contiguous()?);
    let storage = with_float!(g.dtype(), "conv2d", T => {
        g.with_slice::<T, _>(|gs| k.with_slice::<T, _>(|ks| {
            let mut out = vec![T::default(); geom.input_shape().iter().product()];
            tlx_cpu::conv::conv2d_backward_input(geom, gs, ks, &mut out);
            T::wrap(out)
        }))??
    });
    Ok(Tensor::from_storage(storage, Shape::from(geom.input_shape()), None))
}

/// Gradient of conv2d with respect to its kernel.
pub(crate) fn conv2d_kernel_grad(geom: &Conv2dGeometry, x: &Tensor, g: &Tensor) -> Result<Tensor> {
    on_gpu!("conv2d", [x, g], |_| crate::cuda::conv2d_kernel_grad(geom, x, g));
    let (x, g) = (x.contiguous()?, g.contiguous()?);
    let storage = with_float!(g.dtype(), "conv2d", T => {
        x.with_slice::<T, _>(|xs| g.with_slice::<T, _>(|gs| {
            let mut out = vec![T::default(); geom.kernel_shape().iter().product()];
            tlx_cpu::conv::conv2d_backward_kernel(geom, xs, gs, &mut out);
            T::wrap(out)
        }))??
    });
    Ok(Tensor::from_storage(storage, Shape::from(geom.kernel_shape()), None))
}

/// Gradient of max pooling with respect to its input.
pub(crate) fn max_pool2d_grad(geom: &Pool2dGeometry, x: &Tensor, g: &Tensor) -> Result<Tensor> {
    on_gpu!("max_pool2d", [x, g], |_| crate::cuda::pool2d_grad(geom, x, g, true));
    let (x, g) = (x.contiguous()?, g.contiguous()?);
    let storage = with_float!(g.dtype(), "max_pool2d", T => {
        x.with_slice::<T, _>(|xs| g.with_slice::<T, _>(|gs| {
            let mut out = vec![T::default(); xs.len()];
            tlx_cpu::pool::max_pool2d_backward(geom, xs, gs, &mut out);
            T::wrap(out)
        }))??
    });
    Ok(Tensor::from_storage(storage, x.shape().clone(), None))
}

/// Gradient of average pooling with respect to its input.
pub(crate) fn avg_pool2d_grad(geom: &Pool2dGeometry, g: &Tensor) -> Result<Tensor> {
    on_gpu!("avg_pool2d", [g], |_| crate::cuda::pool2d_grad(geom, g, g, false));
    let g = g.contiguous()?;
    let in_shape = [geom.n, geom.h, geom.w, geom.c];
    let storage = with_float!(g.dtype(), "avg_pool2d", T => {
        g.with_slice::<T, _>(|gs| {
            let mut out = vec![T::default(); in_shape.iter().product()];
            tlx_cpu::pool::avg_pool2d_backward(geom, gs, &mut out);
            T::wrap(out)
        })?
    });
    Ok(Tensor::from_storage(storage, Shape::from(in_shape), None))
}
