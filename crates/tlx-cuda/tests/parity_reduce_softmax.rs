//! CPU-vs-CUDA parity of reductions (sum, mean, max, min over any axes of dense and strided
//! views; argmax/argmin; sum of squares) and of softmax, log-softmax, their backward passes
//! and the fused softmax cross-entropy (dense labels with smoothing, i64/i32 labels with an
//! ignored class). References: `tlx_cpu` in f64 and direct f64 formulas; bound 1e-5.
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, up, Rng, F32_TOL};
use tlx_core::Layout;
use tlx_cpu::reduce::ReduceOp as CpuOp;
use tlx_cuda::ops::reduce::{arg_extreme, reduce, sum_squares, ReduceOp};
use tlx_cuda::ops::softmax::{log_softmax, softmax, softmax_backward, softmax_cross_entropy, Labels};

fn random_axes(rng: &mut Rng, rank: usize) -> Vec<usize> {
    (0..rank).filter(|_| rng.below(2) == 0).collect()
}

#[test]
fn reductions_over_axes_of_dense_and_strided_views() {
    let Some(ctx) = common::device("reduce") else { return };
    let mut rng = Rng::new(10);
    let ops = [
        (ReduceOp::Sum, CpuOp::Sum),
        (ReduceOp::Mean, CpuOp::Sum),
        (ReduceOp::Max, CpuOp::Max),
        (ReduceOp::Min, CpuOp::Min),
    ];
    let mut cases: Vec<(Vec<usize>, Vec<usize>)> = (0..40)
        .map(|_| {
            let d = common::dims(&mut rng, 1, 5, 9);
            let a = random_axes(&mut rng, d.len());
            (d, a)
        })
        .collect();
    // Large ones that split (bias gradients, global pooling, a whole-tensor sum).
    cases.push((vec![4096, 64], vec![0]));
    cases.push((vec![8, 14, 14, 512], vec![1, 2]));
    cases.push((vec![3, 100_003], vec![0, 1]));
    cases.push((vec![257, 1031], vec![1]));
    for (i, (dims, axes)) in cases.iter().enumerate() {
        let (op, cpu) = ops[i % ops.len()];
        let (layout, len) = if i % 2 == 0 {
            common::view(&mut rng, dims)
        } else {
            (Layout::contiguous(dims.clone()), dims.iter().product())
        };
        let x = rng.vec(len, -2.0, 2.0);
        // The reference reduces the gathered dense data in f64.
        let mut dense = vec![0f32; layout.numel()];
        tlx_cpu::copy::copy_strided(&x, &layout, &mut dense);
        let kept: usize = (0..dims.len()).filter(|a| !axes.contains(a)).map(|a| dims[a]).product();
        let mut want = vec![0f64; kept];
        tlx_cpu::reduce::reduce(cpu, &up(&dense), dims, axes, &mut want);
        if op == ReduceOp::Mean {
            let count: usize = axes.iter().map(|&a| dims[a]).product();
            want.iter_mut().for_each(|v| *v /= count as f64);
        }
        let gx = ctx.htod(&x).unwrap();
        let mut out = ctx.alloc::<f32>(kept).unwrap();
        reduce(op, &gx, &layout, axes, &mut out).unwrap();
        assert_close(&format!("{op:?} {dims:?} over {axes:?}"), &out.to_vec().unwrap(), &want, F32_TOL);
    }
}

#[test]
fn argmax_argmin_and_nan() {
    let Some(ctx) = common::device("arg_extreme") else { return };
    let mut rng = Rng::new(11);
    for _ in 0..12 {
        let (outer, len, inner) = (rng.range(1, 9), rng.range(1, 40), rng.range(1, 9));
        // Few distinct values: ties must go to the first.
        let mut x: Vec<f32> = (0..outer * len * inner).map(|_| rng.below(7) as f32).collect();
        if rng.below(2) == 0 {
            let i = rng.below(x.len());
            x[i] = f32::NAN;
        }
        let gx = ctx.htod(&x).unwrap();
        for max in [true, false] {
            let mut want = vec![0i64; outer * inner];
            tlx_cpu::reduce::arg_extreme(&x, outer, len, inner, max, &mut want);
            let mut out = ctx.alloc::<i64>(outer * inner).unwrap();
            arg_extreme(&gx, outer, len, inner, max, &mut out).unwrap();
            assert_eq!(out.to_vec().unwrap(), want, "[{outer}, {len}, {inner}] max={max}");
        }
    }
}

