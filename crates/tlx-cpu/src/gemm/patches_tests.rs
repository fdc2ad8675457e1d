//! Tests of A read as convolution patches (`Patches`): every micro-kernel, one and three
//! threads, B packed here or beforehand, with and without β and fused operations, must give
//! the same bits as the same product on the patches copied out into a matrix (im2col), on
//! geometries whose depth blocks split runs, with strides, dilation and sub-ranges of rows.

use super::driver::{self, ASource, BSource};
use super::tests::{isas, pool};
use super::*;

/// `[n, h, w, c_in]`, `(kh, kw)`, `(sh, sw)`, dilation_h, c_out.
type Case = ([usize; 4], (usize, usize), (usize, usize), usize, usize);

const CASES: &[Case] = &[
    // ResNet50's stem, small: 7×7 stride 2 over 3 channels (runs of 21 floats).
    ([1, 23, 23, 3], (7, 7), (2, 2), 1, 20),
    ([2, 9, 11, 5], (3, 3), (1, 1), 1, 17),
    // Runs of 300 floats: depth blocks (256 or fewer) start inside runs.
    ([1, 9, 12, 100], (3, 3), (1, 2), 1, 33),
    // A strided 1×1 convolution (one run per row, depth 600: several blocks).
    ([2, 10, 10, 600], (1, 1), (2, 2), 1, 40),
    // Dilated rows, unequal strides, a 3×2 kernel.
    ([1, 13, 9, 7], (3, 2), (2, 1), 2, 16),
    // Many rows (> MC): the many-rows nest and its bands.
    ([2, 30, 30, 3], (5, 5), (1, 1), 1, 24),
];

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 7 + seed * 13) % 29) as f32 / 16.0 - 0.9).collect()
}

/// The patches of rows `first..first + rows` copied out, `[rows, kh·kw·c_in]`, by the
/// definition of a convolution's patch (no use of `Patches`).
fn im2col(image: &[f32], case: &Case, first: usize, rows: usize) -> Vec<f32> {
    let &([_, h, w, c], (kh, kw), (sh, sw), dh, _) = case;
    let (out_h, out_w) = ((h - (kh - 1) * dh - 1) / sh + 1, (w - kw) / sw + 1);
    let mut col = Vec::with_capacity(rows * kh * kw * c);
    for pixel in first..first + rows {
        let (img, oy, ox) = (pixel / (out_h * out_w), pixel / out_w % out_h, pixel % out_w);
        for ky in 0..kh {
            for kx in 0..kw {
                let at = ((img * h + oy * sh + ky * dh) * w + ox * sw + kx) * c;
                col.extend_from_slice(&image[at..at + c]);
            }
        }
    }
    col
}

fn patches<'a>(image: &'a [f32], case: &Case, first: usize, rows: usize) -> Patches<'a> {
    let &(shape, kernel, strides, dh, _) = case;
    Patches::new(image, shape, kernel, strides, dh, first, rows)
}

/// Output pixels of a case.
fn pixels(case: &Case) -> usize {
    let &([n, h, w, _], (kh, kw), (sh, sw), dh, _) = case;
    n * ((h - (kh - 1) * dh - 1) / sh + 1) * ((w - kw) / sw + 1)
}

fn same_bits(what: &str, got: &[f32], want: &[f32]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{what}: element {i}: {g} vs {w}");
    }
}

#[test]
fn patches_read_what_im2col_copies() {
    for case in CASES {
        let image = values(case.0.iter().product(), 1);
        let all = pixels(case);
        for (first, rows) in [(0, all), (3, all - 5)] {
            let p = patches(&image, case, first, rows);
            let k = p.cols();
            let col = im2col(&image, case, first, rows);
            for r in 0..rows {
                for q in 0..k {
                    assert_eq!(p.at(r, q).to_bits(), col[r * k + q].to_bits(), "{case:?} row {r} depth {q}");
                }
            }
        }
    }
}

#[test]
fn products_on_patches_equal_products_on_their_copy_bit_for_bit() {
    for case in CASES {
        let image = values(case.0.iter().product(), 2);
        let all = pixels(case);
        let n = case.4;
        for (first, rows) in [(0, all), (5, all - 7)] {
            let p = patches(&image, case, first, rows);
            let k = p.cols();
            let col = im2col(&image, case, first, rows);
            let a = MatRef::row_major(&col, rows, k);
            let b = values(k * n, 3);
            let b = MatRef::row_major(&b, k, n);
            let bias: Vec<f32> = values(n, 4);
            let ops = OutputOps {
                bias: Some(&bias),
                scale: None,
                shift: None,
                residual: None,
                residual_in_c: false,
                act: crate::conv::EpilogueAct::Relu,
            };
            let ldc = n + 2;
            for isa in isas() {
                let ker = kernel::Kernel::for_isa(isa);
                for (beta, with_ops) in [(0.0, false), (1.0, false), (0.0, true)] {
                    let c0: Vec<f32> =
                        if beta == 0.0 { vec![f32::NAN; rows * ldc] } else { values(rows * ldc, 5) };
                    let ops = with_ops.then_some(&ops);
                    let run = |a: ASource<'_>, threads: usize| {
                        let mut c = c0.clone();
                        let mut go = || {
                            driver::sgemm(
                                &ker,
                                1.0,
                                a,
                                BSource::Matrix(b),
                                beta,
                                &mut c,
                                ldc,
                                threads,
                                0,
                                ops,
                            )
                        };
                        if threads > 1 {
                            pool().install(go);
                        } else {
                            go();
                        }
                        c
                    };
                    let want = run(ASource::Matrix(a), 1);
                    for threads in [1, 3] {
                        let got = run(ASource::Patches(p), threads);
                        let what = format!(
                            "{isa:?} {case:?} rows {first}+{rows} beta {beta} ops {with_ops} {threads}t"
                        );
                        same_bits(&what, &got, &want);
                    }
                }
            }
            // The public entry point, on a kernel packed beforehand, as a convolution runs it.
            let mut want = vec![0f32; rows * n];
            let mut got = vec![0f32; rows * n];
            with_packed_b(b, |pb| {
                gemm_packed(1.0, a, pb, 0.0, &mut want, n);
                pool().install(|| gemm_packed_patches(1.0, p, pb, 0.0, &mut got, n, true, None));
            });
            same_bits(&format!("packed {case:?}"), &got, &want);
        }
    }
}

#[test]
#[should_panic(expected = "does not fit")]
fn a_kernel_larger_than_the_image_is_refused() {
    let image = vec![0f32; 5 * 5 * 2];
    Patches::new(&image, [1, 5, 5, 2], (3, 6), (1, 1), 1, 0, 1);
}

#[test]
#[should_panic(expected = "exceeds its slice")]
fn an_image_larger_than_its_slice_is_refused() {
    let image = vec![0f32; 5 * 5 * 2 - 1];
    Patches::new(&image, [1, 5, 5, 2], (3, 3), (1, 1), 1, 0, 1);
}

#[test]
#[should_panic(expected = "rows")]
fn rows_past_the_last_pixel_are_refused() {
    let image = vec![0f32; 5 * 5 * 2];
    Patches::new(&image, [1, 5, 5, 2], (3, 3), (1, 1), 1, 4, 6);
}
