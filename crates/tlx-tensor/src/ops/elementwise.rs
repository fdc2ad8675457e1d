//! Elementwise ops: the unary op table (activations, math), binary arithmetic with NumPy
//! broadcasting, scalar arithmetic, comparisons, and the `+ − × ÷` operators on `&Tensor`.

use super::{half_roundtrip, on_gpu, same_dtype, with_float};
use crate::autograd::Op;
use crate::storage::{Storage, StorageElement};
use crate::Tensor;
use tlx_core::{BinaryOp, CmpOp, DType, Error, Result, Shape, UnaryOp};

/// Reads two tensors' storages, taking one lock when they share a buffer.
pub(crate) fn read_pair<R>(
    a: &Tensor,
    b: &Tensor,
    f: impl FnOnce(&Storage, &Storage) -> Result<R>,
) -> Result<R> {
    if a.shares_storage_with(b) {
        let s = a.read_storage()?;
        f(&s, &s)
    } else {
        let (sa, sb) = (a.read_storage()?, b.read_storage()?);
        f(&sa, &sb)
    }
}

impl Tensor {
    /// Applies an elementwise op from the op table.
    pub fn unary(&self, op: UnaryOp) -> Result<Tensor> {
        half_roundtrip!(self, |x| x.unary(op));
        on_gpu!(op.name(), [self], |_| crate::cuda::unary(self, op));
        let storage = with_float!(self.dtype(), op.name(), T => {
            self.with_slice::<T, _>(|x| {
                let mut out = vec![T::default(); x.len()];
                tlx_cpu::elementwise::unary(op, x, &mut out);
                T::wrap(out)
            })?
        });
        Ok(Tensor::from_storage(storage, self.shape().clone(), Some(Op::Unary { op, x: self.clone() })))
    }

    /// Applies a binary op with NumPy broadcasting.
    pub fn binary(&self, other: &Tensor, op: BinaryOp) -> Result<Tensor> {
        same_dtype(op.name(), self, other)?;
        half_roundtrip!(self, |a| a.binary(&other.to_dtype(DType::F32)?, op));
        let shape = self.shape().broadcast(other.shape(), op.name())?;
        let (la, lb) = (self.layout().broadcast_to(&shape)?, other.layout().broadcast_to(&shape)?);
        on_gpu!(op.name(), [self, other], |_| crate::cuda::binary(self, other, op, shape, &la, &lb));
        let storage = with_float!(self.dtype(), op.name(), T => {
            read_pair(self, other, |sa, sb| {
                let mut out = vec![T::default(); shape.numel()];
                tlx_cpu::elementwise::binary(op, sa.as_slice::<T>(op.name())?, &la, sb.as_slice::<T>(op.name())?, &lb, &mut out);
                Ok(T::wrap(out))
            })?
        });
        Ok(Tensor::from_storage(storage, shape, Some(Op::Binary { op, a: self.clone(), b: other.clone() })))
    }

    /// Elementwise comparison with broadcasting; the result is a `u8` mask (any dtype).
    pub fn compare(&self, other: &Tensor, op: CmpOp) -> Result<Tensor> {
        same_dtype(op.name(), self, other)?;
        let shape = self.shape().broadcast(other.shape(), op.name())?;
        on_gpu!(op.name(), [self, other], |_| crate::cuda::compare(self, other, op, shape));
        let (la, lb) = (self.layout().broadcast_to(&shape)?, other.layout().broadcast_to(&shape)?);
        let mut out = vec![0u8; shape.numel()];
        fn run<T: StorageElement>(
            op: CmpOp,
            a: &Tensor,
            b: &Tensor,
            la: &tlx_core::Layout,
            lb: &tlx_core::Layout,
            out: &mut [u8],
        ) -> Result<()> {
            read_pair(a, b, |sa, sb| {
                tlx_cpu::elementwise::compare(
                    op,
                    sa.as_slice::<T>(op.name())?,
                    la,
                    sb.as_slice::<T>(op.name())?,
                    lb,
                    out,
                );
                Ok(())
            })
        }
        match self.dtype() {
            DType::U8 => run::<u8>(op, self, other, &la, &lb, &mut out)?,
            DType::I32 => run::<i32>(op, self, other, &la, &lb, &mut out)?,
            DType::I64 => run::<i64>(op, self, other, &la, &lb, &mut out)?,
            DType::F16 => run::<half::f16>(op, self, other, &la, &lb, &mut out)?,
            DType::BF16 => run::<half::bf16>(op, self, other, &la, &lb, &mut out)?,
            DType::F32 => run::<f32>(op, self, other, &la, &lb, &mut out)?,
            DType::F64 => run::<f64>(op, self, other, &la, &lb, &mut out)?,
        }
        Tensor::from_vec(out, shape)
    }

    /// A rank-0 tensor of this tensor's dtype holding `v`, on the CPU.
    pub fn scalar_like(&self, v: f64) -> Tensor {
        Tensor::full(Shape::scalar(), v, self.dtype())
    }
}

