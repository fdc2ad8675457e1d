//! Tests of the GEMM: every micro-kernel this CPU can run (forced through `gemm_with`), on
//! one and on several threads, against an f64 reference on odd shapes, strided and
//! transposed views, α/β variants (β = 0 over NaN), empty depth, shapes that cross every
//! block boundary, and the packing layouts themselves.

use super::depth_split;
use super::pack::{a_len, b_len, pack_a, pack_b};
use super::*;
use crate::reference;
use proptest::prelude::*;

fn fill(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f64 / (1u64 << 31) as f64) - 0.5
        })
        .collect()
}

#[test]
fn matches_reference_for_strides_and_sizes() {
    for &(m, k, n) in &[
        (1, 1, 1),
        (3, 5, 2),
        (17, 33, 9),
        (130, 70, 90),
        (0, 3, 4),
        (4, 0, 3),
        (20, 50, 700),
        (700, 30, 40),
        (2100, 9, 33),
    ] {
        let a = fill(m * k, 1);
        let b = fill(k * n, 2);
        // A transposed in memory: stored [k, m].
        let mut at = vec![0.0; m * k];
        for i in 0..m {
            for p in 0..k {
                at[p * m + i] = a[i * k + p];
            }
        }
        let a_view = MatRef::row_major(&at, k, m).t();
        let mut c = fill(m * n, 3);
        let mut want = c.clone();
        reference::gemm(m, k, n, 0.5, &a, &b, 2.0, &mut want);
        gemm(0.5, a_view, MatRef::row_major(&b, k, n), 2.0, &mut c, n);
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-12, "{m}x{k}x{n}: {x} vs {y}");
        }
        let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
        let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        let mut c32 = vec![f32::NAN; m * n];
        gemm(1.0, MatRef::row_major(&a32, m, k), MatRef::row_major(&b32, k, n), 0.0, &mut c32, n);
        let mut want = vec![0.0; m * n];
        reference::gemm(m, k, n, 1.0, &a, &b, 0.0, &mut want);
        for (x, y) in c32.iter().zip(&want) {
            assert!((*x as f64 - y).abs() < 1e-4, "{m}x{k}x{n} f32: {x} vs {y}");
        }
    }
}

#[test]
fn f32_paths_handle_strides_edges_alpha_and_beta() {
    // Odd shapes, both split directions, single-threaded and parallel, transposed A.
    for &(m, k, n) in &[(37, 45, 70), (121, 257, 33), (13, 300, 2100), (250, 40, 250), (64, 513, 96)] {
        let a = fill(m * k, 11);
        let b = fill(k * n, 12);
        let c0 = fill(m * n, 13);
        let mut want = c0.clone();
        reference::gemm(m, k, n, 1.5, &a, &b, 0.5, &mut want);
        let mut want0 = vec![0.0; m * n];
        reference::gemm(m, k, n, 1.5, &a, &b, 0.0, &mut want0);
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        // A stored transposed ([k, m]), B row-major.
        let mut at = vec![0.0; m * k];
        for i in 0..m {
            for p in 0..k {
                at[p * m + i] = a[i * k + p];
            }
        }
        let (a32, at32, b32) = (f(&a), f(&at), f(&b));
        let views = [MatRef::row_major(&a32, m, k), MatRef::row_major(&at32, k, m).t()];
        for (vi, av) in views.into_iter().enumerate() {
            for serial in [false, true] {
                let mut c = f(&c0);
                let mut c_nan = vec![f32::NAN; m * n];
                let bv = MatRef::row_major(&b32, k, n);
                if serial {
                    gemm_serial(1.5, av, bv, 0.5, &mut c, n);
                    gemm_serial(1.5, av, bv, 0.0, &mut c_nan, n);
                } else {
                    gemm(1.5, av, bv, 0.5, &mut c, n);
                    gemm(1.5, av, bv, 0.0, &mut c_nan, n);
                }
                for ((x, y), (x0, y0)) in c.iter().zip(&want).zip(c_nan.iter().zip(&want0)) {
                    assert!(
                        (*x as f64 - y).abs() < 1e-3,
                        "{m}x{k}x{n} view {vi} serial {serial}: {x} vs {y}"
                    );
                    assert!((*x0 as f64 - y0).abs() < 1e-3, "{m}x{k}x{n} beta 0: {x0} vs {y0}");
                }
            }
        }
    }
}

