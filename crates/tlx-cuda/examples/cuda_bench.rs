//! GPU benchmark of tlx-cuda: GEMM throughput against the device's f32 peak, and the
//! convolution passes (forward, input gradient, kernel gradient) of every VGG16 layer at
//! 224×224, timed with CUDA events after a warm-up.
//!
//! ```sh
//! cargo run --release -p tlx-cuda --features cuda --example cuda_bench -- [--batch 32] [--iters 10] [--tf32] [--quick]
//! ```
//!
//! Without a GPU (or without the CUDA libraries) it prints why and exits successfully.

use tlx_core::{Conv2dGeometry, Padding};
use tlx_cuda::blas::{gemm, Mat, MatMut};
use tlx_cuda::ops::{conv, dropout};
use tlx_cuda::{CudaContext, DeviceBuf, DeviceElem, Result};

struct Options {
    batch: usize,
    iters: usize,
    tf32: bool,
    quick: bool,
}

fn options() -> Options {
    let mut o = Options { batch: 32, iters: 10, tf32: false, quick: false };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match args[i].as_str() {
            "--batch" => {
                o.batch = value(i).unwrap_or(o.batch).max(1);
                i += 1;
            }
            "--iters" => {
                o.iters = value(i).unwrap_or(o.iters).max(1);
                i += 1;
            }
            "--tf32" => o.tf32 = true,
            "--quick" => o.quick = true,
            other => eprintln!("cuda_bench: ignoring unknown argument {other}"),
        }
        i += 1;
    }
    o
}

/// Milliseconds per call of `f`, from `iters` calls timed with CUDA events after 2 warm-ups.
fn time_ms(ctx: &CudaContext, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..2 {
        f()?;
    }
    ctx.synchronize()?;
    let timer = ctx.timer()?;
    timer.start()?;
    for _ in 0..iters {
        f()?;
    }
    Ok(timer.stop_ms()? as f64 / iters as f64)
}

/// A buffer of `n` uniform values in `[0, 1)`, made on the device.
fn random_f32(ctx: &CudaContext, n: usize, seed: u64) -> Result<DeviceBuf<f32>> {
    let mut b = ctx.alloc::<f32>(n)?;
    dropout::uniform(&mut b, seed, 0)?;
    Ok(b)
}

/// `b` converted to `T` through the host (setup only, not timed).
fn convert<T: DeviceElem>(
    ctx: &CudaContext,
    b: &DeviceBuf<f32>,
    f: impl Fn(f32) -> T,
) -> Result<DeviceBuf<T>> {
    let host: Vec<T> = b.to_vec()?.into_iter().map(f).collect();
    ctx.htod(&host)
}

fn gemm_bench(ctx: &CudaContext, o: &Options) -> Result<()> {
    let peak = ctx.info().peak_f32_gflops();
    println!("\n## GEMM (row-major C[m,n] = A[m,k]·B[k,n]; {} timed calls each)", o.iters);
    match peak {
        Some(p) => {
            println!("f32 peak of the CUDA cores: {:.1} TFLOP/s (tensor-core types can exceed it)", p / 1e3)
        }
        None => println!("f32 peak unknown for this architecture"),
    }
    println!(
        "{:>6} {:>6} {:>6} {:>10} {:>10} {:>12} {:>9}",
        "m", "n", "k", "type", "ms", "TFLOP/s", "of peak"
    );
    let sizes: &[(usize, usize, usize)] = if o.quick {
        &[(1024, 1024, 1024), (4096, 4096, 4096)]
    } else {
        // Square sizes, then the GEMMs of VGG16's convolutions at batch 32 (rows = n·h·w).
        &[
            (1024, 1024, 1024),
            (2048, 2048, 2048),
            (4096, 4096, 4096),
            (8192, 8192, 8192),
            (32 * 224 * 224 / 4, 64, 576),
            (32 * 56 * 56, 256, 2304),
            (32 * 14 * 14, 512, 4608),
            (32, 4096, 25088),
        ]
    };
    for &(m, n, k) in sizes {
        let flops = 2.0 * m as f64 * n as f64 * k as f64;
        let a = random_f32(ctx, m * k, 1)?;
        let b = random_f32(ctx, k * n, 2)?;
        let mut c = ctx.alloc::<f32>(m * n)?;
        let report = |kind: &str, ms: f64| {
            let tflops = flops / ms / 1e9;
            let of_peak = peak.map_or("-".to_string(), |p| format!("{:.0}%", 100.0 * tflops * 1e3 / p));
            println!("{m:>6} {n:>6} {k:>6} {kind:>10} {ms:>10.3} {tflops:>12.2} {of_peak:>9}");
        };
        for tf32 in [false, true] {
            ctx.set_allow_tf32(tf32);
            let ms = time_ms(ctx, o.iters, || {
                gemm(
                    ctx,
                    1.0,
                    Mat::row_major(&a, m, k),
                    Mat::row_major(&b, k, n),
                    0.0,
                    MatMut::row_major(&mut c, m, n),
                )
            })?;
            report(if tf32 { "tf32" } else { "f32" }, ms);
        }
        ctx.set_allow_tf32(o.tf32);
        let (ah, bh) = (convert(ctx, &a, half::f16::from_f32)?, convert(ctx, &b, half::f16::from_f32)?);
        let mut ch = ctx.alloc::<half::f16>(m * n)?;
        let ms = time_ms(ctx, o.iters, || {
            gemm(
                ctx,
                1.0,
                Mat::row_major(&ah, m, k),
                Mat::row_major(&bh, k, n),
                0.0,
                MatMut::row_major(&mut ch, m, n),
            )
        })?;
        report("f16", ms);
        drop((ah, bh, ch));
        let (ab, bb) = (convert(ctx, &a, half::bf16::from_f32)?, convert(ctx, &b, half::bf16::from_f32)?);
        let mut cb = ctx.alloc::<half::bf16>(m * n)?;
        let ms = time_ms(ctx, o.iters, || {
            gemm(
                ctx,
                1.0,
                Mat::row_major(&ab, m, k),
                Mat::row_major(&bb, k, n),
                0.0,
                MatMut::row_major(&mut cb, m, n),
            )
        })?;
        report("bf16", ms);
    }
    ctx.empty_cache()
}

