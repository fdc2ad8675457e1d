//! CPU-vs-CUDA parity of GEMM (cuBLAS with row-major views, transposes, offsets, batches),
//! the mixed-precision helpers (f16/bf16 casts bit for bit against the `half` crate, f16/bf16
//! GEMMs with f32 accumulation, loss scaling) and dropout (masks bit for bit against the host
//! Philox). Bounds: f32 GEMM 1e-5; f16 GEMM 2e-3 and bf16 GEMM 1e-2 normwise against the f64
//! product of the rounded operands (their outputs are rounded to 11 and 8 significant bits).
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, up, Rng, F32_TOL};
use half::{bf16, f16};
use tlx_cuda::blas::{gemm, gemm_strided_batched, sgemm, Mat, MatMut};
use tlx_cuda::ops::{dropout, mixed};
use tlx_cuda::philox;

/// Row-major `[m, n]` = `op(A)·op(B)` in f64 from stored matrices.
fn matmul_ref(a: &[f64], ta: bool, b: &[f64], tb: bool, m: usize, k: usize, n: usize) -> Vec<f64> {
    let at = |i: usize, p: usize| if ta { a[p * m + i] } else { a[i * k + p] };
    let bt = |p: usize, j: usize| if tb { b[j * k + p] } else { b[p * n + j] };
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
        }
    }
    c
}

#[test]
fn sgemm_with_transposes_offsets_and_beta() {
    let Some(ctx) = common::device("sgemm") else { return };
    let mut rng = Rng::new(50);
    for case in 0..24 {
        let (m, k, n) = (rng.range(1, 150), rng.range(1, 150), rng.range(1, 150));
        let (ta, tb) = (case % 2 == 1, case % 4 >= 2);
        let a = rng.vec(m * k, -1.0, 1.0);
        let b = rng.vec(k * n, -1.0, 1.0);
        let c0 = rng.vec(m * n, -1.0, 1.0);
        let (ga, gb) = (ctx.htod(&a).unwrap(), ctx.htod(&b).unwrap());
        let ma = if ta { Mat::row_major(&ga, k, m).t() } else { Mat::row_major(&ga, m, k) };
        let mb = if tb { Mat::row_major(&gb, n, k).t() } else { Mat::row_major(&gb, k, n) };
        // C is a [m, n] block at offset 3 of a wider [m, n + 2] buffer.
        let ld = n + 2;
        let mut cbuf = vec![7.0f32; 3 + m * ld];
        for i in 0..m {
            cbuf[3 + i * ld..3 + i * ld + n].copy_from_slice(&c0[i * n..(i + 1) * n]);
        }
        let mut gc = ctx.htod(&cbuf).unwrap();
        let (alpha, beta) = (0.75f32, -0.5f32);
        sgemm(&ctx, alpha, ma, mb, beta, MatMut::row_major(&mut gc, m, n).at(3, ld)).unwrap();
        let prod = matmul_ref(&up(&a), ta, &up(&b), tb, m, k, n);
        let got = gc.to_vec().unwrap();
        let block: Vec<f32> = (0..m).flat_map(|i| got[3 + i * ld..3 + i * ld + n].to_vec()).collect();
        let want: Vec<f64> =
            prod.iter().zip(&c0).map(|(&p, &c)| alpha as f64 * p + beta as f64 * c as f64).collect();
        assert_close(&format!("sgemm {m}x{k}x{n} ta={ta} tb={tb}"), &block, &want, F32_TOL);
        // Untouched padding.
        assert!((0..m).all(|i| got[3 + i * ld + n..3 + i * ld + ld].iter().all(|&v| v == 7.0)));
        assert_eq!(&got[..3], &[7.0; 3]);
    }
    // Shapes that do not chain are errors.
    let g = ctx.zeros::<f32>(12).unwrap();
    let mut c = ctx.zeros::<f32>(16).unwrap();
    assert!(sgemm(
        &ctx,
        1.0,
        Mat::row_major(&g, 3, 4),
        Mat::row_major(&g, 3, 4),
        0.0,
        MatMut::row_major(&mut c, 3, 4)
    )
    .is_err());
}

#[test]
fn batched_gemm_with_a_broadcast_operand() {
    let Some(ctx) = common::device("gemm_batched") else { return };
    let mut rng = Rng::new(51);
    let (batch, m, k, n) = (5, 17, 33, 9);
    let a = rng.vec(batch * m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0); // shared by every batch (stride 0)
    let (ga, gb) = (ctx.htod(&a).unwrap(), ctx.htod(&b).unwrap());
    let mut gc = ctx.alloc::<f32>(batch * m * n).unwrap();
    gemm_strided_batched(
        &ctx,
        batch,
        1.0,
        Mat::row_major(&ga, m, k),
        m * k,
        Mat::row_major(&gb, k, n),
        0,
        0.0,
        MatMut::row_major(&mut gc, m, n),
        m * n,
    )
    .unwrap();
    let want: Vec<f64> = (0..batch)
        .flat_map(|i| matmul_ref(&up(&a[i * m * k..(i + 1) * m * k]), false, &up(&b), false, m, k, n))
        .collect();
    assert_close("batched gemm", &gc.to_vec().unwrap(), &want, F32_TOL);
}

