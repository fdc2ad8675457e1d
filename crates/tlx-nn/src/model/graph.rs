//! Building models in code: `Model::sequential(..).add(..)` for chains, and [`Functional`]
//! for DAGs (several inputs and outputs, shared layers, nested models), with `model.layers`
//! in the order Keras gives them (by decreasing graph depth, ties in discovery order from
//! the outputs), so weights files that pair layers by position load the same way.

use super::{InputSpec, Model, ModelKind, Node, Source};
use crate::error::{Error, Result};
use crate::layer::{Layer, LayerBase, ShapeSpec};
use crate::layers::{Stateless, StatelessOp};
use std::collections::HashMap;
use tlx_tensor::Rng;

/// The default seed of initial weights (change it with [`Model::with_seed`] /
/// [`Functional::with_seed`]).
pub const DEFAULT_SEED: u64 = 0x71C5;

fn batch_spec(shape: &[usize]) -> ShapeSpec {
    std::iter::once(None).chain(shape.iter().map(|&d| Some(d))).collect()
}

impl Model {
    /// An empty Sequential model taking inputs of `input_shape` (without the batch axis).
    pub fn sequential(name: &str, input_shape: &[usize]) -> Model {
        Model::sequential_spec(name, batch_spec(input_shape))
    }

    /// An empty Sequential model whose input has this shape (batch axis included).
    pub fn sequential_spec(name: &str, input_shape: ShapeSpec) -> Model {
        let mut base = LayerBase::new(name);
        base.built = true;
        Model {
            base,
            kind: ModelKind::Sequential,
            layers: Vec::new(),
            nodes: Vec::new(),
            inputs: vec![InputSpec { name: format!("{name}_input"), shape: input_shape, layer: None }],
            outputs: vec![Source::Input(0)],
            rng: Rng::new(DEFAULT_SEED),
            recycled: Default::default(),
        }
    }

    /// Sets the seed that initial weights of layers added from now on are drawn with.
    pub fn with_seed(mut self, seed: u64) -> Model {
        self.rng = Rng::new(seed);
        self
    }

    /// Appends a layer to a Sequential model, building it for the current output shape.
    pub fn add(&mut self, layer: impl Layer + 'static) -> Result<&mut Model> {
        self.add_boxed(Box::new(layer))
    }

    /// [`Model::add`] for a boxed layer.
    pub fn add_boxed(&mut self, mut layer: Box<dyn Layer>) -> Result<&mut Model> {
        if self.kind != ModelKind::Sequential {
            return Err(Error::Msg(format!("model '{}': add() needs a Sequential model", self.base.name)));
        }
        if self.layers.iter().any(|l| l.name() == layer.name()) {
            return Err(Error::Msg(format!(
                "model '{}' already has a layer named '{}'; layer names must be unique",
                self.base.name,
                layer.name()
            )));
        }
        let prev = self.outputs[0];
        let in_shape = self.source_shape(prev);
        layer.build(std::slice::from_ref(&in_shape), &mut self.rng)?;
        let out_shape = layer.output_shape(std::slice::from_ref(&in_shape))?;
        self.layers.push(layer);
        self.nodes.push(Node { layer: self.layers.len() - 1, inputs: vec![prev], output_shape: out_shape });
        self.outputs = vec![Source::Node(self.nodes.len() - 1)];
        Ok(self)
    }

    /// Removes the last layer of a Sequential model (Keras's `pop`).
    pub fn pop(&mut self) -> Result<Box<dyn Layer>> {
        if self.kind != ModelKind::Sequential || self.layers.is_empty() {
            return Err(Error::Msg(format!(
                "model '{}': pop() needs a non-empty Sequential",
                self.base.name
            )));
        }
        self.nodes.pop();
        self.outputs =
            vec![if self.nodes.is_empty() { Source::Input(0) } else { Source::Node(self.nodes.len() - 1) }];
        Ok(self.layers.pop().expect("checked non-empty"))
    }
}

/// A symbolic tensor while building a [`Functional`] model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRef(pub(crate) Source);

