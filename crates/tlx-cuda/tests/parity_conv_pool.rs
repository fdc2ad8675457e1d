//! CPU-vs-CUDA parity of convolution (im2col + cuBLAS, grouped, pointwise, depthwise; forward,
//! input gradient, kernel gradient, bias gradient) and pooling (max, average; forward and
//! backward) on random geometries with Keras's same/valid padding, strides and dilations.
//! Reference: `tlx_cpu::reference` in f64. Bound: 1e-5 (GEMMs in full f32; TF32 is checked
//! separately in `parity_tf32.rs`).
#![cfg(feature = "cuda")]

mod common;

use common::{assert_close, up, Rng, F32_TOL};
use tlx_core::{Conv2dGeometry, Padding, Pool2dGeometry};
use tlx_cpu::reference;
use tlx_cuda::ops::{conv, pool};
use tlx_cuda::CudaContext;

fn random_conv(rng: &mut Rng) -> Conv2dGeometry {
    loop {
        let kind = rng.below(4);
        let c_in = rng.range(1, 6) * if kind == 1 { 2 } else { 1 };
        let (groups, c_out) = match kind {
            1 => (2, 2 * rng.range(1, 4)),       // grouped
            2 => (c_in, c_in * rng.range(1, 3)), // depthwise, multiplier 1 or 2
            _ => (1, rng.range(1, 9)),           // ordinary
        };
        let (kh, kw) = (rng.range(1, 4), rng.range(1, 4));
        let input = [rng.range(1, 3), rng.range(1, 12), rng.range(1, 12), c_in];
        let kernel = [kh, kw, c_in / groups, c_out];
        let strides = (rng.range(1, 3), rng.range(1, 3));
        let dilation = if rng.below(3) == 0 { (rng.range(1, 2), rng.range(1, 2)) } else { (1, 1) };
        let padding = if rng.below(2) == 0 { Padding::Same } else { Padding::Valid };
        if let Ok(g) = Conv2dGeometry::new(&input, &kernel, strides, dilation, padding, groups) {
            return g;
        }
    }
}

/// Geometries of the real networks (scaled-down spatial sizes): VGG's 3×3 same, ResNet's 7×7
/// stride 2 and 1×1 projections, MobileNetV2's depthwise stride 2 and pointwise layers.
fn named_convs() -> Vec<Conv2dGeometry> {
    let g = |i: [usize; 4], k: [usize; 4], s: usize, p: Padding, groups: usize| {
        Conv2dGeometry::new(&i, &k, (s, s), (1, 1), p, groups).unwrap()
    };
    vec![
        g([2, 16, 16, 3], [3, 3, 3, 64], 1, Padding::Same, 1),
        g([2, 12, 12, 64], [3, 3, 64, 64], 1, Padding::Same, 1),
        g([1, 30, 30, 3], [7, 7, 3, 16], 2, Padding::Valid, 1),
        g([2, 9, 9, 32], [1, 1, 32, 48], 1, Padding::Valid, 1),
        g([2, 9, 9, 32], [1, 1, 32, 48], 2, Padding::Valid, 1),
        g([2, 15, 15, 24], [3, 3, 1, 24], 2, Padding::Same, 24),
        g([1, 8, 8, 16], [3, 3, 1, 32], 1, Padding::Same, 16),
        g([1, 10, 10, 8], [3, 3, 4, 8], 1, Padding::Same, 2),
    ]
}

fn numel(s: [usize; 4]) -> usize {
    s.iter().product()
}

fn check_conv(ctx: &CudaContext, rng: &mut Rng, g: &Conv2dGeometry) {
    let x = rng.vec(numel(g.input_shape()), -1.0, 1.0);
    let k = rng.vec(numel(g.kernel_shape()), -1.0, 1.0);
    let bias = rng.vec(g.c_out, -1.0, 1.0);
    let dy = rng.vec(numel(g.output_shape()), -1.0, 1.0);
    let (x64, k64, dy64) = (up(&x), up(&k), up(&dy));
    let (gx, gk, gbias, gdy) =
        (ctx.htod(&x).unwrap(), ctx.htod(&k).unwrap(), ctx.htod(&bias).unwrap(), ctx.htod(&dy).unwrap());
    for with_bias in [false, true] {
        let mut want = vec![0.0; numel(g.output_shape())];
        reference::conv2d_forward(g, &x64, &k64, with_bias.then_some(up(&bias)).as_deref(), &mut want);
        let mut out = ctx.alloc::<f32>(want.len()).unwrap();
        conv::conv2d_forward(g, &gx, &gk, with_bias.then_some(&gbias), &mut out).unwrap();
        assert_close(
            &format!("conv forward (bias {with_bias}) {g:?}"),
            &out.to_vec().unwrap(),
            &want,
            F32_TOL,
        );
    }
    let mut want = vec![0.0; x.len()];
    reference::conv2d_backward_input(g, &dy64, &k64, &mut want);
    let mut gi = ctx.alloc::<f32>(x.len()).unwrap();
    conv::conv2d_backward_input(g, &gdy, &gk, &mut gi).unwrap();
    assert_close(&format!("conv input gradient {g:?}"), &gi.to_vec().unwrap(), &want, F32_TOL);
    let mut want = vec![0.0; k.len()];
    reference::conv2d_backward_kernel(g, &x64, &dy64, &mut want);
    let mut gw = ctx.alloc::<f32>(k.len()).unwrap();
    conv::conv2d_backward_kernel(g, &gx, &gdy, &mut gw).unwrap();
    assert_close(&format!("conv kernel gradient {g:?}"), &gw.to_vec().unwrap(), &want, F32_TOL);
    let mut want = vec![0.0; g.c_out];
    for (i, &v) in dy64.iter().enumerate() {
        want[i % g.c_out] += v;
    }
    let mut gb = ctx.alloc::<f32>(g.c_out).unwrap();
    conv::bias_backward(&gdy, &mut gb).unwrap();
    assert_close(&format!("conv bias gradient {g:?}"), &gb.to_vec().unwrap(), &want, F32_TOL);
}