/// Every micro-kernel this CPU can run.
pub(super) fn isas() -> Vec<Isa> {
    [Isa::Portable, Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.supported()).collect()
}

/// A 3-thread pool, so that thread splits are uneven as well as even.
pub(super) fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap())
}

/// A logical `[rows, cols]` matrix stored row-major (or transposed: `[cols, rows]`) with
/// `pad` unused elements after every stored row.
struct Stored {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
    trans: bool,
    pad: usize,
}

impl Stored {
    fn new(rows: usize, cols: usize, trans: bool, pad: usize, seed: u64) -> Stored {
        let (outer, inner) = if trans { (cols, rows) } else { (rows, cols) };
        // Padding holds NaN: reading it would poison the result.
        let mut data = vec![f32::NAN; outer * (inner + pad)];
        let vals = fill(rows * cols, seed);
        for i in 0..rows {
            for j in 0..cols {
                let at = if trans { j * (inner + pad) + i } else { i * (inner + pad) + j };
                data[at] = vals[i * cols + j] as f32;
            }
        }
        Stored { data, rows, cols, trans, pad }
    }

    fn view(&self) -> MatRef<'_, f32> {
        let ld = if self.trans { self.rows } else { self.cols } + self.pad;
        let (rs, cs) = if self.trans { (1, ld) } else { (ld, 1) };
        MatRef { data: &self.data, rows: self.rows, cols: self.cols, row_stride: rs, col_stride: cs }
    }

    fn at(&self, i: usize, j: usize) -> f64 {
        let v = self.view();
        v.data[i * v.row_stride + j * v.col_stride] as f64
    }
}

/// Checks `C ← α·A·B + β·C` for one case against an f64 reference with an error bound of
/// a few ulps per term; C has row stride `n + 3` and the gaps must come back untouched.
#[allow(clippy::too_many_arguments)]
fn check_case(
    isa: Isa,
    threads: usize,
    mkn: (usize, usize, usize),
    ta: bool,
    tb: bool,
    pad: usize,
    alpha: f32,
    beta: f32,
) {
    check_case_with(isa, threads, driver::SHARED_B_WORK, mkn, ta, tb, pad, alpha, beta);
}

/// [`check_case`] with the size (multiply-adds) from which threads share one packed B.
#[allow(clippy::too_many_arguments)]
fn check_case_with(
    isa: Isa,
    threads: usize,
    shared_b_work: usize,
    (m, k, n): (usize, usize, usize),
    ta: bool,
    tb: bool,
    pad: usize,
    alpha: f32,
    beta: f32,
) {
    let a = Stored::new(m, k, ta, pad, (m * 31 + k) as u64);
    let b = Stored::new(k, n, tb, pad, (n * 17 + k + 5) as u64);
    let ldc = n + 3;
    const GAP: f32 = 12345.0;
    let c0: Vec<f32> = (0..m * ldc)
        .map(|x| match (x % ldc < n, beta == 0.0) {
            (false, _) => GAP,
            (true, true) => f32::NAN,
            (true, false) => ((x * 7 % 13) as f32 - 6.0) / 8.0,
        })
        .collect();
    let mut c = c0.clone();
    let ker = kernel::Kernel::for_isa(isa);
    let mut run = || {
        let b = driver::BSource::Matrix(b.view());
        driver::sgemm(
            &ker,
            alpha,
            driver::ASource::Matrix(a.view()),
            b,
            beta,
            &mut c,
            ldc,
            threads,
            shared_b_work,
            None,
        )
    };
    if threads > 1 {
        pool().install(run);
    } else {
        run();
    }
    for i in 0..m {
        for j in 0..ldc {
            let got = c[i * ldc + j];
            if j >= n {
                assert_eq!(got, GAP, "{isa:?} {m}x{k}x{n}: C gap ({i}, {j}) overwritten");
                continue;
            }
            let (mut sum, mut bound) = (0.0, 0.0);
            for p in 0..k {
                sum += a.at(i, p) * b.at(p, j);
                bound += (a.at(i, p) * b.at(p, j)).abs();
            }
            let old = if beta == 0.0 { 0.0 } else { beta as f64 * c0[i * ldc + j] as f64 };
            let want = alpha as f64 * sum + old;
            let tol = 1e-6
                + 4.0 * (k as f64 + 2.0) * f32::EPSILON as f64 * (alpha.abs() as f64 * bound + old.abs());
            assert!(
                (got as f64 - want).abs() <= tol,
                "{isa:?} t{threads} {m}x{k}x{n} ta={ta} tb={tb} pad={pad} α={alpha} β={beta}: \
                 C({i}, {j}) = {got}, want {want}"
            );
        }
    }
}

