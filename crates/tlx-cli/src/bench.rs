//! `tlx bench`: the speed of this machine on the work tlx does, in forms scripts depend on.
//!
//! - `tlx bench gemm --size N --threads T [--json]`: square f32 GEMM, `gflops` (2·N³ per
//!   product over the median time of the repetitions after a warm-up), `best_gflops` (over
//!   the least), `size`, `threads`, `seconds` (the median time of one product).
//! - `tlx bench model --arch vgg16 --batch 8 --threads 2 [--input-size 224] [--json]`:
//!   inference of an application (random weights: speed does not depend on them; no top unless
//!   `--include-top`), `ms_per_image`, `images_per_second`, `ms_per_batch`, `arch`, `batch`,
//!   `threads`, and `least_ms_per_image` (the fastest repetition: on a shared machine, where
//!   other tenants slow some repetitions down, the steadier figure to compare).
//! - `tlx bench train --arch … --batch … [--json]`: one training step of the application's
//!   frozen base with a new Dense head (Adam, sparse categorical cross-entropy),
//!   `ms_per_step`, `steps_per_second`, `images_per_second`, `least_ms_per_step`;
//!   `--unfreeze-from LAYER` trains
//!   the base from that layer on as well (fine-tuning its top, e.g. ResNet50's last stage
//!   from `conv5_block1_1_conv`).
//!
//! - `tlx bench model … --profile` also lists the time of every layer (fused chains as one),
//!   the least over the repetitions, slowest first (`layers` in the JSON).
//!
//! Each runs inside a dedicated rayon pool of `--threads` threads (`pool.install`).

use serde_json::json;
use std::process::ExitCode;
use std::time::Instant;
use tlx_cpu::gemm::{gemm, MatRef};
use tlx_models::{build, AppOptions, Arch, Pooling};
use tlx_nn::layers::Dense;
use tlx_nn::{Activation, Context, LayerSelector, LayerTime, Loss, Model};
use tlx_tensor::Tensor;
use tlx_train::{Metric, Trainer};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Square f32 matrix multiply C = A·B: GFLOP/s.
    #[command(
        after_help = "Examples:\n  tlx bench gemm --size 1024 --threads 2\n  tlx bench gemm --size 256 --threads 1 --json"
    )]
    Gemm(GemmArgs),
    /// Inference of an application (random weights): ms per image.
    #[command(
        after_help = "Examples:\n  tlx bench model --arch vgg16 --batch 8 --threads 2 --json\n  tlx bench model --arch mobilenetv2 --batch 1 --threads 1 --input-size 96"
    )]
    Model(ModelArgs),
    /// One training step of a frozen application base with a new Dense head: ms per step.
    #[command(
        after_help = "Examples:\n  tlx bench train --arch vgg16 --batch 32 --threads 2 --json\n  tlx bench train --arch resnet50 --batch 32 --unfreeze-from conv5_block1_1_conv"
    )]
    Train(ModelArgs),
}

