//! Pieces shared by the weighted layers: initializer/regularizer/constraint fields parsed from
//! a Keras config, weight creation, and activity regularization.

use crate::config::ConfigReader;
use crate::error::Result;
use crate::initializers::Initializer;
use crate::layer::{Context, LayerBase, Weight};
use crate::regularizers::{Constraint, Regularizer};
use serde_json::Value;
use tlx_tensor::{Rng, Tensor};

/// How one weight is created and treated (`kernel_*` or `bias_*` fields of a config).
#[derive(Clone, Debug)]
pub struct WeightSpec {
    pub initializer: Initializer,
    pub regularizer: Option<Regularizer>,
    pub constraint: Option<Constraint>,
}

impl WeightSpec {
    /// A spec with just an initializer.
    pub fn init(initializer: Initializer) -> Self {
        WeightSpec { initializer, regularizer: None, constraint: None }
    }

    /// Reads `<prefix>_initializer`, `<prefix>_regularizer`, `<prefix>_constraint`.
    pub fn read(r: &ConfigReader, prefix: &str, default: Initializer) -> Result<Self> {
        let field = |s: &str| format!("{prefix}_{s}");
        let initializer = match r.get(&field("initializer")) {
            None => default,
            Some(v) => Initializer::from_keras(v).map_err(|e| r.err(&field("initializer"), e))?,
        };
        let regularizer = r
            .get(&field("regularizer"))
            .map(Regularizer::from_keras)
            .transpose()
            .map_err(|e| r.err(&field("regularizer"), e))?;
        let constraint = r
            .get(&field("constraint"))
            .map(Constraint::from_keras)
            .transpose()
            .map_err(|e| r.err(&field("constraint"), e))?;
        Ok(WeightSpec { initializer, regularizer, constraint })
    }

    /// Writes `<prefix>_initializer`, `<prefix>_regularizer`, `<prefix>_constraint` into a
    /// Keras config object.
    pub fn write(&self, prefix: &str, config: &mut Value) {
        if let Some(o) = config.as_object_mut() {
            o.insert(format!("{prefix}_initializer"), self.initializer.to_keras());
            o.insert(format!("{prefix}_regularizer"), self.regularizer.map_or(Value::Null, |r| r.to_keras()));
            o.insert(
                format!("{prefix}_constraint"),
                self.constraint.as_ref().map_or(Value::Null, |c| c.to_keras()),
            );
        }
    }

    /// Creates the weight `name` of `shape` in `base`.
    pub fn create(
        &self,
        base: &mut LayerBase,
        name: &str,
        shape: &[usize],
        trainable: bool,
        rng: &mut Rng,
    ) -> Result<()> {
        let tensor = self.initializer.init(shape, rng)?;
        base.add_weight(Weight {
            name: name.into(),
            tensor,
            trainable,
            regularizer: self.regularizer,
            constraint: self.constraint.clone(),
        })
    }
}

/// Reads `activity_regularizer`.
pub fn activity_regularizer(r: &ConfigReader) -> Result<Option<Regularizer>> {
    r.get("activity_regularizer")
        .map(Regularizer::from_keras)
        .transpose()
        .map_err(|e| r.err("activity_regularizer", e))
}

/// Adds the activity penalty of `out` (divided by the batch size, as Keras 3) to the context.
pub fn apply_activity(reg: &Option<Regularizer>, out: &Tensor, ctx: &mut Context) -> tlx_tensor::Result<()> {
    if let Some(r) = reg {
        let batch = out.dims().first().copied().unwrap_or(1).max(1);
        ctx.losses.push(r.penalty(out)?.mul_scalar(1.0 / batch as f64)?);
    }
    Ok(())
}

/// A `[a, b]` JSON pair.
pub fn pair_json(p: (usize, usize)) -> Value {
    serde_json::json!([p.0, p.1])
}
