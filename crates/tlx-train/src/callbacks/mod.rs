//! Keras callbacks as state machines: the caller (a training loop, a test, a conformance
//! runner) reports each epoch's end with its [`Logs`] and acts on what the callback answers.
//!
//! - [`EarlyStopping`]: stop when the monitored value stops improving; tells the caller when
//!   to remember the current weights as the best and whether to restore them at the end.
//! - [`ReduceLROnPlateau`]: lower the learning rate when the monitored value stops improving.
//! - [`monitor`]: the improvement test both share (Keras's `MonitorCallback`).
//!
//! Both are built from Keras's constructor arguments as a JSON object
//! (`{"monitor": "val_loss", "patience": 3}`), with Keras's defaults for absent fields; an
//! unknown field is an error naming it (`verbose` is accepted and ignored).

mod early_stopping;
pub mod monitor;
mod reduce_lr;

pub use early_stopping::{EarlyStopping, EarlyStoppingConfig, EarlyStoppingStep};
pub use monitor::{Direction, Mode, Monitor};
pub use reduce_lr::{ReduceLROnPlateau, ReduceLROnPlateauConfig};

use crate::{Error, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Epoch-end metrics by name, as Keras's `logs` dict: `loss`, `val_loss`, `accuracy`, …
pub type Logs = BTreeMap<String, f64>;

/// Reads a callback's Keras arguments from a JSON object, checking names and types.
pub(crate) struct KerasArgs<'a> {
    callback: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> KerasArgs<'a> {
    /// The arguments in `config`, which must be an object whose keys are all in `known`.
    pub(crate) fn new(callback: &'static str, config: &'a Value, known: &[&str]) -> Result<Self> {
        let map = config.as_object().ok_or_else(|| {
            let mut found = config.to_string();
            if found.len() > 60 {
                found = format!("{}…", found.chars().take(60).collect::<String>());
            }
            Error::Malformed { callback, found }
        })?;
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::Config {
                callback,
                field: unknown.clone(),
                msg: format!("unknown argument (known: {})", known.join(", ")),
            });
        }
        Ok(KerasArgs { callback, map })
    }

    fn bad(&self, field: &str, msg: impl Into<String>) -> Error {
        Error::Config { callback: self.callback, field: field.to_string(), msg: msg.into() }
    }

    /// The value of `field`, `None` when absent or null.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// A string argument.
    pub(crate) fn string(&self, field: &str, default: &str) -> Result<String> {
        match self.get(field) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(String::from)
                .ok_or_else(|| self.bad(field, format!("expected a string, got {v}"))),
        }
    }

    /// A finite number, `None` when absent or null.
    pub(crate) fn optional_number(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.bad(field, format!("expected a finite number, got {v}"))),
            },
        }
    }

    /// A finite number with a default.
    pub(crate) fn number(&self, field: &str, default: f64) -> Result<f64> {
        Ok(self.optional_number(field)?.unwrap_or(default))
    }

    /// A count of epochs: a non-negative integer (`3` or `3.0`).
    pub(crate) fn count(&self, field: &str, default: u64) -> Result<u64> {
        match self.get(field) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|x| *x >= 0.0 && x.fract() == 0.0 && *x < 2f64.powi(53))
                        .map(|x| x as u64)
                })
                .ok_or_else(|| self.bad(field, format!("expected a non-negative whole number, got {v}"))),
        }
    }

    /// A flag: `true`/`false` (or 0/1, as Python accepts).
    pub(crate) fn flag(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => match v.as_u64() {
                Some(0) => Ok(false),
                Some(1) => Ok(true),
                _ => Err(self.bad(field, format!("expected true or false, got {v}"))),
            },
        }
    }

    /// An argument that is accepted and ignored (`verbose`): any number or boolean.
    pub(crate) fn ignored(&self, field: &str) -> Result<()> {
        match self.get(field) {
            None | Some(Value::Bool(_)) | Some(Value::Number(_)) => Ok(()),
            Some(v) => Err(self.bad(field, format!("expected a number, got {v}"))),
        }
    }
}
