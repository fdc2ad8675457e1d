//! The callbacks `fit` drives, with Keras's hooks: the [`Callback`] trait, and EarlyStopping
//! (with restore_best_weights), ReduceLROnPlateau, ModelCheckpoint (save_best_only; written
//! atomically), LearningRateScheduler, CSVLogger and TerminateOnNaN.

use crate::callbacks::{EarlyStopping, Mode, Monitor, ReduceLROnPlateau};
use crate::error::{Error, Result};
use crate::trainer::Trainer;
use crate::Logs;
use std::io::Write;
use std::path::PathBuf;
use tlx_tensor::Tensor;

/// Whether training goes on after a hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// A training callback (Keras's `keras.callbacks.Callback`). Every hook has a default that
/// does nothing.
pub trait Callback: Send {
    /// A short name for messages.
    fn name(&self) -> &str;
    /// Before the first epoch.
    fn on_train_begin(&mut self, _trainer: &mut Trainer) -> Result<()> {
        Ok(())
    }
    /// Before each epoch (0-based).
    fn on_epoch_begin(&mut self, _epoch: usize, _trainer: &mut Trainer) -> Result<()> {
        Ok(())
    }
    /// After each training batch, with the batch's `loss` and running metrics.
    fn on_batch_end(&mut self, _batch: usize, _logs: &Logs, _trainer: &mut Trainer) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After each epoch with its logs (training and validation); may add to them.
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &mut Logs, _trainer: &mut Trainer) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After the last epoch (also after an early stop).
    fn on_train_end(&mut self, _trainer: &mut Trainer) -> Result<()> {
        Ok(())
    }
}

/// EarlyStopping: stops when the monitored value stops improving; with
/// `restore_best_weights`, the weights of the best epoch come back at the end (Keras 3
/// restores them whenever a best snapshot exists, early stop or not).
pub struct EarlyStoppingCallback {
    pub state: EarlyStopping,
    best_weights: Option<Vec<Tensor>>,
}

impl EarlyStoppingCallback {
    /// From Keras's arguments as JSON (`{"monitor": "val_loss", "patience": 3, …}`).
    pub fn from_keras_config(config: &serde_json::Value) -> Result<Self> {
        Ok(EarlyStoppingCallback { state: EarlyStopping::from_keras_config(config)?, best_weights: None })
    }
}

impl Callback for EarlyStoppingCallback {
    fn name(&self) -> &str {
        "EarlyStopping"
    }
    fn on_train_begin(&mut self, _t: &mut Trainer) -> Result<()> {
        self.state.on_train_begin();
        self.best_weights = None;
        Ok(())
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, t: &mut Trainer) -> Result<Control> {
        let step = self.state.on_epoch_end(epoch, logs);
        if step.snapshot_weights {
            self.best_weights = Some(t.model().get_weights()?);
        }
        Ok(if step.stop { Control::Stop } else { Control::Continue })
    }
    fn on_train_end(&mut self, t: &mut Trainer) -> Result<()> {
        if self.state.restore_at_train_end() {
            if let Some(w) = &self.best_weights {
                t.model().set_all_weights(w)?;
            }
        }
        Ok(())
    }
}

/// ReduceLROnPlateau: multiplies the optimizer's learning rate by `factor` when the monitored
/// value plateaus; writes `learning_rate` into the epoch logs.
pub struct ReduceLrCallback {
    pub state: ReduceLROnPlateau,
}

impl ReduceLrCallback {
    /// From Keras's arguments as JSON.
    pub fn from_keras_config(config: &serde_json::Value) -> Result<Self> {
        Ok(ReduceLrCallback { state: ReduceLROnPlateau::from_keras_config(config)? })
    }
}

impl Callback for ReduceLrCallback {
    fn name(&self) -> &str {
        "ReduceLROnPlateau"
    }
    fn on_train_begin(&mut self, _t: &mut Trainer) -> Result<()> {
        self.state.on_train_begin();
        Ok(())
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, t: &mut Trainer) -> Result<Control> {
        let lr = t.optimizer().learning_rate();
        if let Some(new) = self.state.on_epoch_end(epoch, logs, lr) {
            t.optimizer_mut().set_learning_rate(new)?;
        }
        logs.insert("learning_rate".into(), t.optimizer().learning_rate());
        Ok(Control::Continue)
    }
}

/// LearningRateScheduler: at each epoch's start, `lr = schedule(epoch, current_lr)`.
pub struct LearningRateScheduler {
    schedule: Box<dyn FnMut(usize, f64) -> f64 + Send>,
}

impl LearningRateScheduler {
    /// A scheduler calling `schedule(epoch, current_lr)`.
    pub fn new(schedule: impl FnMut(usize, f64) -> f64 + Send + 'static) -> Self {
        LearningRateScheduler { schedule: Box::new(schedule) }
    }
}

