//! CPU-vs-CUDA parity of batch normalization: channel moments, the affine map, training and
//! inference coefficients, the moving-statistics update and the training-mode backward, on
//! `[rows, c]` data including shifted (large-mean) inputs. References: `tlx_cpu::reference`
//! in f64, and `tlx_tensor`'s `batch_norm_train` (f32) end to end. Bound 1e-5.
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, up, Rng, F32_TOL};
use tlx_cuda::ops::norm;
use tlx_tensor::Tensor;

#[test]
fn moments_affine_and_backward_match_the_reference() {
    let Some(ctx) = common::device("batch_norm") else { return };
    let mut rng = Rng::new(30);
    let mut shapes: Vec<(usize, usize)> = (0..12).map(|_| (rng.range(1, 300), rng.range(1, 70))).collect();
    shapes.push((32 * 28 * 28, 64)); // a VGG-sized batch of one layer
    shapes.push((5, 1000));
    for (rows, c) in shapes {
        let shift = rng.vec(c, -5.0, 5.0);
        let x: Vec<f32> = (0..rows * c).map(|i| shift[i % c] + rng.vec(1, -1.0, 1.0)[0]).collect();
        let x64 = up(&x);
        let gx = ctx.htod(&x).unwrap();
        let (mut mean, mut var) = (ctx.alloc::<f32>(c).unwrap(), ctx.alloc::<f32>(c).unwrap());
        norm::channel_moments(&gx, c, &mut mean, &mut var).unwrap();
        let (mut wm, mut wv) = (vec![0.0; c], vec![0.0; c]);
        tlx_cpu::reference::channel_moments(&x64, c, &mut wm, &mut wv);
        assert_close(&format!("mean [{rows}, {c}]"), &mean.to_vec().unwrap(), &wm, F32_TOL);
        assert_close(&format!("var [{rows}, {c}]"), &var.to_vec().unwrap(), &wv, F32_TOL);

        // Training coefficients and the normalised output.
        let gamma = rng.vec(c, 0.5, 1.5);
        let beta = rng.vec(c, -0.5, 0.5);
        let (gg, gb) = (ctx.htod(&gamma).unwrap(), ctx.htod(&beta).unwrap());
        let eps = 1e-3;
        let (mut inv_std, mut scale, mut shift_c) =
            (ctx.alloc::<f32>(c).unwrap(), ctx.alloc::<f32>(c).unwrap(), ctx.alloc::<f32>(c).unwrap());
        norm::batch_norm_train_coeffs(
            &mean,
            &var,
            Some(&gg),
            Some(&gb),
            eps,
            &mut inv_std,
            &mut scale,
            &mut shift_c,
        )
        .unwrap();
        let mut y = ctx.alloc::<f32>(rows * c).unwrap();
        norm::channel_affine(&gx, c, &scale, &shift_c, &mut y).unwrap();
        let wy: Vec<f64> = (0..rows * c)
            .map(|i| {
                let ch = i % c;
                (x64[i] - wm[ch]) / (wv[ch] + eps).sqrt() * gamma[ch] as f64 + beta[ch] as f64
            })
            .collect();
        assert_close(&format!("normalised [{rows}, {c}]"), &y.to_vec().unwrap(), &wy, F32_TOL);

        // Backward with the f32 statistics the forward pass produced.
        let dy = rng.vec(rows * c, -1.0, 1.0);
        let gdy = ctx.htod(&dy).unwrap();
        let (m32, s32) = (mean.to_vec().unwrap(), inv_std.to_vec().unwrap());
        for with_gamma in [true, false] {
            let (mut dx, mut dg, mut db) = (
                ctx.alloc::<f32>(rows * c).unwrap(),
                ctx.alloc::<f32>(c).unwrap(),
                ctx.alloc::<f32>(c).unwrap(),
            );
            norm::batch_norm_backward(
                &gx,
                c,
                &mean,
                &inv_std,
                with_gamma.then_some(&gg),
                &gdy,
                &mut dx,
                &mut dg,
                &mut db,
            )
            .unwrap();
            let (mut wdx, mut wdg, mut wdb) = (vec![0.0; rows * c], vec![0.0; c], vec![0.0; c]);
            let g64 = up(&gamma);
            tlx_cpu::reference::batch_norm_backward(
                &x64,
                c,
                &up(&m32),
                &up(&s32),
                with_gamma.then_some(&g64[..]),
                &up(&dy),
                &mut wdx,
                &mut wdg,
                &mut wdb,
            );
            let what = format!("bn backward [{rows}, {c}] gamma {with_gamma}");
            assert_close(&format!("{what} dx"), &dx.to_vec().unwrap(), &wdx, F32_TOL);
            assert_close(&format!("{what} dgamma"), &dg.to_vec().unwrap(), &wdg, F32_TOL);
            assert_close(&format!("{what} dbeta"), &db.to_vec().unwrap(), &wdb, F32_TOL);
        }
    }
}

