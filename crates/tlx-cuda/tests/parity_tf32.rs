//! TF32 GEMMs and convolutions (opt-in, `CudaContext::set_allow_tf32`): in its own test binary
//! because the switch is per device and the other parity tests run on the same device in
//! parallel threads. TF32 rounds the operands to 10 explicit mantissa bits, so the stated
//! bound is a normwise relative error of 5e-3 (f32's is 1e-5), checked against f64.
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, up, Rng};
use tlx_core::{Conv2dGeometry, Padding};
use tlx_cuda::blas::{sgemm, Mat, MatMut};
use tlx_cuda::ops::conv;

/// The stated TF32 bound.
const TF32_TOL: f64 = 5e-3;

#[test]
fn tf32_gemm_and_conv_within_the_stated_bound() {
    let Some(ctx) = common::device("tf32") else { return };
    ctx.set_allow_tf32(true);
    let mut rng = Rng::new(60);
    let (m, k, n) = (256, 1152, 128);
    let a = rng.vec(m * k, -1.0, 1.0);
    let b = rng.vec(k * n, -1.0, 1.0);
    let (ga, gb) = (ctx.htod(&a).unwrap(), ctx.htod(&b).unwrap());
    let mut gc = ctx.alloc::<f32>(m * n).unwrap();
    sgemm(
        &ctx,
        1.0,
        Mat::row_major(&ga, m, k),
        Mat::row_major(&gb, k, n),
        0.0,
        MatMut::row_major(&mut gc, m, n),
    )
    .unwrap();
    let (a64, b64) = (up(&a), up(&b));
    let want: Vec<f64> =
        (0..m * n).map(|e| (0..k).map(|p| a64[(e / n) * k + p] * b64[p * n + e % n]).sum()).collect();
    assert_close("tf32 sgemm", &gc.to_vec().unwrap(), &want, TF32_TOL);

    let g = Conv2dGeometry::new(&[2, 16, 16, 64], &[3, 3, 64, 64], (1, 1), (1, 1), Padding::Same, 1).unwrap();
    let x = rng.vec(2 * 16 * 16 * 64, -1.0, 1.0);
    let w = rng.vec(3 * 3 * 64 * 64, -1.0, 1.0);
    let mut want = vec![0.0; 2 * 16 * 16 * 64];
    tlx_cpu::reference::conv2d_forward(&g, &up(&x), &up(&w), None, &mut want);
    let mut out = ctx.alloc::<f32>(want.len()).unwrap();
    conv::conv2d_forward(&g, &ctx.htod(&x).unwrap(), &ctx.htod(&w).unwrap(), None, &mut out).unwrap();
    assert_close("tf32 conv", &out.to_vec().unwrap(), &want, TF32_TOL);
    ctx.set_allow_tf32(false);
}
