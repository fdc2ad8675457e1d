//! `BatchNormalization` over the last axis, with Keras's rule that a non-trainable BN layer
//! runs in inference mode even while training (the transfer-learning case).

use super::common::WeightSpec;
use crate::config::ConfigReader;
use crate::error::{Error, Result};
use crate::initializers::Initializer;
use crate::layer::{expect_inputs, Context, Layer, LayerBase, ShapeSpec};
use crate::model::fuse::Fusion;
use serde_json::{json, Value};
use tlx_tensor::{with_no_grad, Rng, Tensor};

/// Batch normalization (weights: gamma, beta, moving_mean, moving_variance).
pub struct BatchNormalization {
    base: LayerBase,
    pub momentum: f64,
    pub epsilon: f64,
    pub center: bool,
    pub scale: bool,
    /// The configured axis (only the last axis is supported).
    axis: i64,
    gamma: WeightSpec,
    beta: WeightSpec,
    moving_mean: Initializer,
    moving_variance: Initializer,
}

impl BatchNormalization {
    /// A BN layer with the given momentum and epsilon (Keras defaults: 0.99, 1e-3).
    pub fn new(name: &str, momentum: f64, epsilon: f64) -> Self {
        BatchNormalization {
            base: LayerBase::new(name),
            momentum,
            epsilon,
            center: true,
            scale: true,
            axis: -1,
            gamma: WeightSpec::init(Initializer::Ones),
            beta: WeightSpec::init(Initializer::Zeros),
            moving_mean: Initializer::Zeros,
            moving_variance: Initializer::Ones,
        }
    }

    /// From a Keras config.
    pub fn from_config(r: &ConfigReader) -> Result<Self> {
        let axis = match r.get("axis") {
            None => -1,
            Some(Value::Array(a)) if a.len() == 1 => {
                a[0].as_i64().ok_or_else(|| r.err("axis", "expected an integer"))?
            }
            Some(v) => v
                .as_i64()
                .ok_or_else(|| r.err("axis", format!("only a single axis is supported, got {v}")))?,
        };
        if r.bool_or("renorm", false)? {
            return Err(r.err("renorm", "batch renormalization is not supported"));
        }
        r.get("renorm_clipping");
        r.get("renorm_momentum");
        r.get("synchronized");
        r.get("fused");
        let init = |field: &str, d: Initializer| -> Result<Initializer> {
            r.get(field)
                .map(Initializer::from_keras)
                .transpose()
                .map_err(|e| r.err(field, e))
                .map(|o| o.unwrap_or(d))
        };
        let epsilon = r.f64_or("epsilon", 1e-3)?;
        if epsilon.is_nan() || epsilon <= 0.0 {
            return Err(r.err("epsilon", format!("must be positive, got {epsilon}")));
        }
        Ok(BatchNormalization {
            base: LayerBase::new(r.name()),
            momentum: r.f64_or("momentum", 0.99)?,
            epsilon,
            center: r.bool_or("center", true)?,
            scale: r.bool_or("scale", true)?,
            axis,
            gamma: WeightSpec::read(r, "gamma", Initializer::Ones)?,
            beta: WeightSpec::read(r, "beta", Initializer::Zeros)?,
            moving_mean: init("moving_mean_initializer", Initializer::Zeros)?,
            moving_variance: init("moving_variance_initializer", Initializer::Ones)?,
        })
    }

    fn check_axis(&self, rank: usize) -> Result<()> {
        if self.axis == -1 || self.axis == rank as i64 - 1 {
            return Ok(());
        }
        Err(Error::config(
            &self.base.name,
            "BatchNormalization",
            "axis",
            format!("axis {} of a rank-{rank} input: only the last (channel) axis is supported", self.axis),
        ))
    }
}

/// Keras's update of the moving statistics from a training batch's mean and variance:
/// `moving ← moving·momentum + batch·(1 − momentum)` (not recorded for gradients).
pub(crate) fn update_moving_statistics(
    moving_mean: &Tensor,
    moving_var: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    momentum: f64,
) -> tlx_tensor::Result<()> {
    with_no_grad(|| {
        moving_mean.assign(&moving_mean.mul_scalar(momentum)?.add(&mean.mul_scalar(1.0 - momentum)?)?)?;
        moving_var.assign(&moving_var.mul_scalar(momentum)?.add(&var.mul_scalar(1.0 - momentum)?)?)
    })
}

impl Layer for BatchNormalization {
    fn base(&self) -> &LayerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut LayerBase {
        &mut self.base
    }
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn fusion(&self) -> Option<Fusion<'_>> {
        // Fused chains start at a convolution, whose output is NHWC: the channel axis is 3.
        if !(self.axis == -1 || self.axis == 3) || !self.base.built {
            return None; // other axes take the layer's own path (and its error)
        }
        Some(Fusion::BatchNorm {
            gamma: self.base.weight_opt("gamma"),
            beta: self.base.weight_opt("beta"),
            mean: self.base.weight("moving_mean"),
            var: self.base.weight("moving_variance"),
            eps: self.epsilon,
            momentum: self.momentum,
            trainable: self.base.trainable,
        })
    }

    fn build(&mut self, input_shapes: &[ShapeSpec], rng: &mut Rng) -> Result<()> {
        if self.base.built {
            return Ok(());
        }
        expect_inputs(self, 1, input_shapes.len())?;
        let s = &input_shapes[0];
        self.check_axis(s.len())?;
        let c = s.last().copied().flatten().ok_or_else(|| {
            Error::Msg(format!(
                "layer '{}' (BatchNormalization) needs a known channel dimension, got {s:?}",
                self.base.name
            ))
        })?;
        let (g, b) = (self.gamma.clone(), self.beta.clone());
        if self.scale {
            g.create(&mut self.base, "gamma", &[c], true, rng)?;
        }
        if self.center {
            b.create(&mut self.base, "beta", &[c], true, rng)?;
        }
        WeightSpec::init(self.moving_mean.clone()).create(&mut self.base, "moving_mean", &[c], false, rng)?;
        WeightSpec::init(self.moving_variance.clone()).create(
            &mut self.base,
            "moving_variance",
            &[c],
            false,
            rng,
        )?;
        self.base.built = true;
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        expect_inputs(self, 1, input_shapes.len())?;
        Ok(input_shapes[0].clone())
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Tensor> {
        expect_inputs(self, 1, inputs.len())?;
        self.check_axis(inputs[0].rank())?;
        let (gamma, beta) = (self.base.weight_opt("gamma"), self.base.weight_opt("beta"));
        let (mm, mv) = (self.base.weight("moving_mean"), self.base.weight("moving_variance"));
        let run = || -> tlx_tensor::Result<Tensor> {
            if ctx.training && self.base.trainable {
                let (y, mean, var) = inputs[0].batch_norm_train(gamma, beta, self.epsilon)?;
                update_moving_statistics(mm, mv, &mean, &var, self.momentum)?;
                Ok(y)
            } else {
                inputs[0].batch_norm_inference(gamma, beta, mm, mv, self.epsilon)
            }
        };
        run().map_err(self.base.wrap("BatchNormalization"))
    }

    fn config(&self) -> Value {
        let mut c = json!({
            "name": self.base.name, "trainable": self.base.trainable, "axis": self.axis,
            "momentum": self.momentum, "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
            "moving_mean_initializer": self.moving_mean.to_keras(),
            "moving_variance_initializer": self.moving_variance.to_keras(),
        });
        self.gamma.write("gamma", &mut c);
        self.beta.write("beta", &mut c);
        c
    }
}