/// Builds a Functional model: inputs, layer calls on symbolic tensors, then outputs.
///
/// ```
/// use tlx_nn::model::Functional;
/// use tlx_nn::layers::Dense;
/// use tlx_nn::Activation;
/// let mut g = Functional::new("mlp");
/// let x = g.input("x", &[4]);
/// let h = g.call(Dense::new("h", 8, Activation::from_name("relu").unwrap()), &[x]).unwrap();
/// let y = g.call(Dense::new("out", 2, Activation::Linear), &[h]).unwrap();
/// let model = g.build(&[x], &[y]).unwrap();
/// assert_eq!(model.layers().len(), 3); // the InputLayer, h, out
/// ```
pub struct Functional {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    nodes: Vec<Node>,
    inputs: Vec<InputSpec>,
    rng: Rng,
}

impl Functional {
    /// An empty graph for a model called `name`.
    pub fn new(name: &str) -> Functional {
        Functional {
            name: name.into(),
            layers: Vec::new(),
            nodes: Vec::new(),
            inputs: Vec::new(),
            rng: Rng::new(DEFAULT_SEED),
        }
    }

    /// Sets the seed initial weights are drawn with.
    pub fn with_seed(mut self, seed: u64) -> Functional {
        self.rng = Rng::new(seed);
        self
    }

    /// A new input (an `InputLayer` named `name`) of `shape` without the batch axis.
    pub fn input(&mut self, name: &str, shape: &[usize]) -> NodeRef {
        self.input_spec(name, batch_spec(shape))
    }

    /// A new input with a full shape spec (batch axis first, `None` for unknown sizes).
    pub fn input_spec(&mut self, name: &str, shape: ShapeSpec) -> NodeRef {
        self.layers.push(Box::new(Stateless::new(name, "InputLayer", StatelessOp::Input)));
        self.inputs.push(InputSpec { name: name.into(), shape, layer: Some(self.layers.len() - 1) });
        NodeRef(Source::Input(self.inputs.len() - 1))
    }

    /// The shape of a symbolic tensor (batch axis first).
    pub fn shape(&self, r: NodeRef) -> ShapeSpec {
        match r.0 {
            Source::Input(i) => self.inputs[i].shape.clone(),
            Source::Node(j) => self.nodes[j].output_shape.clone(),
        }
    }

    /// Calls a new layer on `inputs` (its name must be new in this model).
    pub fn call(&mut self, layer: impl Layer + 'static, inputs: &[NodeRef]) -> Result<NodeRef> {
        self.call_boxed(Box::new(layer), inputs)
    }

    /// [`Functional::call`] for a boxed layer.
    pub fn call_boxed(&mut self, layer: Box<dyn Layer>, inputs: &[NodeRef]) -> Result<NodeRef> {
        if self.layers.iter().any(|l| l.name() == layer.name()) {
            return Err(Error::Msg(format!(
                "model '{}' already has a layer named '{}'; call it again with call_shared",
                self.name,
                layer.name()
            )));
        }
        self.layers.push(layer);
        self.call_index(self.layers.len() - 1, inputs)
    }

    /// Calls an existing layer (shared weights) on new inputs.
    pub fn call_shared(&mut self, name: &str, inputs: &[NodeRef]) -> Result<NodeRef> {
        let idx = self
            .layers
            .iter()
            .position(|l| l.name() == name)
            .ok_or_else(|| Error::Msg(format!("model '{}' has no layer '{name}' to share", self.name)))?;
        self.call_index(idx, inputs)
    }

    fn call_index(&mut self, idx: usize, inputs: &[NodeRef]) -> Result<NodeRef> {
        if self.layers[idx].class_name() == "InputLayer" {
            return Err(Error::Msg(format!("model '{}': an InputLayer cannot be called", self.name)));
        }
        let shapes: Vec<ShapeSpec> = inputs.iter().map(|r| self.shape(*r)).collect();
        let layer = &mut self.layers[idx];
        layer.build(&shapes, &mut self.rng)?;
        let output_shape = layer.output_shape(&shapes)?;
        self.nodes.push(Node { layer: idx, inputs: inputs.iter().map(|r| r.0).collect(), output_shape });
        Ok(NodeRef(Source::Node(self.nodes.len() - 1)))
    }

