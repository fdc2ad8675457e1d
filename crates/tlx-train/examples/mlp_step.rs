//! Times training steps of the Fashion-MNIST MLP (batch 32): `cargo run --release -p tlx-train
//! --example mlp_step -- [STEPS]`. Prints milliseconds per step (framework overhead included).
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
    let start = std::time::Instant::now();
    for _ in 0..steps {
        t.train_step(&x, &y, None).unwrap();
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    println!("{ms:.3} ms/step ({:.1} GFLOP/s)", 0.053 / ms * 1e3);
}
