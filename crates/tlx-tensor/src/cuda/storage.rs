//! `CudaStorage`: a typed device buffer (one `DeviceBuf<T>` per dtype, shared by `Arc` so a
//! cloned `Storage` stays cheap) and the device index; host↔device copies of whole storages,
//! dense copies of strided views and dtype conversions on the device.

use super::{context, Gpu};
use crate::storage::{CpuStorage, Storage, StorageElement};
use half::{bf16, f16};
use std::sync::Arc;
use tlx_core::{DType, Error, Layout, Result};
use tlx_cuda::{ops as cu, DeviceBuf, DeviceElem};

/// A typed device buffer of any tlx dtype.
#[derive(Clone, Debug)]
pub enum CudaBuf {
    U8(Arc<DeviceBuf<u8>>),
    I32(Arc<DeviceBuf<i32>>),
    I64(Arc<DeviceBuf<i64>>),
    F16(Arc<DeviceBuf<f16>>),
    BF16(Arc<DeviceBuf<bf16>>),
    F32(Arc<DeviceBuf<f32>>),
    F64(Arc<DeviceBuf<f64>>),
}

/// Calls `$body` with `$b` bound to the typed `Arc<DeviceBuf<T>>` of a `CudaBuf` and `$T` to
/// its element type.
macro_rules! with_cuda_buf {
    ($buf:expr, $b:ident, $T:ident => $body:expr) => {
        match $buf {
            CudaBuf::U8($b) => {
                type $T = u8;
                $body
            }
            CudaBuf::I32($b) => {
                type $T = i32;
                $body
            }
            CudaBuf::I64($b) => {
                type $T = i64;
                $body
            }
            CudaBuf::F16($b) => {
                type $T = half::f16;
                $body
            }
            CudaBuf::BF16($b) => {
                type $T = half::bf16;
                $body
            }
            CudaBuf::F32($b) => {
                type $T = f32;
                $body
            }
            CudaBuf::F64($b) => {
                type $T = f64;
                $body
            }
        }
    };
}

/// Element types with a `CudaBuf` variant.
pub trait CudaElem: StorageElement + DeviceElem {
    /// The buffer, if `b` holds this type.
    fn get(b: &CudaBuf) -> Option<&Arc<DeviceBuf<Self>>>;
    /// The buffer mutably, if `b` holds this type.
    fn get_mut(b: &mut CudaBuf) -> Option<&mut Arc<DeviceBuf<Self>>>;
    /// Wraps a buffer.
    fn wrap_buf(b: Arc<DeviceBuf<Self>>) -> CudaBuf;
}

