//! Keras model configs, both ways: rebuilding a Sequential or Functional model (Keras 2 and 3
//! spellings, nested models, shared layers) from the JSON in a `.h5`'s `model_config` or a
//! `.keras`'s `config.json`, and writing a Keras 3 style config of a model.
//!
//! Keras 2 writes `inbound_nodes` as `[[["layer", node, tensor, {kwargs}], …], …]`; Keras 3 as
//! `[{"args": [keras tensors, possibly in lists], "kwargs": {…}}, …]` where each tensor's
//! `keras_history` is `[layer, node, tensor]`. Node indices count the calls of a layer in the
//! order its `inbound_nodes` list them.

use super::graph::{self, DEFAULT_SEED};
use super::{InputSpec, Model, ModelKind, Node, Source};
use crate::config::class_and_config;
use crate::error::{Error, Result};
use crate::layer::{Layer, ShapeSpec};
use crate::layers::{from_keras, Stateless, StatelessOp};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use tlx_tensor::Rng;

const MODEL_CLASSES: &[&str] = &["Sequential", "Functional", "Model"];

/// `(layer name, call index, output index)`: Keras's `keras_history`.
type TensorRef = (String, usize, usize);

fn bad(model: &str, msg: impl std::fmt::Display) -> Error {
    Error::Msg(format!("model config '{model}': {msg}"))
}

/// Reads a shape written as `[null, 28, 28]`.
fn shape_of(v: &Value) -> Option<ShapeSpec> {
    v.as_array()?
        .iter()
        .map(|d| match d {
            Value::Null => Some(None),
            d => d.as_u64().map(|d| Some(d as usize)),
        })
        .collect()
}

/// The batch input shape a layer config declares (`batch_shape`, `batch_input_shape`, or
/// `input_shape` with the batch axis added).
fn declared_input_shape(cfg: &Value) -> Option<ShapeSpec> {
    if let Some(s) = cfg.get("batch_shape").or_else(|| cfg.get("batch_input_shape")).and_then(shape_of) {
        return Some(s);
    }
    cfg.get("input_shape").and_then(shape_of).map(|s| std::iter::once(None).chain(s).collect())
}

/// Builds a model from Keras's `{"class_name": "Sequential" | "Functional" | "Model", "config": …}`.
pub fn model_from_config(v: &Value) -> Result<Model> {
    let mut rng = Rng::new(DEFAULT_SEED);
    model_from_config_rng(v, &mut rng)
}

/// Parses a JSON model config string (as stored in files).
pub fn model_from_json(text: &str) -> Result<Model> {
    let v: Value =
        serde_json::from_str(text).map_err(|e| Error::Msg(format!("model config is not valid JSON: {e}")))?;
    model_from_config(&v)
}

fn model_from_config_rng(v: &Value, rng: &mut Rng) -> Result<Model> {
    let (class, config) =
        class_and_config(v).ok_or_else(|| bad("?", "expected {\"class_name\": …, \"config\": …}"))?;
    let mut model = match class {
        "Sequential" => sequential_from_config(&config, v, rng)?,
        "Functional" | "Model" => functional_from_config(&config, rng)?,
        other => {
            let name = config.get("name").and_then(Value::as_str).unwrap_or("?");
            return Err(Error::UnknownLayer { layer: name.into(), class: format!("{other} (as a model)") });
        }
    };
    if config.get("trainable") == Some(&Value::Bool(false)) {
        model.set_trainable(false)?;
    }
    Ok(model)
}

/// A layer entry: a nested model or a plain layer.
fn layer_from_entry(entry: &Value, rng: &mut Rng) -> Result<Box<dyn Layer>> {
    let (class, config) =
        class_and_config(entry).ok_or_else(|| bad("?", format!("bad layer entry {}", short(entry))))?;
    if MODEL_CLASSES.contains(&class) {
        return Ok(Box::new(model_from_config_rng(entry, rng)?));
    }
    from_keras(class, &config)
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!("{}…", &s[..s.char_indices().nth(120).map_or(s.len(), |(i, _)| i)])
    } else {
        s
    }
}

