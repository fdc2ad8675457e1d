//! The optimised convolution paths against `reference` on random geometries, in f64 (tight)
//! and f32, with the default tuning and with tiny tiles and thresholds that force multi-tile,
//! banded and parallel paths on small shapes.

use super::*;
use crate::reference;
use proptest::prelude::*;
use tlx_core::{Element, Padding};

pub(crate) fn fill(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(17);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn to32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Asserts `got` matches `want` within `tol` relative to the larger of 1 and `want`'s scale.
pub(crate) fn assert_close<T: Float>(what: &str, got: &[T], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let g = Element::to_f64(*g);
        assert!((g - w).abs() <= tol * scale, "{what}: element {i}: got {g}, want {w} (scale {scale})");
    }
}

pub(crate) fn tiny_tuning(min_rows: usize, partial_limit: usize) -> Tuning {
    Tuning {
        col_budget: 1,
        min_tile_rows: min_rows,
        parallel_threshold: 0,
        partial_limit,
        threads: crate::par::threads().max(2),
        winograd: winograd::Choice::Off,
        patches_in_place: true,
    }
}

/// Runs all three kernels in f64 and f32 against the reference.
fn check(g: &Conv2dGeometry, with_bias: bool, t: &Tuning, seed: u64) {
    let numel = |s: [usize; 4]| s.iter().product::<usize>();
    let x = fill(numel(g.input_shape()), seed);
    let k = fill(numel(g.kernel_shape()), seed + 1);
    let dy = fill(numel(g.output_shape()), seed + 2);
    let bias = with_bias.then(|| fill(g.c_out, seed + 3));

    let mut want_y = vec![0.0; dy.len()];
    reference::conv2d_forward(g, &x, &k, bias.as_deref(), &mut want_y);
    let mut want_dx = vec![0.0; x.len()];
    reference::conv2d_backward_input(g, &dy, &k, &mut want_dx);
    let mut want_dk = vec![0.0; k.len()];
    reference::conv2d_backward_kernel(g, &x, &dy, &mut want_dk);

    let mut y = vec![f64::NAN; dy.len()];
    forward_with(g, &x, &k, bias.as_deref(), None, &mut y, t);
    assert_close("forward f64", &y, &want_y, 1e-12);
    let mut dx = vec![f64::NAN; x.len()];
    backward_input_with(g, &dy, &k, &mut dx, t);
    assert_close("backward_input f64", &dx, &want_dx, 1e-12);
    let mut dk = vec![f64::NAN; k.len()];
    backward_kernel_with(g, &x, &dy, &mut dk, t);
    assert_close("backward_kernel f64", &dk, &want_dk, 1e-12);

    let (x32, k32, dy32) = (to32(&x), to32(&k), to32(&dy));
    let b32 = bias.as_deref().map(to32);
    let mut y = vec![f32::NAN; dy.len()];
    forward_with(g, &x32, &k32, b32.as_deref(), None, &mut y, t);
    assert_close("forward f32", &y, &want_y, 1e-5);
    check_fused(g, &x32, &k32, b32.as_deref(), t, seed);
    let mut dx = vec![f32::NAN; x.len()];
    backward_input_with(g, &dy32, &k32, &mut dx, t);
    assert_close("backward_input f32", &dx, &want_dx, 1e-5);
    let mut dk = vec![f32::NAN; k.len()];
    backward_kernel_with(g, &x32, &dy32, &mut dk, t);
    assert_close("backward_kernel f32", &dk, &want_dk, 1e-5);
}

/// The fused forward equals the plain one (no bias) followed by the epilogue, bit for bit,
/// for every mix of bias, scale, shift, residual and activation.
fn check_fused(g: &Conv2dGeometry, x: &[f32], k: &[f32], bias: Option<&[f32]>, t: &Tuning, seed: u64) {
    let mut plain = vec![f32::NAN; g.output_shape().iter().product()];
    forward_with(g, x, k, None, None, &mut plain, t);
    let scale = to32(&fill(g.c_out, seed + 4));
    let shift = to32(&fill(g.c_out, seed + 5));
    let act = [EpilogueAct::Linear, EpilogueAct::Relu, EpilogueAct::Relu6][seed as usize % 3];
    let residual = to32(&fill(plain.len(), seed + 6));
    let ep = Epilogue {
        bias,
        scale: seed.is_multiple_of(2).then_some(&scale[..]),
        shift: (seed % 4 < 2).then_some(&shift[..]),
        residual: (seed % 5 < 2).then_some(&residual[..]),
        act,
    };
    let mut want = plain.to_vec();
    ep.apply(&mut want, g.c_out, 0);
    let mut got = vec![f32::NAN; plain.len()];
    forward_with(g, x, k, None, Some(&ep), &mut got, t);
    assert_eq!(got, want, "fused forward with {ep:?} differs from the separate epilogue");
}