impl Callback for LearningRateScheduler {
    fn name(&self) -> &str {
        "LearningRateScheduler"
    }
    fn on_epoch_begin(&mut self, epoch: usize, t: &mut Trainer) -> Result<()> {
        let lr = (self.schedule)(epoch, t.optimizer().learning_rate());
        if !lr.is_finite() {
            return Err(Error::Invalid(format!("LearningRateScheduler returned {lr} for epoch {epoch}")));
        }
        t.optimizer_mut().set_learning_rate(lr)?;
        Ok(())
    }
    fn on_epoch_end(&mut self, _epoch: usize, logs: &mut Logs, t: &mut Trainer) -> Result<Control> {
        logs.insert("learning_rate".into(), t.optimizer().learning_rate());
        Ok(Control::Continue)
    }
}

/// TerminateOnNaN: stops as soon as a batch loss is NaN or infinite.
#[derive(Default)]
pub struct TerminateOnNaN {
    /// The batch that stopped training, if any.
    pub stopped_at_batch: Option<usize>,
}

impl Callback for TerminateOnNaN {
    fn name(&self) -> &str {
        "TerminateOnNaN"
    }
    fn on_batch_end(&mut self, batch: usize, logs: &Logs, _t: &mut Trainer) -> Result<Control> {
        match logs.get("loss") {
            Some(l) if !l.is_finite() => {
                eprintln!("Batch {batch}: invalid loss {l}, terminating training");
                self.stopped_at_batch = Some(batch);
                Ok(Control::Stop)
            }
            _ => Ok(Control::Continue),
        }
    }
}

/// CSVLogger: one row per epoch (`epoch` then the sorted log keys), flushed each epoch.
pub struct CsvLogger {
    path: PathBuf,
    append: bool,
    keys: Option<Vec<String>>,
    file: Option<std::fs::File>,
}

impl CsvLogger {
    /// Logs to `path`, replacing it unless `append`.
    pub fn new(path: impl Into<PathBuf>, append: bool) -> Self {
        CsvLogger { path: path.into(), append, keys: None, file: None }
    }
}

impl Callback for CsvLogger {
    fn name(&self) -> &str {
        "CSVLogger"
    }
    fn on_train_begin(&mut self, _t: &mut Trainer) -> Result<()> {
        let existed =
            self.path.exists() && std::fs::metadata(&self.path).map(|m| m.len() > 0).unwrap_or(false);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append)
            .truncate(!self.append)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        self.file = Some(f);
        if self.append && existed {
            // Keep the existing header's columns.
            let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
            if let Some(h) = text.lines().next() {
                self.keys = Some(h.split(',').skip(1).map(str::to_string).collect());
            }
        }
        Ok(())
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, _t: &mut Trainer) -> Result<Control> {
        let f =
            self.file.as_mut().ok_or_else(|| Error::Invalid("CSVLogger used before train begin".into()))?;
        let mut line = String::new();
        if self.keys.is_none() {
            let keys: Vec<String> = logs.keys().cloned().collect();
            line.push_str(&format!("epoch,{}\n", keys.join(",")));
            self.keys = Some(keys);
        }
        let keys = self.keys.as_ref().expect("set above");
        line.push_str(&epoch.to_string());
        for k in keys {
            line.push(',');
            if let Some(v) = logs.get(k) {
                line.push_str(&v.to_string());
            }
        }
        line.push('\n');
        f.write_all(line.as_bytes()).and_then(|_| f.flush()).map_err(|e| Error::io(&self.path, e))?;
        Ok(Control::Continue)
    }
    fn on_train_end(&mut self, _t: &mut Trainer) -> Result<()> {
        self.file = None;
        Ok(())
    }
}

/// ModelCheckpoint: saves the model's weights (safetensors, tensors named `layer/weight`,
/// with the model config in the metadata) at each epoch end, or only when the monitored
/// value improves. `{epoch}` in the path is replaced by the 1-based epoch, as Keras does.
/// Files are written atomically (temp file, fsync, rename).
pub struct ModelCheckpoint {
    path: String,
    save_best_only: bool,
    monitor: Monitor,
    best: Option<f64>,
    /// Paths written so far.
    pub saved: Vec<PathBuf>,
}

impl ModelCheckpoint {
    /// Checkpoints to `path` (`{epoch}` allowed); with `save_best_only`, only on improvement of
    /// `monitor` (direction from `mode`, `auto` by name).
    pub fn new(path: &str, monitor: &str, mode: Mode, save_best_only: bool) -> Result<Self> {
        Ok(ModelCheckpoint {
            path: path.into(),
            save_best_only,
            monitor: Monitor::new("ModelCheckpoint", monitor, mode, 0.0)?,
            best: None,
            saved: Vec::new(),
        })
    }
}

impl Callback for ModelCheckpoint {
    fn name(&self) -> &str {
        "ModelCheckpoint"
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &mut Logs, t: &mut Trainer) -> Result<Control> {
        if self.save_best_only {
            let Some(v) = self.monitor.value(logs) else {
                eprintln!("ModelCheckpoint: '{}' is not in the logs; nothing saved", self.monitor.name());
                return Ok(Control::Continue);
            };
            if !self.monitor.is_improvement(v, self.best) {
                return Ok(Control::Continue);
            }
            self.best = Some(v);
        }
        let path = PathBuf::from(self.path.replace("{epoch}", &format!("{:02}", epoch + 1)));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::checkpoint::save_weights(t.model(), &path)?;
        self.saved.push(path);
        Ok(Control::Continue)
    }
}
