//! The Winograd forward convolution against the f64 reference (`reference::conv2d_forward`):
//! both tile sizes, every padding, edge tiles cut by the image border, channel counts that
//! are not a multiple of the transforms' chunk, one and several blocks, serial and parallel,
//! with a bias or a fused epilogue; and the accuracy on a VGG-sized layer.

use super::tests::{fill, tiny_tuning};
use super::winograd::{Choice, Transform, F2, F4};
use super::*;
use crate::reference;
use tlx_core::Padding;

/// ‖got − want‖₂ / ‖want‖₂ (the conformance cases' measure).
fn normwise(got: &[f32], want: &[f64]) -> f64 {
    let diff: f64 = got.iter().zip(want).map(|(&g, &w)| (f64::from(g) - w).powi(2)).sum();
    let norm: f64 = want.iter().map(|w| w * w).sum();
    (diff / norm).sqrt()
}

fn to32(x: &[f64]) -> Vec<f32> {
    x.iter().map(|&v| v as f32).collect()
}

/// Runs `g` through Winograd with `tr` (bias, or an epilogue with everything in it) and
/// returns the normwise error against the reference; checks the path was taken by
/// comparing with the direct convolution's bits where it must differ.
fn error_of(tr: &'static Transform, g: &Conv2dGeometry, t: &Tuning, fused: bool, seed: u64) -> f64 {
    let numel = |s: [usize; 4]| s.iter().product::<usize>();
    let x = fill(numel(g.input_shape()), seed);
    let k = fill(numel(g.kernel_shape()), seed + 1);
    let bias = fill(g.c_out, seed + 2);
    let scale = fill(g.c_out, seed + 3);
    let residual = fill(numel(g.output_shape()), seed + 4);
    let mut want = vec![0.0; numel(g.output_shape())];
    reference::conv2d_forward(g, &x, &k, Some(&bias), &mut want);
    let (x32, k32, b32, s32, r32) = (to32(&x), to32(&k), to32(&bias), to32(&scale), to32(&residual));
    let t = Tuning { winograd: Choice::Force(tr), ..*t };
    assert!(winograd::choose(g, &t).is_some(), "{g:?} should run through Winograd");
    let mut got = vec![f32::NAN; want.len()];
    if fused {
        // act((conv + bias)·scale + r), ReLU: the reference does the same in f64.
        let ep = Epilogue {
            bias: Some(&b32),
            scale: Some(&s32),
            shift: None,
            residual: Some(&r32),
            act: EpilogueAct::Relu,
        };
        forward_with(g, &x32, &k32, None, Some(&ep), &mut got, &t);
        for (p, row) in want.chunks_exact_mut(g.c_out).enumerate() {
            for (ch, v) in row.iter_mut().enumerate() {
                *v = (*v * scale[ch] + f64::from(r32[p * g.c_out + ch])).max(0.0);
            }
        }
    } else {
        forward_with(g, &x32, &k32, Some(&b32), None, &mut got, &t);
    }
    assert!(got.iter().all(|v| v.is_finite()), "non-finite output");
    normwise(&got, &want)
}

fn geometry(n: usize, h: usize, w: usize, c: usize, k: usize, padding: Padding) -> Conv2dGeometry {
    Conv2dGeometry::new(&[n, h, w, c], &[3, 3, c, k], (1, 1), (1, 1), padding, 1).expect("geometry")
}

#[test]
fn winograd_matches_the_reference_on_every_padding_and_edge() {
    let explicit = Padding::Explicit { top: 2, bottom: 0, left: 1, right: 2 };
    let cases = [
        (1, 5, 5, 16, 16, Padding::Same),
        (2, 7, 9, 19, 21, Padding::Same),
        (1, 8, 6, 70, 17, Padding::Valid),
        (3, 6, 11, 16, 130, explicit),
        (2, 3, 3, 65, 64, Padding::Same),
        (1, 3, 4, 16, 16, Padding::Valid),
    ];
    // The public tuning (serial below the threshold) and one forcing parallel blocks.
    let tunings = [Tuning::new(), tiny_tuning(1, 0)];
    for (i, &(n, h, w, c, k, pad)) in cases.iter().enumerate() {
        let g = geometry(n, h, w, c, k, pad);
        for (tr, tol) in [(&F2, 1e-6), (&F4, 1e-5)] {
            for t in &tunings {
                for fused in [false, true] {
                    let err = error_of(tr, &g, t, fused, i as u64 * 10);
                    assert!(
                        err <= tol,
                        "F({0}x{0}) {g:?} fused {fused}: normwise error {err:e} > {tol:e}",
                        tr.m
                    );
                }
            }
        }
    }
}

#[test]
fn winograd_runs_many_blocks_in_parallel() {
    // 2 images of 30×30 at F(2×2): 450 tiles of 36 KiB of V and M (c = k = 128, rows padded
    // to 144), so a few blocks of at most 8 MiB, spread over the threads.
    let g = geometry(2, 30, 30, 128, 128, Padding::Same);
    for tr in [&F2, &F4] {
        let err = error_of(tr, &g, &tiny_tuning(1, 0), true, 7);
        assert!(err <= 1e-5, "F({0}x{0}): normwise error {err:e}", tr.m);
    }
}

