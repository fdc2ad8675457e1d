//! `eˣ − 1` on eight f32 lanes with AVX2+FMA, for the ELU and SELU rows of the unary table
//! (`unary_simd`): the `wide` crate is compiled for the baseline target, so its `exp_m1`
//! runs as two SSE halves behind a call (5 % of a Fashion-MNIST MLP training step).
//!
//! Method: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2` (`ln 2` split in two parts so that `r` is
//! exact), `eʳ − 1` by its Taylor polynomial to `r⁷/7!` (error below 2·10⁻⁸ relative on that
//! range), then `eˣ − 1 = 2ⁿ·(eʳ − 1) + (2ⁿ − 1)`, formed as `2·(t·p + (t − ½))` with
//! `t = 2ⁿ⁻¹` in one fused multiply-add (`t − ½` is exact), so that small `x` (n = 0) keep
//! full relative accuracy. Inputs are clamped to `[−17.5, 88.75]` first: below, `eˣ − 1`
//! rounds to −1; above 88.72 it overflows, which the final doubling gives (`+∞`). NaN passes
//! through. Checked against f64 in the tests below and, through the table, in `unary_simd`.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// `eˣ − 1` lane by lane.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn expm1(x: __m256) -> __m256 {
    const LN2_HI: f32 = 0.693_145_75; // ln 2 rounded to 17 bits: n·LN2_HI is exact
    const LN2_LO: f32 = 1.428_606_8e-6; // ln 2 − LN2_HI
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // 1/2!, …, 1/7!
    const C: [f32; 6] = [0.5, 1.0 / 6.0, 1.0 / 24.0, 1.0 / 120.0, 1.0 / 720.0, 1.0 / 5040.0];
    let xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-17.5)), _mm256_set1_ps(88.75));
    // n = round(x / ln 2), in [−25, 128]
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        xc,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), xc);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    // p = r + r²·(C0 + r·(C1 + … + r·C5))
    let mut q = _mm256_set1_ps(C[5]);
    for &c in C[..5].iter().rev() {
        q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(c));
    }
    let p = _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r);
    // t = 2^(n−1): the exponent field of n − 1 + 127
    let e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(126));
    let t = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(e));
    let half = _mm256_set1_ps(0.5);
    let y = _mm256_fmadd_ps(t, p, _mm256_sub_ps(t, half));
    let y = _mm256_add_ps(y, y);
    // NaN in, NaN out (the clamps would have turned it into a number); ±0 in, ±0 out (r²
    // added to −0 gives +0).
    let keep = _mm256_or_ps(
        _mm256_cmp_ps::<_CMP_UNORD_Q>(x, x),
        _mm256_cmp_ps::<_CMP_EQ_OQ>(x, _mm256_setzero_ps()),
    );
    _mm256_blendv_ps(y, x, keep)
}

/// `out[i] = if x > 0 { a·x } else { b·(eˣ − 1) }` (ELU: a = 1, b = α; SELU: a = λ, b = λα),
/// eight lanes at a time; the tail by the same formula on one lane.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exponential_linear(x: &[f32], out: &mut [f32], a: f32, b: f32) {
    debug_assert_eq!(x.len(), out.len());
    let (va, vb, zero) = (_mm256_set1_ps(a), _mm256_set1_ps(b), _mm256_setzero_ps());
    let lane = |v: __m256| {
        let neg = _mm256_mul_ps(vb, expm1(v));
        _mm256_blendv_ps(neg, _mm256_mul_ps(va, v), _mm256_cmp_ps::<_CMP_GT_OQ>(v, zero))
    };
    let mut xs = x.chunks_exact(8);
    let mut os = out.chunks_exact_mut(8);
    for (o, v) in (&mut os).zip(&mut xs) {
        // SAFETY: both chunks hold 8 floats; unaligned loads and stores.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), lane(_mm256_loadu_ps(v.as_ptr()))) };
    }
    for (o, &v) in os.into_remainder().iter_mut().zip(xs.remainder()) {
        let mut buf = [0f32; 8];
        // SAFETY: an 8-float buffer.
        unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), lane(_mm256_set1_ps(v))) };
        *o = buf[0];
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    fn expm1_f32(x: f32) -> f32 {
        let mut out = [0f32; 8];
        // SAFETY: the caller checked the CPU; an 8-float buffer.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), expm1(_mm256_set1_ps(x))) };
        out[0]
    }

    #[test]
    fn expm1_is_within_two_ulp_of_f64_everywhere() {
        if !crate::simd::has_avx2_fma() {
            eprintln!("skipped: the CPU lacks AVX2/FMA");
            return;
        }
        // Every 9973rd float from −20 to 89 by bit pattern, plus the edges and specials.
        let mut xs: Vec<f32> = Vec::new();
        let mut bits = (-20.0f32).to_bits();
        while bits > 0x8000_0000 {
            xs.push(f32::from_bits(bits));
            bits -= 9973;
        }
        let mut bits = 0u32;
        while f32::from_bits(bits) < 89.0 {
            xs.push(f32::from_bits(bits));
            bits += 9973;
        }
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 88.72, 88.73, -17.3, -17.4, -1000.0, 1000.0]);
        for x in xs {
            let got = expm1_f32(x);
            let want = (x as f64).exp_m1();
            if want > f32::MAX as f64 {
                assert_eq!(got, f32::INFINITY, "x = {x}");
                continue;
            }
            let want32 = want as f32;
            let ulp = (f32::from_bits(want32.abs().to_bits() + 1) - want32.abs()) as f64;
            assert!((got as f64 - want).abs() <= 2.0 * ulp, "x = {x:e}: {got:e} vs {want:e}");
            assert_eq!(got.to_bits() >> 31, want32.to_bits() >> 31, "sign at x = {x:e}");
        }
        assert!(expm1_f32(f32::NAN).is_nan());
        assert_eq!(expm1_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(expm1_f32(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn exponential_linear_covers_the_tail() {
        if !crate::simd::has_avx2_fma() {
            eprintln!("skipped: the CPU lacks AVX2/FMA");
            return;
        }
        let x: Vec<f32> = (0..21).map(|i| i as f32 * 0.37 - 4.0).collect();
        let mut out = vec![f32::NAN; x.len()];
        // SAFETY: AVX2 and FMA checked above.
        unsafe { exponential_linear(&x, &mut out, 2.0, 3.0) };
        for (&v, &o) in x.iter().zip(&out) {
            let want = if v > 0.0 { 2.0 * v as f64 } else { 3.0 * (v as f64).exp_m1() };
            assert!((o as f64 - want).abs() <= 1e-6 * want.abs().max(1e-30), "{v}: {o} vs {want}");
        }
    }
}
