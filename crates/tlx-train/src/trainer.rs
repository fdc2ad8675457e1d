//! [`Trainer`]: a model compiled with an optimizer, a loss and metrics (Keras's compiled
//! model), and the single steps everything else is built on: `train_step` (forward in training
//! mode, loss with regularization, backward, one optimizer update, constraints), `test_step`,
//! and batched `evaluate` / `predict`.
//!
//! Keras details kept: the loss reported by a step includes the weight and activity
//! penalties; when the output comes straight out of a softmax/sigmoid and the loss is the
//! matching cross-entropy, the loss is computed on the logits (the TensorFlow backend's
//! shortcut, no clipping); only weights of trainable layers train, and changing which weights
//! train needs a new `compile` (as in Keras 3, where it silently does not take effect).

use crate::error::{Error, Result};
use crate::metrics::{Metric, RunningMean};
use crate::Logs;
use std::collections::HashSet;
use tlx_data::{BatchConfig, Dataset};
use tlx_nn::losses::LossKind;
use tlx_nn::{Context, Layer, Logits, LogitsKind, Loss, Model};
use tlx_optim::Optimizer;
use tlx_tensor::{Tensor, TensorId};

/// What one step computed.
#[derive(Clone, Debug)]
pub struct StepOutput {
    /// The step's loss (regularization included).
    pub loss: f64,
    /// Examples in the batch.
    pub batch_size: usize,
    /// Per metric, per sample values.
    pub metrics: Vec<Vec<f64>>,
}

/// A model compiled for training.
pub struct Trainer {
    model: Model,
    optimizer: Optimizer,
    loss: Loss,
    metrics: Vec<Metric>,
    /// The weights the optimizer was built on (identity), once built.
    built_on: Option<Vec<TensorId>>,
    /// Seed of per-step randomness (dropout): step `s` uses `mix(seed, s)`.
    pub seed: u64,
    /// Training steps run so far (for the per-step seeds).
    pub steps_done: u64,
}