#[test]
fn every_kernel_matches_reference_on_every_small_dimension() {
    // Each dimension from 1 to 67 with the others odd, rotating through layouts, paddings,
    // α/β (β = 0 over NaN) and thread counts.
    const AB: [(f32, f32); 4] = [(1.0, 0.0), (0.5, 2.0), (-1.5, 1.0), (2.0, -0.25)];
    for isa in isas() {
        for d in 1..=67 {
            let v = d % 8;
            let (ta, tb, pad) = (v & 1 == 1, v & 2 == 2, v % 3);
            let (alpha, beta) = AB[d % 4];
            let threads = 1 + (d % 3 == 0) as usize * 2;
            for shape in [(d, 13, 29), (7, d, 33), (11, 19, d), (d, d, d)] {
                check_case(isa, threads, shape, ta, tb, pad, alpha, beta);
            }
        }
    }
}

#[test]
fn every_kernel_handles_empty_depth_and_empty_outputs() {
    for isa in isas() {
        for threads in [1, 3] {
            for (alpha, beta) in [(1.0, 0.0), (1.0, 2.0), (0.5, 1.0)] {
                check_case(isa, threads, (5, 0, 7), false, false, 0, alpha, beta);
                check_case(isa, threads, (40, 0, 3), true, true, 1, alpha, beta);
                check_case(isa, threads, (0, 9, 7), false, true, 0, alpha, beta);
                check_case(isa, threads, (6, 9, 0), true, false, 2, alpha, beta);
            }
        }
    }
}

#[test]
fn every_kernel_crosses_every_block_boundary() {
    for isa in isas() {
        let ker = kernel::Kernel::for_isa(isa);
        let tile = match isa {
            Isa::Portable => (4, 8),
            Isa::Avx2 => (6, 16),
            Isa::Avx512 => (12, 32),
        };
        assert_eq!((ker.mr, ker.nr), tile, "{isa:?} is supported, so it gets its own kernel");
        let (mr, nr, mc, kc) = (ker.mr, ker.nr, ker.mc, ker.kc);
        let shapes = [
            (mc, kc, nr),                 // one block exactly, few-rows nest
            (mc + 1, kc + 1, 2 * nr + 3), // many-rows nest, two depth blocks
            (2 * mc + 5, 2 * kc + 3, 45), // several A blocks, three depth blocks
            (3 * mr + 1, 517, 61),        // few rows, long depth
            (mc + 7, 3, ker.nc + nr + 5), // two B slabs
            (mc + 1, kc, 300),            // a B slab big enough to pack in parallel
            (1, 300, 301),                // a row vector
            (97, 131, 1),                 // a column vector
            (32, 784, 300),               // MLP forward
        ];
        for (s, &shape) in shapes.iter().enumerate() {
            let (ta, tb, pad, beta) = (s % 2 == 1, s % 3 == 1, s % 2, (s % 2) as f32);
            // One thread; threads with a private B each; threads sharing one packed B.
            for (threads, shared_b_work) in [(1, usize::MAX), (3, usize::MAX), (3, 0), (2, 0)] {
                check_case_with(isa, threads, shared_b_work, shape, ta, tb, pad, 1.0, beta);
            }
        }
        // MLP backward: dX = dY·Wᵀ (B transposed), dW = Xᵀ·dY (A transposed).
        check_case(isa, 3, (32, 300, 784), false, true, 0, 1.0, 0.0);
        check_case(isa, 3, (784, 32, 300), true, false, 0, 1.0, 1.0);
    }
}

