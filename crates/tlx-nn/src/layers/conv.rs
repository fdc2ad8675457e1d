//! Convolution layers on NHWC input: `Conv2D` (strides, dilation, groups), `DepthwiseConv2D`
//! (depth multiplier; output channel `c·m + k`) and `SeparableConv2D`.

use super::common::{activity_regularizer, apply_activity, pair_json, WeightSpec};
use crate::activation::Activation;
use crate::config::ConfigReader;
use crate::error::{Error, Result};
use crate::initializers::Initializer;
use crate::layer::{expect_inputs, Context, Layer, LayerBase, ShapeSpec};
use crate::model::fuse::Fusion;
use crate::regularizers::Regularizer;
use serde_json::{json, Value};
use tlx_tensor::{EpilogueAct, Padding, Rng, Tensor};

/// Window geometry shared by the convolution layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub kernel: (usize, usize),
    pub strides: (usize, usize),
    pub dilation: (usize, usize),
    pub padding: Padding,
}

impl Window {
    fn read(r: &ConfigReader) -> Result<Window> {
        let p = r.str_or("padding", "valid")?;
        let padding = Padding::from_keras(p)
            .ok_or_else(|| r.err("padding", format!("'{p}' is not 'same' or 'valid'")))?;
        let w = Window {
            kernel: r.pair_or("kernel_size", None)?,
            strides: r.pair_or("strides", Some((1, 1)))?,
            dilation: r.pair_or("dilation_rate", Some((1, 1)))?,
            padding,
        };
        if w.strides != (1, 1) && w.dilation != (1, 1) {
            return Err(
                r.err("dilation_rate", "strides > 1 and dilation_rate > 1 cannot be combined (as in Keras)")
            );
        }
        r.channels_last()?;
        Ok(w)
    }

    /// Output spatial size along one axis (None when the input size is unknown).
    fn out_dim(&self, input: Option<usize>, axis: usize) -> Result<Option<usize>> {
        let Some(n) = input else { return Ok(None) };
        let (k, s, d) = if axis == 0 {
            (self.kernel.0, self.strides.0, self.dilation.0)
        } else {
            (self.kernel.1, self.strides.1, self.dilation.1)
        };
        let span = d * (k - 1) + 1;
        Ok(Some(match self.padding {
            Padding::Same => n.div_ceil(s),
            _ if n < span => {
                return Err(Error::Msg(format!(
                    "a window of {k} (dilation {d}) is larger than the input size {n} with padding 'valid'"
                )))
            }
            _ => (n - span) / s + 1,
        }))
    }

    fn out_shape(&self, name: &str, class: &str, s: &ShapeSpec, channels: usize) -> Result<ShapeSpec> {
        if s.len() != 4 {
            return Err(Error::Msg(format!("layer '{name}' ({class}) needs rank-4 NHWC input, got {s:?}")));
        }
        let wrap = |e: Error| Error::Msg(format!("layer '{name}' ({class}): {e}"));
        Ok(vec![
            s[0],
            self.out_dim(s[1], 0).map_err(wrap)?,
            self.out_dim(s[2], 1).map_err(wrap)?,
            Some(channels),
        ])
    }

    fn keras(&self) -> Value {
        json!({
            "kernel_size": pair_json(self.kernel), "strides": pair_json(self.strides),
            "dilation_rate": pair_json(self.dilation),
            "padding": if self.padding == Padding::Same { "same" } else { "valid" },
        })
    }
}

fn in_channels(name: &str, class: &str, s: &[ShapeSpec]) -> Result<usize> {
    s.first().and_then(|s| if s.len() == 4 { s[3] } else { None }).ok_or_else(|| {
        Error::Msg(format!("layer '{name}' ({class}) needs NHWC input with known channels, got {s:?}"))
    })
}

/// A 2-D convolution.
pub struct Conv2D {
    base: LayerBase,
    pub filters: usize,
    pub window: Window,
    pub groups: usize,
    pub activation: Activation,
    pub use_bias: bool,
    kernel: WeightSpec,
    bias: WeightSpec,
    activity: Option<Regularizer>,
}

impl Conv2D {
    /// A convolution with Keras's defaults for everything else.
    pub fn new(
        name: &str,
        filters: usize,
        kernel: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
        activation: Activation,
    ) -> Self {
        Conv2D {
            base: LayerBase::new(name),
            filters,
            window: Window { kernel, strides, dilation: (1, 1), padding },
            groups: 1,
            activation,
            use_bias: true,
            kernel: WeightSpec::init(Initializer::glorot_uniform()),
            bias: WeightSpec::init(Initializer::Zeros),
            activity: None,
        }
    }

