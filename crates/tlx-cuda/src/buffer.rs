//! [`DeviceBuf`]: a typed, dense buffer in a device's memory, taken from and returned to the
//! device's caching allocator, with host↔device and device↔device copies. Host data may come
//! from any `&[u8]` (a memory-mapped safetensors file, say): its bytes are copied as they are,
//! with no alignment requirement and no intermediate host copy.

use crate::alloc::Block;
use crate::context::CudaContext;
use crate::error::{Error, Result};
use cudarc::driver::result as drv;
use std::marker::PhantomData;
use tlx_core::DType;

/// An element type that can live in a device buffer.
pub trait DeviceElem: Copy + Send + Sync + bytemuck::Pod + std::fmt::Debug + 'static {
    /// The tlx dtype of this element.
    const DTYPE: DType;
}

macro_rules! elem {
    ($($t:ty => $d:ident),*) => { $(impl DeviceElem for $t { const DTYPE: DType = DType::$d; })* };
}
elem!(u8 => U8, i32 => I32, i64 => I64, half::f16 => F16, half::bf16 => BF16, f32 => F32, f64 => F64);

/// `len` elements of `T` on one device. Dropping it returns the memory to the device's
/// allocator (work already queued that reads it still runs first: one stream per device).
pub struct DeviceBuf<T: DeviceElem> {
    block: Option<Block>,
    len: usize,
    ctx: CudaContext,
    _elem: PhantomData<T>,
}

impl<T: DeviceElem> std::fmt::Debug for DeviceBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceBuf<{}>[{}] on cuda:{}", T::DTYPE, self.len, self.ctx.ordinal())
    }
}

impl<T: DeviceElem> Drop for DeviceBuf<T> {
    fn drop(&mut self) {
        if let Some(b) = self.block.take() {
            self.ctx.allocator().release(b);
        }
    }
}