#[test]
fn half_precision_gemms_accumulate_in_f32() {
    let Some(ctx) = common::device("gemm_f16") else { return };
    let mut rng = Rng::new(52);
    let (m, k, n) = (64, 256, 48);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    // f16: the reference multiplies the rounded operands in f64.
    let (ah, bh): (Vec<f16>, Vec<f16>) =
        (a.iter().map(|&v| f16::from_f32(v)).collect(), b.iter().map(|&v| f16::from_f32(v)).collect());
    let want = matmul_ref(
        &ah.iter().map(|v| v.to_f64()).collect::<Vec<_>>(),
        false,
        &bh.iter().map(|v| v.to_f64()).collect::<Vec<_>>(),
        false,
        m,
        k,
        n,
    );
    let (ga, gb) = (ctx.htod(&ah).unwrap(), ctx.htod(&bh).unwrap());
    let mut c32 = ctx.alloc::<f32>(m * n).unwrap();
    gemm(
        &ctx,
        1.0,
        Mat::row_major(&ga, m, k),
        Mat::row_major(&gb, k, n),
        0.0,
        MatMut::row_major(&mut c32, m, n),
    )
    .unwrap();
    assert_close("f16 gemm, f32 output", &c32.to_vec().unwrap(), &want, 1e-5);
    let mut c16 = ctx.alloc::<f16>(m * n).unwrap();
    gemm(
        &ctx,
        1.0,
        Mat::row_major(&ga, m, k),
        Mat::row_major(&gb, k, n),
        0.0,
        MatMut::row_major(&mut c16, m, n),
    )
    .unwrap();
    let got: Vec<f32> = c16.to_vec().unwrap().iter().map(|v| v.to_f32()).collect();
    assert_close("f16 gemm, f16 output", &got, &want, 2e-3);
    // bf16.
    let (ab, bb): (Vec<bf16>, Vec<bf16>) =
        (a.iter().map(|&v| bf16::from_f32(v)).collect(), b.iter().map(|&v| bf16::from_f32(v)).collect());
    let want = matmul_ref(
        &ab.iter().map(|v| v.to_f64()).collect::<Vec<_>>(),
        false,
        &bb.iter().map(|v| v.to_f64()).collect::<Vec<_>>(),
        false,
        m,
        k,
        n,
    );
    let (ga, gb) = (ctx.htod(&ab).unwrap(), ctx.htod(&bb).unwrap());
    gemm(
        &ctx,
        1.0,
        Mat::row_major(&ga, m, k),
        Mat::row_major(&gb, k, n),
        0.0,
        MatMut::row_major(&mut c32, m, n),
    )
    .unwrap();
    assert_close("bf16 gemm, f32 output", &c32.to_vec().unwrap(), &want, 1e-5);
    let mut cb = ctx.alloc::<bf16>(m * n).unwrap();
    gemm(
        &ctx,
        1.0,
        Mat::row_major(&ga, m, k),
        Mat::row_major(&gb, k, n),
        0.0,
        MatMut::row_major(&mut cb, m, n),
    )
    .unwrap();
    let got: Vec<f32> = cb.to_vec().unwrap().iter().map(|v| v.to_f32()).collect();
    assert_close("bf16 gemm, bf16 output", &got, &want, 1e-2);
}

#[test]
fn casts_round_like_the_half_crate() {
    let Some(ctx) = common::device("casts") else { return };
    let mut rng = Rng::new(53);
    let mut x = rng.vec(100_000, -70_000.0, 70_000.0);
    x.extend(rng.vec(1000, -1e-6, 1e-6)); // subnormal f16
    x.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        65504.0,
        65520.0,
        1.0e-8,
        f32::MAX,
        f32::MIN_POSITIVE,
    ]);
    let gx = ctx.htod(&x).unwrap();
    let mut h = ctx.alloc::<f16>(x.len()).unwrap();
    mixed::cast_f32_to_f16(&gx, &mut h).unwrap();
    let hv = h.to_vec().unwrap();
    let want: Vec<u16> = x.iter().map(|&v| f16::from_f32(v).to_bits()).collect();
    assert_eq!(hv.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "f32 → f16");
    let mut back = ctx.alloc::<f32>(x.len()).unwrap();
    mixed::cast_f16_to_f32(&h, &mut back).unwrap();
    assert_eq!(
        back.to_vec().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        hv.iter().map(|v| v.to_f32().to_bits()).collect::<Vec<_>>()
    );
    let mut b = ctx.alloc::<bf16>(x.len()).unwrap();
    mixed::cast_f32_to_bf16(&gx, &mut b).unwrap();
    let bv = b.to_vec().unwrap();
    let want: Vec<u16> = x.iter().map(|&v| bf16::from_f32(v).to_bits()).collect();
    assert_eq!(bv.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want, "f32 → bf16");
    mixed::cast_bf16_to_f32(&b, &mut back).unwrap();
    assert_eq!(
        back.to_vec().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        bv.iter().map(|v| v.to_f32().to_bits()).collect::<Vec<_>>()
    );
    // NaN stays NaN.
    let gn = ctx.htod(&[f32::NAN]).unwrap();
    let mut hn = ctx.alloc::<f16>(1).unwrap();
    mixed::cast_f32_to_f16(&gn, &mut hn).unwrap();
    assert!(hn.to_vec().unwrap()[0].is_nan());
}