    /// Finishes the model with these inputs (in order) and outputs; layers and calls that do
    /// not lead to an output are dropped, and layers are ordered as Keras orders them.
    pub fn build(self, inputs: &[NodeRef], outputs: &[NodeRef]) -> Result<Model> {
        if outputs.is_empty() {
            return Err(Error::Msg(format!("model '{}' needs at least one output", self.name)));
        }
        let input_ids: Vec<usize> = inputs
            .iter()
            .map(|r| match r.0 {
                Source::Input(i) => Ok(i),
                Source::Node(_) => Err(Error::Msg(format!(
                    "model '{}': model inputs must come from Functional::input",
                    self.name
                ))),
            })
            .collect::<Result<_>>()?;
        let order = keras_layer_order(&self.nodes, &self.inputs, outputs.iter().map(|r| r.0).collect())?;
        assemble(self, &input_ids, outputs, order)
    }
}

/// Keras's `model.layers` order for a graph: map_graph's depth (outputs 0, each input one
/// deeper than its deepest consumer, a layer as deep as its deepest call), sorted by
/// decreasing depth, ties by first discovery in a depth-first walk from the outputs.
fn keras_layer_order(nodes: &[Node], inputs: &[InputSpec], outputs: Vec<Source>) -> Result<Vec<usize>> {
    // Graph vertices: inputs (as their InputLayer) and nodes.
    #[derive(Clone, Copy, PartialEq, Eq, Hash)]
    enum V {
        In(usize),
        N(usize),
    }
    let of = |s: Source| match s {
        Source::Input(i) => V::In(i),
        Source::Node(j) => V::N(j),
    };
    let layer_of = |v: V| -> Option<usize> {
        match v {
            V::In(i) => inputs[i].layer,
            V::N(j) => Some(nodes[j].layer),
        }
    };
    let parents = |v: V| -> Vec<V> {
        match v {
            V::In(_) => Vec::new(),
            V::N(j) => nodes[j].inputs.iter().map(|s| of(*s)).collect(),
        }
    };
    // Depth-first from the outputs (iterative), recording first discovery of layers and the
    // post-order of vertices.
    let mut layer_index: HashMap<usize, usize> = HashMap::new();
    let mut finished: std::collections::HashSet<V> = Default::default();
    let mut post: Vec<V> = Vec::new();
    for out in outputs {
        let mut stack: Vec<(V, usize)> = vec![(of(out), 0)];
        while let Some((v, child)) = stack.pop() {
            if child == 0 {
                if finished.contains(&v) {
                    continue;
                }
                if let Some(l) = layer_of(v) {
                    let n = layer_index.len();
                    layer_index.entry(l).or_insert(n);
                }
            }
            let ps = parents(v);
            if child < ps.len() {
                stack.push((v, child + 1));
                if !finished.contains(&ps[child]) {
                    stack.push((ps[child], 0));
                }
            } else if finished.insert(v) {
                post.push(v);
            }
        }
    }
    let mut node_depth: HashMap<V, usize> = HashMap::new();
    let mut layer_depth: HashMap<usize, usize> = HashMap::new();
    for &v in post.iter().rev() {
        let mut depth = *node_depth.entry(v).or_insert(0);
        if let Some(l) = layer_of(v) {
            depth = depth.max(layer_depth.get(&l).copied().unwrap_or(0));
            layer_depth.insert(l, depth);
        }
        node_depth.insert(v, depth);
        for p in parents(v) {
            let d = node_depth.get(&p).copied().unwrap_or(0).max(depth + 1);
            node_depth.insert(p, d);
        }
    }
    let mut layers: Vec<usize> = layer_depth.keys().copied().collect();
    layers.sort_by(|a, b| layer_depth[b].cmp(&layer_depth[a]).then(layer_index[a].cmp(&layer_index[b])));
    Ok(layers)
}