#[test]
fn winograd_is_accurate_on_a_vgg_sized_layer() {
    // VGG16 block4_conv2's channels on a 14×14 map (block5's size): errors grow with the
    // depth of the sums, so this is the hard case. F(2×2): ~1e-7 like the direct
    // convolution; F(4×4): a few 1e-7.
    let g = geometry(1, 14, 14, 512, 512, Padding::Same);
    let direct = {
        let t = Tuning { winograd: Choice::Off, ..Tuning::new() };
        let numel = |s: [usize; 4]| s.iter().product::<usize>();
        let (x, k, bias) =
            (fill(numel(g.input_shape()), 3), fill(numel(g.kernel_shape()), 4), fill(g.c_out, 5));
        let mut want = vec![0.0; numel(g.output_shape())];
        reference::conv2d_forward(&g, &x, &k, Some(&bias), &mut want);
        let mut got = vec![0.0f32; want.len()];
        forward_with(&g, &to32(&x), &to32(&k), Some(&to32(&bias)), None, &mut got, &t);
        normwise(&got, &want)
    };
    let f2 = error_of(&F2, &g, &Tuning::new(), false, 3);
    let f4 = error_of(&F4, &g, &Tuning::new(), false, 3);
    eprintln!("normwise error, 14x14x512 -> 512: direct {direct:e}, F(2x2) {f2:e}, F(4x4) {f4:e}");
    assert!(
        direct < 1e-6 && f2 < 4.0 * direct.max(1e-7) && f4 < 1e-5,
        "direct {direct:e}, F2 {f2:e}, F4 {f4:e}"
    );
}

#[test]
fn the_written_out_tile_transforms_are_the_tables() {
    use super::winograd_tiles::{input2, input4, output2, output4};
    for tr in [&F2, &F4] {
        let (a, m) = (tr.alpha, tr.m);
        // Input: d = the unit tile at (y, x); V = Bᵀ d B has V[i][j] = Bᵀ[i][y]·Bᵀ[j][x].
        for (y, x) in (0..a).flat_map(|y| (0..a).map(move |x| (y, x))) {
            let get = |yy: usize, xx: usize| [if (yy, xx) == (y, x) { 1.0f32 } else { 0.0 }];
            let mut v = vec![f32::NAN; a * a];
            let put = |xi: usize, val: [f32; 1]| v[xi] = val[0];
            if m == 4 {
                input4::<1, true>(get, put)
            } else {
                input2::<1>(get, put)
            }
            for (xi, &got) in v.iter().enumerate() {
                let want = tr.bt[(xi / a) * a + y] * tr.bt[(xi % a) * a + x];
                assert_eq!(got, want, "F({m}x{m}) input transform of the unit at ({y}, {x}), xi {xi}");
            }
        }
        // Output: M = the unit at ξ; y = Aᵀ M A has y[i][j] = Aᵀ[i][ξ/α]·Aᵀ[j][ξ%α].
        for xi in 0..a * a {
            let get = |k: usize| [if k == xi { 1.0f32 } else { 0.0 }];
            let mut y = vec![f32::NAN; m * m];
            let put = |i: usize, j: usize, val: [f32; 1]| y[i * m + j] = val[0];
            if m == 4 {
                output4::<1, false>(get, put)
            } else {
                output2::<1>(get, put)
            }
            for (p, &got) in y.iter().enumerate() {
                let want = tr.at[(p / m) * a + xi / a] * tr.at[(p % m) * a + xi % a];
                assert_eq!(got, want, "F({m}x{m}) output transform of the unit at xi {xi}, pixel {p}");
            }
        }
    }
}

#[test]
fn the_cost_model_keeps_small_maps_direct_and_takes_large_ones_to_winograd() {
    let auto = Tuning { winograd: Choice::Auto, ..Tuning::new() };
    let pick = |n, hw, c| winograd::choose(&geometry(n, hw, hw, c, c, Padding::Same), &auto).map(|tr| tr.m);
    // ResNet50's last stage at batch 1 (7×7×512): the kernel transform costs more than it saves.
    assert_eq!(pick(1, 7, 512), None);
    // VGG16's block3 at batch 8 (56×56×256): F(4×4).
    assert_eq!(pick(8, 56, 256), Some(4));
    // A 1×1 or strided convolution never.
    let g =
        Conv2dGeometry::new(&[8, 56, 56, 256], &[3, 3, 256, 256], (2, 2), (1, 1), Padding::Same, 1).unwrap();
    assert_eq!(winograd::choose(&g, &auto).map(|tr| tr.m), None);
    // With the kernel transformed once and kept: ResNet50's 14×14×256 layers at batch 1 and
    // its last stage at batch 8 go to Winograd too; the last stage at batch 1 stays direct.
    let kept = |n, hw, c| {
        winograd::choose_for(&geometry(n, hw, hw, c, c, Padding::Same), &auto, true).map(|tr| tr.m)
    };
    assert_eq!(pick(1, 14, 256), None);
    assert_eq!(kept(1, 14, 256), Some(2));
    assert_eq!((pick(8, 7, 512), kept(8, 7, 512)), (None, Some(4)));
    assert_eq!(kept(1, 7, 512), None);
}

