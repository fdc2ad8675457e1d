//! tlx's SGEMM and OpenBLAS's (numpy's bundled `scipy_openblas`, ILP64), call by call in one
//! process: each pair runs tlx then OpenBLAS on the same operands, and the figure that
//! matters is the median of the pairs' speed ratios, which a noisy shared host moves far
//! less than it moves either side's own median. Also prints both medians and bests and the
//! largest difference between the two results.
//!
//! `cargo run --release --manifest-path benches/peers/gemm_pairs/Cargo.toml -- THREADS PAIRS SHAPE...`
//! with each SHAPE `N` (square) or `MxKxN`; run with `OPENBLAS_NUM_THREADS=THREADS`. One
//! thread only: with two, OpenBLAS's threads keep spinning after each call and take the
//! CPU from tlx's.
use std::time::Instant;
use tlx_cpu::gemm::{gemm, MatRef};

const ROW_MAJOR: i32 = 101;
const NO_TRANS: i32 = 111;

extern "C" {
    #[allow(clippy::too_many_arguments)]
    fn scipy_cblas_sgemm64_(
        order: i32,
        trans_a: i32,
        trans_b: i32,
        m: i64,
        n: i64,
        k: i64,
        alpha: f32,
        a: *const f32,
        lda: i64,
        b: *const f32,
        ldb: i64,
        beta: f32,
        c: *mut f32,
        ldc: i64,
    );
    fn scipy_openblas_set_num_threads64_(n: i32);
    fn scipy_openblas_get_corename64_() -> *const std::os::raw::c_char;
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn least(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::MAX, f64::min)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: gemm_pairs THREADS PAIRS SHAPE... (SHAPE = N or MxKxN)";
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).expect(usage);
    let pairs: usize = args.get(2).and_then(|s| s.parse().ok()).expect(usage);
    let shapes: Vec<(usize, usize, usize)> = args[3..]
        .iter()
        .map(|s| {
            let v: Vec<usize> = s.split('x').map(|x| x.parse().expect(usage)).collect();
            match v[..] {
                [n] => (n, n, n),
                [m, k, n] => (m, k, n),
                _ => panic!("{usage}"),
            }
        })
        .collect();
    // SAFETY: plain calls into the linked OpenBLAS; the name it returns is a static C string.
    let core = unsafe {
        scipy_openblas_set_num_threads64_(threads as i32);
        std::ffi::CStr::from_ptr(scipy_openblas_get_corename64_())
    };
    eprintln!("OpenBLAS core {core:?}");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    for (m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7919) % 1000) as f32 * 1e-3 - 0.5).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 104_729) % 1000) as f32 * 1e-3 - 0.5).collect();
        let (mut c_tlx, mut c_blas) = (vec![0f32; m * n], vec![0f32; m * n]);
        let flops = 2.0 * (m * n * k) as f64;
        // Small products repeat within a pair: at least 20 MFLOP a side (~0.25 ms at 80 GFLOP/s).
        let inner = ((2e7 / flops).ceil() as usize).max(1);
        let (mut tlx, mut blas, mut ratio) = (vec![], vec![], vec![]);
        pool.install(|| {
            for pair in 0..pairs + 2 {
                let t = Instant::now();
                for _ in 0..inner {
                    gemm(1.0, MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n), 0.0, &mut c_tlx, n);
                }
                let t_tlx = t.elapsed().as_secs_f64() / inner as f64;
                let t = Instant::now();
                for _ in 0..inner {
                    // SAFETY: row-major m×k, k×n and m×n buffers of exactly those sizes.
                    unsafe {
                        scipy_cblas_sgemm64_(
                            ROW_MAJOR,
                            NO_TRANS,
                            NO_TRANS,
                            m as i64,
                            n as i64,
                            k as i64,
                            1.0,
                            a.as_ptr(),
                            k as i64,
                            b.as_ptr(),
                            n as i64,
                            0.0,
                            c_blas.as_mut_ptr(),
                            n as i64,
                        )
                    };
                }
                let t_blas = t.elapsed().as_secs_f64() / inner as f64;
                // The first two pairs warm up.
                if pair >= 2 {
                    tlx.push(t_tlx);
                    blas.push(t_blas);
                    ratio.push(t_blas / t_tlx);
                }
            }
        });
        let diff = c_tlx.iter().zip(&c_blas).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        println!(
            "{m}x{k}x{n} {threads}t: tlx/OpenBLAS speed, median of {pairs} pairs {:.3}; GFLOP/s medians tlx {:.1} OpenBLAS {:.1}, best tlx {:.1} OpenBLAS {:.1}; max |difference| {diff:.1e}",
            median(ratio),
            flops / median(tlx.clone()) / 1e9,
            flops / median(blas.clone()) / 1e9,
            flops / least(&tlx) / 1e9,
            flops / least(&blas) / 1e9,
        );
    }
}
