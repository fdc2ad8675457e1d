//! `EarlyStopping` with Keras 3's semantics (`callbacks/early_stopping.py`).
//!
//! At each epoch's end, with the monitored value `current`:
//! 1. Skip the epoch when `current` is missing from the logs or `epoch < start_from_epoch`.
//! 2. With `restore_best_weights`, if no snapshot exists yet, snapshot the current weights (and
//!    make this the best epoch).
//! 3. `wait += 1`.
//! 4. If `current` improves on the best (see [`Monitor`]; the first value always does): it
//!    becomes the best, this the best epoch, snapshot again with `restore_best_weights`, and
//!    `wait = 0` only when there is no `baseline` or `current` also improves on the baseline.
//! 5. Otherwise, when `wait ≥ patience` and `epoch > 0`, stop training.
//!
//! At the end of training Keras 3 restores the snapshot whenever `restore_best_weights` is set
//! and a snapshot exists, whether or not training stopped early (tf.keras 2 only restored after
//! an early stop, and started `best` at the baseline).
//!
//! The weights themselves stay with the caller: [`EarlyStoppingStep::snapshot_weights`] says
//! when to remember them, [`EarlyStopping::restore_at_train_end`] whether to put them back.

use super::monitor::{Mode, Monitor};
use super::{KerasArgs, Logs};
use crate::Result;

const CALLBACK: &str = "EarlyStopping";

/// The arguments of Keras's `EarlyStopping`, with its defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct EarlyStoppingConfig {
    /// The quantity to monitor (default `val_loss`).
    pub monitor: String,
    /// The smallest change that counts as an improvement, absolute (default 0).
    pub min_delta: f64,
    /// Epochs without improvement before stopping (default 0).
    pub patience: u64,
    /// Which way is better (default `auto`).
    pub mode: Mode,
    /// A value the monitored quantity must beat for `wait` to reset (default none).
    pub baseline: Option<f64>,
    /// Snapshot the best weights and restore them at the end (default false).
    pub restore_best_weights: bool,
    /// Epochs to ignore at the start (default 0).
    pub start_from_epoch: u64,
}

impl Default for EarlyStoppingConfig {
    fn default() -> Self {
        EarlyStoppingConfig {
            monitor: "val_loss".into(),
            min_delta: 0.0,
            patience: 0,
            mode: Mode::Auto,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
        }
    }
}

impl EarlyStoppingConfig {
    /// Reads Keras's constructor arguments from a JSON object (`{"patience": 3, "mode":
    /// "min"}`); absent or null fields take Keras's defaults, `verbose` is ignored, any other
    /// field is an error naming it.
    pub fn from_keras_config(config: &serde_json::Value) -> Result<Self> {
        const KNOWN: &[&str] = &[
            "monitor",
            "min_delta",
            "patience",
            "verbose",
            "mode",
            "baseline",
            "restore_best_weights",
            "start_from_epoch",
        ];
        let args = KerasArgs::new(CALLBACK, config, KNOWN)?;
        let d = EarlyStoppingConfig::default();
        args.ignored("verbose")?;
        Ok(EarlyStoppingConfig {
            monitor: args.string("monitor", &d.monitor)?,
            min_delta: args.number("min_delta", d.min_delta)?,
            patience: args.count("patience", d.patience)?,
            mode: Mode::from_name(CALLBACK, &args.string("mode", "auto")?)?,
            baseline: args.optional_number("baseline")?,
            restore_best_weights: args.flag("restore_best_weights", d.restore_best_weights)?,
            start_from_epoch: args.count("start_from_epoch", d.start_from_epoch)?,
        })
    }
}

/// What the caller should do after an epoch's end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EarlyStoppingStep {
    /// Stop training after this epoch.
    pub stop: bool,
    /// Remember the current weights as the best (only with `restore_best_weights`).
    pub snapshot_weights: bool,
}

/// Keras 3's `EarlyStopping` callback as a state machine.
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    config: EarlyStoppingConfig,
    monitor: Monitor,
    wait: u64,
    best: Option<f64>,
    best_epoch: usize,
    stopped_epoch: Option<usize>,
    has_snapshot: bool,
}

impl EarlyStopping {
    /// The callback for `config`; fails when `mode` is `auto` and the monitored name does not
    /// tell which way is better.
    pub fn new(config: EarlyStoppingConfig) -> Result<Self> {
        let monitor = Monitor::new(CALLBACK, &config.monitor, config.mode, config.min_delta)?;
        if let Some(b) = config.baseline.filter(|b| !b.is_finite()) {
            return Err(crate::Error::Config {
                callback: CALLBACK,
                field: "baseline".into(),
                msg: format!("must be a finite number, got {b}"),
            });
        }
        Ok(EarlyStopping {
            config,
            monitor,
            wait: 0,
            best: None,
            best_epoch: 0,
            stopped_epoch: None,
            has_snapshot: false,
        })
    }

    /// [`EarlyStopping::new`] from Keras's constructor arguments as JSON (see
    /// [`EarlyStoppingConfig::from_keras_config`]).
    pub fn from_keras_config(config: &serde_json::Value) -> Result<Self> {
        Self::new(EarlyStoppingConfig::from_keras_config(config)?)
    }

    /// The configuration.
    pub fn config(&self) -> &EarlyStoppingConfig {
        &self.config
    }

    /// Resets the state, so one callback can serve several trainings (Keras's
    /// `on_train_begin`).
    pub fn on_train_begin(&mut self) {
        self.wait = 0;
        self.best = None;
        self.best_epoch = 0;
        self.stopped_epoch = None;
        self.has_snapshot = false;
    }

    /// Reports the end of `epoch` (0-based) with its logs.
    pub fn on_epoch_end(&mut self, epoch: usize, logs: &Logs) -> EarlyStoppingStep {
        let mut step = EarlyStoppingStep::default();
        let Some(current) = self.monitor.value(logs) else { return step };
        if (epoch as u64) < self.config.start_from_epoch {
            return step;
        }
        if self.config.restore_best_weights && !self.has_snapshot {
            self.has_snapshot = true;
            self.best_epoch = epoch;
            step.snapshot_weights = true;
        }
        self.wait += 1;
        if self.monitor.is_improvement(current, self.best) {
            self.best = Some(current);
            self.best_epoch = epoch;
            step.snapshot_weights |= self.config.restore_best_weights;
            if self.config.baseline.is_none_or(|b| self.monitor.is_improvement(current, Some(b))) {
                self.wait = 0;
            }
            return step;
        }
        if self.wait >= self.config.patience && epoch > 0 {
            self.stopped_epoch = Some(epoch);
            step.stop = true;
        }
        step
    }

    /// The epoch of the best value so far (0 before any).
    pub fn best_epoch(&self) -> usize {
        self.best_epoch
    }

    /// The epoch after which training was told to stop, if it was.
    pub fn stopped_epoch(&self) -> Option<usize> {
        self.stopped_epoch
    }

    /// The best monitored value so far.
    pub fn best(&self) -> Option<f64> {
        self.best
    }

    /// Epochs counted without (sufficient) improvement.
    pub fn wait(&self) -> u64 {
        self.wait
    }

    /// Whether the caller should restore the last snapshot at the end of training: Keras 3
    /// does whenever `restore_best_weights` is set and a snapshot was taken.
    pub fn restore_at_train_end(&self) -> bool {
        self.config.restore_best_weights && self.has_snapshot
    }
}
