//! The `Layer` trait, weights with their Keras names and trainability, and the forward
//! context (training flag, RNG, collected activity-regularization losses).

use crate::error::{Error, Result};
use crate::regularizers::{Constraint, Regularizer};
use serde_json::Value;
use tlx_tensor::{Rng, Tensor};

/// A shape with an unknown batch (or other) dimension as `None`, as Keras writes it.
pub type ShapeSpec = Vec<Option<usize>>;

/// The shape of a concrete tensor as a `ShapeSpec`.
pub fn spec_of(t: &Tensor) -> ShapeSpec {
    t.dims().iter().map(|&d| Some(d)).collect()
}

/// One weight of a layer.
#[derive(Clone, Debug)]
pub struct Weight {
    /// Keras's short name (`kernel`, `bias`, `gamma`, `moving_mean`, …).
    pub name: String,
    /// The values (a leaf tensor).
    pub tensor: Tensor,
    /// Whether the weight is trainable at all (BatchNorm's moving statistics are not).
    pub trainable: bool,
    /// Penalty added to the loss, if any.
    pub regularizer: Option<Regularizer>,
    /// Projection after each update, if any.
    pub constraint: Option<Constraint>,
}

impl Weight {
    /// A weight with no regularizer or constraint.
    pub fn new(name: &str, tensor: Tensor, trainable: bool) -> Self {
        Weight { name: name.into(), tensor, trainable, regularizer: None, constraint: None }
    }
}

/// Pre-activation values of a layer that ends in a softmax or sigmoid.
#[derive(Clone, Debug)]
pub struct Logits {
    /// The values before the activation.
    pub values: Tensor,
    /// Which activation turned them into the layer's output.
    pub kind: LogitsKind,
}

/// The activation that followed a layer's logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogitsKind {
    /// Softmax over the last axis.
    Softmax,
    /// Elementwise sigmoid.
    Sigmoid,
}

impl Logits {
    /// The logits of `activation` applied to `values`, if it is a softmax (last axis) or sigmoid.
    pub fn of(activation: &crate::Activation, values: &Tensor) -> Option<Logits> {
        let kind = match activation {
            crate::Activation::Softmax { axis } if *axis == -1 || *axis as usize + 1 == values.rank() => {
                LogitsKind::Softmax
            }
            crate::Activation::Unary(tlx_tensor::UnaryOp::Sigmoid) => LogitsKind::Sigmoid,
            _ => return None,
        };
        Some(Logits { values: values.clone(), kind })
    }
}

/// Per-call state of a forward pass.
pub struct Context {
    /// Training mode (dropout active, batch norm on batch statistics when trainable).
    pub training: bool,
    /// Dropout active even in inference (Monte Carlo dropout); everything else inference.
    pub mc_dropout: bool,
    /// Randomness for dropout and augmentation layers.
    pub rng: Rng,
    /// Activity-regularization losses produced during the pass.
    pub losses: Vec<Tensor>,
    /// Run chains of layers as fused ops where possible (`model::fuse`; same results).
    pub fuse: bool,
    /// When set, every layer (or fused chain of layers) run appends its wall time here, in
    /// the order run (`tlx bench model --profile`). Layers of nested models are listed
    /// themselves, not the model that holds them.
    pub profile: Option<Vec<LayerTime>>,
}

/// The wall time of one layer, or of a chain of layers run as one fused op.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerTime {
    /// The layer's name; a fused chain's is its first layer's, then `+` and the others'.
    pub name: String,
    /// Layers in the chain (1: not fused).
    pub layers: usize,
    pub seconds: f64,
}

impl Context {
    /// Inference mode.
    pub fn inference() -> Self {
        Context {
            training: false,
            mc_dropout: false,
            rng: Rng::new(0),
            losses: Vec::new(),
            fuse: true,
            profile: None,
        }
    }

    /// Inference with dropout active (Monte Carlo dropout), seeded.
    pub fn mc_dropout(seed: u64) -> Self {
        Context {
            training: false,
            mc_dropout: true,
            rng: Rng::new(seed),
            losses: Vec::new(),
            fuse: true,
            profile: None,
        }
    }

    /// Training mode with a seeded RNG.
    pub fn training(seed: u64) -> Self {
        Context {
            training: true,
            mc_dropout: false,
            rng: Rng::new(seed),
            losses: Vec::new(),
            fuse: true,
            profile: None,
        }
    }
}

/// Fields every layer has: name, trainable flag, weights, built flag.
#[derive(Clone, Debug)]
pub struct LayerBase {
    pub name: String,
    pub trainable: bool,
    pub weights: Vec<Weight>,
    pub built: bool,
}

impl LayerBase {
    /// A trainable, unbuilt layer base.
    pub fn new(name: impl Into<String>) -> Self {
        LayerBase { name: name.into(), trainable: true, weights: Vec::new(), built: false }
    }

    /// Adds a weight, marking it as wanting gradients if the layer and weight are trainable.
    pub fn add_weight(&mut self, w: Weight) -> Result<()> {
        w.tensor.set_requires_grad(self.trainable && w.trainable)?;
        self.weights.push(w);
        Ok(())
    }

