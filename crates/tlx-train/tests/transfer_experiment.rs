//! The classic Fashion-MNIST transfer experiment end to end (issue 5's protocol, see
//! `tlx_train::transfer_demo`): with the full data in `../shared/data/fashion-mnist` it asserts
//! Keras's accuracies (A ≥ 0.905, B from scratch ≥ 0.95, B on A ≥ 0.90); without it, the
//! subset bundled in `data/fashion-mnist` with the thresholds recorded for it.
//!
//! B on A depends strongly on the initial weights of the new output unit, in Keras as in tlx:
//! 140 small SGD steps cannot make up for a badly placed start. Keras 3 on this protocol gave
//! 0.810, 0.882 and 0.930 for seeds 1, 2, 3 (benches/peers/transfer_keras.py, same machine); the
//! test uses the demo's default seed and records the spread in BENCHMARKS.md.

use std::path::PathBuf;
use tlx_train::transfer_demo::{run, DemoConfig};

fn shared() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fashion-mnist");
    d.join("train-images-idx3-ubyte.gz").exists().then_some(d)
}

#[test]
fn fashion_mnist_transfer_reaches_keras_accuracy() {
    let (dir, thresholds) = match shared() {
        Some(d) => {
            println!("transfer experiment on the full Fashion-MNIST set in {}", d.display());
            (d, [0.905, 0.95, 0.90])
        }
        None => {
            let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/fashion-mnist");
            println!("../shared not found: transfer experiment on the bundled subset in {}", d.display());
            (d, [0.86, 0.95, 0.85])
        }
    };
    let report = run(&DemoConfig::new(&dir)).unwrap();
    println!("{}", report.table());
    let [a, b, on_a] = thresholds;
    assert!(report.acc_a >= a, "A: {} < {a}", report.acc_a);
    assert!(report.acc_b_scratch >= b, "B from scratch: {} < {b}", report.acc_b_scratch);
    assert!(report.acc_b_on_a >= on_a, "B on A: {} < {on_a}", report.acc_b_on_a);
}