#[derive(clap::Args)]
struct Common {
    /// Threads of the pool the work runs on (default: all cores).
    #[arg(long, value_name = "T")]
    threads: Option<usize>,
    /// Timed repetitions (the median is reported).
    #[arg(long, value_name = "N", default_value_t = 5)]
    reps: usize,
    /// Untimed runs first.
    #[arg(long, value_name = "N", default_value_t = 1)]
    warmup: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct GemmArgs {
    /// Rows and columns of the square matrices.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    size: usize,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// vgg16, vgg19, resnet50 or mobilenetv2.
    #[arg(long, value_name = "NAME")]
    arch: String,
    /// Images per forward pass (or training step).
    #[arg(long, value_name = "N", default_value_t = 1)]
    batch: usize,
    /// Input height and width.
    #[arg(long, value_name = "N", default_value_t = 224)]
    input_size: usize,
    /// Inference with the ImageNet classifier (default: no top, as the peers are measured).
    #[arg(long)]
    include_top: bool,
    /// MobileNetV2's width multiplier.
    #[arg(long, default_value_t = 1.0)]
    alpha: f64,
    /// Classes of the new head (bench train).
    #[arg(long, value_name = "N", default_value_t = 10)]
    classes: usize,
    /// bench train: train the base from this layer on too (the layers below stay frozen).
    #[arg(long, value_name = "LAYER")]
    unfreeze_from: Option<String>,
    /// bench model: also time every layer (a fused chain of layers as one) and list them,
    /// slowest first, each with the least of its times over the repetitions.
    #[arg(long)]
    profile: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<ExitCode, String> {
    match a.what {
        What::Gemm(g) => bench_gemm(g),
        What::Model(m) => bench_model(m, false),
        What::Train(m) => bench_model(m, true),
    }
}

/// The pool of `--threads` threads (default: all cores); checks `--reps`.
fn pool(c: &Common) -> Result<(tlx_cpu::ThreadPool, usize), String> {
    let threads = c.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if c.reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let pool = tlx_cpu::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    Ok((pool, threads))
}

/// The least of `v` (∞ when empty).
fn least(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Deterministic values in [lo, hi) (xorshift).
fn fill(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

fn bench_gemm(g: GemmArgs) -> Result<ExitCode, String> {
    let (pool, threads) = pool(&g.common)?;
    let n = g.size;
    if n == 0 || n > 16384 {
        return Err(format!("--size {n}: expected 1 to 16384"));
    }
    let (a, b) = (fill(n * n, 1, -1.0, 1.0), fill(n * n, 2, -1.0, 1.0));
    let mut c = vec![0f32; n * n];
    let flops = 2.0 * (n as f64).powi(3);
    let (seconds, least_seconds) = pool.install(|| {
        let mut once = || {
            let t = Instant::now();
            gemm(1.0, MatRef::row_major(&a, n, n), MatRef::row_major(&b, n, n), 0.0, &mut c, n);
            std::hint::black_box(&c);
            t.elapsed().as_secs_f64()
        };
        let mut first = once();
        for _ in 1..g.common.warmup.max(1) {
            first = once();
        }
        // Small products repeat inside each timed repetition so that it lasts about 20 ms.
        let inner = ((0.02 / first.max(1e-9)).ceil() as usize).clamp(1, 100_000);
        let times: Vec<f64> =
            (0..g.common.reps).map(|_| (0..inner).map(|_| once()).sum::<f64>() / inner as f64).collect();
        (median(times.clone()), least(&times))
    });
    let gflops = flops / seconds / 1e9;
    if g.common.json {
        println!(
            "{}",
            json!({"bench": "gemm", "size": n, "threads": threads, "reps": g.common.reps,
                   "seconds": seconds, "gflops": gflops, "best_gflops": flops / least_seconds / 1e9})
        );
    } else {
        println!("sgemm {n}x{n}x{n}, {threads} thread(s): {gflops:.1} GFLOP/s ({:.3} ms per product, median of {}; best {:.1} GFLOP/s)",
            seconds * 1e3, g.common.reps, flops / least_seconds / 1e9);
    }
    Ok(ExitCode::SUCCESS)
}

/// What `time_model` measured.
struct Timing {
    /// Median seconds per batch (or step).
    seconds: f64,
    /// The fastest repetition's seconds.
    least: f64,
    /// Total and trainable parameters.
    params: (usize, usize),
    /// With `--profile`: each layer's least time over the repetitions, in the order run.
    layers: Option<Vec<LayerTime>>,
}

/// Each layer's least time over `runs` (profiles of the same model, so the same layers in
/// the same order).
fn least_times(runs: Vec<Vec<LayerTime>>) -> Vec<LayerTime> {
    let mut runs = runs.into_iter();
    let mut least = runs.next().unwrap_or_default();
    for run in runs {
        for (l, r) in least.iter_mut().zip(run) {
            debug_assert_eq!(l.name, r.name);
            l.seconds = l.seconds.min(r.seconds);
        }
    }
    least
}

/// The timed part of `bench model` / `bench train`.
fn time_model(m: &ModelArgs, arch: Arch, train: bool) -> Result<Timing, String> {
    let s = m.input_size;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let top = m.include_top && !train;
    let mut options = AppOptions::new().include_top(top).input_shape([s, s, 3]).alpha(m.alpha);
    if train {
        options = options.pooling(Pooling::Avg);
    }
    let base = build(arch, &options).map_err(|x| e(&x))?;
    let x =
        Tensor::from_vec(fill(m.batch * s * s * 3, 3, 0.0, 255.0), [m.batch, s, s, 3]).map_err(|x| e(&x))?;
    let reps = m.common.reps;
    if !train {
        let (total, trainable, _) = base.param_counts();
        // As `Model::predict`, with the context's profile switched on if asked.
        let once = || -> Result<(f64, Option<Vec<LayerTime>>), String> {
            let _no_grad = tlx_tensor::no_grad();
            let mut ctx = Context::inference();
            ctx.profile = m.profile.then(Vec::new);
            let t = Instant::now();
            let y = tlx_cpu::keep_awake(|| base.forward(std::slice::from_ref(&x), &mut ctx))
                .map_err(|x| e(&x))?;
            std::hint::black_box(&y);
            Ok((t.elapsed().as_secs_f64(), ctx.profile))
        };
        for _ in 0..m.common.warmup {
            once()?;
        }
        let (times, profiles): (Vec<f64>, Vec<_>) =
            (0..reps).map(|_| once()).collect::<Result<Vec<_>, _>>()?.into_iter().unzip();
        let layers = m.profile.then(|| least_times(profiles.into_iter().flatten().collect()));
        return Ok(Timing {
            least: least(&times),
            seconds: median(times),
            params: (total, trainable),
            layers,
        });
    }
    if m.classes == 0 {
        return Err("--classes must be at least 1".into());
    }
    let mut model = Model::sequential("bench_transfer", &[s, s, 3]);
    model.add(base).map_err(|x| e(&x))?;
    model.add(Dense::new("head", m.classes, Activation::Softmax { axis: -1 })).map_err(|x| e(&x))?;
    let frozen = match &m.unfreeze_from {
        Some(name) => LayerSelector::Below(name.clone()),
        None => LayerSelector::Range(0, 1),
    };
    model.set_trainable_where(&frozen, false).map_err(|x| e(&x))?;
    let (total, trainable, _) = model.param_counts();
    let labels: Vec<i64> = (0..m.batch).map(|i| (i % m.classes) as i64).collect();
    let y = Tensor::from_vec(labels, [m.batch]).map_err(|x| e(&x))?;
    let adam = tlx_optim::Optimizer::adam(1e-3).map_err(|x| e(&x))?;
    let loss = Loss::from_keras(&json!("sparse_categorical_crossentropy")).map_err(|x| e(&x))?;
    let mut trainer = Trainer::compile(model, adam, loss, vec![Metric::Accuracy]).map_err(|x| e(&x))?;
    let mut once = || -> Result<f64, String> {
        let t = Instant::now();
        trainer.train_step(&x, &y, None).map_err(|x| e(&x))?;
        Ok(t.elapsed().as_secs_f64())
    };
    for _ in 0..m.common.warmup.max(1) {
        once()?;
    }
    let times = (0..reps).map(|_| once()).collect::<Result<Vec<_>, _>>()?;
    Ok(Timing { least: least(&times), seconds: median(times), params: (total, trainable), layers: None })
}

fn bench_model(m: ModelArgs, train: bool) -> Result<ExitCode, String> {
    let (pool, threads) = pool(&m.common)?;
    let arch = Arch::from_name(&m.arch).map_err(|e| e.to_string())?;
    if m.batch == 0 {
        return Err("--batch must be at least 1".into());
    }
    if train && m.profile {
        return Err("--profile is for bench model (inference) only".into());
    }
    let Timing { seconds, least, params: (params, trainable), layers } =
        pool.install(|| time_model(&m, arch, train))?;
    let per_image_ms = seconds * 1e3 / m.batch as f64;
    let ips = m.batch as f64 / seconds;
    let top = m.include_top && !train;
    if m.common.json {
        let mut o = json!({"bench": if train { "train" } else { "model" }, "arch": arch.name(),
            "batch": m.batch, "threads": threads, "input_size": m.input_size, "reps": m.common.reps,
            "ms_per_image": per_image_ms, "images_per_second": ips, "params": params,
            "least_ms_per_image": least * 1e3 / m.batch as f64});
        if train {
            o["ms_per_step"] = json!(seconds * 1e3);
            o["least_ms_per_step"] = json!(least * 1e3);
            o["steps_per_second"] = json!(1.0 / seconds);
            o["classes"] = json!(m.classes);
            o["trainable_params"] = json!(trainable);
        } else {
            o["ms_per_batch"] = json!(seconds * 1e3);
            o["include_top"] = json!(top);
        }
        if let Some(layers) = &layers {
            o["layers"] = layers
                .iter()
                .map(|l| json!({"name": l.name, "layers": l.layers, "ms": l.seconds * 1e3}))
                .collect();
        }
        println!("{o}");
    } else {
        let what = if train {
            if m.unfreeze_from.is_some() {
                "training step (top of the base + head)"
            } else {
                "training step (frozen base + head)"
            }
        } else if top {
            "inference"
        } else {
            "inference (no top)"
        };
        println!(
            "{} {what}, {s}x{s}, batch {}, {threads} thread(s): {:.1} ms per {}, {per_image_ms:.2} ms/image, {ips:.1} images/s (median of {}; least {:.2} ms/image)",
            arch.name(), m.batch, seconds * 1e3, if train { "step" } else { "batch" }, m.common.reps,
            least * 1e3 / m.batch as f64, s = m.input_size
        );
        if let Some(layers) = layers {
            print_profile(layers);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--profile` table: layers slowest first, with their share of the sum of the layers'
/// least times (which is at most the median batch time).
fn print_profile(mut layers: Vec<LayerTime>) {
    let total: f64 = layers.iter().map(|l| l.seconds).sum();
    layers.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    println!(
        "{:>10} {:>6}  layer (least time of each over the repetitions; fused chains joined by +)",
        "ms", "share"
    );
    for l in &layers {
        println!(
            "{:>10.3} {:>5.1}%  {}",
            l.seconds * 1e3,
            100.0 * l.seconds / total.max(f64::MIN_POSITIVE),
            l.name
        );
    }
    println!("{:>10.3} {:>5.1}%  sum of {} entries", total * 1e3, 100.0, layers.len());
}
