//! `tlx train` and `tlx finetune`: a base (an application with Keras weights, or any Keras
//! model file), a new head, the data (image folder, IDX, CIFAR-10, NPY), what to freeze, the
//! optimizer and schedule by name, augmentation, callbacks, checkpoints and `--resume`; an
//! optional second phase that unfreezes the top of the base and fine-tunes with a lower
//! learning rate. Writes the weights (safetensors, and a Keras 3 `model.weights.h5` that Keras
//! loads into the model of `model.json`), the History as CSV and JSON, and a PNG plot of the
//! curves into `--out`.

mod data;
mod spec;

use data::{load, DataOptions};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tlx_nn::layers::from_keras;
use tlx_nn::{LayerSelector, Loss, Model};
use tlx_optim::Optimizer;
use tlx_train::fit::{
    Callback, CsvLogger, EarlyStoppingCallback, InputTransform, ModelCheckpoint, ReduceLrCallback,
    TerminateOnNaN,
};
use tlx_train::{checkpoint, FeatureCache, FitOptions, History, Metric, Trainer, Validation, Verbosity};

#[derive(clap::Args, Clone)]
pub struct Args {
    /// An application as the base: vgg16, vgg19, resnet50, mobilenetv2 (without its top).
    #[arg(long, value_name = "NAME", conflicts_with = "model")]
    arch: Option<String>,
    /// Keras weights for --arch (any Keras .h5, .weights.h5, .keras; or tlx safetensors).
    /// Without it the base starts from random weights.
    #[arg(long, value_name = "FILE", requires = "arch")]
    weights: Option<PathBuf>,
    /// MobileNetV2 width multiplier.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Input height and width for --arch (default 224; image folders are resized to it).
    #[arg(long, value_name = "N")]
    input_size: Option<usize>,
    /// A Keras model file (.h5 from model.save, .keras) as the base, or as the whole model with --no-head.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Keep the --model only up to this layer (e.g. drop its classifier).
    #[arg(long, value_name = "LAYER", requires = "model")]
    base_until: Option<String>,
    /// The new head, before the final classifier: e.g. gap,dropout:0.2,dense:128:relu
    /// (default gap for image features, nothing for flat ones).
    #[arg(long, value_name = "SPEC")]
    head: Option<String>,
    /// Train the model as it is: no new head (the model's own output must fit the loss).
    #[arg(long)]
    no_head: bool,
    /// Number of classes (default: from the labels).
    #[arg(long)]
    classes: Option<usize>,
    /// Image folder (one sub-folder per class), IDX directory or CIFAR-10 directory.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Inputs and labels as .npy files (instead of --data).
    #[arg(long, value_name = "X.npy", requires = "y")]
    x: Option<PathBuf>,
    #[arg(long, value_name = "Y.npy", requires = "x")]
    y: Option<PathBuf>,
    /// Validation data (same kinds as --data; IDX/CIFAR read their test split).
    #[arg(long, value_name = "DIR")]
    val_data: Option<PathBuf>,
    /// Hold out this fraction of the training data for validation (Keras's rule).
    #[arg(long, value_name = "F")]
    validation_split: Option<f64>,
    /// Use at most N training examples.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// What to freeze: base (the whole base), none, or a selector: NAME[,NAME], glob:PATTERN,
    /// range:A..B, below:LAYER, from:LAYER, class:CLASS (default: base for finetune, none for train).
    #[arg(long, value_name = "WHAT")]
    freeze: Option<String>,
    /// Unfreeze this layer or block (e.g. block5, conv5, block_13) and everything after it,
    /// freezing everything before it.
    #[arg(long, value_name = "LAYER|BLOCK")]
    trainable_from: Option<String>,
    /// Optimizer: sgd, adagrad, rmsprop, adam, adamw, adamax, nadam.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// Learning rate (initial, with a schedule).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// More optimizer arguments: momentum=0.9,nesterov=true,weight_decay=1e-4,clipnorm=1.0
    #[arg(long, value_name = "K=V,...", default_value = "")]
    opt: String,
    /// Learning-rate schedule: exponential, inverse_time, polynomial, cosine, cosine_restarts,
    /// piecewise, onecycle, with arguments after a colon (cosine:alpha=0.1).
    #[arg(long, value_name = "NAME[:K=V,...]")]
    schedule: Option<String>,
    /// Loss (Keras name).
    #[arg(long, default_value = "sparse_categorical_crossentropy")]
    loss: String,
    /// Metrics, comma-separated (accuracy, top5, …).
    #[arg(long, default_value = "accuracy")]
    metrics: String,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Seed of initial weights, shuffles, augmentation and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Second phase: unfreeze from this layer or block ("all" for everything) and train more.
    #[arg(long, value_name = "LAYER|BLOCK")]
    finetune_from: Option<String>,
    /// Epochs of the second phase.
    #[arg(long, default_value_t = 0)]
    finetune_epochs: usize,
    /// Learning rate of the second phase (default: --lr / 10).
    #[arg(long)]
    finetune_lr: Option<f64>,
    /// Let BatchNormalization layers of the base train in the second phase (default: they
    /// stay frozen, in inference mode, as Keras's fine-tuning guide advises).
    #[arg(long)]
    train_bn: bool,
    /// Random augmentation of training images: rotation=15,shift=0.1,zoom=0.1,flip=horizontal
    #[arg(long, value_name = "K=V,...")]
    augment: Option<String>,
    /// Multiply inputs by this first (e.g. 0.00392 for 1/255).
    #[arg(long)]
    rescale: Option<f32>,
    /// preprocess_input mode applied to inputs: auto (the --arch's), caffe, torch, tf, none.
    #[arg(long, default_value = "auto")]
    preprocess: String,
    /// EarlyStopping arguments (monitor=val_loss,patience=3,restore_best_weights=true).
    #[arg(long, value_name = "K=V,...")]
    early_stopping: Option<String>,
    /// ReduceLROnPlateau arguments (factor=0.5,patience=2).
    #[arg(long, value_name = "K=V,...")]
    reduce_lr: Option<String>,
    /// Stop at the first NaN loss.
    #[arg(long)]
    terminate_on_nan: bool,
    /// Keep the best weights by validation loss in OUT/best.safetensors.
    #[arg(long)]
    checkpoint_best: bool,
    /// Output directory (weights, config, history, plot, checkpoints).
    #[arg(long, default_value = "tlx-run")]
    out: PathBuf,
    /// Also checkpoint every N steps (always at each epoch's end).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: u64,
    /// Continue from the latest checkpoint in OUT/checkpoints.
    #[arg(long)]
    resume: bool,
    /// Do not cache a frozen base's outputs.
    #[arg(long)]
    no_feature_cache: bool,
    /// 0: quiet, 1: progress bar (default when on a terminal), 2: one line per epoch.
    #[arg(long, default_value_t = 1)]
    verbose: u8,
    /// Print a JSON summary at the end.
    #[arg(long)]
    json: bool,
    /// Stop after N steps as if interrupted (for testing --resume).
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
}

