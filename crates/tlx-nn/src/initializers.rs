//! Keras weight initializers (glorot/he/lecun variance scaling, constants, random normal and
//! uniform, truncated normal), seeded through tlx's portable RNG.

use crate::config::class_and_config;
use serde_json::Value;
use tlx_tensor::{DType, Result as TResult, Rng, Shape, Tensor};

/// A weight initializer.
#[derive(Clone, Debug, PartialEq)]
pub enum Initializer {
    Zeros,
    Ones,
    Constant(f64),
    RandomNormal {
        mean: f64,
        stddev: f64,
    },
    RandomUniform {
        minval: f64,
        maxval: f64,
    },
    TruncatedNormal {
        mean: f64,
        stddev: f64,
    },
    /// Keras's VarianceScaling; glorot/he/lecun are special cases.
    VarianceScaling {
        scale: f64,
        mode: FanMode,
        distribution: Distribution,
    },
}

/// Which fan VarianceScaling divides by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    FanIn,
    FanOut,
    FanAvg,
}

/// VarianceScaling's distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    TruncatedNormal,
    UntruncatedNormal,
    Uniform,
}

impl Initializer {
    /// Keras's default kernel initializer.
    pub fn glorot_uniform() -> Self {
        Initializer::VarianceScaling {
            scale: 1.0,
            mode: FanMode::FanAvg,
            distribution: Distribution::Uniform,
        }
    }

    /// Parses a Keras initializer (`"zeros"`, `{class_name, config}`…).
    pub fn from_keras(v: &Value) -> Result<Initializer, String> {
        let (class, cfg) = class_and_config(v).ok_or_else(|| format!("expected an initializer, got {v}"))?;
        let num = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d);
        let vs = |scale, mode, distribution| Initializer::VarianceScaling { scale, mode, distribution };
        Ok(match class {
            "Zeros" | "zeros" | "zero" => Initializer::Zeros,
            "Ones" | "ones" | "one" => Initializer::Ones,
            "Constant" | "constant" => Initializer::Constant(num("value", 0.0)),
            "RandomNormal" | "random_normal" => {
                Initializer::RandomNormal { mean: num("mean", 0.0), stddev: num("stddev", 0.05) }
            }
            "RandomUniform" | "random_uniform" => {
                Initializer::RandomUniform { minval: num("minval", -0.05), maxval: num("maxval", 0.05) }
            }
            "TruncatedNormal" | "truncated_normal" => {
                Initializer::TruncatedNormal { mean: num("mean", 0.0), stddev: num("stddev", 0.05) }
            }
            "GlorotUniform" | "glorot_uniform" => vs(1.0, FanMode::FanAvg, Distribution::Uniform),
            "GlorotNormal" | "glorot_normal" => vs(1.0, FanMode::FanAvg, Distribution::TruncatedNormal),
            "HeUniform" | "he_uniform" => vs(2.0, FanMode::FanIn, Distribution::Uniform),
            "HeNormal" | "he_normal" => vs(2.0, FanMode::FanIn, Distribution::TruncatedNormal),
            "LecunUniform" | "lecun_uniform" => vs(1.0, FanMode::FanIn, Distribution::Uniform),
            "LecunNormal" | "lecun_normal" => vs(1.0, FanMode::FanIn, Distribution::TruncatedNormal),
            "VarianceScaling" | "variance_scaling" => {
                let mode = match cfg.get("mode").and_then(Value::as_str).unwrap_or("fan_in") {
                    "fan_in" => FanMode::FanIn,
                    "fan_out" => FanMode::FanOut,
                    "fan_avg" => FanMode::FanAvg,
                    m => return Err(format!("unknown VarianceScaling mode '{m}'")),
                };
                let distribution =
                    match cfg.get("distribution").and_then(Value::as_str).unwrap_or("truncated_normal") {
                        "truncated_normal" | "normal" => Distribution::TruncatedNormal,
                        "untruncated_normal" => Distribution::UntruncatedNormal,
                        "uniform" => Distribution::Uniform,
                        d => return Err(format!("unknown VarianceScaling distribution '{d}'")),
                    };
                vs(num("scale", 1.0), mode, distribution)
            }
            other => return Err(format!("unsupported initializer '{other}'")),
        })
    }

    /// Keras's `{class_name, config}` form (what [`Initializer::from_keras`] reads back).
    pub fn to_keras(&self) -> Value {
        use serde_json::json;
        match *self {
            Initializer::Zeros => json!({"class_name": "Zeros", "config": {}}),
            Initializer::Ones => json!({"class_name": "Ones", "config": {}}),
            Initializer::Constant(v) => json!({"class_name": "Constant", "config": {"value": v}}),
            Initializer::RandomNormal { mean, stddev } => {
                json!({"class_name": "RandomNormal", "config": {"mean": mean, "stddev": stddev}})
            }
            Initializer::RandomUniform { minval, maxval } => {
                json!({"class_name": "RandomUniform", "config": {"minval": minval, "maxval": maxval}})
            }
            Initializer::TruncatedNormal { mean, stddev } => {
                json!({"class_name": "TruncatedNormal", "config": {"mean": mean, "stddev": stddev}})
            }
            Initializer::VarianceScaling { scale, mode, distribution } => {
                let mode = match mode {
                    FanMode::FanIn => "fan_in",
                    FanMode::FanOut => "fan_out",
                    FanMode::FanAvg => "fan_avg",
                };
                let distribution = match distribution {
                    Distribution::TruncatedNormal => "truncated_normal",
                    Distribution::UntruncatedNormal => "untruncated_normal",
                    Distribution::Uniform => "uniform",
                };
                json!({"class_name": "VarianceScaling",
                       "config": {"scale": scale, "mode": mode, "distribution": distribution}})
            }
        }
    }

    /// A new f32 tensor of `shape` drawn from this initializer.
    pub fn init(&self, shape: &[usize], rng: &mut Rng) -> TResult<Tensor> {
        let shape = Shape::new(shape.to_vec());
        match *self {
            Initializer::Zeros => Ok(Tensor::zeros(shape, DType::F32)),
            Initializer::Ones => Ok(Tensor::ones(shape, DType::F32)),
            Initializer::Constant(v) => Ok(Tensor::full(shape, v, DType::F32)),
            Initializer::RandomNormal { mean, stddev } => Tensor::randn(shape, mean, stddev, DType::F32, rng),
            Initializer::RandomUniform { minval, maxval } => {
                Tensor::rand_uniform(shape, minval, maxval, DType::F32, rng)
            }
            Initializer::TruncatedNormal { mean, stddev } => truncated(shape, mean, stddev, rng),
            Initializer::VarianceScaling { scale, mode, distribution } => {
                let (fan_in, fan_out) = fans(shape.dims());
                let fan = match mode {
                    FanMode::FanIn => fan_in,
                    FanMode::FanOut => fan_out,
                    FanMode::FanAvg => (fan_in + fan_out) / 2.0,
                };
                let var = scale / fan.max(1.0);
                match distribution {
                    // 0.879… is the std of a unit normal truncated at ±2 (Keras's constant).
                    Distribution::TruncatedNormal => {
                        truncated(shape, 0.0, var.sqrt() / 0.879_625_661_034_239_8, rng)
                    }
                    Distribution::UntruncatedNormal => Tensor::randn(shape, 0.0, var.sqrt(), DType::F32, rng),
                    Distribution::Uniform => {
                        let limit = (3.0 * var).sqrt();
                        Tensor::rand_uniform(shape, -limit, limit, DType::F32, rng)
                    }
                }
            }
        }
    }
}