fn sequential_from_config(config: &Value, entry: &Value, rng: &mut Rng) -> Result<Model> {
    let (name, entries): (String, Vec<Value>) = match config {
        // Keras ≤ 2.2: the config is the list of layers.
        Value::Array(a) => ("sequential".into(), a.clone()),
        Value::Object(o) => (
            o.get("name").and_then(Value::as_str).unwrap_or("sequential").into(),
            o.get("layers").and_then(Value::as_array).cloned().unwrap_or_default(),
        ),
        _ => return Err(bad("sequential", "the Sequential config must be a list or an object")),
    };
    let mut entries = entries.into_iter().peekable();
    // The input shape: an InputLayer first, a first layer's batch_input_shape, or the build
    // config (Keras 3) / build_input_shape (tf.keras).
    let mut input_shape: Option<ShapeSpec> = None;
    let mut input_name: Option<String> = None;
    if let Some(first) = entries.peek() {
        let (class, cfg) = class_and_config(first).unwrap_or(("", Value::Null));
        if class == "InputLayer" {
            input_shape = declared_input_shape(&cfg);
            input_name = cfg.get("name").and_then(Value::as_str).map(str::to_string);
            entries.next();
        } else {
            input_shape = declared_input_shape(&cfg);
        }
    }
    if input_shape.is_none() {
        input_shape = config
            .get("build_input_shape")
            .and_then(shape_of)
            .or_else(|| entry.get("build_config").and_then(|b| b.get("input_shape")).and_then(shape_of));
    }
    let input_shape = input_shape.ok_or_else(|| {
        bad(
            &name,
            "the Sequential model has no input shape (no InputLayer, batch_input_shape or build config)",
        )
    })?;
    let mut model = Model::sequential_spec(&name, input_shape);
    if let Some(n) = input_name {
        model.inputs[0].name = n;
    }
    for e in entries {
        let layer = layer_from_entry(&e, rng)?;
        let lname = layer.name().to_string();
        model.rng = rng.fork();
        model.add_boxed(layer).map_err(|err| bad(&name, format!("layer '{lname}': {err}")))?;
    }
    Ok(model)
}

/// `[layer, node, tensor]` references in an inbound node, in argument order.
fn node_refs(model: &str, layer: &str, node: &Value) -> Result<Vec<TensorRef>> {
    let mut out = Vec::new();
    match node {
        // Keras 2: [["name", node, tensor, {kwargs}], …]
        Value::Array(items) => {
            for item in items {
                let a = item
                    .as_array()
                    .ok_or_else(|| bad(model, format!("layer '{layer}': bad inbound node")))?;
                let r = history(a).ok_or_else(|| bad(model, format!("layer '{layer}': bad inbound node")))?;
                if let Some(kw) = a.get(3) {
                    check_kwargs(model, layer, kw)?;
                }
                out.push(r);
            }
        }
        // Keras 3: {"args": […], "kwargs": {…}}
        Value::Object(o) => {
            if let Some(args) = o.get("args") {
                collect_tensors(args, &mut out);
            }
            if let Some(kw) = o.get("kwargs") {
                let mut in_kwargs = Vec::new();
                collect_tensors(kw, &mut in_kwargs);
                if !in_kwargs.is_empty() {
                    return Err(bad(
                        model,
                        format!("layer '{layer}': tensors passed as keyword arguments are not supported"),
                    ));
                }
                check_kwargs(model, layer, kw)?;
            }
        }
        _ => return Err(bad(model, format!("layer '{layer}': bad inbound node {}", short(node)))),
    }
    Ok(out)
}

fn history(a: &[Value]) -> Option<TensorRef> {
    Some((a.first()?.as_str()?.to_string(), a.get(1)?.as_u64()? as usize, a.get(2)?.as_u64()? as usize))
}

