//! The CUDA backend of `Tensor` (feature `cuda`): `Storage::Cuda`, moves between the host and
//! GPUs, and the GPU paths of the ops, launched through `tlx_cuda::ops` and `tlx_cuda::blas`.
//!
//! Rules every op follows:
//! - an op runs where its operands are: all on the CPU → tlx-cpu, all on `cuda:i` → the
//!   kernels of tlx-cuda on device `i`; operands on different devices are an error naming the
//!   op and both devices (`gpu_of`);
//! - an op with no GPU kernel (or a dtype its kernels lack, e.g. f64 arithmetic) returns an
//!   error naming the op (`no_kernel`); nothing is ever copied to the host behind the
//!   caller's back;
//! - contexts come from `tlx_cuda::CudaContext::new`, a per-process registry by device index
//!   (created on first use); a missing driver or GPU is an `Error::Device` naming the device;
//! - results are dense device buffers; views (reshape, permute, narrow, broadcast) share the
//!   storage as on the CPU and strided operands are gathered (`copy_strided`) when a kernel
//!   needs them dense.
//!
//! Host reads: `Tensor::to_vec` and `Tensor::with_slice` copy a GPU tensor to the host (they
//! are explicit reads, not ops); `Storage::as_slice`/`as_mut_slice` and
//! `Tensor::update_in_place` on device storage are errors.

#[macro_use]
mod storage;
mod elementwise;
mod index;
mod nn;

pub(crate) use elementwise::*;
pub(crate) use index::*;
pub(crate) use nn::*;
pub use storage::{CudaBuf, CudaElem, CudaStorage};

use crate::autograd::{self, Op};
use crate::{Device, Tensor};
use std::sync::Arc;
use tlx_core::{DType, Error, Result, Shape};
use tlx_cuda::{CudaContext, DeviceBuf};

// Tensors cross threads (data loaders, rayon): device storage must too.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CudaStorage>();
    send_sync::<Tensor>();
};

/// Converts tlx-cuda results into tlx's one error type.
pub(crate) trait Gpu<T> {
    /// The value, or the tlx-cuda error as an `Error::Device`.
    fn gpu(self) -> Result<T>;
}

impl<T> Gpu<T> for tlx_cuda::Result<T> {
    fn gpu(self) -> Result<T> {
        self.map_err(|e| Error::Device(e.to_string()))
    }
}

/// The context of GPU `device` (created on first use), or an error naming the device.
pub(crate) fn context(device: usize) -> Result<CudaContext> {
    CudaContext::new(device).map_err(|e| Error::Device(format!("cuda:{device} is not available: {e}")))
}

/// The GPU all of `ts` are on (`None` when all are on the CPU), or an error naming `op` and
/// two different devices.
pub(crate) fn gpu_of(op: &'static str, ts: &[&Tensor]) -> Result<Option<usize>> {
    let Some(first) = ts.first() else { return Ok(None) };
    let d = first.device();
    if let Some(other) = ts.iter().find(|t| t.device() != d) {
        return Err(Error::Device(format!(
            "{op}: operands are on different devices: {d} and {}; move them with to_device first",
            other.device()
        )));
    }
    Ok(match d {
        Device::Cpu => None,
        Device::Cuda(i) => Some(i),
    })
}

/// Errors (naming `op`) when any of `ts` is on a GPU: the op has no CUDA kernel yet.
pub(crate) fn no_kernel(op: &'static str, ts: &[&Tensor]) -> Result<()> {
    if gpu_of(op, ts)?.is_some() {
        return Err(Error::Device(format!(
            "{op}: no CUDA kernel yet (move the operands to the CPU with to_device(Device::Cpu))"
        )));
    }
    Ok(())
}

/// Errors unless `t` is f32: the GPU kernels of `op` are f32 only (f16/bf16 inputs are
/// converted by the ops before they get here).
pub(crate) fn need_f32(op: &'static str, t: &Tensor) -> Result<()> {
    if t.dtype() != DType::F32 {
        return Err(Error::dtype(
            op,
            format!("no CUDA kernel for {} tensors; convert with to_dtype(DType::F32)", t.dtype()),
        ));
    }
    Ok(())
}

/// The device storage of `t` (a clone: the buffer is shared).
pub(crate) fn storage_of(op: &'static str, t: &Tensor) -> Result<CudaStorage> {
    match &*t.read_storage()? {
        crate::Storage::Cuda(c) => Ok(c.clone()),
        _ => Err(Error::Device(format!("{op}: expected a tensor on a GPU, found one on the CPU"))),
    }
}

/// The whole device buffer under `t` (any layout) as `T`.
pub(crate) fn buf<T: CudaElem>(op: &'static str, t: &Tensor) -> Result<Arc<DeviceBuf<T>>> {
    Ok(storage_of(op, t)?.typed::<T>(op)?.clone())
}

/// `t`'s elements as a dense row-major buffer of exactly `t.numel()` elements (the storage
/// itself when it is exactly that, else a device copy of the view).
pub(crate) fn dense<T: CudaElem>(op: &'static str, t: &Tensor) -> Result<Arc<DeviceBuf<T>>> {
    storage::dense_view(&buf::<T>(op, t)?, t.layout())
}

/// A new contiguous tensor owning `out`, recording `op` if autograd wants it.
pub(crate) fn wrap<T: CudaElem>(out: DeviceBuf<T>, shape: Shape, op: Option<Op>) -> Tensor {
    let op = op.filter(autograd::should_record);
    Tensor::from_cuda(CudaStorage::new(out), shape, op)
}

/// A buffer of `n` elements on device `dev` (contents unspecified).
pub(crate) fn alloc<T: CudaElem>(dev: usize, n: usize) -> Result<DeviceBuf<T>> {
    context(dev)?.alloc::<T>(n).gpu()
}
