//! Times single products one by one: a Fashion-MNIST MLP training step's (batch 32), square
//! ones (256² to 2048²), VGG16 block5's kernel-gradient tile (both operand orders) and ResNet50's 1×1
//! convolutions at batch 1 and 8 and the kernel gradients of some of them at batch 8, after
//! the micro-kernel alone (operands in L1).
//! `cargo run --release -p tlx-cpu --example gemm_shapes -- [THREADS] [NAME-FILTER]`.
use std::time::Instant;
use tlx_cpu::gemm::{gemm, MatRef};

fn main() {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    // (name, m, k, n, a transposed, b transposed)
    let shapes = [
        ("square 256", 256, 256, 256, false, false),
        ("square 512", 512, 512, 512, false, false),
        ("square 1024", 1024, 1024, 1024, false, false),
        ("square 2048", 2048, 2048, 2048, false, false),
        ("block5 dW tile 4608x392x512 (A=col^T)", 4608, 392, 512, true, false),
        ("block5 dW^T tile 512x392x4608 (A=dy^T)", 512, 392, 4608, true, false),
        ("conv2 expand 3136x64x256", 3136, 64, 256, false, false),
        ("conv3 expand 784x128x512", 784, 128, 512, false, false),
        ("conv4 expand 196x256x1024", 196, 256, 1024, false, false),
        ("conv2 reduce 3136x256x64", 3136, 256, 64, false, false),
        ("b8 conv2 expand 25088x64x256", 25088, 64, 256, false, false),
        ("small expand 576x64x256", 576, 64, 256, false, false),
        ("b8 deep 25088x256x256", 25088, 256, 256, false, false),
        ("b8 conv2 reduce 25088x256x64", 25088, 256, 64, false, false),
        ("stem tile 512x147x64", 512, 147, 64, false, false),
        ("stem b1 12544x147x64", 12544, 147, 64, false, false),
        ("fwd1 32x784x300", 32, 784, 300, false, false),
        ("dW1 784x32x300 (A=X^T)", 784, 32, 300, true, false),
        ("fwd2 32x300x100", 32, 300, 100, false, false),
        ("dW2 300x32x100", 300, 32, 100, true, false),
        ("dX2 32x100x300 (B=W^T)", 32, 100, 300, false, true),
        ("b8 conv2_block1_0 dW 64x25088x256 (A=X^T)", 64, 25088, 256, true, false),
        ("b8 conv2_block1_1 dW 64x25088x64 (A=X^T)", 64, 25088, 64, true, false),
        ("b8 conv2_block2_1 dW 256x25088x64 (A=X^T)", 256, 25088, 64, true, false),
        ("b8 conv3_block1_3 dW 128x6272x512 (A=X^T)", 128, 6272, 512, true, false),
        ("b8 conv3_block2_1 dW 512x6272x128 (A=X^T)", 512, 6272, 128, true, false),
        ("deep 512x2048x512", 512, 2048, 512, false, false),
        ("deep 512x8192x512", 512, 8192, 512, false, false),
        ("deep 1024x4096x1024", 1024, 4096, 1024, false, false),
    ];
    let only = std::env::args().nth(2).unwrap_or_default();
    // The micro-kernel alone (operands in L1, bias + ReLU stored), for its peak.
    for depth in [32, 64, 256] {
        let name = format!("micro-kernel alone, depth {depth}");
        if name.contains(only.as_str()) {
            let (flops, seconds) =
                tlx_cpu::gemm::time_micro_kernel(tlx_cpu::gemm::Isa::detect(), depth, 200_000);
            println!("{name:28} {:8.3} us  {:6.1} GFLOP/s", seconds * 1e6, flops / seconds / 1e9);
        }
    }
    for (name, m, k, n, at, bt) in shapes {
        if !name.contains(only.as_str()) {
            continue;
        }
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut c = vec![0f32; m * n];
        let am = if at { MatRef::row_major(&a, k, m).t() } else { MatRef::row_major(&a, m, k) };
        let bm = if bt { MatRef::row_major(&b, n, k).t() } else { MatRef::row_major(&b, k, n) };
        let reps = (2_000_000_000 / (m * n * k)).clamp(3, 2000);
        let mut best = f64::MAX;
        pool.install(|| {
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..reps {
                    gemm(1.0, am, bm, 0.0, &mut c, n);
                }
                best = best.min(t.elapsed().as_secs_f64() / reps as f64);
            }
        });
        let gf = 2.0 * (m * n * k) as f64 / best / 1e9;
        println!("{name:28} {:8.1} us  {gf:6.1} GFLOP/s", best * 1e6);
    }
}