#[test]
fn deep_narrow_products_split_their_depth_and_match_the_reference() {
    // k ≫ m, n (a 1×1 convolution's kernel gradient): parts of whole depth blocks on 2 and
    // 3 threads (the last part short), few-rows and many-rows nests inside the parts, A
    // transposed (Xᵀ·dY) or not, β = 0 over NaN and β = 1, padded C rows left alone.
    for isa in isas() {
        let ker = kernel::Kernel::for_isa(isa);
        let (mr, nr, mc, kc) = (ker.mr, ker.nr, ker.mc, ker.kc);
        let shapes =
            [(mr + 1, 9 * kc + 7, 2 * nr + 3), (2 * mr, 6 * kc, nr), (mc + 5, 4 * (mc + 5) + 6 * kc + 1, 40)];
        for (s, &(m, k, n)) in shapes.iter().enumerate() {
            for threads in [2, 3] {
                let parts = depth_split::parts(&ker, m, k, n, threads);
                assert!(parts >= threads, "{isa:?} {m}x{k}x{n} on {threads} threads: {parts} parts");
                let (ta, beta, alpha) = (s != 1, (threads == 2) as u8 as f32, if s == 0 { 0.5 } else { 1.0 });
                check_case(isa, threads, (m, k, n), ta, false, s % 2, alpha, beta);
            }
        }
    }
    // Not split: one thread, wide products, shallow ones.
    let ker = kernel::Kernel::for_isa(Isa::detect());
    assert_eq!(depth_split::parts(&ker, 64, 25088, 256, 1), 1);
    assert_eq!(depth_split::parts(&ker, 1024, 4096, 1024, 2), 1);
    assert_eq!(depth_split::parts(&ker, 64, 200, 64, 2), 1);
    assert!(depth_split::parts(&ker, 64, 25088, 256, 2) >= 2);
}

