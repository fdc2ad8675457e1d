//! Every layer without weights, as one `Stateless` layer holding a `StatelessOp`: input,
//! activations (Activation, ReLU, LeakyReLU, Softmax), Flatten, Reshape, ZeroPadding2D,
//! Cropping2D, pooling (max, average, global), Dropout/SpatialDropout2D, Rescaling, and the
//! merges (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate).

use crate::activation::Activation;
use crate::config::ConfigReader;
use crate::error::{Error, Result};
use crate::layer::{Context, Layer, LayerBase, Logits, ShapeSpec};
use crate::model::fuse::Fusion;
use serde_json::{json, Value};
use tlx_tensor::{Padding, Rng, Tensor, UnaryOp};

/// An elementwise merge of several inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

/// What a weightless layer computes.
#[derive(Clone, Debug, PartialEq)]
pub enum StatelessOp {
    Input,
    Activation(Activation),
    Flatten,
    /// Target shape without the batch axis (`-1` inferred).
    Reshape(Vec<isize>),
    ZeroPadding {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
    Cropping {
        top: usize,
        bottom: usize,
        left: usize,
        right: usize,
    },
    MaxPool {
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    },
    AvgPool {
        pool: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    },
    GlobalAvgPool {
        keepdims: bool,
    },
    GlobalMaxPool {
        keepdims: bool,
    },
    /// Inverted dropout; `spatial` drops whole channels (SpatialDropout2D).
    Dropout {
        rate: f64,
        spatial: bool,
    },
    Rescaling {
        scale: f64,
        offset: f64,
    },
    Merge(Merge),
    Concatenate {
        axis: isize,
    },
}

/// A layer without weights.
pub struct Stateless {
    base: LayerBase,
    class: &'static str,
    pub op: StatelessOp,
    /// The Keras config it was read from (echoed by `config`).
    source: Value,
}

/// Reads Keras's 2-D padding/cropping forms: `n`, `[a, b]` (symmetric), `[[t, b], [l, r]]`.
fn four_sides(r: &ConfigReader, field: &str, default: usize) -> Result<(usize, usize, usize, usize)> {
    let Some(v) = r.get(field) else { return Ok((default, default, default, default)) };
    let bad = || r.err(field, format!("expected n, [h, w] or [[top, bottom], [left, right]], got {v}"));
    let n = |v: &Value| v.as_u64().map(|n| n as usize).ok_or_else(bad);
    match v {
        Value::Array(a) if a.len() == 2 => match (&a[0], &a[1]) {
            (Value::Array(h), Value::Array(w)) if h.len() == 2 && w.len() == 2 => {
                Ok((n(&h[0])?, n(&h[1])?, n(&w[0])?, n(&w[1])?))
            }
            (h, w) => {
                let (h, w) = (n(h)?, n(w)?);
                Ok((h, h, w, w))
            }
        },
        other => {
            let p = n(other)?;
            Ok((p, p, p, p))
        }
    }
}

/// (pool size, strides, padding) of a pooling layer.
type PoolArgs = ((usize, usize), (usize, usize), Padding);

fn pool_args(r: &ConfigReader) -> Result<PoolArgs> {
    r.channels_last()?;
    let pool = r.pair_or("pool_size", Some((2, 2)))?;
    let strides = r.pair_or("strides", Some(pool))?;
    let p = r.str_or("padding", "valid")?;
    let padding =
        Padding::from_keras(p).ok_or_else(|| r.err("padding", format!("'{p}' is not 'same' or 'valid'")))?;
    Ok((pool, strides, padding))
}

impl Stateless {
    /// A weightless layer from its parts (for models built in code).
    pub fn new(name: &str, class: &'static str, op: StatelessOp) -> Self {
        let mut base = LayerBase::new(name);
        base.built = true;
        Stateless { base, class, op, source: json!({"name": name}) }
    }

