//! `Model`: Keras's Sequential and Functional models as one type — a DAG of layer calls
//! (nodes) in topological order, with the layers in Keras's `model.layers` order.
//!
//! - A Sequential model is a chain; its input is a placeholder, not a layer (as in Keras 3,
//!   whose `Sequential.layers` leaves the InputLayer out). A Functional model lists its
//!   `InputLayer`s among its layers, like Keras, so `layers[i]` indices mean the same thing.
//! - Shared layers: several nodes may call the same layer. Nested models: a `Model` is itself
//!   a [`Layer`], so `Sequential([base_model, Flatten(), Dense(..)])` works.
//! - Weights are reached by path (`block1_conv1/kernel`, `vgg16/block1_conv1/kernel` for a
//!   nested model) in Keras's `model.weights` order.
//!
//! Submodules: [`graph`] builds models in code, [`keras`] rebuilds them from Keras configs,
//! [`load`] loads Keras weight files, [`trainable`] freezes and unfreezes, [`summary`] prints.

pub mod cut;
pub mod fuse;
pub mod graph;
pub mod keras;
pub mod load;
pub mod save_h5;
pub mod summary;
pub mod trainable;

pub use graph::{Functional, NodeRef};
pub use load::LoadReport;
pub use trainable::LayerSelector;

use crate::error::{Error, Result};
use crate::layer::{Context, Layer, LayerBase, LayerTime, Logits, ShapeSpec, Weight};
use serde_json::Value;
use tlx_tensor::{Rng, Tensor};

/// Sequential (a chain) or Functional (a DAG).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Sequential,
    Functional,
}

/// Where a node's input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The model's i-th input.
    Input(usize),
    /// The output of node j.
    Node(usize),
}

/// One call of a layer.
#[derive(Clone, Debug)]
pub struct Node {
    /// Index into the model's layers.
    pub layer: usize,
    /// Its inputs.
    pub inputs: Vec<Source>,
    /// Its output shape (batch unknown).
    pub output_shape: ShapeSpec,
}

/// A model input: its name and shape (batch dimension first, usually unknown).
#[derive(Clone, Debug)]
pub struct InputSpec {
    pub name: String,
    pub shape: ShapeSpec,
    /// For Functional models: the InputLayer standing for this input (index into layers).
    pub layer: Option<usize>,
}

/// A Keras model: layers, the graph of their calls, inputs and outputs.
pub struct Model {
    pub(crate) base: LayerBase,
    pub(crate) kind: ModelKind,
    pub(crate) layers: Vec<Box<dyn Layer>>,
    /// Calls in topological order (input layers have no node: their output is the input).
    pub(crate) nodes: Vec<Node>,
    pub(crate) inputs: Vec<InputSpec>,
    pub(crate) outputs: Vec<Source>,
    /// Draws initial weights of layers added later (Sequential `add`).
    pub(crate) rng: Rng,
    /// Buffers freed by the last inference pass or training step (activations, gradients; at
    /// most 4 MiB), for the next one (`tlx_tensor::recycle::scope_with`).
    pub(crate) recycled: std::sync::Mutex<tlx_tensor::recycle::Kept>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Model({} '{}', {} layers)", self.class_name(), self.base.name, self.layers.len())
    }
}

impl Model {
    /// The model's name.
    pub fn name(&self) -> &str {
        &self.base.name
    }

    /// Sequential or Functional.
    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// The layers in Keras's `model.layers` order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The layers, mutably (to freeze or replace weights).
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// The inputs.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// The output shapes (batch dimension unknown).
    pub fn output_shapes(&self) -> Vec<ShapeSpec> {
        self.outputs.iter().map(|s| self.source_shape(*s)).collect()
    }