/// VGG16's convolutions: (input size, input channels, output channels), 3×3 same, stride 1.
const VGG16: [(usize, usize, usize); 13] = [
    (224, 3, 64),
    (224, 64, 64),
    (112, 64, 128),
    (112, 128, 128),
    (56, 128, 256),
    (56, 256, 256),
    (56, 256, 256),
    (28, 256, 512),
    (28, 512, 512),
    (28, 512, 512),
    (14, 512, 512),
    (14, 512, 512),
    (14, 512, 512),
];

fn conv_bench(ctx: &CudaContext, o: &Options) -> Result<()> {
    let batch = o.batch;
    println!(
        "\n## VGG16 convolutions, batch {batch}, 224×224, {} ({} timed passes each)",
        if ctx.allow_tf32() { "TF32 GEMMs" } else { "f32 GEMMs" },
        o.iters
    );
    println!(
        "{:>6} {:>5} {:>5} {:>11} {:>11} {:>11} {:>9}",
        "size", "in", "out", "fwd ms", "dx ms", "dw ms", "TFLOP/s"
    );
    let layers: &[(usize, usize, usize)] = if o.quick { &VGG16[..3] } else { &VGG16 };
    let (mut fwd_total, mut train_total) = (0.0, 0.0);
    for (i, &(hw, cin, cout)) in layers.iter().enumerate() {
        let g =
            Conv2dGeometry::new(&[batch, hw, hw, cin], &[3, 3, cin, cout], (1, 1), (1, 1), Padding::Same, 1)
                .map_err(|e| tlx_cuda::Error::Invalid { op: "cuda_bench", msg: e.to_string() })?;
        let x = random_f32(ctx, batch * hw * hw * cin, 3)?;
        let w = random_f32(ctx, 9 * cin * cout, 4)?;
        let bias = random_f32(ctx, cout, 5)?;
        let dy = random_f32(ctx, batch * hw * hw * cout, 6)?;
        let mut y = ctx.alloc::<f32>(batch * hw * hw * cout)?;
        let mut dx = ctx.alloc::<f32>(batch * hw * hw * cin)?;
        let mut dw = ctx.alloc::<f32>(9 * cin * cout)?;
        let fwd = time_ms(ctx, o.iters, || conv::conv2d_forward(&g, &x, &w, Some(&bias), &mut y))?;
        // The first layer's input gradient is never needed in training.
        let bwd_x = if i == 0 {
            0.0
        } else {
            time_ms(ctx, o.iters, || conv::conv2d_backward_input(&g, &dy, &w, &mut dx))?
        };
        let bwd_w = time_ms(ctx, o.iters, || conv::conv2d_backward_kernel(&g, &x, &dy, &mut dw))?;
        let passes = if i == 0 { 2.0 } else { 3.0 };
        let tflops = passes * g.flops() / ((fwd + bwd_x + bwd_w) * 1e9);
        let dx_ms = if i == 0 { "-".to_string() } else { format!("{bwd_x:.3}") };
        println!("{hw:>6} {cin:>5} {cout:>5} {fwd:>11.3} {dx_ms:>11} {bwd_w:>11.3} {tflops:>9.2}");
        fwd_total += fwd;
        train_total += fwd + bwd_x + bwd_w;
        drop((x, w, bias, dy, y, dx, dw));
        ctx.empty_cache()?;
    }
    if !o.quick {
        println!(
            "all 13 convolutions: forward {fwd_total:.1} ms ({:.0} images/s), forward + backward {train_total:.1} ms ({:.0} images/s; convolutions only)",
            batch as f64 * 1e3 / fwd_total,
            batch as f64 * 1e3 / train_total
        );
    }
    Ok(())
}

fn main() {
    let o = options();
    let ctx = match CudaContext::first() {
        Ok(ctx) => ctx,
        Err(e) => {
            println!("cuda_bench: no usable GPU, nothing to measure: {e}");
            return;
        }
    };
    ctx.set_allow_tf32(o.tf32);
    let info = ctx.info();
    println!(
        "# tlx-cuda benchmark on {} (sm_{}{}, {} SMs at {} MHz, {:.1} GiB; kernels built for {})",
        info.name,
        info.compute_capability.0,
        info.compute_capability.1,
        info.multiprocessors,
        info.clock_khz / 1000,
        info.total_memory as f64 / (1u64 << 30) as f64,
        info.arch
    );
    let run = || -> Result<()> {
        gemm_bench(&ctx, &o)?;
        conv_bench(&ctx, &o)
    };
    if let Err(e) = run() {
        eprintln!("cuda_bench: {e}");
        std::process::exit(1);
    }
}
