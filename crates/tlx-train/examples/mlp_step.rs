//! Times training steps of the Fashion-MNIST MLP (batch 32): `cargo run --release -p tlx-train
//! --example mlp_step -- [STEPS]`. Prints milliseconds per step (framework overhead included):
//! the least and the median of ten chunks' means.
use serde_json::json;
use tlx_nn::Loss;
use tlx_optim::Optimizer;
use tlx_tensor::{DType, Tensor};
use tlx_train::{metrics::Metric, transfer_demo::mlp, Trainer};

fn main() {
    let steps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let model = mlp("m", 8, "softmax", 1).unwrap();
    let loss = Loss::from_keras(&json!("sparse_categorical_crossentropy")).unwrap();
    let mut t =
        Trainer::compile(model, Optimizer::sgd(1e-3, 0.0, false).unwrap(), loss, vec![Metric::Accuracy])
            .unwrap();
    let x =
        Tensor::rand_uniform([32, 28, 28, 1], 0.0, 1.0, DType::F32, &mut tlx_tensor::Rng::new(1)).unwrap();
    let y = Tensor::from_vec((0..32).map(|i| (i % 8) as i64).collect::<Vec<_>>(), [32]).unwrap();
    for _ in 0..50 {
        t.train_step(&x, &y, None).unwrap();
    }
    // On a thread of the kernels' pool, as `Trainer::fit` runs (TLX_OUTSIDE=1: from the
    // main thread instead, to compare).
    let outside = std::env::var("TLX_OUTSIDE").is_ok_and(|v| v == "1");
    // Chunks of steps: the least and the median chunk's mean (a shared host's noise).
    let chunk = (steps / 10).max(1);
    let mut run = || {
        let mut chunk_ms = Vec::new();
        for _ in 0..steps / chunk {
            let start = std::time::Instant::now();
            for _ in 0..chunk {
                t.train_step(&x, &y, None).unwrap();
            }
            chunk_ms.push(start.elapsed().as_secs_f64() * 1e3 / chunk as f64);
        }
        chunk_ms.sort_by(f64::total_cmp);
        chunk_ms
    };
    let chunk_ms = if outside { run() } else { tlx_cpu::on_worker(run) };
    let (ms, median) = (chunk_ms[0], chunk_ms[chunk_ms.len() / 2]);
    println!("{ms:.3} ms/step least, {median:.3} median ({:.1} GFLOP/s)", 0.053 / ms * 1e3);
}
