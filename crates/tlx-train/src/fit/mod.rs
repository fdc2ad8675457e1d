//! `fit`: epochs of shuffled batches through [`Trainer::train_step`], validation at each
//! epoch's end, callbacks, the progress display, the History, class and sample weights,
//! checkpoints every N steps and exact resumption, and the feature cache for frozen bases.

pub mod callback;
mod history;
pub mod progress;

pub use callback::{
    Callback, Control, CsvLogger, EarlyStoppingCallback, LearningRateScheduler, ModelCheckpoint,
    ReduceLrCallback, TerminateOnNaN,
};
pub use history::History;
pub use progress::Verbosity;

use crate::checkpoint::{self, TrainState};
use crate::error::{Error, Result};
use crate::feature_cache::{self, FeatureCache};
use crate::metrics::RunningMean;
use crate::trainer::Trainer;
use crate::Logs;
use progress::Progress;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tlx_data::{Augment, BatchConfig, Dataset};
use tlx_tensor::Tensor;

/// A transform of input batches (`x → f(x)`), shared between threads.
pub type InputTransform = std::sync::Arc<dyn Fn(&Tensor) -> tlx_tensor::Result<Tensor> + Send + Sync>;

/// Applies `opts.preprocess` to a batch of inputs.
pub(crate) fn preprocessed(opts: &FitOptions, x: Tensor) -> Result<Tensor> {
    Ok(match &opts.preprocess {
        Some(f) => f(&x)?,
        None => x,
    })
}

/// Validation during `fit`.
#[derive(Clone, Debug, Default)]
pub enum Validation {
    #[default]
    None,
    /// A separate dataset.
    Data(Dataset),
    /// The last fraction of the training data, taken before shuffling (Keras's rule).
    Split(f64),
}

/// Everything `fit` takes besides the data.
#[derive(Clone)]
pub struct FitOptions {
    pub epochs: usize,
    pub batch_size: usize,
    /// Reshuffle every epoch (from `seed`).
    pub shuffle: bool,
    /// Seed of the shuffles and of dropout.
    pub seed: u64,
    pub validation: Validation,
    /// Weight of each class in the loss (`class_weight`).
    pub class_weight: Option<BTreeMap<i64, f64>>,
    /// Weight of each training example, by dataset position (`sample_weight`).
    pub sample_weight: Option<Vec<f32>>,
    /// The epoch to start at (for a second `fit` continuing the numbering).
    pub initial_epoch: usize,
    pub verbose: Verbosity,
    /// Precompute a frozen base's outputs once (see [`crate::feature_cache`]).
    pub feature_cache: FeatureCache,
    /// Random augmentation of training images (seeded), and a rescale factor of inputs.
    pub augment: Option<(Augment, u64)>,
    pub rescale: Option<f32>,
    /// Applied to every input batch after rescaling and augmentation (e.g. an application's
    /// `preprocess_input`), in training, validation and the feature cache alike.
    pub preprocess: Option<InputTransform>,
    /// Where to keep checkpoints, and how often (steps; 0 = at each epoch's end only).
    pub checkpoint_dir: Option<PathBuf>,
    pub checkpoint_every_steps: u64,
    /// Continue from the latest checkpoint in `checkpoint_dir` if there is one.
    pub resume: bool,
    /// Stop (as if interrupted) after this many steps in total: for tests of resumption.
    pub stop_after_steps: Option<u64>,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            shuffle: true,
            seed: 0,
            validation: Validation::None,
            class_weight: None,
            sample_weight: None,
            initial_epoch: 0,
            verbose: Verbosity::Auto,
            feature_cache: FeatureCache::Auto,
            augment: None,
            rescale: None,
            preprocess: None,
            checkpoint_dir: None,
            checkpoint_every_steps: 0,
            resume: false,
            stop_after_steps: None,
        }
    }
}