    /// The weight named `name` (a bug if missing: layers only ask for their own weights).
    pub fn weight(&self, name: &str) -> &Tensor {
        &self
            .weights
            .iter()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("layer {} has no weight {name}", self.name))
            .tensor
    }

    /// The weight named `name`, if the layer has it.
    pub fn weight_opt(&self, name: &str) -> Option<&Tensor> {
        self.weights.iter().find(|w| w.name == name).map(|w| &w.tensor)
    }

    /// Sets the trainable flag and the weights' `requires_grad` to match.
    pub fn set_trainable(&mut self, on: bool) -> Result<()> {
        self.trainable = on;
        for w in &self.weights {
            w.tensor.set_requires_grad(on && w.trainable)?;
        }
        Ok(())
    }

    /// Wraps a tensor error with this layer's name and class.
    pub fn wrap(&self, class: &str) -> impl Fn(tlx_tensor::Error) -> Error + '_ {
        let class = class.to_string();
        move |e| Error::Layer { layer: self.name.clone(), class: class.clone(), source: e }
    }
}

/// A Keras layer.
pub trait Layer: Send + Sync {
    /// Shared fields.
    fn base(&self) -> &LayerBase;
    /// Shared fields, mutably.
    fn base_mut(&mut self) -> &mut LayerBase;
    /// Keras's class name (`Dense`, `Conv2D`, …).
    fn class_name(&self) -> &'static str;
    /// Creates the weights for inputs of these shapes (batch dimension included). Idempotent.
    fn build(&mut self, input_shapes: &[ShapeSpec], rng: &mut Rng) -> Result<()>;
    /// The output shape for inputs of these shapes.
    fn output_shape(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec>;
    /// The forward pass.
    fn call(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Tensor>;
    /// The Keras config of this layer.
    fn config(&self) -> Value;

    /// The layer's name.
    fn name(&self) -> &str {
        &self.base().name
    }
    /// All weights in Keras order (trainable-at-creation first, then the others).
    fn weights(&self) -> &[Weight] {
        &self.base().weights
    }
    /// Whether the layer trains.
    fn trainable(&self) -> bool {
        self.base().trainable
    }
    /// Freezes or unfreezes the layer.
    fn set_trainable(&mut self, on: bool) -> Result<()> {
        self.base_mut().set_trainable(on)
    }
    /// Whether `build` has run.
    fn is_built(&self) -> bool {
        self.base().built
    }

    /// Every weight with its path below this layer, in Keras order: a plain layer's own
    /// weights by name (`kernel`), a nested model's as `sub_layer/name`.
    fn weight_paths(&self) -> Vec<(String, &Weight)> {
        self.weights().iter().map(|w| (w.name.clone(), w)).collect()
    }

    /// Number of scalars in all weights (the "Param #" of a summary).
    fn param_count(&self) -> usize {
        self.weight_paths().iter().map(|(_, w)| w.tensor.numel()).sum()
    }

    /// What this layer contributes to a fused chain of layers (`model::fuse`), if anything.
    fn fusion(&self) -> Option<crate::model::fuse::Fusion<'_>> {
        None
    }

    /// This layer as a model, when it is one (nested models).
    fn as_model(&self) -> Option<&crate::model::Model> {
        None
    }

    /// This layer as a mutable model, when it is one.
    fn as_model_mut(&mut self) -> Option<&mut crate::model::Model> {
        None
    }

    /// The forward pass, also returning the pre-activation values when the layer ends in a
    /// softmax or sigmoid. Keras's TensorFlow backend computes a cross-entropy on those
    /// logits instead of on the clipped probabilities; training does the same.
    fn call_with_logits(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<(Tensor, Option<Logits>)> {
        Ok((self.call(inputs, ctx)?, None))
    }

    /// Replaces the weights' values (Keras order, shapes must match), like `set_weights`.
    fn set_weights(&self, values: &[Tensor]) -> Result<()> {
        let weights = self.weights();
        if values.len() != weights.len() {
            return Err(Error::Msg(format!(
                "layer '{}' ({}) has {} weights, {} given",
                self.name(),
                self.class_name(),
                weights.len(),
                values.len()
            )));
        }
        for (w, v) in weights.iter().zip(values) {
            if w.tensor.shape() != v.shape() {
                return Err(Error::Msg(format!(
                    "layer '{}' ({}): weight '{}' has shape {}, value has shape {}",
                    self.name(),
                    self.class_name(),
                    w.name,
                    w.tensor.shape(),
                    v.shape()
                )));
            }
            w.tensor.assign(v)?;
        }
        Ok(())
    }

    /// Sum of the weight regularization penalties of the trainable weights.
    fn regularization_loss(&self) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        if !self.trainable() {
            return Ok(None);
        }
        for w in self.weights() {
            if let (true, Some(r)) = (w.trainable, &w.regularizer) {
                let p = r.penalty(&w.tensor)?;
                total = Some(match total {
                    None => p,
                    Some(t) => t.add(&p)?,
                });
            }
        }
        Ok(total)
    }

    /// Applies the weights' constraints (after an optimizer update).
    fn apply_constraints(&self) -> Result<()> {
        if !self.trainable() {
            return Ok(());
        }
        for w in self.weights() {
            if let (true, Some(c)) = (w.trainable, &w.constraint) {
                c.apply(&w.tensor)?;
            }
        }
        Ok(())
    }
}

/// Checks the number of inputs a layer received.
pub fn expect_inputs(layer: &dyn Layer, n: usize, got: usize) -> Result<()> {
    if n != got {
        return Err(Error::Msg(format!(
            "layer '{}' ({}) takes {n} input(s), got {got}",
            layer.name(),
            layer.class_name()
        )));
    }
    Ok(())
}

/// Requires a known size for every non-batch axis of a shape.
pub fn known_dims(layer: &str, class: &str, shape: &ShapeSpec) -> Result<Vec<usize>> {
    shape
        .iter()
        .skip(1)
        .map(|d| {
            d.ok_or_else(|| {
                Error::Msg(format!("layer '{layer}' ({class}) needs known input dimensions, got {shape:?}"))
            })
        })
        .collect()
}