/// SplitMix64 of two words (independent per-step seeds).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Trainer {
    /// Compiles `model` with an optimizer (fresh: it attaches to the trainable weights at the
    /// first step), a loss and metrics.
    pub fn compile(model: Model, optimizer: Optimizer, loss: Loss, metrics: Vec<Metric>) -> Result<Trainer> {
        if model.output_shapes().len() != 1 {
            return Err(Error::Invalid(format!(
                "model '{}' has {} outputs; training supports single-output models",
                model.name(),
                model.output_shapes().len()
            )));
        }
        Ok(Trainer { model, optimizer, loss, metrics, built_on: None, seed: 0, steps_done: 0 })
    }

    /// Compiles with Keras JSON forms: optimizer `{class_name, config}`, loss name or object,
    /// metric names.
    pub fn compile_keras(
        model: Model,
        optimizer: &serde_json::Value,
        loss: &serde_json::Value,
        metrics: &[&str],
    ) -> Result<Trainer> {
        let optimizer = Optimizer::from_keras_config(optimizer)?;
        let loss = Loss::from_keras(loss)?;
        let metrics = metrics.iter().map(|m| Metric::from_name(m)).collect::<Result<_>>()?;
        Trainer::compile(model, optimizer, loss, metrics)
    }

    /// Compiles again with a new optimizer (after freezing or unfreezing, or to change the
    /// learning rate): the weights stay, the optimizer starts fresh.
    pub fn recompile(&mut self, optimizer: Optimizer) {
        self.optimizer = optimizer;
        self.built_on = None;
    }

    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The model, mutably (freezing changes need [`Trainer::recompile`] to take effect).
    pub fn model_mut(&mut self) -> &mut Model {
        &mut self.model
    }

    /// Gives the model back.
    pub fn into_model(self) -> Model {
        self.model
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Optimizer {
        &self.optimizer
    }

    /// The optimizer, mutably (learning-rate callbacks).
    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.optimizer
    }

    /// The loss.
    pub fn loss(&self) -> &Loss {
        &self.loss
    }

    /// The metrics.
    pub fn metrics(&self) -> &[Metric] {
        &self.metrics
    }

    /// Attaches the optimizer to the trainable weights if it is not yet, and checks that the
    /// set of trainable weights has not changed since.
    pub fn prepare(&mut self) -> Result<Vec<(String, Tensor)>> {
        self.model.sync_requires_grad()?;
        let trainable = self.model.trainable_weights();
        let ids: Vec<TensorId> = trainable.iter().map(|(_, t)| t.id()).collect();
        match &self.built_on {
            None => {
                if !self.optimizer.is_built() && !trainable.is_empty() {
                    self.optimizer.build_named(&trainable)?;
                }
                self.built_on = Some(ids);
            }
            Some(before) if *before != ids => {
                return Err(Error::Invalid(format!(
                    "the trainable weights of model '{}' changed since the optimizer was built ({} then, {} now): \
                     compile again with a new optimizer after freezing or unfreezing layers",
                    self.model.name(),
                    before.len(),
                    ids.len()
                )))
            }
            Some(_) => {}
        }
        Ok(trainable)
    }

    /// The loss of predictions `out` against `y`, on the logits when Keras's TF backend would.
    pub fn data_loss(
        &self,
        out: &(Tensor, Option<Logits>),
        y: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (pred, logits) = out;
        let on_logits = match (&self.loss.kind, logits) {
            (LossKind::CategoricalCrossentropy { from_logits: false, .. }, Some(l))
            | (LossKind::SparseCategoricalCrossentropy { from_logits: false, .. }, Some(l))
                if l.kind == LogitsKind::Softmax =>
            {
                Some(l)
            }
            (LossKind::BinaryCrossentropy { from_logits: false, .. }, Some(l))
                if l.kind == LogitsKind::Sigmoid =>
            {
                Some(l)
            }
            _ => None,
        };
        Ok(match (on_logits, self.loss.on_logits()) {
            (Some(l), Some(loss)) => loss.compute(y, &l.values, sample_weight)?,
            _ => self.loss.compute(y, pred, sample_weight)?,
        })
    }

    fn metric_values(&self, y: &Tensor, pred: &Tensor) -> Result<Vec<Vec<f64>>> {
        self.metrics.iter().map(|m| m.per_sample(y, pred)).collect()
    }

    /// One training step on a batch: returns the loss (penalties included) and metrics.
    pub fn train_step(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<StepOutput> {
        let batch_size = x.dims().first().copied().unwrap_or(1);
        self.step_on(batch_size, y, sample_weight, |m, ctx| {
            Ok(m.forward_with_logits(std::slice::from_ref(x), ctx)?.swap_remove(0))
        })
    }

    /// A training step whose predictions come from `forward` (the whole model, or the head on
    /// cached features).
    pub(crate) fn step_on(
        &mut self,
        batch_size: usize,
        y: &Tensor,
        sample_weight: Option<&Tensor>,
        forward: impl FnOnce(&Model, &mut Context) -> Result<(Tensor, Option<Logits>)> + Send,
    ) -> Result<StepOutput> {
        // The pool's other threads kept awake through the step's many parallel operations.
        tlx_cpu::keep_awake(|| self.step_here(batch_size, y, sample_weight, forward))
    }

    fn step_here(
        &mut self,
        batch_size: usize,
        y: &Tensor,
        sample_weight: Option<&Tensor>,
        forward: impl FnOnce(&Model, &mut Context) -> Result<(Tensor, Option<Logits>)>,
    ) -> Result<StepOutput> {
        let trainable = self.prepare()?;
        let mut ctx = Context::training(mix(self.seed, self.steps_done));
        let out = forward(&self.model, &mut ctx)?;
        let loss = self.total_loss(&out, y, sample_weight, &mut ctx)?;
        let value = loss.item()?;
        let metrics = self.metric_values(y, &out.0)?;
        drop(out);
        if !trainable.is_empty() && loss.requires_grad() {
            // Buffers freed by one step's update (the gradients, dropped by `zero_grad`) serve
            // the next one's backward pass (opened after the forward pass, whose activations
            // would otherwise stay in the pool through the backward pass).
            let _recycling = self.model.recycling();
            loss.backward()?;
            drop(loss);
            let params: Vec<Tensor> = trainable.iter().map(|(_, t)| t.clone()).collect();
            self.optimizer.apply(&params)?;
            for p in &params {
                p.zero_grad();
            }
            self.model.apply_constraints()?;
        }
        self.steps_done += 1;
        Ok(StepOutput { loss: value, batch_size, metrics })
    }

    /// The data loss plus weight penalties and the activity penalties the pass collected.
    fn total_loss(
        &self,
        out: &(Tensor, Option<Logits>),
        y: &Tensor,
        sample_weight: Option<&Tensor>,
        ctx: &mut Context,
    ) -> Result<Tensor> {
        let mut loss = self.data_loss(out, y, sample_weight)?;
        if let Some(r) = self.model.regularization_loss()? {
            loss = loss.add(&r)?;
        }
        for a in std::mem::take(&mut ctx.losses) {
            loss = loss.add(&a)?;
        }
        Ok(loss)
    }

    /// One evaluation step (inference mode, no gradients).
    pub fn test_step(&self, x: &Tensor, y: &Tensor, sample_weight: Option<&Tensor>) -> Result<StepOutput> {
        let batch_size = x.dims().first().copied().unwrap_or(1);
        self.test_on(batch_size, y, sample_weight, |m, ctx| {
            Ok(m.forward_with_logits(std::slice::from_ref(x), ctx)?.swap_remove(0))
        })
    }

    /// An evaluation step whose predictions come from `forward`.
    pub(crate) fn test_on(
        &self,
        batch_size: usize,
        y: &Tensor,
        sample_weight: Option<&Tensor>,
        forward: impl FnOnce(&Model, &mut Context) -> Result<(Tensor, Option<Logits>)> + Send,
    ) -> Result<StepOutput> {
        tlx_cpu::keep_awake(|| {
            let _g = tlx_tensor::no_grad();
            let mut ctx = Context::inference();
            let out = forward(&self.model, &mut ctx)?;
            let loss = self.total_loss(&out, y, sample_weight, &mut ctx)?;
            Ok(StepOutput { loss: loss.item()?, batch_size, metrics: self.metric_values(y, &out.0)? })
        })
    }

    /// Loss and metrics over a dataset (Keras's `evaluate`), keys `loss` and metric names.
    pub fn evaluate(&self, data: &Dataset, batch_size: usize) -> Result<Logs> {
        self.evaluate_config(data, BatchConfig::new(batch_size).prefetch(1))
    }

    /// [`Trainer::evaluate`] with a batch configuration (e.g. a rescale of the inputs).
    pub fn evaluate_config(&self, data: &Dataset, config: BatchConfig) -> Result<Logs> {
        self.evaluate_batches(data, config, |t, x, y| t.test_step(x, y, None))
    }

    /// Running means of `step` over a dataset's batches (on a thread of the kernels' pool,
    /// as in `fit`).
    pub(crate) fn evaluate_batches(
        &self,
        data: &Dataset,
        config: BatchConfig,
        step: impl Fn(&Trainer, &Tensor, &Tensor) -> Result<StepOutput> + Send,
    ) -> Result<Logs> {
        tlx_cpu::on_worker(|| self.evaluate_batches_here(data, config, step))
    }

    fn evaluate_batches_here(
        &self,
        data: &Dataset,
        config: BatchConfig,
        step: impl Fn(&Trainer, &Tensor, &Tensor) -> Result<StepOutput>,
    ) -> Result<Logs> {
        let batches = data.batches(config)?;
        let mut loss = RunningMean::default();
        let mut metrics = vec![RunningMean::default(); self.metrics.len()];
        for batch in batches.epoch(0) {
            let b = batch?;
            let y = self.targets_for(&b.y)?;
            let out = step(self, &b.x, &y)?;
            loss.add(out.loss, out.batch_size as f64);
            for (m, vals) in metrics.iter_mut().zip(&out.metrics) {
                for v in vals {
                    m.add(*v, 1.0);
                }
            }
        }
        let mut logs = Logs::new();
        logs.insert("loss".into(), loss.mean());
        for (m, r) in self.metrics.iter().zip(&metrics) {
            logs.insert(m.log_name(), r.mean());
        }
        Ok(logs)
    }

    /// Predictions over a dataset, in order, concatenated (inference mode).
    pub fn predict(&self, data: &Dataset, batch_size: usize) -> Result<Tensor> {
        tlx_cpu::on_worker(|| self.predict_here(data, batch_size))
    }

    fn predict_here(&self, data: &Dataset, batch_size: usize) -> Result<Tensor> {
        let batches = data.batches(BatchConfig::new(batch_size).prefetch(1))?;
        let mut outs = Vec::new();
        for batch in batches.epoch(0) {
            outs.push(self.model.predict(&batch?.x)?);
        }
        if outs.is_empty() {
            return Err(Error::Data("predict on an empty dataset".into()));
        }
        Ok(Tensor::concat(&outs, 0)?)
    }

    /// Targets as the loss wants them: class indices stay integers for sparse losses and
    /// become one-hot rows for categorical ones; binary losses with one output get `[b, 1]`.
    pub fn targets_for(&self, y: &Tensor) -> Result<Tensor> {
        let width = self.model.output_shapes()[0].last().copied().flatten().unwrap_or(1);
        let is_int = !matches!(y.dtype(), tlx_tensor::DType::F32 | tlx_tensor::DType::F64);
        Ok(match (&self.loss.kind, is_int, y.rank()) {
            (LossKind::CategoricalCrossentropy { .. }, true, 1) => {
                Tensor::one_hot(y, width, tlx_tensor::DType::F32)?
            }
            (LossKind::SparseCategoricalCrossentropy { .. }, _, _) => y.clone(),
            (_, true, 1) if width == 1 => y.to_dtype(tlx_tensor::DType::F32)?.unsqueeze(-1)?,
            (_, true, 1) => Tensor::one_hot(y, width, tlx_tensor::DType::F32)?,
            _ => y.clone(),
        })
    }

    /// Ids of the weights that currently train (for callers that cache by identity).
    pub fn trainable_ids(&self) -> HashSet<TensorId> {
        self.model.trainable_weights().iter().map(|(_, t)| t.id()).collect()
    }
}