/// Per-example weights of a batch from class and sample weights (None when neither is set).
fn batch_weights(opts: &FitOptions, positions: &[usize], y: &Tensor) -> Result<Option<Tensor>> {
    if opts.class_weight.is_none() && opts.sample_weight.is_none() {
        return Ok(None);
    }
    let mut w = vec![1.0f32; positions.len()];
    if let Some(sw) = &opts.sample_weight {
        for (o, &p) in w.iter_mut().zip(positions) {
            *o *= *sw.get(p).ok_or_else(|| {
                Error::Data(format!("sample_weight has {} entries, example {p} has none", sw.len()))
            })?;
        }
    }
    if let Some(cw) = &opts.class_weight {
        let classes: Vec<i64> = match y.dtype() {
            tlx_tensor::DType::I64 if y.rank() == 1 => y.to_vec::<i64>()?,
            _ => {
                // One-hot or probability rows: the class is the argmax (Keras does the same).
                let rows = positions.len().max(1);
                let v = y.to_vec_f64()?;
                let width = v.len() / rows;
                v.chunks(width.max(1)).map(|r| crate::metrics::argmax(r) as i64).collect()
            }
        };
        for (o, c) in w.iter_mut().zip(classes) {
            *o *= cw.get(&c).copied().unwrap_or(1.0) as f32;
        }
    }
    Ok(Some(Tensor::from_vec(w, [positions.len()])?))
}

impl Trainer {
    /// Trains on `data` as Keras's `fit` does and returns the History. The loop runs on a
    /// thread of the kernels' rayon pool with the others kept awake (`tlx_cpu::keep_awake`,
    /// here and in every step), where its many small parallel operations fork without
    /// waking the caller or a sleeping thread each time.
    pub fn fit(
        &mut self,
        data: &Dataset,
        opts: &FitOptions,
        callbacks: &mut [Box<dyn Callback>],
    ) -> Result<History> {
        tlx_cpu::keep_awake(|| self.fit_on_worker(data, opts, callbacks))
    }