    /// Turns the bias off (builder).
    pub fn without_bias(mut self) -> Self {
        self.use_bias = false;
        self
    }

    /// From a Keras config.
    pub fn from_config(r: &ConfigReader) -> Result<Self> {
        Ok(Conv2D {
            base: LayerBase::new(r.name()),
            filters: r.positive("filters")?,
            window: Window::read(r)?,
            groups: r.usize_or("groups", 1)?.max(1),
            activation: Activation::from_keras(r.get("activation")).map_err(|e| r.err("activation", e))?,
            use_bias: r.bool_or("use_bias", true)?,
            kernel: WeightSpec::read(r, "kernel", Initializer::glorot_uniform())?,
            bias: WeightSpec::read(r, "bias", Initializer::Zeros)?,
            activity: activity_regularizer(r)?,
        })
    }
}

/// The epilogue activation for a layer's activation, if it has one.
fn fusable_activation(a: &Activation) -> Option<EpilogueAct> {
    match a {
        Activation::Linear => Some(EpilogueAct::Linear),
        Activation::Unary(op) => crate::model::fuse::epilogue_act(op),
        _ => None,
    }
}

impl Layer for Conv2D {
    fn base(&self) -> &LayerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut LayerBase {
        &mut self.base
    }
    fn class_name(&self) -> &'static str {
        "Conv2D"
    }

    fn fusion(&self) -> Option<Fusion<'_>> {
        let act = fusable_activation(&self.activation)?;
        if self.activity.is_some() || !self.base.built {
            return None;
        }
        let w = self.window;
        Some(Fusion::Conv {
            kernel: self.base.weight("kernel").clone(),
            bias: self.base.weight_opt("bias"),
            strides: w.strides,
            dilation: w.dilation,
            padding: w.padding,
            groups: self.groups,
            act,
        })
    }

    fn build(&mut self, input_shapes: &[ShapeSpec], rng: &mut Rng) -> Result<()> {
        if self.base.built {
            return Ok(());
        }
        let c = in_channels(&self.base.name, "Conv2D", input_shapes)?;
        if !c.is_multiple_of(self.groups) || !self.filters.is_multiple_of(self.groups) {
            return Err(Error::Msg(format!(
                "layer '{}' (Conv2D): groups {} must divide the input channels {c} and filters {}",
                self.base.name, self.groups, self.filters
            )));
        }
        let (kernel, bias, (kh, kw)) = (self.kernel.clone(), self.bias.clone(), self.window.kernel);
        kernel.create(&mut self.base, "kernel", &[kh, kw, c / self.groups, self.filters], true, rng)?;
        if self.use_bias {
            bias.create(&mut self.base, "bias", &[self.filters], true, rng)?;
        }
        self.base.built = true;
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        expect_inputs(self, 1, input_shapes.len())?;
        self.window.out_shape(&self.base.name, "Conv2D", &input_shapes[0], self.filters)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Tensor> {
        expect_inputs(self, 1, inputs.len())?;
        let w = self.window;
        let mut run = || -> tlx_tensor::Result<Tensor> {
            let mut y = inputs[0].conv2d(
                self.base.weight("kernel"),
                w.strides,
                w.dilation,
                w.padding,
                self.groups,
            )?;
            if let Some(b) = self.base.weight_opt("bias") {
                y = y.add(b)?;
            }
            let y = self.activation.apply(&y)?;
            apply_activity(&self.activity, &y, ctx)?;
            Ok(y)
        };
        run().map_err(self.base.wrap("Conv2D"))
    }

    fn config(&self) -> Value {
        let mut c = self.window.keras();
        let o = c.as_object_mut().unwrap();
        o.insert("name".into(), json!(self.base.name));
        o.insert("trainable".into(), json!(self.base.trainable));
        o.insert("filters".into(), json!(self.filters));
        o.insert("groups".into(), json!(self.groups));
        o.insert("activation".into(), json!(self.activation.keras_name()));
        o.insert("use_bias".into(), json!(self.use_bias));
        o.insert("activity_regularizer".into(), self.activity.map_or(Value::Null, |r| r.to_keras()));
        self.kernel.write("kernel", &mut c);
        self.bias.write("bias", &mut c);
        c
    }
}

