//! Convolution throughput on VGG16's and ResNet50's layer shapes, batch 8 (f32); by default
//! three of VGG16's (3×3 `same`, stride 1):
//! block1_conv1 224²×3→64, block3_conv1 56²×128→256, block5_conv1 14²×512→512; forward,
//! backward-input and backward-kernel, on all threads (`TLX_BENCH_THREADS` overrides).
//! FLOPs of each pass = 2·n·out_h·out_w·c_out·kh·kw·c_in (criterion's "Gelem/s" reads as
//! GFLOP/s); a `summary:` line per case gives the median GFLOP/s.
//! `TLX_BENCH_CONV_LAYERS=vgg16` runs every distinct conv shape of VGG16 instead,
//! `TLX_BENCH_CONV_LAYERS=resnet50` every distinct one of ResNet50 (Keras's: the 7×7/2 stem
//! on its zero-padded 230² input, 1×1 `valid` convolutions, strided where a stage starts,
//! 3×3 `same`), and `TLX_BENCH_CONV_PASSES=forward,...` a subset of the passes. The same
//! sets run in TF by `benches/peers/conv_tf.py --layers vgg16|resnet50`; a comma-separated
//! list of names from either set picks those layers. `TLX_BENCH_QUICK=1` prints only the
//! `summary:` lines (no criterion sampling).

#[path = "util.rs"]
mod util;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;
use tlx_core::{Conv2dGeometry, Padding};
use tlx_cpu::conv::{conv2d_backward_input, conv2d_backward_kernel, conv2d_forward};

/// One convolution: name, input size (square), c_in, c_out, kernel size (square), stride,
/// `same` (else `valid`) padding.
type Layer = (&'static str, usize, usize, usize, usize, usize, bool);

const fn vgg(name: &'static str, hw: usize, c_in: usize, c_out: usize) -> Layer {
    (name, hw, c_in, c_out, 3, 1, true)
}

const fn pointwise(name: &'static str, hw: usize, c_in: usize, c_out: usize, stride: usize) -> Layer {
    (name, hw, c_in, c_out, 1, stride, false)
}

const LAYERS: [Layer; 3] =
    [vgg("block1_conv1", 224, 3, 64), vgg("block3_conv1", 56, 128, 256), vgg("block5_conv1", 14, 512, 512)];
/// Every distinct 3×3 conv shape of VGG16.
const VGG16_ALL: [Layer; 9] = [
    vgg("block1_conv1", 224, 3, 64),
    vgg("block1_conv2", 224, 64, 64),
    vgg("block2_conv1", 112, 64, 128),
    vgg("block2_conv2", 112, 128, 128),
    vgg("block3_conv1", 56, 128, 256),
    vgg("block3_conv2", 56, 256, 256),
    vgg("block4_conv1", 28, 256, 512),
    vgg("block4_conv2", 28, 512, 512),
    vgg("block5_conv1", 14, 512, 512),
];
/// Every distinct conv shape of ResNet50 (`_0` the projection shortcut; `conv2_block1_3`
/// has the shape of `conv2_block1_0`, `convN_block2_1` that of the later blocks' `_1`).
const RESNET50_ALL: [Layer; 20] = [
    ("conv1_conv", 230, 3, 64, 7, 2, false),
    pointwise("conv2_block1_1", 56, 64, 64, 1),
    vgg("conv2_block1_2", 56, 64, 64),
    pointwise("conv2_block1_0", 56, 64, 256, 1),
    pointwise("conv2_block2_1", 56, 256, 64, 1),
    pointwise("conv3_block1_1", 56, 256, 128, 2),
    vgg("conv3_block1_2", 28, 128, 128),
    pointwise("conv3_block1_3", 28, 128, 512, 1),
    pointwise("conv3_block1_0", 56, 256, 512, 2),
    pointwise("conv3_block2_1", 28, 512, 128, 1),
    pointwise("conv4_block1_1", 28, 512, 256, 2),
    vgg("conv4_block1_2", 14, 256, 256),
    pointwise("conv4_block1_3", 14, 256, 1024, 1),
    pointwise("conv4_block1_0", 28, 512, 1024, 2),
    pointwise("conv4_block2_1", 14, 1024, 256, 1),
    pointwise("conv5_block1_1", 14, 1024, 512, 2),
    vgg("conv5_block1_2", 7, 512, 512),
    pointwise("conv5_block1_3", 7, 512, 2048, 1),
    pointwise("conv5_block1_0", 14, 1024, 2048, 2),
    pointwise("conv5_block2_1", 7, 2048, 512, 1),
];
const BATCH: usize = 8;

fn bench_conv(c: &mut Criterion) {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let layers: Vec<Layer> = match std::env::var("TLX_BENCH_CONV_LAYERS").as_deref() {
        Ok("vgg16") => VGG16_ALL.to_vec(),
        Ok("resnet50") => RESNET50_ALL.to_vec(),
        Ok(names) => names
            .split(',')
            .map(|name| {
                let known = VGG16_ALL.iter().chain(&RESNET50_ALL).find(|l| l.0 == name.trim());
                *known.unwrap_or_else(|| {
                    panic!("TLX_BENCH_CONV_LAYERS: no layer {name:?} in vgg16 or resnet50")
                })
            })
            .collect(),
        Err(_) => LAYERS.to_vec(),
    };
    // Only the `summary:` lines (no criterion sampling), for quick interleaved comparisons.
    let quick = std::env::var("TLX_BENCH_QUICK").is_ok_and(|v| v == "1");
    let passes = std::env::var("TLX_BENCH_CONV_PASSES")
        .unwrap_or_else(|_| "forward,backward_input,backward_kernel".into());
    let wants = |pass: &str| passes.split(',').any(|p| p.trim() == pass);
    for threads in util::thread_counts(&[all]) {
        let pool = util::pool(threads);
        for &(name, hw, c_in, c_out, size, stride, same) in &layers {
            let g = Conv2dGeometry::new(
                &[BATCH, hw, hw, c_in],
                &[size, size, c_in, c_out],
                (stride, stride),
                (1, 1),
                if same { Padding::Same } else { Padding::Valid },
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
                if !quick {
                    group.bench_function("forward", |bch| bch.iter(&mut run));
                }
                util::summary(&format!("conv {name} forward {threads}t"), flops, runs, &mut run);
            }
            if wants("backward_input") {
                let mut run = || {
                    pool.install(|| conv2d_backward_input(&g, &dy, &k, &mut dx));
                    black_box(&dx);
                };
                if !quick {
                    group.bench_function("backward_input", |bch| bch.iter(&mut run));
                }
                util::summary(&format!("conv {name} backward_input {threads}t"), flops, runs, &mut run);
            }
            if wants("backward_kernel") {
                let mut run = || {
                    pool.install(|| conv2d_backward_kernel(&g, &x, &dy, &mut dk));
                    black_box(&dk);
                };
                if !quick {
                    group.bench_function("backward_kernel", |bch| bch.iter(&mut run));
                }
                util::summary(&format!("conv {name} backward_kernel {threads}t"), flops, runs, &mut run);
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench_conv);
criterion_main!(benches);
