//! Training must not grow the process's memory from step to step (issue 8): a small CNN with
//! every kind of state a training step touches (convolution, BatchNormalization's moving
//! statistics, pooling, dropout, Adam's slots, autograd graphs) runs many steps, and the RSS
//! after the last step stays within a small margin of the RSS after the warm-up steps.
//! Alone in its test binary (nextest runs each test in its own process; Linux only).

use serde_json::json;
use tlx_nn::layers::{from_keras, Dense};
use tlx_nn::{Activation, Loss, Model};
use tlx_optim::Optimizer;
use tlx_tensor::{DType, Rng, Tensor};
use tlx_train::{Metric, Trainer};

fn rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn layer(class: &str, config: serde_json::Value) -> Box<dyn tlx_nn::Layer> {
    from_keras(class, &config).unwrap()
}

#[test]
fn training_steps_do_not_grow_memory() {
    if rss_bytes().is_none() {
        println!("no /proc/self/status: skipped");
        return;
    }
    let mut m = Model::sequential("cnn", &[32, 32, 3]).with_seed(7);
    m.add_boxed(layer(
        "Conv2D",
        json!({"name": "c1", "filters": 16, "kernel_size": [3, 3], "padding": "same", "activation": "linear"}),
    ))
    .unwrap();
    m.add_boxed(layer("BatchNormalization", json!({"name": "bn1"}))).unwrap();
    m.add_boxed(layer("ReLU", json!({"name": "r1"}))).unwrap();
    m.add_boxed(layer("MaxPooling2D", json!({"name": "p1", "pool_size": [2, 2]}))).unwrap();
    m.add_boxed(layer(
        "Conv2D",
        json!({"name": "c2", "filters": 32, "kernel_size": [3, 3], "padding": "same", "activation": "relu"}),
    ))
    .unwrap();
    m.add_boxed(layer("GlobalAveragePooling2D", json!({"name": "gap"}))).unwrap();
    m.add_boxed(layer("Dropout", json!({"name": "drop", "rate": 0.2}))).unwrap();
    m.add(Dense::new("out", 10, Activation::from_name("softmax").unwrap())).unwrap();
    let loss = Loss::from_keras(&json!("sparse_categorical_crossentropy")).unwrap();
    let mut trainer =
        Trainer::compile(m, Optimizer::adam(1e-3).unwrap(), loss, vec![Metric::Accuracy]).unwrap();

    let batch = 16;
    let x = Tensor::rand_uniform([batch, 32, 32, 3], 0.0, 1.0, DType::F32, &mut Rng::new(1)).unwrap();
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let y = Tensor::from_vec(labels, [batch]).unwrap();
    let mut step = |n: usize| {
        for _ in 0..n {
            trainer.train_step(&x, &y, None).unwrap();
        }
    };
    step(20);
    // Five windows of 40 steps. A leak grows the RSS in every window; a one-time warm-up
    // (the pool's second thread meeting its first large job after the first 20 steps: its
    // malloc arena and scratch buffers) in one of them.
    let warm = rss_bytes().unwrap();
    let mut last = warm;
    let mut grew_per_window: Vec<u64> = (0..5)
        .map(|_| {
            step(40);
            let now = rss_bytes().unwrap();
            let grew = now.saturating_sub(last);
            last = now;
            grew
        })
        .collect();
    let total = last.saturating_sub(warm);
    println!(
        "RSS after 20 steps {} KiB, after 220 steps {} KiB (+{} KiB; per 40 steps: {:?} KiB)",
        warm / 1024,
        last / 1024,
        total / 1024,
        grew_per_window.iter().map(|g| g / 1024).collect::<Vec<_>>()
    );
    // One step's activations and gradients are ~1 MiB here: a leak of even a fraction of a
    // buffer per step would add megabytes to every window and tens of MiB in all.
    grew_per_window.sort_unstable();
    assert!(
        grew_per_window[2] < 256 << 10,
        "RSS grew by {total} bytes over 200 training steps, the median window by {}",
        grew_per_window[2]
    );
    assert!(total < 8 << 20, "RSS grew by {} KiB over 200 training steps", total / 1024);
}