/// Whether the command is `finetune` (base frozen by default) or `train`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Train,
    Finetune,
}

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The base model and what it is.
struct Base {
    model: Model,
    arch: Option<tlx_models::Arch>,
}

fn build_base(a: &Args) -> Result<Base, String> {
    if let Some(name) = &a.arch {
        let arch = tlx_models::Arch::from_name(name).map_err(|e| e.to_string())?;
        let size = a.input_size.unwrap_or(224);
        let mut opts = tlx_models::AppOptions::new().include_top(false).input_shape([size, size, 3]);
        if arch == tlx_models::Arch::MobileNetV2 {
            opts = opts.alpha(a.alpha);
        }
        let mut model = tlx_models::build(arch, &opts).map_err(|e| e.to_string())?;
        if let Some(w) = &a.weights {
            let is_safetensors = w.extension().is_some_and(|e| e == "safetensors");
            if is_safetensors {
                checkpoint::load_weights(&model, w).map_err(err(&w.display().to_string()))?;
            } else {
                model.load_keras_weights(w).map_err(|e| e.to_string())?;
            }
        }
        return Ok(Base { model, arch: Some(arch) });
    }
    if let Some(file) = &a.model {
        let mut model = Model::from_keras_file(file).map_err(|e| e.to_string())?;
        if let Some(layer) = &a.base_until {
            model = model.truncated(layer).map_err(|e| e.to_string())?;
        }
        return Ok(Base { model, arch: None });
    }
    Err("no model: give --arch NAME [--weights FILE] or --model FILE".into())
}