    /// From a Keras config, for the classes this type covers (`None` for other classes).
    pub fn from_config(class: &str, r: &ConfigReader, source: &Value) -> Result<Option<Self>> {
        use StatelessOp as S;
        let (class, op): (&'static str, StatelessOp) = match class {
            "InputLayer" => {
                r.get("batch_shape");
                r.get("batch_input_shape");
                ("InputLayer", S::Input)
            }
            "Activation" => {
                let a = Activation::from_keras(Some(r.require("activation")?))
                    .map_err(|e| r.err("activation", e))?;
                ("Activation", S::Activation(a))
            }
            "ReLU" => {
                let max_value = r.f64_opt("max_value")?;
                let negative_slope = r.f64_or("negative_slope", 0.0)?;
                let threshold = r.f64_or("threshold", 0.0)?;
                let op = if max_value.is_none() && negative_slope == 0.0 && threshold == 0.0 {
                    UnaryOp::Relu
                } else if max_value == Some(6.0) && negative_slope == 0.0 && threshold == 0.0 {
                    UnaryOp::Relu6
                } else {
                    UnaryOp::ReluExt { negative_slope, max_value, threshold }
                };
                ("ReLU", S::Activation(Activation::Unary(op)))
            }
            "LeakyReLU" => {
                // Keras 3 writes negative_slope, Keras 2 alpha; both default to 0.3.
                let alpha = match r.f64_opt("negative_slope")? {
                    Some(a) => a,
                    None => r.f64_or("alpha", 0.3)?,
                };
                ("LeakyReLU", S::Activation(Activation::Unary(UnaryOp::LeakyRelu { alpha })))
            }
            "Softmax" => {
                let axis = r.i64_or("axis", -1)? as isize;
                ("Softmax", S::Activation(Activation::Softmax { axis }))
            }
            "Flatten" => {
                r.channels_last()?;
                ("Flatten", S::Flatten)
            }
            "Reshape" => {
                let t = r.require("target_shape")?;
                let dims = t
                    .as_array()
                    .and_then(|a| {
                        a.iter().map(|d| d.as_i64().map(|d| d as isize)).collect::<Option<Vec<_>>>()
                    })
                    .ok_or_else(|| r.err("target_shape", format!("expected a list of integers, got {t}")))?;
                ("Reshape", S::Reshape(dims))
            }
            "ZeroPadding2D" => {
                r.channels_last()?;
                let (top, bottom, left, right) = four_sides(r, "padding", 1)?;
                ("ZeroPadding2D", S::ZeroPadding { top, bottom, left, right })
            }
            "Cropping2D" => {
                r.channels_last()?;
                let (top, bottom, left, right) = four_sides(r, "cropping", 0)?;
                ("Cropping2D", S::Cropping { top, bottom, left, right })
            }
            "MaxPooling2D" | "MaxPool2D" => {
                let (pool, strides, padding) = pool_args(r)?;
                ("MaxPooling2D", S::MaxPool { pool, strides, padding })
            }
            "AveragePooling2D" | "AvgPool2D" => {
                let (pool, strides, padding) = pool_args(r)?;
                ("AveragePooling2D", S::AvgPool { pool, strides, padding })
            }
            "GlobalAveragePooling2D" | "GlobalAvgPool2D" => {
                r.channels_last()?;
                ("GlobalAveragePooling2D", S::GlobalAvgPool { keepdims: r.bool_or("keepdims", false)? })
            }
            "GlobalMaxPooling2D" | "GlobalMaxPool2D" => {
                r.channels_last()?;
                ("GlobalMaxPooling2D", S::GlobalMaxPool { keepdims: r.bool_or("keepdims", false)? })
            }
            "Dropout" | "SpatialDropout2D" => {
                let rate = r.f64_or("rate", 0.5)?;
                if !(0.0..1.0).contains(&rate) {
                    return Err(r.err("rate", format!("must be in [0, 1), got {rate}")));
                }
                r.get("seed");
                r.channels_last()?;
                let spatial = class == "SpatialDropout2D";
                (if spatial { "SpatialDropout2D" } else { "Dropout" }, S::Dropout { rate, spatial })
            }
            "Rescaling" => {
                let scale = r.f64_or("scale", 1.0)?;
                let offset = r.f64_or("offset", 0.0)?;
                ("Rescaling", S::Rescaling { scale, offset })
            }
            "Add" => ("Add", S::Merge(Merge::Add)),
            "Subtract" => ("Subtract", S::Merge(Merge::Subtract)),
            "Multiply" => ("Multiply", S::Merge(Merge::Multiply)),
            "Average" => ("Average", S::Merge(Merge::Average)),
            "Maximum" => ("Maximum", S::Merge(Merge::Maximum)),
            "Minimum" => ("Minimum", S::Merge(Merge::Minimum)),
            "Concatenate" => ("Concatenate", S::Concatenate { axis: r.i64_or("axis", -1)? as isize }),
            _ => return Ok(None),
        };
        let mut layer = Stateless::new(&r.name(), class, op);
        layer.source = source.clone();
        Ok(Some(layer))
    }