#[test]
fn training_batch_norm_matches_tlx_tensor() {
    let Some(ctx) = common::device("batch_norm_tensor") else { return };
    let mut rng = Rng::new(31);
    let (n, h, w, c) = (4, 6, 5, 24);
    let x = rng.vec(n * h * w * c, -2.0, 3.0);
    let gamma = rng.vec(c, 0.5, 1.5);
    let beta = rng.vec(c, -0.5, 0.5);
    let eps = 1.001e-5;
    let t = Tensor::from_vec(x.clone(), [n, h, w, c]).unwrap();
    let (tg, tb) =
        (Tensor::from_vec(gamma.clone(), [c]).unwrap(), Tensor::from_vec(beta.clone(), [c]).unwrap());
    let (y, m, v) = t.batch_norm_train(Some(&tg), Some(&tb), eps).unwrap();
    let gx = ctx.htod(&x).unwrap();
    let (mut mean, mut var) = (ctx.alloc::<f32>(c).unwrap(), ctx.alloc::<f32>(c).unwrap());
    norm::channel_moments(&gx, c, &mut mean, &mut var).unwrap();
    let (gg, gb) = (ctx.htod(&gamma).unwrap(), ctx.htod(&beta).unwrap());
    let (mut inv_std, mut scale, mut shift) =
        (ctx.alloc::<f32>(c).unwrap(), ctx.alloc::<f32>(c).unwrap(), ctx.alloc::<f32>(c).unwrap());
    norm::batch_norm_train_coeffs(
        &mean,
        &var,
        Some(&gg),
        Some(&gb),
        eps,
        &mut inv_std,
        &mut scale,
        &mut shift,
    )
    .unwrap();
    let mut out = ctx.alloc::<f32>(x.len()).unwrap();
    norm::channel_affine(&gx, c, &scale, &shift, &mut out).unwrap();
    assert_close("mean vs tlx_tensor", &mean.to_vec().unwrap(), &up(&m.to_vec::<f32>().unwrap()), F32_TOL);
    assert_close("var vs tlx_tensor", &var.to_vec().unwrap(), &up(&v.to_vec::<f32>().unwrap()), F32_TOL);
    assert_close("y vs tlx_tensor", &out.to_vec().unwrap(), &up(&y.to_vec::<f32>().unwrap()), F32_TOL);

    // Moving statistics (tlx-nn's rule) and inference coefficients (tlx_tensor's arrangement).
    let momentum = 0.99;
    let moving: Vec<f32> = rng.vec(c, 0.5, 1.5);
    let mut gm = ctx.htod(&moving).unwrap();
    norm::update_moving(&mut gm, &var, momentum).unwrap();
    let vv = var.to_vec().unwrap();
    let want: Vec<f64> =
        moving.iter().zip(&vv).map(|(&a, &b)| a as f64 * momentum + b as f64 * (1.0 - momentum)).collect();
    assert_close("moving variance", &gm.to_vec().unwrap(), &want, F32_TOL);
    let tm = Tensor::from_vec(mean.to_vec().unwrap(), [c]).unwrap();
    let yi = t
        .batch_norm_inference(
            Some(&tg),
            Some(&tb),
            &tm,
            &Tensor::from_vec(gm.to_vec().unwrap(), [c]).unwrap(),
            eps,
        )
        .unwrap();
    let (mut sc, mut sh) = (ctx.alloc::<f32>(c).unwrap(), ctx.alloc::<f32>(c).unwrap());
    norm::batch_norm_inference_coeffs(&mean, &gm, Some(&gg), Some(&gb), eps, &mut sc, &mut sh).unwrap();
    norm::channel_affine(&gx, c, &sc, &sh, &mut out).unwrap();
    assert_close(
        "inference vs tlx_tensor",
        &out.to_vec().unwrap(),
        &up(&yi.to_vec::<f32>().unwrap()),
        F32_TOL,
    );
}
