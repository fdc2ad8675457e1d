//! SIMD forms (f32, 8 lanes with `wide`) of the unary op table. Each row computes the same
//! function as `UnaryOp::forward`; the tests check every op against the scalar form over a
//! wide range of inputs. Ops without a SIMD form here (exact GELU, sin/cos, …) return `false`
//! from `unary_f32` and run the scalar loop.

use tlx_core::UnaryOp;
use wide::f32x8;

#[inline(always)]
fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32x8) -> f32x8, scalar: impl Fn(f32) -> f32) {
    let mut xc = x.chunks_exact(8);
    let mut oc = out.chunks_exact_mut(8);
    for (o, x) in (&mut oc).zip(&mut xc) {
        let v = f32x8::from(<[f32; 8]>::try_from(x).expect("chunk of 8"));
        o.copy_from_slice(&f(v).to_array());
    }
    for (o, &x) in oc.into_remainder().iter_mut().zip(xc.remainder()) {
        *o = scalar(x);
    }
}

#[inline(always)]
fn sigmoid(v: f32x8) -> f32x8 {
    // 1/(1 + e^−x), with e^−x saturating to inf for very negative x (giving 0).
    f32x8::ONE / (f32x8::ONE + (-v).exp())
}

#[inline(always)]
fn softplus(v: f32x8) -> f32x8 {
    v.max(f32x8::ZERO) + (-v.abs()).exp().ln_1p()
}

/// `out = op(x)` with SIMD when the op has a SIMD form; returns `false` (leaving `out`
/// untouched) when it does not.
pub fn unary_f32(op: UnaryOp, x: &[f32], out: &mut [f32]) -> bool {
    let s = |x: f32| op.forward(x);
    let zero = f32x8::ZERO;
    match op {
        UnaryOp::Neg => map(x, out, |v| -v, s),
        UnaryOp::Abs => map(x, out, |v| v.abs(), s),
        UnaryOp::Square => map(x, out, |v| v * v, s),
        UnaryOp::Sqrt => map(x, out, |v| v.sqrt(), s),
        UnaryOp::Rsqrt => map(x, out, |v| f32x8::ONE / v.sqrt(), s),
        UnaryOp::Recip => map(x, out, |v| f32x8::ONE / v, s),
        UnaryOp::Exp => map(x, out, |v| v.exp(), s),
        UnaryOp::Log => map(x, out, |v| v.ln(), s),
        UnaryOp::Tanh => map(x, out, |v| v.tanh(), s),
        UnaryOp::Sigmoid => map(x, out, sigmoid, s),
        UnaryOp::Silu => map(x, out, |v| v * sigmoid(v), s),
        UnaryOp::Softplus => map(x, out, softplus, s),
        // NaN passes through (TensorFlow's behaviour): `max` alone would turn it into 0.
        UnaryOp::Relu => map(x, out, |v| v.is_nan().select(v, v.max(zero)), s),
        UnaryOp::Relu6 => map(x, out, |v| v.is_nan().select(v, v.max(zero).min(f32x8::splat(6.0))), s),
        UnaryOp::LeakyRelu { alpha } => {
            let a = f32x8::splat(alpha as f32);
            map(x, out, |v| v.simd_gt(zero).select(v, v * a), s)
        }
        UnaryOp::Elu { .. } | UnaryOp::Selu if exponential_linear_avx2(op, x, out) => {}
        UnaryOp::Elu { alpha } => {
            let a = f32x8::splat(alpha as f32);
            map(x, out, |v| v.simd_gt(zero).select(v, a * v.exp_m1()), s)
        }
        UnaryOp::Selu => {
            let l = f32x8::splat(tlx_core::unary::SELU_LAMBDA as f32);
            let la = f32x8::splat((tlx_core::unary::SELU_LAMBDA * tlx_core::unary::SELU_ALPHA) as f32);
            map(x, out, |v| v.simd_gt(zero).select(l * v, la * v.exp_m1()), s)
        }
        UnaryOp::HardSigmoid => {
            let (three, six) = (f32x8::splat(3.0), f32x8::splat(6.0));
            map(x, out, |v| (v + three).max(zero).min(six) / six, s)
        }
        UnaryOp::GeluTanh => {
            let k = f32x8::splat((2.0f64 / std::f64::consts::PI).sqrt() as f32);
            let (c, half) = (f32x8::splat(0.044715), f32x8::splat(0.5));
            map(x, out, |v| half * v * (f32x8::ONE + (k * (v + c * v * v * v)).tanh()), s)
        }
        UnaryOp::Clamp { min, max } => {
            let (lo, hi) = (f32x8::splat(min as f32), f32x8::splat(max as f32));
            map(x, out, |v| v.max(lo).min(hi), s)
        }
        UnaryOp::Affine { mul, add } => {
            let (m, a) = (f32x8::splat(mul as f32), f32x8::splat(add as f32));
            map(x, out, |v| v.mul_add(m, a), s)
        }
        _ => return false,
    }
    true
}

