//! `ReduceLROnPlateau` with Keras 3's semantics (`callbacks/reduce_lr_on_plateau.py`).
//!
//! At each epoch's end, with the monitored value `current` (an epoch without it changes
//! nothing):
//! 1. In cooldown (`cooldown_counter > 0`): `cooldown_counter −= 1`, `wait = 0`.
//! 2. If `current` improves on the best (see [`Monitor`]; `min_delta` defaults to 1e-4): it
//!    becomes the best and `wait = 0`.
//! 3. Otherwise, if not (still) in cooldown: `wait += 1`; when `wait ≥ patience` and the current
//!    learning rate is above `min_lr` (both as float32, as Keras compares them), the new rate is
//!    `max(lr · factor, min_lr)`, `cooldown_counter = cooldown` and `wait = 0`.
//!
//! The learning rate lives in the optimizer as a float32 variable: the rate passed in is read
//! as that float32 value, and the caller stores the returned rate back into the optimizer
//! (which rounds it to float32 again). The new rate takes effect from the next epoch. Keras's
//! callback also writes the rate in force during the epoch (before any change) into the logs
//! as `learning_rate`; that is left to the caller, who owns the logs.

use super::monitor::{Mode, Monitor};
use super::{KerasArgs, Logs};
use crate::{Error, Result};

const CALLBACK: &str = "ReduceLROnPlateau";

/// The arguments of Keras's `ReduceLROnPlateau`, with its defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLROnPlateauConfig {
    /// The quantity to monitor (default `val_loss`).
    pub monitor: String,
    /// The multiplier of the learning rate, below 1 (default 0.1).
    pub factor: f64,
    /// Epochs without improvement before reducing (default 10).
    pub patience: u64,
    /// Which way is better (default `auto`).
    pub mode: Mode,
    /// The smallest change that counts as an improvement, absolute (default 1e-4).
    pub min_delta: f64,
    /// Epochs to wait after a reduction before counting again (default 0).
    pub cooldown: u64,
    /// The learning rate is never reduced below this (default 0).
    pub min_lr: f64,
}

impl Default for ReduceLROnPlateauConfig {
    fn default() -> Self {
        ReduceLROnPlateauConfig {
            monitor: "val_loss".into(),
            factor: 0.1,
            patience: 10,
            mode: Mode::Auto,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
        }
    }
}

impl ReduceLROnPlateauConfig {
    /// Reads Keras's constructor arguments from a JSON object (`{"factor": 0.5, "patience":
    /// 2}`); absent or null fields take Keras's defaults, `verbose` is ignored, any other field
    /// is an error naming it.
    pub fn from_keras_config(config: &serde_json::Value) -> Result<Self> {
        const KNOWN: &[&str] =
            &["monitor", "factor", "patience", "verbose", "mode", "min_delta", "cooldown", "min_lr"];
        let args = KerasArgs::new(CALLBACK, config, KNOWN)?;
        let d = ReduceLROnPlateauConfig::default();
        args.ignored("verbose")?;
        Ok(ReduceLROnPlateauConfig {
            monitor: args.string("monitor", &d.monitor)?,
            factor: args.number("factor", d.factor)?,
            patience: args.count("patience", d.patience)?,
            mode: Mode::from_name(CALLBACK, &args.string("mode", "auto")?)?,
            min_delta: args.number("min_delta", d.min_delta)?,
            cooldown: args.count("cooldown", d.cooldown)?,
            min_lr: args.number("min_lr", d.min_lr)?,
        })
    }
}

/// Keras 3's `ReduceLROnPlateau` callback as a state machine.
#[derive(Clone, Debug)]
pub struct ReduceLROnPlateau {
    config: ReduceLROnPlateauConfig,
    monitor: Monitor,
    best: Option<f64>,
    wait: u64,
    cooldown_counter: u64,
    last_reduction: Option<(usize, f64)>,
}

impl ReduceLROnPlateau {
    /// The callback for `config`; fails on `factor ≥ 1` (as Keras), a non-finite `factor` or
    /// `min_lr`, or an `auto` mode the monitored name does not resolve.
    pub fn new(config: ReduceLROnPlateauConfig) -> Result<Self> {
        let bad = |field: &str, msg: String| Error::Config { callback: CALLBACK, field: field.into(), msg };
        if !config.factor.is_finite() || config.factor >= 1.0 {
            return Err(bad(
                "factor",
                format!("ReduceLROnPlateau does not support a factor >= 1.0 (got {})", config.factor),
            ));
        }
        if !config.min_lr.is_finite() {
            return Err(bad("min_lr", format!("must be a finite number, got {}", config.min_lr)));
        }
        let monitor = Monitor::new(CALLBACK, &config.monitor, config.mode, config.min_delta)?;
        Ok(ReduceLROnPlateau {
            config,
            monitor,
            best: None,
            wait: 0,
            cooldown_counter: 0,
            last_reduction: None,
        })
    }

    /// [`ReduceLROnPlateau::new`] from Keras's constructor arguments as JSON (see
    /// [`ReduceLROnPlateauConfig::from_keras_config`]).
    pub fn from_keras_config(config: &serde_json::Value) -> Result<Self> {
        Self::new(ReduceLROnPlateauConfig::from_keras_config(config)?)
    }

    /// The configuration.
    pub fn config(&self) -> &ReduceLROnPlateauConfig {
        &self.config
    }

    /// Resets the best value, `wait` and the cooldown (Keras's `on_train_begin`).
    pub fn on_train_begin(&mut self) {
        self.best = None;
        self.wait = 0;
        self.cooldown_counter = 0;
        self.last_reduction = None;
    }

    /// Reports the end of `epoch` (0-based) with its logs and the optimizer's learning rate;
    /// returns the new learning rate when Keras would set one.
    pub fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, current_lr: f64) -> Option<f64> {
        let current = self.monitor.value(logs)?;
        if self.in_cooldown() {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if self.monitor.is_improvement(current, self.best) {
            self.best = Some(current);
            self.wait = 0;
            return None;
        }
        if self.in_cooldown() {
            return None;
        }
        self.wait += 1;
        if self.wait < self.config.patience {
            return None;
        }
        // `float(optimizer.learning_rate)`: the float32 variable's value.
        let old_lr = current_lr as f32 as f64;
        let above_min = (old_lr as f32) > (self.config.min_lr as f32);
        if !above_min {
            return None;
        }
        let new_lr = (old_lr * self.config.factor).max(self.config.min_lr);
        self.cooldown_counter = self.config.cooldown;
        self.wait = 0;
        self.last_reduction = Some((epoch, new_lr));
        Some(new_lr)
    }

    /// Whether the callback is cooling down after a reduction.
    pub fn in_cooldown(&self) -> bool {
        self.cooldown_counter > 0
    }

    /// The best monitored value so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// Epochs counted without improvement.
    pub fn wait(&self) -> u64 {
        self.wait
    }

    /// The last reduction as `(epoch, new learning rate)`, for messages like Keras's verbose
    /// "Epoch N: ReduceLROnPlateau reducing learning rate to X".
    pub fn last_reduction(&self) -> Option<(usize, f64)> {
        self.last_reduction
    }
}
