//! The Keras conformance cases of the kinds tlx supports, run through the library.
//!
//! Runs the full reference set in `../shared/conformance/keras` when it is present (CI always
//! has it), otherwise the subset committed in `tests/fixtures/keras`, and prints which ran.

use std::path::PathBuf;

fn reference_dir() -> PathBuf {
    match tlx_conformance::shared_dir() {
        Some(d) => {
            println!("conformance: running the full Keras reference set in {}", d.display());
            d
        }
        None => {
            let d = tlx_conformance::fixture_dir();
            println!("conformance: ../shared not found; running the committed subset in {}", d.display());
            d
        }
    }
}

fn run_kinds(kinds: &[&str]) {
    let dir = reference_dir();
    let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
    let outcomes =
        tlx_conformance::run_dir(&dir, &kinds, |o| println!("{}", o.line())).expect("manifests readable");
    println!("{}", tlx_conformance::summary(&outcomes));
    for k in &kinds {
        assert!(outcomes.iter().any(|o| &o.kind == k), "no case of kind {k} in {}", dir.display());
    }
    let failed: Vec<String> = outcomes.iter().filter(|o| !o.passed()).map(|o| o.line()).collect();
    assert!(failed.is_empty(), "{} case(s) failed:\n{}", failed.len(), failed.join("\n"));
}

#[test]
fn layers_match_keras() {
    run_kinds(&["layer"]);
}

#[test]
fn losses_match_keras() {
    run_kinds(&["loss"]);
}

#[test]
fn schedules_match_keras() {
    run_kinds(&["schedule"]);
}

#[test]
fn augment_matches_keras() {
    run_kinds(&["augment"]);
}

#[test]
fn preprocess_matches_keras() {
    run_kinds(&["preprocess"]);
}

#[test]
fn callbacks_match_keras() {
    run_kinds(&["reduce_lr_on_plateau", "early_stopping"]);
}

/// Whole networks (`forward_app`, `forward_model`) and training trajectories
/// (`train_steps`): their weights files are only in the full reference set, so without it
/// this says so and checks nothing.
fn run_full_set_kinds(kinds: &[&str]) -> bool {
    if tlx_conformance::shared_dir().is_none() {
        println!("conformance: ../shared not found; {kinds:?} cases are only in the full set, skipped");
        return false;
    }
    run_kinds(kinds);
    true
}

#[test]
fn networks_and_training_match_keras() {
    run_full_set_kinds(&["forward_app", "forward_model", "train_steps"]);
}

#[test]
fn networks_match_keras_with_every_3x3_convolution_through_winograd() {
    // The cost model keeps the small maps of these cases direct; forcing F(4×4, 3×3) (the
    // less accurate tile size) puts Winograd itself under Keras's numbers.
    tlx_cpu::conv::set_conv_algorithm(Some(tlx_cpu::conv::ConvAlgorithm::Winograd4x4));
    let ran = run_full_set_kinds(&["forward_app", "forward_model"]);
    tlx_cpu::conv::set_conv_algorithm(None);
    if ran {
        println!("conformance: forward cases passed with Winograd F(4x4, 3x3) forced");
    }
}
