//! Splitting a model into a frozen base and a trainable head, for the feature cache: the
//! base is the longest prefix of calls that train nothing and compute the same thing in
//! training and inference (no dropout, frozen BatchNorm), and that the rest of the model sees
//! only through one tensor. Its output can then be computed once per example and the head
//! trained on it, with the same results.

use super::{Model, Source};
use crate::error::{Error, Result};
use crate::layer::{Context, Layer, Logits};
use tlx_tensor::Tensor;

/// Layer classes whose training-mode output is random.
const STOCHASTIC: &[&str] =
    &["Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout", "AlphaDropout"];

/// True when `layer` trains nothing and is deterministic in training mode, given whether every
/// model around it is trainable (`outer`).
pub fn frozen_and_deterministic(layer: &dyn Layer, outer: bool) -> bool {
    let trains = outer && layer.trainable();
    if let Some(m) = layer.as_model() {
        return m.layers.iter().all(|l| frozen_and_deterministic(l.as_ref(), trains));
    }
    if STOCHASTIC.contains(&layer.class_name()) {
        return false;
    }
    if trains && layer.class_name() == "BatchNormalization" {
        return false;
    }
    !(trains && layer.weights().iter().any(|w| w.trainable))
}

impl Model {
    /// The node whose output splits the model into a frozen, deterministic base (that node and
    /// every node before it) and a head that reads only that output; the latest such node
    /// before the last. `None` when there is no such split (nothing frozen, several inputs,
    /// or a base that is not a clean prefix).
    pub fn frozen_prefix_cut(&self) -> Option<usize> {
        if self.inputs.len() != 1 || self.nodes.len() < 2 || !self.base.trainable {
            return None;
        }
        let mut best = None;
        for j in 0..self.nodes.len() - 1 {
            if !frozen_and_deterministic(self.layers[self.nodes[j].layer].as_ref(), true) {
                break;
            }
            // Everything after j reads nothing from before j, nor the input.
            let clean = self.nodes[j + 1..].iter().all(|n| {
                n.inputs.iter().all(|s| match s {
                    Source::Input(_) => false,
                    Source::Node(k) => *k >= j,
                })
            }) && self.outputs.iter().all(|s| matches!(s, Source::Node(k) if *k > j));
            if clean {
                best = Some(j);
            }
        }
        best
    }

    /// The output of node `cut` for input `x`, in inference mode without gradients (the
    /// frozen base's features).
    pub fn forward_to(&self, cut: usize, x: &Tensor) -> Result<Tensor> {
        self.check_cut(cut)?;
        let _g = tlx_tensor::no_grad();
        let mut ctx = Context::inference();
        let (mut values, _) = self.run_nodes(std::slice::from_ref(x), None, cut + 1, &mut ctx, false)?;
        values[cut]
            .take()
            .ok_or_else(|| Error::Msg(format!("model '{}': node {cut} produced no value", self.base.name)))
    }

    /// The model's outputs computed from node `cut`'s output `features` (the head), with
    /// logits as in [`Model::forward_with_logits`].
    pub fn forward_from(
        &self,
        cut: usize,
        features: &Tensor,
        ctx: &mut Context,
    ) -> Result<Vec<(Tensor, Option<Logits>)>> {
        self.check_cut(cut)?;
        let (values, logits) =
            self.run_nodes(&[], Some((cut, features.clone())), self.nodes.len(), ctx, true)?;
        self.outputs
            .iter()
            .map(|s| match s {
                Source::Node(k) if *k > cut => {
                    values[*k].clone().map(|v| (v, logits[*k].clone())).ok_or_else(|| {
                        Error::Msg(format!("model '{}': output node {k} missing", self.base.name))
                    })
                }
                _ => Err(Error::Msg(format!(
                    "model '{}': an output comes from before node {cut}",
                    self.base.name
                ))),
            })
            .collect()
    }

    /// The shape of node `cut`'s output (batch axis first).
    pub fn node_output_shape(&self, cut: usize) -> Result<crate::layer::ShapeSpec> {
        self.check_cut(cut)?;
        Ok(self.nodes[cut].output_shape.clone())
    }

    fn check_cut(&self, cut: usize) -> Result<()> {
        if cut >= self.nodes.len() {
            return Err(Error::Msg(format!(
                "model '{}' has {} nodes; node {cut} does not exist",
                self.base.name,
                self.nodes.len()
            )));
        }
        Ok(())
    }
}

impl Model {
    /// The model up to and including layer `name` (its first call): the layers after it are
    /// dropped, and so is every layer not needed to compute it. Use it to take a base model
    /// out of a model with a classifier on top (e.g. everything up to `flatten`).
    pub fn truncated(mut self, name: &str) -> Result<Model> {
        let li = self.layer_index(name)?;
        if self.inputs.iter().any(|s| s.layer == Some(li)) {
            return Err(Error::Msg(format!(
                "model '{}': cannot cut at the input layer '{name}'",
                self.base.name
            )));
        }
        if self.kind == super::ModelKind::Sequential {
            while self.layers.len() > li + 1 {
                self.pop()?;
            }
            return Ok(self);
        }
        let j = self.nodes.iter().position(|n| n.layer == li).ok_or_else(|| {
            Error::Msg(format!("model '{}': layer '{name}' is never called", self.base.name))
        })?;
        // Nodes and inputs needed for node j.
        let mut keep = vec![false; self.nodes.len()];
        let mut used_inputs = vec![false; self.inputs.len()];
        let mut stack = vec![Source::Node(j)];
        while let Some(s) = stack.pop() {
            match s {
                Source::Input(i) => used_inputs[i] = true,
                Source::Node(k) if !keep[k] => {
                    keep[k] = true;
                    stack.extend(self.nodes[k].inputs.iter().copied());
                }
                Source::Node(_) => {}
            }
        }
        let mut keep_layer = vec![false; self.layers.len()];
        for (k, n) in self.nodes.iter().enumerate() {
            if keep[k] {
                keep_layer[n.layer] = true;
            }
        }
        for (i, spec) in self.inputs.iter().enumerate() {
            if let (true, Some(l)) = (used_inputs[i], spec.layer) {
                keep_layer[l] = true;
            }
        }
        let mut new_layer = vec![usize::MAX; self.layers.len()];
        let mut layers = Vec::new();
        for (l, layer) in std::mem::take(&mut self.layers).into_iter().enumerate() {
            if keep_layer[l] {
                new_layer[l] = layers.len();
                layers.push(layer);
            }
        }
        let mut new_input = vec![usize::MAX; self.inputs.len()];
        let mut inputs = Vec::new();
        for (i, mut spec) in std::mem::take(&mut self.inputs).into_iter().enumerate() {
            if used_inputs[i] {
                new_input[i] = inputs.len();
                spec.layer = spec.layer.map(|l| new_layer[l]);
                inputs.push(spec);
            }
        }
        let mut new_node = vec![usize::MAX; self.nodes.len()];
        let mut nodes = Vec::new();
        for (k, mut n) in std::mem::take(&mut self.nodes).into_iter().enumerate() {
            if !keep[k] {
                continue;
            }
            new_node[k] = nodes.len();
            n.layer = new_layer[n.layer];
            for s in &mut n.inputs {
                *s = match *s {
                    Source::Input(i) => Source::Input(new_input[i]),
                    Source::Node(m) => Source::Node(new_node[m]),
                };
            }
            nodes.push(n);
        }
        self.layers = layers;
        self.inputs = inputs;
        self.nodes = nodes;
        self.outputs = vec![Source::Node(new_node[j])];
        Ok(self)
    }
}
