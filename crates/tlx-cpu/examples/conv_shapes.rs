//! Times single inference convolutions with kept kernels (as a model runs them: BatchNorm
//! folded into a bias, ReLU fused): ResNet50's stem and 1×1 layers (strided ones too) at
//! batch 1 and 8, and prints GFLOP/s. `TLX_CONV_IM2COL=1` times the stem and the strided
//! layers through im2col's column buffer instead of reading their patches in place.
//! `cargo run --release -p tlx-cpu --example conv_shapes -- [THREADS] [NAME-FILTER]`.
use std::time::Instant;
use tlx_core::{Conv2dGeometry, Padding};
use tlx_cpu::conv::{conv2d_forward_fused_kept, Epilogue, EpilogueAct, KeptKernel};

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let only = std::env::args().nth(2).unwrap_or_default();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    // (name, batch, height = width, c_in, kernel size, stride, c_out, padding)
    let shapes = [
        ("stem 7x7/2 3->64", 1, 230, 3, 7, 2, 64, Padding::Valid),
        ("stem 7x7/2 3->64", 8, 230, 3, 7, 2, 64, Padding::Valid),
        (
            "stem padded 7x7/2 3->64",
            1,
            224,
            3,
            7,
            2,
            64,
            Padding::Explicit { top: 3, bottom: 3, left: 3, right: 3 },
        ),
        ("conv2 1x1 64->256", 1, 56, 64, 1, 1, 256, Padding::Valid),
        ("conv2 1x1 64->256", 8, 56, 64, 1, 1, 256, Padding::Valid),
        ("conv2 1x1 256->64", 8, 56, 256, 1, 1, 64, Padding::Valid),
        ("conv2 1x1 64->64", 1, 56, 64, 1, 1, 64, Padding::Valid),
        ("conv3 1x1/2 256->512", 1, 56, 256, 1, 2, 512, Padding::Valid),
        ("conv3 1x1/2 256->128", 1, 56, 256, 1, 2, 128, Padding::Valid),
        ("conv3 1x1/2 256->512", 8, 56, 256, 1, 2, 512, Padding::Valid),
        ("conv4 1x1 256->1024", 1, 14, 256, 1, 1, 1024, Padding::Valid),
        ("conv4 3x3 256->256", 1, 14, 256, 3, 1, 256, Padding::Same),
        ("conv5 3x3 512->512", 1, 7, 512, 3, 1, 512, Padding::Same),
        ("conv4 1x1 1024->256", 1, 14, 1024, 1, 1, 256, Padding::Valid),
        ("conv5 1x1 2048->512", 1, 7, 2048, 1, 1, 512, Padding::Valid),
        ("conv5 1x1 512->2048", 1, 7, 512, 1, 1, 2048, Padding::Valid),
    ];
    for (name, n, hw, c_in, ks, stride, c_out, padding) in shapes {
        let label = format!("{name} b{n}");
        if !label.contains(only.as_str()) {
            continue;
        }
        let g = Conv2dGeometry::new(
            &[n, hw, hw, c_in],
            &[ks, ks, c_in, c_out],
            (stride, stride),
            (1, 1),
            padding,
            1,
        )
        .unwrap();
        let input: Vec<f32> = (0..n * hw * hw * c_in).map(|i| (i % 13) as f32 * 0.05 - 0.3).collect();
        let kernel: Vec<f32> = (0..ks * ks * c_in * c_out).map(|i| (i % 7) as f32 * 0.01 - 0.03).collect();
        let bias: Vec<f32> = (0..c_out).map(|i| i as f32 * 0.001).collect();
        let algorithm = KeptKernel::algorithm(&g).unwrap();
        let kept = KeptKernel::new(algorithm, &g, &kernel).unwrap();
        let ep = Epilogue { bias: Some(&bias[..]), act: EpilogueAct::Relu, ..Epilogue::identity() };
        let mut out = vec![0f32; n * g.out_h * g.out_w * c_out];
        let flops = 2.0 * (n * g.out_h * g.out_w * ks * ks * c_in * c_out) as f64;
        let reps = (4e9 / flops).clamp(3.0, 1000.0) as usize;
        let mut best = f64::MAX;
        pool.install(|| {
            for _ in 0..7 {
                let t = Instant::now();
                for _ in 0..reps {
                    conv2d_forward_fused_kept(&g, &input, &kernel, &kept, &ep, &mut out);
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
        });
        println!("{label:28} {:8.1} us  {:6.1} GFLOP/s", best * 1e6, flops / best / 1e9);
    }
}
