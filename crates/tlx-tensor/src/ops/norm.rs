//! Batch normalization over the last (channel) axis: the fused training-mode op with batch
//! statistics, and the inference form built from elementwise ops.

use super::{half_roundtrip, on_gpu, with_float};
use crate::autograd::Op;
use crate::storage::StorageElement;
use crate::Tensor;
use tlx_core::{Element, Error, Result, Shape, UnaryOp};

fn check_channel_param(op: &'static str, name: &str, p: Option<&Tensor>, x: &Tensor, c: usize) -> Result<()> {
    if let Some(p) = p {
        if p.dims() != [c] || p.dtype() != x.dtype() {
            return Err(Error::shape(
                op,
                format!(
                    "{name} is {} {}, expected {} [{c}] for input {}",
                    p.dtype(),
                    p.shape(),
                    x.dtype(),
                    x.shape()
                ),
            ));
        }
    }
    Ok(())
}

impl Tensor {
    /// Training-mode batch norm over every axis but the last: returns `(y, mean, variance)`,
    /// the batch mean and biased variance per channel (for the moving-statistics update).
    /// `y = (x − μ)/√(σ² + ε)·γ + β`; γ/β may be absent (`scale`/`center` off).
    pub fn batch_norm_train(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f64,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.batch_norm_train_then(gamma, beta, eps, None, None)
    }

    /// Training-mode batch norm, then the residual `r` added if given, then ReLU:
    /// `y = relu(bn(x) + r)` with [`Tensor::batch_norm_train`]'s `(y, mean, variance)`
    /// (ResNet's `bn → relu` and `bn → add → relu`). The same values as those ops one by
    /// one, and the same gradients, but recorded as one op that keeps only `x`, `r` and `y`
    /// for the backward pass: the normalized values and the sum are not kept alive until
    /// then (a third of a ResNet's training activations). On a GPU, in half precision or
    /// with a residual of another shape it runs as the separate ops.
    pub fn batch_norm_train_relu(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f64,
        residual: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.batch_norm_train_act(gamma, beta, eps, residual, UnaryOp::Relu)
    }

    /// [`Tensor::batch_norm_train_relu`] with ReLU6 (MobileNetV2's `_BN → _relu`).
    pub fn batch_norm_train_relu6(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f64,
        residual: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.batch_norm_train_act(gamma, beta, eps, residual, UnaryOp::Relu6)
    }

    /// `act(bn(x) + residual)` as one recorded op where it can be (see
    /// [`Tensor::batch_norm_train_relu`]), else as the separate ops.
    fn batch_norm_train_act(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f64,
        residual: Option<&Tensor>,
        act: UnaryOp,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let fusable = self.device() == crate::Device::Cpu
            && !matches!(self.dtype(), tlx_core::DType::F16 | tlx_core::DType::BF16)
            && residual.is_none_or(|r| {
                r.shape() == self.shape() && r.dtype() == self.dtype() && r.device() == self.device()
            });
        if fusable {
            return self.batch_norm_train_then(gamma, beta, eps, residual, Some(act));
        }
        let (y, mean, var) = self.batch_norm_train(gamma, beta, eps)?;
        let y = match residual {
            Some(r) => y.add(r)?,
            None => y,
        };
        Ok((y.unary(act)?, mean, var))
    }

    /// [`Tensor::batch_norm_train`], then (with `act`, ReLU or ReLU6) `act(· + residual)` in
    /// the same recorded op.
    fn batch_norm_train_then(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        eps: f64,
        residual: Option<&Tensor>,
        act: Option<UnaryOp>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        debug_assert!(act.is_some() || residual.is_none());
        debug_assert!(matches!(act, None | Some(UnaryOp::Relu | UnaryOp::Relu6)));
        const OP: &str = "batch_norm";
        if self.rank() == 0 || self.numel() == 0 {
            return Err(Error::shape(
                OP,
                format!("needs a non-empty input with a channel axis, got shape {}", self.shape()),
            ));
        }
        if matches!(self.dtype(), tlx_core::DType::F16 | tlx_core::DType::BF16) {
            let f32 = |t: Option<&Tensor>| t.map(|t| t.to_dtype(tlx_core::DType::F32)).transpose();
            let (y, m, v) = self.to_dtype(tlx_core::DType::F32)?.batch_norm_train(
                f32(gamma)?.as_ref(),
                f32(beta)?.as_ref(),
                eps,
            )?;
            return Ok((y.to_dtype(self.dtype())?, m, v));
        }
        let c = *self.dims().last().unwrap();
        check_channel_param(OP, "gamma", gamma, self, c)?;
        check_channel_param(OP, "beta", beta, self, c)?;
        if eps.is_nan() || eps <= 0.0 {
            return Err(Error::invalid(OP, format!("epsilon must be positive, got {eps}")));
        }
        on_gpu!(OP, all & std::iter::once(self).chain(gamma).chain(beta).collect::<Vec<_>>(), |dev| {
            crate::cuda::batch_norm_train(self, gamma, beta, eps, c, dev)
        });
        let x = self.contiguous()?;
        let (y, mean, var, inv_std) = with_float!(self.dtype(), OP, T => {
            let mut mean = vec![T::default(); c];
            let mut var = vec![T::default(); c];
            x.with_slice::<T, _>(|xs| tlx_cpu::norm::channel_moments(xs, c, &mut mean, &mut var))?;
            let inv_std: Vec<T> = var.iter().map(|&v| <T as Element>::from_f64(1.0 / (v.to_f64() + eps).sqrt())).collect();
            let g = match gamma { Some(g) => g.to_vec::<T>()?, None => vec![<T as Element>::from_f64(1.0); c] };
            let b = match beta { Some(b) => b.to_vec::<T>()?, None => vec![T::default(); c] };
            let scale: Vec<T> = g.iter().zip(&inv_std).map(|(&g, &s)| g * s).collect();
            let shift: Vec<T> = b.iter().zip(&mean).zip(&scale).map(|((&b, &m), &s)| b - m * s).collect();
            let y = x.with_slice::<T, _>(|xs| {
                let mut out = vec![T::default(); xs.len()];
                tlx_cpu::norm::channel_affine(xs, c, &scale, &shift, &mut out);
                out
            })?;
            (T::wrap(y), T::wrap(mean), T::wrap(var), T::wrap(inv_std))
        });
        let mean = Tensor::from_storage(mean, Shape::from([c]), None);
        let var = Tensor::from_storage(var, Shape::from([c]), None);
        let inv_std = Tensor::from_storage(inv_std, Shape::from([c]), None);
        let op = Op::BatchNorm {
            x: self.clone(),
            gamma: gamma.cloned(),
            beta: beta.cloned(),
            mean: mean.clone(),
            inv_std,
            residual: residual.cloned(),
            act,
        };
        let y = Tensor::from_storage(y, self.shape().clone(), None);
        // The same elementwise ops as the unfused layers (the same bits), unrecorded.
        let y = match act {
            Some(act) => crate::with_no_grad(|| match residual {
                Some(r) => y.add(r)?.unary(act),
                None => y.unary(act),
            })?,
            None => y,
        };
        Ok((y.view_with(y.0.layout.clone(), op), mean, var))
    }

