//! Fused inference ops: a convolution with its bias, a folded BatchNormalization, a residual
//! and a ReLU in one pass over the output (`tlx_cpu::conv::conv2d_forward_fused`), and
//! `relu(a + b)` for residual blocks. When a gradient would be recorded, on another device or for
//! f16/bf16, they run as the composite ops they stand for, so results and gradients never
//! depend on which path ran.

use super::elementwise::read_pair;
use super::same_dtype;
use crate::storage::StorageElement;
use crate::{is_grad_enabled, Device, Tensor};
use tlx_core::{Conv2dGeometry, DType, Error, Padding, Result, Shape, UnaryOp};
pub use tlx_cpu::conv::EpilogueAct;

/// What follows a convolution: `y = act((conv + bias)·scale + shift + residual)` per output
/// channel.
#[derive(Clone, Copy, Debug)]
pub struct ConvEpilogue<'a> {
    /// The convolution's own bias `[c_out]`.
    pub bias: Option<&'a Tensor>,
    /// Per-channel factor `[c_out]` (a BatchNormalization's `γ/√(σ² + ε)`).
    pub scale: Option<&'a Tensor>,
    /// Per-channel offset `[c_out]` (a BatchNormalization's `β − μ·scale`).
    pub shift: Option<&'a Tensor>,
    /// A tensor of the output's shape added last, before the activation (a residual block's
    /// shortcut: Keras's `Add()([shortcut, x])` then `relu`).
    pub residual: Option<&'a Tensor>,
    /// The activation at the end.
    pub act: EpilogueAct,
}

fn act_op(act: EpilogueAct) -> Option<UnaryOp> {
    match act {
        EpilogueAct::Linear => None,
        EpilogueAct::Relu => Some(UnaryOp::Relu),
        EpilogueAct::Relu6 => Some(UnaryOp::Relu6),
    }
}

/// Whether the fused CPU kernels may run: nothing to record, all on the CPU, f32 or f64.
fn fusable(ts: &[&Tensor]) -> bool {
    let record = is_grad_enabled() && ts.iter().any(|t| t.requires_grad());
    !record
        && ts.iter().all(|t| t.device() == Device::Cpu)
        && matches!(ts[0].dtype(), DType::F32 | DType::F64)
        && ts.iter().all(|t| t.dtype() == ts[0].dtype())
}

/// A [`ConvEpilogue`]'s per-channel vectors read out as `T`, for the CPU epilogue to borrow.
struct EpilogueVectors<T> {
    bias: Option<Vec<T>>,
    scale: Option<Vec<T>>,
    shift: Option<Vec<T>>,
    act: EpilogueAct,
}

impl<T: StorageElement> EpilogueVectors<T> {
    fn of(ep: &ConvEpilogue<'_>) -> Result<Self> {
        let vec = |t: Option<&Tensor>| t.map(|t| t.to_vec::<T>()).transpose();
        Ok(EpilogueVectors { bias: vec(ep.bias)?, scale: vec(ep.scale)?, shift: vec(ep.shift)?, act: ep.act })
    }

    /// The CPU epilogue over these vectors, without a residual.
    fn cpu(&self) -> tlx_cpu::conv::Epilogue<'_, T> {
        tlx_cpu::conv::Epilogue {
            bias: self.bias.as_deref(),
            scale: self.scale.as_deref(),
            shift: self.shift.as_deref(),
            residual: None,
            act: self.act,
        }
    }
}

