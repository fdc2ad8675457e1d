//! Fused inference ops: a convolution with its bias, a folded BatchNormalization, a residual
//! and a ReLU in one pass over the output (`tlx_cpu::conv::conv2d_forward_fused`), and
//! `relu(a + b)` for residual blocks. When a gradient would be recorded, on another device or for
//! f16/bf16, they run as the composite ops they stand for, so results and gradients never
//! depend on which path ran.

use super::elementwise::read_pair;
use super::same_dtype;
use crate::autograd::Op;
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

/// Errors unless the epilogue's per-channel vectors have `[c_out]` entries.
fn check_vectors(op: &'static str, geom: &Conv2dGeometry, ep: &ConvEpilogue<'_>) -> Result<()> {
    for (what, t) in [("bias", ep.bias), ("scale", ep.scale), ("shift", ep.shift)] {
        if let Some(t) = t {
            if t.dims() != [geom.c_out] {
                return Err(Error::shape(
                    op,
                    format!("{what} must have shape [{}], got {}", geom.c_out, t.shape()),
                ));
            }
        }
    }
    Ok(())
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
    /// A convolution with a bias and/or a ReLU/ReLU6 (nothing else) in its epilogue, recorded
    /// for gradients on the CPU: computed as the recorded convolution, Add and activation
    /// would be (the same bits) and recorded as one op, so that the backward pass does not
    /// keep the sums without the bias or before the activation alive (one or two whole
    /// activations per convolution while a network trains). `None` where this does not apply.
    fn conv2d_recorded_as_one_op(
        &self,
        kernel: &Tensor,
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
        groups: usize,
        ep: &ConvEpilogue<'_>,
    ) -> Result<Option<Tensor>> {
        let (bias, act) = (ep.bias, act_op(ep.act));
        if ep.scale.is_some()
            || ep.shift.is_some()
            || ep.residual.is_some()
            || (bias.is_none() && act.is_none())
        {
            return Ok(None);
        }
        let all: Vec<&Tensor> = [self, kernel].into_iter().chain(bias).collect();
        if !is_grad_enabled()
            || !all.iter().all(|t| t.device() == Device::Cpu && t.dtype() == self.dtype())
            || !matches!(self.dtype(), DType::F32 | DType::F64)
        {
            return Ok(None);
        }
        let geom = Conv2dGeometry::new(self.dims(), kernel.dims(), strides, dilation, padding, groups)?;
        if bias.is_some_and(|b| b.dims() != [geom.c_out]) {
            return Ok(None); // the separate ops' broadcasting (and errors)
        }
        let (x, k) = (self.contiguous()?, kernel.contiguous()?);
        let y = super::conv::conv2d_values(&geom, &x, &k, bias)?;
        let y = Tensor::from_storage(y, Shape::from(geom.output_shape()), None);
        let y = match act {
            Some(op) => crate::with_no_grad(|| y.unary(op))?,
            None => y,
        };
        let op = Op::Conv2d { x: self.clone(), kernel: kernel.clone(), geom, bias: bias.cloned(), act };
        Ok(Some(y.view_with(y.0.layout.clone(), op)))
    }

    /// `act((conv2d(self, kernel) + bias)·scale + shift + residual)` (see [`ConvEpilogue`]),
    /// computed in one pass when no gradient is recorded; otherwise as the separate ops.
    /// (A bias and an activation alone, recorded on the CPU, are one op:
    /// `conv2d_recorded_as_one_op`.)
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
            if let Some(y) =
                self.conv2d_recorded_as_one_op(kernel, strides, dilation, padding, groups, &ep)?
            {
                return Ok(y);
            }
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
        check_vectors(OP, &geom, &ep)?;
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

    /// [`Tensor::conv2d_fused`] with the residual given by value (`ep.residual` must be
    /// `None`). Where this is the residual's only handle (a residual block's shortcut at its
    /// last use), the f32 kernel is kept and the products run in one depth block
    /// (`tlx_cpu::conv::KeptKernel::overwrites_residual`), the output is stored over the
    /// residual's buffer: no new buffer, one stream less, the same bits. Otherwise exactly
    /// `conv2d_fused` with the residual.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_fused_over_residual(
        &self,
        kernel: &Tensor,
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
        groups: usize,
        ep: ConvEpilogue<'_>,
        residual: Tensor,
    ) -> Result<Tensor> {
        const OP: &str = "conv2d_fused_over_residual";
        if ep.residual.is_some() {
            return Err(Error::invalid(OP, "the residual comes by value, not in the epilogue"));
        }
        let mut all = vec![self, kernel, &residual];
        all.extend(ep.bias.iter().chain(&ep.scale).chain(&ep.shift).copied());
        let residual = if fusable(&all) && self.dtype() == DType::F32 {
            match self
                .conv2d_over_owned_residual(kernel, strides, dilation, padding, groups, &ep, residual)?
            {
                Ok(y) => return Ok(y),
                Err(r) => r,
            }
        } else {
            residual
        };
        self.conv2d_fused(
            kernel,
            strides,
            dilation,
            padding,
            groups,
            ConvEpilogue { residual: Some(&residual), ..ep },
        )
    }

    /// The in-place path of [`Tensor::conv2d_fused_over_residual`] (f32 on the CPU, nothing
    /// recorded): `Ok(Err(residual))` back where it does not apply.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_over_owned_residual(
        &self,
        kernel: &Tensor,
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
        groups: usize,
        ep: &ConvEpilogue<'_>,
        residual: Tensor,
    ) -> Result<std::result::Result<Tensor, Tensor>> {
        const OP: &str = "conv2d_fused_over_residual";
        let geom = Conv2dGeometry::new(self.dims(), kernel.dims(), strides, dilation, padding, groups)?;
        check_vectors(OP, &geom, ep)?;
        if residual.dims() != geom.output_shape() {
            return Ok(Err(residual));
        }
        let k = kernel.contiguous()?;
        let kept = match super::conv::kept_kernel(&geom, &k)? {
            Some(kept) if kept.overwrites_residual(&geom) => kept,
            _ => return Ok(Err(residual)),
        };
        let mut out = match crate::recycle::take_whole::<f32>(residual) {
            Ok(out) => out,
            Err(r) => return Ok(Err(r)),
        };
        let x = self.contiguous()?;
        let vectors = EpilogueVectors::<f32>::of(ep)?;
        x.with_slice::<f32, _>(|xs| {
            k.with_slice::<f32, _>(|ks| {
                tlx_cpu::conv::conv2d_forward_fused_kept_over_residual(
                    &geom,
                    xs,
                    ks,
                    &kept,
                    &vectors.cpu(),
                    &mut out,
                )
            })
        })??;
        Ok(Ok(Tensor::from_storage(f32::wrap(out), Shape::from(geom.output_shape()), None)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{no_grad, Rng};

    fn rand(dims: &[usize], seed: u64) -> Tensor {
        Tensor::rand_uniform(dims.to_vec(), -1.0, 1.0, DType::F32, &mut Rng::new(seed)).unwrap()
    }

    /// A fresh tensor of `t`'s values: its buffer's only handle.
    fn owned_copy(t: &Tensor) -> Tensor {
        Tensor::from_vec(t.to_vec::<f32>().unwrap(), t.dims().to_vec()).unwrap()
    }

    fn buffer_address(t: &Tensor) -> usize {
        t.0.storage.read().unwrap().as_slice::<f32>("test").unwrap().as_ptr() as usize
    }

    fn bits(t: &Tensor) -> Vec<u32> {
        t.to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
    }

    /// The output is stored over a residual nobody else holds (same bits as the residual
    /// apart); a residual with another handle, a view, a kernel that runs through Winograd
    /// or in two depth blocks, and a recorded gradient all take the ordinary path.
    #[test]
    fn the_output_takes_over_a_residual_only_when_nobody_else_holds_it() {
        let (bias, scale) = (rand(&[24], 3), rand(&[24], 4));
        fn ep<'a>(bias: &'a Tensor, scale: &'a Tensor, residual: Option<&'a Tensor>) -> ConvEpilogue<'a> {
            ConvEpilogue {
                bias: Some(bias),
                scale: Some(scale),
                shift: None,
                residual,
                act: EpilogueAct::Relu,
            }
        }
        let run = |x: &Tensor, k: &Tensor, r: Tensor| {
            x.conv2d_fused_over_residual(k, (1, 1), (1, 1), Padding::Same, 1, ep(&bias, &scale, None), r)
                .unwrap()
        };
        let _g = no_grad();
        for (x_dims, k_dims, in_place) in [
            ([2, 6, 7, 16], [1, 1, 16, 24], true),
            ([1, 12, 12, 24], [3, 3, 24, 24], false),
            ([1, 3, 4, 1100], [1, 1, 1100, 24], false),
        ] {
            let (x, k) = (rand(&x_dims, 1), rand(&k_dims, 2));
            let r = rand(&[x_dims[0], x_dims[1], x_dims[2], 24], 5);
            let want =
                x.conv2d_fused(&k, (1, 1), (1, 1), Padding::Same, 1, ep(&bias, &scale, Some(&r))).unwrap();
            // The only handle.
            let sole = owned_copy(&r);
            let address = buffer_address(&sole);
            let y = run(&x, &k, sole);
            assert_eq!(bits(&y), bits(&want), "{k_dims:?}");
            assert_eq!(buffer_address(&y) == address, in_place, "{k_dims:?}");
            // Another handle, or a view, keeps its values.
            let shared = owned_copy(&r);
            let other = shared.clone();
            let y = run(&x, &k, shared);
            assert_eq!(bits(&y), bits(&want));
            assert_eq!(bits(&other), bits(&r), "the other handle's values are untouched");
            let base = owned_copy(&r);
            let view = base.reshape(r.dims().to_vec()).unwrap();
            let y = run(&x, &k, view);
            assert_eq!((bits(&y), bits(&base)), (bits(&want), bits(&r)));
        }
        drop(_g);
        // Recorded: the ordinary ops, and the residual gets its gradient.
        let (x, k) = (rand(&[1, 4, 5, 16], 6), rand(&[1, 1, 16, 24], 7));
        let r = rand(&[1, 4, 5, 24], 8).with_grad().unwrap();
        let y = run(&x, &k, r.clone());
        y.sum_all().unwrap().backward().unwrap();
        assert!(r.grad().is_some());
        // The residual comes by value only.
        let e = x.conv2d_fused_over_residual(
            &k,
            (1, 1),
            (1, 1),
            Padding::Same,
            1,
            ep(&bias, &scale, Some(&r)),
            r.clone(),
        );
        assert!(e.is_err());
    }
}