    /// The Keras config fields that describe this layer's computation.
    fn op_config(&self) -> Value {
        use StatelessOp as S;
        let pair = |p: (usize, usize)| json!([p.0, p.1]);
        let pad = |p: &Padding| if *p == Padding::Same { "same" } else { "valid" };
        match &self.op {
            S::Input | S::Flatten | S::Merge(_) => json!({}),
            S::Activation(a) => match (self.class, a) {
                ("ReLU", Activation::Unary(UnaryOp::Relu)) => {
                    json!({"max_value": null, "negative_slope": 0.0, "threshold": 0.0})
                }
                ("ReLU", Activation::Unary(UnaryOp::Relu6)) => {
                    json!({"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0})
                }
                ("ReLU", Activation::Unary(UnaryOp::ReluExt { negative_slope, max_value, threshold })) => {
                    json!({"max_value": max_value, "negative_slope": negative_slope, "threshold": threshold})
                }
                ("LeakyReLU", Activation::Unary(UnaryOp::LeakyRelu { alpha })) => {
                    json!({"negative_slope": alpha})
                }
                ("Softmax", Activation::Softmax { axis }) => json!({"axis": axis}),
                (_, a) => json!({"activation": a.keras_name()}),
            },
            S::Reshape(t) => json!({"target_shape": t}),
            S::ZeroPadding { top, bottom, left, right } => json!({"padding": [[top, bottom], [left, right]]}),
            S::Cropping { top, bottom, left, right } => json!({"cropping": [[top, bottom], [left, right]]}),
            S::MaxPool { pool, strides, padding } | S::AvgPool { pool, strides, padding } => {
                json!({"pool_size": pair(*pool), "strides": pair(*strides), "padding": pad(padding)})
            }
            S::GlobalAvgPool { keepdims } | S::GlobalMaxPool { keepdims } => json!({"keepdims": keepdims}),
            S::Dropout { rate, .. } => json!({"rate": rate}),
            S::Rescaling { scale, offset } => json!({"scale": scale, "offset": offset}),
            S::Concatenate { axis } => json!({"axis": axis}),
        }
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        Error::Msg(format!("layer '{}' ({}): {msg}", self.base.name, self.class))
    }

    fn one(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        match input_shapes {
            [s] => Ok(s.clone()),
            _ => Err(self.err(format!("takes 1 input, got {}", input_shapes.len()))),
        }
    }

    fn rank4(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        let s = self.one(input_shapes)?;
        if s.len() != 4 {
            return Err(self.err(format!("needs rank-4 NHWC input, got {s:?}")));
        }
        Ok(s)
    }
}

fn pool_dim(n: Option<usize>, k: usize, s: usize, p: Padding) -> Option<usize> {
    let n = n?;
    match p {
        Padding::Same => Some(n.div_ceil(s)),
        _ => (n >= k).then(|| (n - k) / s + 1),
    }
}

impl Layer for Stateless {
    fn fusion(&self) -> Option<Fusion<'_>> {
        match &self.op {
            StatelessOp::Activation(Activation::Unary(op)) => {
                crate::model::fuse::epilogue_act(op).map(Fusion::Act)
            }
            StatelessOp::Merge(Merge::Add) => Some(Fusion::Add),
            &StatelessOp::ZeroPadding { top, bottom, left, right } => {
                Some(Fusion::Pad(top, bottom, left, right))
            }
            &StatelessOp::MaxPool { pool, strides, padding } => {
                Some(Fusion::MaxPool { pool, strides, padding })
            }
            _ => None,
        }
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }
    fn base_mut(&mut self) -> &mut LayerBase {
        &mut self.base
    }
    fn class_name(&self) -> &'static str {
        self.class
    }