#[test]
fn loss_scaling_unscales_and_detects_overflow() {
    let Some(ctx) = common::device("loss_scale") else { return };
    let mut rng = Rng::new(54);
    let mut scaler = mixed::LossScaler::new(1024.0, 2).unwrap();
    let g = rng.vec(5000, -1.0, 1.0);
    let mut g1 = ctx.htod(&g).unwrap();
    mixed::scale(&mut g1, scaler.scale()).unwrap();
    let mut g2 = ctx.htod(&g).unwrap();
    mixed::scale(&mut g2, scaler.scale()).unwrap();
    assert!(scaler.unscale_and_update(&mut [&mut g1, &mut g2]).unwrap());
    assert_eq!(g1.to_vec().unwrap(), g, "scaling by a power of two and back is exact");
    assert_eq!((scaler.scale(), scaler.counter()), (1024.0, 1));
    // Second finite step doubles the scale (growth_steps = 2).
    assert!(scaler.unscale_and_update(&mut [&mut g1]).unwrap());
    assert_eq!((scaler.scale(), scaler.counter()), (2048.0, 0));
    // An overflow in any gradient is reported and halves the scale.
    let mut bad = g.clone();
    bad[4321] = f32::INFINITY;
    let mut g3 = ctx.htod(&bad).unwrap();
    assert!(!scaler.unscale_and_update(&mut [&mut g1, &mut g3]).unwrap());
    assert_eq!(scaler.scale(), 1024.0);
    // f16 gradients unscaled into f32.
    let gh: Vec<f16> = g.iter().map(|&v| f16::from_f32(v * 512.0)).collect();
    let src = ctx.htod(&gh).unwrap();
    let mut dst = ctx.alloc::<f32>(g.len()).unwrap();
    let mut flag = ctx.zeros::<i32>(1).unwrap();
    mixed::unscale_check_f16(&src, &mut dst, 1.0 / 512.0, &mut flag).unwrap();
    assert_eq!(flag.to_vec().unwrap(), vec![0]);
    let want: Vec<f64> = gh.iter().map(|v| v.to_f64() / 512.0).collect();
    assert_close("f16 unscale", &dst.to_vec().unwrap(), &want, 0.0);
}

#[test]
fn dropout_masks_match_the_host_philox() {
    let Some(ctx) = common::device("dropout") else { return };
    let mut rng = Rng::new(55);
    let n = 100_003;
    let x = rng.vec(n, -1.0, 1.0);
    let gx = ctx.htod(&x).unwrap();
    for (rate, seed, offset) in
        [(0.5, 1u64, 0u64), (0.1, 0xdead_beef_1234, 7), (0.0, 3, 1 << 40), (0.9, u64::MAX, u64::MAX)]
    {
        let mut out = ctx.alloc::<f32>(n).unwrap();
        dropout::dropout(&gx, &mut out, rate, seed, offset).unwrap();
        let scale = (1.0 / (1.0 - rate)) as f32;
        let want: Vec<f32> = (0..n)
            .map(|i| if philox::keep(seed, offset, i as u64, rate as f32) { x[i] * scale } else { 0.0 })
            .collect();
        assert_eq!(out.to_vec().unwrap(), want, "dropout rate {rate} seed {seed} offset {offset}");
        let mut mask = ctx.alloc::<u8>(n).unwrap();
        dropout::dropout_mask(&mut mask, rate, seed, offset).unwrap();
        let m = mask.to_vec().unwrap();
        let wm: Vec<u8> = (0..n).map(|i| philox::keep(seed, offset, i as u64, rate as f32) as u8).collect();
        assert_eq!(m, wm, "dropout mask rate {rate}");
        let kept = m.iter().filter(|&&k| k == 1).count() as f64 / n as f64;
        assert!((kept - (1.0 - rate)).abs() < 0.01, "kept {kept} at rate {rate}");
        let mut u = ctx.alloc::<f32>(n).unwrap();
        dropout::uniform(&mut u, seed, offset).unwrap();
        let wu: Vec<f32> = (0..n).map(|i| philox::uniform(seed, offset, i as u64)).collect();
        assert_eq!(u.to_vec().unwrap(), wu);
    }
    assert!(dropout::dropout(&gx, &mut ctx.alloc::<f32>(n).unwrap(), 1.0, 0, 0).is_err());
}