impl<T: DeviceElem> DeviceBuf<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when it holds no element.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element type's tag.
    pub fn dtype(&self) -> DType {
        T::DTYPE
    }

    /// The device it lives on.
    pub fn context(&self) -> &CudaContext {
        &self.ctx
    }

    /// Size in bytes.
    pub fn byte_len(&self) -> usize {
        self.len * std::mem::size_of::<T>()
    }

    /// The raw device address of element 0.
    pub(crate) fn ptr(&self) -> u64 {
        self.block.as_ref().map_or(0, |b| b.ptr)
    }

    /// The device address of element 0 after checking that the buffer is on `ctx` and holds
    /// at least `need` elements (what a kernel about to read or write it needs).
    pub(crate) fn arg(&self, ctx: &CudaContext, op: &'static str, what: &str, need: usize) -> Result<u64> {
        if self.ctx != *ctx {
            return Err(Error::invalid(
                op,
                format!("{what} is on cuda:{} but the op runs on cuda:{}", self.ctx.ordinal(), ctx.ordinal()),
            ));
        }
        if self.len < need {
            return Err(Error::invalid(op, format!("{what} has {} elements, needs {need}", self.len)));
        }
        Ok(self.ptr())
    }

    /// Copies the whole buffer to a new host vector (waits for queued work).
    pub fn to_vec(&self) -> Result<Vec<T>> {
        let mut out = vec![T::zeroed(); self.len];
        self.copy_to_host(&mut out)?;
        Ok(out)
    }

    /// Copies the buffer into `dst` (the same length; waits for queued work).
    pub fn copy_to_host(&self, dst: &mut [T]) -> Result<()> {
        if dst.len() != self.len {
            return Err(Error::invalid(
                "copy_to_host",
                format!("buffer has {} elements, host slice {}", self.len, dst.len()),
            ));
        }
        if self.len == 0 {
            return Ok(());
        }
        self.ctx.bind()?;
        // SAFETY: the device range [ptr, ptr + len·size) is this buffer; `dst` has exactly
        // `len` elements and stays borrowed until the synchronize below completes the copy.
        unsafe { drv::memcpy_dtoh_async(dst, self.ptr(), self.ctx.cu_stream()) }
            .map_err(Error::driver("copy device to host"))?;
        self.ctx.synchronize()
    }

    /// Overwrites the buffer with `src` (the same length).
    pub fn copy_from_host(&mut self, src: &[T]) -> Result<()> {
        self.copy_from_bytes(bytemuck::cast_slice(src))
    }

    /// Overwrites the buffer with raw little-endian element bytes (any alignment), e.g. a
    /// tensor's data inside a memory-mapped weights file.
    pub fn copy_from_bytes(&mut self, src: &[u8]) -> Result<()> {
        if src.len() != self.byte_len() {
            return Err(Error::invalid(
                "copy_from_bytes",
                format!(
                    "{} bytes do not fill a buffer of {} {} ({} bytes)",
                    src.len(),
                    self.len,
                    T::DTYPE,
                    self.byte_len()
                ),
            ));
        }
        if src.is_empty() {
            return Ok(());
        }
        self.ctx.bind()?;
        // SAFETY: the device range is this buffer, exactly `src.len()` bytes. A copy from
        // pageable host memory returns only after `src` has been read (staged), so the borrow
        // may end when this call returns.
        unsafe { drv::memcpy_htod_async(self.ptr(), src, self.ctx.cu_stream()) }
            .map_err(Error::driver("copy host to device"))
    }

    /// Overwrites the buffer with `src`'s elements (same device, same length).
    pub fn copy_from(&mut self, src: &DeviceBuf<T>) -> Result<()> {
        let from = src.arg(&self.ctx, "copy_from", "source", self.len)?;
        if src.len != self.len {
            return Err(Error::invalid(
                "copy_from",
                format!("source has {} elements, destination {}", src.len, self.len),
            ));
        }
        self.copy_range_from(src, from, self.len, 0)
    }

    /// Copies `count` elements starting at element `at` of `src` into this buffer from element
    /// `to`.
    pub fn copy_slice_from(&mut self, src: &DeviceBuf<T>, at: usize, count: usize, to: usize) -> Result<()> {
        let from = src.arg(&self.ctx, "copy_slice_from", "source", at.saturating_add(count))?;
        if to.saturating_add(count) > self.len {
            return Err(Error::invalid(
                "copy_slice_from",
                format!("{to}+{count} exceeds the destination's {}", self.len),
            ));
        }
        self.copy_range_from(src, from + (at * std::mem::size_of::<T>()) as u64, count, to)
    }

    fn copy_range_from(&mut self, _src: &DeviceBuf<T>, from: u64, count: usize, to: usize) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        self.ctx.bind()?;
        let size = std::mem::size_of::<T>();
        // SAFETY: both ranges were checked against their buffers' lengths; `_src` is borrowed
        // for the call and stream order keeps it alive for the copy.
        unsafe {
            drv::memcpy_dtod_async(self.ptr() + (to * size) as u64, from, count * size, self.ctx.cu_stream())
        }
        .map_err(Error::driver("copy device to device"))
    }

    /// A new buffer with the same contents.
    pub fn try_clone(&self) -> Result<DeviceBuf<T>> {
        let mut out = self.ctx.alloc::<T>(self.len)?;
        out.copy_from(self)?;
        Ok(out)
    }

    /// Sets every byte to zero.
    pub fn zero(&mut self) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        self.ctx.bind()?;
        // SAFETY: writes exactly this buffer's bytes.
        unsafe { drv::memset_d8_async(self.ptr(), 0, self.byte_len(), self.ctx.cu_stream()) }
            .map_err(Error::driver("memset"))
    }
}

impl CudaContext {
    /// A buffer of `len` elements whose contents are unspecified (every bit pattern is a
    /// valid `T`; kernels that take it as output overwrite it).
    pub fn alloc<T: DeviceElem>(&self, len: usize) -> Result<DeviceBuf<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::invalid("alloc", format!("{len} elements of {} overflow", T::DTYPE)))?;
        let block = self.allocator().alloc(bytes)?;
        Ok(DeviceBuf { block: Some(block), len, ctx: self.clone(), _elem: PhantomData })
    }

    /// A buffer of `len` zeros.
    pub fn zeros<T: DeviceElem>(&self, len: usize) -> Result<DeviceBuf<T>> {
        let mut b = self.alloc(len)?;
        b.zero()?;
        Ok(b)
    }

    /// A new buffer holding `data`.
    pub fn htod<T: DeviceElem>(&self, data: &[T]) -> Result<DeviceBuf<T>> {
        let mut b = self.alloc(data.len())?;
        b.copy_from_host(data)?;
        Ok(b)
    }

    /// A new buffer of `T` from raw little-endian bytes (any alignment), e.g. straight from a
    /// memory-mapped weights file.
    pub fn htod_bytes<T: DeviceElem>(&self, bytes: &[u8]) -> Result<DeviceBuf<T>> {
        let size = std::mem::size_of::<T>();
        if bytes.len() % size != 0 {
            return Err(Error::invalid(
                "htod_bytes",
                format!("{} bytes are not a whole number of {} elements", bytes.len(), T::DTYPE),
            ));
        }
        let mut b = self.alloc(bytes.len() / size)?;
        b.copy_from_bytes(bytes)?;
        Ok(b)
    }
}