/// ELU and SELU with the AVX2 `eˣ − 1` (`crate::expm1_avx2`) where the CPU has it; `false`
/// (nothing written) otherwise.
fn exponential_linear_avx2(op: UnaryOp, x: &[f32], out: &mut [f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if crate::simd::has_avx2_fma() {
        use tlx_core::unary::{SELU_ALPHA, SELU_LAMBDA};
        let (a, b) = match op {
            UnaryOp::Elu { alpha } => (1.0, alpha as f32),
            UnaryOp::Selu => (SELU_LAMBDA as f32, (SELU_LAMBDA * SELU_ALPHA) as f32),
            _ => return false,
        };
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        unsafe { crate::expm1_avx2::exponential_linear(x, out, a, b) };
        return true;
    }
    let _ = (op, x, out);
    false
}

#[inline(always)]
fn map_backward(
    x: &[f32],
    y: &[f32],
    go: &[f32],
    gi: &mut [f32],
    d: impl Fn(f32x8, f32x8) -> f32x8,
    scalar: impl Fn(f32, f32) -> f32,
) {
    let n = gi.len();
    let full = n / 8 * 8;
    for i in (0..full).step_by(8) {
        let load = |s: &[f32]| f32x8::from(<[f32; 8]>::try_from(&s[i..i + 8]).expect("chunk of 8"));
        gi[i..i + 8].copy_from_slice(&(load(go) * d(load(x), load(y))).to_array());
    }
    for i in full..n {
        gi[i] = go[i] * scalar(x[i], y[i]);
    }
}

/// `gi = go · op'(x, y)` (y = op(x)) with SIMD for the common activations; returns `false`
/// (leaving `gi` untouched) for ops without a SIMD derivative here.
pub fn unary_backward_f32(op: UnaryOp, x: &[f32], y: &[f32], go: &[f32], gi: &mut [f32]) -> bool {
    let s = |x: f32, y: f32| op.derivative(x, y);
    let (zero, one) = (f32x8::ZERO, f32x8::ONE);
    match op {
        UnaryOp::Neg => map_backward(x, y, go, gi, |_, _| -one, s),
        UnaryOp::Exp => map_backward(x, y, go, gi, |_, y| y, s),
        UnaryOp::Square => map_backward(x, y, go, gi, |x, _| x + x, s),
        UnaryOp::Tanh => map_backward(x, y, go, gi, |_, y| one - y * y, s),
        UnaryOp::Sigmoid => map_backward(x, y, go, gi, |_, y| y * (one - y), s),
        UnaryOp::Relu => map_backward(x, y, go, gi, |x, _| x.simd_gt(zero).select(one, zero), s),
        UnaryOp::Relu6 => {
            let six = f32x8::splat(6.0);
            map_backward(x, y, go, gi, |x, _| (x.simd_gt(zero) & x.simd_lt(six)).select(one, zero), s)
        }
        UnaryOp::LeakyRelu { alpha } => {
            let a = f32x8::splat(alpha as f32);
            map_backward(x, y, go, gi, |x, _| x.simd_gt(zero).select(one, a), s)
        }
        UnaryOp::Elu { alpha } => {
            let a = f32x8::splat(alpha as f32);
            map_backward(x, y, go, gi, |x, y| x.simd_gt(zero).select(one, y + a), s)
        }
        UnaryOp::Selu => {
            let l = f32x8::splat(tlx_core::unary::SELU_LAMBDA as f32);
            let la = f32x8::splat((tlx_core::unary::SELU_LAMBDA * tlx_core::unary::SELU_ALPHA) as f32);
            map_backward(x, y, go, gi, |x, y| x.simd_gt(zero).select(l, y + la), s)
        }
        _ => return false,
    }
    true
}

/// Sum of an f32 slice with eight SIMD accumulators.
pub fn sum_f32(xs: &[f32]) -> f32 {
    let mut acc = [f32x8::ZERO; 4];
    let mut chunks = xs.chunks_exact(32);
    for c in &mut chunks {
        for (k, a) in acc.iter_mut().enumerate() {
            *a += f32x8::from(<[f32; 8]>::try_from(&c[k * 8..k * 8 + 8]).expect("chunk of 8"));
        }
    }
    let total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    total.reduce_add() + chunks.remainder().iter().sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_simd_form_matches_the_scalar_table() {
        // Inputs over [-30, 30] plus special points; odd length exercises the tail.
        let mut x: Vec<f32> = (0..6001).map(|i| (i as f32 - 3000.0) / 100.0).collect();
        x.extend([0.0, -0.0, 1e-8, -1e-8, 88.0, -88.0, 100.0, -100.0]);
        for op in UnaryOp::all_for_tests() {
            let input: Vec<f32> = if op.needs_positive_input() {
                x.iter().map(|v| v.abs() + 1e-3).collect()
            } else {
                x.clone()
            };
            let mut simd = vec![0.0f32; input.len()];
            if !unary_f32(op, &input, &mut simd) {
                continue;
            }
            for (i, (&a, &v)) in simd.iter().zip(&input).enumerate() {
                let b = op.forward(v as f64);
                let err = (a as f64 - b).abs() / b.abs().max(1e-30);
                // The exact value rounded to f32 may overflow (exp(100)): then inf is right.
                // Absolute slack scaled by |x| covers cancellation (1 + tanh(−large) in f32).
                let ok = err < 2e-6
                    || (a as f64 - b).abs() < 1e-7 * (v.abs() as f64).max(1.0)
                    || (a.is_infinite() && (b as f32).is_infinite());
                assert!(ok, "{op:?} at x[{i}] = {v}: simd {a} vs exact {b} (rel {err:.2e})");
            }
        }
    }

    #[test]
    fn every_simd_derivative_matches_the_scalar_table() {
        let mut x: Vec<f32> = (0..2001).map(|i| (i as f32 - 1000.0) / 50.0).collect();
        x.extend([0.0, -0.0, 6.0, 1e-8, -1e-8]);
        let go: Vec<f32> = (0..x.len()).map(|i| 1.0 + (i % 7) as f32 * 0.25).collect();
        for op in UnaryOp::all_for_tests() {
            if op.needs_positive_input() {
                continue;
            }
            let y: Vec<f32> = x.iter().map(|&v| op.forward(v)).collect();
            let mut simd = vec![0.0f32; x.len()];
            if !unary_backward_f32(op, &x, &y, &go, &mut simd) {
                continue;
            }
            for i in 0..x.len() {
                let want = go[i] * op.derivative(x[i], y[i]);
                assert!(
                    (simd[i] - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{op:?} at x = {}: simd {} vs scalar {want}",
                    x[i],
                    simd[i]
                );
            }
        }
    }

    #[test]
    fn simd_sum_matches_f64() {
        let x: Vec<f32> = (0..10_007).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let exact: f64 = x.iter().map(|&v| v as f64).sum();
        assert!((sum_f32(&x) as f64 - exact).abs() < 1e-3);
    }
}
