//! Weight regularizers (L1, L2, L1L2: penalties added to the loss) and constraints (MaxNorm,
//! NonNeg, UnitNorm, MinMaxNorm: projections applied after each optimizer update), with
//! Keras's formulas and defaults.

use crate::config::class_and_config;
use serde_json::{json, Value};
use tlx_tensor::{no_grad, Result, Tensor};

/// `l1·Σ|w| + l2·Σw²` (no ½, as Keras).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularizer {
    pub l1: f64,
    pub l2: f64,
}

impl Regularizer {
    /// Parses `"l1"`, `"l2"` (0.01 each) or `{class_name: L1|L2|L1L2, config}`.
    pub fn from_keras(v: &Value) -> std::result::Result<Regularizer, String> {
        let (class, cfg) = class_and_config(v).ok_or_else(|| format!("expected a regularizer, got {v}"))?;
        let num = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d);
        Ok(match class {
            "L1" | "l1" => Regularizer { l1: num("l1", 0.01), l2: 0.0 },
            "L2" | "l2" => Regularizer { l1: 0.0, l2: num("l2", 0.01) },
            // Keras 3's class (and its `l1_l2` alias) defaults to 0/0.
            "L1L2" => Regularizer { l1: num("l1", 0.0), l2: num("l2", 0.0) },
            other => return Err(format!("unsupported regularizer '{other}'")),
        })
    }

    /// The penalty of `w` (differentiable).
    pub fn penalty(&self, w: &Tensor) -> Result<Tensor> {
        let mut total = Tensor::zeros(tlx_tensor::Shape::scalar(), w.dtype());
        if self.l1 != 0.0 {
            total = total.add(&w.abs()?.sum_all()?.mul_scalar(self.l1)?)?;
        }
        if self.l2 != 0.0 {
            total = total.add(&w.square()?.sum_all()?.mul_scalar(self.l2)?)?;
        }
        Ok(total)
    }

    /// Keras config.
    pub fn to_keras(&self) -> Value {
        json!({"class_name": "L1L2", "config": {"l1": self.l1, "l2": self.l2}})
    }
}

/// A projection applied to a weight after each update.
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    MaxNorm { max_value: f64, axis: Vec<isize> },
    NonNeg,
    UnitNorm { axis: Vec<isize> },
    MinMaxNorm { min_value: f64, max_value: f64, rate: f64, axis: Vec<isize> },
}

const EPS: f64 = 1e-7;

fn axes(cfg: &Value) -> Vec<isize> {
    match cfg.get("axis") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_i64).map(|v| v as isize).collect(),
        Some(v) => v.as_i64().map(|a| vec![a as isize]).unwrap_or_else(|| vec![0]),
        None => vec![0],
    }
}

impl Constraint {
    /// Parses `{class_name: MaxNorm|NonNeg|UnitNorm|MinMaxNorm, config}`.
    pub fn from_keras(v: &Value) -> std::result::Result<Constraint, String> {
        let (class, cfg) = class_and_config(v).ok_or_else(|| format!("expected a constraint, got {v}"))?;
        let num = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d);
        Ok(match class {
            "MaxNorm" | "max_norm" => {
                Constraint::MaxNorm { max_value: num("max_value", 2.0), axis: axes(&cfg) }
            }
            "NonNeg" | "non_neg" => Constraint::NonNeg,
            "UnitNorm" | "unit_norm" => Constraint::UnitNorm { axis: axes(&cfg) },
            "MinMaxNorm" | "min_max_norm" => Constraint::MinMaxNorm {
                min_value: num("min_value", 0.0),
                max_value: num("max_value", 1.0),
                rate: num("rate", 1.0),
                axis: axes(&cfg),
            },
            other => return Err(format!("unsupported constraint '{other}'")),
        })
    }

    /// Keras's `{class_name, config}` form.
    pub fn to_keras(&self) -> Value {
        match self {
            Constraint::MaxNorm { max_value, axis } => {
                json!({"class_name": "MaxNorm", "config": {"max_value": max_value, "axis": axis}})
            }
            Constraint::NonNeg => json!({"class_name": "NonNeg", "config": {}}),
            Constraint::UnitNorm { axis } => json!({"class_name": "UnitNorm", "config": {"axis": axis}}),
            Constraint::MinMaxNorm { min_value, max_value, rate, axis } => json!({"class_name": "MinMaxNorm",
                "config": {"min_value": min_value, "max_value": max_value, "rate": rate, "axis": axis}}),
        }
    }

    /// The projected weight (no gradient).
    pub fn project(&self, w: &Tensor) -> Result<Tensor> {
        let _g = no_grad();
        let norms = |axis: &[isize]| -> Result<Tensor> {
            tlx_core::resolve_axes(axis, w.rank(), "constraint")?;
            w.square()?.sum(axis, true)?.sqrt()
        };
        match self {
            Constraint::NonNeg => w.relu(),
            Constraint::MaxNorm { max_value, axis } => {
                let n = norms(axis)?;
                w.mul(&n.clamp(0.0, *max_value)?)?.div(&n.add_scalar(EPS)?)
            }
            Constraint::UnitNorm { axis } => w.div(&norms(axis)?.add_scalar(EPS)?),
            Constraint::MinMaxNorm { min_value, max_value, rate, axis } => {
                let n = norms(axis)?;
                let desired =
                    n.clamp(*min_value, *max_value)?.mul_scalar(*rate)?.add(&n.mul_scalar(1.0 - rate)?)?;
                w.mul(&desired)?.div(&n.add_scalar(EPS)?)
            }
        }
    }

    /// Projects `w` in place.
    pub fn apply(&self, w: &Tensor) -> Result<()> {
        let projected = self.project(w)?;
        w.assign(&projected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn penalties_and_projections() {
        let w = Tensor::from_vec(vec![3.0f32, -4.0, 0.0, 0.0], [2, 2]).unwrap();
        let r = Regularizer::from_keras(&json!({"class_name": "L2", "config": {"l2": 0.5}})).unwrap();
        assert_eq!(r.penalty(&w).unwrap().item().unwrap(), 12.5);
        let l1 = Regularizer::from_keras(&json!("l1")).unwrap();
        assert!((l1.penalty(&w).unwrap().item().unwrap() - 0.07).abs() < 1e-7);
        // Column norms over axis 0: [3, 4] -> clipped to 2.
        let c = Constraint::from_keras(
            &json!({"class_name": "MaxNorm", "config": {"max_value": 2.0, "axis": 0}}),
        )
        .unwrap();
        let p = c.project(&w).unwrap().to_vec::<f32>().unwrap();
        assert!((p[0] - 2.0).abs() < 1e-5 && (p[1] + 2.0).abs() < 1e-5);
        assert_eq!(
            Constraint::NonNeg.project(&w).unwrap().to_vec::<f32>().unwrap(),
            vec![3.0, 0.0, 0.0, 0.0]
        );
        assert!(Constraint::from_keras(&json!({"class_name": "Bogus"})).is_err());
    }
}