fn collect_tensors(v: &Value, out: &mut Vec<TensorRef>) {
    match v {
        Value::Object(o) if o.get("class_name").and_then(Value::as_str) == Some("__keras_tensor__") => {
            if let Some(h) = o.get("config").and_then(|c| c.get("keras_history")).and_then(Value::as_array) {
                if let Some(r) = history(h) {
                    out.push(r);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_tensors(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_tensors(x, out)),
        _ => {}
    }
}

/// Call keyword arguments that change nothing (`mask: null`, `training` left to the model)
/// pass; any other is an error naming it.
fn check_kwargs(model: &str, layer: &str, kw: &Value) -> Result<()> {
    let Some(o) = kw.as_object() else { return Ok(()) };
    for (k, v) in o {
        if v.is_null() || k == "mask" && v.is_null() {
            continue;
        }
        return Err(bad(
            model,
            format!("layer '{layer}': call argument '{k}' = {} is not supported", short(v)),
        ));
    }
    Ok(())
}

/// The `[[name, node, tensor], …]` list of input_layers / output_layers (Keras 3 writes a
/// single one flat).
fn endpoint_list(v: Option<&Value>) -> Vec<TensorRef> {
    let Some(Value::Array(a)) = v else { return Vec::new() };
    if a.first().is_some_and(Value::is_string) {
        return history(a).into_iter().collect();
    }
    a.iter().filter_map(|x| x.as_array().and_then(|x| history(x))).collect()
}

fn functional_from_config(config: &Value, rng: &mut Rng) -> Result<Model> {
    let name = config.get("name").and_then(Value::as_str).unwrap_or("model").to_string();
    let entries = config
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(&name, "a Functional config needs a 'layers' list"))?;
    let input_refs = endpoint_list(config.get("input_layers"));
    let output_refs = endpoint_list(config.get("output_layers"));
    if input_refs.is_empty() || output_refs.is_empty() {
        return Err(bad(&name, "a Functional config needs input_layers and output_layers"));
    }
    let mut layers: Vec<Box<dyn Layer>> = Vec::new();
    let mut calls: Vec<(usize, Vec<TensorRef>)> = Vec::new(); // (layer, inputs)
    let mut key_of_call: HashMap<(String, usize), usize> = HashMap::new();
    let mut input_layers: HashMap<String, (usize, ShapeSpec)> = HashMap::new();
    for entry in entries {
        let (class, cfg) =
            class_and_config(entry).ok_or_else(|| bad(&name, format!("bad layer entry {}", short(entry))))?;
        let lname = entry
            .get("name")
            .and_then(Value::as_str)
            .or_else(|| cfg.get("name").and_then(Value::as_str))
            .ok_or_else(|| bad(&name, format!("layer entry without a name: {}", short(entry))))?
            .to_string();
        let layer: Box<dyn Layer> = if class == "InputLayer" {
            let shape = declared_input_shape(&cfg)
                .ok_or_else(|| bad(&name, format!("InputLayer '{lname}' has no batch_shape")))?;
            input_layers.insert(lname.clone(), (layers.len(), shape));
            Box::new(Stateless::new(&lname, "InputLayer", StatelessOp::Input))
        } else {
            layer_from_entry(entry, rng)?
        };
        if layers.iter().any(|l| l.name() == lname) {
            return Err(bad(&name, format!("two layers are named '{lname}'")));
        }
        let idx = layers.len();
        layers.push(layer);
        if class == "InputLayer" {
            continue;
        }
        let nodes = entry.get("inbound_nodes").and_then(Value::as_array).cloned().unwrap_or_default();
        for (k, node) in nodes.iter().enumerate() {
            let refs = node_refs(&name, &lname, node)?;
            key_of_call.insert((lname.clone(), k), calls.len());
            calls.push((idx, refs));
        }
    }
    // Model inputs, in input_layers order.
    let mut inputs = Vec::new();
    let mut input_source: HashMap<String, usize> = HashMap::new();
    for (lname, _, _) in &input_refs {
        let (idx, shape) = input_layers
            .get(lname)
            .cloned()
            .ok_or_else(|| bad(&name, format!("input_layers names '{lname}', which is not an InputLayer")))?;
        input_source.insert(lname.clone(), inputs.len());
        inputs.push(InputSpec { name: lname.clone(), shape, layer: Some(idx) });
    }
    let resolve = |r: &TensorRef, done: &HashMap<usize, usize>| -> Result<Option<Source>> {
        let (lname, node, tensor) = r;
        if *tensor != 0 {
            return Err(bad(
                &name,
                format!("output {tensor} of layer '{lname}': layers with several outputs are not supported"),
            ));
        }
        if let Some(&i) = input_source.get(lname) {
            return Ok(Some(Source::Input(i)));
        }
        if input_layers.contains_key(lname) {
            return Err(bad(&name, format!("InputLayer '{lname}' is used but not listed in input_layers")));
        }
        match key_of_call.get(&(lname.clone(), *node)) {
            None => {
                Err(bad(&name, format!("reference to call {node} of layer '{lname}', which does not exist")))
            }
            Some(c) => Ok(done.get(c).map(|&j| Source::Node(j))),
        }
    };
    // Topological order of the calls (config order where possible).
    let mut done: HashMap<usize, usize> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    while done.len() < calls.len() {
        let mut progress = false;
        for (c, (layer_idx, refs)) in calls.iter().enumerate() {
            if done.contains_key(&c) {
                continue;
            }
            let srcs: Vec<Option<Source>> = refs.iter().map(|r| resolve(r, &done)).collect::<Result<_>>()?;
            if srcs.iter().any(Option::is_none) {
                continue;
            }
            let srcs: Vec<Source> = srcs.into_iter().flatten().collect();
            let shapes: Vec<ShapeSpec> = srcs
                .iter()
                .map(|s| match s {
                    Source::Input(i) => inputs[*i].shape.clone(),
                    Source::Node(j) => nodes[*j].output_shape.clone(),
                })
                .collect();
            let layer = &mut layers[*layer_idx];
            let lname = layer.name().to_string();
            let mut layer_rng = rng.fork();
            layer.build(&shapes, &mut layer_rng).map_err(|e| bad(&name, format!("layer '{lname}': {e}")))?;
            let output_shape =
                layer.output_shape(&shapes).map_err(|e| bad(&name, format!("layer '{lname}': {e}")))?;
            done.insert(c, nodes.len());
            nodes.push(Node { layer: *layer_idx, inputs: srcs, output_shape });
            progress = true;
        }
        if !progress {
            return Err(bad(&name, "the layer graph has a cycle or depends on layers that are never called"));
        }
    }
    let outputs: Vec<Source> = output_refs
        .iter()
        .map(|r| {
            resolve(r, &done)?.ok_or_else(|| bad(&name, format!("output layer '{}' is never computed", r.0)))
        })
        .collect::<Result<_>>()?;
    graph::from_parts(&name, layers, nodes, inputs, outputs)
}

/// A Keras 3 style config of `model` (`{"class_name", "config"}` with layers and, for
/// Functional models, inbound nodes and endpoints).
pub fn model_config(model: &Model) -> Value {
    let module = match model.kind {
        ModelKind::Sequential => "keras",
        ModelKind::Functional => "keras.src.models.functional",
    };
    json!({"module": module, "class_name": model.class_name(), "config": model_inner_config(model),
           "registered_name": null})
}

fn tensor_ref(model: &Model, s: Source, call_index: &[usize]) -> Value {
    let (layer, node) = match s {
        Source::Input(i) => {
            let name = model.inputs[i].name.clone();
            (name, 0)
        }
        Source::Node(j) => (model.layers[model.nodes[j].layer].name().to_string(), call_index[j]),
    };
    // Keras 3 also wants the tensor's shape and dtype.
    json!({"class_name": "__keras_tensor__",
           "config": {"shape": model.source_shape(s), "dtype": "float32", "keras_history": [layer, node, 0]}})
}

fn model_inner_config(model: &Model) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(model.name()));
    o.insert("trainable".into(), json!(model.base.trainable));
    let input_layer = |spec: &InputSpec| {
        json!({"module": "keras.layers", "class_name": "InputLayer", "registered_name": null,
               "config": {"name": spec.name, "batch_shape": spec.shape, "dtype": "float32"}})
    };
    match model.kind {
        ModelKind::Sequential => {
            let mut layers = vec![input_layer(&model.inputs[0])];
            for l in &model.layers {
                layers.push(layer_entry(l.as_ref()));
            }
            o.insert("layers".into(), Value::Array(layers));
        }
        ModelKind::Functional => {
            // The index of each call among its layer's calls.
            let mut seen: HashMap<usize, usize> = HashMap::new();
            let call_index: Vec<usize> = model
                .nodes
                .iter()
                .map(|n| {
                    let c = seen.entry(n.layer).or_insert(0);
                    *c += 1;
                    *c - 1
                })
                .collect();
            let mut layers = Vec::new();
            for (li, l) in model.layers.iter().enumerate() {
                if let Some(spec) = model.inputs.iter().find(|s| s.layer == Some(li)) {
                    let mut e = input_layer(spec);
                    e["name"] = json!(spec.name);
                    e["inbound_nodes"] = json!([]);
                    layers.push(e);
                    continue;
                }
                let mut e = layer_entry(l.as_ref());
                let inbound: Vec<Value> = model
                    .nodes
                    .iter()
                    .filter(|n| n.layer == li)
                    .map(|n| {
                        let ts: Vec<Value> =
                            n.inputs.iter().map(|s| tensor_ref(model, *s, &call_index)).collect();
                        let args = if ts.len() == 1 { ts } else { vec![Value::Array(ts)] };
                        json!({"args": args, "kwargs": {}})
                    })
                    .collect();
                e["name"] = json!(l.name());
                e["inbound_nodes"] = Value::Array(inbound);
                layers.push(e);
            }
            o.insert("layers".into(), Value::Array(layers));
            // Keras 3 writes a single endpoint flat (`["name", 0, 0]`) and then returns a
            // tensor rather than a one-element list; several endpoints as a list of them.
            let ends = |v: &[Source]| -> Value {
                let refs: Vec<Value> = v
                    .iter()
                    .map(|s| tensor_ref(model, *s, &call_index)["config"]["keras_history"].clone())
                    .collect();
                match <[Value; 1]>::try_from(refs) {
                    Ok([one]) => one,
                    Err(refs) => Value::Array(refs),
                }
            };
            let ins: Vec<Source> = (0..model.inputs.len()).map(Source::Input).collect();
            o.insert("input_layers".into(), ends(&ins));
            o.insert("output_layers".into(), ends(&model.outputs));
        }
    }
    Value::Object(o)
}

fn layer_entry(l: &dyn Layer) -> Value {
    match l.as_model() {
        Some(m) => model_config(m),
        None => json!({"module": "keras.layers", "class_name": l.class_name(), "config": l.config(),
                       "registered_name": null}),
    }
}

impl Model {
    /// Rebuilds a model from a Keras config value (see [`model_from_config`]).
    pub fn from_keras_config(v: &Value) -> Result<Model> {
        model_from_config(v)
    }

    /// This model's Keras 3 style config.
    pub fn to_keras_config(&self) -> Value {
        model_config(self)
    }

    /// A new model with the same architecture, names and trainable flags and fresh initial
    /// weights drawn with `seed` (Keras's `clone_model`).
    pub fn clone_architecture(&self, seed: u64) -> Result<Model> {
        let mut rng = Rng::new(seed);
        model_from_config_rng(&self.to_keras_config(), &mut rng)
    }

    /// A copy with the same architecture and the same weight values (independent storage).
    pub fn deep_clone(&self) -> Result<Model> {
        let m = self.clone_architecture(DEFAULT_SEED)?;
        m.set_all_weights(&self.get_weights()?)?;
        Ok(m)
    }
}