/// Assembles a model from the builder: keeps the layers in `order` (dropping the others),
/// the calls reachable from the outputs, renumbered in creation order (a topological order).
fn assemble(g: Functional, input_ids: &[usize], outputs: &[NodeRef], order: Vec<usize>) -> Result<Model> {
    let Functional { name, layers, nodes, inputs, rng } = g;
    // Reachable nodes.
    let mut keep = vec![false; nodes.len()];
    let mut stack: Vec<Source> = outputs.iter().map(|r| r.0).collect();
    let mut used_inputs = std::collections::HashSet::new();
    while let Some(s) = stack.pop() {
        match s {
            Source::Input(i) => {
                used_inputs.insert(i);
            }
            Source::Node(j) => {
                if !keep[j] {
                    keep[j] = true;
                    stack.extend(nodes[j].inputs.iter().copied());
                }
            }
        }
    }
    for i in &used_inputs {
        if !input_ids.contains(i) {
            return Err(Error::Msg(format!(
                "model '{name}': output depends on input '{}', which is not among the model's inputs",
                inputs[*i].name
            )));
        }
    }
    // New layer indices.
    let mut new_layer = vec![usize::MAX; layers.len()];
    for (k, &l) in order.iter().enumerate() {
        new_layer[l] = k;
    }
    // The model's inputs in the requested order; unused declared inputs still count.
    let mut new_input = vec![usize::MAX; inputs.len()];
    for (k, &i) in input_ids.iter().enumerate() {
        new_input[i] = k;
    }
    let mut new_node = vec![usize::MAX; nodes.len()];
    let mut kept_nodes = Vec::new();
    for (j, n) in nodes.into_iter().enumerate() {
        if !keep[j] {
            continue;
        }
        new_node[j] = kept_nodes.len();
        let map = |s: &Source| match s {
            Source::Input(i) => Source::Input(new_input[*i]),
            Source::Node(k) => Source::Node(new_node[*k]),
        };
        kept_nodes.push(Node { layer: new_layer[n.layer], inputs: n.inputs.iter().map(map).collect(), ..n });
    }
    // Input layers of declared inputs not reached by the walk still belong to the model.
    let mut order = order;
    for &i in input_ids {
        if let Some(l) = inputs[i].layer {
            if new_layer[l] == usize::MAX {
                new_layer[l] = order.len();
                order.push(l);
            }
        }
    }
    let mut slots: Vec<Option<Box<dyn Layer>>> = layers.into_iter().map(Some).collect();
    let new_layers: Vec<Box<dyn Layer>> =
        order.iter().map(|&l| slots[l].take().expect("each layer placed once")).collect();
    let new_inputs: Vec<InputSpec> = input_ids
        .iter()
        .map(|&i| {
            let s = &inputs[i];
            InputSpec { name: s.name.clone(), shape: s.shape.clone(), layer: s.layer.map(|l| new_layer[l]) }
        })
        .collect();
    let new_outputs = outputs
        .iter()
        .map(|r| match r.0 {
            Source::Input(i) => Source::Input(new_input[i]),
            Source::Node(k) => Source::Node(new_node[k]),
        })
        .collect();
    let mut base = LayerBase::new(name);
    base.built = true;
    Ok(Model {
        base,
        kind: ModelKind::Functional,
        layers: new_layers,
        nodes: kept_nodes,
        inputs: new_inputs,
        outputs: new_outputs,
        rng,
        recycled: Default::default(),
    })
}

/// Assembles a Functional model whose layer order is given (a Keras config's), from layers,
/// nodes in any order (sorted topologically here) and inputs/outputs.
pub(crate) fn from_parts(
    name: &str,
    layers: Vec<Box<dyn Layer>>,
    nodes: Vec<Node>,
    inputs: Vec<InputSpec>,
    outputs: Vec<Source>,
) -> Result<Model> {
    let mut base = LayerBase::new(name);
    base.built = true;
    Ok(Model {
        base,
        kind: ModelKind::Functional,
        layers,
        nodes,
        inputs,
        outputs,
        rng: Rng::new(DEFAULT_SEED),
        recycled: Default::default(),
    })
}