/// Resolves a layer or block name of the model (`block5` → `block5_conv1` for VGG).
fn resolve_layer(m: &Model, arch: Option<tlx_models::Arch>, name: &str) -> Result<String, String> {
    if m.all_layer_names().iter().any(|n| n == name) {
        return Ok(name.to_string());
    }
    if let Some(l) = arch.and_then(|a| a.block_start_layer(name)) {
        return Ok(l.to_string());
    }
    Err(format!("no layer or block '{name}' in the model"))
}

fn selector(text: &str, base_name: &str) -> Result<Option<LayerSelector>, String> {
    Ok(match text {
        "none" => None,
        "base" => Some(LayerSelector::Names(vec![base_name.to_string()])),
        other => Some(LayerSelector::parse(other).map_err(|e| e.to_string())?),
    })
}

/// The full model: the base (nested) and the head with a final classifier.
fn assemble(a: &Args, base: Model, classes: usize, loss: &Loss) -> Result<Model, String> {
    if a.no_head {
        return Ok(base);
    }
    let out_rank = base.output_shapes().first().map_or(0, |s| s.len());
    let spec = a.head.clone().unwrap_or_else(|| if out_rank == 4 { "gap".into() } else { String::new() });
    let input = base.inputs()[0].shape.clone();
    let mut m = Model::sequential_spec("tlx_model", input).with_seed(a.seed);
    m.add_boxed(Box::new(base)).map_err(|e| e.to_string())?;
    for (i, item) in spec.split(',').map(str::trim).filter(|s| !s.is_empty()).enumerate() {
        let v = spec::head_layer(item, i)?;
        let layer =
            from_keras(v["class_name"].as_str().unwrap_or(""), &v["config"]).map_err(|e| e.to_string())?;
        m.add_boxed(layer).map_err(|e| format!("--head {item}: {e}"))?;
    }
    let binary = matches!(loss.kind, tlx_nn::losses::LossKind::BinaryCrossentropy { .. });
    let (units, act) = if binary && classes <= 2 { (1, "sigmoid") } else { (classes, "softmax") };
    let out = from_keras("Dense", &json!({"name": "predictions", "units": units, "activation": act}))
        .map_err(|e| e.to_string())?;
    m.add_boxed(out).map_err(|e| e.to_string())?;
    Ok(m)
}

fn optimizer(a: &Args, lr: f64, steps: usize, epochs: usize) -> Result<Optimizer, String> {
    let lr_value = match &a.schedule {
        Some(s) => spec::schedule(s, lr, steps, epochs)?,
        None => json!(lr),
    };
    let cfg = spec::optimizer(&a.optimizer, lr_value, &a.opt)?;
    Optimizer::from_keras_config(&cfg).map_err(err("--optimizer"))
}

fn callbacks(a: &Args) -> Result<Vec<Box<dyn Callback>>, String> {
    let mut out: Vec<Box<dyn Callback>> = Vec::new();
    if let Some(s) = &a.early_stopping {
        let cfg = Value::Object(spec::key_values("--early-stopping", s)?);
        out.push(Box::new(EarlyStoppingCallback::from_keras_config(&cfg).map_err(err("--early-stopping"))?));
    }
    if let Some(s) = &a.reduce_lr {
        let cfg = Value::Object(spec::key_values("--reduce-lr", s)?);
        out.push(Box::new(ReduceLrCallback::from_keras_config(&cfg).map_err(err("--reduce-lr"))?));
    }
    if a.terminate_on_nan {
        out.push(Box::new(TerminateOnNaN::default()));
    }
    if a.checkpoint_best {
        let path = a.out.join("best.safetensors");
        let monitor = if a.validation_split.is_some() || a.val_data.is_some() { "val_loss" } else { "loss" };
        out.push(Box::new(
            ModelCheckpoint::new(
                path.to_str().unwrap_or("best.safetensors"),
                monitor,
                tlx_train::callbacks::Mode::Auto,
                true,
            )
            .map_err(err("--checkpoint-best"))?,
        ));
    }
    out.push(Box::new(CsvLogger::new(a.out.join("log.csv"), a.resume)));
    Ok(out)
}