    fn fit_on_worker(
        &mut self,
        data: &Dataset,
        opts: &FitOptions,
        callbacks: &mut [Box<dyn Callback>],
    ) -> Result<History> {
        if opts.batch_size == 0 {
            return Err(Error::Invalid("batch_size must be at least 1".into()));
        }
        if data.is_empty() {
            return Err(Error::Data("fit on an empty dataset".into()));
        }
        let (train, val) = match &opts.validation {
            Validation::None => (data.clone(), None),
            Validation::Data(v) => (data.clone(), Some(v.clone())),
            Validation::Split(f) => {
                let (t, v) = data.split(*f)?;
                if t.is_empty() {
                    return Err(Error::Data(format!("validation_split {f} leaves no training data")));
                }
                (t, Some(v).filter(|v| !v.is_empty()))
            }
        };
        self.seed = opts.seed;
        let mut state = TrainState {
            epoch: opts.initial_epoch,
            batch: 0,
            steps_done: 0,
            seed: opts.seed,
            running: Vec::new(),
            history: History::default(),
        };
        self.steps_done = 0;
        if opts.resume {
            let dir = opts
                .checkpoint_dir
                .as_ref()
                .ok_or_else(|| Error::Invalid("resume needs a checkpoint directory".into()))?;
            if let Some(ckpt) = checkpoint::latest(dir)? {
                state = checkpoint::restore(&ckpt, self)?;
            }
        }
        self.prepare()?;
        // The feature cache replaces the frozen base by its precomputed outputs.
        let cache = feature_cache::prepare(self, &train, opts)?;
        let (train_set, head) = match &cache {
            Some(c) => (c.train.clone(), Some(c)),
            None => (train.clone(), None),
        };
        let val_set = match (&cache, &val) {
            (Some(c), Some(v)) => Some(c.features_of(self, v, opts)?),
            (_, v) => v.clone(),
        };
        let mut config = BatchConfig::new(opts.batch_size).prefetch(2);
        if opts.shuffle {
            config = config.shuffle(opts.seed);
        }
        if head.is_none() {
            if let Some((aug, seed)) = &opts.augment {
                config = config.augment(aug.clone(), *seed);
            }
            if let Some(r) = opts.rescale {
                config = config.rescale(r);
            }
        }
        let batches = train_set.batches(config)?;
        let steps_per_epoch = batches.len();
        let mut progress = Progress::new(opts.verbose);
        for cb in callbacks.iter_mut() {
            cb.on_train_begin(self)?;
        }
        let mut stop = false;
        let mut interrupted = false;
        let mut epoch = state.epoch;
        while epoch < opts.epochs && !stop {
            for cb in callbacks.iter_mut() {
                cb.on_epoch_begin(epoch, self)?;
            }
            progress.epoch_begin(epoch, opts.epochs, steps_per_epoch);
            let mut loss = RunningMean::default();
            let mut metrics = vec![RunningMean::default(); self.metrics().len()];
            let start_batch = if epoch == state.epoch { state.batch } else { 0 };
            if start_batch > 0 {
                for (k, t, c) in &state.running {
                    let m = RunningMean { total: *t, count: *c };
                    if k == "loss" {
                        loss = m;
                    } else if let Some(i) = self.metrics().iter().position(|x| &x.log_name() == k) {
                        metrics[i] = m;
                    }
                }
            }
            for (i, batch) in batches.epoch_from(epoch as u64, start_batch).enumerate() {
                let b = batch?;
                let y = self.targets_for(&b.y)?;
                let sw = batch_weights(opts, &b.positions, &y)?;
                let out = match head {
                    Some(c) => c.train_step(self, &b.x, &y, sw.as_ref())?,
                    None => self.train_step(&preprocessed(opts, b.x)?, &y, sw.as_ref())?,
                };
                loss.add(out.loss, out.batch_size as f64);
                for (m, vals) in metrics.iter_mut().zip(&out.metrics) {
                    for v in vals {
                        m.add(*v, 1.0);
                    }
                }
                let done = start_batch + i + 1;
                let mut logs = Logs::new();
                logs.insert("loss".into(), loss.mean());
                for (m, r) in self.metrics().iter().zip(&metrics) {
                    logs.insert(m.log_name(), r.mean());
                }
                progress.batch_end(done, &logs);
                let mut batch_logs = logs.clone();
                batch_logs.insert("loss".into(), out.loss);
                for cb in callbacks.iter_mut() {
                    if cb.on_batch_end(done - 1, &batch_logs, self)? == Control::Stop {
                        stop = true;
                    }
                }
                let position = TrainState {
                    epoch,
                    batch: done,
                    steps_done: self.steps_done,
                    seed: self.seed,
                    running: std::iter::once(("loss".to_string(), loss.total, loss.count))
                        .chain(
                            self.metrics()
                                .iter()
                                .zip(&metrics)
                                .map(|(m, r)| (m.log_name(), r.total, r.count)),
                        )
                        .collect(),
                    history: state.history.clone(),
                };
                if let Some(dir) = &opts.checkpoint_dir {
                    if opts.checkpoint_every_steps > 0 && self.steps_done % opts.checkpoint_every_steps == 0 {
                        checkpoint::save(dir, self, &position)?;
                    }
                }
                if opts.stop_after_steps.is_some_and(|n| self.steps_done >= n) {
                    interrupted = true;
                    stop = true;
                }
                if stop {
                    break;
                }
            }
            if interrupted {
                break;
            }
            let mut logs = Logs::new();
            logs.insert("loss".into(), loss.mean());
            for (m, r) in self.metrics().iter().zip(&metrics) {
                logs.insert(m.log_name(), r.mean());
            }
            if let Some(v) = &val_set {
                let vl = match head {
                    Some(c) => c.evaluate(self, v, opts.batch_size)?,
                    None => self.evaluate_inputs(v, opts)?,
                };
                for (k, x) in vl {
                    logs.insert(format!("val_{k}"), x);
                }
            }
            logs.insert("learning_rate".into(), self.optimizer().learning_rate());
            for cb in callbacks.iter_mut() {
                if cb.on_epoch_end(epoch, &mut logs, self)? == Control::Stop {
                    stop = true;
                }
            }
            progress.epoch_end(epoch, opts.epochs, &logs);
            state.history.push(epoch, logs);
            epoch += 1;
            if let Some(dir) = &opts.checkpoint_dir {
                let at_end = TrainState {
                    epoch,
                    batch: 0,
                    steps_done: self.steps_done,
                    seed: self.seed,
                    running: Vec::new(),
                    history: state.history.clone(),
                };
                checkpoint::save(dir, self, &at_end)?;
            }
        }
        if !interrupted {
            for cb in callbacks.iter_mut() {
                cb.on_train_end(self)?;
            }
        }
        Ok(state.history)
    }

    /// [`Trainer::evaluate`] with the inputs rescaled first (as `fit` rescales training data).
    pub fn evaluate_with(&self, data: &Dataset, batch_size: usize, rescale: Option<f32>) -> Result<Logs> {
        self.evaluate_inputs(data, &FitOptions { batch_size, rescale, ..FitOptions::default() })
    }

    /// [`Trainer::evaluate`] with the input pipeline of `opts` (rescale, then preprocess) and
    /// its batch size.
    pub fn evaluate_inputs(&self, data: &Dataset, opts: &FitOptions) -> Result<Logs> {
        let mut config = BatchConfig::new(opts.batch_size.max(1)).prefetch(1);
        if let Some(r) = opts.rescale {
            config = config.rescale(r);
        }
        self.evaluate_batches(data, config, |t, x, y| t.test_step(&preprocessed(opts, x.clone())?, y, None))
    }
}
