//! The monitor logic shared by [`EarlyStopping`](super::EarlyStopping) and
//! [`ReduceLROnPlateau`](super::ReduceLROnPlateau): Keras 3's `MonitorCallback`
//! (`callbacks/monitor_callback.py`).
//!
//! - A [`Mode`] of `min` or `max` fixes the [`Direction`]. `auto` infers it from the name
//!   (after a `val_` prefix): a name ending in `loss` and Keras's error-like metrics
//!   (`mean_squared_error`, `mae`, `*crossentropy`, `hinge`, …) are minimised; accuracy-like
//!   metrics (`accuracy`, `acc`, `auc`, `precision`, `recall`, `f1_score`, `iou`, `r2_score`, …)
//!   are maximised; any other name is an error asking for an explicit mode (Keras asks the
//!   compiled metric objects, and raises the same error when they do not tell).
//! - `min_delta` is absolute (its sign is ignored). `current` improves on `reference` when
//!   `current + min_delta < reference` (min) or `current − min_delta > reference` (max); with no
//!   reference yet (the first value seen), any value is an improvement.
//! - Like Keras (whose `ops.less` turns Python floats into float32 tensors), the shifted value
//!   is computed in f64 and the comparison is made between the two values rounded to f32.
//!
//! Unlike Keras, which warns and falls back to `auto`, an unknown mode name is an error.

use crate::{Error, Result};

/// The `mode` argument: which way the monitored value should go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Infer the direction from the monitored name.
    #[default]
    Auto,
    /// Lower is better.
    Min,
    /// Higher is better.
    Max,
}

impl Mode {
    /// `auto`, `min` or `max`; `callback` names the callback in the error.
    pub fn from_name(callback: &'static str, name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Mode::Auto),
            "min" => Ok(Mode::Min),
            "max" => Ok(Mode::Max),
            other => Err(Error::Config {
                callback,
                field: "mode".into(),
                msg: format!("unknown mode `{other}` (expected `auto`, `min` or `max`)"),
            }),
        }
    }
}

/// The resolved direction of improvement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Lower is better (losses, errors).
    Minimize,
    /// Higher is better (accuracies, AUC).
    Maximize,
}

/// Keras metric names (and their compile-string aliases) whose `_direction` is "down".
const MINIMIZED_METRICS: &[&str] = &[
    "mean_squared_error",
    "mse",
    "mean_absolute_error",
    "mae",
    "mean_absolute_percentage_error",
    "mape",
    "mean_squared_logarithmic_error",
    "msle",
    "root_mean_squared_error",
    "logcosh",
    "log_cosh",
    "hinge",
    "squared_hinge",
    "categorical_hinge",
    "binary_crossentropy",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_focal_crossentropy",
    "categorical_focal_crossentropy",
    "kl_divergence",
    "kld",
    "poisson",
    "huber",
];

/// Fragments of the names of Keras metrics whose `_direction` is "up".
const MAXIMIZED_FRAGMENTS: &[&str] = &[
    "acc",
    "auc",
    "precision",
    "recall",
    "f1_score",
    "fbeta_score",
    "iou",
    "r2_score",
    "cosine_similarity",
    "correlation",
    "sensitivity",
    "specificity",
];

/// The direction `mode="auto"` gives the monitored `name`, or `None` when the name does not
/// tell.
pub fn infer_direction(name: &str) -> Option<Direction> {
    let name = name.strip_prefix("val_").unwrap_or(name);
    // Keras numbers further instances of a metric: `auc_1`, `precision_2`.
    let base = match name.rsplit_once('_') {
        Some((head, tail)) if !head.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    };
    // Multi-output models prefix the output's name: `out_loss`, `out_mse`, `out_accuracy`.
    let is_named = |metric: &str| base == metric || base.ends_with(&format!("_{metric}"));
    if base.ends_with("loss") || MINIMIZED_METRICS.iter().any(|m| is_named(m)) {
        Some(Direction::Minimize)
    } else if MAXIMIZED_FRAGMENTS.iter().any(|f| base.contains(f)) {
        Some(Direction::Maximize)
    } else {
        None
    }
}

/// A monitored quantity with its direction and `min_delta`.
#[derive(Clone, Debug, PartialEq)]
pub struct Monitor {
    name: String,
    direction: Direction,
    min_delta: f64,
}