    fn build(&mut self, input_shapes: &[ShapeSpec], _rng: &mut Rng) -> Result<()> {
        self.output_shape(input_shapes).map(|_| ())
    }

    fn output_shape(&self, input_shapes: &[ShapeSpec]) -> Result<ShapeSpec> {
        use StatelessOp as S;
        Ok(match &self.op {
            S::Input | S::Activation(_) | S::Dropout { .. } | S::Rescaling { .. } => {
                self.one(input_shapes)?
            }
            S::Flatten => {
                let s = self.one(input_shapes)?;
                let rest = s.iter().skip(1).try_fold(1usize, |acc, d| d.map(|d| acc * d));
                vec![s.first().copied().flatten(), rest]
            }
            S::Reshape(target) => {
                let s = self.one(input_shapes)?;
                let total = s.iter().skip(1).try_fold(1usize, |acc, d| d.map(|d| acc * d));
                let known: usize = target.iter().filter(|&&d| d >= 0).map(|&d| d as usize).product();
                let mut out = vec![s.first().copied().flatten()];
                for &d in target {
                    out.push(if d >= 0 { Some(d as usize) } else { total.map(|t| t / known.max(1)) });
                }
                if let (Some(t), false) = (total, target.contains(&-1)) {
                    if t != known {
                        return Err(self.err(format!("cannot reshape {s:?} to {target:?}")));
                    }
                }
                out
            }
            S::ZeroPadding { top, bottom, left, right } => {
                let s = self.rank4(input_shapes)?;
                vec![s[0], s[1].map(|h| h + top + bottom), s[2].map(|w| w + left + right), s[3]]
            }
            S::Cropping { top, bottom, left, right } => {
                let s = self.rank4(input_shapes)?;
                let crop = |d: Option<usize>, a: usize, b: usize| -> Result<Option<usize>> {
                    d.map(|d| {
                        d.checked_sub(a + b)
                            .filter(|&v| v > 0)
                            .ok_or_else(|| self.err(format!("cropping {a}+{b} removes all of {d}")))
                    })
                    .transpose()
                };
                vec![s[0], crop(s[1], *top, *bottom)?, crop(s[2], *left, *right)?, s[3]]
            }
            S::MaxPool { pool, strides, padding } | S::AvgPool { pool, strides, padding } => {
                let s = self.rank4(input_shapes)?;
                let h = pool_dim(s[1], pool.0, strides.0, *padding);
                let w = pool_dim(s[2], pool.1, strides.1, *padding);
                if (s[1].is_some() && h.is_none()) || (s[2].is_some() && w.is_none()) {
                    return Err(self.err(format!(
                        "pool window {pool:?} is larger than the input {s:?} with padding 'valid'"
                    )));
                }
                vec![s[0], h, w, s[3]]
            }
            S::GlobalAvgPool { keepdims } | S::GlobalMaxPool { keepdims } => {
                let s = self.rank4(input_shapes)?;
                if *keepdims {
                    vec![s[0], Some(1), Some(1), s[3]]
                } else {
                    vec![s[0], s[3]]
                }
            }
            S::Merge(_) => {
                let first = input_shapes.first().ok_or_else(|| self.err("needs at least one input"))?;
                if input_shapes.len() < 2 || input_shapes.iter().any(|s| s.len() != first.len()) {
                    return Err(self.err(format!("needs ≥ 2 inputs of equal rank, got {input_shapes:?}")));
                }
                first.clone()
            }
            S::Concatenate { axis } => {
                let first = input_shapes.first().ok_or_else(|| self.err("needs at least one input"))?;
                let a = tlx_core::resolve_axis(*axis, first.len(), "concatenate").map_err(|e| self.err(e))?;
                let mut out = first.clone();
                out[a] = input_shapes
                    .iter()
                    .try_fold(0usize, |acc, s| s.get(a).copied().flatten().map(|d| acc + d));
                out
            }
        })
    }

