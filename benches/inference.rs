//! Inference throughput of whole applications (issue 4, 8): VGG16 and ResNet50 without their
//! top (Keras's `include_top=False`), 224×224×3, batch 1 and 8, on all threads
//! (`TLX_BENCH_THREADS` overrides) — random weights, since speed does not depend on values.
//! Criterion's throughput reads as images/s; a `summary:` line per case gives the median
//! ms/image and images/s. The peer is benches/peers/inference_tf.py (same models in Keras).

#[path = "util.rs"]
mod util;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tlx_models::{build, AppOptions, Arch};
use tlx_tensor::{DType, Rng, Tensor};

fn bench_inference(c: &mut Criterion) {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let archs: Vec<Arch> = match std::env::var("TLX_BENCH_ARCHS") {
        Ok(s) => s.split(',').filter_map(|a| Arch::from_name(a.trim()).ok()).collect(),
        Err(_) => vec![Arch::Vgg16, Arch::ResNet50],
    };
    for threads in util::thread_counts(&[all]) {
        let pool = util::pool(threads);
        for &arch in &archs {
            let model =
                build(arch, &AppOptions::new().include_top(false).input_shape([224, 224, 3])).expect("model");
            for batch in [1usize, 8] {
                let x = Tensor::rand_uniform([batch, 224, 224, 3], 0.0, 255.0, DType::F32, &mut Rng::new(1))
                    .unwrap();
                let mut run = || {
                    let y = pool.install(|| model.predict(&x)).expect("predict");
                    black_box(y);
                };
                let mut group = c.benchmark_group(format!("inference/{}/b{batch}/{threads}t", arch.name()));
                group
                    .sample_size(10)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(5))
                    .throughput(Throughput::Elements(batch as u64));
                group.bench_function("predict", |b| b.iter(&mut run));
                group.finish();
                run();
                let mut secs: Vec<f64> = (0..5)
                    .map(|_| {
                        let t = Instant::now();
                        run();
                        t.elapsed().as_secs_f64()
                    })
                    .collect();
                secs.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let per_image = secs[2] / batch as f64;
                println!(
                    "summary: inference {} b{batch} {threads}t: {:.1} ms/image, {:.2} images/s (median of 5)",
                    arch.name(),
                    per_image * 1e3,
                    1.0 / per_image
                );
            }
        }
    }
}

criterion_group!(benches, bench_inference);
criterion_main!(benches);