/// Gradient of a unary op: `g · f'(x, y)`.
pub(crate) fn unary_grad(op: UnaryOp, x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Tensor> {
    on_gpu!(op.name(), [x, y, g], |_| crate::cuda::unary_grad(op, x, y, g));
    let storage = with_float!(x.dtype(), op.name(), T => {
        let (xs, ys, gs) = (x.contiguous()?, y.contiguous()?, g.contiguous()?);
        xs.with_slice::<T, _>(|xv| ys.with_slice::<T, _>(|yv| gs.with_slice::<T, _>(|gv| {
            let mut out = vec![T::default(); xv.len()];
            tlx_cpu::elementwise::unary_backward(op, xv, yv, gv, &mut out);
            T::wrap(out)
        })))???
    });
    Ok(Tensor::from_storage(storage, x.shape().clone(), None))
}

macro_rules! unary_methods {
    ($($(#[$doc:meta])* $name:ident => $op:expr;)*) => {
        impl Tensor {
            $($(#[$doc])* pub fn $name(&self) -> Result<Tensor> { self.unary($op) })*
        }
    };
}

unary_methods! {
    /// `−x`.
    neg => UnaryOp::Neg;
    /// `|x|`.
    abs => UnaryOp::Abs;
    /// `eˣ`.
    exp => UnaryOp::Exp;
    /// Natural logarithm.
    log => UnaryOp::Log;
    /// Square root.
    sqrt => UnaryOp::Sqrt;
    /// `1/√x`.
    rsqrt => UnaryOp::Rsqrt;
    /// `x²`.
    square => UnaryOp::Square;
    /// `1/x`.
    recip => UnaryOp::Recip;
    /// Hyperbolic tangent.
    tanh => UnaryOp::Tanh;
    /// Logistic sigmoid.
    sigmoid => UnaryOp::Sigmoid;
    /// `max(x, 0)`.
    relu => UnaryOp::Relu;
    /// `min(max(x, 0), 6)`.
    relu6 => UnaryOp::Relu6;
    /// SELU with Keras's constants.
    selu => UnaryOp::Selu;
    /// Exact GELU, `x·Φ(x)`.
    gelu => UnaryOp::Gelu;
    /// GELU with the tanh approximation.
    gelu_tanh => UnaryOp::GeluTanh;
    /// Swish / SiLU, `x·σ(x)`.
    silu => UnaryOp::Silu;
    /// `ln(1 + eˣ)`.
    softplus => UnaryOp::Softplus;
    /// Keras 3's `relu6(x + 3)/6`.
    hard_sigmoid => UnaryOp::HardSigmoid;
    /// −1, 0 or 1.
    sign => UnaryOp::Sign;
}

impl Tensor {
    /// Leaky ReLU: `x` for x > 0, else `alpha·x`.
    pub fn leaky_relu(&self, alpha: f64) -> Result<Tensor> {
        self.unary(UnaryOp::LeakyRelu { alpha })
    }

    /// ELU: `x` for x > 0, else `alpha·(eˣ − 1)`.
    pub fn elu(&self, alpha: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Elu { alpha })
    }

    /// Clamps into `[min, max]`.
    pub fn clamp(&self, min: f64, max: f64) -> Result<Tensor> {
        if min > max || min.is_nan() || max.is_nan() {
            return Err(Error::invalid("clamp", format!("min {min} is greater than max {max}")));
        }
        self.unary(UnaryOp::Clamp { min, max })
    }

    /// `x^p` for a constant p.
    pub fn powf(&self, p: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Powf { p })
    }

    /// `x + c`.
    pub fn add_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul: 1.0, add: c })
    }

    /// `x · c`.
    pub fn mul_scalar(&self, c: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul: c, add: 0.0 })
    }

    /// `x · mul + add`.
    pub fn affine(&self, mul: f64, add: f64) -> Result<Tensor> {
        self.unary(UnaryOp::Affine { mul, add })
    }

    /// `self + other` (broadcasting).
    pub fn add(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Add)
    }

    /// `self − other` (broadcasting).
    pub fn sub(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Sub)
    }

    /// `self · other` (broadcasting).
    pub fn mul(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Mul)
    }

    /// `self / other` (broadcasting).
    pub fn div(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Div)
    }

    /// `self ^ other` (broadcasting).
    pub fn pow(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Pow)
    }

    /// Elementwise maximum (broadcasting; NaN propagates).
    pub fn maximum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Maximum)
    }

    /// Elementwise minimum (broadcasting; NaN propagates).
    pub fn minimum(&self, other: &Tensor) -> Result<Tensor> {
        self.binary(other, BinaryOp::Minimum)
    }

    /// `self == other` as a u8 mask.
    pub fn eq(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, CmpOp::Eq)
    }

    /// `self != other` as a u8 mask.
    pub fn ne(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, CmpOp::Ne)
    }

    /// `self < other` as a u8 mask.
    pub fn lt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, CmpOp::Lt)
    }

    /// `self <= other` as a u8 mask.
    pub fn le(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, CmpOp::Le)
    }

    /// `self > other` as a u8 mask.
    pub fn gt(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, CmpOp::Gt)
    }

    /// `self >= other` as a u8 mask.
    pub fn ge(&self, other: &Tensor) -> Result<Tensor> {
        self.compare(other, CmpOp::Ge)
    }
}

macro_rules! operator {
    ($trait:ident, $method:ident, $op:expr) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: &Tensor) -> Result<Tensor> {
                self.binary(rhs, $op)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Result<Tensor>;
            fn $method(self, rhs: Tensor) -> Result<Tensor> {
                (&self).binary(&rhs, $op)
            }
        }
    };
}
operator!(Add, add, BinaryOp::Add);
operator!(Sub, sub, BinaryOp::Sub);
operator!(Mul, mul, BinaryOp::Mul);
operator!(Div, div, BinaryOp::Div);
