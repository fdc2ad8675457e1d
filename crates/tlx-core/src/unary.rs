//! The elementwise unary op table: one row per op with its scalar definition and derivative.
//!
//! This is the reference every backend follows: tlx-cpu's SIMD forms and the CUDA kernels are
//! checked against `forward`, and autograd uses `derivative`. Parameters are f64 so one enum
//! value describes the op for every element type.

use crate::dtype::Float;

/// An elementwise function of one tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Abs,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Square,
    Recip,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Relu,
    Relu6,
    /// Keras `relu(x, negative_slope, max_value, threshold)`: `x ≥ max → max`,
    /// `x ≥ threshold → x`, else `negative_slope·(x − threshold)`.
    ReluExt {
        negative_slope: f64,
        max_value: Option<f64>,
        threshold: f64,
    },
    LeakyRelu {
        alpha: f64,
    },
    Elu {
        alpha: f64,
    },
    Selu,
    /// Exact GELU `x·Φ(x)`.
    Gelu,
    /// GELU with the tanh approximation.
    GeluTanh,
    /// `x·sigmoid(x)` (swish).
    Silu,
    Softplus,
    Softsign,
    Mish,
    LogSigmoid,
    /// Keras 3's `relu6(x + 3) / 6`.
    HardSigmoid,
    /// `x · hard_sigmoid(x)` (hard swish).
    HardSilu,
    Sign,
    Clamp {
        min: f64,
        max: f64,
    },
    /// `x^p` for a constant p.
    Powf {
        p: f64,
    },
    /// `x·mul + add` for constants (scalar arithmetic without a scalar tensor).
    Affine {
        mul: f64,
        add: f64,
    },
}

/// SELU's scale λ (Keras's value).
pub const SELU_LAMBDA: f64 = 1.050_700_987_355_480_5;
/// SELU's α (Keras's value).
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_2;

fn c<T: Float>(v: f64) -> T {
    T::from_f64(v)
}

fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

fn softplus<T: Float>(x: T) -> T {
    x.max(T::zero()) + (-x.abs()).exp().ln_1p()
}

fn erf<T: Float>(x: T) -> T {
    // f32 uses the f32 routine so results match the f32 reference bit for bit.
    if T::DTYPE == crate::DType::F32 {
        T::from_f32(libm::erff(x.to_f32()))
    } else {
        T::from_f64(libm::erf(x.to_f64()))
    }
}

