//! Convolution throughput on VGG16's layer shapes, batch 8, 3×3 `same` stride 1 (f32):
//! block1_conv1 224²×3→64, block3_conv1 56²×128→256, block5_conv1 14²×512→512; forward,
//! backward-input and backward-kernel, on all threads (`TLX_BENCH_THREADS` overrides).
//! FLOPs of each pass = 2·n·out_h·out_w·c_out·kh·kw·c_in (criterion's "Gelem/s" reads as
//! GFLOP/s); a `summary:` line per case gives the median GFLOP/s.
//! `TLX_BENCH_CONV_LAYERS=vgg16` runs every distinct conv shape of VGG16 instead, and
//! `TLX_BENCH_CONV_PASSES=forward,...` a subset of the passes.

#[path = "util.rs"]
mod util;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use tlx_core::{Conv2dGeometry, Padding};
use tlx_cpu::conv::{conv2d_backward_input, conv2d_backward_kernel, conv2d_forward};

const LAYERS: [(&str, usize, usize, usize); 3] =
    [("block1_conv1", 224, 3, 64), ("block3_conv1", 56, 128, 256), ("block5_conv1", 14, 512, 512)];
/// Every distinct 3×3 conv shape of VGG16 (input size, c_in, c_out).
const VGG16_ALL: [(&str, usize, usize, usize); 9] = [
    ("block1_conv1", 224, 3, 64),
    ("block1_conv2", 224, 64, 64),
    ("block2_conv1", 112, 64, 128),
    ("block2_conv2", 112, 128, 128),
    ("block3_conv1", 56, 128, 256),
    ("block3_conv2", 56, 256, 256),
    ("block4_conv1", 28, 256, 512),
    ("block4_conv2", 28, 512, 512),
    ("block5_conv1", 14, 512, 512),
];
const BATCH: usize = 8;

fn bench_conv(c: &mut Criterion) {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let layers: &[(&str, usize, usize, usize)] =
        if std::env::var("TLX_BENCH_CONV_LAYERS").as_deref() == Ok("vgg16") { &VGG16_ALL } else { &LAYERS };
    let passes = std::env::var("TLX_BENCH_CONV_PASSES")
        .unwrap_or_else(|_| "forward,backward_input,backward_kernel".into());
    let wants = |pass: &str| passes.split(',').any(|p| p.trim() == pass);
    for threads in util::thread_counts(&[all]) {
        let pool = util::pool(threads);
        for &(name, hw, c_in, c_out) in layers {
            let g = Conv2dGeometry::new(
                &[BATCH, hw, hw, c_in],
                &[3, 3, c_in, c_out],
                (1, 1),
                (1, 1),
                Padding::Same,
                1,
            )
            .expect("geometry");
            let numel = |s: [usize; 4]| s.iter().product::<usize>();
            let x = util::fill(numel(g.input_shape()), 1);
            let k = util::fill(numel(g.kernel_shape()), 2);
            let b = util::fill(c_out, 3);
            let dy = util::fill(numel(g.output_shape()), 4);
            let mut y = vec![0f32; dy.len()];
            let mut dx = vec![0f32; x.len()];
            let mut dk = vec![0f32; k.len()];
            let flops = g.flops();
            let mut group = c.benchmark_group(format!("conv/{name}/b{BATCH}/{threads}t"));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(3))
                .throughput(Throughput::Elements(flops as u64));
            let runs = 7;
            if wants("forward") {
                let mut run = || {
                    pool.install(|| conv2d_forward(&g, &x, &k, Some(&b), &mut y));
                    black_box(&y);
                };
                group.bench_function("forward", |bch| bch.iter(&mut run));
                util::summary(&format!("conv {name} forward {threads}t"), flops, runs, &mut run);
            }
            if wants("backward_input") {
                let mut run = || {
                    pool.install(|| conv2d_backward_input(&g, &dy, &k, &mut dx));
                    black_box(&dx);
                };
                group.bench_function("backward_input", |bch| bch.iter(&mut run));
                util::summary(&format!("conv {name} backward_input {threads}t"), flops, runs, &mut run);
            }
            if wants("backward_kernel") {
                let mut run = || {
                    pool.install(|| conv2d_backward_kernel(&g, &x, &dy, &mut dk));
                    black_box(&dk);
                };
                group.bench_function("backward_kernel", |bch| bch.iter(&mut run));
                util::summary(&format!("conv {name} backward_kernel {threads}t"), flops, runs, &mut run);
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