impl Monitor {
    /// Monitors `name` in `mode` with an absolute `min_delta`; `callback` names the callback in
    /// errors (an `auto` mode that cannot be resolved, a non-finite `min_delta`).
    pub fn new(callback: &'static str, name: &str, mode: Mode, min_delta: f64) -> Result<Self> {
        let direction = match mode {
            Mode::Min => Direction::Minimize,
            Mode::Max => Direction::Maximize,
            Mode::Auto => infer_direction(name)
                .ok_or_else(|| Error::UnknownMonitorDirection { callback, monitor: name.to_string() })?,
        };
        if !min_delta.is_finite() {
            return Err(Error::Config {
                callback,
                field: "min_delta".into(),
                msg: format!("must be a finite number, got {min_delta}"),
            });
        }
        Ok(Monitor { name: name.to_string(), direction, min_delta: min_delta.abs() })
    }

    /// The monitored name (e.g. `val_loss`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which way is better.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The absolute `min_delta`.
    pub fn min_delta(&self) -> f64 {
        self.min_delta
    }

    /// The monitored value in `logs`, if present.
    pub fn value(&self, logs: &super::Logs) -> Option<f64> {
        logs.get(&self.name).copied()
    }

    /// Whether `current` improves on `reference` by more than `min_delta` (always, when there
    /// is no reference yet).
    pub fn is_improvement(&self, current: f64, reference: Option<f64>) -> bool {
        let Some(reference) = reference else { return true };
        match self.direction {
            Direction::Minimize => ((current + self.min_delta) as f32) < reference as f32,
            Direction::Maximize => ((current - self.min_delta) as f32) > reference as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mode_reads_the_name() {
        use Direction::{Maximize, Minimize};
        for (name, want) in [
            ("loss", Some(Minimize)),
            ("val_loss", Some(Minimize)),
            ("out_loss", Some(Minimize)),
            ("val_mae", Some(Minimize)),
            ("categorical_crossentropy", Some(Minimize)),
            ("accuracy", Some(Maximize)),
            ("val_acc", Some(Maximize)),
            ("val_sparse_categorical_accuracy", Some(Maximize)),
            ("auc_1", Some(Maximize)),
            ("val_precision", Some(Maximize)),
            ("learning_rate", None),
            ("throughput", None),
        ] {
            assert_eq!(infer_direction(name), want, "{name}");
        }
    }

    #[test]
    fn first_value_always_improves() {
        let m = Monitor::new("T", "val_loss", Mode::Auto, 0.5).unwrap();
        assert!(m.is_improvement(f64::MAX, None));
    }

    #[test]
    fn min_delta_is_absolute_and_strict() {
        let m = Monitor::new("T", "val_loss", Mode::Auto, -0.25).unwrap();
        assert_eq!(m.min_delta(), 0.25);
        assert!(m.is_improvement(0.5, Some(1.0)));
        assert!(!m.is_improvement(0.75, Some(1.0)), "exactly min_delta better is not an improvement");
        let m = Monitor::new("T", "val_accuracy", Mode::Auto, 0.25).unwrap();
        assert!(m.is_improvement(0.5, Some(0.125)));
        assert!(!m.is_improvement(0.5, Some(0.25)));
    }

    #[test]
    fn compares_in_float32_like_keras() {
        let m = Monitor::new("T", "val_loss", Mode::Min, 0.0).unwrap();
        // Different in f64, equal once rounded to f32: not an improvement.
        assert!(!m.is_improvement(0.1 - 1e-12, Some(0.1)));
        assert!(m.is_improvement(0.1 - 1e-7, Some(0.1)));
    }

    #[test]
    fn unresolvable_auto_mode_and_bad_names_are_errors() {
        let err = Monitor::new("EarlyStopping", "throughput", Mode::Auto, 0.0).unwrap_err();
        assert!(err.to_string().contains("monitor=throughput") && err.to_string().contains("mode=\"max\""));
        assert!(Monitor::new("T", "throughput", Mode::Max, 0.0).is_ok());
        assert!(Mode::from_name("T", "maximum").unwrap_err().to_string().contains("`maximum`"));
        assert!(Monitor::new("T", "loss", Mode::Min, f64::NAN).is_err());
    }
}
