//! Tensor operations, by family. Each op checks its arguments (returning errors that name the
//! op and the shapes), runs the CPU kernel from tlx-cpu — or, for tensors on a GPU (feature
//! `cuda`), the GPU path in `crate::cuda` (`on_gpu!`) — and
//! records itself for autograd.
//! f16/bf16 tensors compute by converting to f32 and back (`half_roundtrip!`).

pub(crate) mod conv;
pub(crate) mod elementwise;
pub(crate) mod fused;
pub(crate) mod index;
pub(crate) mod matmul;
pub(crate) mod nn;
pub(crate) mod norm;
pub(crate) mod reduce;
pub(crate) mod view;

/// Binds `$T` to the Rust float type of `$dtype` (f32 or f64) and evaluates `$body`;
/// any other dtype returns a dtype error naming `$op`.
macro_rules! with_float {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            tlx_core::DType::F32 => {
                type $T = f32;
                $body
            }
            tlx_core::DType::F64 => {
                type $T = f64;
                $body
            }
            other => {
                return Err(tlx_core::Error::dtype(
                    $op,
                    format!("{other} tensors are not supported; convert with to_dtype(DType::F32)"),
                ))
            }
        }
    };
}
pub(crate) use with_float;

/// For f16/bf16 inputs: convert to f32, run the op, convert the result back.
macro_rules! half_roundtrip {
    ($x:expr, |$t:ident| $body:expr) => {
        if matches!($x.dtype(), tlx_core::DType::F16 | tlx_core::DType::BF16) {
            let orig = $x.dtype();
            let $t = $x.to_dtype(tlx_core::DType::F32)?;
            return $body?.to_dtype(orig);
        }
    };
}
pub(crate) use half_roundtrip;

/// With the `cuda` feature: when the tensors are on a GPU (all the same one) returns `$body`
/// with `$dev` bound to the device index; tensors on different devices are an error naming
/// `$op`. Without the feature it expands to nothing.
macro_rules! on_gpu {
    ($op:expr, all $ts:expr, |$dev:pat_param| $body:expr) => {
        #[cfg(feature = "cuda")]
        {
            if let Some($dev) = crate::cuda::gpu_of($op, $ts)? {
                return $body;
            }
        }
    };
    ($op:expr, [$($t:expr),+ $(,)?], |$dev:pat_param| $body:expr) => {
        #[cfg(feature = "cuda")]
        {
            if let Some($dev) = crate::cuda::gpu_of($op, &[$($t),+])? {
                return $body;
            }
        }
    };
}
pub(crate) use on_gpu;

use crate::Tensor;
use tlx_core::{Error, Result};

/// Errors unless both tensors have the same dtype.
pub(crate) fn same_dtype(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() != b.dtype() {
        return Err(Error::dtype(
            op,
            format!(
                "operands have different dtypes: {} {} and {} {}",
                a.dtype(),
                a.shape(),
                b.dtype(),
                b.shape()
            ),
        ));
    }
    Ok(())
}
