//! `tlx`: the command-line tool. Each subcommand lives in its own module; errors are one
//! clear line on stderr and a non-zero exit status, never a panic or backtrace.

mod bench;
mod conformance;
mod demo;
mod evaluate;
mod files;
mod images;
mod modelsrc;
mod predict;
mod train;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Large freed blocks are kept for the next allocation of their size (a training step's
/// activations and gradients) instead of going back to the kernel and faulting in again.
#[global_allocator]
static ALLOC: tlx_core::BlockCache = tlx_core::BlockCache::new();

#[derive(Parser)]
#[command(
    name = "tlx",
    version,
    about = "Transfer learning the Keras way, in Rust",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Keras conformance cases of every manifest.*.json in DIR.
    #[command(
        after_help = "Example:\n  tlx conformance ../shared/conformance/keras --kind layer --kind loss"
    )]
    Conformance(conformance::Args),
    /// Train a model (from a Keras model file or an architecture) on your data.
    #[command(
        after_help = "Examples:\n  tlx train --model model.keras --no-head --data images/ --epochs 5\n  tlx train --arch mobilenetv2 --input-size 96 --data images/ --validation-split 0.2"
    )]
    Train(train::Args),
    /// Transfer learning: a pretrained base, frozen, a new head; optionally fine-tune its top.
    #[command(
        after_help = "Examples:\n  tlx finetune --arch vgg16 --weights vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 \\\n      --data flowers/ --validation-split 0.2 --epochs 5 \\\n      --finetune-from block5 --finetune-epochs 5 --finetune-lr 1e-5 --augment flip=horizontal,rotation=10"
    )]
    Finetune(train::Args),
    /// The transfer experiment on Fashion-MNIST: task A, task B from scratch, B on A.
    #[command(
        after_help = "Examples:\n  tlx demo\n  tlx demo --json\n  tlx demo --data ../shared/data/fashion-mnist"
    )]
    Demo(demo::Args),
    /// Describe a weights or model file (.h5, .weights.h5, .keras, .safetensors, .npy).
    #[command(after_help = "Example:\n  tlx inspect vgg16_notop.h5\n  tlx inspect model.keras --json")]
    Inspect(files::InspectArgs),
    /// Convert any Keras weights/model file to safetensors (tensors named layer/weight).
    #[command(after_help = "Example:\n  tlx convert vgg16_notop.h5 vgg16_notop.safetensors")]
    Convert(files::ConvertArgs),
    /// Run a model file or an application on an .npy batch or images; print the top classes.
    #[command(
        after_help = "Examples:\n  tlx predict --arch vgg16 --weights vgg16_weights_tf_dim_ordering_tf_kernels.h5 \\\n      --input cat.jpg dog.png --output probs.npy --top 3\n  tlx predict --model model.keras --input x.npy --output y.npy"
    )]
    Predict(predict::Args),
    /// Evaluate a model file or an application on a labelled dataset: loss and metrics.
    #[command(
        after_help = "Examples:\n  tlx evaluate --model model.keras --data images/val --metrics accuracy,top5\n  tlx evaluate --model mnist.h5 --data fashion-mnist/ --rescale 1/255 --json\n  tlx evaluate --model model.keras --x x.npy --y y.npy --loss sparse_categorical_crossentropy"
    )]
    Evaluate(evaluate::Args),
    /// Measure speed on this machine: GEMM GFLOP/s, inference ms/image, training step time.
    #[command(
        after_help = "Examples:\n  tlx bench gemm --size 1024 --threads 2 --json\n  tlx bench model --arch vgg16 --batch 8 --threads 2 --json\n  tlx bench train --arch mobilenetv2 --batch 32 --input-size 96"
    )]
    Bench(bench::Args),
}

/// Restores the default SIGPIPE action, so `tlx inspect FILE | head` ends quietly instead of
/// panicking on a closed pipe (Rust ignores SIGPIPE by default).
fn quiet_broken_pipes() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL before any thread starts has no
    // memory-safety requirements.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    quiet_broken_pipes();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(2);
            }
            // One line: clap's message without its usage block.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let message = message.join(" ");
            eprintln!("tlx: error: {} (see tlx --help)", message.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        // `bench` runs on pools of its own, one per `--threads`.
        command @ Command::Bench(_) => run(command),
        // The others on a thread of the kernels' pool, as `Trainer::fit` runs: the many small
        // parallel operations of a pass then fork from a worker instead of waking this thread.
        command => tlx_cpu::on_worker(|| run(command)),
    };
    // The allocator's counters (hits, misses, peak), for benchmarks.
    if std::env::var_os("TLX_ALLOC_STATS").is_some() {
        eprintln!("alloc stats: {:?}", ALLOC.stats());
    }
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("tlx: error: {msg}");
            ExitCode::from(2)
        }
    }
}

/// Runs a command.
fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Conformance(a) => conformance::run(a),
        Command::Train(a) => train::run(a, train::Mode::Train),
        Command::Finetune(a) => train::run(a, train::Mode::Finetune),
        Command::Demo(a) => demo::run(a),
        Command::Inspect(a) => files::inspect(a),
        Command::Convert(a) => files::convert(a),
        Command::Predict(a) => predict::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Bench(a) => bench::run(a),
    }
}