impl Tensor {
    /// `act((conv2d(self, kernel) + bias)·scale + shift + residual)` (see [`ConvEpilogue`]),
    /// computed in one pass when no gradient is recorded; otherwise as the separate ops.
    pub fn conv2d_fused(
        &self,
        kernel: &Tensor,
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
        groups: usize,
        ep: ConvEpilogue<'_>,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d_fused";
        let mut all = vec![self, kernel];
        all.extend(ep.bias.iter().chain(&ep.scale).chain(&ep.shift).chain(&ep.residual).copied());
        // The fused kernel adds a residual of exactly the output's shape; anything else (a
        // broadcast) runs as the separate ops, as do recorded gradients.
        let residual_fits = || -> Result<bool> {
            let Some(r) = ep.residual else { return Ok(true) };
            let geom = Conv2dGeometry::new(self.dims(), kernel.dims(), strides, dilation, padding, groups)?;
            Ok(r.dims() == geom.output_shape())
        };
        if !fusable(&all) || !residual_fits()? {
            let mut y = self.conv2d(kernel, strides, dilation, padding, groups)?;
            if let Some(b) = ep.bias {
                y = y.add(b)?;
            }
            if let Some(s) = ep.scale {
                y = y.mul(s)?;
            }
            if let Some(s) = ep.shift {
                y = y.add(s)?;
            }
            if let Some(r) = ep.residual {
                y = r.add(&y)?;
            }
            return match act_op(ep.act) {
                Some(op) => y.unary(op),
                None => Ok(y),
            };
        }
        for t in &all[1..] {
            same_dtype(OP, self, t)?;
        }
        let geom = Conv2dGeometry::new(self.dims(), kernel.dims(), strides, dilation, padding, groups)?;
        for (what, t) in [("bias", ep.bias), ("scale", ep.scale), ("shift", ep.shift)] {
            if let Some(t) = t {
                if t.dims() != [geom.c_out] {
                    return Err(Error::shape(
                        OP,
                        format!("{what} must have shape [{}], got {}", geom.c_out, t.shape()),
                    ));
                }
            }
        }
        let out_shape = Shape::from(geom.output_shape());
        let (x, k) = (self.contiguous()?, kernel.contiguous()?);
        let residual = ep.residual.map(Tensor::contiguous).transpose()?;
        let ep = ConvEpilogue { residual: residual.as_ref(), ..ep };
        fn run<T: StorageElement + tlx_core::Float>(
            geom: &Conv2dGeometry,
            x: &Tensor,
            k: &Tensor,
            ep: &ConvEpilogue<'_>,
        ) -> Result<crate::CpuStorage> {
            let vectors = EpilogueVectors::<T>::of(ep)?;
            let cpu_ep = vectors.cpu();
            // Overwritten entirely (bias or β = 0): a recycled buffer will do.
            let mut out = crate::recycle::output_buffer::<T>(geom.output_shape().iter().product());
            x.with_slice::<T, _>(|xs| {
                k.with_slice::<T, _>(|ks| match ep.residual {
                    // Read in place (contiguous): no copy of a whole activation.
                    Some(r) => r.with_slice::<T, _>(|rs| {
                        let with_residual = tlx_cpu::conv::Epilogue { residual: Some(rs), ..cpu_ep };
                        tlx_cpu::conv::conv2d_forward_fused(geom, xs, ks, &with_residual, &mut out)
                    }),
                    None => {
                        tlx_cpu::conv::conv2d_forward_fused(geom, xs, ks, &cpu_ep, &mut out);
                        Ok(())
                    }
                })
            })???;
            Ok(T::wrap(out))
        }
        let storage = match self.dtype() {
            DType::F32 => match super::conv::kept_kernel(&geom, &k)? {
                // The kernel's preparation skipped (kept from an earlier call).
                Some(kept) => {
                    let vectors = EpilogueVectors::<f32>::of(&ep)?;
                    f32::wrap(super::conv::run_kept(&geom, &x, &k, &kept, vectors.cpu(), ep.residual)?)
                }
                None => run::<f32>(&geom, &x, &k, &ep)?,
            },
            _ => run::<f64>(&geom, &x, &k, &ep)?,
        };
        Ok(Tensor::from_storage(storage, out_shape, None))
    }

    /// Zero padding by `(top, bottom, left, right)` then unpadded max pooling (Keras's
    /// `ZeroPadding2D` → `MaxPooling2D`, ResNet's stem), in one pass without the padded copy
    /// when no gradient is recorded (same bits); otherwise as the two ops.
    pub fn max_pool2d_zero_padded(
        &self,
        pads: (usize, usize, usize, usize),
        pool: (usize, usize),
        strides: (usize, usize),
    ) -> Result<Tensor> {
        let (top, bottom, left, right) = pads;
        if !fusable(&[self]) || self.rank() != 4 {
            let padded = self.pad(&[(0, 0), (top, bottom), (left, right), (0, 0)], 0.0)?;
            return padded.max_pool2d(pool, strides, Padding::Valid);
        }
        let explicit = Padding::Explicit { top, bottom, left, right };
        let geom = tlx_core::Pool2dGeometry::new(self.dims(), pool, strides, explicit)?;
        let x = self.contiguous()?;
        fn run<T: StorageElement + tlx_core::Float>(
            geom: &tlx_core::Pool2dGeometry,
            x: &Tensor,
        ) -> Result<crate::CpuStorage> {
            let mut out = crate::recycle::output_buffer::<T>(geom.output_shape().iter().product());
            x.with_slice::<T, _>(|xs| tlx_cpu::pool::max_pool2d_forward_zero_padded(geom, xs, &mut out))?;
            Ok(T::wrap(out))
        }
        let storage = match self.dtype() {
            DType::F32 => run::<f32>(&geom, &x)?,
            _ => run::<f64>(&geom, &x)?,
        };
        Ok(Tensor::from_storage(storage, Shape::from(geom.output_shape()), None))
    }

    /// `relu(self + other)` for two tensors of one shape (a residual block's end), in one pass
    /// when no gradient is recorded; otherwise as the separate ops.
    pub fn add_relu(&self, other: &Tensor) -> Result<Tensor> {
        if !fusable(&[self, other]) || self.shape() != other.shape() {
            return self.add(other)?.unary(UnaryOp::Relu);
        }
        let (a, b) = (self.contiguous()?, other.contiguous()?);
        fn run<T: StorageElement + tlx_core::Float>(a: &Tensor, b: &Tensor) -> Result<crate::CpuStorage> {
            read_pair(a, b, |sa, sb| {
                let (ra, rb) = (a.layout().contiguous_range(), b.layout().contiguous_range());
                let (Some(ra), Some(rb)) = (ra, rb) else {
                    return Err(Error::invalid("add_relu", "operands are not contiguous"));
                };
                let (xa, xb) = (&sa.as_slice::<T>("add_relu")?[ra], &sb.as_slice::<T>("add_relu")?[rb]);
                let mut out = crate::recycle::output_buffer::<T>(xa.len());
                tlx_cpu::elementwise::add_relu(xa, xb, &mut out);
                Ok(T::wrap(out))
            })
        }
        let storage = match self.dtype() {
            DType::F32 => run::<f32>(&a, &b)?,
            _ => run::<f64>(&a, &b)?,
        };
        Ok(Tensor::from_storage(storage, self.shape().clone(), None))
    }
}