#[test]
fn b_rows_4k_apart_are_packed_and_still_right() {
    // Row stride 1024 (packed instead of read in place) next to 1000 (read in place).
    for isa in isas() {
        for pad in [24, 0] {
            check_case(isa, 1, (20, 70, 1000), false, false, pad, 1.0, 0.5);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_shapes_layouts_and_scalars(
        m in 0usize..80, k in 0usize..80, n in 0usize..80,
        ta: bool, tb: bool, pad in 0usize..3, isa_i in 0usize..3, threads in 1usize..4,
        ab in prop::sample::select(vec![(1.0f32, 0.0f32), (1.0, 1.0), (-0.75, 0.5), (3.0, 0.0)]),
    ) {
        let isas = isas();
        check_case(isas[isa_i % isas.len()], threads, (m, k, n), ta, tb, pad, ab.0, ab.1);
    }
}

#[test]
fn packing_layouts() {
    // value(i, j) = 1000·i + j, stored row-major, transposed, and with column stride 2.
    let (rows, cols) = (11, 9);
    let val = |i: usize, j: usize| (1000 * i + j) as f32;
    let mut row_major = vec![0.0; rows * cols];
    let mut trans = vec![0.0; rows * cols];
    let mut strided = vec![-1.0; rows * cols * 2];
    for i in 0..rows {
        for j in 0..cols {
            row_major[i * cols + j] = val(i, j);
            trans[j * rows + i] = val(i, j);
            strided[i * cols * 2 + j * 2] = val(i, j);
        }
    }
    let views = [
        MatRef::row_major(&row_major, rows, cols),
        MatRef::row_major(&trans, cols, rows).t(),
        MatRef { data: &strided, rows, cols, row_stride: cols * 2, col_stride: 2 },
    ];
    let (mr, nr) = (4, 8);
    for v in &views {
        // A: rows 2..9 (two panels, the second half full), depth 1..8.
        let (i0, h, p0, kc) = (2, 7, 1, 7);
        let mut dst = vec![f32::NAN; a_len(h, kc, mr)];
        pack_a(v, i0, h, p0, kc, mr, &mut dst);
        for (x, &got) in dst.iter().enumerate() {
            let (q, p, i) = (x / (kc * mr), x % (kc * mr) / mr, x % mr);
            let r = q * mr + i;
            let want = if r < h { val(i0 + r, p0 + p) } else { 0.0 };
            assert_eq!(got, want, "A at {x} (view strides {}, {})", v.row_stride, v.col_stride);
        }
        // B: depth 3..10, columns 1..9 (one full panel of 8, nothing else) and 2..5.
        for (j0, w) in [(1, 8), (2, 3)] {
            let (p0, kc) = (3, 7);
            let mut dst = vec![f32::NAN; b_len(w, kc, nr)];
            pack_b(v, p0, kc, j0, w, nr, &mut dst);
            for (x, &got) in dst.iter().enumerate() {
                let (q, p, j) = (x / (kc * nr), x % (kc * nr) / nr, x % nr);
                let c = q * nr + j;
                let want = if c < w { val(p0 + p, j0 + c) } else { 0.0 };
                assert_eq!(got, want, "B at {x} (view strides {}, {})", v.row_stride, v.col_stride);
            }
        }
    }
}

/// The many-rows nest reads a row-major A in place only up to the kernel's `direct_a_cols`
/// columns (64 on AVX2, any width on AVX-512 and the portable kernel). Run without
/// `TLX_GEMM_DIRECT_A=0`, which packs every A.
#[test]
fn wide_products_pack_a_where_the_kernel_says_so() {
    use super::driver::ASource;
    use super::kernel::Kernel;
    let a = vec![0f32; 400 * 300];
    let matrix = ASource::Matrix(MatRef::row_major(&a, 400, 300));
    for isa in isas() {
        let ker = Kernel::for_isa(isa);
        assert!(matrix.read_in_place_across(&ker, 64), "{isa:?}: 64 columns read in place");
        let wide = matrix.read_in_place_across(&ker, 65);
        assert_eq!(wide, isa != Isa::Avx2, "{isa:?}: 65 columns");
        assert_eq!(matrix.read_in_place_across(&ker, 4096), isa != Isa::Avx2, "{isa:?}: 4096 columns");
    }
}

/// Row-major A is read in place unless its rows crowd into a few L1 sets (a row stride of a
/// multiple of 1024 floats packs it) or, on AVX2, the product has many rows and is wider
/// than 64 columns: both paths, every kernel, edge rows (m not a multiple of MR, including
/// m < MR), one and two threads, and rows padded beyond k (stride > k).
#[test]
fn a_read_in_place_and_packed_agree_with_reference() {
    for isa in isas() {
        for &(m, k, n, lda) in &[
            (29, 70, 40, 70),     // in place
            (29, 70, 40, 1024),   // 4 KiB rows: packed
            (5, 33, 17, 40),      // fewer rows than MR (AVX-512): packed
            (400, 300, 40, 301),  // many rows, several A blocks, narrow: in place
            (400, 300, 70, 301),  // many rows, wider than 64 columns: packed on AVX2
            (400, 300, 70, 2048), // many rows, packed
            (130, 520, 33, 523),  // several depth blocks
            (29, 71, 40, 71),     // odd depth: the two-step loops' last step alone
            (400, 301, 70, 301),  // odd depth, packed on AVX2
            (12, 1, 20, 1),       // a single step
            (12, 2, 20, 2),       // a single pair of steps
        ] {
            let a = fill(m * lda, 21);
            let b = fill(k * n, 22);
            // The reference sees the first k columns of each padded row.
            let a_dense: Vec<f64> = (0..m).flat_map(|i| a[i * lda..i * lda + k].to_vec()).collect();
            let mut want = vec![0.0; m * n];
            reference::gemm(m, k, n, 1.0, &a_dense, &b, 0.0, &mut want);
            let a32: Vec<f32> = a.iter().map(|&v| v as f32).collect();
            let b32: Vec<f32> = b.iter().map(|&v| v as f32).collect();
            let av = MatRef { data: &a32[..], rows: m, cols: k, row_stride: lda, col_stride: 1 };
            for threads in [1, 2] {
                let mut c = vec![f32::NAN; m * n];
                gemm_with(isa, threads, 1.0, av, MatRef::row_major(&b32, k, n), 0.0, &mut c, n);
                for (x, y) in c.iter().zip(&want) {
                    assert!(
                        (*x as f64 - y).abs() < 1e-3,
                        "{isa:?} {m}x{k}x{n} lda {lda} {threads}t: {x} vs {y}"
                    );
                }
            }
        }
    }
}

#[test]
fn prepacked_b_gives_the_same_bits_as_packing_per_product() {
    // Few rows (one A block), one row panel, many rows, several depth blocks, narrow last
    // panels, a transposed B; on 1 and 3 threads.
    for &(m, k, n, tb) in &[
        (5, 40, 33, false),
        (1, 300, 70, false),
        (29, 70, 40, true),
        (400, 300, 70, false),
        (300, 700, 129, true),
        (150, 1100, 16, false),
        // Several bands of rows per thread (driver::band_rows).
        (2600, 40, 50, false),
    ] {
        let a = Stored::new(m, k, false, 1, 31);
        let b = Stored::new(k, n, tb, 2, 32);
        let mut want = vec![f32::NAN; m * n];
        gemm_with(Isa::detect(), 1, 1.0, a.view(), b.view(), 0.0, &mut want, n);
        for threads in [1, 3] {
            let mut got = vec![f32::NAN; m * n];
            let mut run = || {
                with_packed_b(b.view(), |pb| {
                    assert_eq!((pb.rows(), pb.cols()), (k, n));
                    if threads > 1 {
                        gemm_packed(1.0, a.view(), pb, 0.0, &mut got, n)
                    } else {
                        gemm_packed_serial(1.0, a.view(), pb, 0.0, &mut got, n)
                    }
                })
            };
            if threads > 1 {
                pool().install(run);
            } else {
                run();
            }
            for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                assert_eq!(x.to_bits(), y.to_bits(), "{m}x{k}x{n} tb={tb} {threads}t: C[{i}] {x} vs {y}");
            }
        }
        // And against the f64 reference (α, β ≠ trivial): C ← 0.5·A·B + 2·C.
        let mut c: Vec<f32> = (0..m * n).map(|x| (x % 7) as f32 - 3.0).collect();
        let c0 = c.clone();
        with_packed_b(b.view(), |pb| gemm_packed(0.5, a.view(), pb, 2.0, &mut c, n));
        for i in 0..m {
            for j in 0..n {
                let sum: f64 = (0..k).map(|p| a.at(i, p) * b.at(p, j)).sum();
                let want = 0.5 * sum + 2.0 * c0[i * n + j] as f64;
                let got = c[i * n + j] as f64;
                assert!(
                    (got - want).abs() < 1e-3 * (1.0 + want.abs()),
                    "{m}x{k}x{n}: ({i}, {j}) {got} vs {want}"
                );
            }
        }
    }
}

#[test]
#[should_panic(expected = "inner dimensions")]
fn prepacked_b_of_the_wrong_depth_is_refused() {
    let a = vec![1f32; 4 * 5];
    let b = vec![1f32; 6 * 3];
    let mut c = vec![0f32; 4 * 3];
    with_packed_b(MatRef::row_major(&b, 6, 3), |pb| {
        gemm_packed(1.0, MatRef::row_major(&a, 4, 5), pb, 0.0, &mut c, 3)
    });
}

use crate::conv::EpilogueAct;

/// `act(((v + bias)·scale + shift) + r)` one rounding at a time, the separate passes'
/// definition (`conv::Epilogue::apply`), written independently of the kernels.
fn ops_by_hand(
    v: f32,
    b: Option<f32>,
    s: Option<f32>,
    sh: Option<f32>,
    r: Option<f32>,
    act: EpilogueAct,
) -> f32 {
    let mut v = v;
    if let Some(b) = b {
        v += b;
    }
    if let Some(s) = s {
        v *= s;
    }
    if let Some(sh) = sh {
        v += sh;
    }
    if let Some(r) = r {
        v += r;
    }
    let relu = |v: f32| if v < 0.0 { 0.0 } else { v };
    match act {
        EpilogueAct::Linear => v,
        EpilogueAct::Relu => relu(v),
        // NaN stays NaN, -0.0 stays -0.0 (as the comparisons of `conv::Epilogue`).
        EpilogueAct::Relu6 => v.clamp(0.0, 6.0),
    }
}

#[test]
fn output_ops_in_the_micro_kernel_equal_the_separate_passes_bit_for_bit() {
    // Several depth blocks (ops only after the last), one A block and many, narrow last
    // panels, k = 0; every kernel this CPU runs, 1 and 3 threads, packed B and not.
    for &(m, k, n) in &[(7, 600, 37), (300, 70, 130), (13, 0, 20), (150, 300, 16)] {
        let ldc = n + 5;
        let a = Stored::new(m, k, false, 1, 51);
        let b = Stored::new(k, n, false, 2, 52);
        // Per-column vectors scaled so ReLU6 clips; a residual with NaN, ±∞ and exact zeros.
        let col =
            |seed: u64, scale: f64| fill(n, seed).iter().map(|&x| (x * scale) as f32).collect::<Vec<f32>>();
        let (bias, scale, shift) = (col(53, 2.0), col(54, 8.0), col(55, 3.0));
        let ldr = n + 2;
        let mut residual: Vec<f32> = fill(m * ldr, 56).iter().map(|&x| (x * 4.0) as f32).collect();
        for (i, r) in residual.iter_mut().enumerate() {
            match i % 29 {
                3 => *r = f32::NAN,
                7 => *r = f32::INFINITY,
                11 => *r = f32::NEG_INFINITY,
                13 => *r = -0.0,
                _ => {}
            }
        }
        for (case, act) in
            [EpilogueAct::Linear, EpilogueAct::Relu, EpilogueAct::Relu6].into_iter().enumerate()
        {
            // Parts present or not, varying with the case.
            let ops = OutputOps {
                bias: Some(&bias[..]),
                scale: (case != 1).then_some(&scale[..]),
                shift: (case != 2).then_some(&shift[..]),
                residual: (case != 0 || m > 100).then_some((&residual[..], ldr)),
                residual_in_c: false,
                act,
            };
            // C[i, j] after the operations, given its plain value.
            let expected = |plain: f32, i: usize, j: usize| {
                let col = |v: Option<&[f32]>| v.map(|v| v[j]);
                let r = ops.residual.map(|(r, ld)| r[i * ld + j]);
                ops_by_hand(plain, col(ops.bias), col(ops.scale), col(ops.shift), r, act)
            };
            for isa in isas() {
                let ker = kernel::Kernel::for_isa(isa);
                let mut plain = vec![1.5f32; m * ldc];
                driver::sgemm(
                    &ker,
                    1.0,
                    driver::ASource::Matrix(a.view()),
                    driver::BSource::Matrix(b.view()),
                    0.0,
                    &mut plain,
                    ldc,
                    1,
                    0,
                    None,
                );
                for threads in [1, 3] {
                    let mut got = vec![1.5f32; m * ldc];
                    let mut run = || {
                        let bsrc = driver::BSource::Matrix(b.view());
                        driver::sgemm(
                            &ker,
                            1.0,
                            driver::ASource::Matrix(a.view()),
                            bsrc,
                            0.0,
                            &mut got,
                            ldc,
                            threads,
                            0,
                            Some(&ops),
                        )
                    };
                    if threads > 1 {
                        pool().install(run);
                    } else {
                        run();
                    }
                    for i in 0..m {
                        for j in 0..n {
                            let want = expected(plain[i * ldc + j], i, j);
                            let g = got[i * ldc + j];
                            assert!(
                                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                                "{isa:?} {m}x{k}x{n} {act:?} {threads}t: C[{i},{j}] = {g}, want {want}"
                            );
                        }
                    }
                    // Past each row's n columns C is untouched.
                    assert!(got.chunks(ldc).all(|row| row[n..].iter().all(|&x| x == 1.5)));
                }
            }
            // The public entry point, on a packed B.
            if k > 0 {
                let mut got = vec![0.0f32; m * ldc];
                let mut want = vec![0.0f32; m * ldc];
                with_packed_b(b.view(), |pb| {
                    gemm_packed(1.0, a.view(), pb, 0.0, &mut want, ldc);
                    pool().install(|| gemm_packed_ops(1.0, a.view(), pb, 0.0, &mut got, ldc, true, &ops));
                });
                for i in 0..m {
                    for j in 0..n {
                        let w = expected(want[i * ldc + j], i, j);
                        let g = got[i * ldc + j];
                        assert!(
                            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                            "packed C[{i},{j}]"
                        );
                    }
                }
            }
        }
    }
}