    fn call(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<Tensor> {
        use StatelessOp as S;
        let wrap = self.base.wrap(self.class);
        let x = || -> Result<&Tensor> {
            match inputs {
                [x] => Ok(x),
                _ => Err(self.err(format!("takes 1 input, got {}", inputs.len()))),
            }
        };
        let out = match &self.op {
            S::Input => Ok(x()?.clone()),
            S::Activation(a) => a.apply(x()?),
            S::Flatten => x()?.flatten_from(1),
            S::Reshape(target) => {
                let x = x()?;
                let mut dims = vec![x.dims().first().copied().unwrap_or(1) as isize];
                dims.extend(target);
                x.reshape_infer(&dims)
            }
            S::ZeroPadding { top, bottom, left, right } => {
                x()?.pad(&[(0, 0), (*top, *bottom), (*left, *right), (0, 0)], 0.0)
            }
            S::Cropping { top, bottom, left, right } => {
                let x = x()?;
                let (h, w) = (x.dims().get(1).copied().unwrap_or(0), x.dims().get(2).copied().unwrap_or(0));
                if x.rank() != 4 || top + bottom >= h || left + right >= w {
                    return Err(self.err(format!("cannot crop {x:?} by ({top}, {bottom}, {left}, {right})")));
                }
                x.narrow(1, *top, h - top - bottom).and_then(|t| t.narrow(2, *left, w - left - right))
            }
            S::MaxPool { pool, strides, padding } => x()?.max_pool2d(*pool, *strides, *padding),
            S::AvgPool { pool, strides, padding } => x()?.avg_pool2d(*pool, *strides, *padding),
            S::GlobalAvgPool { keepdims } => x()?.global_avg_pool2d(*keepdims),
            S::GlobalMaxPool { keepdims } => x()?.global_max_pool2d(*keepdims),
            S::Dropout { rate, spatial } => {
                let x = x()?;
                if !(ctx.training || ctx.mc_dropout) || *rate == 0.0 {
                    Ok(x.clone())
                } else if *spatial {
                    if x.rank() != 4 {
                        return Err(self.err(format!("needs rank-4 NHWC input, got {}", x.shape())));
                    }
                    let (n, c) = (x.dims()[0], x.dims()[3]);
                    let mask =
                        Tensor::ones([n, 1, 1, c], x.dtype()).dropout(*rate, &mut ctx.rng).map_err(&wrap)?;
                    x.mul(&mask)
                } else {
                    x.dropout(*rate, &mut ctx.rng)
                }
            }
            S::Rescaling { scale, offset } => x()?.affine(*scale, *offset),
            S::Merge(m) => {
                if inputs.len() < 2 {
                    return Err(self.err(format!("needs ≥ 2 inputs, got {}", inputs.len())));
                }
                let mut acc = inputs[0].clone();
                for (i, t) in inputs[1..].iter().enumerate() {
                    acc = match m {
                        Merge::Add | Merge::Average => acc.add(t),
                        Merge::Subtract if i == 0 && inputs.len() == 2 => acc.sub(t),
                        Merge::Subtract => return Err(self.err("Subtract takes exactly 2 inputs")),
                        Merge::Multiply => acc.mul(t),
                        Merge::Maximum => acc.maximum(t),
                        Merge::Minimum => acc.minimum(t),
                    }
                    .map_err(&wrap)?;
                }
                if *m == Merge::Average {
                    acc.mul_scalar(1.0 / inputs.len() as f64)
                } else {
                    Ok(acc)
                }
            }
            S::Concatenate { axis } => Tensor::concat(inputs, *axis),
        };
        out.map_err(wrap)
    }

    fn call_with_logits(&self, inputs: &[Tensor], ctx: &mut Context) -> Result<(Tensor, Option<Logits>)> {
        match (&self.op, inputs) {
            (StatelessOp::Activation(a), [x]) => {
                let y = a.apply(x).map_err(self.base.wrap(self.class))?;
                Ok((y, Logits::of(a, x)))
            }
            _ => Ok((self.call(inputs, ctx)?, None)),
        }
    }

    fn config(&self) -> Value {
        let mut c = self.op_config();
        if let Some(o) = c.as_object_mut() {
            o.insert("name".into(), json!(self.base.name));
            o.insert("trainable".into(), json!(self.base.trainable));
            if let Some(src) = self.source.as_object() {
                // Fields of the original Keras config that the op does not describe (e.g.
                // an InputLayer's batch_shape) are kept.
                for (k, v) in src {
                    o.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        c
    }
}
