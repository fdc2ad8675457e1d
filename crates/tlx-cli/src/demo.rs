//! `tlx demo`: the classic transfer experiment on Fashion-MNIST (task A; task B from scratch;
//! B on A frozen, then fine-tuned), on the subset bundled with the repository or, with
//! `--data DIR`, on the full IDX set. Prints a table of test accuracies and times, or one JSON
//! object with `--json`.

use std::path::PathBuf;
use std::process::ExitCode;
use tlx_train::transfer_demo::{run as run_demo, DemoConfig};
use tlx_train::Verbosity;

#[derive(clap::Args)]
pub struct Args {
    /// Directory with the Fashion-MNIST IDX files (default: the bundled subset).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Print one JSON object: acc_A, acc_B_scratch, acc_B_on_A, seconds (and details).
    #[arg(long)]
    json: bool,
    /// A reduced run for a quick check: 4,000 training images, 3 epochs per phase.
    #[arg(long)]
    quick: bool,
    /// Seed of initial weights, shuffles and dropout.
    #[arg(long, default_value_t = tlx_train::transfer_demo::DEFAULT_SEED)]
    seed: u64,
    /// Epochs of models A and B (default 20, the protocol's).
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Print one line per epoch on stderr.
    #[arg(long)]
    verbose: bool,
}

/// The bundled subset: next to the sources (a fresh clone), or `./data/fashion-mnist`.
pub fn bundled_data() -> PathBuf {
    if let Ok(d) = std::env::var("TLX_DEMO_DATA") {
        return PathBuf::from(d);
    }
    let beside_sources = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fashion-mnist");
    if beside_sources.is_dir() {
        beside_sources
    } else {
        PathBuf::from("data/fashion-mnist")
    }
}

pub fn run(a: Args) -> Result<ExitCode, String> {
    let dir = a.data.unwrap_or_else(bundled_data);
    if !dir.is_dir() {
        return Err(format!(
            "{}: no such directory (pass --data DIR with the Fashion-MNIST IDX files)",
            dir.display()
        ));
    }
    let mut cfg = DemoConfig::new(&dir);
    cfg.seed = a.seed;
    if a.quick {
        cfg.max_train_images = Some(9000);
        cfg.epochs_a = 3;
        cfg.epochs_b = 3;
        cfg.frozen_epochs = 1;
        cfg.finetune_epochs = 2;
    }
    if let Some(e) = a.epochs {
        if e == 0 {
            return Err("--epochs must be at least 1".into());
        }
        cfg.epochs_a = e;
        cfg.epochs_b = e;
        cfg.frozen_epochs = (e / 5).max(1);
        cfg.finetune_epochs = e.saturating_sub(cfg.frozen_epochs).max(1);
    }
    cfg.verbose = if a.verbose { Verbosity::EpochLines } else { Verbosity::Silent };
    if !a.json {
        eprintln!("tlx demo: Fashion-MNIST transfer experiment on {}", dir.display());
    }
    let report = run_demo(&cfg).map_err(|e| e.to_string())?;
    if a.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.table());
    }
    Ok(ExitCode::SUCCESS)
}