#[test]
fn sum_of_squares_in_f64() {
    let Some(ctx) = common::device("sum_squares") else { return };
    let mut rng = Rng::new(12);
    for n in [1usize, 255, 256, 1000, 300_001, 2_000_000] {
        let x = rng.vec(n, -3.0, 3.0);
        let want: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
        let got = sum_squares(&ctx.htod(&x).unwrap()).unwrap();
        assert!((got - want).abs() <= 1e-12 * want, "n={n}: {got} vs {want}");
    }
}

fn softmax_ref(x: &[f64], outer: usize, len: usize, inner: usize, log: bool) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    if log {
        tlx_cpu::softmax::log_softmax(x, outer, len, inner, &mut out);
    } else {
        tlx_cpu::softmax::softmax(x, outer, len, inner, &mut out);
    }
    out
}

#[test]
fn softmax_forward_and_backward_along_any_axis() {
    let Some(ctx) = common::device("softmax") else { return };
    let mut rng = Rng::new(13);
    let mut shapes: Vec<(usize, usize, usize)> = (0..16)
        .map(|i| (rng.range(1, 40), rng.range(1, 300), if i % 2 == 0 { 1 } else { rng.range(2, 9) }))
        .collect();
    shapes.push((64, 1000, 1)); // ImageNet logits
    shapes.push((3, 5000, 1));
    for (outer, len, inner) in shapes {
        let n = outer * len * inner;
        let x = rng.vec(n, -8.0, 8.0);
        let g = rng.vec(n, -1.0, 1.0);
        let (gx, gg) = (ctx.htod(&x).unwrap(), ctx.htod(&g).unwrap());
        for log in [false, true] {
            let want = softmax_ref(&up(&x), outer, len, inner, log);
            let mut y = ctx.alloc::<f32>(n).unwrap();
            if log {
                log_softmax(&gx, outer, len, inner, &mut y).unwrap();
            } else {
                softmax(&gx, outer, len, inner, &mut y).unwrap();
            }
            let what = format!("{} [{outer}, {len}, {inner}]", if log { "log_softmax" } else { "softmax" });
            assert_close(&what, &y.to_vec().unwrap(), &want, F32_TOL);
            let mut dx = ctx.alloc::<f32>(n).unwrap();
            softmax_backward(&y, &gg, outer, len, inner, log, &mut dx).unwrap();
            let mut want_dx = vec![0.0; n];
            tlx_cpu::softmax::softmax_backward(&want, &up(&g), outer, len, inner, log, &mut want_dx);
            assert_close(&format!("{what} backward"), &dx.to_vec().unwrap(), &want_dx, F32_TOL);
        }
    }
}

/// Per-row loss and `scale`·gradient of softmax cross-entropy with (smoothed) dense labels.
fn xent_ref(x: &[f32], y: &[f64], rows: usize, k: usize, scale: f64) -> (Vec<f64>, Vec<f64>) {
    let logp = softmax_ref(&up(x), rows, k, 1, true);
    let mut loss = vec![0.0; rows];
    let mut grad = vec![0.0; rows * k];
    for r in 0..rows {
        let ys: f64 = y[r * k..(r + 1) * k].iter().sum();
        for j in 0..k {
            loss[r] -= y[r * k + j] * logp[r * k + j];
            grad[r * k + j] = scale * (logp[r * k + j].exp() * ys - y[r * k + j]);
        }
    }
    (loss, grad)
}