    /// Inference-mode batch norm with given statistics:
    /// `y = x·s + (β − μ·s)`, `s = γ/√(σ² + ε)` (TensorFlow's arrangement).
    pub fn batch_norm_inference(
        &self,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
    ) -> Result<Tensor> {
        half_roundtrip!(self, |x| {
            let f = |t: &Tensor| t.to_dtype(tlx_core::DType::F32);
            x.batch_norm_inference(
                gamma.map(f).transpose()?.as_ref(),
                beta.map(f).transpose()?.as_ref(),
                &f(mean)?,
                &f(var)?,
                eps,
            )
        });
        const OP: &str = "batch_norm";
        let c = *self.dims().last().ok_or_else(|| Error::shape(OP, "input has no channel axis"))?;
        check_channel_param(OP, "gamma", gamma, self, c)?;
        check_channel_param(OP, "beta", beta, self, c)?;
        check_channel_param(OP, "moving_mean", Some(mean), self, c)?;
        check_channel_param(OP, "moving_variance", Some(var), self, c)?;
        let (scale, shift) = Tensor::batch_norm_coefficients(gamma, beta, mean, var, eps)?;
        self.mul(&scale)?.add(&shift)
    }

    /// The per-channel `(scale, shift)` of inference-mode batch norm, `y = x·scale + shift`:
    /// `scale = γ/√(σ² + ε)`, `shift = β − μ·scale` (what [`Tensor::batch_norm_inference`]
    /// applies, and what a fused convolution folds in).
    pub fn batch_norm_coefficients(
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
    ) -> Result<(Tensor, Tensor)> {
        let inv = var.add_scalar(eps)?.rsqrt()?;
        let scale = match gamma {
            Some(g) => inv.mul(g)?,
            None => inv,
        };
        let shift = mean.mul(&scale)?.neg()?;
        let shift = match beta {
            Some(b) => shift.add(b)?,
            None => shift,
        };
        Ok((scale, shift))
    }
}

/// Gradients of training-mode batch norm: `(dx, dγ, dβ)`.
pub(crate) fn batch_norm_grad(
    x: &Tensor,
    gamma: Option<&Tensor>,
    mean: &Tensor,
    inv_std: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    on_gpu!("batch_norm", all & [x, mean, inv_std, g].into_iter().chain(gamma).collect::<Vec<_>>(), |_| {
        crate::cuda::batch_norm_grad(x, gamma, mean, inv_std, g)
    });
    let c = *x.dims().last().unwrap();
    let (x, g) = (x.contiguous()?, g.contiguous()?);
    let (gx, gg, gb) = with_float!(x.dtype(), "batch_norm", T => {
        let (m, s) = (mean.to_vec::<T>()?, inv_std.to_vec::<T>()?);
        let gamma = gamma.map(|t| t.to_vec::<T>()).transpose()?;
        let mut gx = vec![T::default(); x.numel()];
        let mut gg = vec![T::default(); c];
        let mut gb = vec![T::default(); c];
        x.with_slice::<T, _>(|xs| g.with_slice::<T, _>(|gs| {
            tlx_cpu::norm::batch_norm_backward(xs, c, &m, &s, gamma.as_deref(), gs, &mut gx, &mut gg, &mut gb)
        }))??;
        (T::wrap(gx), T::wrap(gg), T::wrap(gb))
    });
    Ok((
        Tensor::from_storage(gx, x.shape().clone(), None),
        Tensor::from_storage(gg, Shape::from([c]), None),
        Tensor::from_storage(gb, Shape::from([c]), None),
    ))
}
