//! `tlx`: the command-line tool. Each subcommand lives in its own module; errors are one
//! clear line on stderr and a non-zero exit status, never a panic or backtrace.

mod conformance;
mod demo;
mod files;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Conformance(a) => conformance::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Inspect(a) => files::inspect(a),
        Command::Convert(a) => files::convert(a),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("tlx: error: {msg}");
            ExitCode::from(2)
        }
    }
}