impl UnaryOp {
    /// The op's name as Keras spells the activation (or a descriptive name).
    pub fn name(&self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Rsqrt => "rsqrt",
            UnaryOp::Square => "square",
            UnaryOp::Recip => "reciprocal",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Relu6 => "relu6",
            UnaryOp::ReluExt { .. } => "relu",
            UnaryOp::LeakyRelu { .. } => "leaky_relu",
            UnaryOp::Elu { .. } => "elu",
            UnaryOp::Selu => "selu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::GeluTanh => "gelu_tanh",
            UnaryOp::Silu => "silu",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Softsign => "softsign",
            UnaryOp::Mish => "mish",
            UnaryOp::LogSigmoid => "log_sigmoid",
            UnaryOp::HardSigmoid => "hard_sigmoid",
            UnaryOp::HardSilu => "hard_silu",
            UnaryOp::Sign => "sign",
            UnaryOp::Clamp { .. } => "clamp",
            UnaryOp::Powf { .. } => "pow",
            UnaryOp::Affine { .. } => "affine",
        }
    }

    /// `y = f(x)`.
    pub fn forward<T: Float>(&self, x: T) -> T {
        let zero = T::zero();
        let one = T::one();
        match *self {
            UnaryOp::Neg => -x,
            UnaryOp::Abs => x.abs(),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Rsqrt => one / x.sqrt(),
            UnaryOp::Square => x * x,
            UnaryOp::Recip => one / x,
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sigmoid => sigmoid(x),
            // NaN passes through, as in TensorFlow (it must reach the loss, not vanish).
            UnaryOp::Relu => {
                if x > zero || x.is_nan() {
                    x
                } else {
                    zero
                }
            }
            UnaryOp::Relu6 => {
                if x.is_nan() {
                    x
                } else {
                    x.max(zero).min(c(6.0))
                }
            }
            UnaryOp::ReluExt { negative_slope, max_value, threshold } => {
                if let Some(m) = max_value {
                    if x >= c(m) {
                        return c(m);
                    }
                }
                if x >= c(threshold) {
                    x
                } else {
                    c::<T>(negative_slope) * (x - c(threshold))
                }
            }
            UnaryOp::LeakyRelu { alpha } => {
                if x > zero {
                    x
                } else {
                    c::<T>(alpha) * x
                }
            }
            UnaryOp::Elu { alpha } => {
                if x > zero {
                    x
                } else {
                    c::<T>(alpha) * x.exp_m1()
                }
            }
            UnaryOp::Selu => {
                if x > zero {
                    c::<T>(SELU_LAMBDA) * x
                } else {
                    c::<T>(SELU_LAMBDA * SELU_ALPHA) * x.exp_m1()
                }
            }
            UnaryOp::Gelu => c::<T>(0.5) * x * (one + erf(x * c(std::f64::consts::FRAC_1_SQRT_2))),
            UnaryOp::GeluTanh => {
                let k = c::<T>((2.0 / std::f64::consts::PI).sqrt());
                c::<T>(0.5) * x * (one + (k * (x + c::<T>(0.044715) * x * x * x)).tanh())
            }
            UnaryOp::Silu => x * sigmoid(x),
            UnaryOp::Softplus => softplus(x),
            UnaryOp::Softsign => x / (one + x.abs()),
            UnaryOp::Mish => x * softplus(x).tanh(),
            UnaryOp::LogSigmoid => -softplus(-x),
            UnaryOp::HardSigmoid => (x + c(3.0)).max(zero).min(c(6.0)) / c(6.0),
            UnaryOp::HardSilu => x * (x + c(3.0)).max(zero).min(c(6.0)) / c(6.0),
            UnaryOp::Sign => {
                if x > zero {
                    one
                } else if x < zero {
                    -one
                } else {
                    x // keeps 0 and NaN
                }
            }
            UnaryOp::Clamp { min, max } => x.max(c(min)).min(c(max)),
            UnaryOp::Powf { p } => x.powf(c(p)),
            UnaryOp::Affine { mul, add } => x * c(mul) + c(add),
        }
    }

    /// `dy/dx` given the input `x` and the output `y = f(x)`. At kinks it follows
    /// TensorFlow (relu'(0) = 0, clamp passes the gradient on the closed interval).
    pub fn derivative<T: Float>(&self, x: T, y: T) -> T {
        let zero = T::zero();
        let one = T::one();
        let step = |b: bool| if b { one } else { zero };
        match *self {
            UnaryOp::Neg => -one,
            UnaryOp::Abs => UnaryOp::Sign.forward(x),
            UnaryOp::Exp => y,
            UnaryOp::Log => one / x,
            UnaryOp::Sqrt => c::<T>(0.5) / y,
            UnaryOp::Rsqrt => c::<T>(-0.5) * y * y * y,
            UnaryOp::Square => c::<T>(2.0) * x,
            UnaryOp::Recip => -y * y,
            UnaryOp::Sin => x.cos(),
            UnaryOp::Cos => -x.sin(),
            UnaryOp::Tanh => one - y * y,
            UnaryOp::Sigmoid => y * (one - y),
            UnaryOp::Relu => step(x > zero),
            UnaryOp::Relu6 => step(x > zero && x < c(6.0)),
            UnaryOp::ReluExt { negative_slope, max_value, threshold } => {
                if max_value.is_some_and(|m| x >= c(m)) {
                    zero
                } else if x >= c(threshold) {
                    one
                } else {
                    c(negative_slope)
                }
            }
            UnaryOp::LeakyRelu { alpha } => {
                if x > zero {
                    one
                } else {
                    c(alpha)
                }
            }
            UnaryOp::Elu { alpha } => {
                if x > zero {
                    one
                } else {
                    y + c(alpha)
                }
            }
            UnaryOp::Selu => {
                if x > zero {
                    c(SELU_LAMBDA)
                } else {
                    y + c(SELU_LAMBDA * SELU_ALPHA)
                }
            }
            UnaryOp::Gelu => {
                let cdf = c::<T>(0.5) * (one + erf(x * c(std::f64::consts::FRAC_1_SQRT_2)));
                let pdf = (c::<T>(-0.5) * x * x).exp() * c((0.5 / std::f64::consts::PI).sqrt());
                cdf + x * pdf
            }
            UnaryOp::GeluTanh => {
                let k = c::<T>((2.0 / std::f64::consts::PI).sqrt());
                let a = c::<T>(0.044715);
                let t = (k * (x + a * x * x * x)).tanh();
                c::<T>(0.5) * (one + t)
                    + c::<T>(0.5) * x * (one - t * t) * k * (one + c::<T>(3.0) * a * x * x)
            }
            UnaryOp::Silu => {
                let s = sigmoid(x);
                s * (one + x * (one - s))
            }
            UnaryOp::Softplus => sigmoid(x),
            UnaryOp::Softsign => {
                let d = one + x.abs();
                one / (d * d)
            }
            UnaryOp::Mish => {
                let sp = softplus(x);
                let t = sp.tanh();
                t + x * (one - t * t) * sigmoid(x)
            }
            UnaryOp::LogSigmoid => one - sigmoid(x),
            UnaryOp::HardSigmoid => step(x > c(-3.0) && x < c(3.0)) / c(6.0),
            UnaryOp::HardSilu => {
                if x <= c(-3.0) {
                    zero
                } else if x >= c(3.0) {
                    one
                } else {
                    (c::<T>(2.0) * x + c(3.0)) / c(6.0)
                }
            }
            UnaryOp::Sign => zero,
            UnaryOp::Clamp { min, max } => step(x >= c(min) && x <= c(max)),
            UnaryOp::Powf { p } => c::<T>(p) * x.powf(c(p - 1.0)),
            UnaryOp::Affine { mul, .. } => c(mul),
        }
    }

    /// True when `derivative` needs only the output `y` (so backward need not keep `x`).
    pub fn derivative_from_output(&self) -> bool {
        matches!(
            self,
            UnaryOp::Exp | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Recip | UnaryOp::Tanh | UnaryOp::Sigmoid
        )
    }

    /// Parses a Keras activation name (`relu`, `swish`, `hard_sigmoid`, …). `linear` and
    /// `softmax` are not elementwise and return `None`.
    pub fn from_keras_activation(name: &str) -> Option<UnaryOp> {
        Some(match name {
            "relu" => UnaryOp::Relu,
            "relu6" => UnaryOp::Relu6,
            "sigmoid" => UnaryOp::Sigmoid,
            "tanh" => UnaryOp::Tanh,
            "elu" => UnaryOp::Elu { alpha: 1.0 },
            "selu" => UnaryOp::Selu,
            "gelu" => UnaryOp::Gelu,
            "swish" | "silu" => UnaryOp::Silu,
            "softplus" => UnaryOp::Softplus,
            "softsign" => UnaryOp::Softsign,
            "mish" => UnaryOp::Mish,
            "log_sigmoid" => UnaryOp::LogSigmoid,
            "hard_sigmoid" => UnaryOp::HardSigmoid,
            "hard_silu" | "hard_swish" => UnaryOp::HardSilu,
            "leaky_relu" => UnaryOp::LeakyRelu { alpha: 0.2 },
            "exponential" => UnaryOp::Exp,
            _ => return None,
        })
    }

    /// Every op with typical parameters (for exhaustive tests).
    pub fn all_for_tests() -> Vec<UnaryOp> {
        vec![
            UnaryOp::Neg,
            UnaryOp::Abs,
            UnaryOp::Exp,
            UnaryOp::Log,
            UnaryOp::Sqrt,
            UnaryOp::Rsqrt,
            UnaryOp::Square,
            UnaryOp::Recip,
            UnaryOp::Sin,
            UnaryOp::Cos,
            UnaryOp::Tanh,
            UnaryOp::Sigmoid,
            UnaryOp::Relu,
            UnaryOp::Relu6,
            UnaryOp::ReluExt { negative_slope: 0.1, max_value: Some(2.5), threshold: 0.3 },
            UnaryOp::LeakyRelu { alpha: 0.2 },
            UnaryOp::Elu { alpha: 1.3 },
            UnaryOp::Selu,
            UnaryOp::Gelu,
            UnaryOp::GeluTanh,
            UnaryOp::Silu,
            UnaryOp::Softplus,
            UnaryOp::Softsign,
            UnaryOp::Mish,
            UnaryOp::LogSigmoid,
            UnaryOp::HardSigmoid,
            UnaryOp::HardSilu,
            UnaryOp::Sign,
            UnaryOp::Clamp { min: -0.5, max: 0.7 },
            UnaryOp::Powf { p: 2.5 },
            UnaryOp::Affine { mul: -1.5, add: 0.25 },
        ]
    }

    /// True when the op is defined only for positive inputs (log, sqrt, fractional powers…).
    pub fn needs_positive_input(&self) -> bool {
        matches!(self, UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Powf { .. } | UnaryOp::Recip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivatives_match_central_differences() {
        let points: [f64; 8] = [-3.7, -1.3, -0.4, 0.35, 0.9, 2.2, 4.1, 7.0];
        for op in UnaryOp::all_for_tests() {
            for &x in &points {
                let x: f64 = if op.needs_positive_input() { x.abs() + 0.1 } else { x };
                let h = 1e-6;
                let numeric = (op.forward(x + h) - op.forward(x - h)) / (2.0 * h);
                let analytic = op.derivative(x, op.forward(x));
                assert!(
                    (numeric - analytic).abs() <= 1e-5 * (1.0 + numeric.abs()),
                    "{op:?} at {x}: numeric {numeric} analytic {analytic}"
                );
            }
        }
    }

    #[test]
    fn reference_values() {
        assert_eq!(UnaryOp::Relu6.forward(7.0f32), 6.0);
        assert!((UnaryOp::Gelu.forward(1.0f64) - 0.841_344_746_068_542_9).abs() < 1e-12);
        assert!((UnaryOp::Softplus.forward(100.0f32) - 100.0).abs() < 1e-5);
        assert!((UnaryOp::Sigmoid.forward(-100.0f64)) > 0.0);
        assert_eq!(UnaryOp::HardSigmoid.forward(0.0f64), 0.5);
        let r = UnaryOp::ReluExt { negative_slope: 0.1, max_value: Some(2.0), threshold: 0.5 };
        assert_eq!(r.forward(3.0f64), 2.0);
        assert_eq!(r.forward(1.0f64), 1.0);
        assert!((r.forward(0.0f64) + 0.05).abs() < 1e-15);
        assert_eq!(UnaryOp::from_keras_activation("swish"), Some(UnaryOp::Silu));
        assert_eq!(UnaryOp::from_keras_activation("linear"), None);
    }
}
