//! The fused epilogue of an inference convolution: `y = act((v + bias)·scale + shift + r)`
//! per output channel, applied to each output tile or row right after it is computed (while
//! it is in cache; ungrouped f32 GEMM convolutions hand it to the micro-kernel instead, as
//! `gemm::OutputOps`, which applies the same steps in registers), where `v` is the
//! convolution without bias. With `scale = γ/√(σ² + ε)` and
//! `shift = β − μ·scale` this is a BatchNormalization in inference mode, computed the way
//! Keras computes it after the convolution and its bias (`x·scale + offset`), so fusing
//! changes no rounding; `r` is a residual of the output's shape (ResNet's shortcut, added
//! before the block's final ReLU); `act` is the ReLU that usually follows (ReLU6 for
//! MobileNetV2).

use tlx_core::Float;

/// The activation that ends the epilogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpilogueAct {
    /// None.
    Linear,
    /// `max(v, 0)`; NaN stays NaN (as `UnaryOp::Relu`).
    Relu,
    /// `min(max(v, 0), 6)`; NaN stays NaN (as `UnaryOp::Relu6`).
    Relu6,
}

/// `y = act((v + bias)·scale + shift + residual)` per channel, each step done separately (one
/// rounding each, as the separate ops do); a missing vector is skipped.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a, T> {
    pub bias: Option<&'a [T]>,
    pub scale: Option<&'a [T]>,
    pub shift: Option<&'a [T]>,
    /// Added elementwise: the whole output's worth, `[n·out_h·out_w, c_out]`.
    pub residual: Option<&'a [T]>,
    pub act: EpilogueAct,
}

impl<'a, T: Float> Epilogue<'a, T> {
    /// The epilogue that changes nothing.
    pub fn identity() -> Self {
        Epilogue { bias: None, scale: None, shift: None, residual: None, act: EpilogueAct::Linear }
    }

    /// Whether applying it leaves every value unchanged.
    pub fn is_identity(&self) -> bool {
        self.bias.is_none()
            && self.scale.is_none()
            && self.shift.is_none()
            && self.residual.is_none()
            && self.act == EpilogueAct::Linear
    }

    /// The same epilogue over f32 (T is f32 wherever this is called: the f32-only paths).
    pub(crate) fn as_f32(&self) -> Epilogue<'a, f32> {
        let f32s = |v: &'a [T]| -> &'a [f32] { bytemuck::cast_slice(v) };
        Epilogue {
            bias: self.bias.map(f32s),
            scale: self.scale.map(f32s),
            shift: self.shift.map(f32s),
            residual: self.residual.map(f32s),
            act: self.act,
        }
    }

    /// Panics unless every vector has `c` entries and the residual `out_len` (the caller's
    /// contract).
    pub(crate) fn check(&self, c: usize, out_len: usize) {
        for (what, v) in [("bias", self.bias), ("scale", self.scale), ("shift", self.shift)] {
            if let Some(v) = v {
                assert_eq!(v.len(), c, "conv2d epilogue: {what} has {} values for {c} channels", v.len());
            }
        }
        if let Some(r) = self.residual {
            assert_eq!(
                r.len(),
                out_len,
                "conv2d epilogue: residual has {} values for {out_len} outputs",
                r.len()
            );
        }
    }

    /// Applies it to `rows` `[r, c]` (row-major, whole rows), which are the output's rows
    /// `first_row..` (where the residual is read).
    pub fn apply(&self, rows: &mut [T], c: usize, first_row: usize) {
        if self.is_identity() || c == 0 {
            return;
        }
        debug_assert_eq!(rows.len() % c, 0);
        let residual = self.residual.map(|r| r[first_row * c..][..rows.len()].chunks_exact(c));
        let mut residual = residual.into_iter().flatten();
        for row in rows.chunks_exact_mut(c) {
            if let Some(b) = self.bias {
                row.iter_mut().zip(b).for_each(|(v, &b)| *v += b);
            }
            if let Some(s) = self.scale {
                row.iter_mut().zip(s).for_each(|(v, &s)| *v *= s);
            }
            if let Some(b) = self.shift {
                row.iter_mut().zip(b).for_each(|(v, &b)| *v += b);
            }
            if let Some(r) = residual.next() {
                row.iter_mut().zip(r).for_each(|(v, &r)| *v += r);
            }
            match self.act {
                EpilogueAct::Linear => {}
                a => row.iter_mut().for_each(|v| *v = act(a, *v)),
            }
        }
    }
}

impl<'a> Epilogue<'a, f32> {
    /// The operations the SGEMM micro-kernel applies in registers, for a product whose C is
    /// the output's rows `first_row..` with `c` columns (one group).
    pub(crate) fn output_ops(&self, first_row: usize, c: usize) -> crate::gemm::OutputOps<'a> {
        crate::gemm::OutputOps {
            bias: self.bias,
            scale: self.scale,
            shift: self.shift,
            residual: self.residual.map(|r| (&r[first_row * c..], c)),
            residual_in_c: false,
            act: self.act,
        }
    }
}

#[inline(always)]
fn act<T: Float>(a: EpilogueAct, v: T) -> T {
    // Comparisons written so that NaN falls through unchanged.
    match a {
        EpilogueAct::Linear => v,
        EpilogueAct::Relu => {
            if v < T::zero() {
                T::zero()
            } else {
                v
            }
        }
        EpilogueAct::Relu6 => {
            let six = <T as tlx_core::Element>::from_f64(6.0);
            if v < T::zero() {
                T::zero()
            } else if v > six {
                six
            } else {
                v
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_scale_shift_and_activation_per_channel() {
        let mut rows = vec![1.0f32, -2.0, 3.0, 10.0, f32::NAN, -0.5];
        let (s, b) = ([2.0f32, 1.0, 0.5], [0.5f32, 1.0, -1.0]);
        let ep = Epilogue {
            bias: None,
            scale: Some(&s[..]),
            shift: Some(&b[..]),
            residual: None,
            act: EpilogueAct::Relu6,
        };
        ep.check(3, 6);
        ep.apply(&mut rows, 3, 0);
        assert_eq!(&rows[..3], &[2.5, 0.0, 0.5]);
        assert_eq!(rows[3], 6.0);
        assert!(rows[4].is_nan());
        assert_eq!(rows[5], 0.0);
        let mut rows = vec![-1.0f64, 2.0];
        Epilogue { bias: None, scale: None, shift: None, residual: None, act: EpilogueAct::Relu }
            .apply(&mut rows, 2, 0);
        assert_eq!(rows, [0.0, 2.0]);
        let mut rows = vec![-1.0f64, 2.0];
        let shift = [1.0, 1.0];
        Epilogue {
            bias: Some(&shift[..]),
            scale: None,
            shift: None,
            residual: None,
            act: EpilogueAct::Linear,
        }
        .apply(&mut rows, 2, 0);
        assert_eq!(rows, [0.0, 3.0]);
        // The residual is read at the rows' place in the output: rows 1..3 of a [3, 2] output.
        let residual = [100.0f32, 100.0, 1.0, -5.0, 2.0, 0.5];
        let mut rows = vec![1.0f32, 2.0, 3.0, 4.0];
        let ep = Epilogue {
            bias: None,
            scale: None,
            shift: None,
            residual: Some(&residual[..]),
            act: EpilogueAct::Relu,
        };
        ep.check(2, 6);
        ep.apply(&mut rows, 2, 1);
        assert_eq!(rows, [2.0, 0.0, 5.0, 4.5]);
    }
}
