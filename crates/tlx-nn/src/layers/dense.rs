//! `Dense`: `y = act(x·W + b)` over the last axis (any rank), kernel `[in, units]`.

use super::common::{activity_regularizer, apply_activity, WeightSpec};
use crate::activation::Activation;
use crate::config::ConfigReader;
use crate::error::{Error, Result};
use crate::initializers::Initializer;
use crate::layer::{expect_inputs, Context, Layer, LayerBase, Logits, ShapeSpec};
use crate::regularizers::Regularizer;
use serde_json::{json, Value};
use tlx_tensor::{Rng, Tensor};

/// A fully connected layer.
pub struct Dense {
    base: LayerBase,
    pub units: usize,
    pub activation: Activation,
    pub use_bias: bool,
    kernel: WeightSpec,
    bias: WeightSpec,
    activity: Option<Regularizer>,
}

impl Dense {
    /// A Dense layer with Keras's defaults (glorot_uniform kernel, zero bias).
    pub fn new(name: &str, units: usize, activation: Activation) -> Self {
        Dense {
            base: LayerBase::new(name),
            units,
            activation,
            use_bias: true,
            kernel: WeightSpec::init(Initializer::glorot_uniform()),
            bias: WeightSpec::init(Initializer::Zeros),
            activity: None,
        }
    }

    /// From a Keras config.
    pub fn from_config(r: &ConfigReader) -> Result<Self> {
        let activation = Activation::from_keras(r.get("activation")).map_err(|e| r.err("activation", e))?;
        Ok(Dense {
            base: LayerBase::new(r.name()),
            units: r.positive("units")?,
            activation,
            use_bias: r.bool_or("use_bias", true)?,
            kernel: WeightSpec::read(r, "kernel", Initializer::glorot_uniform())?,
            bias: WeightSpec::read(r, "bias", Initializer::Zeros)?,
            activity: activity_regularizer(r)?,
        })
    }
}

impl Layer for Dense {
    fn base(&self) -> &LayerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut LayerBase {
        &mut self.base
    }
    fn class_name(&self) -> &'static str {
        "Dense"
    }

    fn build(&mut self, input_shapes: &[ShapeSpec], rng: &mut Rng) -> Result<()> {
        if self.base.built {
            return Ok(());
        }
        let input = self.output_shape(input_shapes).map(|_| input_shapes[0].clone())?;
        let fan_in = input.last().copied().flatten().ok_or_else(|| {
            Error::Msg(format!(
                "layer '{}' (Dense) needs a known last input dimension, got {input:?}",
                self.base.name
            ))
        })?;
        let (kernel, bias) = (self.kernel.clone(), self.bias.clone());
        kernel.create(&mut self.base, "kernel", &[fan_in, self.units], true, rng)?;
        if self.use_bias {
            bias.create(&mut self.base, "bias", &[self.units], true, rng)?;
        }
        self.base.built = true;
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        expect_inputs(self, 1, input_shapes.len())?;
        let mut s = input_shapes[0].clone();
        if s.len() < 2 {
            return Err(Error::Msg(format!(
                "layer '{}' (Dense) needs rank ≥ 2 input, got {s:?}",
                self.base.name
            )));
        }
        *s.last_mut().unwrap() = Some(self.units);
        Ok(s)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Tensor> {
        Ok(self.call_with_logits(inputs, ctx)?.0)
    }

    fn call_with_logits(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<(Tensor, Option<Logits>)> {
        expect_inputs(self, 1, inputs.len())?;
        let wrap = self.base.wrap("Dense");
        let x = &inputs[0];
        let kernel = self.base.weight("kernel");
        let mut run = || -> tlx_tensor::Result<(Tensor, Option<Logits>)> {
            let fan_in = kernel.dims()[0];
            if x.rank() < 1 || x.dims()[x.rank() - 1] != fan_in {
                return Err(tlx_tensor::Error::shape(
                    "dense",
                    format!("input {} does not end in the kernel's {fan_in} input features", x.shape()),
                ));
            }
            let mut out_dims = x.dims().to_vec();
            *out_dims.last_mut().unwrap() = self.units;
            let flat =
                if x.rank() == 2 { x.clone() } else { x.reshape([x.numel() / fan_in.max(1), fan_in])? };
            let mut z = flat.matmul(kernel)?;
            if let Some(b) = self.base.weight_opt("bias") {
                z = z.add(b)?;
            }
            let z = if x.rank() == 2 { z } else { z.reshape(out_dims)? };
            let y = self.activation.apply(&z)?;
            apply_activity(&self.activity, &y, ctx)?;
            Ok((y, Logits::of(&self.activation, &z)))
        };
        run().map_err(wrap)
    }

    fn config(&self) -> Value {
        let mut c = json!({
            "name": self.base.name, "trainable": self.base.trainable, "units": self.units,
            "activation": self.activation.keras_name(), "use_bias": self.use_bias,
            "activity_regularizer": self.activity.map_or(Value::Null, |r| r.to_keras()),
        });
        self.kernel.write("kernel", &mut c);
        self.bias.write("bias", &mut c);
        c
    }
}