    /// The graph's nodes in execution order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub(crate) fn source_shape(&self, s: Source) -> ShapeSpec {
        match s {
            Source::Input(i) => self.inputs[i].shape.clone(),
            Source::Node(j) => self.nodes[j].output_shape.clone(),
        }
    }

    /// The top-level layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&dyn Layer> {
        self.layers.iter().find(|l| l.name() == name).map(|l| l.as_ref())
    }

    /// The layer called `name`, searching nested models depth-first.
    pub fn find_layer(&self, name: &str) -> Option<&dyn Layer> {
        for l in &self.layers {
            if l.name() == name {
                return Some(l.as_ref());
            }
            if let Some(found) = l.as_model().and_then(|m| m.find_layer(name)) {
                return Some(found);
            }
        }
        None
    }

    /// The top-level layer called `name`, mutably.
    pub fn layer_mut(&mut self, name: &str) -> Option<&mut Box<dyn Layer>> {
        self.layers.iter_mut().find(|l| l.name() == name)
    }

    /// Index of the top-level layer called `name`.
    pub fn layer_index(&self, name: &str) -> Result<usize> {
        self.layers.iter().position(|l| l.name() == name).ok_or_else(|| {
            Error::Msg(format!(
                "model '{}' has no layer '{name}' (layers: {})",
                self.base.name,
                self.layers.iter().map(|l| l.name()).collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Every weight with its path (`layer/weight`, nested `model/layer/weight`), in Keras's
    /// `model.weights` order.
    pub fn named_weights(&self) -> Vec<(String, &Weight)> {
        let mut out = Vec::new();
        for l in &self.layers {
            for (p, w) in l.weight_paths() {
                out.push((format!("{}/{p}", l.name()), w));
            }
        }
        out
    }

    /// The weights the optimizer trains, in Keras's `model.trainable_weights` order: those
    /// whose layer (and every model around it) is trainable and that are trainable themselves.
    pub fn trainable_weights(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        if self.base.trainable {
            collect_weights(self, "", true, &mut out);
        }
        out
    }

    /// The weights that do not train (frozen layers, BatchNorm moving statistics).
    pub fn non_trainable_weights(&self) -> Vec<(String, Tensor)> {
        let trainable: std::collections::HashSet<String> =
            self.trainable_weights().into_iter().map(|(n, _)| n).collect();
        self.named_weights()
            .into_iter()
            .filter(|(n, _)| !trainable.contains(n))
            .map(|(n, w)| (n, w.tensor.clone()))
            .collect()
    }

    /// Copies of all weight values in `model.weights` order (Keras's `get_weights`).
    pub fn get_weights(&self) -> Result<Vec<Tensor>> {
        self.named_weights().iter().map(|(_, w)| Ok(w.tensor.detach().contiguous_copy()?)).collect()
    }

    /// Sets every weight from values in `model.weights` order (Keras's `set_weights`).
    pub fn set_all_weights(&self, values: &[Tensor]) -> Result<()> {
        let weights = self.named_weights();
        if weights.len() != values.len() {
            return Err(Error::Msg(format!(
                "model '{}' has {} weights, {} values given",
                self.base.name,
                weights.len(),
                values.len()
            )));
        }
        for ((path, w), v) in weights.iter().zip(values) {
            if w.tensor.dims() != v.dims() {
                return Err(Error::Msg(format!(
                    "model '{}': weight '{path}' has shape {}, value has shape {}",
                    self.base.name,
                    w.tensor.shape(),
                    v.shape()
                )));
            }
            w.tensor.assign(v)?;
        }
        Ok(())
    }

    /// Makes every weight's `requires_grad` match whether it trains, so that frozen parts
    /// record no graph and keep no activations for backward.
    pub fn sync_requires_grad(&self) -> Result<()> {
        let trainable: std::collections::HashSet<tlx_tensor::TensorId> =
            self.trainable_weights().iter().map(|(_, t)| t.id()).collect();
        for (_, w) in self.named_weights() {
            w.tensor.set_requires_grad(trainable.contains(&w.tensor.id()))?;
        }
        Ok(())
    }

    /// Runs the model on `inputs` (one per model input) and returns every output.
    pub fn forward(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Vec<Tensor>> {
        Ok(self.run(inputs, ctx, false)?.into_iter().map(|(y, _)| y).collect())
    }

    /// Like [`Model::forward`], also returning each output's logits when the layer producing
    /// it ends in a softmax or sigmoid (see [`Layer::call_with_logits`]).
    pub fn forward_with_logits(
        &self,
        inputs: &[Tensor],
        ctx: &mut Context,
    ) -> Result<Vec<(Tensor, Option<Logits>)>> {
        self.run(inputs, ctx, true)
    }

    /// Inference on one input: no gradients recorded, BatchNorm on moving statistics,
    /// dropout off. Returns the first output. Runs on a thread of the kernels' rayon pool
    /// with the pool's other threads kept awake (`tlx_cpu::keep_awake`), so that each
    /// layer's parallel work forks without waking a sleeping thread.
    pub fn predict(&self, x: &Tensor) -> Result<Tensor> {
        tlx_cpu::keep_awake(|| {
            let _guard = tlx_tensor::no_grad();
            let mut ctx = Context::inference();
            let mut out = self.forward(std::slice::from_ref(x), &mut ctx)?;
            Ok(out.swap_remove(0))
        })
    }

    /// Monte Carlo dropout: the mean of `passes` predictions with dropout active (and
    /// everything else, BatchNorm included, in inference mode), each pass with its own seed
    /// derived from `seed`. Returns `(mean, standard deviation)` over the passes.
    pub fn predict_mc_dropout(&self, x: &Tensor, passes: usize, seed: u64) -> Result<(Tensor, Tensor)> {
        if passes == 0 {
            return Err(Error::Msg("predict_mc_dropout needs at least one pass".into()));
        }
        let _guard = tlx_tensor::no_grad();
        let mut outs = Vec::with_capacity(passes);
        let mut rng = Rng::new(seed);
        for _ in 0..passes {
            let mut ctx = Context::mc_dropout(rng.next_u64());
            outs.push(self.forward(std::slice::from_ref(x), &mut ctx)?.swap_remove(0).unsqueeze(0)?);
        }
        let stacked = Tensor::concat(&outs, 0)?;
        let mean = stacked.mean(&[0], false)?;
        let std = stacked.var(&[0], false)?.sqrt()?;
        Ok((mean, std))
    }

    fn check_input(&self, i: usize, x: &Tensor) -> Result<()> {
        let spec = &self.inputs[i].shape;
        let ok = spec.len() == x.rank()
            && spec.iter().zip(x.dims()).skip(1).all(|(s, &d)| s.is_none_or(|s| s == d));
        if !ok {
            return Err(Error::Msg(format!(
                "model '{}': input '{}' expects shape {}, got {}",
                self.base.name,
                self.inputs[i].name,
                summary::shape_str(spec),
                x.shape()
            )));
        }
        Ok(())
    }

    fn run(
        &self,
        inputs: &[Tensor],
        ctx: &mut Context,
        logits: bool,
    ) -> Result<Vec<(Tensor, Option<Logits>)>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::Msg(format!(
                "model '{}' takes {} input(s), got {}",
                self.base.name,
                self.inputs.len(),
                inputs.len()
            )));
        }
        for (i, x) in inputs.iter().enumerate() {
            self.check_input(i, x)?;
        }
        let (values, logits_of) = self.run_nodes(inputs, None, self.nodes.len(), ctx, logits)?;
        self.outputs
            .iter()
            .map(|s| match s {
                Source::Input(i) => Ok((inputs[*i].clone(), None)),
                Source::Node(k) => values[*k].clone().map(|v| (v, logits_of[*k].clone())).ok_or_else(|| {
                    Error::Msg(format!("model '{}': output node {k} missing", self.base.name))
                }),
            })
            .collect()
    }

    /// Runs nodes `start..end` where `start` is 0, or one past `preset`'s node whose value is
    /// given. Returns every node's value that is still alive at the end (the outputs and
    /// node `end − 1`) and the outputs' logits.
    #[allow(clippy::type_complexity)]
    pub(crate) fn run_nodes(
        &self,
        inputs: &[Tensor],
        preset: Option<(usize, Tensor)>,
        end: usize,
        ctx: &mut Context,
        logits: bool,
    ) -> Result<(Vec<Option<Tensor>>, Vec<Option<Logits>>)> {
        // Freed activations are recycled for the next outputs (`tlx_tensor::recycle`); an
        // inference pass keeps them for the next one, while a training step's forward pass
        // leaves what the model keeps to the step's backward pass (`Model::recycling`).
        let _recycling = if ctx.training {
            tlx_tensor::recycle::scope()
        } else {
            tlx_tensor::recycle::scope_with(&self.recycled)
        };
        let n = self.nodes.len();
        let start = preset.as_ref().map_or(0, |(j, _)| j + 1);
        // Last consumer of every node's value, so activations are dropped as soon as possible.
        let mut last_use = vec![0usize; n];
        for (j, node) in self.nodes.iter().enumerate().take(end) {
            for s in &node.inputs {
                if let Source::Node(k) = s {
                    last_use[*k] = j;
                }
            }
        }
        for s in &self.outputs {
            if let Source::Node(k) = s {
                last_use[*k] = usize::MAX;
            }
        }
        if end > 0 {
            last_use[end - 1] = usize::MAX;
        }
        let output_nodes: Vec<usize> = self
            .outputs
            .iter()
            .filter_map(|s| if let Source::Node(k) = s { Some(*k) } else { None })
            .collect();
        let mut values: Vec<Option<Tensor>> = vec![None; n];
        let mut out_logits: Vec<Option<Logits>> = vec![None; n];
        if let Some((j, v)) = preset {
            values[j] = Some(v);
        }
        // Consumers of every node's value (outputs count), for fusion.
        let uses = self.use_counts(end);
        let mut j = start;
        while j < end {
            let node = &self.nodes[j];
            let started = ctx.profile.is_some().then(std::time::Instant::now);
            let fetch = |values: &[Option<Tensor>], s: &Source| match s {
                Source::Input(i) => inputs.get(*i).cloned().ok_or_else(|| {
                    Error::Msg(format!(
                        "model '{}': node {j} reads model input {i}, which was not given",
                        self.base.name
                    ))
                }),
                Source::Node(k) => values[*k].clone().ok_or_else(|| {
                    Error::Msg(format!("model '{}': node {k} used after it was freed", self.base.name))
                }),
            };
            let args: Vec<Tensor> = node.inputs.iter().map(|s| fetch(&values, s)).collect::<Result<_>>()?;
            let layer = &self.layers[node.layer];
            // A value a fused chain j..=last reads for the last time is handed over (taken
            // from `values`), so that the chain may overwrite it in place.
            let mut fetch_for_chain = |s: &Source, last: usize| match s {
                Source::Node(k) if (j..=last).contains(&last_use[*k]) && values[*k].is_some() => {
                    Ok(values[*k].take().expect("checked"))
                }
                _ => fetch(&values, s),
            };
            let fused = self.run_fused(j, &args, &mut fetch_for_chain, &uses, end, ctx)?;
            let last = if let Some((y, last)) = fused {
                values[last] = Some(y);
                last
            } else {
                let (y, lg) = if logits && output_nodes.contains(&j) {
                    layer.call_with_logits(&args, ctx)?
                } else {
                    (layer.call(&args, ctx)?, None)
                };
                values[j] = Some(y);
                out_logits[j] = lg;
                j
            };
            // Values whose last reader ran (any node of a fused chain: its inner nodes read
            // the node before them, never stored, and perhaps a residual from earlier) are
            // dropped. Freed activations nobody else holds go back to the recycling pool, for
            // the next outputs that are overwritten entirely (`tlx_tensor::recycle`).
            drop(args);
            if let (Some(t0), Some(profile)) = (started, ctx.profile.as_mut()) {
                if layer.as_model().is_none() {
                    let name = (j..=last)
                        .map(|i| self.layers[self.nodes[i].layer].name())
                        .collect::<Vec<_>>()
                        .join("+");
                    profile.push(LayerTime {
                        name,
                        layers: last - j + 1,
                        seconds: t0.elapsed().as_secs_f64(),
                    });
                }
            }
            for i in j..=last {
                for s in &self.nodes[i].inputs {
                    if let Source::Node(k) = s {
                        if last_use[*k] == i {
                            if let Some(t) = values[*k].take() {
                                tlx_tensor::recycle::recycle(t);
                            }
                        }
                    }
                }
            }
            j = last + 1;
        }
        Ok((values, out_logits))
    }

    /// Turns buffer recycling on for this thread (`tlx_tensor::recycle::scope_with`) with the
    /// buffers this model keeps, until the returned scope is dropped: a training step opens
    /// it around its backward pass and update, so that the step's freed gradients serve the
    /// next step's instead of fresh zeroed memory.
    pub fn recycling(&self) -> tlx_tensor::recycle::Scope<'_> {
        tlx_tensor::recycle::scope_with(&self.recycled)
    }

    /// Bytes of buffers kept since the last forward pass or training step for the next one
    /// (which takes them instead of fresh zeroed memory; at most 4 MiB).
    pub fn kept_buffer_bytes(&self) -> usize {
        self.recycled.lock().map_or(0, |k| k.bytes())
    }

    /// Frees the buffers kept for the next forward pass (see [`Model::kept_buffer_bytes`]),
    /// e.g. after the last prediction.
    pub fn release_kept_buffers(&self) {
        if let Ok(mut k) = self.recycled.lock() {
            k.clear();
        }
    }

    /// Total, trainable and non-trainable parameter counts.
    pub fn param_counts(&self) -> (usize, usize, usize) {
        let total: usize = self.named_weights().iter().map(|(_, w)| w.tensor.numel()).sum();
        let trainable: usize = self.trainable_weights().iter().map(|(_, t)| t.numel()).sum();
        (total, trainable, total - trainable)
    }
}

/// Trainable weights below `m`, paths prefixed by `prefix`.
fn collect_weights(m: &Model, prefix: &str, _outer: bool, out: &mut Vec<(String, Tensor)>) {
    for l in &m.layers {
        let path = format!("{prefix}{}", l.name());
        if !l.trainable() {
            continue;
        }
        match l.as_model() {
            Some(sub) => collect_weights(sub, &format!("{path}/"), true, out),
            None => {
                for w in l.weights() {
                    if w.trainable {
                        out.push((format!("{path}/{}", w.name), w.tensor.clone()));
                    }
                }
            }
        }
    }
}

impl Layer for Model {
    fn base(&self) -> &LayerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut LayerBase {
        &mut self.base
    }
    fn class_name(&self) -> &'static str {
        match self.kind {
            ModelKind::Sequential => "Sequential",
            ModelKind::Functional => "Functional",
        }
    }

    fn build(&mut self, input_shapes: &[ShapeSpec], _rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shapes).map(|_| ())
    }

    fn output_shape(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        if input_shapes.len() != self.inputs.len() {
            return Err(Error::Msg(format!(
                "model '{}' takes {} input(s), got {}",
                self.base.name,
                self.inputs.len(),
                input_shapes.len()
            )));
        }
        for (spec, got) in self.inputs.iter().zip(input_shapes) {
            let ok = spec.shape.len() == got.len()
                && spec.shape.iter().zip(got).skip(1).all(|(a, b)| a.is_none() || b.is_none() || a == b);
            if !ok {
                return Err(Error::Msg(format!(
                    "model '{}': input '{}' expects shape {}, got {}",
                    self.base.name,
                    spec.name,
                    summary::shape_str(&spec.shape),
                    summary::shape_str(got)
                )));
            }
        }
        match self.outputs.as_slice() {
            [one] => {
                let mut s = self.source_shape(*one);
                if let (Some(first), Some(batch)) =
                    (s.first_mut(), input_shapes.first().and_then(|i| i.first()))
                {
                    *first = *batch;
                }
                Ok(s)
            }
            _ => Err(Error::Msg(format!(
                "model '{}' has {} outputs; only single-output models can be used as a layer",
                self.base.name,
                self.outputs.len()
            ))),
        }
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Tensor> {
        let mut out = self.forward(inputs, ctx)?;
        if out.len() != 1 {
            return Err(Error::Msg(format!(
                "model '{}' has {} outputs; only single-output models can be used as a layer",
                self.base.name,
                out.len()
            )));
        }
        Ok(out.swap_remove(0))
    }

    fn call_with_logits(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<(Tensor, Option<Logits>)> {
        let mut out = self.forward_with_logits(inputs, ctx)?;
        if out.len() != 1 {
            return Err(Error::Msg(format!(
                "model '{}' has {} outputs; only single-output models can be used as a layer",
                self.base.name,
                out.len()
            )));
        }
        Ok(out.swap_remove(0))
    }

    fn config(&self) -> Value {
        keras::model_config(self)
    }

    fn weight_paths(&self) -> Vec<(String, &Weight)> {
        self.named_weights()
    }

    fn set_trainable(&mut self, on: bool) -> Result<()> {
        self.base.trainable = on;
        for l in &mut self.layers {
            l.set_trainable(on)?;
        }
        Ok(())
    }

    fn set_weights(&self, values: &[Tensor]) -> Result<()> {
        self.set_all_weights(values)
    }

    fn regularization_loss(&self) -> Result<Option<Tensor>> {
        if !self.base.trainable {
            return Ok(None);
        }
        let mut total: Option<Tensor> = None;
        for l in &self.layers {
            if let Some(p) = l.regularization_loss()? {
                total = Some(match total {
                    None => p,
                    Some(t) => t.add(&p)?,
                });
            }
        }
        Ok(total)
    }

    fn apply_constraints(&self) -> Result<()> {
        if !self.base.trainable {
            return Ok(());
        }
        for l in &self.layers {
            l.apply_constraints()?;
        }
        Ok(())
    }

    fn as_model(&self) -> Option<&Model> {
        Some(self)
    }

    fn as_model_mut(&mut self) -> Option<&mut Model> {
        Some(self)
    }
}