/// A depthwise convolution: kernel `[kh, kw, c_in, depth_multiplier]`.
pub struct DepthwiseConv2D {
    base: LayerBase,
    pub window: Window,
    pub depth_multiplier: usize,
    pub activation: Activation,
    pub use_bias: bool,
    kernel: WeightSpec,
    bias: WeightSpec,
    activity: Option<Regularizer>,
}

impl DepthwiseConv2D {
    /// A depthwise convolution with Keras's defaults.
    pub fn new(
        name: &str,
        kernel: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
        depth_multiplier: usize,
    ) -> Self {
        DepthwiseConv2D {
            base: LayerBase::new(name),
            window: Window { kernel, strides, dilation: (1, 1), padding },
            depth_multiplier,
            activation: Activation::Linear,
            use_bias: true,
            kernel: WeightSpec::init(Initializer::glorot_uniform()),
            bias: WeightSpec::init(Initializer::Zeros),
            activity: None,
        }
    }

    /// Turns the bias off (builder).
    pub fn without_bias(mut self) -> Self {
        self.use_bias = false;
        self
    }

    /// From a Keras config.
    pub fn from_config(r: &ConfigReader) -> Result<Self> {
        Ok(DepthwiseConv2D {
            base: LayerBase::new(r.name()),
            window: Window::read(r)?,
            depth_multiplier: r.usize_or("depth_multiplier", 1)?.max(1),
            activation: Activation::from_keras(r.get("activation")).map_err(|e| r.err("activation", e))?,
            use_bias: r.bool_or("use_bias", true)?,
            kernel: WeightSpec::read(r, "depthwise", Initializer::glorot_uniform())?,
            bias: WeightSpec::read(r, "bias", Initializer::Zeros)?,
            activity: activity_regularizer(r)?,
        })
    }
}

impl Layer for DepthwiseConv2D {
    fn base(&self) -> &LayerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut LayerBase {
        &mut self.base
    }
    fn class_name(&self) -> &'static str {
        "DepthwiseConv2D"
    }

    fn fusion(&self) -> Option<Fusion<'_>> {
        let act = fusable_activation(&self.activation)?;
        if self.activity.is_some() || !self.base.built {
            return None;
        }
        let k = self.base.weight("kernel");
        let [kh, kw, c, m] = <[usize; 4]>::try_from(k.dims()).ok()?;
        let w = self.window;
        Some(Fusion::Conv {
            kernel: k.reshape([kh, kw, 1, c * m]).ok()?,
            bias: self.base.weight_opt("bias"),
            strides: w.strides,
            dilation: w.dilation,
            padding: w.padding,
            groups: c,
            act,
        })
    }

    fn build(&mut self, input_shapes: &[ShapeSpec], rng: &mut Rng) -> Result<()> {
        if self.base.built {
            return Ok(());
        }
        let c = in_channels(&self.base.name, "DepthwiseConv2D", input_shapes)?;
        let (kernel, bias, (kh, kw)) = (self.kernel.clone(), self.bias.clone(), self.window.kernel);
        kernel.create(&mut self.base, "kernel", &[kh, kw, c, self.depth_multiplier], true, rng)?;
        if self.use_bias {
            bias.create(&mut self.base, "bias", &[c * self.depth_multiplier], true, rng)?;
        }
        self.base.built = true;
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        expect_inputs(self, 1, input_shapes.len())?;
        let c = in_channels(&self.base.name, "DepthwiseConv2D", input_shapes)?;
        self.window.out_shape(&self.base.name, "DepthwiseConv2D", &input_shapes[0], c * self.depth_multiplier)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Tensor> {
        expect_inputs(self, 1, inputs.len())?;
        let w = self.window;
        let mut run = || -> tlx_tensor::Result<Tensor> {
            let mut y =
                inputs[0].depthwise_conv2d(self.base.weight("kernel"), w.strides, w.dilation, w.padding)?;
            if let Some(b) = self.base.weight_opt("bias") {
                y = y.add(b)?;
            }
            let y = self.activation.apply(&y)?;
            apply_activity(&self.activity, &y, ctx)?;
            Ok(y)
        };
        run().map_err(self.base.wrap("DepthwiseConv2D"))
    }

    fn config(&self) -> Value {
        let mut c = self.window.keras();
        let o = c.as_object_mut().unwrap();
        o.insert("name".into(), json!(self.base.name));
        o.insert("trainable".into(), json!(self.base.trainable));
        o.insert("depth_multiplier".into(), json!(self.depth_multiplier));
        o.insert("activation".into(), json!(self.activation.keras_name()));
        o.insert("use_bias".into(), json!(self.use_bias));
        o.insert("activity_regularizer".into(), self.activity.map_or(Value::Null, |r| r.to_keras()));
        self.kernel.write("depthwise", &mut c);
        self.bias.write("bias", &mut c);
        c
    }
}