fn padding() -> impl Strategy<Value = Padding> {
    prop_oneof![
        Just(Padding::Same),
        Just(Padding::Valid),
        (0usize..3, 0usize..3, 0usize..3, 0usize..3)
            .prop_map(|(top, bottom, left, right)| Padding::Explicit { top, bottom, left, right }),
    ]
}

fn tuning() -> impl Strategy<Value = Tuning> {
    prop_oneof![
        Just(Tuning::new()),
        (1usize..6, prop_oneof![Just(0usize), Just(usize::MAX)]).prop_map(|(r, p)| tiny_tuning(r, p)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn grouped_and_dense_convolutions_match_reference(
        n in 1usize..=3, h in 1usize..=9, w in 1usize..=9,
        groups in 1usize..=3, cig in 1usize..=3, cog in 1usize..=4,
        kh in 1usize..=4, kw in 1usize..=4, sh in 1usize..=3, sw in 1usize..=3,
        dh in 1usize..=2, dw in 1usize..=2, pad in padding(), bias: bool,
        t in tuning(), seed in 0u64..1000,
    ) {
        let geometry = Conv2dGeometry::new(
            &[n, h, w, groups * cig], &[kh, kw, cig, groups * cog], (sh, sw), (dh, dw), pad, groups);
        prop_assume!(geometry.is_ok());
        check(&geometry.unwrap(), bias, &t, seed);
    }

    #[test]
    fn depthwise_convolutions_match_reference(
        n in 1usize..=3, h in 1usize..=9, w in 1usize..=9, c in 2usize..=6, mult in 1usize..=3,
        kh in 1usize..=4, kw in 1usize..=4, sh in 1usize..=3, sw in 1usize..=3,
        dh in 1usize..=2, dw in 1usize..=2, pad in padding(), bias: bool,
        t in tuning(), seed in 0u64..1000,
    ) {
        let geometry = Conv2dGeometry::new(&[n, h, w, c], &[kh, kw, 1, c * mult], (sh, sw), (dh, dw), pad, c);
        prop_assume!(geometry.is_ok());
        let g = geometry.unwrap();
        prop_assert!(g.is_depthwise());
        check(&g, bias, &t, seed);
    }

    #[test]
    fn short_patch_convolutions_match_reference(
        n in 1usize..=2, h in 1usize..=8, w in 1usize..=9, c_in in 1usize..=4, c_out in 1usize..=40,
        kh in 1usize..=3, kw in 1usize..=3, sh in 1usize..=2, sw in 1usize..=2, pad in padding(),
        bias: bool, t in tuning(), seed in 0u64..1000,
    ) {
        let geometry = Conv2dGeometry::new(&[n, h, w, c_in], &[kh, kw, c_in, c_out], (sh, sw), (1, 1), pad, 1);
        prop_assume!(geometry.is_ok());
        check(&geometry.unwrap(), bias, &t, seed);
    }

    #[test]
    fn convolutions_reading_patches_in_place_match_reference_and_im2col_bit_for_bit(
        n in 1usize..=2, h in 1usize..=12, w in 1usize..=12, c_in in 5usize..=20, c_out in 1usize..=40,
        kh in 1usize..=4, kw in 1usize..=4, sh in 1usize..=3, sw in 1usize..=3,
        dh in 1usize..=2, dw in 1usize..=2, pad in padding(), bias: bool,
        t in tuning(), seed in 0u64..1000,
    ) {
        let geometry = Conv2dGeometry::new(&[n, h, w, c_in], &[kh, kw, c_in, c_out], (sh, sw), (dh, dw), pad, 1);
        prop_assume!(geometry.is_ok());
        let g = geometry.unwrap();
        // Longer patches than `small_k` takes, not pointwise: the GEMM path.
        prop_assume!(kh * kw * c_in > small_k::MAX_K && !g.is_pointwise());
        let t = Tuning { winograd: winograd::Choice::Off, patches_in_place: true, ..t };
        check(&g, bias, &t, seed);
        // The same bits as through im2col's column buffer, with a fused epilogue.
        let numel = |s: [usize; 4]| s.iter().product::<usize>();
        let x = to32(&fill(numel(g.input_shape()), seed));
        let k = to32(&fill(numel(g.kernel_shape()), seed + 1));
        let b = to32(&fill(c_out, seed + 2));
        let ep = Epilogue { bias: Some(&b[..]), act: EpilogueAct::Relu, ..Epilogue::identity() };
        let mut got = vec![f32::NAN; numel(g.output_shape())];
        forward_with(&g, &x, &k, None, Some(&ep), &mut got, &t);
        let mut want = vec![f32::NAN; got.len()];
        forward_with(&g, &x, &k, None, Some(&ep), &mut want, &Tuning { patches_in_place: false, ..t });
        prop_assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{g:?}");
    }

    #[test]
    fn pointwise_convolutions_match_reference(
        n in 1usize..=3, h in 1usize..=7, w in 1usize..=7, c_in in 1usize..=9, c_out in 1usize..=9,
        bias: bool, t in tuning(), seed in 0u64..1000,
    ) {
        let g = Conv2dGeometry::new(&[n, h, w, c_in], &[1, 1, c_in, c_out], (1, 1), (1, 1), Padding::Valid, 1)
            .unwrap();
        prop_assert!(g.is_pointwise());
        check(&g, bias, &t, seed);
    }

    #[test]
    fn strided_and_padded_1x1_convolutions_match_reference(
        n in 1usize..=4, h in 1usize..=11, w in 1usize..=11, c_in in 1usize..=9, c_out in 1usize..=9,
        sh in 1usize..=4, sw in 1usize..=4, pad in padding(), bias: bool,
        t in tuning(), seed in 0u64..1000,
    ) {
        let geometry = Conv2dGeometry::new(&[n, h, w, c_in], &[1, 1, c_in, c_out], (sh, sw), (1, 1), pad, 1);
        prop_assume!(geometry.is_ok());
        let g = geometry.unwrap();
        prop_assume!(strided_1x1::applies(&g));
        // `check` starts the input gradient at NaN: a pixel left unwritten fails.
        check(&g, bias, &t, seed);
    }
}

#[test]
fn kernel_as_large_as_the_input_and_single_pixels() {
    for t in [Tuning::new(), tiny_tuning(1, 0), tiny_tuning(3, usize::MAX)] {
        for (shape, kernel, s, pad) in [
            ([2, 5, 4, 3], [5, 4, 3, 2], (1, 1), Padding::Valid),
            ([1, 1, 1, 4], [3, 3, 4, 5], (1, 1), Padding::Same),
            ([3, 6, 6, 2], [6, 6, 2, 3], (2, 3), Padding::Same),
            ([2, 3, 3, 1], [1, 1, 1, 4], (2, 2), Padding::Valid),
        ] {
            let g = Conv2dGeometry::new(&shape, &kernel, s, (1, 1), pad, 1).unwrap();
            check(&g, true, &t, 7);
        }
    }
}

#[test]
fn larger_shapes_cross_every_tiling_threshold() {
    // Big enough for the default tuning to go parallel, tile across images and band the
    // input gradient; small enough for the reference to stay fast.
    for (shape, kernel, s, d, groups) in [
        ([2, 20, 18, 6], [3, 3, 6, 8], (1, 1), (1, 1), 1),
        ([3, 17, 15, 4], [3, 3, 2, 6], (2, 2), (1, 1), 2),
        ([1, 23, 21, 8], [3, 3, 1, 8], (1, 1), (2, 2), 8),
        ([2, 16, 16, 8], [1, 1, 8, 16], (1, 1), (1, 1), 1),
        // A strided 1×1 projection: input gradient in bands of output rows.
        ([3, 30, 22, 8], [1, 1, 8, 16], (2, 2), (1, 1), 1),
        ([2, 21, 19, 3], [3, 3, 3, 37], (1, 1), (1, 1), 1),
        // Patches of 288 floats: column rows padded (`im2col::col_stride`), two tiles
        // sharing one packed kernel.
        ([2, 20, 18, 32], [3, 3, 32, 8], (1, 1), (1, 1), 1),
    ] {
        let g = Conv2dGeometry::new(&shape, &kernel, s, d, Padding::Same, groups).unwrap();
        check(&g, true, &Tuning::new(), 3);
    }
}

#[test]
fn empty_batches_and_kernels_are_handled() {
    let g = Conv2dGeometry::new(&[0, 4, 4, 2], &[3, 3, 2, 3], (1, 1), (1, 1), Padding::Same, 1).unwrap();
    let mut dk = vec![f32::NAN; 54];
    conv2d_backward_kernel(&g, &[], &[], &mut dk);
    assert!(dk.iter().all(|&v| v == 0.0));
    let mut y: Vec<f32> = vec![];
    conv2d_forward(&g, &[], &[0.0; 54], None, &mut y);
}
