//! `tlx evaluate`: a model file (or an application with its weights) on a labelled dataset —
//! an image folder, MNIST-style IDX files, CIFAR-10/100 binary batches, or `--x`/`--y` `.npy`
//! arrays — with a loss and metrics, printed as Keras prints `model.evaluate` logs (or one
//! JSON object).

use crate::modelsrc::{self, Loaded, ModelArgs};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use tlx_data::folder::{image_dataset_from_directory, ColorMode, FolderOptions};
use tlx_data::resize::Interpolation;
use tlx_data::{BatchConfig, Dataset, Split};
use tlx_optim::Optimizer;
use tlx_train::metrics::RunningMean;
use tlx_train::{Metric, Trainer};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    src: ModelArgs,
    /// A dataset folder: images in one sub-folder per class, MNIST-style IDX files, or CIFAR-10
    /// / CIFAR-100 binary batches (recognised by their file names).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["x", "y"], required_unless_present = "x")]
    data: Option<PathBuf>,
    /// Inputs as .npy [N, ...] (with --y).
    #[arg(long, value_name = "X.npy", requires = "y")]
    x: Option<PathBuf>,
    /// Labels as .npy: class indices [N] or one-hot / targets [N, K] (with --x).
    #[arg(long, value_name = "Y.npy", requires = "x")]
    y: Option<PathBuf>,
    /// For IDX and CIFAR folders: the test or the train split.
    #[arg(long, value_name = "SPLIT", default_value = "test")]
    split: String,
    /// For image folders: resizing as image_dataset_from_directory (bilinear, nearest, bicubic).
    #[arg(long, value_name = "METHOD", default_value = "bilinear")]
    interpolation: String,
    /// Loss: auto (binary cross-entropy for one output unit, categorical otherwise) or a Keras
    /// loss name (sparse_categorical_crossentropy, mse, …).
    #[arg(long, value_name = "NAME", default_value = "auto")]
    loss: String,
    /// Metrics, comma-separated (accuracy, top5, top_k:3, categorical_accuracy, mse, …).
    #[arg(long, value_name = "LIST", default_value = "accuracy")]
    metrics: String,
    /// Examples per batch.
    #[arg(long, value_name = "N", default_value_t = 32)]
    batch_size: usize,
    /// Evaluate only the first N examples.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Print one JSON object: loss, the metrics, examples, seconds.
    #[arg(long)]
    json: bool,
}

fn has_any(dir: &Path, names: &[&str]) -> bool {
    names.iter().any(|n| dir.join(n).is_file())
}

/// The dataset in `dir`, recognised by its files.
fn load_dir(a: &Args, dir: &Path, m: &Loaded) -> Result<Dataset, String> {
    if !dir.is_dir() {
        return Err(format!("{}: no such directory", dir.display()));
    }
    let split = match a.split.as_str() {
        "test" => Split::Test,
        "train" => Split::Train,
        s => return Err(format!("--split '{s}': expected test or train")),
    };
    let e = |e: tlx_data::Error| e.to_string();
    let idx = ["images-idx3-ubyte", "images-idx3-ubyte.gz"];
    let idx_names: Vec<String> =
        ["t10k", "train"].iter().flat_map(|p| idx.iter().map(move |s| format!("{p}-{s}"))).collect();
    if idx_names.iter().any(|n| dir.join(n).is_file()) {
        return tlx_data::idx::load_mnist(dir, split).map_err(e);
    }
    if has_any(dir, &["test_batch.bin", "data_batch_1.bin"]) {
        return tlx_data::cifar::load_cifar10(dir, split).map_err(e);
    }
    if has_any(dir, &["test.bin", "train.bin"]) {
        return tlx_data::cifar::load_cifar100(dir, split, true).map_err(e);
    }
    let (h, w) =
        m.input_hw.ok_or("the model's input size is not fixed: pass --input-size HxW for the images")?;
    let color_mode = match m.channels.unwrap_or(3) {
        1 => ColorMode::Grayscale,
        3 => ColorMode::Rgb,
        4 => ColorMode::Rgba,
        c => return Err(format!("image folders can feed models with 1, 3 or 4 channels, not {c}")),
    };
    let opts = FolderOptions {
        image_size: (h, w),
        color_mode,
        interpolation: Interpolation::from_name(&a.interpolation).map_err(e)?,
        shuffle: false,
        ..FolderOptions::default()
    };
    image_dataset_from_directory(dir, &opts).map_err(e)
}