#[test]
fn convolution_forward_and_gradients_on_random_geometries() {
    let Some(ctx) = common::device("conv_random") else { return };
    let mut rng = Rng::new(20);
    for _ in 0..40 {
        let g = random_conv(&mut rng);
        check_conv(&ctx, &mut rng, &g);
    }
}

#[test]
fn convolution_on_network_geometries() {
    let Some(ctx) = common::device("conv_named") else { return };
    let mut rng = Rng::new(21);
    for g in named_convs() {
        check_conv(&ctx, &mut rng, &g);
    }
}

#[test]
fn convolution_tiles_larger_than_the_im2col_budget() {
    let Some(ctx) = common::device("conv_tiles") else { return };
    // K = 3·3·256 = 2304 and 2·48·48 = 4608 output rows: col would be 10.6 M elements for
    // the whole batch, under the budget; 4·64·64 rows (37.7 M) is not, so this one tiles.
    let g =
        Conv2dGeometry::new(&[4, 64, 64, 256], &[3, 3, 256, 8], (1, 1), (1, 1), Padding::Same, 1).unwrap();
    assert!(g.n * g.out_h * g.out_w * 3 * 3 * 256 > conv::COL_BUDGET);
    let mut rng = Rng::new(22);
    check_conv(&ctx, &mut rng, &g);
}

fn random_pool(rng: &mut Rng) -> Pool2dGeometry {
    loop {
        let input = [rng.range(1, 3), rng.range(1, 13), rng.range(1, 13), rng.range(1, 7)];
        let pool = (rng.range(1, 4), rng.range(1, 4));
        let strides = (rng.range(1, 3), rng.range(1, 3));
        let padding = if rng.below(2) == 0 { Padding::Same } else { Padding::Valid };
        if let Ok(g) = Pool2dGeometry::new(&input, pool, strides, padding) {
            return g;
        }
    }
}

#[test]
fn pooling_forward_and_backward() {
    let Some(ctx) = common::device("pool") else { return };
    let mut rng = Rng::new(23);
    let mut geoms: Vec<Pool2dGeometry> = (0..40).map(|_| random_pool(&mut rng)).collect();
    geoms.push(Pool2dGeometry::new(&[2, 28, 28, 64], (2, 2), (2, 2), Padding::Valid).unwrap()); // VGG
    geoms.push(Pool2dGeometry::new(&[2, 15, 15, 8], (3, 3), (2, 2), Padding::Same).unwrap()); // ResNet
    for g in geoms {
        let x = rng.vec(g.n * g.h * g.w * g.c, -1.0, 1.0);
        let n_out = g.n * g.out_h * g.out_w * g.c;
        let dy = rng.vec(n_out, -1.0, 1.0);
        let (x64, dy64) = (up(&x), up(&dy));
        let (gx, gdy) = (ctx.htod(&x).unwrap(), ctx.htod(&dy).unwrap());
        let mut out = ctx.alloc::<f32>(n_out).unwrap();
        let mut gi = ctx.alloc::<f32>(x.len()).unwrap();

        let mut want = vec![0.0; n_out];
        reference::max_pool2d_forward(&g, &x64, &mut want);
        pool::max_pool2d_forward(&g, &gx, &mut out).unwrap();
        assert_close(&format!("max pool {g:?}"), &out.to_vec().unwrap(), &want, F32_TOL);
        let mut want = vec![0.0; x.len()];
        reference::max_pool2d_backward(&g, &x64, &dy64, &mut want);
        pool::max_pool2d_backward(&g, &gx, &gdy, &mut gi).unwrap();
        assert_close(&format!("max pool backward {g:?}"), &gi.to_vec().unwrap(), &want, F32_TOL);

        let mut want = vec![0.0; n_out];
        reference::avg_pool2d_forward(&g, &x64, &mut want);
        pool::avg_pool2d_forward(&g, &gx, &mut out).unwrap();
        assert_close(&format!("avg pool {g:?}"), &out.to_vec().unwrap(), &want, F32_TOL);
        let mut want = vec![0.0; x.len()];
        reference::avg_pool2d_backward(&g, &dy64, &mut want);
        pool::avg_pool2d_backward(&g, &gdy, &mut gi).unwrap();
        assert_close(&format!("avg pool backward {g:?}"), &gi.to_vec().unwrap(), &want, F32_TOL);
    }
}