/// Depthwise then pointwise (1×1) convolution: weights `depthwise_kernel`,
/// `pointwise_kernel`, `bias`.
pub struct SeparableConv2D {
    base: LayerBase,
    pub filters: usize,
    pub window: Window,
    pub depth_multiplier: usize,
    pub activation: Activation,
    pub use_bias: bool,
    depthwise: WeightSpec,
    pointwise: WeightSpec,
    bias: WeightSpec,
    activity: Option<Regularizer>,
}

impl SeparableConv2D {
    /// From a Keras config.
    pub fn from_config(r: &ConfigReader) -> Result<Self> {
        Ok(SeparableConv2D {
            base: LayerBase::new(r.name()),
            filters: r.positive("filters")?,
            window: Window::read(r)?,
            depth_multiplier: r.usize_or("depth_multiplier", 1)?.max(1),
            activation: Activation::from_keras(r.get("activation")).map_err(|e| r.err("activation", e))?,
            use_bias: r.bool_or("use_bias", true)?,
            depthwise: WeightSpec::read(r, "depthwise", Initializer::glorot_uniform())?,
            pointwise: WeightSpec::read(r, "pointwise", Initializer::glorot_uniform())?,
            bias: WeightSpec::read(r, "bias", Initializer::Zeros)?,
            activity: activity_regularizer(r)?,
        })
    }
}

impl Layer for SeparableConv2D {
    fn base(&self) -> &LayerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut LayerBase {
        &mut self.base
    }
    fn class_name(&self) -> &'static str {
        "SeparableConv2D"
    }

    fn build(&mut self, input_shapes: &[ShapeSpec], rng: &mut Rng) -> Result<()> {
        if self.base.built {
            return Ok(());
        }
        let c = in_channels(&self.base.name, "SeparableConv2D", input_shapes)?;
        let (kh, kw) = self.window.kernel;
        let (d, p, b) = (self.depthwise.clone(), self.pointwise.clone(), self.bias.clone());
        d.create(&mut self.base, "depthwise_kernel", &[kh, kw, c, self.depth_multiplier], true, rng)?;
        p.create(
            &mut self.base,
            "pointwise_kernel",
            &[1, 1, c * self.depth_multiplier, self.filters],
            true,
            rng,
        )?;
        if self.use_bias {
            b.create(&mut self.base, "bias", &[self.filters], true, rng)?;
        }
        self.base.built = true;
        Ok(())
    }

    fn output_shape(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        expect_inputs(self, 1, input_shapes.len())?;
        self.window.out_shape(&self.base.name, "SeparableConv2D", &input_shapes[0], self.filters)
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Tensor> {
        expect_inputs(self, 1, inputs.len())?;
        let w = self.window;
        let mut run = || -> tlx_tensor::Result<Tensor> {
            let dw = inputs[0].depthwise_conv2d(
                self.base.weight("depthwise_kernel"),
                w.strides,
                w.dilation,
                w.padding,
            )?;
            let mut y = dw.conv2d(self.base.weight("pointwise_kernel"), (1, 1), (1, 1), Padding::Valid, 1)?;
            if let Some(b) = self.base.weight_opt("bias") {
                y = y.add(b)?;
            }
            let y = self.activation.apply(&y)?;
            apply_activity(&self.activity, &y, ctx)?;
            Ok(y)
        };
        run().map_err(self.base.wrap("SeparableConv2D"))
    }

    fn config(&self) -> Value {
        let mut c = self.window.keras();
        let o = c.as_object_mut().unwrap();
        o.insert("name".into(), json!(self.base.name));
        o.insert("trainable".into(), json!(self.base.trainable));
        o.insert("filters".into(), json!(self.filters));
        o.insert("depth_multiplier".into(), json!(self.depth_multiplier));
        o.insert("activation".into(), json!(self.activation.keras_name()));
        o.insert("use_bias".into(), json!(self.use_bias));
        o.insert("activity_regularizer".into(), self.activity.map_or(Value::Null, |r| r.to_keras()));
        self.depthwise.write("depthwise", &mut c);
        self.pointwise.write("pointwise", &mut c);
        self.bias.write("bias", &mut c);
        c
    }
}