/// A kept kernel ([`WinogradKernel`]) gives the bits of the per-call transform with the same
/// tile size, with and without an epilogue, serial and parallel; it refuses other shapes.
#[test]
fn kept_winograd_kernels_give_the_per_call_bits() {
    for (tr, algorithm) in [(&F2, ConvAlgorithm::Winograd2x2), (&F4, ConvAlgorithm::Winograd4x4)] {
        for (g, t) in [
            (geometry(2, 9, 7, 19, 21, Padding::Same), tiny_tuning(1, 0)),
            (geometry(1, 12, 12, 16, 16, Padding::Valid), Tuning::new()),
        ] {
            let numel = |s: [usize; 4]| s.iter().product::<usize>();
            let x = to32(&fill(numel(g.input_shape()), 1));
            let k = to32(&fill(numel(g.kernel_shape()), 2));
            let shift = to32(&fill(g.c_out, 3));
            let residual = to32(&fill(numel(g.output_shape()), 4));
            let ep = Epilogue {
                bias: None,
                scale: None,
                shift: Some(&shift),
                residual: Some(&residual),
                act: EpilogueAct::Relu6,
            };
            let t = Tuning { winograd: Choice::Force(tr), ..t };
            let wk = WinogradKernel::new(algorithm, &g, &k).expect("fits");
            assert!(wk.bytes() >= 4 * tr.alpha * tr.alpha * g.c_in * g.c_out);
            for ep in [None, Some(&ep)] {
                let mut want = vec![f32::NAN; numel(g.output_shape())];
                forward_with(&g, &x, &k, None, ep, &mut want, &t);
                let mut got = vec![f32::NAN; want.len()];
                winograd::forward_kept(&wk, &g, &x, ep, &mut got, &t);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{algorithm:?} {g:?} epilogue {}", ep.is_some());
            }
        }
    }
    let g = geometry(1, 8, 8, 16, 16, Padding::Same);
    let k = vec![0.5f32; 9 * 16 * 16];
    assert!(WinogradKernel::new(ConvAlgorithm::Direct, &g, &k).is_none());
    assert!(WinogradKernel::new(ConvAlgorithm::Winograd4x4, &g, &k[1..]).is_none());
    let strided =
        Conv2dGeometry::new(&[1, 8, 8, 16], &[3, 3, 16, 16], (2, 2), (1, 1), Padding::Same, 1).unwrap();
    assert!(WinogradKernel::new(ConvAlgorithm::Winograd4x4, &strided, &k).is_none());
}

#[test]
fn winograd_input_gradient_matches_the_reference() {
    // Same, valid, uneven explicit pads up to 2 (the rotated kernel's padding is 2 − pad),
    // channel counts off the vector width; serial and parallel.
    let explicit = Padding::Explicit { top: 2, bottom: 0, left: 1, right: 2 };
    let cases = [
        (2, 7, 9, 19, 21, Padding::Same),
        (1, 8, 6, 70, 17, Padding::Valid),
        (3, 6, 11, 16, 40, explicit),
        (2, 30, 30, 64, 48, Padding::Same),
    ];
    for (i, &(n, h, w, c, k, pad)) in cases.iter().enumerate() {
        let g = geometry(n, h, w, c, k, pad);
        let numel = |s: [usize; 4]| s.iter().product::<usize>();
        let dy = fill(numel(g.output_shape()), 60 + i as u64);
        let kernel = fill(numel(g.kernel_shape()), 70 + i as u64);
        let mut want = vec![0.0; numel(g.input_shape())];
        reference::conv2d_backward_input(&g, &dy, &kernel, &mut want);
        for (tr, tol) in [(&F2, 1e-6), (&F4, 1e-5)] {
            for base in [Tuning::new(), tiny_tuning(1, 0)] {
                let t = Tuning { winograd: Choice::Force(tr), ..base };
                assert!(winograd::backward_input_plan(&g, &t).is_some(), "{g:?} should run through Winograd");
                let mut got = vec![f32::NAN; want.len()];
                backward_input_with(&g, &to32(&dy), &to32(&kernel), &mut got, &t);
                let err = normwise(&got, &want);
                assert!(err <= tol, "F({0}x{0}) input gradient of {g:?}: normwise error {err:e}", tr.m);
            }
        }
    }
    // Pads above 2 (or a stride) keep the direct path.
    let t = Tuning { winograd: Choice::Force(&F4), ..Tuning::new() };
    let wide = Padding::Explicit { top: 3, bottom: 0, left: 0, right: 0 };
    assert!(winograd::backward_input_plan(&geometry(1, 8, 8, 16, 16, wide), &t).is_none());
}