#[test]
fn fused_cross_entropy_dense_and_sparse() {
    let Some(ctx) = common::device("softmax_cross_entropy") else { return };
    let mut rng = Rng::new(14);
    for (rows, k) in [(1usize, 2usize), (7, 10), (32, 1000), (130, 37), (5, 3000)] {
        let x = rng.vec(rows * k, -6.0, 6.0);
        let gx = ctx.htod(&x).unwrap();
        let scale = 1.0 / rows as f32;
        let labels: Vec<i64> = (0..rows).map(|_| rng.below(k) as i64).collect();
        // Dense: probability rows, with and without label smoothing.
        for ls in [0.0f32, 0.1] {
            let mut y = rng.vec(rows * k, 0.0, 1.0);
            for r in 0..rows {
                let s: f32 = y[r * k..(r + 1) * k].iter().sum();
                y[r * k..(r + 1) * k].iter_mut().for_each(|v| *v /= s);
            }
            let ys: Vec<f64> =
                y.iter().map(|&v| v as f64 * (1.0 - ls as f64) + ls as f64 / k as f64).collect();
            let (wl, wg) = xent_ref(&x, &ys, rows, k, scale as f64);
            let gy = ctx.htod(&y).unwrap();
            let (mut loss, mut grad) = (ctx.alloc::<f32>(rows).unwrap(), ctx.alloc::<f32>(rows * k).unwrap());
            softmax_cross_entropy(&gx, Labels::Dense(&gy), rows, k, ls, scale, &mut loss, Some(&mut grad))
                .unwrap();
            assert_close(
                &format!("dense xent loss [{rows}, {k}] ls={ls}"),
                &loss.to_vec().unwrap(),
                &wl,
                F32_TOL,
            );
            assert_close(
                &format!("dense xent grad [{rows}, {k}] ls={ls}"),
                &grad.to_vec().unwrap(),
                &wg,
                F32_TOL,
            );
        }
        // Sparse (i64 and i32), with the first row's class ignored.
        let ignore = labels[0];
        let mut onehot = vec![0.0f64; rows * k];
        for (r, &l) in labels.iter().enumerate() {
            if l != ignore {
                onehot[r * k + l as usize] = 1.0;
            }
        }
        let (mut wl, mut wg) = xent_ref(&x, &onehot, rows, k, scale as f64);
        for (r, &l) in labels.iter().enumerate() {
            if l == ignore {
                wl[r] = 0.0;
                wg[r * k..(r + 1) * k].iter_mut().for_each(|v| *v = 0.0);
            }
        }
        let l64 = ctx.htod(&labels).unwrap();
        let l32 = ctx.htod(&labels.iter().map(|&l| l as i32).collect::<Vec<_>>()).unwrap();
        for labels in [
            Labels::SparseI64 { labels: &l64, ignore: Some(ignore) },
            Labels::SparseI32 { labels: &l32, ignore: Some(ignore) },
        ] {
            let (mut loss, mut grad) = (ctx.alloc::<f32>(rows).unwrap(), ctx.alloc::<f32>(rows * k).unwrap());
            softmax_cross_entropy(&gx, labels, rows, k, 0.0, scale, &mut loss, Some(&mut grad)).unwrap();
            assert_close(&format!("sparse xent loss [{rows}, {k}]"), &loss.to_vec().unwrap(), &wl, F32_TOL);
            assert_close(&format!("sparse xent grad [{rows}, {k}]"), &grad.to_vec().unwrap(), &wg, F32_TOL);
        }
    }
    // A label outside [0, k) gives NaN, not a wild read.
    let gx = ctx.htod(&[0.0f32, 1.0, 2.0]).unwrap();
    let bad = ctx.htod(&[7i64]).unwrap();
    let mut loss = ctx.alloc::<f32>(1).unwrap();
    softmax_cross_entropy(
        &gx,
        Labels::SparseI64 { labels: &bad, ignore: None },
        1,
        3,
        0.0,
        1.0,
        &mut loss,
        None,
    )
    .unwrap();
    assert!(loss.to_vec().unwrap()[0].is_nan());
}
