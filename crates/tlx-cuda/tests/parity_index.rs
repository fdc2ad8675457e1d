//! CPU-vs-CUDA parity of the conversion and index kernels (`kernels/index.cu`): every dtype
//! conversion against Rust's `as` through f64 (saturation, truncation, NaN → 0), gather along
//! each axis and its scatter-add gradient against a host loop, and the index range check.
//! Conversions and index ops are exact: the bound is equality.
#![cfg(feature = "cuda")]

mod common;

use common::Rng;
use tlx_cuda::ops::index;

/// The position in a dense `dims` tensor of the multi-index `at`.
fn offset(dims: &[usize], at: &[usize]) -> usize {
    dims.iter().zip(at).fold(0, |acc, (&d, &c)| acc * d + c)
}

/// The multi-index of dense position `p` in `dims`.
fn coords(dims: &[usize], mut p: usize) -> Vec<usize> {
    let mut c = vec![0; dims.len()];
    for d in (0..dims.len()).rev() {
        c[d] = p % dims[d];
        p /= dims[d];
    }
    c
}

#[test]
fn conversions_follow_rusts_as() {
    let Some(ctx) = common::device("convert") else { return };
    let specials = [
        0.0f64,
        -0.0,
        0.49,
        0.5,
        0.99,
        -0.99,
        -1.5,
        254.7,
        255.0,
        256.0,
        300.0,
        -300.0,
        2147483647.0,
        2147483648.0,
        -2147483649.0,
        9.3e18,
        -9.3e18,
        1e30,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
    ];
    let f64s: Vec<f64> = specials.to_vec();
    let f32s: Vec<f32> = specials.iter().map(|&v| v as f32).collect();
    let g64 = ctx.htod(&f64s).unwrap();
    let g32 = ctx.htod(&f32s).unwrap();
    let n = specials.len();

    macro_rules! check {
        ($src:expr, $host:expr, $t:ty) => {{
            let mut out = ctx.alloc::<$t>(n).unwrap();
            index::convert($src, &mut out).unwrap();
            let want: Vec<$t> = $host.iter().map(|&v| v as f64 as $t).collect();
            let got = out.to_vec().unwrap();
            for i in 0..n {
                let (g, w) = (got[i], want[i]);
                assert!(
                    g == w || (g != g && w != w),
                    "convert {} -> {}: input {}: got {g:?}, want {w:?}",
                    stringify!($src),
                    stringify!($t),
                    $host[i]
                );
            }
            out
        }};
    }
    let as_u8 = check!(&g64, f64s, u8);
    let as_i32 = check!(&g64, f64s, i32);
    let as_i64 = check!(&g64, f64s, i64);
    check!(&g64, f64s, f32);
    check!(&g32, f32s, u8);
    check!(&g32, f32s, i32);
    check!(&g32, f32s, i64);
    check!(&g32, f32s, f64);
    // Between the integer types and back to floats.
    let (u8s, i32s, i64s) = (as_u8.to_vec().unwrap(), as_i32.to_vec().unwrap(), as_i64.to_vec().unwrap());
    check!(&as_u8, u8s, i32);
    check!(&as_u8, u8s, i64);
    check!(&as_u8, u8s, f32);
    check!(&as_u8, u8s, f64);
    check!(&as_i32, i32s, u8);
    check!(&as_i32, i32s, i64);
    check!(&as_i32, i32s, f32);
    check!(&as_i32, i32s, f64);
    check!(&as_i64, i64s, u8);
    check!(&as_i64, i64s, i32);
    check!(&as_i64, i64s, f32);
    check!(&as_i64, i64s, f64);
    assert!(index::can_convert(tlx_core::DType::U8, tlx_core::DType::F32));
    assert!(!index::can_convert(tlx_core::DType::F16, tlx_core::DType::F32));
}

#[test]
fn gather_and_scatter_add_match_a_host_loop() {
    let Some(ctx) = common::device("gather") else { return };
    let mut rng = Rng::new(71);
    for case in 0..40 {
        let rank = rng.range(1, 5);
        let x_dims: Vec<usize> = (0..rank).map(|_| rng.range(1, 7)).collect();
        let axis = rng.below(rank);
        // Off the axis the indices may be smaller than x; along it any length.
        let idx_dims: Vec<usize> =
            (0..rank).map(|d| if d == axis { rng.range(1, 9) } else { rng.range(1, x_dims[d]) }).collect();
        let (nx, ni) = (x_dims.iter().product::<usize>(), idx_dims.iter().product::<usize>());
        let x = rng.vec(nx, -2.0, 2.0);
        let idx: Vec<i64> = (0..ni).map(|_| rng.below(x_dims[axis]) as i64).collect();
        let src = rng.vec(ni, -1.0, 1.0);
        let base = rng.vec(nx, -1.0, 1.0);

        // Host references.
        let mut want_gather = vec![0f32; ni];
        let mut want_scatter = base.clone();
        for p in 0..ni {
            let mut c = coords(&idx_dims, p);
            c[axis] = idx[p] as usize;
            want_gather[p] = x[offset(&x_dims, &c)];
            want_scatter[offset(&x_dims, &c)] += src[p];
        }

        let (gx, gi, gs, gb) = (
            ctx.htod(&x).unwrap(),
            ctx.htod(&idx).unwrap(),
            ctx.htod(&src).unwrap(),
            ctx.htod(&base).unwrap(),
        );
        assert!(
            !index::any_out_of_range(&gi, x_dims[axis]).unwrap(),
            "case {case}: in-range indices flagged"
        );
        let mut out = ctx.alloc::<f32>(ni).unwrap();
        index::gather(&gx, &x_dims, &gi, &idx_dims, axis, &mut out).unwrap();
        assert_eq!(
            out.to_vec().unwrap(),
            want_gather,
            "case {case}: gather {x_dims:?} by {idx_dims:?} axis {axis}"
        );
        let mut out = ctx.alloc::<f32>(nx).unwrap();
        index::scatter_add(&gb, &x_dims, &gi, &gs, &idx_dims, axis, &mut out).unwrap();
        // The kernel adds in index order like the host loop, so the sums are the same floats.
        assert_eq!(
            out.to_vec().unwrap(),
            want_scatter,
            "case {case}: scatter_add {x_dims:?} by {idx_dims:?} axis {axis}"
        );
    }
}

#[test]
fn bad_indices_are_reported() {
    let Some(ctx) = common::device("index_check") else { return };
    let idx = ctx.htod(&[0i64, 3, 2]).unwrap();
    assert!(index::any_out_of_range(&idx, 3).unwrap());
    assert!(!index::any_out_of_range(&idx, 4).unwrap());
    let neg = ctx.htod(&[-1i64]).unwrap();
    assert!(index::any_out_of_range(&neg, 10).unwrap());
    // Shapes that do not fit are errors naming the op.
    let x = ctx.htod(&[1f32, 2.0, 3.0, 4.0]).unwrap();
    let mut out = ctx.alloc::<f32>(3).unwrap();
    let err = index::gather(&x, &[2, 2], &idx, &[3, 1], 1, &mut out).unwrap_err();
    assert!(err.to_string().contains("gather"), "{err}");
    let err = index::gather(&x, &[4], &idx, &[3, 1], 0, &mut out).unwrap_err();
    assert!(err.to_string().contains("gather"), "{err}");
}