macro_rules! cuda_elem {
    ($t:ty, $v:ident) => {
        impl CudaElem for $t {
            fn get(b: &CudaBuf) -> Option<&Arc<DeviceBuf<Self>>> {
                match b {
                    CudaBuf::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn get_mut(b: &mut CudaBuf) -> Option<&mut Arc<DeviceBuf<Self>>> {
                match b {
                    CudaBuf::$v(v) => Some(v),
                    _ => None,
                }
            }
            fn wrap_buf(b: Arc<DeviceBuf<Self>>) -> CudaBuf {
                CudaBuf::$v(b)
            }
        }
    };
}
cuda_elem!(u8, U8);
cuda_elem!(i32, I32);
cuda_elem!(i64, I64);
cuda_elem!(f16, F16);
cuda_elem!(bf16, BF16);
cuda_elem!(f32, F32);
cuda_elem!(f64, F64);

/// Elements in the memory of GPU `device`.
#[derive(Clone, Debug)]
pub struct CudaStorage {
    buf: CudaBuf,
    device: usize,
}

impl CudaStorage {
    /// Wraps a typed buffer (its context's ordinal is the device).
    pub fn new<T: CudaElem>(buf: DeviceBuf<T>) -> CudaStorage {
        let device = buf.context().ordinal();
        CudaStorage { buf: T::wrap_buf(Arc::new(buf)), device }
    }

    /// The typed buffer.
    pub fn buf(&self) -> &CudaBuf {
        &self.buf
    }

    /// The device index.
    pub fn device(&self) -> usize {
        self.device
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        with_cuda_buf!(&self.buf, _b, T => <T as DeviceElem>::DTYPE)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_cuda_buf!(&self.buf, b, _T => b.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer as `T`, or a dtype error naming `op`.
    pub(crate) fn typed<T: CudaElem>(&self, op: &'static str) -> Result<&Arc<DeviceBuf<T>>> {
        T::get(&self.buf).ok_or_else(|| {
            Error::dtype(op, format!("expected {} storage, found {}", <T as DeviceElem>::DTYPE, self.dtype()))
        })
    }

    /// The buffer as `T` for writing: this storage's own buffer when no other storage shares
    /// it, else a fresh copy that replaces it here (copy on write).
    pub(crate) fn typed_mut<T: CudaElem>(&mut self, op: &'static str) -> Result<&mut DeviceBuf<T>> {
        let shared = self.typed::<T>(op)?;
        if Arc::strong_count(shared) > 1 {
            let copy = shared.try_clone().gpu()?;
            self.buf = T::wrap_buf(Arc::new(copy));
        }
        T::get_mut(&mut self.buf)
            .and_then(Arc::get_mut)
            .ok_or_else(|| Error::Device(format!("{op}: device buffer is shared")))
    }

    /// The error of a host read or write of device memory.
    pub(crate) fn host_access_error(&self, op: &'static str) -> Error {
        Error::Device(format!(
            "{op}: the tensor is on cuda:{}; move it with to_device(Device::Cpu) to read or write it on the host",
            self.device
        ))
    }

    /// Copies a whole host storage (owned or memory-mapped bytes, straight) to GPU `device`.
    pub(crate) fn upload(device: usize, s: &Storage) -> Result<CudaStorage> {
        let ctx = context(device)?;
        fn up<T: CudaElem>(ctx: &tlx_cuda::CudaContext, s: &Storage) -> Result<CudaStorage> {
            let buf = match s {
                Storage::Mapped(m) => ctx.htod_bytes::<T>(m.bytes()).gpu()?,
                _ => ctx.htod::<T>(s.as_slice::<T>("to_device")?).gpu()?,
            };
            Ok(CudaStorage::new(buf))
        }
        match s.dtype() {
            DType::U8 => up::<u8>(&ctx, s),
            DType::I32 => up::<i32>(&ctx, s),
            DType::I64 => up::<i64>(&ctx, s),
            DType::F16 => up::<f16>(&ctx, s),
            DType::BF16 => up::<bf16>(&ctx, s),
            DType::F32 => up::<f32>(&ctx, s),
            DType::F64 => up::<f64>(&ctx, s),
        }
    }

    /// The elements of the view `layout`, row-major, copied to the host.
    pub(crate) fn download(&self, layout: &Layout) -> Result<CpuStorage> {
        with_cuda_buf!(&self.buf, b, T => {
            let dense = dense_view::<T>(b, layout)?;
            Ok(<T as StorageElement>::wrap(dense.to_vec().gpu()?))
        })
    }

    /// A dense row-major copy of the view `layout`, on the device.
    pub(crate) fn dense_copy(&self, layout: &Layout) -> Result<CudaStorage> {
        with_cuda_buf!(&self.buf, b, T => {
            let mut out = b.context().alloc::<T>(layout.numel()).gpu()?;
            cu::elementwise::copy_strided(b, layout, &mut out).gpu()?;
            Ok(CudaStorage::new(out))
        })
    }

    /// The dense buffer (this one's elements, whole) converted to `to`, on the device.
    pub(crate) fn convert(&self, to: DType) -> Result<CudaStorage> {
        with_cuda_buf!(&self.buf, b, S => convert_from::<S>(b, to))
    }

    /// Writes the dense `src` (same dtype, `layout.numel()` elements) into the view `layout`
    /// of this storage (copy on write if the buffer is shared with another storage).
    pub(crate) fn scatter_from(&mut self, src: &CudaStorage, layout: &Layout) -> Result<()> {
        with_cuda_buf!(&src.buf, s, T => {
            let dst = self.typed_mut::<T>("assign")?;
            cu::elementwise::scatter_strided(s, layout, dst).gpu()
        })
    }
}

/// `b` itself when `layout` covers it exactly, row-major; else a dense copy of the view.
pub(crate) fn dense_view<T: DeviceElem>(b: &Arc<DeviceBuf<T>>, layout: &Layout) -> Result<Arc<DeviceBuf<T>>> {
    if layout.contiguous_range() == Some(0..b.len()) {
        return Ok(b.clone());
    }
    let mut out = b.context().alloc::<T>(layout.numel()).gpu()?;
    cu::elementwise::copy_strided(b, layout, &mut out).gpu()?;
    Ok(Arc::new(out))
}

/// `dst = D(src)` with index.cu's conversion kernels (u8/i32/i64/f32/f64).
fn convert_into<S: CudaElem, D: CudaElem>(b: &DeviceBuf<S>) -> Result<CudaStorage> {
    let (from, to) = (<S as DeviceElem>::DTYPE, <D as DeviceElem>::DTYPE);
    if !cu::index::can_convert(from, to) {
        return Err(Error::dtype("to_dtype", format!("no CUDA kernel converts {from} to {to}")));
    }
    let mut out = b.context().alloc::<D>(b.len()).gpu()?;
    cu::index::convert(b, &mut out).gpu()?;
    Ok(CudaStorage::new(out))
}

/// Any dtype to f32 (f16/bf16 with the mixed-precision casts, exactly).
fn to_f32(s: &CudaStorage) -> Result<CudaStorage> {
    let n = s.len();
    match &s.buf {
        CudaBuf::F32(_) => Ok(s.clone()),
        CudaBuf::F16(b) => {
            let mut out = b.context().alloc::<f32>(n).gpu()?;
            cu::mixed::cast_f16_to_f32(b, &mut out).gpu()?;
            Ok(CudaStorage::new(out))
        }
        CudaBuf::BF16(b) => {
            let mut out = b.context().alloc::<f32>(n).gpu()?;
            cu::mixed::cast_bf16_to_f32(b, &mut out).gpu()?;
            Ok(CudaStorage::new(out))
        }
        other => with_cuda_buf!(other, b, S => convert_into::<S, f32>(b)),
    }
}

/// f32 to any dtype (f16/bf16 rounded to nearest even by the mixed-precision casts).
fn from_f32(s: &CudaStorage, to: DType) -> Result<CudaStorage> {
    let b = s.typed::<f32>("to_dtype")?;
    let n = b.len();
    match to {
        DType::F32 => Ok(s.clone()),
        DType::F16 => {
            let mut out = b.context().alloc::<f16>(n).gpu()?;
            cu::mixed::cast_f32_to_f16(b, &mut out).gpu()?;
            Ok(CudaStorage::new(out))
        }
        DType::BF16 => {
            let mut out = b.context().alloc::<bf16>(n).gpu()?;
            cu::mixed::cast_f32_to_bf16(b, &mut out).gpu()?;
            Ok(CudaStorage::new(out))
        }
        DType::U8 => convert_into::<f32, u8>(b),
        DType::I32 => convert_into::<f32, i32>(b),
        DType::I64 => convert_into::<f32, i64>(b),
        DType::F64 => convert_into::<f32, f64>(b),
    }
}

fn convert_from<S: CudaElem>(b: &Arc<DeviceBuf<S>>, to: DType) -> Result<CudaStorage> {
    let from = <S as DeviceElem>::DTYPE;
    let this = CudaStorage { buf: S::wrap_buf(b.clone()), device: b.context().ordinal() };
    let half = |d: DType| matches!(d, DType::F16 | DType::BF16);
    if from == to {
        return Ok(this);
    }
    if half(from) || half(to) {
        // Through f32 (exact from f16/bf16; the CPU's cast also rounds once from f64).
        return from_f32(&to_f32(&this)?, to);
    }
    match to {
        DType::U8 => convert_into::<S, u8>(b),
        DType::I32 => convert_into::<S, i32>(b),
        DType::I64 => convert_into::<S, i64>(b),
        DType::F32 => convert_into::<S, f32>(b),
        DType::F64 => convert_into::<S, f64>(b),
        DType::F16 | DType::BF16 => unreachable!("handled above"),
    }
}