/// Reshapes examples to the model's input when only the layout differs (e.g. 28×28×1 → 784).
fn fit_shape(ds: Dataset, m: &Loaded) -> Result<Dataset, String> {
    let spec = m.model.inputs().first().map(|i| i.shape.clone()).unwrap_or_default();
    let want: Option<Vec<usize>> = spec.iter().skip(1).copied().collect();
    match want {
        Some(w)
            if w != ds.example_shape()
                && w.iter().product::<usize>() == ds.example_shape().iter().product::<usize>() =>
        {
            ds.reshape_examples(&w).map_err(|e| e.to_string())
        }
        _ => Ok(ds),
    }
}

pub fn run(a: Args) -> Result<ExitCode, String> {
    if a.batch_size == 0 {
        return Err("--batch-size must be at least 1".into());
    }
    let metrics: Vec<Metric> = a
        .metrics
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Metric::from_name(s).map_err(|e| format!("--metrics: {e}")))
        .collect::<Result<_, _>>()?;
    let start = Instant::now();
    let m = modelsrc::load(&a.src)?;
    let width = m.model.output_shapes().first().and_then(|s| s.last().copied().flatten()).unwrap_or(1);
    let loss_name = match a.loss.as_str() {
        "auto" if width == 1 => "binary_crossentropy",
        "auto" => "categorical_crossentropy",
        l => l,
    };
    let loss =
        tlx_nn::Loss::from_keras(&Value::String(loss_name.into())).map_err(|e| format!("--loss: {e}"))?;
    let ds = match (&a.data, &a.x, &a.y) {
        (Some(dir), _, _) => load_dir(&a, dir, &m)?,
        (None, Some(x), Some(y)) => tlx_data::arrays::load_npy(x, y).map_err(|e| e.to_string())?,
        _ => return Err("give --data DIR, or --x X.npy with --y Y.npy".into()),
    };
    let ds = match a.limit {
        Some(n) => ds.take(n),
        None => ds,
    };
    if ds.is_empty() {
        return Err("the dataset has no examples".into());
    }
    let ds = fit_shape(ds, &m)?;
    let sgd = Optimizer::sgd(0.01, 0.0, false).map_err(|e| e.to_string())?;
    let prep = m.prep;
    let trainer = Trainer::compile(m.model, sgd, loss, metrics).map_err(|e| e.to_string())?;

    let batches = ds.batches(BatchConfig::new(a.batch_size).prefetch(1)).map_err(|e| e.to_string())?;
    let mut loss_mean = RunningMean::default();
    let mut means = vec![RunningMean::default(); trainer.metrics().len()];
    let mut examples = 0usize;
    for batch in batches.epoch(0) {
        let b = batch.map_err(|e| e.to_string())?;
        let x = prep.apply(b.x)?;
        let y = trainer.targets_for(&b.y).map_err(|e| e.to_string())?;
        let out = trainer.test_step(&x, &y, None).map_err(|e| e.to_string())?;
        loss_mean.add(out.loss, out.batch_size as f64);
        examples += out.batch_size;
        for (mean, vals) in means.iter_mut().zip(&out.metrics) {
            vals.iter().for_each(|v| mean.add(*v, 1.0));
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let mut logs: Vec<(String, f64)> = vec![("loss".into(), loss_mean.mean())];
    logs.extend(trainer.metrics().iter().zip(&means).map(|(k, v)| (k.log_name(), v.mean())));
    if a.json {
        let mut o = Map::new();
        for (k, v) in &logs {
            o.insert(k.clone(), if v.is_finite() { json!(v) } else { Value::Null });
        }
        o.insert("examples".into(), json!(examples));
        o.insert("seconds".into(), json!(seconds));
        println!("{}", Value::Object(o));
    } else {
        let line: Vec<String> = logs.iter().map(|(k, v)| format!("{k}: {v:.4}")).collect();
        println!("{}", line.join(" - "));
        eprintln!("tlx evaluate: {examples} examples in {seconds:.2} s");
    }
    Ok(ExitCode::SUCCESS)
}