/// Keras's fans: the last two axes are (in, out); leading axes are the receptive field.
fn fans(dims: &[usize]) -> (f64, f64) {
    match dims.len() {
        0 => (1.0, 1.0),
        1 => (dims[0] as f64, dims[0] as f64),
        n => {
            let receptive: usize = dims[..n - 2].iter().product();
            ((dims[n - 2] * receptive) as f64, (dims[n - 1] * receptive) as f64)
        }
    }
}

/// Normal samples redrawn until within two standard deviations.
fn truncated(shape: Shape, mean: f64, stddev: f64, rng: &mut Rng) -> TResult<Tensor> {
    let v: Vec<f32> = (0..shape.numel())
        .map(|_| loop {
            let z = rng.normal();
            if z.abs() <= 2.0 {
                break (mean + stddev * z) as f32;
            }
        })
        .collect();
    Tensor::from_vec(v, shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn glorot_uniform_respects_its_limit_and_spread() {
        let w = Initializer::glorot_uniform().init(&[3, 3, 16, 32], &mut Rng::new(1)).unwrap();
        let limit = (6.0f64 / (16.0 * 9.0 + 32.0 * 9.0)).sqrt() as f32;
        let v = w.to_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.abs() <= limit));
        let var = v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
        assert!((var / (limit * limit / 3.0) - 1.0).abs() < 0.1, "{var}");
    }

    #[test]
    fn parses_keras_objects() {
        let he = json!({"module": "keras.initializers", "class_name": "HeNormal", "config": {"seed": null}});
        assert!(
            matches!(Initializer::from_keras(&he).unwrap(), Initializer::VarianceScaling { scale, .. } if scale == 2.0)
        );
        assert_eq!(Initializer::from_keras(&json!("zeros")).unwrap(), Initializer::Zeros);
        assert!(Initializer::from_keras(&json!({"class_name": "Orthogonal", "config": {}})).is_err());
        let t =
            Initializer::TruncatedNormal { mean: 0.0, stddev: 1.0 }.init(&[1000], &mut Rng::new(2)).unwrap();
        assert!(t.to_vec::<f32>().unwrap().iter().all(|x| x.abs() <= 2.0));
    }
}