fn preprocess(a: &Args, arch: Option<tlx_models::Arch>) -> Result<Option<InputTransform>, String> {
    let mode = match (a.preprocess.as_str(), arch) {
        ("none", _) | ("auto", None) => return Ok(None),
        ("auto", Some(arch)) => arch.preprocess_mode(),
        (name, _) => tlx_models::PreprocessMode::from_name(name).map_err(err("--preprocess"))?,
    };
    let f: InputTransform = Arc::new(move |x: &tlx_tensor::Tensor| {
        tlx_models::preprocess_input(x, mode)
            .map_err(|e| tlx_tensor::Error::invalid("preprocess_input", e.to_string()))
    });
    Ok(Some(f))
}

fn write_outputs(out: &Path, t: &Trainer, history: &History) -> Result<(), String> {
    std::fs::create_dir_all(out).map_err(err(&out.display().to_string()))?;
    checkpoint::save_weights(t.model(), &out.join("model.safetensors")).map_err(|e| e.to_string())?;
    let cfg = serde_json::to_string_pretty(&t.model().to_keras_config()).expect("JSON");
    weights_tools::safetensors::write_atomic(&out.join("model.json"), cfg.as_bytes())
        .map_err(|e| e.to_string())?;
    t.model().save_keras_weights(out.join("model.weights.h5")).map_err(|e| e.to_string())?;
    history.save(out).map_err(|e| e.to_string())?;
    if !history.logs.is_empty() {
        tlx_train::plot::save_history_png(history, &out.join("history.png")).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn run(a: Args, mode: Mode) -> Result<ExitCode, String> {
    let base = build_base(&a)?;
    let arch = base.arch;
    let image_size = match base.model.inputs()[0].shape.as_slice() {
        [_, Some(h), Some(w), _] => (*h, *w),
        _ => (a.input_size.unwrap_or(224), a.input_size.unwrap_or(224)),
    };
    let data = load(&DataOptions {
        data: a.data.clone(),
        val_data: a.val_data.clone(),
        x: a.x.clone(),
        y: a.y.clone(),
        validation_split: a.validation_split,
        image_size,
        seed: a.seed,
        limit: a.limit,
    })?;
    let loss = Loss::from_keras(&json!(a.loss)).map_err(err("--loss"))?;
    let classes = match (a.classes, data.classes) {
        (Some(c), _) | (None, Some(c)) => c,
        (None, None) => {
            return Err("cannot tell the number of classes from the labels: give --classes".into())
        }
    };
    let base_name = base.model.name().to_string();
    let mut model = assemble(&a, base.model, classes, &loss)?;
    let default_freeze = if mode == Mode::Finetune && !a.no_head { "base" } else { "none" };
    if let Some(sel) = selector(a.freeze.as_deref().unwrap_or(default_freeze), &base_name)? {
        model.set_trainable_where(&sel, false).map_err(err("--freeze"))?;
    }
    if let Some(from) = &a.trainable_from {
        let l = resolve_layer(&model, arch, from)?;
        model.fine_tune_from(&l).map_err(err("--trainable-from"))?;
    }
    let metrics: Vec<Metric> = a
        .metrics
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| Metric::from_name(m).map_err(err("--metrics")))
        .collect::<Result<_, _>>()?;
    let steps = data.train.len().div_ceil(a.batch_size.max(1));
    let mut t = Trainer::compile(model, optimizer(&a, a.lr, steps, a.epochs)?, loss, metrics)
        .map_err(|e| e.to_string())?;
    let verbose = match a.verbose {
        0 => Verbosity::Silent,
        2 => Verbosity::EpochLines,
        _ => Verbosity::Auto,
    };
    let augment = a.augment.as_deref().map(spec::augment).transpose()?;
    let ckpt = a.out.join("checkpoints");
    let opts = FitOptions {
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        validation: data.val.clone().map_or(Validation::None, Validation::Data),
        verbose,
        feature_cache: if a.no_feature_cache { FeatureCache::Off } else { FeatureCache::Auto },
        augment: augment.map(|aug| (aug, a.seed.wrapping_add(17))),
        rescale: a.rescale,
        preprocess: preprocess(&a, arch)?,
        checkpoint_dir: Some(ckpt.join("phase1")),
        checkpoint_every_steps: a.checkpoint_every,
        resume: a.resume,
        stop_after_steps: a.stop_after_steps,
        ..FitOptions::default()
    };
    std::fs::create_dir_all(&a.out).map_err(err(&a.out.display().to_string()))?;
    if verbose != Verbosity::Silent {
        eprintln!(
            "tlx {}: {} ({} training examples{})",
            if mode == Mode::Train { "train" } else { "finetune" },
            data.description,
            data.train.len(),
            data.val.as_ref().map_or(String::new(), |v| format!(", {} validation", v.len()))
        );
        let (total, trainable, frozen) = t.model().param_counts();
        eprintln!("model: {total} parameters, {trainable} trainable, {frozen} frozen");
    }
    let phase2 = a.finetune_epochs > 0;
    let phase2_started =
        a.resume && checkpoint::latest(&ckpt.join("phase2")).map_err(|e| e.to_string())?.is_some();
    let mut cbs = callbacks(&a)?;
    let mut history = History::default();
    let mut interrupted = false;
    let mut total_steps = 0;
    if !phase2_started {
        history = t.fit(&data.train, &opts, &mut cbs).map_err(|e| e.to_string())?;
        interrupted = a.stop_after_steps.is_some_and(|n| t.steps_done >= n);
        total_steps = t.steps_done;
    }
    if phase2 && !interrupted {
        match a.finetune_from.as_deref().unwrap_or("all") {
            "all" => {
                t.model_mut().set_trainable_where(&LayerSelector::All, true).map_err(|e| e.to_string())?;
            }
            from => {
                let l = resolve_layer(t.model(), arch, from)?;
                t.model_mut().fine_tune_from(&l).map_err(err("--finetune-from"))?;
            }
        }
        let has_bn = t
            .model()
            .all_layer_names()
            .iter()
            .any(|n| t.model().find_layer(n).is_some_and(|l| l.class_name() == "BatchNormalization"));
        if !a.train_bn && has_bn {
            t.model_mut()
                .set_trainable_where(&LayerSelector::Class("BatchNormalization".into()), false)
                .map_err(|e| e.to_string())?;
        }
        let lr2 = a.finetune_lr.unwrap_or(a.lr / 10.0);
        t.recompile(optimizer(&a, lr2, steps, a.finetune_epochs)?);
        let opts2 = FitOptions {
            epochs: a.epochs + a.finetune_epochs,
            initial_epoch: a.epochs,
            checkpoint_dir: Some(ckpt.join("phase2")),
            resume: a.resume && phase2_started,
            stop_after_steps: a
                .stop_after_steps
                .map(|n| n.saturating_sub(t.steps_done))
                .filter(|_| !phase2_started),
            ..opts.clone()
        };
        if verbose != Verbosity::Silent {
            let (_, trainable, _) = t.model().param_counts();
            eprintln!("fine-tuning: {trainable} trainable parameters, learning rate {lr2}");
        }
        let h2 = t.fit(&data.train, &opts2, &mut cbs).map_err(|e| e.to_string())?;
        interrupted = opts2.stop_after_steps.is_some_and(|n| t.steps_done >= n);
        total_steps += t.steps_done;
        if phase2_started {
            // The first phase's epochs are in its last checkpoint.
            if let Some(c) = checkpoint::latest(&ckpt.join("phase1")).map_err(|e| e.to_string())? {
                history = checkpoint::read_state(&c).map_err(|e| e.to_string())?.history;
            }
        }
        history.extend(&h2);
    }
    if interrupted {
        println!(
            "stopped after {} steps as asked; checkpoints in {}: rerun with --resume to continue",
            total_steps,
            ckpt.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    write_outputs(&a.out, &t, &history)?;
    let last = history.logs.last().cloned().unwrap_or_default();
    if a.json {
        let mut o = serde_json::Map::new();
        o.insert("out".into(), json!(a.out.display().to_string()));
        o.insert("epochs".into(), json!(history.epochs.len()));
        o.insert("steps".into(), json!(total_steps));
        for (k, v) in &last {
            o.insert(k.clone(), json!(v));
        }
        println!("{}", Value::Object(o));
    } else {
        println!(
            "done: {} epochs; {}; outputs in {}",
            history.epochs.len(),
            tlx_train::fit::progress::format_logs(&last),
            a.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
